"""The classroom (issue 5): an nbgrader course built from the chapter sources, graded with real nbgrader.

Fast tests check the course files and the solution/hidden regions in-process (with nbgrader's own
preprocessors and the checker); the end-to-end tests run the nbgrader command line a teacher runs:
generate_assignment -> autograde -> generate_feedback -> export, and read the SQLite gradebook.
"""

from __future__ import annotations

import copy
import csv
import hashlib
import html
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from conftest import needs_sandbox, processes_with

from workbook.chapters import chapter
from workbook.cli import main as workbook
from workbook.course import (
    BEGIN_HIDDEN,
    END_HIDDEN,
    assert_passes,
    grade_cell_id,
    source_notebook,
)
from workbook.notebooks import CHAPTERS_DIR, available_chapters, learner_notebook_text, load_source, make_notebook

# The chapters of the course: with a source and exercises (chapter 12, the training run, has none).
AVAILABLE = [ch.stem for ch in available_chapters() if ch.exercises]

# One known bug per chapter: (exercise, text of the reference, what the buggy student wrote).
BUGS = {
    "00_introduction": ("softmax", "shifted = x - x.amax(dim=dim, keepdim=True)", "shifted = x"),
    "03_attention": ("scaled_dot_product_attention", " / math.sqrt(d_k)", ""),
    "06_layer_norm": ("LayerNorm", "correction=0", "correction=1"),
    "07_encoder": (
        "Encoder",
        "self.dropout(self.positional_encoding(self.embedding(src)))",
        "self.dropout(self.embedding(src))",
    ),
    "10_training": ("LabelSmoothingLoss", "return loss[keep].mean()", "return loss.mean()"),
}
# The end-to-end matrix: at least three chapters, and the two-exercise ones when they exist.
# The whole matrix of submissions for five chapters (about a minute each); three of them (a function,
# a module, a composite of modules) in the default suite, all five with -m slow.
# Each chapter's end-to-end run takes about 2.5 minutes on CI's two cores; the default run keeps a
# chapter of functions (03) and one of composed classes (07), the others run with -m slow.
E2E_CHAPTERS = [
    s if s in ("03_attention", "07_encoder") else pytest.param(s, marks=pytest.mark.slow)
    for s in ("00_introduction", "03_attention", "06_layer_norm", "07_encoder", "10_training")
    if s in AVAILABLE
]


# --------------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------------
def nbgrader(course: Path, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    """Run the nbgrader command line in the course folder, as a teacher does."""
    return subprocess.run(
        [sys.executable, "-m", "nbgrader", *args], cwd=course, capture_output=True, text=True, timeout=timeout
    )


def without_solution_markers(text: str) -> str:
    """An exercise cell of the source notebook as a student who solved it would have it."""
    return "\n".join(
        line for line in text.split("\n") if "### BEGIN SOLUTION" not in line and "### END SOLUTION" not in line
    )


def hidden_lines(nb: nbformat.NotebookNode) -> list[str]:
    """Every non-empty line of every hidden test region of a source notebook, delimiters included."""
    out = []
    for cell in nb.cells:
        inside = False
        for line in cell.source.split("\n"):
            if BEGIN_HIDDEN in line:
                inside = True
            if inside and line.strip():
                out.append(line.strip())
            if END_HIDDEN in line:
                inside = False
    return out


def cell_of(nb: nbformat.NotebookNode, grade_id: str) -> nbformat.NotebookNode:
    return next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)


