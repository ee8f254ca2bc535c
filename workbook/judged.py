"""A chapter notebook judged from outside the student's code (``checks.judge``), for the app.

The course's autograde (``workbook.nbgrader_ext.JudgeSubmission``) and ``workbook check --judge``
read the notebook here (only read), pick the cells to run as the runner does, and hand them to the
judge with the reference parts of the earlier chapters (which the chapter's setup cells use).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from checks.judge import Judgement, judge_cells
from workbook.chapters import CHAPTERS, Chapter
from workbook.runner import ChapterJob, choose_cells, read_chapter


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
    return judge_cells(
        cells,
        list(info.exercises),
        earlier_exercises(info),
        folder=Path(path).parent,
        hidden=list(hidden),
        cell_time=cell_time,
        protect=protect,
    )
