"""Patterns observed in tunz/transformer-pytorch (a tensor2tensor-style Transformer): ``model/transformer.py``,
``utils/utils.py`` and ``utils/optimizer.py``: True-means-blocked 3-D masks, bias-free projections,
concatenated sinusoids, a KL-style smoothed loss and tensor2tensor's learning-rate formula.

Each case reproduces, in our own code, the behaviour its ``pattern`` describes; no code is copied.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from . import case

COMMIT = "e7266679f0b32fd99135ea617213f986ceede056"


def src(path):
    return dict(repo="tunz/transformer-pytorch", path=path, commit=COMMIT)


def _xavier_linear(d_in, d_out):
    layer = nn.Linear(d_in, d_out, bias=False)
    nn.init.xavier_uniform_(layer.weight)
    return layer


@case(
    "MultiHeadAttention",
    "variant",
    source=src("model/transformer.py"),
    why="its masks mean True = BLOCKED (filled with -1e9 after mask.unsqueeze(1)) and are 3-D; the mask is "
    "required; projections without bias; dropout on the attention weights",
    expect=r"polarity|wrong way round|True means|True = (may attend|blocked)|bias|mask.{0,60}(shape|4-D)",
    reject=r"no output projection|concatenated heads directly|reshaped using the QUERY",
    pattern="Constructor (d_model, num_heads, dropout_rate=0.1); W_q, W_k, W_v, a dropout and W_o, all "
    "bias-free and Xavier-initialised when built. forward(q, k, v, mask): the mask is REQUIRED and means "
    "True = BLOCKED: after unsqueeze(1) (3-D masks) those scores get -1e9. q is scaled by d_k^-0.5 before "
    "q @ k^T; softmax, dropout on the weights, @ v, merge, W_o; asserts the output has the query's shape; "
    "no attention_weights.",
    differences=[
        "mask polarity: True = blocked",
        "mask.unsqueeze(1): written for 3-D masks",
        "the mask argument is required",
        "no bias on the projections",
        "dropout on the attention weights",
        "no attention_weights attribute",
    ],
)
class MultiHeadAttention(nn.Module):
    def __init__(self, d_model, num_heads, dropout_rate=0.1):
        super().__init__()
        self.heads = num_heads
        self.d_k = d_model // num_heads
        width = num_heads * self.d_k
        self.W_q = _xavier_linear(d_model, width)
        self.W_k = _xavier_linear(d_model, width)
        self.W_v = _xavier_linear(d_model, width)
        self.weight_dropout = nn.Dropout(dropout_rate)
        self.W_o = _xavier_linear(width, d_model)

    def forward(self, q, k, v, mask):
        shape_in = q.size()
        b = q.size(0)
        qh = self.W_q(q).view(b, -1, self.heads, self.d_k).transpose(1, 2) * self.d_k**-0.5
        kh = self.W_k(k).view(b, -1, self.heads, self.d_k).transpose(1, 2)
        vh = self.W_v(v).view(b, -1, self.heads, self.d_k).transpose(1, 2)
        scores = (qh @ kh.transpose(2, 3)).masked_fill(mask.unsqueeze(1), -1e9)
        mixed = self.weight_dropout(torch.softmax(scores, dim=3)) @ vh
        out = self.W_o(mixed.transpose(1, 2).contiguous().view(b, -1, self.heads * self.d_k))
        assert out.size() == shape_in
        return out


@case(
    "PositionalEncoding",
    "variant",
    source=src("model/transformer.py"),
    why="tensor2tensor's layout: all sines then all cosines (concatenated, not interleaved), timescales "
    "spaced by log(10000)/(d/2 - 1); computed on the fly, no `pe` buffer",
    expect=r"layout|interleav|sines? (first|then)|all sines|wrong places|\bpe\b.{0,60}(buffer|missing|attribute)|"
    r"no .?pe|attribute .?pe",
    pattern="No `pe`: a buffer inv_timescales = exp(-j * ln(10000) / max(d//2 - 1, 1)) for j < d//2 (float32). "
    "forward computes positions 0..S-1 times the timescales, concatenates ALL sines then ALL cosines along "
    "the features and adds that [1, S, d] signal to x (for an odd d its zero padding lands on the "
    "position axis, so the reshape fails); max_seq_length is unused.",
    differences=[
        "sines then cosines (concatenated, not interleaved)",
        "timescales spaced by ln(10000)/(d/2 - 1)",
        "no `pe` buffer: computed at each call",
    ],
)
class PositionalEncoding(nn.Module):
    def __init__(self, d_model, max_seq_length=5000):
        super().__init__()
        self.d_model = d_model
        half = d_model // 2
        spacing = math.log(10000.0 / 1.0) / max(half - 1, 1)
        self.register_buffer("inv_timescales", torch.exp(torch.arange(half, dtype=torch.float32) * -spacing))

    def forward(self, x):
        n = x.size(1)
        t = torch.arange(n, dtype=torch.float32, device=x.device)[:, None] * self.inv_timescales[None, :]
        signal = torch.cat([t.sin(), t.cos()], dim=1)
        signal = F.pad(signal, (0, 0, 0, self.d_model % 2))
        return x + signal.view(1, n, self.d_model)


@case(
    "LabelSmoothingLoss",
    "variant",
    source=src("utils/utils.py"),
    why="smoothing spread over V-1 classes and the target's entropy subtracted (tensor2tensor's normalisation): "
    "a KL divergence, mean over the non-pad tokens",
    expect=r"KL|entropy|V-1|V - 1|number of classes|distribution",
    pattern="Target: confidence = 1 - smoothing on the gold class, low = (1 - confidence) / (V-1) elsewhere. "
    "Per-token cross-entropy -sum(q * log_softmax) over the non-padding tokens, MINUS the constant "
    "entropy of q, -(c log c + (V-1) low log(low + 1e-20)); the mean of that is returned (a KL divergence).",
    differences=["the target's entropy is subtracted (KL divergence)", "smoothing spread over V-1 classes"],
)
class LabelSmoothingLoss(nn.Module):
    def __init__(self, smoothing=0.1, ignore_index=0):
        super().__init__()
        self.smoothing = smoothing
        self.ignore_index = ignore_index

    def forward(self, logits, target):
        vocab = logits.size(-1)
        flat = logits.reshape(-1, vocab)
        gold = target.reshape(-1)
        confidence = 1.0 - self.smoothing
        low = (1.0 - confidence) / float(vocab - 1)
        entropy = -(confidence * math.log(confidence) + float(vocab - 1) * low * math.log(low + 1e-20))
        q = torch.full_like(flat, low).scatter_(1, gold[:, None], confidence)
        xent = -(q * F.log_softmax(flat, dim=1)).sum(dim=1)
        return (xent[gold != self.ignore_index] - entropy).mean()


@case(
    "TransformerLRScheduler",
    "variant",
    source=src("utils/optimizer.py"),
    why="tensor2tensor's rate 2.0 * d^-0.5 * min(1, step/warmup) * max(step, warmup)^-0.5 (equation 3 with the "
    "factor fixed at 2.0, no `factor` argument); merged with the optimizer: step() calls optimizer.step()",
    expect=r"optimizer\.step|steps the optimizer|wrapper",
    pattern="Constructor (optimizer, d_model, warmup_steps=4000, step=0): no factor. rate(n) = "
    "2.0 * d_model^-0.5 * min(1, n / warmup) * max(n, warmup)^-0.5, written to every group at construction "
    "(n = the initial step, 0 by default) and at each step(), which takes no argument, adds 1, sets the "
    "rate, calls optimizer.step() and returns None. No get_lr.",
    differences=[
        "step() also calls optimizer.step()",
        "tensor2tensor's formula with a fixed factor 2.0",
        "no get_lr",
        "step() returns None",
    ],
)
class TransformerLRScheduler:
    def __init__(self, optimizer, d_model, warmup_steps=4000, step=0):
        self.optimizer = optimizer
        self.base = 2.0 * d_model**-0.5
        self.warmup = warmup_steps
        self.n = step
        self._apply()

    def rate(self):
        return self.base * min(1.0, self.n / self.warmup) * max(self.n, self.warmup) ** -0.5

    def _apply(self):
        lr = self.rate()
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def step(self):
        self.n += 1
        self._apply()
        self.optimizer.step()

    def zero_grad(self):
        self.optimizer.zero_grad()


@case(
    "create_padding_mask",
    "variant",
    source=src("utils/utils.py"),
    why="the opposite convention: True AT the padding (`t == pad`), and 3-D [B, 1, L]",
    expect=r"polarity|True at the padding|True means|wrong way round|\[B, ?1, ?1, ?L\]|shape",
    pattern="Returns seq == pad_idx (True AT the padding, the opposite polarity) with an axis before the last: "
    "bool [B, 1, L].",
    differences=["polarity: True at the padding", "3-D [B, 1, L]"],
)
def create_padding_mask(seq, pad_idx=0):
    return seq.eq(pad_idx).unsqueeze(-2)


@case(
    "create_future_mask",
    "variant",
    source=src("utils/utils.py"),
    why="the opposite convention (1 = blocked: the strict upper triangle), uint8, 3-D [1, T, T]",
    expect=r"polarity|wrong triangle|True means|bool|\[1, ?1, ?\d+, ?\d+\]|shape",
    pattern="Returns a uint8 [1, size, size] tensor on `device` with 1 strictly ABOVE the diagonal (1 = "
    "blocked, the opposite polarity).",
    differences=["polarity: 1 = blocked (strict upper triangle)", "uint8, not bool", "3-D [1, size, size]"],
)
def create_future_mask(size, device=None):
    return torch.ones(size, size, dtype=torch.uint8, device=device).triu(1)[None]
