"""The one runner for the learner's code, tried the way a learner's code would try it.

Each test writes a small chapter notebook (or a class, for ``check``) that does something hostile
or careless, and runs the real path a learner takes: ``workbook check`` (``workbook.cli.main``),
``check()``, ``earlier_parts(use_my_work=True)``. Timing bounds are generous (they hold with both
cores busy): they tell "killed from outside" (seconds) from "never returns" or "waits for the
learner's thread" (a minute or more).
"""

from __future__ import annotations

import hashlib
import inspect
import json
import multiprocessing
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
import torch
import torch.nn as nn
from conftest import needs_sandbox, processes_with

import solutions
from workbook.chapters import GRADED_CHAPTERS
from workbook.cli import main

REPO = Path(__file__).resolve().parents[1]
SANDBOX_FLAG = ["--sandbox"]
SETUP = "import math\nimport torch\nimport torch.nn as nn\nimport torch.nn.functional as F\n"


def write(path: Path, *sources: str) -> None:
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_markdown_cell("# a chapter")] + [nbformat.v4.new_code_cell(s) for s in sources]
    nbformat.write(notebook, str(path))


def tree(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (relative path -> sha256): what the learner would lose."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def run_check(capsys, *args: str) -> tuple[int, dict]:
    code = main(["check", *args, "--json"])
    return code, json.loads(capsys.readouterr().out)


def test_a_cell_that_deletes_every_file_in_its_folder_deletes_nothing_of_the_learners(tmp_path, capsys) -> None:
    chapters = tmp_path / "chapters"
    chapters.mkdir()
    write(chapters / "03_attention.ipynb", SETUP, inspect.getsource(solutions.scaled_dot_product_attention))
    write(
        chapters / "05_feed_forward.ipynb",
        SETUP,
        "import os, shutil\nfor name in os.listdir('.'):\n"
        "    shutil.rmtree(name) if os.path.isdir(name) else os.remove(name)\n"
        "open('03_attention.ipynb', 'w').write('gone')",
        inspect.getsource(solutions.FeedForwardNetwork),
    )
    (chapters / "notes.txt").write_text("my notes")
    (chapters / "data").mkdir()
    (chapters / "data" / "pairs.tsv").write_text("ein\tone\n")
    before = tree(chapters)
    code, data = run_check(capsys, "03", "05", "--dir", str(chapters))
    assert tree(chapters) == before  # byte-identical: nothing deleted, nothing rewritten
    states = {e["exercise"]: e["state"] for c in data["chapters"] for e in c["exercises"]}
    assert states == {"scaled_dot_product_attention": "passed", "FeedForwardNetwork": "passed"}
    assert code == 0


def test_a_thread_left_running_is_named_and_does_not_hold_the_command(tmp_path, capsys) -> None:
    write(
        tmp_path / "06_layer_norm.ipynb",
        SETUP,
        "import threading, time\nthreading.Thread(target=lambda: time.sleep(120), name='my-spinner').start()",
        inspect.getsource(solutions.LayerNorm),
    )
    start = time.monotonic()
    code = main(["check", "06", "--dir", str(tmp_path), "--timeout", "5"])
    elapsed = time.monotonic() - start
    out = capsys.readouterr().out
    assert elapsed < 40, f"workbook check waited {elapsed:.0f} s for the learner's thread"
    assert "left a thread (my-spinner) running" in out
    assert "LayerNorm" in out and code == 0  # the exercise itself is graded, and passes


def test_a_process_left_running_is_killed_and_named(tmp_path, capsys) -> None:
    marker = tmp_path / "still-alive"
    child = f"import time, pathlib; time.sleep(4); pathlib.Path({str(marker)!r}).write_text('x')"
    write(
        tmp_path / "06_layer_norm.ipynb",
        SETUP,
        f"import subprocess, sys\nsubprocess.Popen([sys.executable, '-c', {child!r}])",
        inspect.getsource(solutions.LayerNorm),
    )
    code, data = run_check(capsys, "06", "--dir", str(tmp_path))
    (chapter,) = data["chapters"]
    assert any("process" in item for item in chapter["left_running"])
    time.sleep(6)
    assert not marker.exists(), "the learner's process outlived its chapter's grading"
    assert code == 0


def test_a_forked_child_holding_the_workers_pipe_does_not_hold_the_command(tmp_path, capsys) -> None:
    write(
        tmp_path / "06_layer_norm.ipynb",
        SETUP,
        "import os, time\nif os.fork() == 0:\n    time.sleep(120)\n    os._exit(0)",
        inspect.getsource(solutions.LayerNorm),
    )
    start = time.monotonic()
    code, data = run_check(capsys, "06", "--dir", str(tmp_path))
    elapsed = time.monotonic() - start
    (chapter,) = data["chapters"]
    assert elapsed < 40, f"workbook check waited {elapsed:.0f} s for the learner's forked process"
    assert chapter["status"] == "graded" and any("process" in item for item in chapter["left_running"])
    assert code == 0


class SwallowsEverything(solutions.LayerNorm):
    """A forward that catches every exception (the time limit's too) and tries again, forever."""

    def forward(self, x):
        while True:
            try:
                while True:
                    pass
            except BaseException:  # noqa: BLE001 - the point of the test
                pass


def test_a_forward_that_swallows_every_exception_is_timed_out_from_outside() -> None:
    from checks import check

    start = time.monotonic()
    result = check(SwallowsEverything, "LayerNorm", time_limit=2.0)
    elapsed = time.monotonic() - start
    assert result.state == "failed" and "timed out" in result.failures[0]
    assert elapsed < 2.0 + 15, f"check took {elapsed:.0f} s"


def test_a_hostile_check_cannot_change_the_callers_objects() -> None:
    """The ladder runs in a worker: the learner's class and the reference are the caller's as before."""
    from checks import check

    class PatchesTheWorld(nn.Module):
        def __init__(self, d_model, eps=1e-6):
            super().__init__()
            torch.allclose = lambda *a, **k: True
            solutions.LayerNorm = None
            type(self).marked = True
            self.gamma = nn.Parameter(torch.ones(d_model))
            self.beta = nn.Parameter(torch.zeros(d_model))

        def forward(self, x):
            return x

    real_allclose, real_layer_norm = torch.allclose, solutions.LayerNorm
    check(PatchesTheWorld, "LayerNorm")  # the verdict is issue 11's business: here, the caller's objects
    assert torch.allclose is real_allclose and solutions.LayerNorm is real_layer_norm
    assert not hasattr(PatchesTheWorld, "marked")


def test_every_untouched_chapter_is_not_attempted_without_a_cell_error(capsys) -> None:
    code, data = run_check(capsys, "--dir", str(REPO / "chapters"))
    assert {c["chapter"] for c in data["chapters"]} == {ch.stem for ch in GRADED_CHAPTERS}
    for chapter in data["chapters"]:
        assert chapter["status"] == "graded", chapter["message"]
        assert chapter["cell_errors"] == [], (chapter["chapter"], chapter["cell_errors"])
        assert chapter["left_running"] == [], (chapter["chapter"], chapter["left_running"])
        assert {e["state"] for e in chapter["exercises"]} == {"not attempted"}, chapter["chapter"]
    assert code == 1


ATTENTION_WITH_DROPOUT = '''
def scaled_dot_product_attention(query, key, value, mask=None, dropout=None):
    """The contract's attention, with an extra optional argument (the contract allows it)."""
    scores = query @ key.transpose(-2, -1) / math.sqrt(query.size(-1))
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    weights = torch.nan_to_num(weights, nan=0.0)
    if dropout is not None:
        weights = dropout(weights)
    return weights @ value, weights


class MultiHeadAttention(nn.Module):
    def __init__(self, d_model, num_heads):
        super().__init__()
        if d_model % num_heads:
            raise ValueError("num_heads must divide d_model")
        self.d_model, self.num_heads, self.d_k = d_model, num_heads, d_model // num_heads
        self.W_q, self.W_k = nn.Linear(d_model, d_model), nn.Linear(d_model, d_model)
        self.W_v, self.W_o = nn.Linear(d_model, d_model), nn.Linear(d_model, d_model)
        self.attention_weights = None

    def _split(self, x):
        b, n, _ = x.shape
        return x.view(b, n, self.num_heads, self.d_k).transpose(1, 2)

    def forward(self, query, key, value, mask=None):
        q, k, v = self._split(self.W_q(query)), self._split(self.W_k(key)), self._split(self.W_v(value))
        out, self.attention_weights = scaled_dot_product_attention(q, k, v, mask, dropout=None)
        b, n = query.shape[:2]
        return self.W_o(out.transpose(1, 2).reshape(b, n, self.d_model))
'''


def test_a_correct_multi_head_attention_whose_attention_takes_an_extra_argument_passes() -> None:
    from checks import check

    namespace = {"__name__": "learner_notebook"}
    exec(SETUP + ATTENTION_WITH_DROPOUT, namespace)
    result = check(namespace["MultiHeadAttention"])
    assert result.passed, str(result)
    assert check(namespace["scaled_dot_product_attention"]).passed


def test_earlier_parts_run_by_the_runner_leave_the_folder_alone(tmp_path, capsys) -> None:
    """use_my_work=True: the earlier notebook runs in a scratch folder, and its passing part comes back."""
    from workbook import earlier_parts

    write(
        tmp_path / "03_attention.ipynb",
        SETUP,
        "import os\nfor name in os.listdir('.'):\n    os.remove(name)",
        inspect.getsource(solutions.scaled_dot_product_attention).replace('"""', '"""Mine. ', 1),
    )
    before = tree(tmp_path)
    parts = earlier_parts(["scaled_dot_product_attention"], use_my_work=True, chapters_dir=tmp_path)
    assert tree(tmp_path) == before
    mine = parts["scaled_dot_product_attention"]
    assert mine is not solutions.scaled_dot_product_attention and mine.__doc__.startswith("Mine.")
    q = torch.randn(1, 2, 3, 4)
    assert torch.allclose(mine(q, q, q)[0], solutions.scaled_dot_product_attention(q, q, q)[0])
    assert "yours (it passes its check)" in capsys.readouterr().out


def _record_many(home: str, prefix: str, count: int) -> None:
    import os

    os.environ["WORKBOOK_HOME"] = home
    from workbook import progress

    for i in range(count):
        progress.record_hint(f"{prefix}{i}", 1)


def test_two_processes_recording_progress_at_once_lose_nothing(tmp_path) -> None:
    from workbook import progress

    count = 150
    context = multiprocessing.get_context("spawn")
    writers = [context.Process(target=_record_many, args=(str(tmp_path), prefix, count)) for prefix in "ab"]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(120)
        assert writer.exitcode == 0
    import os

    os.environ["WORKBOOK_HOME"] = str(tmp_path)
    recorded = progress.load().exercises
    assert len(recorded) == 2 * count, f"{2 * count - len(recorded)} records were lost"


def test_the_imports_point_one_way_without_circles() -> None:
    """app (workbook) -> grader (checks) -> reference (solutions); no package imports back up, and
    no module of a package takes part in an import circle."""
    import ast

    layers = {"solutions": 0, "checks": 1, "workbook": 2}
    graph: dict[str, set[str]] = {}
    for package in layers:
        for path in (REPO / package).rglob("*.py"):
            module = ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
            targets = graph.setdefault(module, set())
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.ImportFrom):
                    base = module.split(".")[: len(module.split(".")) - node.level + (path.name == "__init__.py")]
                    name = ".".join(base + ([node.module] if node.module else [])) if node.level else node.module
                    targets.update({name} | {f"{name}.{a.name}" for a in node.names})  # narrowed below
                elif isinstance(node, ast.Import):
                    targets.update(a.name for a in node.names)
    for module, targets in graph.items():
        for target in targets:
            top = target.split(".")[0]
            assert layers.get(top, -1) <= layers[module.split(".")[0]], f"{module} imports {target} (up a layer)"
    known = set(graph)
    # `from pkg import sub` depends on the module pkg.sub, not on pkg's __init__ (as import-linter reads it)
    edges = {
        m: {t for t in ts if t in known and t != m and not any(s.startswith(t + ".") for s in ts & known)}
        for m, ts in graph.items()
    }

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        for nxt in edges[start]:
            if nxt == goal or (nxt not in seen and not seen.add(nxt) and reaches(nxt, goal, seen)):
                return True
        return False

    circles = sorted(m for m in edges if reaches(m, m, set()))
    assert not circles, f"modules in an import circle: {circles}"


