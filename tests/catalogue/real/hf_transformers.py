"""Patterns observed in huggingface/transformers (``src/transformers/trainer_pt_utils.py``): the Trainer's
label-smoothing loss.

The case reproduces, in our own code, the behaviour its ``pattern`` describes; no code is copied.
"""

import torch
import torch.nn.functional as F
from torch import nn

from . import PASSES, case

SRC = dict(
    repo="huggingface/transformers",
    path="src/transformers/trainer_pt_utils.py",
    commit="010a915ce62bd1a3adb61d0eab2f0acca436b1c0",
)


@case(
    "LabelSmoothingLoss",
    "correct",
    source=SRC,
    why="(1-eps) * mean NLL + eps * mean over V of -log p, over the non-ignored tokens: F.cross_entropy's "
    "label smoothing; the smoothed term is summed in float32, a precision policy the contract leaves free",
    expect=PASSES,
    pattern="Negative log-probabilities (log_softmax); the NLL of the target (gathered, with targets clamped "
    "at 0 so that a negative ignore_index can be gathered) and the sum over the vocabulary (accumulated "
    "in float32) are zeroed at ignored positions; loss = (1-eps) * NLL sum / n + eps * vocabulary sum / "
    "(n * V), with n the number of non-ignored tokens.",
    differences=["the smoothing term is summed in float32"],
)
class LabelSmoothingLoss(nn.Module):
    def __init__(self, smoothing=0.1, ignore_index=0):
        super().__init__()
        self.smoothing = smoothing
        self.ignore_index = ignore_index

    def forward(self, logits, target):
        neg_logp = -F.log_softmax(logits, dim=-1)
        ignored = (target == self.ignore_index).unsqueeze(-1)
        gold = neg_logp.gather(-1, target.clamp(min=0).unsqueeze(-1)).masked_fill(ignored, 0.0)
        spread = neg_logp.sum(-1, keepdim=True, dtype=torch.float32).masked_fill(ignored, 0.0)
        n = ignored.numel() - ignored.long().sum()
        vocab = neg_logp.size(-1)
        return (1 - self.smoothing) * (gold.sum() / n) + self.smoothing * (spread.sum() / (n * vocab))
