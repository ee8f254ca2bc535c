"""The judge (issue 11): the verdict comes from a process that never runs the student's code.

The student's cells run in the judge's worker (``checks.judge_worker``, sandboxed where bubblewrap
is); the ladder runs here against the reference, on handles. These tests attack that boundary from
the worker's side and check that the judge's verdicts are the checker's on code it has never seen.
"""

from __future__ import annotations

import base64
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest
import torch
from conftest import needs_sandbox, processes_with

import solutions
from checks import check, wire
from checks.judge import judge_cells, places_of_the_reference
from workbook.chapters import EXERCISE_TO_CHAPTER

sys.path.insert(0, str(Path(__file__).resolve().parent))
from catalogue import load
from judge_catalogue import catalogue_cells

SETUP = textwrap.dedent(
    """
    import math
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    from workbook import check, hint, mine_or_reference, solution
    """
)
FFN_WRONG = textwrap.dedent(
    """
    class FeedForwardNetwork(nn.Module):
        def __init__(self, d_model, d_ff):
            super().__init__()
            self.W_1, self.W_2 = nn.Linear(d_model, d_ff), nn.Linear(d_ff, d_model)

        def forward(self, x):
            return self.W_2(self.W_1(x))  # no ReLU
    """
)
FFN_RIGHT = FFN_WRONG.replace("self.W_2(self.W_1(x))", "self.W_2(torch.relu(self.W_1(x)))")


def judge_ffn(*cells: str, **kwargs):
    """Judge chapter 05's FeedForwardNetwork from these cells (after the usual setup)."""
    numbered = [(1, SETUP)] + [(i, code) for i, code in enumerate(cells, start=2)]
    return judge_cells(numbered, ["FeedForwardNetwork"], ["TokenEmbedding", "PositionalEncoding"], **kwargs)


# --------------------------------------------------------------------------------------------------
# What travels
# --------------------------------------------------------------------------------------------------
def test_the_wire_carries_tensors_exactly_and_refuses_what_is_not_data():
    for t in (torch.randn(3, 4, dtype=torch.float64), torch.tensor(2.5), torch.zeros(0, 3), torch.arange(6) > 2):
        back = wire.decode(wire.encode(t, lambda o: pytest.fail("not data")), lambda tag: pytest.fail("a tag"))
        assert back.dtype == t.dtype and back.shape == t.shape and torch.equal(back, t)
    good = wire.encode_tensor(torch.ones(2, 2))["__t"]
    for bad in (
        ["complex128", [1], ""],  # a dtype the judge does not take
        ["float32", [2, 2], base64.b64encode(b"\0" * 15).decode()],  # bytes that do not fit the shape
        ["float32", [2**40], ""],  # a tensor too large to accept
        ["float32", [-1], ""],
        [good[0], good[1]],
    ):
        with pytest.raises(wire.WireError):
            wire.decode_tensor(bad)
    with pytest.raises(wire.WireError):
        wire.loads(b"[1, 2]")
    for message in ({"__f": "1e999"}, {"__dtype": "object"}, {"unknown": 1}):
        with pytest.raises(wire.WireError):
            wire.decode(message, lambda tag: (_ for _ in ()).throw(wire.WireError("refused")))


def test_the_judge_never_reads_a_pickle_from_the_worker():
    """A worker that answers with a pickle (the classic way to run code in the reader) is refused."""
    evil = "import os\nos.system('touch /tmp/judge-pwned')"
    cheat = textwrap.dedent(
        f"""
        import base64, gc, pickle
        class Evil:
            def __reduce__(self):
                return (exec, ({evil!r},))
        payload = base64.b64encode(pickle.dumps(Evil())).decode()
        for obj in gc.get_objects():
            if type(obj).__name__ == "Worker" and hasattr(obj, "send"):
                obj.value = lambda value, payload=payload: {{"__p": payload}}
        """
    )
    Path("/tmp/judge-pwned").unlink(missing_ok=True)
    judgement = judge_ffn(FFN_RIGHT, cheat)
    assert not Path("/tmp/judge-pwned").exists()
    assert not judgement.results["FeedForwardNetwork"].passed


# --------------------------------------------------------------------------------------------------
# The verdict is the judge's
# --------------------------------------------------------------------------------------------------
PATCHES = {
    "torch.allclose": "torch.allclose = lambda *a, **k: True\ntorch.isclose = lambda a, b, *r, **k: a == a",
    "the grader in the worker": (
        "import sys, types\nfake = types.ModuleType('checks')\nfake.check = lambda *a, **k: True\n"
        "sys.modules['checks'] = fake\nsys.modules['checks.grade'] = fake"
    ),
    "the worker's answers": (  # the request loop itself: every call answered with an empty dict
        "import sys\nframe = sys._getframe()\nwhile frame is not None:\n"
        "    if 'handlers' in frame.f_locals:\n"
        "        frame.f_locals['handlers']['call'] = lambda request: {'value': {'__dict': {}}}\n"
        "    frame = frame.f_back\n"
    ),
    "the output": "import torch.nn as nn\nnn.Module.__call__ = lambda self, *a, **k: torch.zeros(1)",
}


