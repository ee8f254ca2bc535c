"""The classroom: an nbgrader course generated from the same single source as ``chapters/``.

``workbook course DIR`` (``workbook.commands.course``) writes, for every chapter that has a source and
exercises (see :func:`course_chapters`),

* ``DIR/nbgrader_config.py``: the course configuration (timeout, missing cells restored, feedback
  without hidden tests), and
* ``DIR/source/<stem>/<stem>.ipynb``: the instructor's version of the chapter notebook.

The instructor's version is derived from the learner notebook (``workbook.notebooks.make_notebook``,
the very function that writes ``chapters/``) by adding nbgrader metadata and two kinds of regions:

* in each exercise cell, every placeholder ``# YOUR CODE HERE / raise NotImplementedError()`` becomes
  a ``### BEGIN SOLUTION`` ... ``### END SOLUTION`` region holding the reference body of the function
  or method it sits in; nbgrader's ``ClearSolutions`` turns that region back into the placeholder,
  indented like the ``BEGIN`` line, so ``nbgrader generate_assignment`` yields ``chapters/`` again;
* each exercise's ``check(NAME)`` cell becomes an autograded test cell: the learner sees exactly
  ``check(NAME)``; below it a ``### BEGIN HIDDEN TESTS`` region calls :func:`assert_passes`, which
  grades with the checker's hidden tests and fails the cell with the checker's beginner messages.

Cells the learner should not change (the text, the setup, the demos) are read-only; nbgrader puts
their original back before grading.
"""

from __future__ import annotations

import ast
import json
import re
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat

from checks.sandbox import isolated_python
from workbook.chapters import Chapter
from workbook.files import atomic_write
from workbook.notebooks import (
    PLACEHOLDER,
    ChapterSource,
    available_chapters,
    earlier_work_cell,
    load_source,
    make_notebook,
    reference_source,
    render,
)
from workbook.sandbox_kernel import COURSE_ENV, KERNEL_NAME

COURSE_ID = "transformer-workbook"
DEFAULT_POINTS = 1  # points per exercise
DEFAULT_TIMEOUT = 120  # seconds per cell when autograding (nbgrader's own default is 30)
BEGIN_SOLUTION, END_SOLUTION = "### BEGIN SOLUTION", "### END SOLUTION"
BEGIN_HIDDEN, END_HIDDEN = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"
SCHEMA_VERSION = 3  # nbgrader's cell metadata schema


class CourseError(ValueError):
    """The course cannot be built from a chapter source (the message says which exercise and why)."""


# --------------------------------------------------------------------------------------------------
# What the hidden tests call
# --------------------------------------------------------------------------------------------------
def assert_passes(name: str, namespace: dict[str, Any] | None = None, time_limit: float | None = None) -> Any:
    """Grade the learner's ``name`` (looked up in ``namespace``, by default the notebook's globals)
    with the checker; raise ``AssertionError`` with the checker's messages unless it passes.

    Used by the hidden part of every autograded test cell. Shows the checker's table in the
    notebook (so the feedback the student gets holds the checker's own report), and returns the
    :class:`checks.CheckResult` when the exercise passes.
    """
    from checks import check

    if namespace is None:
        import __main__

        namespace = vars(__main__)
    if namespace.get(name) is None:
        raise AssertionError(
            f"{name}: not attempted. `{name}` is not defined: write it in its exercise cell and run "
            "that cell (did the cell stop with an error before reaching the definition?)."
        )
    from workbook.learner import last_result

    result = last_result(name, namespace[name]) if time_limit is None else None
    if result is None:
        result = check(namespace[name], name, time_limit=time_limit)
    _show(result)
    if not result.passed:
        lines = [f"{name}: {result.state}."] + [f for f in result.failures if f]
        raise AssertionError("\n".join(lines))
    return result


REPORT_KEY = "workbook"  # output metadata the teacher report reads: {"exercise", "state", "diagnoses"}


