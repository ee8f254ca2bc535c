"""Held-out round 2 (issue 22): a softmax observed in RashikShahjahan/micrograd-extented
(``micrograd/layers/softmax.py``): exp / sum over the last axis, no maximum subtracted.

Each case reproduces, in our own code, the behaviour its ``pattern`` describes; no code is copied.
Expectations were written before anything was graded.
"""

from . import case


@case(
    "softmax",
    "buggy",
    source=dict(
        repo="RashikShahjahan/micrograd-extented",
        path="micrograd/layers/softmax.py",
        commit="5db434d0fe183e9a545f302604084ae7cd06a757",
    ),
    why="exp(x) / sum(exp(x)) with no maximum subtracted: large inputs overflow to inf / NaN; always over the "
    "last axis",
    expect=r"stab|overflow|\binf\b|\bnan\b|maximum|max\b|large (inputs?|values?|numbers?)",
    pattern="(Adapted: the original is an nn.Module whose forward(x) does this; here the contract's function.) "
    "x.exp() / x.exp().sum(-1).unsqueeze(-1): no shift by the maximum, the last axis whatever dim is.",
    differences=["no maximum subtracted (overflows)", "last axis only"],
)
def softmax(x, dim=-1):
    return x.exp() / x.exp().sum(-1).unsqueeze(-1)
