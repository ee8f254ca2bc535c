"""Patterns observed in tgadeliya/matcha (``src/matcha/components/utils.py``): a softmax helper.

The case reproduces, in our own code, the behaviour its ``pattern`` describes; no code is copied.
"""

import torch

from . import case

SRC = dict(
    repo="tgadeliya/matcha",
    path="src/matcha/components/utils.py",
    commit="003c30dbc638cb504a43c7810bf7ff1f63cd23ad",
)


@case(
    "softmax",
    "buggy",
    source=SRC,
    why="ignores `dim`: normalises over the last axis whatever dim says (and subtracts the global max, which "
    "can underflow a whole row)",
    expect=r"wrong axis|along `dim`|along dim|ignores .?dim",
    pattern="Subtracts the single maximum of the whole tensor (no axis), exponentiates, and divides by the "
    "sum over the LAST axis (keepdim); the `dim` argument is accepted and never used.",
    differences=["normalises over the last axis whatever `dim` is", "global maximum instead of one per row"],
)
def softmax(x, dim=-1):
    e = (x - torch.max(x)).exp()
    return e / torch.sum(e, dim=-1, keepdim=True)