def verdicts_path(course_dir: Path | str, assignment: str, student: str, notebook: str) -> Path:
    """Where the judge keeps its verdicts of one submitted notebook (grade id -> verdict): in the
    course's grading folder, beside nbgrader's gradebook, where no kernel can write. The teacher
    report reads the verdicts from here only; what the kernel put in the notebook is never trusted."""
    return Path(course_dir) / ".workbook-grading" / "verdicts" / assignment / student / f"{notebook}.json"


def _show(result: Any) -> None:
    """Display the checker's report in a notebook (nothing outside IPython), with the verdict in the
    output's metadata, where the teacher report (``workbook.report``) finds it."""
    from IPython import get_ipython
    from IPython.display import display

    if get_ipython() is not None:
        verdict = {
            "exercise": result.exercise,
            "state": result.state,
            "diagnoses": list(result.diagnoses),
            "flags": list(result.flags),
        }
        display(result, metadata={REPORT_KEY: verdict})


def hidden_test_code(name: str) -> str:
    """The hidden region of ``name``'s test cell (removed from what students receive)."""
    return "\n".join(
        [
            BEGIN_HIDDEN,
            "from workbook.course import assert_passes as _assert_passes",
            f'_assert_passes("{name}", globals())',
            END_HIDDEN,
        ]
    )


# --------------------------------------------------------------------------------------------------
# Solution regions: placeholder -> reference body
# --------------------------------------------------------------------------------------------------
def _functions(tree: ast.AST, prefix: str = "") -> dict[str, ast.FunctionDef | ast.AsyncFunctionDef]:
    """Every function and method in ``tree`` by qualified name (``Class.method``, ``function``)."""
    found: dict[str, ast.FunctionDef | ast.AsyncFunctionDef] = {}
    for node in getattr(tree, "body", []):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            found[prefix + node.name] = node
            found.update(_functions(node, prefix + node.name + "."))
        elif isinstance(node, ast.ClassDef):
            found.update(_functions(node, prefix + node.name + "."))
    return found


