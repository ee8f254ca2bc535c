"""The precision policy (CONTRACT.md, "Decisions"): a scalar loss computed in float32 from float64
logits is accepted when it matches at float32's tolerance; a lower precision, or a wrong float32 loss,
still fails. (A layer's tensor output keeps the input's dtype: that rule is unchanged.)"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from checks import check


class LossInFloat32(nn.Module):
    """The usual mixed-precision habit: the loss is computed in float32 whatever the logits' dtype."""

    def __init__(self, smoothing=0.1, ignore_index=0):
        super().__init__()
        self.smoothing = smoothing
        self.ignore_index = ignore_index

    def forward(self, logits, target):
        flat = logits.reshape(-1, logits.size(-1)).float()
        return F.cross_entropy(flat, target.reshape(-1), label_smoothing=self.smoothing, ignore_index=self.ignore_index)


class LossInFloat16ForFloat64(LossInFloat32):
    """Right in float32, but float64 logits give a float16 loss."""

    def forward(self, logits, target):
        loss = super().forward(logits, target)
        return loss.half() if logits.dtype == torch.float64 else loss


class LossInFloat32SlightlyOff(LossInFloat32):
    """Computed in float32, but off by 1e-3 (far beyond float32's rounding) for float64 logits."""

    def forward(self, logits, target):
        loss = super().forward(logits, target)
        return loss * 1.001 if logits.dtype == torch.float64 else loss


def test_a_loss_computed_in_float32_passes() -> None:
    result = check(LossInFloat32, "LabelSmoothingLoss")
    assert result.passed, str(result)


def test_a_float16_loss_for_float64_logits_fails() -> None:
    result = check(LossInFloat16ForFloat64, "LabelSmoothingLoss")
    assert result.state == "failed", str(result)
    assert "float16" in "\n".join(result.failures)
    assert "float64_fails" in result.diagnoses


def test_a_float32_loss_must_still_be_right() -> None:
    result = check(LossInFloat32SlightlyOff, "LabelSmoothingLoss")
    assert result.state == "failed", str(result)
    assert "computed in float32" in "\n".join(result.failures)
