"""Held-out round 2 (issue 22): a pattern observed in dwzhang00/Offline-translation (``lib/optimizer.py``): a
NoamOpt wrapper whose rate() has the Noam formula commented out and returns a constant 1e-6.

Each case reproduces, in our own code, the behaviour its ``pattern`` describes; no code is copied.
Expectations were written before anything was graded.
"""

from . import case

SRC = dict(
    repo="dwzhang00/Offline-translation", path="lib/optimizer.py", commit="fa53430e76f5e063c937d2ab16a92cc0241a61b9"
)


@case(
    "TransformerLRScheduler",
    "buggy",
    source=SRC,
    why="the rate is the constant 1e-6 at every step (the warm-up formula is commented out); step() also runs "
    "optimizer.step() and returns nothing",
    expect=r"constant|1e-0?6|0\.000001|same (rate|value|learning rate)|(does not|doesn't|never) (change|vary|"
    r"depend|follow)",
    pattern="(Adapted: the original is NoamOpt(model_size, factor, warmup, optimizer) with rate(step=None); here "
    "the contract's constructor and get_lr.) get_lr(step=None) returns 1e-6 whatever the step (the formula "
    "factor * d^-0.5 * min(...) is present only as a comment). step(): counter += 1, every group's lr = "
    "get_lr(), optimizer.step(); returns None. The constructor sets no rate.",
    differences=["constant rate 1e-6", "step() steps the optimizer and returns None"],
)
class TransformerLRScheduler:
    def __init__(self, optimizer, d_model, warmup_steps=4000, factor=1.0):
        self.optimizer = optimizer
        self.d_model = d_model
        self.warmup_steps = warmup_steps
        self.factor = factor
        self._step = 0
        self._rate = 0

    def get_lr(self, step_num=None):
        if step_num is None:
            step_num = self._step
        # the schedule, factor * d_model**-0.5 * min(...), was switched off in favour of a fixed rate
        return 1e-6

    def step(self):
        self._step += 1
        rate = self.get_lr()
        for group in self.optimizer.param_groups:
            group["lr"] = rate
        self._rate = rate
        self.optimizer.step()
