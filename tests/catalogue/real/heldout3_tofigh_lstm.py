"""Held-out round 3 (issue 22): patterns observed in tofigh-/LSTM (``data_accessor/model/attention_transformer/``,
a forecasting project built on the Annotated Transformer): its attention function (right), a Noam wrapper
whose step() also steps the optimizer and whose state_dict() forgets to return, a positional encoding whose
dropout is a required second argument, and a greedy decoder for one sentence that never stops.

Each case reproduces, in our own code, the behaviour its ``pattern`` describes; no code is copied.
Expectations were written before anything was graded.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from solutions import create_future_mask as reference_future_mask
from solutions import create_padding_mask as reference_padding_mask

from . import case

BASE = "data_accessor/model/attention_transformer/"


def src(path, commit="98d28d1927ca56b6ad2783ab36c1f93e8aae3691"):
    return dict(repo="tofigh-/LSTM", path=BASE + path, commit=commit)


@case(
    "scaled_dot_product_attention",
    "correct",
    source=src("attention.py"),
    why="scores = QK^T / sqrt(d_k), masked_fill(mask == 0, -1e9), softmax over the keys, optional dropout on the "
    "weights, returns (weights @ V, weights): the contract's maths with an extra optional argument",
    expect="passes",
    pattern="attention(query, key, value, mask=None, dropout=None): d_k = query.size(-1); scores = q @ k^T / "
    "sqrt(d_k); masked_fill(mask == 0, -1e9) when a mask is given; F.softmax(dim=-1); dropout(p_attn) when given; "
    "returns (p_attn @ value, p_attn).",
    differences=["extra optional dropout argument", "-1e9 fill"],
)
def scaled_dot_product_attention(query, key, value, mask=None, dropout=None):
    d_k = query.size(-1)
    scores = torch.matmul(query, key.transpose(-2, -1)) / math.sqrt(d_k)
    if mask is not None:
        scores = scores.masked_fill(mask == 0, -1e9)
    p_attn = F.softmax(scores, dim=-1)
    if dropout is not None:
        p_attn = dropout(p_attn)
    return torch.matmul(p_attn, value), p_attn


@case(
    "TransformerLRScheduler",
    "buggy",
    source=src("noam_optimizer.py", "079f0e3a4480e0316f9ad430af101c14ab695d70"),
    why="an optimizer wrapper: the constructor is (model_size, factor, warmup, optimizer), step() also runs "
    "optimizer.step() and returns nothing, the rate is rate(step) (no get_lr), and state_dict() returns None",
    expect=r"optimizer\.step|steps the optimizer|(calls|runs|takes)\b.{0,30}optimizer'?s? (own )?step|order|"
    r"get_lr|model_size|constructor|signature",
    pattern="NoamOpt(model_size, factor, warmup, optimizer): _step = 0, _rate = 0. step(): _step += 1, rate = "
    "factor * model_size^-0.5 * min(step^-0.5, step * warmup^-1.5) on every group, then optimizer.step(); returns "
    "None. rate(step=None). state_dict() calls the optimizer's and drops the result; load_state_dict() takes no "
    "argument; zero_grad() forwards.",
    differences=[
        "(model_size, factor, warmup, optimizer) constructor",
        "step() steps the optimizer and returns None",
        "rate() instead of get_lr()",
        "state_dict() returns None",
    ],
)
class TransformerLRScheduler:
    def __init__(self, model_size, factor, warmup, optimizer):
        self.optimizer = optimizer
        self._step = 0
        self.warmup = warmup
        self.factor = factor
        self.model_size = model_size
        self._rate = 0

    def step(self):
        self._step += 1
        rate = self.rate()
        for group in self.optimizer.param_groups:
            group["lr"] = rate
        self._rate = rate
        self.optimizer.step()

    def rate(self, step=None):
        if step is None:
            step = self._step
        return self.factor * (self.model_size**-0.5 * min(step**-0.5, step * self.warmup**-1.5))

    def state_dict(self):
        self.optimizer.state_dict()

    def load_state_dict(self):
        self.optimizer.load_state_dict()

    def zero_grad(self):
        self.optimizer.zero_grad()


@case(
    "PositionalEncoding",
    "buggy",
    source=src("positional_encoding.py"),
    why="the constructor is (d_model, dropout, max_len=5000) with dropout REQUIRED and second: "
    "PositionalEncoding(d_model) raises TypeError, PositionalEncoding(d_model, max_seq_length) makes a dropout "
    "rate of max_seq_length; forward applies dropout",
    expect=r"dropout",
    pattern="__init__(d_model, dropout, max_len=5000): nn.Dropout(p=dropout); pe [1, max_len, d] with sin / cos "
    "(div_term = exp(2i * -ln(10000) / d)) as buffer `pe`; forward: x + a requires_grad=False copy of pe[:, :S] "
    "(torch.tensor of the slice), then dropout.",
    differences=["dropout: a required second argument", "dropout inside"],
)
class PositionalEncoding(nn.Module):
    def __init__(self, d_model, dropout, max_len=5000):
        super().__init__()
        self.dropout = nn.Dropout(p=dropout)
        pe = torch.zeros(max_len, d_model)
        position = torch.arange(0, max_len).unsqueeze(1)
        div_term = torch.exp(torch.arange(0, d_model, 2) * -(math.log(10000.0) / d_model))
        pe[:, 0::2] = torch.sin(position * div_term)
        pe[:, 1::2] = torch.cos(position * div_term)
        self.register_buffer("pe", pe.unsqueeze(0))

    def forward(self, x):
        x = x + self.pe[:, : x.size(1)].detach().clone()
        return self.dropout(x)


@case(
    "greedy_decode",
    "buggy",
    source=src("greedy_decoder.py"),
    why="the target starts as ONE row ([[start]]) and the next token is read from row 0 (`next_word.data[0]`), so "
    "a batch of B sentences comes back as a single row; end_idx is never looked at (no early stop, no padding)",
    expect=r"end_idx|end token|stop|finished|one (row|sentence)|single (row|sentence)|batch|first row|row 0|"
    r"B ?= ?1|\[1, ?\w+\]",
    pattern="(Adapted to the contract's interface; the original takes (model, src, src_mask, max_len, "
    "start_symbol) and calls model.decode(memory, src_mask, ys, mask).) memory = encode(src); ys = [[start]]; "
    "max_len - 1 times: decode ys against memory, prob = generator(out[:, -1]), next = argmax(prob, 1)[0] (the "
    "first row's), append to ys; return ys ([1, max_len]).",
    differences=["one row whatever the batch (row 0's token)", "no end_idx: never stops, never pads"],
)
@torch.no_grad()
def greedy_decode(model, src, max_len, start_idx, end_idx, pad_idx=0):
    src_mask = reference_padding_mask(src, pad_idx)
    memory = model.encode(src, src_mask)
    ys = torch.ones(1, 1, dtype=torch.long, device=src.device).fill_(start_idx)
    for _ in range(max_len - 1):
        out = model.decode(ys, memory, src_mask, reference_future_mask(ys.size(1), device=src.device))
        prob = model.generator(out[:, -1])
        next_word = torch.max(prob, dim=1)[1].data[0]
        ys = torch.cat([ys, torch.ones(1, 1, dtype=torch.long, device=src.device).fill_(next_word)], dim=1)
    return ys
