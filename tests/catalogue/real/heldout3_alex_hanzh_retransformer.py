"""Held-out round 3 (issue 22): patterns observed in Alex-Hanzh/ReTransformer: a token embedding whose
padding_idx is 1 (so token 1's vector never learns) and a positional encoding that takes the token ids and
returns the bare table, kept as a plain tensor attribute.

Each case reproduces, in our own code, the behaviour its ``pattern`` describes; no code is copied.
Expectations were written before anything was graded.
"""

import torch
from torch import nn

from . import case

COMMIT = "2796f874f0f448cce4836a0bc001fba7f8c6e627"


def src(path):
    return dict(repo="Alex-Hanzh/ReTransformer", path=path, commit=COMMIT)


@case(
    "TokenEmbedding",
    "buggy",
    source=src("models/embedding/token_embedding.py"),
    why="nn.Embedding(..., padding_idx=1): the row of token 1 gets no gradient (it is treated as padding, where "
    "the workbook's padding is 0), so a real token's embedding never trains",
    expect=r"padding_idx|token 1\b|row 1\b|index 1\b|(no|zero) gradient|never (trains|learns|updated)",
    pattern="__init__(vocab_size, d_model, padding_idx=1): embedding = nn.Embedding(vocab_size, d_model, "
    "padding_idx=padding_idx), re-initialised with xavier_normal; forward: embedding(x) * d_model ** 0.5.",
    differences=["padding_idx=1 (token 1 frozen)", "xavier-normal init"],
)
class TokenEmbedding(nn.Module):
    def __init__(self, vocab_size, d_model, padding_idx=1):
        super().__init__()
        self.d_model = d_model
        self.embedding = nn.Embedding(vocab_size, d_model, padding_idx=padding_idx)
        nn.init.xavier_normal_(self.embedding.weight)

    def forward(self, x):
        return self.embedding(x) * (self.d_model**0.5)


@case(
    "PositionalEncoding",
    "buggy",
    source=src("models/embedding/position_encoding.py"),
    why="forward unpacks `_, seq_len = x.size()` (it expects the [B, S] token ids) and returns the [S, d] table "
    "alone, never x + pe; the table is a plain attribute `encoding`, not a registered buffer `pe`",
    expect=r"token ids|\[B, ?S\]\b(?!, ?d)|2-D|unpack|too many values|(does not|doesn't|never|without) add|"
    r"only the (positional )?(encoding|table)|buffer|\bpe\b",
    pattern="(Adapted: the original's constructor is (d_model, max_len, device) with no defaults; here "
    "(d_model, max_seq_length=5000).) encoding = zeros(max_len, d) with requires_grad False, sin(pos / 10000^(2i/d)) "
    "on even and cos on odd features, stored as a plain attribute; forward(x): _, seq_len = x.size(); returns "
    "encoding[:seq_len, :].",
    differences=["expects [B, S] ids (ValueError on [B, S, d])", "returns the table, not x + pe", "no buffer `pe`"],
)
class PositionalEncoding(nn.Module):
    def __init__(self, d_model, max_seq_length=5000):
        super().__init__()
        self.encoding = torch.zeros(max_seq_length, d_model)
        self.encoding.requires_grad = False
        pos = torch.arange(0, max_seq_length).float().unsqueeze(1)
        two_i = torch.arange(0, d_model, 2).float()
        self.encoding[:, 0::2] = torch.sin(pos / (10000 ** (two_i / d_model)))
        self.encoding[:, 1::2] = torch.cos(pos / (10000 ** (two_i / d_model)))

    def forward(self, x):
        _, seq_len = x.size()
        return self.encoding[:seq_len, :]
