"""``workbook check [CHAPTER...]``: grade the chapter notebooks from a terminal, without Jupyter.

Each notebook is read (never written) and its setup and exercise cells run in a fresh process of
its own (``workbook.runner``: what they print, which cells fail); the verdicts come from the judge
(``workbook.judged``, ``checks.judge``): the cells run again in a sandboxed worker that cannot see
the reference, and every exercise is graded from a process the notebook's code never reaches, so a
notebook cannot report "passed" to itself by patching the grader.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

from workbook.chapters import CHAPTERS, GRADED_CHAPTERS, Chapter, chapter
from workbook.names import chapter as find_chapter

EPILOG = """\
chapters: 03, 3, 03_attention, an exercise name (LayerNorm), or a path to a notebook; none = every
chapter with exercises (00-11; chapter 12 trains the model and has nothing to grade).

Which cells run: the setup and exercise cells and any cell you added yourself; of the chapter's demo,
figure and training cells only their definitions (def, class, import), since an exercise may call a
helper they define (--all-cells runs them whole). The check() and hint() cells, shell lines (!...)
and magics (%...) are skipped.

--json prints one object: {"chapters": [{"chapter", "path", "status" (graded, missing, unreadable,
timeout or crashed), "message", "cell_errors": [{"cell", "first_line", "error"}], "output_tail",
"seconds", "exercises": [{"exercise", "state" (passed, failed, not attempted or error), "passed",
"failures", "diagnoses", "tests", "text"}]}], "summary": {"passed", "failed", "not attempted",
"error", "total", "ok"}, "ungraded" (chapters asked for that have no exercises), "seconds"}.
Your notebooks' prints never mix into it.

exit status:
  0  every graded exercise passed
  1  anything else: an exercise failed, is not attempted yet, or could not be graded (missing or
     unreadable notebook, a notebook whose process crashed or hung)
  2  the command was used wrongly (unknown chapter, no chapters folder)
