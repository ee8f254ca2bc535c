"""Patterns observed in karpathy/nanoGPT (``model.py``): its LayerNorm with an optional bias and the manual
attention branch of its causal self-attention.

Each case reproduces, in our own code, the behaviour its ``pattern`` describes; no code is copied.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from . import PASSES, case

SRC = dict(
    repo="karpathy/nanoGPT",
    path="model.py",
    commit="0011cd4442915c844e9b8f5c5117f25f5a7096c5",
)


@case(
    "LayerNorm",
    "variant",
    source=SRC,
    why="eps is fixed at 1e-5 inside F.layer_norm: there is no eps argument (an optional bias instead)",
    expect=r"eps",
    pattern="Constructor (d_model, bias=True): weight = ones, bias = zeros or None when bias=False; forward "
    "is F.layer_norm over the last axis with the eps hard-wired to 1e-5. There is no eps argument.",
    differences=["no eps argument (fixed 1e-5)", "optional bias instead"],
)
class LayerNorm(nn.Module):
    def __init__(self, d_model, bias=True):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d_model))
        self.bias = nn.Parameter(torch.zeros(d_model)) if bias else None

    def forward(self, x):
        return F.layer_norm(x, (x.shape[-1],), weight=self.weight, bias=self.bias, eps=1e-5)


@case(
    "scaled_dot_product_attention",
    "correct",
    source=SRC,
    why="(q @ k^T) * 1/sqrt(d_k), masked_fill(mask == 0, -inf), softmax, @ v: any leading axes",
    expect=PASSES,
    pattern="Scores = (q @ k^T) multiplied by 1/sqrt(d_k) (d_k from the key), blocked positions "
    "(mask == 0) set to -inf, softmax over the keys, optional dropout module on the weights; returns "
    "(weights @ v, weights). Works for any number of leading axes.",
    differences=["multiplies by the reciprocal of sqrt(d_k)", "-inf fill", "extra optional `dropout`"],
)
def scaled_dot_product_attention(q, k, v, mask=None, dropout=None):
    inv_scale = 1.0 / math.sqrt(k.shape[-1])
    logits = torch.matmul(q, k.mT) * inv_scale
    if mask is not None:
        logits = torch.where(mask == 0, float("-inf"), logits)
    probs = logits.softmax(dim=-1)
    if dropout is not None:
        probs = dropout(probs)
    return torch.matmul(probs, v), probs
