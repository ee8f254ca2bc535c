"""``workbook check``: grading chapter notebooks from a terminal, through the paths a learner takes.

The tests write small chapter notebooks with nbformat (the reference pasted in with
``inspect.getsource``, an untouched stub, a corrupted file, a syntax error, a deleted exercise cell,
a hanging cell, ``sys.exit``, ``os._exit``, 1 MB of prints) and run the real command: once through a
subprocess for the whole folder, and through ``workbook.cli.main([...])`` for the rest.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

import solutions
from workbook.chapters import CHAPTERS
from workbook.cli import main

SETUP = "import math\nimport torch\nimport torch.nn as nn\nimport torch.nn.functional as F\n"
SOFTMAX = '''def softmax(x, dim=-1):
    """A learner's stable softmax."""
    shifted = x - x.max(dim=dim, keepdim=True).values
    e = shifted.exp()
    return e / e.sum(dim=dim, keepdim=True)
'''
STUB = """class PositionalEncoding(nn.Module):
    def __init__(self, d_model, max_seq_length=5000):
        super().__init__()
        # YOUR CODE HERE
        raise NotImplementedError()

    def forward(self, x):
        # YOUR CODE HERE
        raise NotImplementedError()
"""


def cell(source: str, role: str | None = None, exercise: str | None = None) -> nbformat.NotebookNode:
    """A code cell; ``role`` becomes the generator's ``metadata["workbook"]`` (absent when None)."""
    node = nbformat.v4.new_code_cell(source)
    if role is not None:
        node.metadata["workbook"] = {"role": role, "exercise": exercise}
    return node


def write(path: Path, *cells: nbformat.NotebookNode) -> None:
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_markdown_cell("# a chapter"), *cells]
    nbformat.write(notebook, str(path))


def ref(name: str) -> str:
    return inspect.getsource(getattr(solutions, name))


def snapshot(folder: Path) -> dict[str, tuple[str, int]]:
    """Content hash and mtime of every file: grading must change neither."""
    return {
        p.name: (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
        for p in sorted(folder.iterdir())
        if p.is_file()
    }


@pytest.fixture(autouse=True)
def _progress_home(tmp_path_factory, monkeypatch) -> None:
    """check() records progress: keep it out of the real home folder."""
    monkeypatch.setenv("WORKBOOK_HOME", str(tmp_path_factory.mktemp("home")))


@pytest.fixture(scope="module")
def learner_dir(tmp_path_factory) -> Path:
    """A chapters folder with one robustness case per chapter (11 has no notebook)."""
    d = tmp_path_factory.mktemp("learner") / "chapters"
    d.mkdir()
    # 00: a correct softmax; 1 MB of prints; shell and magic lines; check/hint cells; a figure cell
    # tagged "other" that would fail if it ran.
    write(
        d / "00_introduction.ipynb",
        cell("!pip install nothing-at-all\n%matplotlib inline\n" + SETUP, "setup"),
        cell(SOFTMAX, "exercise", "softmax"),
        cell("check(softmax)", "check", "softmax"),
        cell("# hint(softmax)\nhint(softmax)", "hint", "softmax"),
        cell("print('x' * 1_000_000)\ndisplay(torch.zeros(2))\nprint('LEARNER-PRINT-MARKER')"),
        cell("raise RuntimeError('the other cells must not run by default')", "other"),
        cell("solution(softmax)"),
    )
    # 01: the reference, after a cell that calls sys.exit; untagged cells (no generator metadata).
    write(d / "01_embeddings.ipynb", cell(SETUP), cell("import sys\nsys.exit(3)"), cell(ref("TokenEmbedding")))
    # 02: the untouched stub.
    write(d / "02_positional_encoding.ipynb", cell(SETUP, "setup"), cell(STUB, "exercise", "PositionalEncoding"))
    # 03: not JSON at all.
    (d / "03_attention.ipynb").write_text('{"cells": [ {"cell_type": "code", "source": "def f(', encoding="utf-8")
    # 04: a syntax error in the exercise cell.
    write(
        d / "04_multi_head_attention.ipynb",
        cell(SETUP, "setup"),
        cell(
            "class MultiHeadAttention(nn.Module):\n    def __init__(self d_model, num_heads):\n        pass\n",
            "exercise",
            "MultiHeadAttention",
        ),
    )
    # 05: the exercise cell was deleted.
    write(d / "05_feed_forward.ipynb", cell(SETUP, "setup"), cell("x = 1"))
    # 06: a cell that never ends, then the reference.
    write(
        d / "06_layer_norm.ipynb",
        cell(SETUP, "setup"),
        cell(
            "while True:\n    try:\n        pass\n    except BaseException:  # swallows the first stop\n        break\n"
            "while True:\n    pass"
        ),
        cell(ref("LayerNorm"), "exercise", "LayerNorm"),
    )
    # 07: a cell that kills its own process.
    write(d / "07_encoder.ipynb", cell(SETUP, "setup"), cell("import os\nos._exit(7)"))
    # 08: a mask function that returns a Python list (the wrong type); the other four not written.
    write(
        d / "08_decoder.ipynb",
        cell(SETUP, "setup"),
        cell(
            "def create_padding_mask(seq, pad_idx=0):\n    return (seq != pad_idx).tolist()\n",
            "exercise",
            "create_padding_mask",
        ),
    )
    # 09: the exercise calls a helper that a chapter cell tagged "other" defines (as chapter 11's
    # _next_token_logits); a figure cell tagged "other" that would fail is still skipped.
    transformer = ref("Transformer").replace(
        "self.generator = nn.Linear(d_model, tgt_vocab_size)",
        "self.generator = make_generator(d_model, tgt_vocab_size)",
    )
    assert "make_generator" in transformer
    write(
        d / "09_transformer.ipynb",
        cell(SETUP + "from solutions import Decoder, Encoder, create_masks\n", "setup"),
        cell("def make_generator(d_model, vocab_size):\n    return nn.Linear(d_model, vocab_size)\n", "other"),
        cell("plt.plot([1, 2])\nraise RuntimeError('a figure cell must not run')", "other"),
        cell(transformer, "exercise", "Transformer"),
    )
    # 10: a cell that asks for 40 TB (out of memory), and a loss that returns NaN.
    write(
        d / "10_training.ipynb",
        cell(SETUP, "setup"),
        cell("big = torch.empty(10**13)"),
        cell(
            "class LabelSmoothingLoss(nn.Module):\n"
            "    def __init__(self, smoothing=0.1, ignore_index=0):\n"
            "        super().__init__()\n"
            "    def forward(self, logits, target):\n"
            "        return torch.tensor(float('nan'))\n",
            "exercise",
            "LabelSmoothingLoss",
        ),
    )
    return d


@pytest.fixture(scope="module")
def graded(learner_dir: Path) -> dict:
    """``workbook check --dir DIR --json --timeout 2`` in a subprocess, as a learner's terminal runs it."""
    before = snapshot(learner_dir)
    env = {**os.environ, "WORKBOOK_HOME": str(learner_dir.parent / "home")}
    start = time.perf_counter()
    command = [shutil.which("workbook")] if shutil.which("workbook") else [sys.executable, "-m", "workbook.cli"]
    proc = subprocess.run(
        [*command, "check", "--dir", str(learner_dir), "--json", "--timeout", "2"],
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
        cwd=learner_dir.parent,
    )
    seconds = time.perf_counter() - start
    assert snapshot(learner_dir) == before, "workbook check changed a notebook"
    data = json.loads(proc.stdout)  # the learner's 1 MB of prints did not get in the way
    return {
        "proc": proc,
        "data": data,
        "seconds": seconds,
        "by_chapter": {ch["chapter"]: ch for ch in data["chapters"]},
    }


def state(graded: dict, stem: str, exercise: str) -> dict:
    return next(e for e in graded["by_chapter"][stem]["exercises"] if e["exercise"] == exercise)


def test_exit_status_is_nonzero_and_every_chapter_is_reported(graded: dict) -> None:
    assert graded["proc"].returncode == 1
    # every chapter with exercises; the last one (training, no exercises) has nothing to grade
    assert [ch["chapter"] for ch in graded["data"]["chapters"]] == [c.stem for c in CHAPTERS if c.exercises]
    summary = graded["data"]["summary"]
    assert summary["total"] == sum(len(c.exercises) for c in CHAPTERS)
    assert summary["ok"] is False
    assert len(graded["proc"].stdout) < 200_000  # the learner's 1 MB of prints stayed out of it


def test_correct_code_passes_despite_prints_magics_and_skipped_cells(graded: dict) -> None:
    entry = state(graded, "00_introduction", "softmax")
    assert entry["state"] == "passed", entry
    chapter = graded["by_chapter"]["00_introduction"]
    assert chapter["cell_errors"] == []  # the "other" cell and the hint()/solution() calls did not run
    assert chapter["cells_skipped"] == 4  # check, hint, other, solution(...)
    assert "LEARNER-PRINT-MARKER" in chapter["output_tail"]


def test_sys_exit_in_a_cell_is_reported_and_the_rest_still_runs(graded: dict) -> None:
    assert state(graded, "01_embeddings", "TokenEmbedding")["state"] == "passed"
    errors = graded["by_chapter"]["01_embeddings"]["cell_errors"]
    assert len(errors) == 1 and "sys.exit(3)" in errors[0]["error"] and errors[0]["cell"] == 3


def test_untouched_stub_is_not_attempted(graded: dict) -> None:
    assert state(graded, "02_positional_encoding", "PositionalEncoding")["state"] == "not attempted"


def test_corrupted_notebook_is_reported_and_others_graded(graded: dict) -> None:
    chapter = graded["by_chapter"]["03_attention"]
    assert chapter["status"] == "unreadable"
    assert "not a valid notebook" in chapter["message"] and "03_attention.ipynb" in chapter["message"]
    assert state(graded, "03_attention", "scaled_dot_product_attention")["state"] == "error"


def test_syntax_error_names_the_cell_and_line(graded: dict) -> None:
    entry = state(graded, "04_multi_head_attention", "MultiHeadAttention")
    assert entry["state"] == "failed"
    message = entry["failures"][0]
    assert "SyntaxError" in message and "line 2" in message and "def __init__(self d_model" in message


def test_deleted_exercise_cell_is_not_attempted(graded: dict) -> None:
    entry = state(graded, "05_feed_forward", "FeedForwardNetwork")
    assert entry["state"] == "not attempted"
    assert "not defined" in entry["failures"][0]


def test_hanging_cell_is_stopped_and_the_exercise_still_graded(graded: dict) -> None:
    assert state(graded, "06_layer_norm", "LayerNorm")["state"] == "passed"
    errors = graded["by_chapter"]["06_layer_norm"]["cell_errors"]
    assert len(errors) == 1 and "still running after 2 s" in errors[0]["error"]


def test_process_killed_by_learner_code_is_reported_per_chapter(graded: dict) -> None:
    chapter = graded["by_chapter"]["07_encoder"]
    assert chapter["status"] == "crashed" and "exit status 7" in chapter["message"]
    assert [e["state"] for e in chapter["exercises"]] == ["error", "error"]


def test_helper_defined_in_a_chapter_cell_is_available(graded: dict) -> None:
    assert state(graded, "09_transformer", "Transformer")["state"] == "passed"
    chapter = graded["by_chapter"]["09_transformer"]
    assert chapter["cell_errors"] == [] and chapter["cells_skipped"] == 1  # the figure cell


def test_wrong_return_type_fails_and_unwritten_ones_are_not_attempted(graded: dict) -> None:
    entry = state(graded, "08_decoder", "create_padding_mask")
    assert entry["state"] == "failed" and entry["failures"]
    others = [e["state"] for e in graded["by_chapter"]["08_decoder"]["exercises"][1:]]
    assert others == ["not attempted"] * 4


def test_out_of_memory_cell_and_nan_result_are_reported(graded: dict) -> None:
    chapter = graded["by_chapter"]["10_training"]
    assert [e["cell"] for e in chapter["cell_errors"]] == [3]
    assert "RuntimeError" in chapter["cell_errors"][0]["error"]
    assert state(graded, "10_training", "LabelSmoothingLoss")["state"] == "failed"
    assert state(graded, "10_training", "TransformerLRScheduler")["state"] == "not attempted"


def test_missing_notebooks_are_reported(graded: dict, learner_dir: Path) -> None:
    chapter = graded["by_chapter"]["11_inference"]
    assert chapter["status"] == "missing"
    assert str(learner_dir / "11_inference.ipynb") in chapter["message"]


def test_whole_folder_graded_in_reasonable_time(graded: dict) -> None:
    # 8 notebooks, one of which hangs for 2 s; the cold command includes importing torch twice over
    # on a shared 2-core machine. The 15 s target is measured by benchmarks/bench_workbook_check.py.
    assert graded["seconds"] < 60, graded["seconds"]


def test_all_passing_chapters_exit_zero_and_print_a_table(learner_dir: Path, capsys) -> None:
    before = snapshot(learner_dir)
    code = main(["check", "0", "01", "06_layer_norm", "--dir", str(learner_dir), "--timeout", "1"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert snapshot(learner_dir) == before
    rows = [line.split() for line in out.splitlines()]
    assert ["00_introduction", "softmax", "passed"] in [r[:3] for r in rows]
    assert ["06_layer_norm", "LayerNorm", "passed"] in [r[:3] for r in rows]
    assert "3 passed, 0 failed" in out
    assert "still running after 1 s" in out  # chapter 06's endless cell, listed under the table


def test_chapter_given_as_path_or_exercise_name(learner_dir: Path, capsys) -> None:
    code = main(["check", str(learner_dir / "02_positional_encoding.ipynb"), "--json"])
    data = json.loads(capsys.readouterr().out)
    assert code == 1
    assert [(c["chapter"], c["exercises"][0]["state"]) for c in data["chapters"]] == [
        ("02_positional_encoding", "not attempted")
    ]


def test_all_cells_runs_the_other_cells(learner_dir: Path, capsys) -> None:
    code = main(["check", "00", "--dir", str(learner_dir), "--all-cells", "--json"])
    chapter = json.loads(capsys.readouterr().out)["chapters"][0]
    assert code == 0  # the failing "other" cell is reported, softmax still passes
    assert any("the other cells must not run" in e["error"] for e in chapter["cell_errors"])


def test_unknown_chapter_is_a_usage_error(learner_dir: Path, capsys) -> None:
    assert main(["check", "42", "--dir", str(learner_dir)]) == 2
    assert "No chapter called '42'" in capsys.readouterr().err


def test_no_chapters_folder_says_where_it_looked(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["check"]) == 2
    err = capsys.readouterr().err
    assert str(tmp_path / "chapters") in err and "--dir" in err


def test_help_documents_the_exit_status(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["check", "--help"])
    out = capsys.readouterr().out
    assert "exit status" in out and "not attempted" in out and "--timeout" in out


def test_real_chapter_notebooks_are_graded_without_change(capsys) -> None:
    """The generated notebooks (as far as they exist): untouched stubs read "not attempted"."""
    folder = Path(__file__).resolve().parents[1] / "chapters"
    present = [c.stem for c in CHAPTERS if (folder / f"{c.stem}.ipynb").exists()]
    if not present:
        pytest.skip("no chapter notebooks generated yet")
    before = snapshot(folder)
    code = main(["check", *[s[:2] for s in present], "--dir", str(folder), "--json"])
    assert snapshot(folder) == before
    data = json.loads(capsys.readouterr().out)
    states = {(c["chapter"], e["exercise"]): e["state"] for c in data["chapters"] for e in c["exercises"]}
    assert set(states.values()) == {"not attempted"}, states
    assert code == 1


def test_a_chapter_without_exercises_is_not_an_error(learner_dir: Path, capsys) -> None:
    """Chapter 12 trains the model and has no exercises: asked for alone, nothing to grade (exit 0);
    asked for with others, the others are graded and it is listed as ungraded."""
    assert main(["check", "12", "--dir", str(learner_dir)]) == 0
    assert "nothing to grade" in capsys.readouterr().out
    assert main(["check", "12", "--dir", str(learner_dir), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["chapters"] == [] and data["ungraded"] == ["12_training_a_translator"]
    assert main(["check", "01", "12", "--dir", str(learner_dir), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [c["chapter"] for c in data["chapters"]] == ["01_embeddings"]
    assert data["ungraded"] == ["12_training_a_translator"] and data["summary"]["ok"] is True


def test_fresh_interpreter_fallback_when_forking_is_unsafe(learner_dir: Path, capsys) -> None:
    """With another thread running (or off Linux) each chapter gets a fresh ``python -m
    workbook.runner`` instead of a fork: same results."""
    import threading

    stop = threading.Event()
    helper = threading.Thread(target=stop.wait, daemon=True)
    helper.start()
    try:
        code = main(["check", "01", "--dir", str(learner_dir), "--json"])
    finally:
        stop.set()
    data = json.loads(capsys.readouterr().out)
    assert code == 0
    assert [(c["chapter"], c["exercises"][0]["state"]) for c in data["chapters"]] == [("01_embeddings", "passed")]
    assert "sys.exit(3)" in data["chapters"][0]["cell_errors"][0]["error"]


def test_magics_and_helper_calls_are_blanked_keeping_line_numbers() -> None:
    from workbook.runner import clean_source

    assert clean_source("%%time\nx = 1\nif x:\n    !ls\n    y = 2\ncheck(x)") == "\nx = 1\nif x:\n    pass\n    y = 2\n"
    assert clean_source("%%bash\nls") is None  # a shell cell is not Python
    assert clean_source("check(softmax)\n# hint(softmax)") is None
    assert clean_source("def f():\n    check(x)") == "def f():\n    check(x)"  # only top-level calls go
    # A line that continues a statement is Python, whatever it starts with (issue 21): string
    # formatting, a comparison, the inside of a triple-quoted text, a backslash continuation.
    for python in (
        "LABEL = ('width %d'\n         % 64)",
        "same = (1\n!= 2)",
        "text = '''\n%not a magic\n!nor this\n'''",
        "x = 1 + \\\n%2",
    ):
        assert clean_source(python) == python, python
    assert clean_source("%matplotlib inline\nLABEL = ('%d'\n% 3)") == "\nLABEL = ('%d'\n% 3)"


def test_solved_chapter_notebooks_pass(capsys) -> None:
    """The generator's solved copies (each stub replaced by the reference): every exercise passes."""
    folder = Path(__file__).resolve().parents[1] / "chapters" / "solved"
    present = [c.stem for c in CHAPTERS if (folder / f"{c.stem}.ipynb").exists()]
    if not present:
        pytest.skip("no solved chapter notebooks generated yet")
    before = snapshot(folder)
    code = main(["check", *[s[:2] for s in present], "--dir", str(folder), "--json"])
    data = json.loads(capsys.readouterr().out)
    assert snapshot(folder) == before
    failing = {
        (c["chapter"], e["exercise"]): (e["state"], e["failures"][:1])
        for c in data["chapters"]
        for e in c["exercises"]
        if e["state"] != "passed"
    }
    assert not failing
    assert code == 0


def test_a_hang_the_cell_alarm_cannot_stop_is_killed(tmp_path: Path) -> None:
    """A cell that ignores SIGALRM and never ends: its chapter's process is killed and reported as
    timed out, and the next chapter is graded all the same."""
    from workbook.chapters import chapter
    from workbook.runner import read_chapter, run_chapters

    write(
        tmp_path / "05_feed_forward.ipynb",
        cell(SETUP),
        cell("import signal\nsignal.signal(signal.SIGALRM, signal.SIG_IGN)\nwhile True:\n    pass"),
    )
    write(tmp_path / "06_layer_norm.ipynb", cell(SETUP), cell(ref("LayerNorm")))
    jobs = [read_chapter(chapter(n), tmp_path / f"{chapter(n).stem}.ipynb") for n in ("05", "06")]
    start = time.perf_counter()
    # 11 s for each chapter: the healthy one needs about 1 s even with both cores busy (the hung one is
    # killed at 11 s; a hang that nothing stops would hold the test for ever)
    hung, fine = run_chapters(jobs, timeout=0.5, check_time=0.0, grace=10.0)
    assert time.perf_counter() - start < 60
    assert hung["status"] == "timeout" and "took longer than" in hung["message"]
    assert hung["exercises"][0]["state"] == "error"
    assert fine["status"] == "graded" and fine["exercises"][0]["state"] == "passed"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "kill"])
def test_interrupting_the_command_leaves_no_chapter_process(tmp_path: Path, signum: int) -> None:
    write(tmp_path / "06_layer_norm.ipynb", cell("while True:\n    pass"))
    script = (
        "import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler)\n"
        f"from workbook.cli import main; sys.exit(main(['check', '06', '--dir', {str(tmp_path)!r}]))"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    children_file = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
    deadline = time.monotonic() + 60
    children: list[str] = []
    while not children and time.monotonic() < deadline:
        time.sleep(0.2)
        children = children_file.read_text().split() if children_file.exists() else []
    assert children, "the chapter process never started"
    proc.send_signal(signum)
    proc.communicate(timeout=30)
    time.sleep(0.5)
    for pid in children:
        status = Path(f"/proc/{pid}/status")
        assert not status.exists() or "zombie" in status.read_text(), f"chapter process {pid} still running"


def test_a_folder_named_like_a_notebook_is_reported(tmp_path: Path) -> None:
    from workbook.chapters import chapter
    from workbook.runner import read_chapter

    (tmp_path / "03_attention.ipynb").mkdir()
    job = read_chapter(chapter("03"), tmp_path / "03_attention.ipynb")
    assert job.error is not None and job.error.startswith("cannot read 03_attention.ipynb")
    assert job.cells == []


def test_a_failure_of_the_grader_itself_is_not_blamed_on_the_notebook(tmp_path: Path) -> None:
    from workbook.runner import ChapterJob, run_chapters

    job = ChapterJob("06_layer_norm", str(tmp_path / "gone" / "06_layer_norm.ipynb"), ["LayerNorm"])
    (result,) = run_chapters([job], timeout=1.0)  # its folder vanished: the process cannot chdir there
    assert result["status"] == "crashed"
    assert "itself failed" in result["message"] and "not your notebook's fault" in result["message"]
    assert "FileNotFoundError" in result["internal_error"]


CHEATING_FFN = """class FeedForwardNetwork(nn.Module):
    def __init__(self, d_model, d_ff):
        super().__init__()
        self.W_1, self.W_2 = nn.Linear(d_model, d_ff), nn.Linear(d_ff, d_model)

    def forward(self, x):
        return self.W_2(self.W_1(x))  # no ReLU


import checks, checks.core, checks.grade, torch
from checks.core import CheckResult

checks.check = checks.grade.check = lambda obj, exercise=None, **k: CheckResult(exercise or "x", "passed")
checks.core.CheckResult.passed = property(lambda self: True)
torch.allclose = lambda *a, **k: True
"""


def test_a_notebook_cannot_report_passed_to_itself(tmp_path, capsys) -> None:
    """The learner's cells patch the grader, torch and the result class: `workbook check` still
    fails the wrong FeedForwardNetwork (its verdict comes from the judge), with the diagnosis."""
    write(
        tmp_path / "05_feed_forward.ipynb", cell(SETUP, "setup"), cell(CHEATING_FFN, "exercise", "FeedForwardNetwork")
    )
    code = main(["check", "05", "--dir", str(tmp_path), "--json"])
    data = json.loads(capsys.readouterr().out)
    entry = data["chapters"][0]["exercises"][0]
    assert code == 1 and entry["state"] == "failed" and entry["diagnoses"] == ["ffn_missing_relu"]
