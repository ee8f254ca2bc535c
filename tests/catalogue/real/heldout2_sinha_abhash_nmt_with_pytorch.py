"""Held-out round 2 (issue 22): patterns observed in sinha-abhash/nmt-with-pytorch (``pytorch_nmt_transformer/
model/``): the PyTorch tutorial's token embedding (correct) and a positional encoding whose base is 1000 instead of
10000.

Each case reproduces, in our own code, the behaviour its ``pattern`` describes; no code is copied.
Expectations were written before anything was graded.
"""

import math

import torch
from torch import nn

from . import PASSES, case

COMMIT = "acc022400c7679f60071669cf1182b28ba906754"


def src(path):
    return dict(repo="sinha-abhash/nmt-with-pytorch", path=path, commit=COMMIT)


@case(
    "TokenEmbedding",
    "correct",
    source=src("pytorch_nmt_transformer/model/token_embedding.py"),
    why="nn.Embedding as `embedding`, tokens cast to long, times sqrt(emb_size) (the class name is misspelt "
    "TokenEmedding in the original)",
    expect=PASSES,
    pattern="Constructor (vocab_size, emb_size): embedding = nn.Embedding(vocab_size, emb_size); forward: "
    "embedding(tokens.long()) * math.sqrt(emb_size).",
    differences=["tokens cast with .long()"],
)
class TokenEmbedding(nn.Module):
    def __init__(self, vocab_size, d_model):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, d_model)
        self.emb_size = d_model

    def forward(self, tokens):
        return self.embedding(tokens.long()) * math.sqrt(self.emb_size)


@case(
    "PositionalEncoding",
    "buggy",
    source=src("pytorch_nmt_transformer/model/positional_encoding.py"),
    why="the frequencies use log(1000), not log(10000): base 1000 instead of the paper's 10000",
    expect=r"\b1000\b|\bbase\b|log\(1000\)|frequenc|wavelength",
    pattern="(Adapted: the original is sequence-first, a buffer pos_embedding [max_len, 1, d] indexed on the first "
    "axis, with dropout in forward and constructor (emb_size, dropout, maxlen=5000); here batch-first, the "
    "contract's buffer pe [1, max_len, d], no dropout.) den = exp(-arange(0, d, 2) * ln(1000) / d); even columns "
    "sin(pos * den), odd columns cos(pos * den); forward: x + pe[:, :S].",
    differences=["base 1000 instead of 10000"],
)
class PositionalEncoding(nn.Module):
    def __init__(self, d_model, max_seq_length=5000):
        super().__init__()
        den = torch.exp(-torch.arange(0, d_model, 2) * math.log(1000) / d_model)
        pos = torch.arange(0, max_seq_length).reshape(max_seq_length, 1)
        table = torch.zeros((max_seq_length, d_model))
        table[:, 0::2] = torch.sin(pos * den)
        table[:, 1::2] = torch.cos(pos * den)
        self.register_buffer("pe", table.unsqueeze(0))

    def forward(self, x):
        if x.size(1) > self.pe.size(1):
            raise ValueError(f"sequence of length {x.size(1)} is longer than max_seq_length={self.pe.size(1)}")
        return x + self.pe[:, : x.size(1)]
