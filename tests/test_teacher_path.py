"""Issue 23, the teacher's path of the README: an honest submission gets no warning from nbgrader,
a changed test cell still does, and the backup `workbook course . --repair` keeps is not handed back.

Before: nbgrader saves each test cell in the gradebook before it strips the hidden tests from the
students' copy, so every submission logged "Attribute 'checksum' for cell test_... has changed!"
(jupyter/nbgrader#1961); and the repair's `<name>.ipynb.bak` beside the submission was copied into
autograded/ and feedback/ with the student's other files.
"""

from __future__ import annotations

import copy
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from workbook.cli import main as workbook
from workbook.course import BEGIN_HIDDEN, END_HIDDEN, config_text, source_notebook
from workbook.nbgrader_release import released_source
from workbook.notebooks import reference_source

pytest.importorskip("nbgrader")

STEM = "03_attention"
NAME = "scaled_dot_product_attention"


def nbgrader(course: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "nbgrader", *args], cwd=course, capture_output=True, text=True, timeout=900
    )


def solved(release: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The released notebook as an honest student hands it in: the exercise written, the cells run."""
    nb = copy.deepcopy(release)
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("solution"):
            cell.source = reference_source(NAME)
        if cell.cell_type == "code":
            cell.execution_count = 1
            cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="ran\n")]
    return nb


def submit(course: Path, student: str, nb: nbformat.NotebookNode) -> Path:
    path = course / "submitted" / student / STEM / f"{STEM}.ipynb"
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(path))
    return path


def warnings_by_student(log: str) -> dict[str, list[str]]:
    """Autograde's WARNING lines, by the student whose submission was being processed."""
    found: dict[str, list[str]] = {}
    student = None
    for line in log.splitlines():
        match = re.search(r"(?:Sanitizing|Autograding) .*/(?:submitted|autograded)/([^/]+)/", line)
        if match:
            student = match.group(1)
        elif "WARNING" in line and student is not None:
            found.setdefault(student, []).append(line)
    return found


def test_the_released_form_is_what_generate_assignment_hands_out():
    from nbgrader.preprocessors import ClearHiddenTests

    nb = source_notebook(STEM)
    check = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade"))
    assert BEGIN_HIDDEN in check.source
    released = released_source(check.source, ClearHiddenTests())
    assert BEGIN_HIDDEN not in released and END_HIDDEN not in released and "_assert_passes" not in released
    assert released.strip() and released.strip() in check.source


def test_the_course_config_restores_hidden_tests_first_and_ignores_repair_backups():
    config = config_text()
    sanitize = config[config.index("c.Autograde.sanitize_preprocessors") :]
    assert sanitize.index("RestoreHiddenTests") < sanitize.index("nbgrader.preprocessors.OverwriteCells")
    ignore = re.search(r"c\.CourseDirectory\.ignore = (\[.*\])", config).group(1)
    assert "*.ipynb.bak" in ignore and "feedback" in ignore and ".ipynb_checkpoints" in ignore


def test_honest_submissions_get_no_warning_and_the_repair_backup_stays_behind(tmp_path, capsys):
    course = tmp_path / "course"
    assert workbook(["course", str(course), "--chapters", "03"]) == 0
    done = nbgrader(course, "generate_assignment", STEM)
    assert done.returncode == 0, done.stderr[-3000:]
    release = nbformat.read(str(course / "release" / STEM / f"{STEM}.ipynb"), as_version=4)

    submit(course, "alice", solved(release))  # honest
    changed = solved(release)  # honest work, but a line added to the locked test cell
    test_cell = next(c for c in changed.cells if c.metadata.get("nbgrader", {}).get("grade"))
    test_cell.source += "\nprint('I was here')"
    submit(course, "bob", changed)
    carol = solved(release)  # honest, but an editor stripped the nbgrader metadata: --repair
    for cell in carol.cells:
        cell.metadata.pop("nbgrader", None)
    carol_path = submit(course, "carol", carol)
    assert workbook(["course", str(course), "--repair"]) == 0
    assert carol_path.with_name(carol_path.name + ".bak").exists()

    done = nbgrader(course, "autograde", STEM)
    assert done.returncode == 0, done.stderr[-3000:]
    log = done.stdout + done.stderr
    warned = warnings_by_student(log)
    assert not [w for w in warned.get("alice", []) + warned.get("carol", []) if "has changed" in w], log[-4000:]
    assert any(f"checksum' for cell test_{NAME} has changed" in w for w in warned.get("bob", [])), log[-4000:]

    done = nbgrader(course, "generate_feedback", STEM)
    assert done.returncode == 0, done.stderr[-3000:]
    for folder in ("autograded", "feedback"):
        handed = sorted(p.name for p in (course / folder / "carol" / STEM).iterdir())
        assert handed and not [n for n in handed if n.endswith(".bak")], (folder, handed)

    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        for student in ("alice", "bob", "carol"):  # bob's cell was put back: graded like the others
            grades = gradebook.find_submission_notebook(STEM, STEM, student).grades
            assert [(g.name, g.score) for g in grades] == [(f"test_{NAME}", 1.0)], student
