"""Held-out round 2 (issue 22): a pattern observed in danhorvath/levenshtein_transformer (``optimizer.py``): a
linear-warm-up / inverse-square-root NoamOpt whose rate() multiplies the bound method ``self.step`` instead of
the step number, so every call raises TypeError.

Each case reproduces, in our own code, the behaviour its ``pattern`` describes; no code is copied.
Expectations were written before anything was graded.
"""

from . import case

SRC = dict(
    repo="danhorvath/levenshtein_transformer", path="optimizer.py", commit="ea6a6937310f6138531cb9508b2b2484f62fdcd3"
)


@case(
    "TransformerLRScheduler",
    "buggy",
    source=SRC,
    why="rate() uses `self.step` (the method) where it means the step number: `method * float` raises "
    "TypeError on every call, in warm-up and after it",
    expect=r"TypeError|\bmethod\b|self\.step|unsupported operand",
    pattern="(Adapted: the original's constructor is (warmup_init_lr, warmup_end_lr, warmup_updates, optimizer); "
    "here the contract's (optimizer, d_model, warmup_steps=4000, factor=1.0) with warm-up from 0 to the Noam "
    "peak factor * (d_model * warmup)^-0.5.) lr_step = (end - init) / warmup, decay_factor = end * warmup^0.5. "
    "get_lr(step=None) picks the step but then computes init + self.step * lr_step during warm-up and "
    "decay_factor * self.step ** -0.5 after it, with self.step the bound method. step(): counter += 1, rate = "
    "get_lr(), every group's lr = rate, optimizer.step().",
    differences=[
        "TypeError: the method self.step used as a number",
        "step() steps the optimizer",
        "linear warm-up from an initial rate, inverse-sqrt decay",
    ],
)
class TransformerLRScheduler:
    def __init__(self, optimizer, d_model, warmup_steps=4000, factor=1.0):
        self.optimizer = optimizer
        self._step = 0
        self.warmup_init_lr = 0.0
        self.warmup_end_lr = factor * (d_model * warmup_steps) ** -0.5
        self.warmup_updates = warmup_steps
        self.decay_factor = self.warmup_end_lr * warmup_steps**0.5
        self._rate = self.warmup_init_lr
        self.warmup_lr_step = (self.warmup_end_lr - self.warmup_init_lr) / warmup_steps

    def step(self):
        self._step += 1
        rate = self.get_lr()
        for group in self.optimizer.param_groups:
            group["lr"] = rate
        self._rate = rate
        self.optimizer.step()

    def get_lr(self, step=None):
        if step is None:
            step = self._step
        if step < self.warmup_updates:
            return self.warmup_init_lr + self.step * self.warmup_lr_step
        return self.decay_factor * self.step**-0.5