def _body_statements(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> list[ast.stmt]:
    """The statements of a function body, without its docstring."""
    body = list(fn.body)
    if (
        body
        and isinstance(body[0], ast.Expr)
        and isinstance(getattr(body[0], "value", None), ast.Constant)
        and isinstance(body[0].value.value, str)
    ):
        body = body[1:]
    return body


def _is_placeholder(stmt: ast.stmt) -> bool:
    return isinstance(stmt, ast.Raise) and "NotImplementedError" in ast.dump(stmt)


def _reference_functions(name: str, source: ChapterSource) -> dict[str, tuple[ast.AST, list[str]]]:
    """Qualified name -> (parsed function, the lines of the text it was parsed from): the functions
    and methods of the reference, then those of the module it lives in (helpers defined beside it)."""
    text = reference_source(name, source)
    found: dict[str, Any] = {qual: (fn, text.splitlines()) for qual, fn in _functions(ast.parse(text)).items()}
    try:
        import inspect

        import solutions

        obj = getattr(solutions, name, None)
        module = inspect.getmodule(obj) if obj is not None else None
        if module is not None:
            module_text = inspect.getsource(module)
            for qual, fn in _functions(ast.parse(module_text)).items():
                found.setdefault(qual, (fn, module_text.splitlines()))
    except (OSError, TypeError):
        pass
    return found


def reference_body(fn: ast.FunctionDef | ast.AsyncFunctionDef, lines: list[str], given: list[ast.stmt]) -> str:
    """The source of ``fn``'s body (no docstring), dedented, without the statements the stub
    already has (``given``, e.g. ``super().__init__()``), comments between statements kept."""
    body = _body_statements(fn)
    given_dumps = [ast.dump(s) for s in given]
    keep: list[ast.stmt] = []
    for stmt in body:
        dump = ast.dump(stmt)
        if dump in given_dumps:
            given_dumps.remove(dump)
        else:
            keep.append(stmt)
    if not keep:
        return "pass"
    first = keep[0].lineno
    position = fn.body.index(keep[0])
    floor = fn.body[position - 1].end_lineno if position else fn.lineno  # nothing above this line
    while first - 1 > floor and lines[first - 2].strip().startswith("#"):  # its comments come with it
        first -= 1
    dropped = {n for stmt in body if stmt not in keep for n in range(stmt.lineno, stmt.end_lineno + 1)}
    chosen = [lines[n - 1] for n in range(first, fn.end_lineno + 1) if n not in dropped]
    return textwrap.dedent("\n".join(chosen)).strip("\n")


def solution_code(stub: str, name: str, source: ChapterSource) -> str:
    """The exercise cell of the instructor's notebook: ``stub`` with every placeholder replaced by a
    solution region holding the reference body of the function or method the placeholder sits in."""
    lines = stub.split("\n")
    placeholder = PLACEHOLDER.split("\n")
    try:
        tree = ast.parse(stub)
    except SyntaxError as error:
        raise CourseError(f"the stub of {name} is not valid Python: {error}") from error
    stub_functions = _functions(tree)
    reference = _reference_functions(name, source)
    out: list[str] = []
    i = 0
    while i < len(lines):
        if lines[i].strip() == placeholder[0] and i + 1 < len(lines) and lines[i + 1].strip() == placeholder[1]:
            indent = re.match(r"\s*", lines[i]).group(0)
            raise_line = i + 2  # 1-based line of `raise NotImplementedError()`
            owners = [q for q, fn in stub_functions.items() if fn.lineno <= raise_line <= fn.end_lineno]
            if not owners:
                raise CourseError(f"the placeholder on line {i + 1} of {name}'s stub is not inside a function")
            owner = max(owners, key=lambda q: stub_functions[q].lineno)  # the innermost
            candidates = [owner, owner.split(".", 1)[-1]] if "." in owner else [owner]
            match = next((reference[q] for q in candidates if q in reference), None)
            if match is None:
                raise CourseError(
                    f"{name}: the stub has a placeholder in `{owner}`, but the reference (solutions.{name} "
                    f"or its '@@ solution' block) has no function or method `{owner}`. Use the reference's "
                    "names in the stub (FORMAT.md)."
                )
            given = [s for s in _body_statements(stub_functions[owner]) if not _is_placeholder(s)]
            body = reference_body(match[0], match[1], given)
            out.append(indent + BEGIN_SOLUTION)
            out.extend((indent + line) if line.strip() else "" for line in body.split("\n"))
            out.append(indent + END_SOLUTION)
            i += 2
        else:
            out.append(lines[i])
            i += 1
    return "\n".join(out)


# --------------------------------------------------------------------------------------------------
# The instructor's ("source") notebook
# --------------------------------------------------------------------------------------------------
def _nbgrader(
    grade_id: str, *, solution: bool = False, grade: bool = False, locked: bool = False, points: float | None = None
) -> dict:
    meta = {
        "grade": grade,
        "grade_id": grade_id,
        "locked": locked,
        "schema_version": SCHEMA_VERSION,
        "solution": solution,
        "task": False,
    }
    if grade:
        meta["points"] = points
    return meta


def grade_cell_id(name: str) -> str:
    """The nbgrader ``grade_id`` of an exercise's autograded test cell (a column of the grades)."""
    return f"test_{name}"


SOLUTIONS_OFF = (
    'import os\n\nos.environ["WORKBOOK_SOLUTIONS"] = "off"  # this course releases the chapter without solution()'
)


def source_notebook(
    stem_or_number: str | int, points: float = DEFAULT_POINTS, solutions: bool = True
) -> nbformat.NotebookNode:
    """The nbgrader source notebook of a chapter: the learner notebook plus solution regions,
    hidden tests and nbgrader metadata. Every other cell keeps its type and source, but for
    ``solutions=False``: the setup cell that imports the workbook's helpers turns solution() off."""
    source = load_source(stem_or_number)
    nb = make_notebook(source, "learner")
    earlier = earlier_work_cell(source) if source.uses else None
    for cell in nb.cells:
        info = cell.metadata.get("workbook", {})
        role, name = info.get("role"), info.get("exercise")
        if role == "exercise":
            cell.source = solution_code(cell.source, name, source)
            cell.metadata["nbgrader"] = _nbgrader(name, solution=True)
        elif role == "check":
            cell.source = cell.source + "\n" + hidden_test_code(name)
            cell.metadata["nbgrader"] = _nbgrader(grade_cell_id(name), grade=True, locked=True, points=points)
        elif role == "hint" or (role == "setup" and cell.source == earlier):
            continue  # the learner edits these (uncomments a hint, sets use_my_work)
        else:  # the text, the setup, the chapter's demos and figures
            imports_helpers = "from workbook import" in cell.source and "solution" in cell.source
            if not solutions and role == "setup" and imports_helpers:
                cell.source = cell.source + "\n" + SOLUTIONS_OFF
            cell.metadata["nbgrader"] = _nbgrader(cell.id.replace("-", "_"), locked=True)
    nbformat.validate(nb)
    return nb


def config_text(timeout: int = DEFAULT_TIMEOUT) -> str:
    """The course's ``nbgrader_config.py``."""
    return f'''\
"""nbgrader configuration of the transformer-workbook course (written by `workbook course`)."""
import os

c = get_config()  # noqa: F821 - provided by nbgrader

c.CourseDirectory.course_id = "{COURSE_ID}"

# Grading runs the checker, which would note progress in the teacher's own ~/.transformer-workbook:
# keep that in a folder of the course instead.
HERE = os.path.dirname(os.path.abspath(__file__))
os.environ["WORKBOOK_HOME"] = os.path.join(HERE, ".workbook-grading")

# Each submission runs in the course's own kernel, "{KERNEL_NAME}" (.workbook/kernels/): the usual
# IPython kernel inside a bubblewrap sandbox that does not see this folder (gradebook, config,
# other submissions, solutions) and whose processes all end with it (workbook.sandbox_kernel).
os.environ["{COURSE_ENV}"] = HERE
KERNELS = os.path.join(HERE, ".workbook")
os.environ["JUPYTER_PATH"] = os.pathsep.join(p for p in (KERNELS, os.environ.get("JUPYTER_PATH")) if p)
c.Execute.kernel_name = "{KERNEL_NAME}"

# A submission that hangs is cut off: each cell gets this many seconds, then the kernel is
# interrupted, the cell is marked with a CellTimeoutError, and grading goes on with the next cell.
c.Execute.timeout = {int(timeout)}
c.Execute.interrupt_on_timeout = True

# The grade of each test cell comes from the judge (workbook.nbgrader_ext.JudgedExecute): after the
# kernel has run the notebook, it runs the exercise cells again in a sandboxed worker that cannot see
# the reference, and grades them from this process, which never runs a student's code.
c.Autograde.autograde_preprocessors = [
    "workbook.nbgrader_ext.JudgedExecute",
    "nbgrader.preprocessors.IgnorePattern",
    "nbconvert.preprocessors.ClearMetadataPreprocessor",
    "nbgrader.preprocessors.LimitOutput",
    "nbgrader.preprocessors.SaveAutoGrades",
    "nbgrader.preprocessors.AssignLatePenalties",
    "nbgrader.preprocessors.CheckCellMetadata",
]

# A student who deleted an autograded test cell is still graded: nbgrader puts the cell back.
c.OverwriteCells.add_missing_cells = True

# nbgrader saves each test cell before it removes its hidden tests from the students' copy, so every
# honest submission differed from the saved checksum ("Attribute 'checksum' ... has changed!").
# RestoreHiddenTests puts the hidden tests back into a test cell submitted exactly as released; a
# test cell the student changed still gets nbgrader's warning (workbook.nbgrader_release).
# The backup `workbook course . --repair` keeps beside a submission (*.ipynb.bak) is not copied
# into autograded/ and feedback/.
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback", "*.ipynb.bak"]

# A notebook whose nbgrader metadata was stripped (e.g. copied into a new notebook) is reported
# with a clear message naming the cells, instead of a KeyError deep inside nbgrader.
c.Autograde.sanitize_preprocessors = [
    "workbook.nbgrader_ext.CheckSubmissionMetadata",
    "nbgrader.preprocessors.ClearOutput",
    "nbgrader.preprocessors.DeduplicateIds",
    "nbgrader.preprocessors.OverwriteKernelspec",
    "workbook.nbgrader_release.RestoreHiddenTests",
    "nbgrader.preprocessors.OverwriteCells",
    "nbgrader.preprocessors.CheckCellMetadata",
]

# Feedback shows the score and the checker's messages, never the hidden tests: nbgrader's default
# feedback shows the hidden test code and the tracebacks that quote it.
c.GenerateFeedback.preprocessors = [
    "nbgrader.preprocessors.GetGrades",
    "workbook.nbgrader_ext.HideHiddenTests",
    "nbconvert.preprocessors.CSSHTMLHeaderPreprocessor",
]
'''


def kernel_spec() -> str:
    """The course kernel's ``kernel.json``: this Python, through ``workbook.sandbox_kernel``.
    Interrupts travel as messages, since the kernel runs in a process group of its own."""
    spec = {
        # Isolated (-I, the launcher's own folder first): a `workbook/` folder shipped beside a
        # submission is never imported in place of the launcher, which runs as the teacher.
        "argv": [*isolated_python("workbook.sandbox_kernel", _package_root()), "-f", "{connection_file}"],
        "display_name": "Python 3 (transformer-workbook sandbox)",
        "language": "python",
        "interrupt_mode": "message",
    }
    return json.dumps(spec, indent=1) + "\n"


def _package_root() -> str:
    """The folder the running ``workbook`` package was imported from."""
    return str(Path(__file__).resolve().parents[1])


def course_chapters() -> list[Chapter]:
    """The chapters of the course: those with a source and at least one exercise. A chapter without
    exercises (12, the training run) has nothing to autograde, and autograding would only re-run its
    training for minutes, so it is left out; students get it from chapters/ like everything else."""
    return [ch for ch in available_chapters() if ch.exercises]


def source_path(course_dir: Path, stem: str) -> Path:
    return Path(course_dir) / "source" / stem / f"{stem}.ipynb"


def write_course(
    course_dir: Path,
    stems: list[str] | None = None,
    timeout: int = DEFAULT_TIMEOUT,
    points: float = DEFAULT_POINTS,
    solutions: bool = True,
) -> list[Path]:
    """Write ``nbgrader_config.py`` and the source notebook of every chapter with a source (or of
    ``stems``). Returns the written paths. Existing gradebooks and submissions are left alone; a
    changed ``nbgrader_config.py`` is first copied to ``nbgrader_config.py.bak``."""
    course_dir = Path(course_dir)
    course_dir.mkdir(parents=True, exist_ok=True)
    chapters: list[Chapter] = course_chapters()
    if stems:
        from workbook.chapters import chapter

        chapters = [chapter(s) for s in stems]
        ungraded = [ch.stem for ch in chapters if not ch.exercises]
        if ungraded:
            raise CourseError(
                f"{', '.join(ungraded)} has no exercises, so nothing to grade: it is not part of "
                "the course (hand the notebook out as it is)."
            )
    written = []
    config = course_dir / "nbgrader_config.py"
    text = config_text(timeout)
    if config.exists() and config.read_text(encoding="utf-8") != text:
        config.with_name(config.name + ".bak").write_bytes(config.read_bytes())  # the teacher's edits
    atomic_write(config, text)
    written.append(config)
    written.append(atomic_write(course_dir / ".workbook" / "kernels" / KERNEL_NAME / "kernel.json", kernel_spec()))
    for info in chapters:
        target = source_path(course_dir, info.stem)
        atomic_write(target, render(source_notebook(info.stem, points, solutions)))
        written.append(target)
    return written


# --------------------------------------------------------------------------------------------------
# Submissions whose nbgrader metadata is gone
# --------------------------------------------------------------------------------------------------
@dataclass
class MetadataReport:
    """What a submitted notebook lacks of the nbgrader metadata its source notebook had."""

    path: Path
    missing: list[str]  # grade_ids of graded/solution cells found in the submission without metadata
    absent: list[str]  # grade_ids of graded/solution cells not found at all (deleted cells)

    @property
    def ok(self) -> bool:
        return not self.missing

    def message(self) -> str:
        if self.ok:
            return f"{self.path}: nbgrader metadata intact."
        return (
            f"{self.path}: this notebook has lost the nbgrader metadata of {len(self.missing)} cell(s) "
            f"({', '.join(self.missing)}), so nbgrader cannot tell the exercise and test cells apart "
            "(this happens when the cells were copied into a new notebook, or an editor stripped the "
            "metadata). Run `workbook course COURSE_DIR --repair` to restore it from the source "
            "notebook (a backup of the submission is kept), then autograde again."
        )


def _graded_ids(nb: nbformat.NotebookNode) -> dict[str, str]:
    """cell id -> grade_id for the solution and test cells of a source notebook."""
    out = {}
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("solution") or meta.get("grade"):
            out[cell.get("id", "")] = meta["grade_id"]
    return out


def inspect_submission(path: Path, source_nb: nbformat.NotebookNode) -> MetadataReport:
    """Compare a submission with its source notebook: which graded cells lost their metadata?"""
    nb = nbformat.read(str(path), as_version=4)
    graded = _graded_ids(source_nb)
    present = {c.metadata.get("nbgrader", {}).get("grade_id") for c in nb.cells}
    by_id = {c.get("id"): c for c in nb.cells}
    missing, absent = [], []
    for cell_id, grade_id in graded.items():
        if grade_id in present:
            continue
        (missing if cell_id in by_id else absent).append(grade_id)
    if not any(c.metadata.get("nbgrader") for c in nb.cells) and not missing:
        missing = list(graded.values())  # no ids to match by either: every graded cell is unmarked
    return MetadataReport(Path(path), missing, absent)


def repair_submission(path: Path, source_nb: nbformat.NotebookNode) -> MetadataReport:
    """Put back the nbgrader metadata of every cell whose id matches a cell of the source notebook
    (Jupyter keeps cell ids). Writes a backup ``<name>.ipynb.bak`` first. Returns the report after."""
    path = Path(path)
    before = inspect_submission(path, source_nb)
    if before.ok:
        return before
    nb = nbformat.read(str(path), as_version=4)
    source_meta = {c.get("id"): c.metadata.get("nbgrader") for c in source_nb.cells if c.metadata.get("nbgrader")}
    for cell in nb.cells:
        meta = source_meta.get(cell.get("id"))
        if meta is not None and "nbgrader" not in cell.metadata:
            cell.metadata["nbgrader"] = json.loads(json.dumps(meta))
    backup = path.with_name(path.name + ".bak")
    backup.write_bytes(path.read_bytes())
    nbformat.write(nb, str(path))
    return inspect_submission(path, source_nb)


def submissions(course_dir: Path) -> list[tuple[str, str, Path]]:
    """(student, assignment, notebook) for every notebook under ``course_dir/submitted``."""
    found = []
    for nb_path in sorted(Path(course_dir).glob("submitted/*/*/*.ipynb")):
        found.append((nb_path.parent.parent.name, nb_path.parent.name, nb_path))
    return found


def read_source_notebook(course_dir: Path, assignment: str, notebook: str) -> nbformat.NotebookNode | None:
    path = Path(course_dir) / "source" / assignment / f"{notebook}.ipynb"
    return nbformat.read(str(path), as_version=4) if path.exists() else None