"""

LEFT_RUNNING = "your code left {} running; it was stopped when grading ended (join your threads)"
STATE_LABEL = {"passed": "passed", "failed": "FAILED", "not attempted": "not attempted", "error": "ERROR"}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "check",
        help="grade your chapter notebooks from the terminal (no Jupyter needed)",
        description="Runs your chapter notebooks' exercise cells, each notebook in a fresh process with "
        "a time limit, grades every exercise with the hidden tests, and prints one row per exercise. "
        "Your notebooks are only read, never changed.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("chapters", nargs="*", metavar="CHAPTER", help="chapters to grade (default: every chapter)")
    parser.add_argument(
        "--dir",
        default=None,
        metavar="DIR",
        help="folder holding the chapter notebooks (default: ./chapters, or the current folder when it holds them)",
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON (for tools)")
    parser.add_argument(
        "--timeout",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="time limit for one cell (default 30); a cell running longer is stopped and "
        "reported, and the exercises are graded all the same",
    )
    parser.add_argument(
        "--all-cells", action="store_true", help="also run the chapter's demo/figure/training cells (slower)"
    )
    parser.add_argument(
        "--sandbox",
        action="store_true",
        help="run each notebook in a bubblewrap sandbox (Linux): the system read-only, your folder "
        "hidden, no network, nothing it starts outlives it; slower (a fresh Python per chapter)",
    )
    parser.add_argument(
        "--verbose",
        "-v",
        action="store_true",
        help="after the table, the full report (every test) of each exercise that did not pass",
    )
    parser.set_defaults(func=run)


class UsageError(Exception):
    """A wrong command line: reported in one sentence, exit status 2."""


def _default_dir() -> Path:
    here = Path.cwd()
    if (here / "chapters").is_dir():
        return here / "chapters"
    if any(here.glob("[0-9][0-9]_*.ipynb")):
        return here
    raise UsageError(
        f"No chapter notebooks found: looked in {here / 'chapters'} and in {here}. "
        "Run `workbook check` from the folder that holds chapters/, or pass --dir DIR."
    )


def resolve(args_chapters: list[str], folder: Path | None) -> list[tuple[Chapter, Path]]:
    """The (chapter, notebook path) pairs to grade, in chapter order, without duplicates."""
    if not args_chapters:
        folder = folder if folder is not None else _default_dir()
        return [(ch, folder / f"{ch.stem}.ipynb") for ch in GRADED_CHAPTERS]
    chosen: dict[str, tuple[Chapter, Path]] = {}
    for arg in args_chapters:
        if arg.endswith(".ipynb") or "/" in arg or "\\" in arg:
            path = Path(arg)
            if not path.is_file():
                raise UsageError(_not_found(path))
            try:
                ch = chapter(path.stem) if path.stem in {c.stem for c in CHAPTERS} else chapter(path.stem[:2])
            except KeyError:
                raise UsageError(
                    f"{arg}: cannot tell which chapter this notebook is; its name must start "
                    "with the chapter number, like 03_attention.ipynb."
                ) from None
        else:
            try:
                ch = find_chapter(arg)
            except KeyError as error:
                raise UsageError(str(error.args[0])) from None
            if folder is None:
                folder = _default_dir()
            path = folder / f"{ch.stem}.ipynb"
        chosen.setdefault(ch.stem, (ch, path))
    order = [c.stem for c in CHAPTERS]
    return sorted(chosen.values(), key=lambda pair: order.index(pair[0].stem))


def _not_found(path: Path) -> str:
    """A "file not found" message, with the notebooks of that folder whose names are close ("did you mean")."""
    from workbook.names import did_you_mean

    if path.is_dir():
        return f"{path} is a folder, not a notebook (to grade the notebooks in it: --dir {path})."
    folder = path.parent
    if not folder.is_dir():
        return f"{path}: file not found (there is no folder {folder})."
    nearby = [p.name for p in folder.glob("*.ipynb")]
    return f"{path}: file not found.{did_you_mean(path.name, nearby)}"


def _first_message(entry: dict) -> str:
    """The first line of the first failure message ("" for a pass)."""
    failures = entry.get("failures") or []
    return failures[0].strip().splitlines()[0] if failures else ""


def summarise(chapters: list[dict]) -> dict:
    """Counts per state; ``ok`` only when there is something graded and all of it passed."""
    counts = {"passed": 0, "failed": 0, "not attempted": 0, "error": 0}
    for ch in chapters:
        for ex in ch["exercises"]:
            counts[ex["state"] if ex["state"] in counts else "error"] += 1
    total = sum(counts.values())
    return {**counts, "total": total, "ok": total > 0 and counts["passed"] == total}


def format_table(chapters: list[dict], verbose: bool = False) -> str:
    """One row per exercise (chapter, exercise, state, first message), then the notebooks' problems."""
    width = shutil.get_terminal_size((110, 24)).columns if sys.stdout.isatty() else 10**6  # piped: whole line
    rows = [("chapter", "exercise", "state", "first message")]
    for ch in chapters:
        for ex in ch["exercises"]:
            rows.append((ch["chapter"], ex["exercise"], STATE_LABEL.get(ex["state"], ex["state"]), _first_message(ex)))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    room = max(30, width - sum(widths) - 6)
    lines = []
    for n, row in enumerate(rows):
        message = row[3] if len(row[3]) <= room else row[3][: room - 3] + "..."
        lines.append("  ".join(cell.ljust(w) for cell, w in zip(row[:3], widths)) + "  " + message)
        if n == 0:
            lines.append("  ".join("-" * w for w in widths) + "  " + "-" * min(room, 40))
    notes = []
    for ch in chapters:
        if ch["status"] != "graded":
            notes.append(f"{ch['chapter']}: {ch['message']}")
        for error in ch.get("cell_errors", []):
            notes.append(f"{ch['chapter']}: cell {error['cell']} ({error['first_line']}) {error['error']}")
        if ch["status"] == "graded" and ch.get("left_running"):
            notes.append(f"{ch['chapter']}: " + LEFT_RUNNING.format(", ".join(ch["left_running"])))
    if notes:
        lines += ["", "Problems in the notebooks (the other chapters were graded all the same):"]
        lines += [f"  - {note}" for note in notes]
    if verbose:
        for ch in chapters:
            for ex in ch["exercises"]:
                if ex["state"] != "passed":
                    lines += ["", ex.get("text") or f"{ex['exercise']}: {ex['state']}"]
                    if not ex.get("text"):
                        lines += [f"  {m}" for m in ex.get("failures", [])]
    return "\n".join(lines)


