"""``workbook status / hint / solution / reset``: your progress and the chapter notebooks.

* ``workbook status``: every chapter and exercise: passed / failed / not attempted, hints used,
  solution viewed (read from the progress file, see ``workbook.progress``).
* ``workbook hint NAME`` / ``workbook solution NAME``: the same as ``hint(NAME)`` / ``solution(NAME)``
  in a notebook, in the terminal.
* ``workbook reset CHAPTER``: the pristine notebook again; yours is kept as a dated backup.

``workbook build`` (a developer command) lives in ``workbook.commands.build``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from datetime import datetime
from pathlib import Path

from workbook.chapters import CHAPTERS


def register(subparsers: argparse._SubParsersAction) -> None:
    status = subparsers.add_parser(
        "status",
        help="your progress: every chapter and exercise, hints used, solutions viewed",
        description="A table of every chapter and exercise: the state of its last check (passed / "
        "failed / not attempted), hints used and whether you viewed the solution. Progress lives in "
        "$WORKBOOK_HOME/progress.json (default ~/.transformer-workbook).",
    )
    status.set_defaults(func=run_status)

    hint = subparsers.add_parser(
        "hint",
        help="show the next hint for an exercise",
        description="Shows the next hint for NAME (each call goes one step further).",
    )
    hint.add_argument(
        "name", metavar="NAME", nargs="?", help="exercise name, e.g. softmax or MultiHeadAttention (any case)"
    )
    hint.add_argument("--number", "-n", type=int, default=None, help="show this hint (1, 2, ...) instead of the next")
    hint.set_defaults(func=run_hint)

    solution = subparsers.add_parser(
        "solution",
        help="show the reference solution of an exercise",
        description="Prints the reference source of NAME (noted in your progress).",
    )
    solution.add_argument("name", metavar="NAME", nargs="?", help="exercise name, e.g. TokenEmbedding (any case)")
    solution.set_defaults(func=run_solution)

    reset = subparsers.add_parser(
        "reset",
        help="restore a chapter's pristine notebook (yours is kept as a dated backup)",
        description="Writes the pristine notebook of CHAPTER (number, stem or exercise name) into the "
        "chapters folder. Your current notebook is first copied to backups/<stem>-<date>.ipynb in that "
        "folder; nothing is ever deleted.",
    )
    reset.add_argument("chapter", metavar="CHAPTER", nargs="?", help="e.g. 03, 03_attention or MultiHeadAttention")
    reset.add_argument(
        "--chapters-dir",
        type=Path,
        default=None,
        help="folder with your chapter notebooks (default: ./chapters, or . when it holds them)",
    )
    reset.set_defaults(func=run_reset)


# --------------------------------------------------------------------------------------------------
def run_status(args: argparse.Namespace) -> int:
    from workbook import progress
    from workbook.notebooks import available_chapters, load_source

    state = progress.load(report=False)
    if state.recovered_from is not None:
        print(
            f"Your progress file could not be read; it was moved to {state.recovered_from} "
            "and a fresh one was started.\n"
        )
    with_source = {c.stem for c in available_chapters()}
    rows = [("chapter", "exercise", "state", "hints", "solution")]
    counts = {"passed": 0, "failed": 0, "not attempted": 0}
    for ch in CHAPTERS:
        if not ch.exercises:  # the last chapter: it trains the model, there is nothing to grade
            rows.append((f"{ch.stem[:2]} {ch.title}", "(no exercises)", "-", "-", "-"))
            continue
        hints_total = load_source(ch.stem).hints if ch.stem in with_source else {}
        for i, name in enumerate(ch.exercises):
            entry = state.get(name)
            counts[entry["state"]] = counts.get(entry["state"], 0) + 1
            total = len(hints_total.get(name, [])) or "?"
            rows.append(
                (
                    f"{ch.stem[:2]} {ch.title}" if i == 0 else "",
                    name,
                    entry["state"],
                    f"{entry['hints']}/{total}",
                    "viewed" if entry["solution"] else "-",
                )
            )
    widths = [max(len(str(r[c])) for r in rows) for c in range(len(rows[0]))]
    for index, row in enumerate(rows):
        print("  ".join(str(cell).ljust(w) for cell, w in zip(row, widths)).rstrip())
        if index == 0:
            print("  ".join("-" * w for w in widths))
    total = sum(counts.values())
    print(
        f"\n{counts['passed']} of {total} exercises passed, {counts['failed']} failed, "
        f"{counts['not attempted']} not attempted.  (progress file: {progress.progress_path()})"
    )
    return 0


def _exercise_or_fail(name: str | None, command: str) -> str | None:
    from workbook.names import exercise, exercises_listed

    if name is None:
        print(
            f"Which exercise? `workbook {command} NAME`, with NAME one of: {exercises_listed()}.",
            file=sys.stderr,
        )
        return None
    try:
        return exercise(name)
    except ValueError as error:
        print(error, file=sys.stderr)
        return None


def run_hint(args: argparse.Namespace) -> int:
    from workbook.learner import hint

    name = _exercise_or_fail(args.name, "hint")
    if name is None:
        return 2
    try:
        print(hint(name, args.number))
    except (ValueError, FileNotFoundError) as error:
        print(error, file=sys.stderr)
        return 2
    return 0


def run_solution(args: argparse.Namespace) -> int:
    from workbook.learner import solution

    name = _exercise_or_fail(args.name, "solution")
    if name is None:
        return 2
    print(solution(name))
    return 0


def default_chapters_dir() -> Path:
    """./chapters when it exists, else . when it holds chapter notebooks, else the repository's chapters/."""
    from workbook.notebooks import CHAPTERS_DIR

    cwd = Path.cwd()
    if (cwd / "chapters").is_dir():
        return cwd / "chapters"
    if any((cwd / f"{c.stem}.ipynb").exists() for c in CHAPTERS):
        return cwd
    return CHAPTERS_DIR


def keep_backup(target: Path) -> Path:
    """Copy the notebook ``target`` to ``backups/<stem>-<date>.ipynb`` beside it, never over an
    earlier backup (``workbook reset``, ``workbook build --force``)."""
    backups = target.parent / "backups"
    backups.mkdir(exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    path = backups / f"{target.stem}-{stamp}.ipynb"
    n = 1
    while path.exists():
        n += 1
        path = backups / f"{target.stem}-{stamp}-{n}.ipynb"
    shutil.copy2(target, path)
    return path


def run_reset(args: argparse.Namespace) -> int:
    from workbook.files import atomic_write
    from workbook.names import chapter, chapters_listed
    from workbook.notebooks import learner_notebook_text

    if args.chapter is None:
        print(
            f"Which chapter? `workbook reset CHAPTER`, e.g. `workbook reset 03`; the chapters: {chapters_listed()}.",
            file=sys.stderr,
        )
        return 2
    try:
        info = chapter(args.chapter)
        pristine = learner_notebook_text(info.stem)
    except (KeyError, FileNotFoundError) as error:
        print(error.args[0] if error.args else error, file=sys.stderr)
        return 2
    folder = args.chapters_dir or default_chapters_dir()
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{info.stem}.ipynb"
    if target.exists():
        if target.read_text(encoding="utf-8") == pristine:
            print(f"{target} is already pristine; nothing to do.")
            return 0
        print(f"Your notebook was saved as {keep_backup(target)}")
    atomic_write(target, pristine)
    print(f"{target} is the pristine chapter {info.stem[:2]} again. (Your progress is kept: `workbook status`.)")
    return 0