def test_the_contract_in_the_repository_names_every_exercise() -> None:
    from checks.specs import SPECS

    contract = (REPO / "CONTRACT.md").read_text(encoding="utf-8")
    missing = [name for name in SPECS if f"`{name}" not in contract]
    assert not missing, f"CONTRACT.md does not name: {missing}"
    assert "CONTRACT.md" in (REPO / "README.md").read_text(encoding="utf-8")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="forks")
def test_a_worker_that_exits_early_is_reported_not_hung() -> None:
    from checks import check

    class Exits(solutions.LayerNorm):
        def forward(self, x):
            import os

            os._exit(3)

    result = check(Exits, "LayerNorm")
    assert result.state == "failed" and "exit status 3" in result.failures[0]


def test_workbook_check_runs_from_a_fresh_process(tmp_path) -> None:
    """The command as a learner types it (a new process), on a notebook whose cell deletes its folder."""
    write(
        tmp_path / "01_embeddings.ipynb",
        SETUP,
        "import shutil, os\nshutil.rmtree(os.getcwd())",
        inspect.getsource(solutions.TokenEmbedding),
    )
    before = tree(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-m", "workbook.cli", "check", "01", "--dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert tree(tmp_path) == before
    assert "TokenEmbedding" in proc.stdout and proc.returncode == 0, proc.stdout + proc.stderr


def test_without_fork_the_runner_spawns_fresh_workers_just_as_safely(tmp_path) -> None:
    """The path of macOS and Windows (no fork): each chapter in a fresh interpreter, same guarantees."""
    write(
        tmp_path / "05_feed_forward.ipynb",
        SETUP,
        "import os\nfor name in os.listdir('.'):\n    os.remove(name)",
        inspect.getsource(solutions.FeedForwardNetwork),
    )
    write(tmp_path / "06_layer_norm.ipynb", SETUP, "while True:\n    pass")
    before = tree(tmp_path)
    env = {**__import__("os").environ, "WORKBOOK_NO_FORK": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "workbook.cli", "check", "05", "06", "--dir", str(tmp_path), "--timeout", "2", "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert tree(tmp_path) == before
    states = {e["exercise"]: e["state"] for c in json.loads(proc.stdout)["chapters"] for e in c["exercises"]}
    assert states == {"FeedForwardNetwork": "passed", "LayerNorm": "not attempted"}, proc.stdout[-2000:]


@needs_sandbox
def test_in_the_sandbox_absolute_paths_the_network_and_detached_processes_reach_nothing(tmp_path, capsys) -> None:
    """workbook check --sandbox: the folder is out of sight even by absolute path, there is no network,
    and a daemon that left the worker's process group (setsid) still ends with the worker."""
    import uuid

    marker = f"workbook-daemon-{uuid.uuid4().hex}"
    chapters = tmp_path / "chapters"
    chapters.mkdir()
    (chapters / "notes.txt").write_text("my notes")
    write(
        chapters / "06_layer_norm.ipynb",
        SETUP,
        f"import os, shutil\nfor name in os.listdir({str(chapters)!r}):\n"
        f"    os.remove(os.path.join({str(chapters)!r}, name))",
        "import socket\nsocket.create_connection(('127.0.0.1', 22), timeout=2)",
        f"import subprocess, sys\nsubprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)', {marker!r}],"
        " start_new_session=True)",
        inspect.getsource(solutions.LayerNorm),
    )
    before = tree(chapters)
    code, data = run_check(capsys, "06", "--dir", str(chapters), *SANDBOX_FLAG)
    assert tree(chapters) == before
    (chapter,) = data["chapters"]
    errors = " ".join(e["error"] for e in chapter["cell_errors"])
    assert "Network is unreachable" in errors or "Connection refused" in errors  # a private network
    assert {e["exercise"]: e["state"] for e in chapter["exercises"]} == {"LayerNorm": "passed"} and code == 0
    time.sleep(1)
    assert not processes_with(marker), "a detached process of the learner outlived the sandbox"