def solved(release: nbformat.NotebookNode, source: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The release notebook with every exercise cell filled in with the reference (by cell id)."""
    nb = copy.deepcopy(release)
    by_id = {c.id: c for c in source.cells}
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("solution"):
            cell.source = without_solution_markers(by_id[cell.id].source)
    return nb


def with_bug(nb: nbformat.NotebookNode, name: str, old: str, new: str) -> nbformat.NotebookNode:
    nb = copy.deepcopy(nb)
    cell = cell_of(nb, name)
    assert old in cell.source, f"the reference of {name} changed: update BUGS in this test"
    cell.source = cell.source.replace(old, new)
    return nb


def hanging(nb: nbformat.NotebookNode, name: str) -> nbformat.NotebookNode:
    """A student whose exercise cell never finishes (a debugging loop left at the top)."""
    nb = copy.deepcopy(nb)
    cell = cell_of(nb, name)
    cell.source = "while True:  # wait for it...\n    pass\n\n" + cell.source
    return nb


def without_test_cell(nb: nbformat.NotebookNode, name: str) -> nbformat.NotebookNode:
    nb = copy.deepcopy(nb)
    nb.cells = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") != grade_cell_id(name)]
    return nb


def stripped(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        cell.metadata.pop("nbgrader", None)
    return nb


def submit(course: Path, student: str, stem: str, nb: nbformat.NotebookNode) -> Path:
    path = course / "submitted" / student / stem / f"{stem}.ipynb"
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(path))
    return path


def scores(course: Path, stem: str, student: str) -> dict[str, tuple[float, float]]:
    """grade_id -> (score, max_score) from the SQLite gradebook."""
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        notebook = gradebook.find_submission_notebook(stem, stem, student)
        return {g.name: (g.score, g.max_score) for g in notebook.grades}


def page_text(path: Path) -> str:
    """The visible text of an HTML page (tags removed, entities decoded)."""
    raw = path.read_text(encoding="utf-8")
    raw = re.sub(r"<(script|style)\b.*?</\1>", " ", raw, flags=re.S)
    return html.unescape(re.sub(r"<[^>]+>", "", raw))


def assert_no_hidden_code(page: Path, source: nbformat.NotebookNode) -> None:
    raw, text = page.read_text(encoding="utf-8"), page_text(page)
    for line in hidden_lines(source):
        assert line not in text and line not in raw, f"{page.name} shows hidden test code: {line!r}"
    for word in ("HIDDEN TESTS", "assert_passes", "workbook/course.py", "workbook.course"):
        assert word not in text, f"{page.name} shows {word!r}"  # (a student's own traceback may show)


def released(course: Path, stem: str) -> tuple[nbformat.NotebookNode, nbformat.NotebookNode]:
    """``nbgrader generate_assignment``, then (what the students get, the same with every exercise solved)."""
    assert nbgrader(course, "generate_assignment", stem).returncode == 0
    release = nbformat.read(str(course / "release" / stem / f"{stem}.ipynb"), as_version=4)
    source = nbformat.read(str(course / "source" / stem / f"{stem}.ipynb"), as_version=4)
    return release, solved(release, source)


def new_course(tmp_path: Path, stems: list[str], timeout: int = 120) -> Path:
    course = tmp_path / "course"
    assert workbook(["course", str(course), "--chapters", *stems, "--timeout", str(timeout)]) == 0
    return course


# --------------------------------------------------------------------------------------------------
# Fast: the course files
# --------------------------------------------------------------------------------------------------
def test_workbook_course_writes_config_and_every_chapter(tmp_path, capsys):
    course = tmp_path / "course"
    assert workbook(["course", str(course), "--timeout", "45", "--points", "2"]) == 0
    config = (course / "nbgrader_config.py").read_text()
    assert "c.Execute.timeout = 45" in config
    assert "c.OverwriteCells.add_missing_cells = True" in config
    assert "workbook.nbgrader_ext.HideHiddenTests" in config
    written = sorted(p.parent.name for p in (course / "source").glob("*/*.ipynb"))
    assert written == AVAILABLE
    for stem in AVAILABLE:
        nb = nbformat.read(str(course / "source" / stem / f"{stem}.ipynb"), as_version=4)
        for name in chapter(stem).exercises:
            solution = cell_of(nb, name)
            assert solution.metadata.nbgrader["solution"] and "### BEGIN SOLUTION" in solution.source
            test = cell_of(nb, grade_cell_id(name))
            meta = test.metadata.nbgrader
            assert meta["grade"] and meta["locked"] and meta["points"] == 2
            assert test.source.startswith(f"check({name})\n{BEGIN_HIDDEN}\n")
            assert f'"{name}"' in test.source and test.source.endswith(END_HIDDEN)
    assert "Wrote" in capsys.readouterr().out
    # Writing it again with another timeout keeps the teacher's earlier config as a backup.
    assert workbook(["course", str(course), "--chapters", "00", "--timeout", "60"]) == 0
    assert "c.Execute.timeout = 45" in (course / "nbgrader_config.py.bak").read_text()
    assert "c.Execute.timeout = 60" in (course / "nbgrader_config.py").read_text()


def test_a_chapter_without_exercises_is_left_out_of_the_course(tmp_path, capsys):
    ungraded = [ch.stem for ch in available_chapters() if not ch.exercises]
    if not ungraded:
        pytest.skip("every chapter has exercises")
    course = tmp_path / "course"
    assert workbook(["course", str(course), "--chapters", "00"]) == 0
    capsys.readouterr()
    assert workbook(["course", str(course), "--chapters", ungraded[0][:2]]) == 1
    assert "no exercises, so nothing to grade" in capsys.readouterr().err
    assert not (course / "source" / ungraded[0]).exists()


@pytest.mark.parametrize("stem", AVAILABLE)
def test_nbgrader_turns_the_source_back_into_the_chapter(stem):
    """nbgrader's own ClearSolutions and ClearHiddenTests give the learner notebook, cell for cell."""
    from nbgrader.preprocessors import ClearHiddenTests, ClearSolutions

    nb = source_notebook(stem)
    resources: dict = {}
    nb, resources = ClearSolutions().preprocess(nb, resources)
    nb, resources = ClearHiddenTests().preprocess(nb, resources)
    learner = make_notebook(load_source(stem), "learner")
    assert [(c.cell_type, c.source) for c in nb.cells] == [(c.cell_type, c.source) for c in learner.cells]
    committed = CHAPTERS_DIR / f"{stem}.ipynb"
    if committed.exists() and committed.read_text(encoding="utf-8") == learner_notebook_text(stem):
        on_disk = nbformat.read(str(committed), as_version=4)
        assert [(c.cell_type, c.source) for c in nb.cells] == [(c.cell_type, c.source) for c in on_disk.cells]


@pytest.mark.parametrize("stem", AVAILABLE)
def test_solution_regions_pass_the_hidden_tests(stem):
    """Each solution region is a correct answer: the hidden test of every exercise passes on the
    source notebook (setup and exercise cells run in-process, as the kernel would)."""
    nb = source_notebook(stem)
    namespace: dict = {"__name__": "__main__"}
    for cell in nb.cells:
        role = cell.metadata["workbook"]["role"]
        if role in ("setup", "exercise"):
            exec(compile(cell.source, f"<{stem} cell {cell.id}>", "exec"), namespace)
    for name in chapter(stem).exercises:
        assert assert_passes(name, namespace).passed


@pytest.mark.parametrize("stem", [s for s in BUGS if s in AVAILABLE])
def test_the_known_bugs_fail_with_the_checkers_message(stem):
    name, old, new = BUGS[stem]
    nb = source_notebook(stem)
    namespace: dict = {"__name__": "__main__"}
    for cell in nb.cells:
        role = cell.metadata["workbook"]["role"]
        code = cell.source.replace(old, new) if cell.metadata["workbook"]["exercise"] == name else cell.source
        if role in ("setup", "exercise"):
            exec(compile(code, f"<{stem} cell {cell.id}>", "exec"), namespace)
    with pytest.raises(AssertionError, match=rf"^{name}: failed\.\n"):
        assert_passes(name, namespace)
    for other in chapter(stem).exercises:
        if other != name:
            assert assert_passes(other, namespace).passed


def test_a_stub_method_the_reference_lacks_is_a_clear_error():
    from workbook.course import CourseError, solution_code

    source = load_source("00")
    stub = source.blocks[[b.kind for b in source.blocks].index("exercise")].text
    stub += "\n\n\ndef helper():\n    # YOUR CODE HERE\n    raise NotImplementedError()"
    with pytest.raises(CourseError, match="no function or method `helper`"):
        solution_code(stub, "softmax", source)


def test_assert_passes_on_a_missing_name_says_not_attempted():
    with pytest.raises(AssertionError, match="softmax: not attempted"):
        assert_passes("softmax", {})


def test_stripped_metadata_is_reported_then_repaired(tmp_path, capsys):
    course = new_course(tmp_path, ["03"])
    source = nbformat.read(str(course / "source/03_attention/03_attention.ipynb"), as_version=4)
    intact = submit(course, "ann", "03_attention", source)
    broken = submit(course, "ben", "03_attention", stripped(source))
    assert workbook(["course", str(course), "--check"]) == 1
    out = capsys.readouterr().out
    assert "lost the nbgrader metadata" in out and str(broken) in out and "--repair" in out
    assert workbook(["course", str(course), "--repair"]) == 0
    assert broken.with_name(broken.name + ".bak").exists() and not intact.with_name(intact.name + ".bak").exists()
    repaired = nbformat.read(str(broken), as_version=4)
    assert [c.metadata.get("nbgrader") for c in repaired.cells] == [c.metadata.get("nbgrader") for c in source.cells]
    assert workbook(["course", str(course), "--check"]) == 0

    # Copied into a brand-new notebook: new cell ids, nothing to match by; still a message, no crash.
    fresh = stripped(source)
    for i, cell in enumerate(fresh.cells):
        cell.id = f"new-{i}"
    submit(course, "cat", "03_attention", fresh)
    capsys.readouterr()
    assert workbook(["course", str(course), "--repair"]) == 1
    assert "lost the nbgrader metadata" in capsys.readouterr().out


def test_feedback_preprocessor_hides_hidden_tests_and_their_tracebacks():
    """HideHiddenTests on a graded test cell as nbgrader leaves it after a failed hidden test."""
    from workbook.nbgrader_ext import HideHiddenTests

    nb = source_notebook("03")
    cell = cell_of(nb, grade_cell_id("scaled_dot_product_attention"))
    hidden = hidden_lines(nb)
    cell.outputs = [
        nbformat.v4.new_output(
            "error",
            ename="AssertionError",
            evalue="scaled_dot_product_attention: failed.\nwrong values",
            traceback=["Traceback (most recent call last)", f"----> 3 {hidden[2]}", "AssertionError: ..."],
        )
    ]
    nb, _ = HideHiddenTests().preprocess(nb, {})
    cell = cell_of(nb, grade_cell_id("scaled_dot_product_attention"))
    assert cell.source == "check(scaled_dot_product_attention)"
    assert cell.outputs[0].traceback == ["AssertionError: scaled_dot_product_attention: failed.\nwrong values"]
    assert not any(line in c.source for c in nb.cells for line in hidden)


# --------------------------------------------------------------------------------------------------
# End to end with the nbgrader command line
# --------------------------------------------------------------------------------------------------
def test_course_end_to_end_chapter_00(tmp_path):
    """generate -> autograde (a correct and a buggy student) -> gradebook -> feedback -> CSV."""
    stem = "00_introduction"
    course = new_course(tmp_path, [stem])
    done = nbgrader(course, "generate_assignment", stem)
    assert done.returncode == 0, done.stderr
    release = nbformat.read(str(course / "release" / stem / f"{stem}.ipynb"), as_version=4)
    chapter_nb = nbformat.read(str(CHAPTERS_DIR / f"{stem}.ipynb"), as_version=4)
    assert [(c.cell_type, c.source) for c in release.cells] == [(c.cell_type, c.source) for c in chapter_nb.cells]

    source = nbformat.read(str(course / "source" / stem / f"{stem}.ipynb"), as_version=4)
    name, old, new = BUGS[stem]
    submit(course, "alice", stem, solved(release, source))
    submit(course, "bob", stem, with_bug(solved(release, source), name, old, new))
    done = nbgrader(course, "autograde", stem)
    assert done.returncode == 0, done.stderr
    assert scores(course, stem, "alice") == {"test_softmax": (1.0, 1.0)}
    assert scores(course, stem, "bob") == {"test_softmax": (0.0, 1.0)}
    # grading never writes the teacher's own progress (the kernel's goes to the course's folder, or,
    # sandboxed, to the kernel's private scratch folder)
    assert not (Path(os.environ["WORKBOOK_HOME"]) / "progress.json").exists()

    done = nbgrader(course, "generate_feedback", stem)
    assert done.returncode == 0, done.stderr
    page = course / "feedback" / "bob" / stem / f"{stem}.html"
    text = page_text(page)
    assert re.search(r"Score:\s*0(\.0)?\s*/\s*1(\.0)?", text), "the feedback shows no score"
    assert "softmax: failed." in text and "Likely cause: Your softmax overflows" in text  # the diagnosis
    assert_no_hidden_code(page, source)

    done = nbgrader(course, "export", "--to", str(tmp_path / "grades.csv"))
    assert done.returncode == 0, done.stderr
    rows = {r["student_id"]: r for r in csv.DictReader(open(tmp_path / "grades.csv"))}
    assert float(rows["alice"]["score"]) == 1.0 and float(rows["bob"]["score"]) == 0.0


@pytest.mark.parametrize("stem", E2E_CHAPTERS)
def test_course_grades_every_kind_of_submission(tmp_path, stem):
    """For one chapter: correct, one known bug, untouched, a deleted test cell, a hang, stripped
    metadata; all graded in one `nbgrader autograde`, scores read from the gradebook."""
    timeout = 30
    course = new_course(tmp_path, [stem], timeout=timeout)
    assert nbgrader(course, "generate_assignment", stem).returncode == 0
    release = nbformat.read(str(course / "release" / stem / f"{stem}.ipynb"), as_version=4)
    committed = CHAPTERS_DIR / f"{stem}.ipynb"
    if committed.exists():
        on_disk = nbformat.read(str(committed), as_version=4)
        assert [(c.cell_type, c.source) for c in release.cells] == [(c.cell_type, c.source) for c in on_disk.cells]
    source = nbformat.read(str(course / "source" / stem / f"{stem}.ipynb"), as_version=4)
    exercises = chapter(stem).exercises
    buggy, old, new = BUGS[stem]
    last = exercises[-1]
    good = solved(release, source)
    submit(course, "correct", stem, good)
    submit(course, "buggy", stem, with_bug(good, buggy, old, new))
    submit(course, "untouched", stem, release)
    submit(course, "deleter", stem, without_test_cell(good, exercises[0]))
    submit(course, "hanger", stem, hanging(good, last))
    submit(course, "stripper", stem, stripped(good))

    done = nbgrader(course, "autograde", stem)
    assert done.returncode != 0  # the stripped one is reported ...
    assert "lost the nbgrader metadata" in done.stderr and "workbook course . --repair" in done.stderr
    full = {grade_cell_id(n): (1.0, 1.0) for n in exercises}
    assert scores(course, stem, "correct") == full  # ... and the others are graded all the same
    assert scores(course, stem, "buggy") == {**full, grade_cell_id(buggy): (0.0, 1.0)}
    assert scores(course, stem, "untouched") == {k: (0.0, 1.0) for k in full}
    assert scores(course, stem, "deleter") == full
    assert scores(course, stem, "hanger") == {**full, grade_cell_id(last): (0.0, 1.0)}
    graded = nbformat.read(str(course / "autograded/hanger" / stem / f"{stem}.ipynb"), as_version=4)
    assert any(o.get("ename") == "CellTimeoutError" for o in cell_of(graded, last).outputs)
    restored = nbformat.read(str(course / "autograded/deleter" / stem / f"{stem}.ipynb"), as_version=4)
    assert "was missing from the submission" in cell_of(restored, grade_cell_id(exercises[0])).source

    assert nbgrader(course, "generate_feedback", stem).returncode == 0
    for student in ("correct", "buggy", "untouched", "deleter", "hanger"):
        assert_no_hidden_code(course / "feedback" / student / stem / f"{stem}.html", source)
    assert f"{buggy}: failed." in page_text(course / "feedback" / "buggy" / stem / f"{stem}.html")

    assert nbgrader(course, "export", "--to", str(tmp_path / "grades.csv")).returncode == 0
    rows = {r["student_id"]: float(r["score"]) for r in csv.DictReader(open(tmp_path / "grades.csv"))}
    n = len(exercises)
    assert rows["correct"] == n and rows["buggy"] == n - 1 and rows["untouched"] == 0


# --------------------------------------------------------------------------------------------------
# The teacher's report
# --------------------------------------------------------------------------------------------------
def test_the_report_counts_the_class_mistakes_and_names_what_was_not_graded(tmp_path, capsys):
    """A small class through nbgrader's real commands, then `workbook course --report`: the counts of
    each diagnosis, the blank and the crashed submissions, all in one HTML file with its chart."""
    stem = "05_feed_forward"
    course = new_course(tmp_path, [stem], timeout=60)
    release, good = released(course, stem)
    relu = "self.W_2(torch.relu(self.W_1(x)))"
    crashed = copy.deepcopy(good)
    cell_of(crashed, "FeedForwardNetwork").source += "\nimport os\nos._exit(0)\n"
    own = copy.deepcopy(good)  # a correct FeedForwardNetwork written independently of the reference
    cell_of(own, "FeedForwardNetwork").source = (
        "class FeedForwardNetwork(nn.Module):\n"
        "    def __init__(self, d_model, d_ff):\n"
        "        super().__init__()\n"
        "        self.W_1, self.W_2 = nn.Linear(d_model, d_ff), nn.Linear(d_ff, d_model)\n\n"
        "    def forward(self, x):\n"
        "        hidden = F.relu(self.W_1(x))\n"
        "        return self.W_2(hidden)\n"
    )
    class_ = {
        "ada": own,
        "ben": release,  # handed back untouched
        "cat": with_bug(good, "FeedForwardNetwork", relu, "self.W_2(self.W_1(x))"),
        "dan": with_bug(good, "FeedForwardNetwork", relu, "self.W_2(self.W_1(x))"),
        "eve": with_bug(good, "FeedForwardNetwork", relu, "self.W_2(torch.nn.functional.gelu(self.W_1(x)))"),
        "fay": crashed,
        "gus": copy.deepcopy(good),  # hands in the reference
    }
    cell_of(class_["gus"], "FeedForwardNetwork").source = "from solutions import FeedForwardNetwork"
    for student, nb in class_.items():
        submit(course, student, stem, nb)
    done = nbgrader(course, "autograde", stem)
    assert done.returncode == 0, done.stderr  # every submission graded, the crashed one included ...
    named = [line for line in done.stderr.splitlines() if f"submitted/fay/{stem}" in line]
    assert any("kernel stopped" in line for line in named)  # ... and named, with the reason
    assert any("not graded to the end" in line and "ended the grading process" in line for line in named)

    assert workbook(["course", str(course), "--report"]) == 0
    out = capsys.readouterr().out
    assert "NOT GRADED  fay / FeedForwardNetwork" in out
    page = course / "reports" / "report.html"
    text = page.read_text(encoding="utf-8")
    data = json.loads(re.search(r"id='report-data'>(.*?)</script>", text, re.S).group(1))
    entries = {e["student"]: e for e in data[0]["entries"]}
    assert entries["ada"]["state"] == "passed" and entries["ada"]["score"] == 1.0
    assert entries["ben"]["state"] == "not attempted" and entries["ben"]["score"] == 0.0
    assert entries["cat"]["diagnoses"] == entries["dan"]["diagnoses"] == ["ffn_missing_relu"]
    assert entries["eve"]["diagnoses"] == ["ffn_wrong_activation"]
    assert entries["fay"]["state"] == "not graded" and "ended the grading process" in entries["fay"]["why"]
    # the reference is out of the judge's worker: handing it in scores 0, and the teacher is told why
    assert entries["gus"]["state"] == "failed" and entries["gus"]["score"] == 0.0
    assert entries["gus"]["flags"][0].startswith("reference copied") and "not available" in entries["gus"]["why"]
    assert not any(entries[s]["flags"] for s in ("ada", "cat", "eve"))  # own code, or the reference changed
    visible = page_text(page)
    assert "2 of 7" in visible and "ffn_missing_relu" in visible and "1 of 7" in visible
    assert "reference copied" in visible
    assert text.count("<svg") == 1 and "the most common mistakes" in visible  # the chart, inline


def _course_files(course: Path) -> dict[str, str]:
    """Every file of the course but nbgrader's own outputs (gradebook, autograded/, feedback/)."""
    outputs = ("gradebook.db", "autograded", "feedback", ".workbook-grading")
    return {
        str(p.relative_to(course)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(course.rglob("*"))
        if p.is_file() and p.relative_to(course).parts[0] not in outputs
    }


@needs_sandbox
def test_a_submission_cannot_touch_the_course_the_gradebook_or_outlive_grading(tmp_path):
    """Through nbgrader's real autograde: a submission (a wrong FeedForwardNetwork) that appends code
    to nbgrader_config.py, rewrites the hidden tests, zeroes a classmate in gradebook.db and leaves
    a detached process behind changes nothing of the course, and nothing of it runs on."""
    import uuid

    stem = "05_feed_forward"
    course = new_course(tmp_path, [stem], timeout=60)
    release, good = released(course, stem)
    marker = f"workbook-cheat-{uuid.uuid4().hex}"
    gradebook = str(course / "gradebook.db")
    cheat = with_bug(good, "FeedForwardNetwork", "self.W_2(torch.relu(self.W_1(x)))", "self.W_2(self.W_1(x))")
    cell_of(cheat, "FeedForwardNetwork").source += f"""
import os, sqlite3, subprocess, sys
for attempt in (
    lambda: open({str(course / "nbgrader_config.py")!r}, "a").write("\\nimport os; os.system('touch PWNED')\\n"),
    lambda: open({str(course / "source" / stem / f"{stem}.ipynb")!r}, "w").write("{{}}"),
    lambda: sqlite3.connect({gradebook!r}).execute("UPDATE grade SET auto_score = 0").connection.commit(),
):
    try:
        attempt()
    except Exception as error:
        print("blocked:", type(error).__name__)
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)", {marker!r}], start_new_session=True)
"""
    submit(course, "alice", stem, good)
    submit(course, "mallory", stem, cheat)
    assert nbgrader(course, "autograde", stem, "--student", "alice").returncode == 0
    before = _course_files(course)
    assert nbgrader(course, "autograde", stem, "--student", "mallory").returncode == 0
    assert scores(course, stem, "mallory") == {"test_FeedForwardNetwork": (0.0, 1.0)}
    assert scores(course, stem, "alice") == {"test_FeedForwardNetwork": (1.0, 1.0)}  # the classmate keeps hers
    assert _course_files(course) == before
    assert not list(course.rglob("PWNED"))
    autograded = nbformat.read(str(course / "autograded" / "mallory" / stem / f"{stem}.ipynb"), as_version=4)
    printed = "".join(o.get("text", "") for c in autograded.cells for o in c.get("outputs", []))
    assert printed.count("blocked:") == 3
    assert not processes_with(marker), "a process of the submission outlived autograde"
    assert nbgrader(course, "generate_assignment", stem, "--force").returncode == 0  # the config is still the teacher's


# --------------------------------------------------------------------------------------------------
# Grades a student cannot forge (issue 11): the cheats, through nbgrader's own commands
# --------------------------------------------------------------------------------------------------
NO_RELU = ("self.W_2(torch.relu(self.W_1(x)))", "self.W_2(self.W_1(x))")  # the wrong FeedForwardNetwork
# Each: one thing a student who wants the marks without the work adds to the exercise cell.
CHEATS = {
    "replaces checks.check": (
        "import checks, checks.grade\nfrom checks.core import CheckResult\n"
        "checks.check = checks.grade.check = lambda obj, exercise=None, **k: CheckResult("
        "exercise or obj.__name__, 'passed')"
    ),
    "replaces checks.core.run_spec": (
        "import checks.core, checks.grade\n"
        "checks.core.run_spec = checks.grade.run_spec = lambda spec, obj, refs, **k: checks.core.CheckResult("
        "spec.exercise, 'passed')"
    ),
    "replaces assert_passes": "import workbook.course\nworkbook.course.assert_passes = lambda *a, **k: None",
    "empties the spec's ladder": (
        "from checks.specs import SPECS\nfor _layer in SPECS['FeedForwardNetwork'].layers.values():\n    _layer.clear()"
    ),
    "makes torch.allclose true": (
        "import torch\ntorch.allclose = lambda *a, **k: True\ntorch.isclose = lambda a, b, *r, **k: a == a\n"
        "torch.equal = lambda *a, **k: True"
    ),
    "makes every result pass": "import checks.core\nchecks.core.CheckResult.passed = property(lambda self: True)",
    "swaps the grader in sys.modules": (
        "import sys, types\nfake = types.ModuleType('checks')\nfake.check = lambda *a, **k: True\n"
        "sys.modules['checks'] = sys.modules['checks.grade'] = fake"
    ),
    "empties every later cell (IPython)": "get_ipython().input_transformers_cleanup.append(lambda lines: [])",
    "hides every traceback": "get_ipython().showtraceback = lambda *a, **k: None",
    "answers the judge itself": (
        "import sys\nframe = sys._getframe()\nwhile frame is not None:\n"
        "    if 'handlers' in frame.f_locals:\n"
        "        frame.f_locals['handlers']['call'] = lambda request: {'value': {'__dict': {}}}\n"
        "    frame = frame.f_back"
    ),
    "ships a checks/ folder beside the notebook": "",  # the files: SHIPPED below
}
# The reference in disguise (right numbers, no work): the worker that grades has no reference to use.
COPIES = {
    "imports the reference": "from solutions import FeedForwardNetwork",
    "subclasses the reference": "import solutions\n\nclass FeedForwardNetwork(solutions.FeedForwardNetwork):\n    pass",
    "runs the reference's source": "import inspect, solutions\nexec(inspect.getsource(solutions.FeedForwardNetwork))",
}
SHIPPED = {
    "checks/__init__.py": "def check(*args, **kwargs):\n    return True\n",
    "checks/grade.py": "def check(*args, **kwargs):\n    return True\n",
}


def _student_name(what: str) -> str:
    return re.sub(r"[^a-z]+", "-", what.lower()).strip("-")


@needs_sandbox
def test_no_cheat_gets_a_mark(tmp_path):
    """Every cheat above on a wrong FeedForwardNetwork (no ReLU), every copy of the reference, a kernel
    that exits, a forward that never returns and a copied test cell: all score 0 after nbgrader's
    autograde and export; a correct classmate keeps full marks; no file of the course changes; no
    process of a student outlives autograde; and the three that cannot be graded normally are named
    in autograde's output and in the teacher report."""
    import uuid

    stem = "05_feed_forward"
    course = new_course(tmp_path, [stem], timeout=20)
    release, good = released(course, stem)
    wrong = with_bug(good, "FeedForwardNetwork", *NO_RELU)
    marker = f"workbook-cheat-{uuid.uuid4().hex}"
    class_: dict[str, nbformat.NotebookNode] = {"honest": good}
    for what, line in CHEATS.items():
        nb = copy.deepcopy(wrong)
        cell_of(nb, "FeedForwardNetwork").source += "\n" + line + "\n"
        class_[_student_name(what)] = nb
    for what, code in COPIES.items():
        nb = copy.deepcopy(good)
        cell_of(nb, "FeedForwardNetwork").source = code
        class_[_student_name(what)] = nb
    exits = copy.deepcopy(wrong)
    cell_of(exits, "FeedForwardNetwork").source += (
        f"\nimport subprocess, sys\nsubprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)', "
        f"{marker!r}], start_new_session=True)\nimport os\nos._exit(0)\n"
    )
    hangs = copy.deepcopy(good)  # right numbers, but a forward that never returns, whatever it is told
    cell_of(hangs, "FeedForwardNetwork").source = cell_of(hangs, "FeedForwardNetwork").source.replace(
        "return self.W_2(torch.relu(self.W_1(x)))",
        "while True:\n            try:\n                pass\n            except BaseException:\n                pass",
    )
    duplicated = copy.deepcopy(wrong)
    test = copy.deepcopy(cell_of(duplicated, grade_cell_id("FeedForwardNetwork")))
    test.source, test.id = "pass", "copied-test-cell"
    duplicated.cells.append(test)
    class_.update({"exits": exits, "hangs": hangs, "duplicates": duplicated})
    for student, nb in class_.items():
        submit(course, student, stem, nb)
    for name, text in SHIPPED.items():
        path = course / "submitted" / _student_name("ships a checks/ folder beside the notebook") / stem / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)

    assert nbgrader(course, "autograde", stem, "--student", "honest").returncode == 0
    before = _course_files(course)
    done = nbgrader(course, "autograde", stem, timeout=1800)
    assert done.returncode == 0, done.stderr
    assert _course_files(course) == before
    assert not processes_with(marker), "a process of a student outlived autograde"

    assert nbgrader(course, "export", "--to", str(tmp_path / "grades.csv")).returncode == 0
    rows = {r["student_id"]: float(r["score"]) for r in csv.DictReader(open(tmp_path / "grades.csv"))}
    assert rows.pop("honest") == 1.0
    forged = {student: score for student, score in rows.items() if score != 0.0}
    assert not forged, f"these cheats got marks: {forged}"
    assert set(rows) == set(class_) - {"honest"}

    for student, words in (("exits", "kernel stopped"), ("hangs", "timed out"), ("duplicates", "share the grade id")):
        lines = [line for line in done.stderr.splitlines() if f"submitted/{student}/{stem}" in line]
        assert any(words in line for line in lines), f"{student} is not named with {words!r}: {lines}"

    assert workbook(["course", str(course), "--report"]) == 0
    data = json.loads(
        re.search(
            r"id='report-data'>(.*?)</script>", (course / "reports" / "report.html").read_text(encoding="utf-8"), re.S
        ).group(1)
    )
    entries = {e["student"]: e for e in data[0]["entries"]}
    assert entries["exits"]["state"] == "not graded" and "ended the grading process" in entries["exits"]["why"]
    assert "timed out" in entries["hangs"]["why"]
    assert "copied test cell" in entries["duplicates"]["why"]
    for what in COPIES:
        assert entries[_student_name(what)]["flags"], f"{what}: not flagged 'reference copied'"


def test_a_course_can_be_released_without_solution(tmp_path):
    """`workbook course --no-solutions`: in the notebook a student gets, solution() says it is off and
    shows no code; hint() still works. The default course keeps it."""
    import nbclient

    stem = "05_feed_forward"
    course = tmp_path / "course"
    assert workbook(["course", str(course), "--chapters", stem, "--no-solutions"]) == 0
    assert nbgrader(course, "generate_assignment", stem).returncode == 0
    release = nbformat.read(str(course / "release" / stem / f"{stem}.ipynb"), as_version=4)
    setup = [c for c in release.cells if c.metadata.get("workbook", {}).get("role") == "setup"]
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        *copy.deepcopy(setup),
        nbformat.v4.new_code_cell("solution('FeedForwardNetwork')\nhint('FeedForwardNetwork')"),
    ]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbclient.NotebookClient(
        nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    shown = "".join(str(o.get("text", "")) + str(o.get("data", {}).get("text/plain", "")) for o in nb.cells[-1].outputs)
    assert "turned off" in shown and "def forward" not in shown and "Hint 1" in shown, shown
    assert "WORKBOOK_SOLUTIONS" not in json.dumps(source_notebook(stem))  # the default course keeps solution()
