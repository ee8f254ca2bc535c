"""Patterns observed in bewhitehorse/transformer-practice (``optim/schedulers.py``): the "NoamOpt" optimizer
wrapper of the Annotated Transformer's 2018 edition, as many repositories carry it.

The case reproduces, in our own code, the behaviour its ``pattern`` describes; no code is copied.
"""

from . import case

SRC = dict(
    repo="bewhitehorse/transformer-practice",
    path="optim/schedulers.py",
    commit="08b6d7528377b7d3806752a6134fe65ce4f1a82e",
)


@case(
    "TransformerLRScheduler",
    "variant",
    source=SRC,
    why="an optimizer wrapper: step() sets the rate and calls optimizer.step() (returns nothing); the first "
    "rate is set at the first step; its rate function with an optional step is the contract's get_lr",
    expect=r"optimizer\.step|steps the optimizer|wrapper",
    pattern="Wraps the optimizer (optimizer, d_model, warmup_steps=4000, factor=1.0); counter from 0, "
    "last rate remembered (0 at first). step() takes no argument: +1, rate = get_lr(), written to every "
    "group, then optimizer.step(); returns None. get_lr(step_num=None) uses the counter when no step "
    "is given: factor * d_model^-0.5 * min(s^-0.5, s * warmup^-1.5).",
    differences=[
        "step() also calls optimizer.step()",
        "step() takes no step number and returns None",
        "no rate set at construction",
    ],
)
class TransformerLRScheduler:
    def __init__(self, optimizer, d_model, warmup_steps=4000, factor=1.0):
        self.optimizer = optimizer
        self.d_model = d_model
        self.warmup_steps = warmup_steps
        self.factor = factor
        self.count = 0
        self.last_rate = 0

    def get_lr(self, step_num=None):
        s = self.count if step_num is None else step_num
        return self.factor * (self.d_model**-0.5 * min(s**-0.5, s * self.warmup_steps**-1.5))

    def step(self):
        self.count += 1
        self.last_rate = self.get_lr()
        for group in self.optimizer.param_groups:
            group["lr"] = self.last_rate
        self.optimizer.step()
