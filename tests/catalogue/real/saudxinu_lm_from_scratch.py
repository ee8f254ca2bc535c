"""Patterns observed in SaudxInu/language-modeling-from-scratch (Stanford CS336 assignment 1 solutions):
its softmax module.

The case reproduces, in our own code, the behaviour its ``pattern`` describes; no code is copied.
"""

import torch

from . import PASSES, case

SRC = dict(
    repo="SaudxInu/language-modeling-from-scratch",
    path="assignment1-basics/cs336_basics/nn/modules/softmax.py",
    commit="9bf49c718f13bf40640dbdd4fb62288bc5a66b07",
)


@case(
    "softmax",
    "correct",
    source=SRC,
    why="subtracts the max along dim, exponentiates, divides by the sum along dim (no in-place change of x)",
    expect=PASSES,
    pattern="The maximum along `dim` (keepdim) is subtracted out of place, the result exponentiated and "
    "divided by its sum along `dim`.",
    differences=["max taken with torch.max(..., dim).values"],
)
def softmax(x, dim=-1):
    peak = torch.max(x, dim=dim, keepdim=True).values
    numerator = (x - peak).exp()
    return numerator / numerator.sum(dim=dim, keepdim=True)
