"""Learner code that misbehaves never crashes ``check()``: it gets a clear failed result.

Each case goes through ``check()`` exactly as a notebook calls it: code that raises (the message shows
the learner's own file, line and code), hangs (time limit, in the main thread and in another thread),
prints a lot, returns the wrong type, returns NaN, calls ``sys.exit``, runs out of memory, or raises
KeyboardInterrupt itself. Also: the result renders as text, HTML and JSON.
"""

from __future__ import annotations

import json
import re
import sys
import threading
import time

import pytest
import torch
import torch.nn as nn

import solutions
from checks import check


@pytest.fixture(autouse=True)
def _private_progress_file(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """check() records progress (workbook.progress): keep it out of the real home folder."""
    monkeypatch.setenv("WORKBOOK_HOME", str(tmp_path / "workbook-home"))


class RaisingFFN(solutions.FeedForwardNetwork):
    def forward(self, x):
        hidden = self.W_1(x)
        return self.W_2(hidden[:, :, 999])  # an IndexError on the learner's own line


def test_an_exception_shows_the_learners_file_line_and_code() -> None:
    result = check(RaisingFFN, "FeedForwardNetwork")
    assert result.state == "failed"
    message = result.failures[0]
    assert "IndexError" in message
    assert __file__ in message
    line = RaisingFFN.forward.__code__.co_firstlineno + 2
    assert f"line {line}" in message
    assert "hidden[:, :, 999]" in message
    assert "checks/" not in message  # none of the checker's internals


class HangingLayerNorm(solutions.LayerNorm):
    def forward(self, x):
        while True:
            pass


def test_an_endless_loop_hits_the_time_limit() -> None:
    start = time.perf_counter()
    result = check(HangingLayerNorm, "LayerNorm", time_limit=1.0)
    assert time.perf_counter() - start < 5
    assert result.state == "failed"
    assert "longer than 1 s" in result.failures[0]
    assert "in forward" in result.failures[0] and __file__ in result.failures[0]  # where it was stuck


def test_an_endless_loop_that_swallows_exceptions_still_stops() -> None:
    def stubborn_softmax(x, dim=-1):
        deadline = time.perf_counter() + 10.0
        while time.perf_counter() < deadline:
            try:
                time.sleep(0.01)
            except Exception:  # noqa: BLE001 - the time limit is not an Exception: this cannot swallow it
                pass
        return torch.softmax(x, dim)

    start = time.perf_counter()
    result = check(stubborn_softmax, "softmax", time_limit=0.5)
    assert time.perf_counter() - start < 6  # stopped at 0.5 s, not after the loop's 10 s (margin: a busy machine)
    assert result.state == "failed" and "longer than" in result.failures[0]


class SlowLayerNorm(solutions.LayerNorm):
    """Sleeps 4 s per call: a hang that ends by itself (an abandoned thread must not spin forever)."""

    def forward(self, x):
        time.sleep(4.0)
        return super().forward(x)


def test_the_time_limit_works_outside_the_main_thread() -> None:
    box = {}
    worker = threading.Thread(target=lambda: box.update(result=check(SlowLayerNorm, "LayerNorm", time_limit=1.0)))
    start = time.perf_counter()
    worker.start()
    worker.join(10)
    assert time.perf_counter() - start < 5
    assert box["result"].state == "failed" and "longer than 1 s" in box["result"].failures[0]


class ChattyFFN(solutions.FeedForwardNetwork):
    def forward(self, x):
        for i in range(2000):
            print("debugging", i, x.shape)
        return super().forward(x)


def test_printing_a_lot_is_captured_and_truncated(capsys) -> None:
    result = check(ChattyFFN, "FeedForwardNetwork")
    captured = capsys.readouterr()
    assert result.state == "passed"
    assert "debugging" not in captured.out  # nothing floods the notebook
    assert result.output.startswith("debugging 0")
    assert len(result.output) < 2500 and "more characters not shown" in result.output
    assert "Your code printed" in str(result)


def test_a_wrong_return_type_is_named() -> None:
    def sdpa_returns_one_thing(query, key, value, mask=None):
        return torch.softmax(query @ key.transpose(-2, -1) / query.size(-1) ** 0.5, -1) @ value

    result = check(sdpa_returns_one_thing, "scaled_dot_product_attention")
    assert result.state == "failed"
    assert result.diagnoses == ["returns_wrong_type"]
    assert "(output, weights)" in result.failures[0]


class NanEmbedding(solutions.TokenEmbedding):
    def forward(self, tokens):
        return self.embedding(tokens) * float("nan")


def test_nan_outputs_are_named() -> None:
    result = check(NanEmbedding, "TokenEmbedding")
    assert result.state == "failed" and "nan_or_inf" in result.diagnoses
    assert "NaN" in result.failures[0]


class ExitingLayerNorm(solutions.LayerNorm):
    def forward(self, x):
        sys.exit("bye")


def test_sys_exit_is_caught() -> None:
    result = check(ExitingLayerNorm, "LayerNorm")
    assert result.state == "failed"
    assert "sys.exit()" in result.failures[0]


class GreedyMemoryMHA(solutions.MultiHeadAttention):
    def forward(self, query, key, value, mask=None):
        raise MemoryError()


class CudaStyleOOM(solutions.MultiHeadAttention):
    def forward(self, query, key, value, mask=None):
        raise RuntimeError("CUDA out of memory. Tried to allocate 40.00 GiB")


def test_running_out_of_memory_is_a_clear_failure() -> None:
    for cls in (GreedyMemoryMHA, CudaStyleOOM):
        result = check(cls, "MultiHeadAttention")
        assert result.state == "failed"
        assert "ran out of memory" in result.failures[0], result.failures[0]


def test_a_huge_allocation_is_a_clear_failure() -> None:
    class HugeFFN(solutions.FeedForwardNetwork):
        def forward(self, x):
            table = torch.empty(2**40, 2**20)  # far more memory than any machine has
            return super().forward(x) + table[0, 0]

    result = check(HugeFFN, "FeedForwardNetwork")
    assert result.state == "failed"
    assert "ran out of memory" in result.failures[0] or "RuntimeError" in result.failures[0]


class InterruptingFFN(solutions.FeedForwardNetwork):
    def forward(self, x):
        raise KeyboardInterrupt


def test_keyboard_interrupt_raised_by_learner_code_is_a_failure() -> None:
    result = check(InterruptingFFN, "FeedForwardNetwork")
    assert result.state == "failed" and "KeyboardInterrupt" in result.failures[0]


class NotAModule:
    def __init__(self, d_model, d_ff):
        pass


def test_a_class_that_is_not_a_module_is_named() -> None:
    result = check(NotAModule, "FeedForwardNetwork")
    assert result.state == "failed" and "nn.Module" in result.failures[0]


class MutatingLayerNorm(solutions.LayerNorm):
    def forward(self, x):
        x -= x.mean(dim=-1, keepdim=True)
        return self.weight * x / torch.sqrt(x.var(dim=-1, keepdim=True, correction=0) + self.eps) + self.bias


def test_changing_an_input_in_place_is_named() -> None:
    result = check(MutatingLayerNorm, "LayerNorm")
    assert result.state == "failed" and result.diagnoses == ["inplace_input_modification"]


def test_rendering_text_html_and_json() -> None:
    passed = check(solutions.FeedForwardNetwork)
    failed = check(RaisingFFN, "FeedForwardNetwork")
    text = str(failed)
    assert text.startswith("FeedForwardNetwork: FAILED")
    assert "[FAIL] shapes: output shape" in text and "[skip] numbers: matches equation 2" in text
    assert "IndexError" in text
    page = failed._repr_html_()
    assert page.count("<tr") == len(failed.tests)
    rows = dict(re.findall(r'<tr class="workbook-(\w+)" style="background-color:([^"]+)"', page))
    assert {"passed", "failed", "skipped"} <= set(rows)  # red, green and grey rows, told apart
    assert rows["failed"].startswith("rgba(207, 34, 46,") and rows["passed"].startswith("rgba(26, 127, 55,")
    assert len(set(rows.values())) == 3
    # the tints are translucent and no text colour is fixed: readable in light and dark themes
    # (measured in a real browser by tests/test_browser.py)
    assert all(float(tint.rsplit(",", 1)[1].rstrip(")")) < 0.3 for tint in rows.values())
    assert not re.search(r"color:\s*#", page)
    assert "✔ passed" in passed._repr_html_() and "All checks passed" in str(passed)
    data = json.loads(json.dumps(failed.to_dict()))
    assert data["state"] == "failed" and data["passed"] is False
    assert data["tests"][0] == {"name": "interface: constructor and parameters", "status": "passed", "message": ""}
    assert data["failures"] == failed.failures


def test_the_learners_class_is_not_changed() -> None:
    before = dict(vars(RaisingFFN))
    check(RaisingFFN, "FeedForwardNetwork")
    assert dict(vars(RaisingFFN)) == before


def test_check_keeps_the_global_random_state_and_grad_mode() -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    with torch.no_grad():
        check(solutions.MultiHeadAttention)
        assert not torch.is_grad_enabled()
    assert torch.equal(torch.rand(3), expected)


def test_a_module_with_a_broken_state_dict_is_a_failure() -> None:
    class Weird(nn.Module):
        def __init__(self, d_model, d_ff):
            super().__init__()

        def state_dict(self, *args, **kwargs):
            raise ValueError("no")

        def forward(self, x):
            return x

    result = check(Weird, "FeedForwardNetwork")
    assert result.state == "failed" and "ValueError" in result.failures[0]


HANGING_LAYER_NOTEBOOK = """
from solutions import FeedForwardNetwork, LayerNorm

class MultiHeadAttention(nn.Module):
    def __init__(self, d_model, num_heads):
        super().__init__()
        raise NotImplementedError

class EncoderLayer(nn.Module):
    def __init__(self, d_model, num_heads, d_ff, dropout=0.1):
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, num_heads)
        self.feed_forward = FeedForwardNetwork(d_model, d_ff)
        self.norm1, self.norm2 = LayerNorm(d_model), LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x, mask=None):
        while True:
            pass
"""


def test_the_learners_names_are_restored_after_a_timeout() -> None:
    import types

    module = types.ModuleType("nb_hanging_layer")
    module.__dict__.update({"torch": torch, "nn": nn})
    sys.modules[module.__name__] = module
    exec(compile(HANGING_LAYER_NOTEBOOK, "<nb_hanging_layer>", "exec"), module.__dict__)
    own = module.MultiHeadAttention
    result = check(module.EncoderLayer, time_limit=1.0)
    assert result.state == "failed" and "longer than" in result.failures[0]
    assert module.MultiHeadAttention is own


def test_the_notebook_check_records_progress_and_says_when_it_cannot(monkeypatch, tmp_path, capsys) -> None:
    import workbook
    import workbook.progress as progress

    assert workbook.check(solutions.LayerNorm).passed
    assert progress.load().get("LayerNorm")["state"] == "passed"

    def broken(record):
        raise OSError("disk full")

    monkeypatch.setattr(progress, "save", broken)
    assert workbook.check(solutions.LayerNorm).state == "passed"  # the verdict is kept...
    assert "disk full" in capsys.readouterr().err  # ...and the lost record is not silent


def test_in_a_real_notebook_kernel(tmp_path) -> None:
    """The path a learner takes: a Jupyter kernel (nbclient) defines code, calls check(), sees HTML."""
    import nbformat
    from nbclient import NotebookClient

    cells = [
        "import os\nos.environ['WORKBOOK_HOME'] = "
        + repr(str(tmp_path))
        + "\nimport torch, torch.nn as nn\nfrom checks import check\nimport solutions",
        "class LayerNorm(solutions.LayerNorm):\n    def forward(self, x):\n        while True:\n            pass",
        "r = check(LayerNorm, time_limit=1.0)\nprint(r.state, '|', r.failures[0])",
        "class FeedForwardNetwork(nn.Module):\n    def __init__(self, d_model, d_ff):\n        super().__init__()\n"
        "        raise NotImplementedError('Exercise')",
        "print(check('FeedForwardNetwork').state, '|', check('MultiHeadAttention').state)",
        "def softmax(x, dim=-1):\n    e = (x - x.max(dim, keepdim=True).values).exp()\n"
        "    return e / e.sum(dim, keepdim=True)\n"
        "check(softmax)",
    ]
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source) for source in cells]
    NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    assert nb.cells[2].outputs[0]["text"].startswith("failed | LayerNorm timed out: it took longer than 1 s")
    assert nb.cells[4].outputs[0]["text"].strip() == "not attempted | not attempted"
    shown = nb.cells[5].outputs[0]["data"]
    assert "softmax: ✔ passed" in shown["text/html"] and "<table" in shown["text/html"]


def test_an_abandoned_check_in_a_thread_stops_soon_after() -> None:
    box = {}
    before, stdout = threading.active_count(), sys.stdout
    worker = threading.Thread(target=lambda: box.update(result=check(SlowLayerNorm, "LayerNorm", time_limit=0.5)))
    worker.start()
    worker.join(10)
    assert box["result"].state == "failed"
    deadline = time.perf_counter() + 8  # the grading thread ends after the current 4 s sleep
    while threading.active_count() > before and time.perf_counter() < deadline:
        time.sleep(0.1)
    assert threading.active_count() <= before
    assert sys.stdout is stdout  # the captured output stream was given back
