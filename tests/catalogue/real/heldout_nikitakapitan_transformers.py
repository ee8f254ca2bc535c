"""Held-out round: patterns observed in nikitakapitan/transformers (``src/transformers/``): a LayerNorm whose
forward names a parameter it never defined, a uint8 three-dimensional future mask, and multi-head attention
with its arguments in the other order.

Each case reproduces, in our own code, the behaviour its ``pattern`` describes; no code is copied.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from . import case


def src(path, commit):
    return dict(repo="nikitakapitan/transformers", path=path, commit=commit)


@case(
    "LayerNorm",
    "buggy",
    source=src("src/transformers/LayerNorm.py", "54a608f013d188b266c7578ed7ffdfc4aeed1a3d"),
    why="forward uses `self.b_2`, but the shift was registered as `b2`: every call raises AttributeError "
    "(and the parameters are a_2 / b2, not weight / bias; unbiased std with eps outside the root)",
    expect=r"b_2|AttributeError|has no attribute|a_2|\bweight\b",
    pattern="Constructor (features, eps=1e-6): parameters a_2 (ones) and b2 (zeros), eps stored. forward: "
    "a_2 * (x - mean) / (x.std(-1) + eps) + self.b_2, the last name misspelt, so it raises AttributeError "
    "before returning.",
    differences=["AttributeError in forward (b_2 vs b2)", "parameter names a_2 / b2", "unbiased std, eps added to it"],
)
class LayerNorm(nn.Module):
    def __init__(self, d_model, eps=1e-6):
        super().__init__()
        self.a_2 = nn.Parameter(torch.ones(d_model))
        self.b2 = nn.Parameter(torch.zeros(d_model))
        self.eps = eps

    def forward(self, x):
        mu = x.mean(-1, keepdim=True)
        sd = x.std(-1, keepdim=True)
        return self.a_2 * (x - mu) / (sd + self.eps) + self.b_2


@case(
    "create_future_mask",
    "buggy",
    source=src("src/transformers/mask.py", "54a608f013d188b266c7578ed7ffdfc4aeed1a3d"),
    why="a uint8 [1, size, size] lower triangle: not bool, and no head axis",
    expect=r"bool|uint8|dtype|\[1, ?1, ?size|4-D|four|rank|dimension|shape",
    pattern="torch.tril(torch.ones(1, size, size)) cast to torch.uint8: ones on and below the diagonal, "
    "shape [1, size, size], dtype uint8; no device argument.",
    differences=["uint8, not bool", "three dimensions, not [1, 1, size, size]"],
)
def create_future_mask(size):
    return torch.ones(1, size, size).tril().to(torch.uint8)


@case(
    "MultiHeadAttention",
    "buggy",
    source=src("src/transformers/MultiHeadedAttention.py", "04c3e5600745970eacecfebdea3b628859b1c4f2"),
    why="constructor takes (h, d_model), the other order; projections named q_fc / k_fc / v_fc / final_fc; "
    "written for 3-D masks (mask.unsqueeze(1))",
    expect=r"order|swap|\(h, ?d_model\)|num_heads.{0,60}d_model|W_q|named|attribute",
    reject=r"reshaped using the QUERY",
    pattern="Constructor (h, d_model, p_dropout=0.1) asserting d_model % h == 0; four nn.Linear(d, d) with bias "
    "named q_fc, k_fc, v_fc, final_fc; dropout on the attention weights. forward(attn_from, attn_to, value, "
    "mask=None): mask.unsqueeze(1); each projection viewed (B, own length, h, d_head).transpose(1, 2); "
    "softmax(QK^T/sqrt(d_head)) with masked_fill(mask == 0, -1e9); weights kept in `attn`; heads merged "
    "with view(B, S_q, h * d_head), then final_fc.",
    differences=[
        "arguments (h, d_model)",
        "parameter names q_fc / k_fc / v_fc / final_fc",
        "mask.unsqueeze(1): written for 3-D masks",
        "weights in `attn`",
        "dropout on the weights",
    ],
)
class MultiHeadAttention(nn.Module):
    def __init__(self, h, d_model, p_dropout=0.1):
        super().__init__()
        assert d_model % h == 0
        self.h = h
        self.d_head = d_model // h
        self.q_fc = nn.Linear(d_model, d_model)
        self.k_fc = nn.Linear(d_model, d_model)
        self.v_fc = nn.Linear(d_model, d_model)
        self.final_fc = nn.Linear(d_model, d_model)
        self.attn = None
        self.dropout = nn.Dropout(p_dropout)

    def forward(self, query, key, value, mask=None):
        if mask is not None:
            mask = mask.unsqueeze(1)
        b = value.size(0)
        q = self.q_fc(query).view(b, query.size(1), self.h, self.d_head).transpose(1, 2)
        k = self.k_fc(key).view(b, key.size(1), self.h, self.d_head).transpose(1, 2)
        v = self.v_fc(value).view(b, value.size(1), self.h, self.d_head).transpose(1, 2)
        scores = q @ k.transpose(-2, -1) / math.sqrt(self.d_head)
        if mask is not None:
            scores = scores.masked_fill(mask == 0, -1e9)
        self.attn = self.dropout(F.softmax(scores, dim=-1))
        merged = (self.attn @ v).transpose(1, 2).contiguous().view(b, query.size(1), self.h * self.d_head)
        return self.final_fc(merged)
