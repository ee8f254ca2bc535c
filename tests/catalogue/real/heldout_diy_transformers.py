"""Held-out round: patterns observed in LeonMarkwart/DIY-Transformers (``modelling/``): a LayerNorm without an
``eps`` argument, bias-free attention projections, a LambdaLR-based Noam schedule, a positional encoding
whose table length has no default, and an encoder layer that leaves dropout to its parts.

Each case reproduces, in our own code, the behaviour its ``pattern`` describes; no code is copied.
"""

import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.lr_scheduler import LambdaLR

from . import case

COMMIT = "18695390a65b1ac4394ffe8f5e461adcbbf54506"


def src(path):
    return dict(repo="LeonMarkwart/DIY-Transformers", path=path, commit=COMMIT)


@case(
    "LayerNorm",
    "buggy",
    source=src("modelling/layernorm.py"),
    why="no `eps` argument: eps is fixed at 1e-5 and the second parameter is a `bias` on/off flag",
    expect=r"\beps\b",
    reject=r"unbiased|outside the square root",
    pattern="Constructor (d_model, bias=True); weight ones, bias zeros (or None). forward: (x - mean) / "
    "sqrt(biased var + 1e-5) * weight + bias, the 1e-5 written in forward; LayerNorm(d, eps=...) raises a "
    "TypeError and LayerNorm(d, 1e-6) sets the bias flag.",
    differences=["no eps argument (eps fixed at 1e-5)", "second positional argument is a bias flag"],
)
class LayerNorm(nn.Module):
    def __init__(self, d_model, bias=True):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d_model))
        self.bias = nn.Parameter(torch.zeros(d_model)) if bias else None

    def forward(self, x):
        centred = x - x.mean(dim=-1, keepdim=True)
        spread = torch.sqrt(x.var(dim=-1, unbiased=False, keepdim=True) + 1e-5)
        out = self.weight * centred / spread
        return out + self.bias if self.bias is not None else out


