"""Held-out round 2 (issue 22): a softmax helper observed in shawnspitzel/cs336
(``assignment1-basics/cs336_basics/model/softmax.py``): stable, but `dim` has no default.

Each case reproduces, in our own code, the behaviour its ``pattern`` describes; no code is copied.
Expectations were written before anything was graded.
"""

import torch

from . import case


@case(
    "softmax",
    "variant",
    source=dict(
        repo="shawnspitzel/cs336",
        path="assignment1-basics/cs336_basics/model/softmax.py",
        commit="1fa70fe42910663371e7e679b9a0992e1803d087",
    ),
    why="stable and right along any axis, but `dim` is a required argument: softmax(x) raises TypeError where "
    "the contract's default is dim=-1",
    expect=r"\bdim\b.{0,60}(default|required|missing)|(default|required|missing).{0,60}\bdim\b|positional argument",
    pattern="softmax(x, dim) with no default: subtract the maximum along dim (keepdim), exponentiate, divide by "
    "the sum along dim.",
    differences=["dim has no default"],
)
def softmax(x, dim):
    shifted = x - torch.max(x, dim=dim, keepdim=True).values
    e = torch.exp(shifted)
    return e / torch.sum(e, dim=dim, keepdim=True)
