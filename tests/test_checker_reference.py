"""The checker on the reference and on untouched stubs, through ``check()`` as a learner calls it.

* every reference implementation passes every test of its exercise;
* every untouched stub, written the way the chapters write them, reads "not attempted";
* ``check("Name")`` finds the learner's object in the notebook (``__main__``);
* composite exercises are graded with reference parts, and a mistake in an earlier part is blamed on
  that part; the learner's namespace is left as it was.
"""

from __future__ import annotations

import inspect
import sys
import types

import pytest
import torch

import solutions
from checks import check
from checks.chapters import EXERCISE_TO_CHAPTER
from checks.specs import SPECS
from checks.specs.ch00_introduction import reference_softmax

EXERCISES = list(EXERCISE_TO_CHAPTER)

@pytest.fixture(autouse=True)
def _private_progress_file(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """check() records progress (checks.progress): keep it out of the real home folder."""
    monkeypatch.setenv("WORKBOOK_HOME", str(tmp_path / "workbook-home"))



def reference(name: str):
    return reference_softmax if name == "softmax" else getattr(solutions, name)


def notebook(source: str, name: str = "learner_notebook") -> types.ModuleType:
    """Run ``source`` as a notebook would: in its own module namespace (like ``__main__``)."""
    module = types.ModuleType(name)
    module.__dict__.update({"torch": torch, "nn": torch.nn, "math": __import__("math")})
    sys.modules[name] = module
    exec(compile(source, f"<{name}>", "exec"), module.__dict__)
    return module


def test_every_exercise_has_a_spec() -> None:
    assert set(SPECS) == set(EXERCISES)


@pytest.mark.parametrize("name", EXERCISES)
def test_reference_passes_every_check(name: str) -> None:
    result = check(reference(name), exercise=name)
    assert result.state == "passed", str(result)
    assert result.passed and result.failures == [] and result.diagnoses == []
    assert result.tests and all(row.status == "passed" for row in result.tests), str(result)
    assert {row.name.split(":")[0] for row in result.tests} >= {"interface", "numbers"}


def _stub_source(name: str, where: str) -> str:
    """A chapter-style stub: the real signature, a body that raises NotImplementedError."""
    ref = reference(name)
    if inspect.isfunction(ref):
        return f"def {name}{inspect.signature(ref)}:\n    raise NotImplementedError('Exercise: write {name}')\n"
    init_sig = str(inspect.signature(ref.__init__))
    is_module = issubclass(ref, torch.nn.Module)
    base = "(nn.Module)" if is_module else ""
    sup = "        super().__init__()\n" if is_module else ""
    method = "forward" if is_module else "step"
    if where == "init":
        return (f"class {name}{base}:\n    def __init__{init_sig}:\n{sup}"
                f"        raise NotImplementedError('Exercise: build the parts of {name}')\n\n"
                f"    def {method}(self, *args, **kwargs):\n        raise NotImplementedError\n")
    body = sup or "        pass\n"
    extra = "" if is_module else "    def get_lr(self, step_num):\n        raise NotImplementedError\n"
    return (f"class {name}{base}:\n    def __init__{init_sig}:\n{body}\n"
            f"    def {method}(self, *args, **kwargs):\n        raise NotImplementedError('Exercise')\n{extra}")


@pytest.mark.parametrize("where", ["init", "forward"])
@pytest.mark.parametrize("name", EXERCISES)
def test_untouched_stub_is_not_attempted(name: str, where: str) -> None:
    if where == "forward" and inspect.isfunction(reference(name)):
        pytest.skip("functions have one body")
    module = notebook(_stub_source(name, where), f"stub_{name}_{where}")
    result = check(getattr(module, name))
    assert result.state == "not attempted", str(result)
    assert not result.passed
    assert "NotImplementedError" in result.failures[0]


def test_check_by_name_looks_in_the_notebook(monkeypatch: pytest.MonkeyPatch) -> None:
    main = sys.modules["__main__"]
    monkeypatch.setattr(main, "FeedForwardNetwork", solutions.FeedForwardNetwork, raising=False)
    assert check("FeedForwardNetwork").state == "passed"
    monkeypatch.delattr(main, "LayerNorm", raising=False)
    result = check("LayerNorm")
    assert result.state == "not attempted" and "not defined" in result.failures[0]


def test_unknown_exercise_is_a_clear_failure_not_an_exception() -> None:
    def my_helper(x):
        return x

    result = check(my_helper)
    assert result.state == "failed" and "no exercise called 'my_helper'" in result.failures[0]


def test_an_instance_is_graded_by_its_class_and_left_untouched() -> None:
    layer = solutions.LayerNorm(16)
    with torch.no_grad():
        layer.weight.fill_(3.0)
    before = {k: v.clone() for k, v in layer.state_dict().items()}
    assert check(layer).state == "passed"
    assert all(torch.equal(before[k], v) for k, v in layer.state_dict().items())
    assert layer.training


BUGGY_MHA_NOTEBOOK = '''
from solutions import FeedForwardNetwork, LayerNorm, scaled_dot_product_attention

class MultiHeadAttention(nn.Module):          # forgets W_o in forward
    def __init__(self, d_model, num_heads):
        super().__init__()
        self.h, self.d_k = num_heads, d_model // num_heads
        self.W_q, self.W_k = nn.Linear(d_model, d_model), nn.Linear(d_model, d_model)
        self.W_v, self.W_o = nn.Linear(d_model, d_model), nn.Linear(d_model, d_model)

    def forward(self, query, key, value, mask=None):
        b = query.size(0)
        split = lambda x: x.view(b, -1, self.h, self.d_k).transpose(1, 2)
        out, self.attention_weights = scaled_dot_product_attention(
            split(self.W_q(query)), split(self.W_k(key)), split(self.W_v(value)), mask)
        return out.transpose(1, 2).reshape(b, -1, self.h * self.d_k)

class EncoderLayer(nn.Module):                # right
    def __init__(self, d_model, num_heads, d_ff, dropout=0.1):
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, num_heads)
        self.feed_forward = FeedForwardNetwork(d_model, d_ff)
        self.norm1, self.norm2 = LayerNorm(d_model), LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x, mask=None):
        x = self.norm1(x + self.dropout(self.self_attn(x, x, x, mask)))
        return self.norm2(x + self.dropout(self.feed_forward(x)))
'''


def test_a_faulty_earlier_part_is_blamed_not_the_layer() -> None:
    nb = notebook(BUGGY_MHA_NOTEBOOK, "nb_buggy_mha")
    own_mha = nb.MultiHeadAttention
    assert "mha_no_output_projection" in check(nb.MultiHeadAttention).diagnoses
    result = check(nb.EncoderLayer)
    assert result.state == "failed"
    assert result.diagnoses == ["uses_faulty_part"]
    assert "right when given a correct MultiHeadAttention" in result.failures[0]
    assert "problem is in your MultiHeadAttention" in result.failures[0]
    assert [r.status for r in result.tests if r.name.startswith(("interface", "numbers"))] == ["passed"] * 2
    assert nb.MultiHeadAttention is own_mha  # the learner's namespace is restored


def test_a_part_that_is_still_a_stub_is_named() -> None:
    source = BUGGY_MHA_NOTEBOOK.replace("        b = query.size(0)\n",
                                        "        raise NotImplementedError('Exercise')\n")
    nb = notebook(source, "nb_stub_mha")
    assert check(nb.MultiHeadAttention).state == "not attempted"
    result = check(nb.EncoderLayer)
    assert result.state == "failed"
    assert "your own MultiHeadAttention is not written yet" in result.failures[0]
