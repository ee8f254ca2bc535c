"""The flag "reference copied": the reference handed in is flagged, and code people really write is not."""

from __future__ import annotations

import inspect
import linecache
import sys
from pathlib import Path

import pytest
import torch
import torch.nn as nn

import solutions
from checks import check

sys.path.insert(0, str(Path(__file__).resolve().parent))
from catalogue import load

_, CORRECT_CASES = load()


def notebook_cell(source: str, name: str, number: int) -> object:
    """Define ``name`` as a notebook cell would (its source in linecache, the module __main__)."""
    filename = f"<ipython-input-{number}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    namespace = {"__name__": "__main__", "torch": torch, "nn": nn, "solutions": solutions, "math": __import__("math")}
    exec(compile(source, filename, "exec"), namespace)
    return namespace[name]


def test_the_reference_a_subclass_a_wrapper_and_a_pasted_copy_are_flagged() -> None:
    reference = solutions.FeedForwardNetwork
    pasted = notebook_cell(inspect.getsource(reference).replace('"""', '"""My own work. ', 1), "FeedForwardNetwork", 1)
    subclass = notebook_cell(
        "class FeedForwardNetwork(solutions.FeedForwardNetwork):\n    pass\n", "FeedForwardNetwork", 2
    )
    wrapper = notebook_cell(
        "class FeedForwardNetwork(nn.Module):\n    def __init__(self, d_model, d_ff):\n        super().__init__()\n"
        "        self.inner = solutions.FeedForwardNetwork(d_model, d_ff)\n\n    def forward(self, x):\n"
        "        return self.inner(x)\n",
        "FeedForwardNetwork",
        3,
    )
    for copied in (reference, pasted, subclass):
        result = check(copied, "FeedForwardNetwork")
        assert result.passed and result.flags and result.flags[0].startswith("reference copied"), result.flags
    assert any(f.startswith("reference copied") for f in check(wrapper, "FeedForwardNetwork").flags)
    assert "reference copied" not in str(check(pasted, "FeedForwardNetwork"))  # for the teacher, not the learner


@pytest.mark.parametrize("case", CORRECT_CASES, ids=lambda c: c.id)
def test_correct_code_written_differently_is_not_flagged(case) -> None:
    result = check(case.obj, case.exercise)
    assert result.passed and result.flags == [], (case.id, result.flags)
