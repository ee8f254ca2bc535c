"""Time to autograde one submission of each chapter with nbgrader, beside ``workbook check``.

For every chapter (or those given), builds the course (``workbook course``), releases it
(``nbgrader generate_assignment``), submits the reference answer as student ``bench``, and times

* ``nbgrader autograde CHAPTER --student bench``: the whole command a teacher runs (process start,
  sanitising, a fresh kernel that runs every cell of the notebook, the hidden tests, the gradebook),
  as the course runs it (the sandboxed kernel ``workbook-sandbox``, then the judge) and, as the
  baseline measured in the same run, as it ran before the judge: nbgrader's plain ``python3``
  kernel and nbgrader's own ``Execute`` (the ratio is the cost of the sandbox and the judge);
* ``workbook check CHAPTER --dir ...`` called in-process (``workbook.cli.main``) on the same notebook:
  the learner's terminal check (setup and exercise cells in a fresh process, then the checker).

    python benchmarks/bench_course.py [--chapters 00 03 07] [--repeat 1]

Both include starting a Python process with torch; nbgrader also runs the chapter's demo and
figure cells, which ``workbook check`` skips by default.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

from workbook.chapters import chapter
from workbook.cli import main as workbook
from workbook.course import course_chapters


def nbgrader(course: Path, *args: str) -> float:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=course, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"nbgrader {' '.join(args)} failed:\n{done.stderr[-2000:]}")
    return time.perf_counter() - start


PLAIN = """
c.Execute.kernel_name = "python3"
c.Autograde.autograde_preprocessors = [
    "nbgrader.preprocessors.Execute",
    "nbgrader.preprocessors.IgnorePattern",
    "nbconvert.preprocessors.ClearMetadataPreprocessor",
    "nbgrader.preprocessors.LimitOutput",
    "nbgrader.preprocessors.SaveAutoGrades",
    "nbgrader.preprocessors.AssignLatePenalties",
    "nbgrader.preprocessors.CheckCellMetadata",
]
"""


def autograde_plain(course: Path, stem: str) -> float:
    """The same autograde as before the judge: nbgrader's plain python3 kernel and its own Execute,
    the hidden tests' verdict taken from the kernel (the config changed for one command)."""
    config = course / "nbgrader_config.py"
    original = config.read_text(encoding="utf-8")
    config.write_text(original + PLAIN, encoding="utf-8")
    try:
        return nbgrader(course, "autograde", stem, "--student", "bench", "--force")
    finally:
        config.write_text(original, encoding="utf-8")


def solved_submission(course: Path, stem: str) -> nbformat.NotebookNode:
    """The released notebook with the reference answer in every exercise cell (matched by cell id)."""
    release = nbformat.read(str(course / "release" / stem / f"{stem}.ipynb"), as_version=4)
    source = {c.id: c for c in nbformat.read(str(course / "source" / stem / f"{stem}.ipynb"), as_version=4).cells}
    for cell in release.cells:
        if cell.metadata.get("nbgrader", {}).get("solution"):
            cell.source = "\n".join(
                line
                for line in source[cell.id].source.split("\n")
                if "### BEGIN SOLUTION" not in line and "### END SOLUTION" not in line
            )
    return release


def workbook_check(folder: Path, stem: str) -> tuple[float, dict]:
    out = io.StringIO()
    start = time.perf_counter()
    with contextlib.redirect_stdout(out):
        workbook(["check", stem, "--dir", str(folder), "--json"])
    seconds = time.perf_counter() - start
    try:
        return seconds, json.loads(out.getvalue())
    except json.JSONDecodeError:
        return seconds, {}


def workbook_check_cold(folder: Path, stem: str) -> float:
    """The same check as a learner types it in a terminal: a new process (imports torch itself)."""
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "workbook.cli", "check", stem, "--dir", str(folder), "--json"],
        capture_output=True,
        text=True,
    )
    return time.perf_counter() - start


def passed(report: dict) -> str:
    states = [e.get("state") for ch in report.get("chapters", []) for e in ch.get("exercises", [])]
    return f"{states.count('passed')}/{len(states)}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chapters", nargs="*", default=None)
    parser.add_argument("--repeat", type=int, default=1, help="autograde runs per chapter (median reported)")
    args = parser.parse_args()
    stems = [chapter(c).stem for c in args.chapters] if args.chapters else [c.stem for c in course_chapters()]

    work = Path(tempfile.mkdtemp(prefix="bench-course-"))
    try:
        course, mine = work / "course", work / "mine"
        mine.mkdir()
        with contextlib.redirect_stdout(io.StringIO()):
            assert workbook(["course", str(course), "--chapters", *stems]) == 0
        rows = []
        for stem in stems:
            nbgrader(course, "generate_assignment", stem)
            submission = solved_submission(course, stem)
            target = course / "submitted" / "bench" / stem / f"{stem}.ipynb"
            target.parent.mkdir(parents=True, exist_ok=True)
            nbformat.write(submission, str(target))
            nbformat.write(submission, str(mine / f"{stem}.ipynb"))
            grade_times = [
                nbgrader(course, "autograde", stem, "--student", "bench", "--force") for _ in range(args.repeat)
            ]
            plain_times = [autograde_plain(course, stem) for _ in range(args.repeat)]
            check_times, report = zip(*(workbook_check(mine, stem) for _ in range(args.repeat)))
            from nbgrader.api import Gradebook

            with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
                sub = gradebook.find_submission(stem, "bench")
                score = f"{sub.score:g}/{sub.max_score:g}"
            cold = statistics.median(workbook_check_cold(mine, stem) for _ in range(args.repeat))
            grade, plain = statistics.median(grade_times), statistics.median(plain_times)
            rows.append((stem, grade, plain, statistics.median(check_times), cold, score, passed(report[-1])))
            print(
                f"{stem:<26} autograde {grade:6.1f} s judged, {plain:6.1f} s before ({grade / plain:.2f}x; "
                f"{score})   workbook check in-process {rows[-1][3]:5.1f} s, new process {cold:5.1f} s "
                f"({rows[-1][6]} passed)",
                flush=True,
            )
        print()
        print(
            "| chapter | autograde, sandbox + judge (s) | autograde, plain kernel, no judge (s) | ratio | score | "
            "workbook check in-process (s) | workbook check, new process (s) | passed |"
        )
        print("|---|---|---|---|---|---|---|---|")
        for stem, grade, plain, check, cold, score, ok in rows:
            print(
                f"| {stem} | {grade:.1f} | {plain:.1f} | {grade / plain:.2f} | {score} | {check:.1f} "
                f"| {cold:.1f} | {ok} |"
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
