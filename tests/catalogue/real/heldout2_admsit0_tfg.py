"""Held-out round 2 (issue 22): a pattern observed in admsit0/tfg (``src/regularizers/label_smoothing.py``): a
label-smoothing cross-entropy with smoothing/(V-1) off the target, no ignore index and a default of no smoothing.

Each case reproduces, in our own code, the behaviour its ``pattern`` describes; no code is copied.
Expectations were written before anything was graded.
"""

import torch
import torch.nn.functional as F

from . import case

SRC = dict(
    repo="admsit0/tfg", path="src/regularizers/label_smoothing.py", commit="b41f63e19abd20337e1c380655a62f7f0030dd66"
)


@case(
    "LabelSmoothingLoss",
    "buggy",
    source=SRC,
    why="no ignore_index (padding targets are averaged in), smoothing/(V-1) on the other classes with exactly "
    "1 - smoothing on the target, and smoothing defaults to 0",
    expect=r"ignore_index|(not|never|doesn't|does not|without)\b.{0,30}ignor|pad(ding)? (tokens?|positions?|"
    r"targets?)|V ?- ?1",
    pattern="Constructor (smoothing=0.0) only (asserts 0 <= smoothing < 1). forward(logits, target): log_softmax; "
    "under no_grad a distribution of smoothing / (V - 1) with 1 - smoothing scattered at the target; "
    "mean over rows of sum(-dist * log_probs). (Adapted: logits flattened to [N, V]; the original takes 2-D.)",
    differences=["no ignore_index", "smoothing / (V - 1) off the target", "default smoothing 0"],
)
class LabelSmoothingLoss(torch.nn.Module):
    def __init__(self, smoothing=0.0):
        super().__init__()
        assert 0.0 <= smoothing < 1.0
        self.smoothing = smoothing

    def forward(self, logits, target):
        vocab = logits.size(-1)
        log_probs = F.log_softmax(logits.reshape(-1, vocab), dim=-1)
        with torch.no_grad():
            dist = torch.zeros_like(log_probs)
            dist.fill_(self.smoothing / (vocab - 1))
            dist.scatter_(1, target.reshape(-1, 1), 1.0 - self.smoothing)
        return torch.mean(torch.sum(-dist * log_probs, dim=-1))
