"""Patterns observed in zhengxxn/NMT (``src/util/lr_scheduler/noam_lr_scheduler.py``): the Noam schedule
as a torch learning-rate scheduler.

The case reproduces, in our own code, the behaviour its ``pattern`` describes; no code is copied.
"""

from torch.optim.lr_scheduler import LRScheduler

from . import case

SRC = dict(
    repo="zhengxxn/NMT",
    path="src/util/lr_scheduler/noam_lr_scheduler.py",
    commit="ab870a6910e2c91f3e624440d1fe89b126fe6f8d",
)


@case(
    "TransformerLRScheduler",
    "variant",
    source=SRC,
    why="a torch.optim.lr_scheduler subclass: the rates are equation 3's (step 1 set at construction), but "
    "get_lr() takes no step number and step() returns None",
    expect=r"get_lr\(step_num\)|get_lr.{0,60}(step|argument)|step_num|returns? (None|nothing)",
    pattern="A torch.optim.lr_scheduler.LRScheduler subclass (optimizer, d_model, warmup_steps=4000, "
    "factor=1.0, last_epoch=-1). get_lr() takes no step: with s = max(1, last_epoch) every group gets "
    "factor * d_model^-0.5 * min(s^-0.5, s * warmup^-1.5); the base class applies it at construction "
    "(step 1) and at every step(), which returns None.",
    differences=["get_lr() takes no step number (it reads last_epoch)", "step() returns None"],
)
class TransformerLRScheduler(LRScheduler):
    def __init__(self, optimizer, d_model, warmup_steps=4000, factor=1.0, last_epoch=-1):
        self.d_model = d_model
        self.warmup_steps = warmup_steps
        self.factor = factor
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        s = max(1, self.last_epoch)
        lr = self.factor * (self.d_model**-0.5 * min(s**-0.5, s * self.warmup_steps**-1.5))
        return [lr] * len(self.optimizer.param_groups)
