"""The learner's own parts, chosen one by one: yours where it passes its check, the reference elsewhere.

"Yours if it passes, else the reference" is decided here, once, for every path that uses the
learner's earlier work: ``earlier_parts(..., use_my_work=True)`` in a chapter, chapter 12's
``assemble()``, ``workbook train --parts learner`` and ``workbook translate``. The learner's
notebooks are run by the one runner (``workbook.runner``: a worker per chapter, in a scratch folder,
each exercise graded there); the parts that pass come back by value and are rewired so that each
part builds and calls the chosen version of every other (``solutions.pipeline.parts.rewire``).

Where a chapter's notebook cannot be found (Colab runs each notebook on its own), the part kept in
the workbook home (``workbook.saved_parts``: the source of the last version whose check passed in a
notebook) is run and graded by the same runner instead. The notebook wins when both exist.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from checks.core import learner_globals
from solutions.pipeline.parts import PARTS, Assembly, assemble_parts, reference_assembly, reference_namespace
from workbook import saved_parts
from workbook.chapters import CHAPTERS, EXERCISE_TO_CHAPTER
from workbook.progress import parts_dir
from workbook.runner import read_chapter, run_chapters, unpickle_part


def _why(entry: dict, report: dict) -> str:
    state = entry.get("state")
    if state == "passed":
        return "passed its check" if entry.get("part") else "passed, but could not be brought back (unpicklable)"
    if state == "error":
        return f"{Path(report['path']).name}: {report['message']}"
    if state == "not attempted":
        return "not attempted yet"
    failures = entry.get("failures") or []
    return "failed its check" + (f": {' '.join(str(failures[0]).split())[:70]}" if failures else "")


def find_notebook(stem: str, folders: Iterable[Path]) -> Path | None:
    """The first ``<stem>.ipynb`` in ``folders``."""
    return next((Path(d) / f"{stem}.ipynb" for d in folders if (Path(d) / f"{stem}.ipynb").exists()), None)


def learner_parts(
    names: Iterable[str], folders: Iterable[Path], timeout: float = 30.0, home: bool = True, where: str | None = None
) -> dict[str, tuple[object | None, str]]:
    """Run the chapters that teach ``names`` and grade them: for each name, (your object when it
    passes its check, else None; why).

    A chapter's notebook is looked for in ``folders``; a chapter whose notebook is in none of them
    comes, when ``home``, from the parts kept in the workbook home (``workbook.saved_parts``: the
    last version of each that passed its check in a notebook), run and graded again exactly like a
    notebook. The notebook wins when both exist: it is the learner's current work. ``where`` says
    where the notebooks were looked for (default: the folders)."""
    names, folders = list(names), [Path(f) for f in folders]
    stems = [ch.stem for ch in CHAPTERS if any(EXERCISE_TO_CHAPTER.get(n) == ch.stem for n in names)]
    where = where or (
        f"not found in {', '.join(str(f) for f in folders)}" if folders else "not found (no folder to look in)"
    )
    found: dict[str, tuple[object | None, str]] = {}
    jobs, kept = [], {}  # kept: job index -> the record it runs
    for stem in stems:
        path = find_notebook(stem, folders)
        if path is not None:
            jobs.append(read_chapter(next(ch for ch in CHAPTERS if ch.stem == stem), path))
            continue
        for name in (n for n in names if EXERCISE_TO_CHAPTER[n] == stem):
            record = saved_parts.load(name) if home else None
            if isinstance(record, saved_parts.Saved):
                try:
                    job = saved_parts.job(record)
                except Exception as error:  # noqa: BLE001 - the workbook's own chapter source, unreadable here
                    found[name] = (None, f"the one kept in your workbook home cannot be run here: {error}")
                    continue
                kept[len(jobs)] = record
                jobs.append(job)
            else:
                why = f"{stem}.ipynb {where}"
                found[name] = (None, f"{why}; {record.why}" if record is not None else why)
    for i, report in enumerate(run_chapters(jobs, timeout=timeout, parts=True)):
        for entry in report["exercises"]:
            if entry["exercise"] not in names:
                continue
            part = unpickle_part(entry["part"]) if entry.get("state") == "passed" and entry.get("part") else None
            why = _why(entry, report)
            if i in kept:
                why = _kept_why(why, kept[i], part is not None)
            found[entry["exercise"]] = (part, why)
    return found


def _kept_why(why: str, record: saved_parts.Saved, passed: bool) -> str:
    """The note of a part that came from the workbook home."""
    if passed:
        return f"{why} (kept in your workbook home {record.when})"
    return f"the one kept in your workbook home ({record.path}, {record.when}): {why}"


def choose(
    names: Iterable[str],
    folders: Iterable[Path] | None,
    attention: str = "manual",
    timeout: float = 30.0,
    where: str | None = None,
) -> Assembly:
    """Every part of ``PARTS``: among ``names``, yours when it passes its check (``folders`` None:
    none of yours; a chapter not in ``folders``: the part kept in the workbook home, see
    :func:`learner_parts`); the reference for everything else. Every namespace is rewired to the choice."""
    reference = reference_namespace()
    chosen = {name: reference[name] for name in PARTS}
    sources = {name: ("reference", "as asked") for name in PARTS}
    namespaces = [reference]
    if folders is not None:
        for name, (part, why) in learner_parts(names, folders, timeout, where=where).items():
            sources[name] = ("yours" if part is not None else "reference", why)
            if part is not None:
                chosen[name] = part
                namespace = learner_globals(part)
                if namespace is not None:
                    namespaces.append(namespace)
    return assemble_parts(chosen, sources, namespaces, attention)


def assemble(
    use_learner: bool = True, chapters_dir: str | Path | None = "chapters", attention: str = "manual"
) -> Assembly:
    """Choose every part for chapter 12 and ``workbook train``: the learner's when it passes its
    check, else the reference. A part's chapter notebook is looked for in ``chapters_dir``; where
    there is none (no such folder, or not that notebook: Colab), the part kept in the workbook home
    when its check passed in a notebook is used instead, graded again the same way.

    ``attention="fused"`` swaps in PyTorch's fused attention kernel (for speed comparisons).
    """
    if not use_learner:
        return reference_assembly(attention)
    folder = Path(chapters_dir) if chapters_dir is not None else Path("chapters")
    if folder.is_dir():
        return choose(PARTS, [folder], attention)
    if not saved_parts.any_saved(PARTS):
        return reference_assembly(
            attention, why=f"no chapters folder at {folder}, and no part kept in your workbook home ({parts_dir()})"
        )
    return choose(PARTS, [], attention, where=f"not found: no chapters folder at {folder}")


def build_model(
    src_vocab_size: int,
    tgt_vocab_size: int,
    use_learner: bool = True,
    chapters_dir: str | Path | None = "chapters",
    attention: str = "manual",
    verbose: bool = True,
    **model_kwargs,
):
    """The Transformer built from the learner's parts where they pass their checks (see ``assemble``);
    prints the table of which part came from whom when ``verbose``."""
    assembly = assemble(use_learner, chapters_dir, attention)
    if verbose:
        print(assembly.table())
    return assembly.model(src_vocab_size, tgt_vocab_size, **model_kwargs)
