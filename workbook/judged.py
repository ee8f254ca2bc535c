"""A chapter notebook judged from outside the student's code (``checks.judge``), for the app.

The course's autograde (``workbook.nbgrader_ext.JudgedExecute``) and ``workbook check`` read the
notebook here (only read), pick the cells to run as the runner does, and hand them to the judge with
the reference parts of the earlier chapters (which the chapter's setup cells use).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from checks.core import CheckResult
from checks.judge import Judgement, judge_cells
from workbook.chapters import CHAPTERS, Chapter
from workbook.runner import ChapterJob, cell_first_line, choose_cells, describe_error, read_chapter


def earlier_exercises(info: Chapter) -> list[str]:
    """Every exercise of the chapters before ``info``: their references may be handed in."""
    names: list[str] = []
    for other in CHAPTERS:
        if other.stem >= info.stem:
            break
        names.extend(other.exercises)
    return names


def judge_notebook(
    path: Path,
    info: Chapter,
    hidden: Iterable[Path] = (),
    cell_time: float = 30.0,
    protect: bool = True,
    notebook: dict | None = None,
) -> Judgement:
    """Judge every exercise of ``info`` in the notebook at ``path`` (its folder copied for the worker);
    ``notebook``: the notebook itself when it is in memory (nbgrader's, with its locked cells restored)."""
    if notebook is None:
        job = read_chapter(info, Path(path))
    else:
        job = choose_cells(ChapterJob(info.stem, str(path), list(info.exercises)), info, notebook)
    if job.error is not None:
        return Judgement({}, job.error, False)
    cells = [(cell.index, cell.source) for cell in job.cells]
    judgement = judge_cells(
        cells,
        list(info.exercises),
        earlier_exercises(info),
        folder=Path(path).parent,
        hidden=list(hidden),
        cell_time=cell_time,
        protect=protect,
    )
    _name_broken_cells(judgement, job)
    return judgement


def _name_broken_cells(judgement: Judgement, job: ChapterJob) -> None:
    """An exercise left undefined because its own cell failed is "failed", with that cell's error
    (a syntax error shown with its line, as the runner shows it: compiled here, never run)."""
    errors = judgement.cell_errors or {}
    for name, result in list(judgement.results.items()):
        if result.state != "not attempted" or not any("is not defined" in f for f in result.failures):
            continue
        own = [c for c in job.cells if c.exercise == name and str(c.index) in errors]
        if not own:
            continue
        cell = own[0]
        error = errors[str(cell.index)]
        try:
            compile(cell.source, f"<cell {cell.index}>", "exec")
        except SyntaxError as bad:
            error = describe_error(bad, f"<cell {cell.index}>")
        first = cell_first_line({"source": cell.source})
        message = f"`{name}` is not defined because its cell (cell {cell.index}: {first}) failed: {error}"
        judgement.results[name] = CheckResult(name, "failed", failures=[message])


def _judge_payload(payload: dict) -> dict:
    """Judge one chapter here (the judge's side: it never runs the learner's code), as plain data."""
    from workbook.chapters import chapter

    info = chapter(payload["stem"])
    judgement = judge_notebook(Path(payload["path"]), info, cell_time=payload["cell_time"])
    return {
        "results": {name: result.to_dict() for name, result in judgement.results.items()},
        "problem": judgement.problem,
        "sandboxed": judgement.sandboxed,
    }


def judge_reports(chapters: list[dict], cell_time: float = 30.0) -> list[dict]:
    """Replace the verdicts in ``workbook.runner.run_chapters``' reports with the judge's.

    The report of a chapter's worker is the learner's code's to change (it ran there), so every
    exercise entry of a chapter that could be read is the judge's, which runs the cells again in a
    sandboxed worker of its own and grades from this process, which the learner's code never reaches.
    Chapters are judged one after the other, here: a fork of a process with threads can deadlock.
    """
    from checks.worker import Outcome

    outcomes: dict[int, Outcome] = {}
    for i, ch in enumerate(chapters):
        if ch.get("status") in ("missing", "unreadable"):
            continue
        payload = {"stem": ch["chapter"], "path": ch["path"], "cell_time": cell_time}
        try:
            outcomes[i] = Outcome("done", _judge_payload(payload))
        except Exception as error:  # noqa: BLE001 - the judge's own failure, said for that chapter
            outcomes[i] = Outcome("error", error=f"{type(error).__name__}: {error}")
    for i, outcome in outcomes.items():
        ch = chapters[i]
        value = outcome.value if outcome.status == "done" and isinstance(outcome.value, dict) else None
        results = value["results"] if value else {}
        judged = []
        for entry in ch["exercises"]:
            name = entry["exercise"]
            if name in results and (value or {}).get("problem") and not results[name].get("tests"):
                new = {**entry, "state": "error", "passed": False, "failures": results[name].get("failures", [])}
            elif name in results:
                result = CheckResult.from_dict(results[name])
                new = result.to_dict()
                new["text"] = str(result)
            else:
                why = (value or {}).get("problem") or f"the judge did not finish ({outcome.status})"
                new = {**entry, "state": "error", "passed": False, "failures": [f"could not be judged: {why}"]}
            judged.append(new)
        ch["exercises"] = judged
        if value and value.get("problem") and ch.get("status") == "graded":
            ch["judge_problem"] = value["problem"]
    return chapters