def record_progress(chapters: list[dict]) -> None:
    """Remember each graded exercise's verdict (here, in this one process: the workers never write it)."""
    from workbook import progress

    for ch in chapters:
        for ex in ch["exercises"]:
            if ex["state"] in progress.STATES:
                progress.record_check(ex["exercise"], ex["state"])


def run(args: argparse.Namespace) -> int:
    from workbook.judged import judge_reports
    from workbook.runner import read_chapter, run_chapters

    start = time.perf_counter()
    try:
        folder = Path(args.dir) if args.dir else None
        if folder is not None and not folder.is_dir():
            raise UsageError(f"--dir {args.dir}: no such folder ({folder.resolve()}).")
        targets = resolve(args.chapters, folder)
    except UsageError as error:
        print(f"workbook check: {error}", file=sys.stderr)
        return 2
    if args.timeout <= 0:
        print("workbook check: --timeout must be a positive number of seconds.", file=sys.stderr)
        return 2
    ungraded = [ch for ch, _ in targets if not ch.exercises]  # e.g. chapter 12: it trains, nothing to grade
    targets = [(ch, path) for ch, path in targets if ch.exercises]
    if not targets:
        names = ", ".join(ch.stem for ch in ungraded)
        if args.json:
            print(
                json.dumps(
                    {
                        "chapters": [],
                        "summary": summarise([]),
                        "ungraded": [ch.stem for ch in ungraded],
                        "seconds": round(time.perf_counter() - start, 2),
                    },
                    indent=2,
                )
            )
        else:
            print(
                f"{names}: no exercises, nothing to grade. (Run the notebook itself: it trains the "
                "model built from your earlier chapters.)"
            )
        return 0

    jobs = [read_chapter(ch, path, all_cells=args.all_cells) for ch, path in targets]
    sandbox = False
    if args.sandbox:
        from checks import sandbox as bwrap

        sandbox = bwrap.available() is None
        if not sandbox:
            print(bwrap.missing_protection(), file=sys.stderr)
    chapters = run_chapters(jobs, timeout=args.timeout, sandbox=sandbox, judged=True)
    chapters = judge_reports(chapters, cell_time=args.timeout)
    record_progress(chapters)
    summary = summarise(chapters)
    seconds = round(time.perf_counter() - start, 2)
    if args.json:
        print(
            json.dumps(
                {
                    "chapters": chapters,
                    "summary": summary,
                    "ungraded": [ch.stem for ch in ungraded],
                    "seconds": seconds,
                },
                indent=2,
                default=str,
            )
        )
    else:
        folders = sorted({str(Path(ch["path"]).resolve().parent) for ch in chapters})
        print(f"Grading {len(chapters)} chapter notebook(s) in {', '.join(folders)}\n")
        print(format_table(chapters, verbose=args.verbose))
        if ungraded:
            print(f"\n(Not graded, no exercises: {', '.join(ch.stem for ch in ungraded)}.)")
        print(
            f"\n{summary['passed']} passed, {summary['failed']} failed, {summary['not attempted']} not "
            f"attempted, {summary['error']} not gradable, of {summary['total']} exercises ({seconds:.1f} s)."
        )
        if not summary["ok"]:
            missing = [Path(ch["path"]).name for ch in chapters if ch["status"] == "missing"]
            unfinished = any(
                ex["state"] != "passed" for ch in chapters if ch["status"] != "missing" for ex in ch["exercises"]
            )
            if missing:
                print(f"Exit status 1: notebook(s) not found: {', '.join(missing)}.")
            if unfinished:
                print(
                    f"{'Also' if missing else 'Exit status 1'}: not every exercise passes yet. Run `check(NAME)` "
                    "in the notebook for the details of one, or add --verbose here."
                )
    return 0 if summary["ok"] else 1
