"""Patterns observed in fubiye/finlp (``finlp/loss/util.py``): a sequence-labelling cross-entropy with
label smoothing.

The case reproduces, in our own code, the behaviour its ``pattern`` describes; no code is copied.
"""

import torch.nn.functional as F
from torch import nn

from . import PASSES, case

SRC = dict(
    repo="fubiye/finlp",
    path="finlp/loss/util.py",
    commit="c60338664f15a43b95a34941aeaf56cd5c85139c",
)


@case(
    "LabelSmoothingLoss",
    "correct",
    source=SRC,
    why="drops the padding positions first, then F.cross_entropy(label_smoothing=...): the same mean over the "
    "non-ignored tokens",
    expect=PASSES,
    pattern="Selects the positions whose target is not the padding index (boolean indexing of the targets "
    "and of the logits' leading axes), then returns F.cross_entropy of those rows with "
    "label_smoothing=smoothing and no ignore_index.",
    differences=["padding removed before the loss instead of ignore_index"],
)
class LabelSmoothingLoss(nn.Module):
    def __init__(self, smoothing=0.1, ignore_index=0):
        super().__init__()
        self.smoothing = smoothing
        self.ignore_index = ignore_index

    def forward(self, logits, target):
        keep = target != self.ignore_index
        return F.cross_entropy(logits[keep], target[keep], label_smoothing=self.smoothing)
