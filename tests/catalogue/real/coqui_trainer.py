"""Patterns observed in coqui-ai/Trainer (``trainer/torch.py``): its Noam learning-rate scheduler.

The case reproduces, in our own code, the behaviour its ``pattern`` describes; no code is copied.
"""

from torch.optim import lr_scheduler

from . import case

SRC = dict(
    repo="coqui-ai/Trainer",
    path="trainer/torch.py",
    commit="2b9b14e27abf74d600dcf875769b7bc340b08aad",
)


@case(
    "TransformerLRScheduler",
    "variant",
    source=SRC,
    why="the Noam shape normalised to peak at the optimizer's base lr (base_lr * warmup^0.5 * min(...)): no "
    "d_model^-0.5; a torch LR scheduler (get_lr() without a step number, step() returns None)",
    expect=r"d_model|equation 3|formula|base.?lr|get_lr\(step_num\)|get_lr.{0,60}(step|argument)|step_num",
    pattern="A torch.optim.lr_scheduler._LRScheduler subclass (optimizer, d_model, warmup_steps=4000, "
    "factor=1.0, last_epoch=-1); d_model and factor are not used. get_lr() takes no step: with "
    "s = max(last_epoch, 1) and w = float(warmup_steps), each group gets "
    "base_lr * w^0.5 * min(s * w^-1.5, s^-0.5). step() is the base class's (returns None).",
    differences=[
        "rate relative to the optimizer's base lr, no d_model^-0.5",
        "no factor",
        "get_lr() takes no step number",
        "step() returns None",
    ],
)
class TransformerLRScheduler(lr_scheduler._LRScheduler):
    def __init__(self, optimizer, d_model, warmup_steps=4000, factor=1.0, last_epoch=-1):
        self.w = float(warmup_steps)
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        s = max(self.last_epoch, 1)
        shape = min(s * self.w**-1.5, s**-0.5)
        return [lr0 * self.w**0.5 * shape for lr0 in self.base_lrs]
