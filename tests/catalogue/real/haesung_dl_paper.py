"""Patterns observed in haesung-j/DL_Paper (``NLP/transformer/utils.py``): a Noam scheduler class.

The case reproduces, in our own code, the behaviour its ``pattern`` describes; no code is copied.
"""

from . import case

SRC = dict(
    repo="haesung-j/DL_Paper",
    path="NLP/transformer/utils.py",
    commit="ef6da889f874c8e75b7f3cbc426579d85af7a42c",
)


@case(
    "TransformerLRScheduler",
    "buggy",
    source=SRC,
    why="sets the rate on param_groups[0] only (any other parameter group keeps its old lr); also no "
    "get_lr and step() returns nothing",
    expect=r"param.?group|every group|each group|all .{0,20}groups",
    pattern="A plain class (optimizer, d_model, warmup_steps=4000, factor=1) with a step counter from 0. "
    "step() takes no argument: it adds 1, computes factor * d_model^-0.5 * min(n^-0.5, n * warmup^-1.5) "
    "and writes it to the FIRST parameter group only; it returns None. No get_lr, nothing set at "
    "construction.",
    differences=[
        "rate written to param_groups[0] only",
        "no get_lr",
        "step() returns None",
        "no rate before the first step",
    ],
)
class TransformerLRScheduler:
    def __init__(self, optimizer, d_model, warmup_steps=4000, factor=1):
        self.optimizer = optimizer
        self.d_model = d_model
        self.warmup_steps = warmup_steps
        self.factor = factor
        self.n = 0

    def step(self):
        self.n += 1
        decay = self.n**-0.5
        ramp = self.n * self.warmup_steps**-1.5
        self.optimizer.param_groups[0]["lr"] = self.factor * self.d_model**-0.5 * min(decay, ramp)
