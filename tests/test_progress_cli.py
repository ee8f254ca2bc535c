"""``workbook status / hint / solution / reset / build`` through the command line, with a temporary
WORKBOOK_HOME and a temporary chapters folder (the learner's real files are never touched)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from workbook import progress
from workbook.cli import main
from workbook.notebooks import learner_notebook_text

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "home"
    monkeypatch.setenv("WORKBOOK_HOME", str(folder))
    monkeypatch.chdir(tmp_path)
    return folder


def status_line(output: str, exercise: str) -> list[str]:
    line = next(row for row in output.splitlines() if f" {exercise} " in f" {row} ")
    return line.split()


def test_hints_come_one_after_another_and_are_counted(capsys):
    shown = []
    for _ in range(4):
        assert main(["hint", "softmax"]) == 0
        shown.append(capsys.readouterr().out)
    assert shown[0].startswith("Hint 1 of 3 for softmax")
    assert shown[1].startswith("Hint 2 of 3") and shown[2].startswith("Hint 3 of 3")
    assert shown[0] != shown[1] != shown[2]
    assert "last hint" in shown[2] and shown[3].startswith("Hint 3 of 3")  # stays at the last one
    assert main(["hint", "softmax", "--number", "1"]) == 0
    assert capsys.readouterr().out == shown[0]  # hint 1 again, on request
    assert main(["status"]) == 0
    assert status_line(capsys.readouterr().out, "softmax")[-3:] == ["attempted", "3/3", "-"]


def test_status_lists_the_chapter_without_exercises_without_counting_it(capsys):
    assert main(["status"]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("12 "))
    assert "(no exercises)" in row
    total = int(out.split(" of ")[1].split()[0])  # "0 of 22 exercises passed"
    from workbook.chapters import CHAPTERS

    assert total == sum(len(c.exercises) for c in CHAPTERS)


def test_solution_prints_the_reference_and_is_recorded(capsys):
    assert main(["solution", "MultiHeadAttention"]) == 0
    out = capsys.readouterr().out
    assert "class MultiHeadAttention(nn.Module)" in out and "def split_heads" in out
    assert main(["solution", "softmax"]) == 0  # not in `solutions`: from the chapter source
    assert "def softmax(x" in capsys.readouterr().out
    main(["status"])
    out = capsys.readouterr().out
    assert status_line(out, "MultiHeadAttention")[-1] == "viewed"
    assert status_line(out, "TokenEmbedding")[-1] == "-"


def test_unknown_exercise_is_a_clear_error(capsys):
    assert main(["hint", "MultiHeadAtention"]) == 2
    err = capsys.readouterr().err
    assert "no exercise called 'MultiHeadAtention'" in err and "MultiHeadAttention" in err


def test_status_shows_what_the_checker_recorded(capsys):
    from solutions import TokenEmbedding
    from workbook import check

    assert check(TokenEmbedding).state == "passed"
    progress.record_check("FeedForwardNetwork", "failed")
    main(["status"])
    out = capsys.readouterr().out
    assert status_line(out, "TokenEmbedding")[-3] == "passed"
    assert status_line(out, "FeedForwardNetwork")[-3] == "failed"
    assert "1 of 19 exercises passed, 1 failed" in out


def test_progress_file_is_valid_json_after_writes(home):
    progress.record_hint("LayerNorm", 2)
    progress.record_hint("LayerNorm", 1)  # looking back at hint 1 uses no new hint
    progress.record_check("LayerNorm", "passed")
    data = json.loads((home / "progress.json").read_text())
    assert data["exercises"]["LayerNorm"]["hints"] == 2 and data["exercises"]["LayerNorm"]["state"] == "passed"
    # no temporary file left behind (the lock file stays: it is what serialises two writers)
    assert sorted(p.name for p in home.iterdir()) == ["progress.json", "progress.json.lock"]
    with pytest.raises(ValueError):
        progress.record_check("LayerNorm", "great")


def test_status_after_a_corrupted_progress_file(home, capsys):
    progress.record_hint("softmax", 1)
    (home / "progress.json").write_text('{"version": 1, "exercises": {"softmax": {"hin')  # a crash mid-write elsewhere
    assert main(["status"]) == 0
    out = capsys.readouterr().out
    assert "could not be read" in out and "fresh" in out
    broken = list(home.glob("progress.json.broken-*"))
    assert len(broken) == 1 and broken[0].read_text().endswith('"hin')  # kept aside, unchanged
    assert status_line(out, "softmax")[-2] == "0/3"  # started afresh
    assert main(["hint", "softmax"]) == 0
    assert json.loads((home / "progress.json").read_text())["exercises"]["softmax"]["hints"] == 1


def test_reset_restores_the_pristine_notebook_and_keeps_the_learners_as_backup(tmp_path, capsys):
    chapters = tmp_path / "chapters"
    assert main(["reset", "03", "--chapters-dir", str(chapters)]) == 0
    target = chapters / "03_attention.ipynb"
    pristine = learner_notebook_text("03")
    assert target.read_text() == pristine

    nb = nbformat.read(target, as_version=4)
    exercise = next(c for c in nb.cells if c.metadata["workbook"]["role"] == "exercise")
    exercise.source = "def scaled_dot_product_attention(query, key, value, mask=None):\n    return 'my own attempt 42'"
    nbformat.write(nb, target)
    assert main(["reset", "scaled_dot_product_attention", "--chapters-dir", str(chapters)]) == 0
    assert target.read_text() == pristine
    backups = list((chapters / "backups").glob("03_attention-*.ipynb"))
    assert len(backups) == 1 and "my own attempt 42" in backups[0].read_text()

    nb.cells[0].source += "\nsecond attempt"
    nbformat.write(nb, target)
    assert main(["reset", "3", "--chapters-dir", str(chapters)]) == 0  # within the same second: a new backup
    backups = sorted((chapters / "backups").glob("03_attention-*.ipynb"))
    assert len(backups) == 2 and any("second attempt" in b.read_text() for b in backups)
    capsys.readouterr()
    assert main(["reset", "99", "--chapters-dir", str(chapters)]) == 2
    assert "No chapter called '99'" in capsys.readouterr().err


def test_build_check_reports_drift(tmp_path, capsys):
    out = tmp_path / "built"
    assert main(["build", "01", "--out", str(out)]) == 0
    assert main(["build", "--check", "01", "--out", str(out)]) == 0
    notebook = out / "01_embeddings.ipynb"
    notebook.write_text(notebook.read_text().replace("Token embeddings", "Token embeddings!"))
    capsys.readouterr()
    assert main(["build", "--check", "01", "--out", str(out)]) == 1
    assert "01_embeddings.ipynb" in capsys.readouterr().out
    assert main(["generate", "01", "--out", str(out)]) == 1  # an edit build did not write: kept
    assert main(["generate", "--force", "01", "--out", str(out)]) == 0
    assert main(["build", "--check", "01", "--out", str(out)]) == 0


def test_the_workbook_command_runs_as_a_program(tmp_path):
    env = {**os.environ, "WORKBOOK_HOME": str(tmp_path / "h")}
    result = subprocess.run(
        [sys.executable, "-m", "workbook.cli", "status"], capture_output=True, text=True, env=env, cwd=REPO
    )
    assert result.returncode == 0, result.stderr
    assert "MultiHeadAttention" in result.stdout and "not attempted" in result.stdout


def test_hint_and_solution_render_in_a_notebook_and_are_recorded(home, tmp_path):
    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("from workbook.learner import hint, solution"),
        nbformat.v4.new_code_cell("hint('PositionalEncoding')\nanswer = 42"),  # not the last line: still shown
        nbformat.v4.new_code_cell("solution('PositionalEncoding')"),
    ]
    NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    hint_html = nb.cells[1].outputs[0]["data"]["text/html"]
    assert "Hint 1 of 3 for PositionalEncoding" in hint_html and "<code" in hint_html  # Markdown rendered
    solution_html = nb.cells[2].outputs[0]["data"]["text/html"]
    assert "register_buffer" in solution_html and "<span" in solution_html  # highlighted
    entry = json.loads((home / "progress.json").read_text())["exercises"]["PositionalEncoding"]
    assert entry["hints"] == 1 and entry["solution"] is True


@pytest.mark.parametrize("content", [b"\xff\xfe not utf-8", b"[]", b'{"exercises": {"softmax": {"hints": "many"}}}'])
def test_every_kind_of_broken_progress_file_is_set_aside(home, capsys, content):
    home.mkdir(parents=True)
    (home / "progress.json").write_bytes(content)
    assert main(["status"]) == 0
    assert "could not be read" in capsys.readouterr().out
    assert [p.read_bytes() for p in home.glob("progress.json.broken-*")] == [content]
