"""``workbook course DIR``: write an nbgrader course of the workbook (``workbook.course``).

workbook course DIR                # nbgrader_config.py + source/<chapter>/<chapter>.ipynb
workbook course DIR --check        # which submissions lost their nbgrader metadata?
workbook course DIR --repair       # put it back (by cell id, a .bak copy is kept)
workbook course DIR --report       # after autograde: DIR/reports/report.html (scores, ungraded, mistakes)
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

EPILOG = """\
From an empty folder to a grades CSV:
  1. workbook course mycourse && cd mycourse        # the course: config + source notebooks
  2. nbgrader generate_assignment 03_attention       # release/03_attention/: hand it out
     (the students' notebooks go to submitted/<student>/03_attention/03_attention.ipynb)
  3. nbgrader autograde 03_attention                 # hidden tests -> gradebook.db
  4. nbgrader generate_feedback 03_attention         # feedback/<student>/03_attention/*.html
  5. nbgrader export                                 # grades.csv
A submission that "lost the nbgrader metadata" (autograde says so): workbook course . --repair
After autograde: workbook course . --report     # one HTML page: per student and exercise, and the
                                                # class's most common mistakes, with a chart

exit status: 0 done (for --check: every submission intact); 1 a submission lacks metadata, a
chapter source cannot be turned into a course notebook, or nbgrader is not installed (the teacher's
install is `pip install "transformer-workbook[teach]"`); 2 wrong usage.
"""

TEACH_INSTALL = 'pip install "transformer-workbook[teach]"'


def nbgrader_missing() -> str | None:
    """Why the teacher's tools cannot run here (nbgrader is not installed), or None when they can.

    nbgrader is the ``teach`` extra, not a dependency: in a learner's JupyterLab it would show its
    teacher interface (an "Nbgrader" menu, "Create Assignment", "Validate")."""
    try:  # found, not imported: importing nbgrader takes seconds (its server extensions)
        found = importlib.util.find_spec("nbgrader") is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        return (
            "workbook course needs nbgrader, which is not installed here. nbgrader is the "
            f"teacher's extra, left out of the learner's install: run\n    {TEACH_INSTALL}\n"
            '(from a checkout of the workbook: pip install -e ".[teach]"), then run this command again. '
            "Nothing was written."
        )
    return None


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "course",
        help="write an nbgrader course (hidden tests, autograding, feedback) of the chapters",
        description="Writes DIR/nbgrader_config.py and DIR/source/<chapter>/<chapter>.ipynb for every "
        "chapter, from the same sources as chapters/: `nbgrader generate_assignment` gives the "
        "students exactly the chapter notebooks, and `nbgrader autograde` grades each exercise with "
        "the checker's hidden tests.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("dir", metavar="DIR", help="the course folder (created when missing)")
    parser.add_argument(
        "--chapters",
        nargs="+",
        metavar="CHAPTER",
        default=None,
        help="only these chapters (03, 03_attention, ...); default: every chapter with a source and "
        "exercises (chapter 12, the training run, has nothing to grade)",
    )
    parser.add_argument(
        "--timeout",
        type=int,
        default=None,
        metavar="SECONDS",
        help="time limit per notebook cell when autograding (default 120)",
    )
    parser.add_argument("--points", type=float, default=None, help="points per exercise (default 1)")
    parser.add_argument(
        "--no-solutions",
        action="store_true",
        help="release the notebooks with solution() turned off (it says so and shows nothing; hint() "
        "still works). A student who installs the workbook elsewhere can still read the reference: "
        "this keeps the answer one step further away, it does not hide it",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="do not write anything: report every notebook under DIR/submitted that lost its nbgrader metadata",
    )
    parser.add_argument(
        "--repair",
        action="store_true",
        help="restore lost nbgrader metadata of the submissions by cell id (keeps a .bak copy)",
    )
    parser.add_argument(
        "--report",
        action="store_true",
        help="after `nbgrader autograde`: write DIR/reports/report.html (score, state and diagnoses per "
        "student and exercise, what could not be graded and why, the most common mistakes)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    missing = nbgrader_missing()  # before anything is read or written: a missing extra loses nothing
    if missing is not None:
        print(missing, file=sys.stderr)
        return 1
    from workbook import course

    course_dir = Path(args.dir)
    if args.report:
        return _report(course_dir, args.chapters)
    if args.check or args.repair:
        return _inspect(course_dir, repair=args.repair)
    try:
        written = course.write_course(
            course_dir,
            stems=args.chapters,
            timeout=args.timeout or course.DEFAULT_TIMEOUT,
            points=args.points or course.DEFAULT_POINTS,
            solutions=not args.no_solutions,
        )
    except KeyError as error:
        print(error.args[0], file=sys.stderr)
        return 2
    except (course.CourseError, ValueError) as error:
        print(f"Cannot build the course: {error}", file=sys.stderr)
        return 1
    notebooks = [p for p in written if p.suffix == ".ipynb"]
    print(f"Wrote {course_dir / 'nbgrader_config.py'} and {len(notebooks)} source notebook(s):")
    for path in notebooks:
        print(f"  {path}")
    print(
        f"Next: cd {course_dir} && nbgrader generate_assignment {notebooks[0].parent.name if notebooks else 'CHAPTER'}"
    )
    return 0


def _inspect(course_dir: Path, repair: bool) -> int:
    from workbook import course

    found = course.submissions(course_dir)
    if not found:
        print(
            f"No submissions under {course_dir / 'submitted'} (expected submitted/<student>/<chapter>/<chapter>.ipynb)."
        )
        return 0
    bad = 0
    for student, assignment, path in found:
        source_nb = course.read_source_notebook(course_dir, assignment, path.stem)
        if source_nb is None:
            print(f"{path}: no source notebook source/{assignment}/{path.stem}.ipynb to compare with; skipped.")
            continue
        try:
            report = course.repair_submission(path, source_nb) if repair else course.inspect_submission(path, source_nb)
        except Exception as error:  # noqa: BLE001 - an unreadable notebook is reported, not a crash
            print(f"{path}: cannot be read as a notebook ({type(error).__name__}: {error}).")
            bad += 1
            continue
        if report.ok:
            state = "repaired" if repair and report.path.with_name(report.path.name + ".bak").exists() else "ok"
            print(f"{student:>12}  {assignment:<28} {state}")
        else:
            bad += 1
            print(report.message())
    return 1 if bad else 0


def _report(course_dir: Path, chapters: list[str] | None) -> int:
    from workbook.chapters import chapter
    from workbook.report import collect, render

    if not (course_dir / "nbgrader_config.py").exists():
        print(
            f"{course_dir} is not a course folder (no nbgrader_config.py): run `workbook course {course_dir}` first.",
            file=sys.stderr,
        )
        return 2
    try:
        stems = (
            [chapter(c).stem for c in chapters]
            if chapters
            else sorted(p.name for p in (course_dir / "source").iterdir() if p.is_dir())
        )
    except KeyError as error:
        print(error.args[0], file=sys.stderr)
        return 2
    from workbook.files import atomic_write

    reports = [collect(course_dir, stem) for stem in stems]
    path = atomic_write(course_dir / "reports" / "report.html", render(reports))
    for report in reports:
        graded = {e.student for e in report.entries}
        print(f"{report.stem}: {len(graded)} submission(s)")
        for e in report.entries:
            if e.state == "not graded":
                print(f"  NOT GRADED  {e.student} / {e.exercise}: {e.why}")
    print(f"Report: {path}")
    return 0