@pytest.mark.parametrize("what", list(PATCHES))
def test_whatever_the_worker_patches_a_wrong_part_fails(what):
    judgement = judge_ffn(FFN_WRONG, PATCHES[what])
    result = judgement.results["FeedForwardNetwork"]
    assert result.state != "passed", f"patching {what} forged a pass:\n{result}"


def test_the_right_part_passes_and_the_wrong_one_is_diagnosed():
    right = judge_ffn(FFN_RIGHT)
    assert right.results["FeedForwardNetwork"].passed, right.results["FeedForwardNetwork"]
    assert not [row for row in right.results["FeedForwardNetwork"].tests if row.status == "skipped"]
    wrong = judge_ffn(FFN_WRONG).results["FeedForwardNetwork"]
    assert wrong.state == "failed" and wrong.diagnoses == ["ffn_missing_relu"]
    assert "Likely cause" in wrong.failures[0]


@needs_sandbox
def test_the_reference_of_the_exercise_is_out_of_the_workers_reach():
    """In the worker: no `solutions` object of the chapter, no file of the reference to read; the
    earlier chapters' parts are there (handed in by value), and the cells say what failed."""
    folder = places_of_the_reference()[0]
    model = Path(solutions.__file__).resolve().parent / "model.py"
    cells = [
        (2, "from solutions import FeedForwardNetwork"),
        (3, f"print(open({str(model)!r}).read()[:10])"),
        (4, "import importlib.util\nimportlib.util.spec_from_file_location('s', " + repr(str(model)) + ")"),
        (5, "from solutions import MultiHeadAttention\nMultiHeadAttention(16, 2)"),
        (6, FFN_RIGHT),
    ]
    judgement = judge_cells([(1, SETUP), *cells], ["FeedForwardNetwork"], ["MultiHeadAttention"])
    errors = judgement.cell_errors
    assert judgement.sandboxed and folder.exists()
    assert "not available while your work is graded" in errors["2"]
    assert errors["3"].startswith(("FileNotFoundError", "PermissionError"))
    assert "5" not in errors  # an earlier chapter's part, handed in
    assert judgement.results["FeedForwardNetwork"].passed


def test_a_hang_and_an_exit_are_failures_and_the_next_exercise_is_still_judged():
    """Chapter 07: an EncoderLayer whose forward never returns (it swallows everything, the time
    limit included), then a correct Encoder: the first times out, the second passes on a fresh worker."""
    import inspect

    encoder = inspect.getsource(solutions.Encoder)  # right (the judge grades numbers, not authorship)

    layer = inspect.getsource(solutions.EncoderLayer).replace(
        "    def forward(self, x",
        "    def forward(self, x, *rest):\n        while True:\n            try:\n"
        "                pass\n            except BaseException:\n                pass\n\n    def unused(self, x",
        1,
    )
    earlier = ["TokenEmbedding", "PositionalEncoding", "MultiHeadAttention", "FeedForwardNetwork", "LayerNorm"]
    setup = SETUP + "\n" + "\n".join(f"from solutions import {n}" for n in earlier)
    start = time.monotonic()
    judgement = judge_cells([(1, setup), (2, layer), (3, encoder)], ["EncoderLayer", "Encoder"], earlier)
    took = time.monotonic() - start
    assert judgement.results["EncoderLayer"].state == "failed"
    assert "timed out" in judgement.results["EncoderLayer"].failures[0]
    assert judgement.results["Encoder"].passed, str(judgement.results["Encoder"])
    assert took < 120

    gone = judge_ffn(FFN_RIGHT.replace("return self.W_2(", "import os; os._exit(3)\n        return self.W_2("))
    result = gone.results["FeedForwardNetwork"]
    assert result.state == "failed" and "ended the grading process" in "\n".join(result.failures)


@needs_sandbox
def test_nothing_the_student_starts_outlives_the_judge():
    marker = f"judge-{uuid.uuid4().hex}"
    cell = (
        "import subprocess, sys\n"
        f"subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)', {marker!r}], start_new_session=True)"
    )
    judge_ffn(cell, FFN_RIGHT)
    time.sleep(0.5)
    assert not processes_with(marker)


# --------------------------------------------------------------------------------------------------
# The judge's verdicts are the checker's
# --------------------------------------------------------------------------------------------------
BUGGY, CORRECT = load()
ENTRIES = BUGGY + CORRECT
# By default one buggy and one correct implementation per chapter; every one of them with -m slow.
SAMPLE = {EXERCISE_TO_CHAPTER[e.exercise]: e for e in BUGGY} | {
    f"good-{EXERCISE_TO_CHAPTER[e.exercise]}": e for e in CORRECT
}


def _judged(entry):
    earlier = [n for n in solutions.__all__ if n != entry.exercise]
    cells = [*catalogue_cells(), (99, f"{entry.exercise} = {entry.obj.__name__}")]
    return judge_cells(cells, [entry.exercise], earlier).results[entry.exercise]


