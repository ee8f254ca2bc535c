"""Held-out round 3 (issue 22): patterns observed in walkacross/transformer-pytorch: a Noam optimizer that is an
Adam subclass (its step() updates the parameters, factor 2 by default), a greedy decoder for one sentence that
never stops at the end token, a [1, size, size] future mask, a 3-D source mask, and a feed-forward network with
its own dropout.

Each case reproduces, in our own code, the behaviour its ``pattern`` describes; no code is copied.
Expectations were written before anything was graded.
"""

import torch
import torch.nn.functional as F
from torch import nn

from solutions import create_future_mask as reference_future_mask
from solutions import create_padding_mask as reference_padding_mask

from . import case


def src(path, commit):
    return dict(repo="walkacross/transformer-pytorch", path=path, commit=commit)


@case(
    "TransformerLRScheduler",
    "buggy",
    source=src("transformer_pytorch/trainer/optimizer.py", "066d4aa007dfc3fa726f4e5570f1fa35c052f0e2"),
    why="the scheduler is the optimizer: step() sets the rate and then updates the parameters (Adam's step), and "
    "the default factor is 2, not 1; step() returns nothing",
    expect=r"optimizer\.step|steps the optimizer|updat\w* (the )?param|(calls|runs|takes)\b.{0,30}optimizer'?s? "
    r"(own )?step|factor",
    pattern="(Adapted: the original subclasses Adam, NoamOptimizer(params, d_model, factor=2, warmup_steps=4000); "
    "here it wraps the given optimizer with the contract's (optimizer, d_model, warmup_steps=4000, factor=2) and "
    "get_lr for its learning_rate.) step(): step_num += 1, lr = factor * d^-0.5 * min(n^-0.5, n * warmup^-1.5) on "
    "every group, then optimizer.step(); returns None. No rate is set at construction.",
    differences=["step() steps the optimizer", "factor default 2", "step() returns None", "no rate at construction"],
)
class TransformerLRScheduler:
    def __init__(self, optimizer, d_model, warmup_steps=4000, factor=2):
        self.optimizer = optimizer
        self.d_model = d_model
        self.warmup_steps = warmup_steps
        self.factor = factor
        self.lr = 0
        self.step_num = 0

    def get_lr(self, step_num=None):
        if step_num is None:
            step_num = self.step_num
        return self.factor * self.d_model**-0.5 * min(step_num**-0.5, step_num * self.warmup_steps**-1.5)

    def step(self, step_num=None):
        self.step_num += 1
        self.lr = self.get_lr()
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr
        self.optimizer.step()


@case(
    "greedy_decode",
    "buggy",
    source=src("transformer_pytorch/trainer/inferencer.py", "0b1ea6408106bc974679bc86eea63f5b27fde665"),
    why="decodes a single sentence (the next token is read with .item()) and never looks at end_idx: it always "
    "runs max_len - 1 steps, never stops early and never pads a finished row",
    expect=r"end_idx|end token|stop|finished|one (row|sentence)|single (row|sentence)|batch|\.item\(\)|B ?= ?1",
    pattern="(Adapted to the contract's interface; the original takes (model, src, src_mask, max_len, start_idx) "
    "and calls model.decode(memory, src_mask, ys, mask).) ys = [[start]]; max_len - 1 times: decode ys, "
    "argmax of generator(out[:, -1]) read with .item(), append it; return ys ([1, max_len]).",
    differences=["one sentence only (.item())", "no end_idx: never stops, never pads"],
)
@torch.no_grad()
def greedy_decode(model, src, max_len, start_idx, end_idx, pad_idx=0):
    src_mask = reference_padding_mask(src, pad_idx)
    memory = model.encode(src, src_mask)
    ys = torch.ones(1, 1, dtype=torch.long, device=src.device).fill_(start_idx)
    for _ in range(max_len - 1):
        out = model.decode(ys, memory, src_mask, reference_future_mask(ys.size(1), device=src.device))
        prob = model.generator(out[:, -1])
        next_word = torch.max(prob, dim=1)[1].item()
        ys = torch.cat([ys, torch.ones(1, 1, dtype=torch.long, device=src.device).fill_(next_word)], dim=1)
    return ys


@case(
    "create_future_mask",
    "buggy",
    source=src("transformer_pytorch/dataset/utils.py", "0cd6f3662e86788c5b009e1ac410f34047b0f401"),
    why="the right boolean triangle, but shaped [1, size, size] (the Annotated Transformer's), without the head "
    "axis of [1, 1, size, size]",
    expect=r"\[1, ?1, ?\w+, ?\w+\]|shape|3-D|dimension|rank|head axis",
    pattern="attn_shape = (1, size, size); numpy triu(ones, k=1) as uint8; returns torch.from_numpy(that) == 0: "
    "bool, True on and below the diagonal, 3-D.",
    differences=["[1, size, size] instead of [1, 1, size, size]"],
)
def create_future_mask(size, device=None):
    upper = torch.triu(torch.ones(1, size, size, dtype=torch.uint8, device=device), diagonal=1)
    return upper == 0


@case(
    "create_padding_mask",
    "buggy",
    source=src("transformer_pytorch/trainer/inferencer.py", "0b1ea6408106bc974679bc86eea63f5b27fde665"),
    why="(src != pad).unsqueeze(-2) gives [B, 1, L]: the right values without the head axis of [B, 1, 1, L]",
    expect=r"\[B, ?1, ?1, ?L\]|\[\w+, ?1, ?1, ?\w+\]|shape|3-D|dimension|rank|head axis",
    pattern="The source mask built inline before decoding: src_mask = (src != pad_idx).unsqueeze(-2), shape [B, 1, L].",
    differences=["[B, 1, L] instead of [B, 1, 1, L]"],
)
def create_padding_mask(seq, pad_idx=0):
    return (seq != pad_idx).unsqueeze(-2)


@case(
    "FeedForwardNetwork",
    "buggy",
    source=src("transformer_pytorch/model/utils/feed_forward.py", "0cd6f3662e86788c5b009e1ac410f34047b0f401"),
    why="a dropout between the two linear layers (the Annotated Transformer's), which the contract does not have: "
    "in train mode the hidden activations are dropped",
    expect=r"dropout",
    pattern="(Adapted: the original's layers are w_1 / w_2; here W_1 / W_2.) __init__(d_model, d_ff, dropout=0.1); "
    "forward: W_2(dropout(relu(W_1(x)))).",
    differences=["dropout inside the network"],
)
class FeedForwardNetwork(nn.Module):
    def __init__(self, d_model, d_ff, dropout=0.1):
        super().__init__()
        self.W_1 = nn.Linear(d_model, d_ff)
        self.W_2 = nn.Linear(d_ff, d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        return self.W_2(self.dropout(F.relu(self.W_1(x))))
