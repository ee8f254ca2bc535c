"""Training pieces of "Attention Is All You Need": the learning-rate schedule (section 5.3) and
label smoothing (section 5.4)."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class TransformerLRScheduler:
    """The warmup schedule of section 5.3, equation 3:

    ``lr = factor * d_model^-0.5 * min(step^-0.5, step * warmup_steps^-1.5)``  for ``step >= 1``.

    The rate rises linearly for ``warmup_steps`` steps, peaks at ``factor * (d_model * warmup_steps)^-0.5``,
    then decays as ``1 / sqrt(step)``. Call ``step()`` once per training step, before
    ``optimizer.step()``: it advances the counter (the first call is step 1), writes the rate into
    every parameter group, and returns it. The constructor already sets the step-1 rate.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        d_model: int,
        warmup_steps: int = 4000,
        factor: float = 1.0,
    ) -> None:
        if warmup_steps < 1:
            raise ValueError(f"warmup_steps must be at least 1, got {warmup_steps}.")
        self.optimizer = optimizer
        self.d_model = d_model
        self.warmup_steps = warmup_steps
        self.factor = factor
        self.step_num = 0
        self._set_lr(self.get_lr(1))

    def get_lr(self, step_num: int) -> float:
        """The learning rate at ``step_num`` (counted from 1)."""
        if step_num < 1:
            raise ValueError(f"Steps are counted from 1, got step_num={step_num}.")
        return self.factor * self.d_model**-0.5 * min(step_num**-0.5, step_num * self.warmup_steps**-1.5)

    def step(self, step_num: int | None = None) -> float:
        """Advance to the next step (or jump to ``step_num``), set the rate, return it."""
        self.step_num = self.step_num + 1 if step_num is None else step_num
        lr = self.get_lr(self.step_num)
        self._set_lr(lr)
        return lr

    def _set_lr(self, lr: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def state_dict(self) -> dict:
        """What a checkpoint needs to resume the schedule."""
        return {
            "step_num": self.step_num,
            "d_model": self.d_model,
            "warmup_steps": self.warmup_steps,
            "factor": self.factor,
        }

    def load_state_dict(self, state: dict) -> None:
        self.__dict__.update(state)
        if self.step_num >= 1:
            self._set_lr(self.get_lr(self.step_num))


class LabelSmoothingLoss(nn.Module):
    """Cross-entropy against a smoothed target (section 5.4, Szegedy et al. 2016).

    The target distribution puts ``1 - smoothing`` on the right token and spreads ``smoothing``
    evenly over all ``V`` tokens, so each token's loss is
    ``(1 - smoothing) * (-log p[target]) + smoothing * mean_over_vocab(-log p)``.
    Positions whose target is ``ignore_index`` (padding) count for nothing; the result is the mean
    over the others. Equals ``F.cross_entropy(..., label_smoothing=smoothing, ignore_index=ignore_index)``.

    Shapes: ``logits`` [..., V], ``target`` [...] (long) -> scalar.
    """

    def __init__(self, smoothing: float = 0.1, ignore_index: int = 0) -> None:
        super().__init__()
        if not 0.0 <= smoothing <= 1.0:
            raise ValueError(f"smoothing must be between 0 and 1, got {smoothing}.")
        self.smoothing = smoothing
        self.ignore_index = ignore_index

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        vocab_size = logits.size(-1)
        log_probs = F.log_softmax(logits.reshape(-1, vocab_size), dim=-1)  # [N, V]
        target = target.reshape(-1)  # [N]
        keep = target != self.ignore_index  # [N]
        safe_target = target.masked_fill(~keep, 0)  # any valid index; these rows are dropped below
        nll = -log_probs.gather(1, safe_target.unsqueeze(1)).squeeze(1)  # [N]
        uniform = -log_probs.mean(dim=-1)  # [N]
        loss = (1.0 - self.smoothing) * nll + self.smoothing * uniform
        return loss[keep].mean()