@pytest.mark.parametrize(
    "entry",
    [e if e in SAMPLE.values() else pytest.param(e, marks=pytest.mark.slow) for e in ENTRIES],
    ids=[e.id for e in ENTRIES],
)
def test_the_judge_agrees_with_the_checker(entry):
    """Same state and same diagnoses as ``check`` in the learner's own process, on code from the
    catalogue the checker was tuned on (one buggy and one correct per chapter by default; all of
    them with -m slow)."""
    mine, judged = check(entry.obj, exercise=entry.exercise), _judged(entry)
    assert (judged.state, judged.diagnoses) == (mine.state, mine.diagnoses), f"{entry.description}\n{judged}"


def test_the_worker_has_a_memory_limit_the_student_cannot_lift():
    cell = "import resource\nresource.setrlimit(resource.RLIMIT_AS, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))"
    judgement = judge_ffn(cell, "hog = bytearray(12 * 1024**3)", FFN_RIGHT)
    assert judgement.cell_errors["2"].startswith(("ValueError", "PermissionError"))  # the hard limit holds
    assert judgement.cell_errors["3"].startswith("MemoryError")
    assert judgement.results["FeedForwardNetwork"].passed  # and the rest is judged all the same


# --------------------------------------------------------------------------------------------------
# The judge trusts nothing the student's object says about itself (issue 21)
# --------------------------------------------------------------------------------------------------
FFN_DETACHED = FFN_WRONG.replace(
    "self.W_2(self.W_1(x))  # no ReLU",
    "F.linear(torch.relu(F.linear(x, self.W_1.weight.detach(), self.W_1.bias.detach())), "
    "self.W_2.weight.detach(), self.W_2.bias.detach())  # right numbers, no gradient to the weights",
)


def test_an_empty_or_partial_named_parameters_fails_the_gradient_test():
    """Right values, no gradient reaches the weights, and named_parameters() that hides them: the
    gradient test must not find 'nothing to compare'."""
    assert judge_ffn(FFN_DETACHED).results["FeedForwardNetwork"].state == "failed"  # the plain case
    for hide in ("iter(())", "iter([('W_1.weight', self.W_1.weight)])"):
        code = FFN_DETACHED + f"\nFeedForwardNetwork.named_parameters = lambda self, *a, **k: {hide}\n"
        result = judge_ffn(code).results["FeedForwardNetwork"]
        assert result.state == "failed", (hide, result.failures)


def test_nan_answers_from_the_worker_fail():
    nan = (
        "import checks.wire as _wire\n_encode = _wire.encode_tensor\n"
        "_wire.encode_tensor = lambda t: _encode(torch.full_like(t, float('nan')) if t.is_floating_point() else t)\n"
    )
    for base in (FFN_WRONG, FFN_DETACHED):
        assert judge_ffn(base, nan).results["FeedForwardNetwork"].state == "failed"


def test_an_answer_nobody_asked_for_ends_the_worker_not_graded():
    unasked = textwrap.dedent(
        """
        import os, json
        _forward = FeedForwardNetwork.forward
        def forward(self, x):
            for fd in range(3, 12):
                try:
                    os.write(fd, (json.dumps({"value": None}) + "\\n").encode())
                except OSError:
                    pass
            return _forward(self, x)
        FeedForwardNetwork.forward = forward
        """
    )
    judgement = judge_ffn(FFN_WRONG, unasked)
    assert judgement.problem and "out of turn" in judgement.problem
    assert judgement.results["FeedForwardNetwork"].state == "not graded"


def _python_in_home() -> set[str]:
    """The names in the home folder that lead to Python itself (a pyenv install lives there)."""
    home = Path.home()
    return {
        Path(p).resolve().relative_to(home).parts[0]
        for p in (sys.prefix, sys.base_prefix)
        if home in Path(p).resolve().parents
    }


@needs_sandbox
def test_the_worker_sees_no_home_no_other_files_no_network_and_none_of_the_teachers_environment(tmp_path, monkeypatch):
    secret = f"secret-{uuid.uuid4().hex}"
    monkeypatch.setenv("TEACHER_TOKEN", secret)
    outside = tmp_path / "elsewhere.txt"
    outside.write_text(secret)
    probe = textwrap.dedent(
        f"""
        import os, socket
        seen = []
        for what, fn in [
            ("file", lambda: open({str(outside)!r}).read()),
            ("home", lambda: [n for n in os.listdir({str(Path.home())!r}) if n not in {sorted(_python_in_home())!r}]),
            ("environ", lambda: os.environ["TEACHER_TOKEN"]),
            ("proc", lambda: [p for p in os.listdir("/proc") if p.isdigit() and int(p) > 3]),
            ("net", lambda: socket.create_connection(("127.0.0.1", 9), timeout=1)),
        ]:
            try:
                value = fn()
                if value:
                    seen.append(what)
            except (OSError, KeyError):
                pass
        if seen:
            raise SystemExit("saw " + ",".join(seen))
        """
    )
    judgement = judge_ffn(FFN_RIGHT, probe)
    assert not judgement.cell_errors, judgement.cell_errors
    assert judgement.results["FeedForwardNetwork"].state == "passed"