@case(
    "MultiHeadAttention",
    "buggy",
    source=src("modelling/attention.py"),
    why="projections without bias, named query_transform / key_transform / value_transform / "
    "output_transform instead of W_q, W_k, W_v, W_o; no attention_weights",
    expect=r"W_q|W_o|bias|state.?dict|attribute|named",
    reject=r"reshaped using the QUERY",
    pattern="Constructor (d_model, n_heads, mask_future=False, dropout=0); four nn.Linear(d, d, bias=False) "
    "named query_transform, key_transform, value_transform, output_transform; no divisibility check. "
    "forward(q, k, v, attn_mask=None): heads by rearranging 'b n (h d) -> b h n d', scores / sqrt(d_k), a 2-D "
    "mask gets two unsqueezes and a 3-D one one (4-D used as is), masked_fill(mask == 0, -inf), softmax, "
    "heads merged, output_transform, then its own dropout (p=0 by default). Weights are not stored.",
    differences=["bias-free projections", "other parameter names", "no attention_weights", "mask called attn_mask"],
)
class MultiHeadAttention(nn.Module):
    def __init__(self, d_model, num_heads, mask_future=False, dropout=0.0):
        super().__init__()
        self.heads = num_heads
        self.mask_future = mask_future
        self.query_transform = nn.Linear(d_model, d_model, bias=False)
        self.key_transform = nn.Linear(d_model, d_model, bias=False)
        self.value_transform = nn.Linear(d_model, d_model, bias=False)
        self.output_transform = nn.Linear(d_model, d_model, bias=False)
        self.resid_drop = nn.Dropout(dropout)

    def _split(self, t):
        b, n, width = t.shape
        return t.reshape(b, n, self.heads, width // self.heads).permute(0, 2, 1, 3)

    def forward(self, query, key, value, attn_mask=None):
        q = self._split(self.query_transform(query))
        k = self._split(self.key_transform(key))
        v = self._split(self.value_transform(value))
        scores = q @ k.transpose(-1, -2) / torch.sqrt(torch.tensor(float(k.shape[-1])))
        if self.mask_future:
            ahead = torch.ones(scores.shape[-2:], dtype=torch.bool, device=scores.device).triu(1)
            scores = scores.masked_fill(ahead, float("-inf"))
        if attn_mask is not None:
            m = attn_mask
            if m.dim() == 2:
                m = m[:, None, None, :]
            elif m.dim() == 3:
                m = m[:, None]
            scores = scores.masked_fill(m == 0, float("-inf"))
        out = F.softmax(scores, dim=-1) @ v
        b, h, n, dk = out.shape
        return self.resid_drop(self.output_transform(out.permute(0, 2, 1, 3).reshape(b, n, h * dk)))


@case(
    "TransformerLRScheduler",
    "buggy",
    source=src("modelling/lr_scheduler.py"),
    why="a LambdaLR: the Noam factor multiplies the optimizer's own lr, `max_lr` replaces `factor`, and "
    "get_lr() takes no step number",
    expect=r"factor|get_lr|optimizer's (own |initial |base )?(lr|learning rate)|base.?lr|multipl",
    pattern="Subclass of LambdaLR with constructor (optimizer, d_model, warmup_steps=4000, max_lr=None); the "
    "lambda is d_model^-0.5 * min(s^-0.5, s * warmup^-1.5) * scale with s = max(step, 1), scale 1 unless "
    "max_lr rescales it; LambdaLR multiplies it by each group's initial lr and applies lambda(0) = lambda(1) "
    "at construction, so the first step() sets lambda(1) again. get_lr() is LambdaLR's, with no step argument.",
    differences=["rate times the optimizer's initial lr", "max_lr instead of factor", "LambdaLR's get_lr()"],
)
class TransformerLRScheduler(LambdaLR):
    def __init__(self, optimizer, d_model, warmup_steps=4000, max_lr=None):
        self.d_model = d_model
        self.warmup_steps = warmup_steps
        self.scale = 1.0
        if max_lr:
            base = optimizer.param_groups[0]["lr"]
            self.scale = max_lr / (base * d_model**-0.5 * warmup_steps**-0.5)
        super().__init__(optimizer, self.noam)

    def noam(self, step):
        s = max(step, 1)
        return self.d_model**-0.5 * min(s**-0.5, s * self.warmup_steps**-1.5) * self.scale


@case(
    "PositionalEncoding",
    "variant",
    source=src("modelling/positional_encoding.py"),
    why="the table length has no default (PositionalEncoding(d_model) raises TypeError), and no length check; "
    "a dropout argument that defaults to 0",
    expect=r"max_seq_length|default|longer than|length",
    pattern="Constructor (d_model, max_len, dropout=0.0) with max_len required. Non-persistent buffer pe "
    "[1, max_len, d]: sin / cos of pos * exp(2i * -ln(10000) / d) on even / odd features (float32). forward "
    "returns dropout(x + pe[:, :S]) with p=0 by default; no check of S against max_len.",
    differences=["max_len required (no default 5000)", "no length check", "dropout argument, default 0"],
)
class PositionalEncoding(nn.Module):
    def __init__(self, d_model, max_seq_length, dropout=0.0):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        pos = torch.arange(max_seq_length, dtype=torch.float32)[:, None]
        freq = torch.exp(torch.arange(0, d_model, 2) * (-torch.log(torch.tensor(10000.0)) / d_model))
        table = torch.zeros(max_seq_length, d_model)
        table[:, 0::2] = torch.sin(pos * freq)
        table[:, 1::2] = torch.cos(pos * freq)
        self.register_buffer("pe", table[None], persistent=False)

    def forward(self, x):
        return self.dropout(x + self.pe[:, : x.size(1)])


@case(
    "EncoderLayer",
    "variant",
    source=src("modelling/functional.py"),
    why="post-norm layer with no dropout of its own: it relies on dropout inside its attention and "
    "feed-forward modules, so with the contract's parts nothing is dropped in train mode",
    expect=r"dropout|train mode",
    pattern="Constructor (d_model, num_heads, d_ff, dropout=0.1): self-attention, feed-forward and two "
    "LayerNorms; forward(x, mask) = norm1(x + self_attn(x, x, x, mask)), then norm2(h + ff(h)). No dropout "
    "module in the layer: the repository's attention and feed-forward apply it to their own outputs.",
    differences=["no dropout in the layer (its parts carry it)"],
)
class EncoderLayer(nn.Module):
    def __init__(self, d_model, num_heads, d_ff, dropout=0.1):
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, num_heads)
        self.feed_forward = FeedForwardNetwork(d_model, d_ff)
        self.norm1 = LayerNorm(d_model)
        self.norm2 = LayerNorm(d_model)

    def forward(self, x, mask=None):
        h = self.norm1(x + self.self_attn(x, x, x, mask))
        return self.norm2(h + self.feed_forward(h))


class FeedForwardNetwork(nn.Module):
    """The module's own feed-forward part (a helper here; the grading swaps it for the reference)."""

    def __init__(self, d_model, d_ff):
        super().__init__()
        self.W_1 = nn.Linear(d_model, d_ff)
        self.W_2 = nn.Linear(d_ff, d_model)

    def forward(self, x):
        return self.W_2(torch.relu(self.W_1(x)))
