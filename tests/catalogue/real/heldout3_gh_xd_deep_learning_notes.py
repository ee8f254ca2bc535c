"""Held-out round 3 (issue 22): patterns observed in gh-xd/Deep-Learning-Notes (``Transformer/``, study notes on
the Annotated Transformer): a feed-forward network that imports ``torch.functional`` as F and calls F.relu, a
uint8 [1, size, size] future mask, a positional encoding with dropout as its second argument and max_len=50,
a LayerNorm on the unbiased std with a2 / b2, multi-head attention that adds a head axis to the mask itself,
and an embedding built as (d_model, vocab).

Each case reproduces, in our own code, the behaviour its ``pattern`` describes; no code is copied.
Expectations were written before anything was graded.
"""

import math

import torch
import torch.functional as TF
import torch.nn.functional as F
from torch import nn

from . import case

COMMIT = "5fb9d5355de9786bf81deea5eb827e5a0c2890cb"


def src(path):
    return dict(repo="gh-xd/Deep-Learning-Notes", path=path, commit=COMMIT)


@case(
    "FeedForwardNetwork",
    "buggy",
    source=src("Transformer/full_forward_layer.py"),
    why="`import torch.functional as F` (not torch.nn.functional): F.relu does not exist there, so every forward "
    "raises AttributeError; there is also a dropout inside the network",
    expect=r"AttributeError|torch\.functional|has no attribute .?relu|relu",
    pattern="__init__(d_model, d_ff, dropout=0.1): w1 = Linear(d, d_ff), w2 = Linear(d_ff, d), a Dropout; "
    "forward: w2(dropout(F.relu(w1(x)))) where F is the torch.functional module (which has no relu). Here the "
    "layers carry the contract's names W_1 / W_2.",
    differences=["F.relu from torch.functional: AttributeError", "dropout between the layers"],
)
class FeedForwardNetwork(nn.Module):
    def __init__(self, d_model, d_ff, dropout=0.1):
        super().__init__()
        self.W_1 = nn.Linear(d_model, d_ff)
        self.W_2 = nn.Linear(d_ff, d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        return self.W_2(self.dropout(TF.relu(self.W_1(x))))


@case(
    "create_future_mask",
    "buggy",
    source=src("Transformer/mask_tensor.py"),
    why="returns 1 - triu(ones, k=1) as a uint8 tensor of shape [1, size, size]: the right triangle, but not a "
    "bool mask and without the head axis of [1, 1, size, size]",
    expect=r"uint8|bool|dtype|\[1, ?1, ?\w+, ?\w+\]|shape|3-D|dimension",
    pattern="attn_shape = (1, size, size); numpy triu(ones, k=1) cast to uint8; returns torch.from_numpy(1 - that): "
    "1 on and below the diagonal, 0 above, dtype uint8, 3-D.",
    differences=["uint8 instead of bool", "[1, size, size] instead of [1, 1, size, size]"],
)
def create_future_mask(size, device=None):
    upper = torch.triu(torch.ones(1, size, size), diagonal=1).to(torch.uint8)
    return (1 - upper).to(device) if device is not None else 1 - upper


@case(
    "PositionalEncoding",
    "buggy",
    source=src("Transformer/pos_enc_layer.py"),
    why="the constructor is (d_model, dropout=0.1, max_len=50): the second positional argument is a dropout rate, "
    "so PositionalEncoding(d_model, max_seq_length) gets a dropout probability > 1, and the table holds only 50 "
    "positions; forward applies dropout",
    expect=r"dropout",
    pattern="__init__(d_model, dropout=0.1, max_len=50): nn.Dropout(p=dropout); pe [1, max_len, d] with sin / cos "
    "(div_term = exp(2i * -ln(10000) / d)) registered as buffer `pe`; forward: dropout(x + pe[:, :S]).",
    differences=["dropout as the second argument", "max_len default 50", "dropout inside"],
)
class PositionalEncoding(nn.Module):
    def __init__(self, d_model, dropout=0.1, max_len=50):
        super().__init__()
        self.dropout = nn.Dropout(p=dropout)
        pe = torch.zeros(max_len, d_model)
        position = torch.arange(0, max_len).unsqueeze(1)
        div_term = torch.exp(torch.arange(0, d_model, 2) * -(math.log(10000.0) / d_model))
        pe[:, 0::2] = torch.sin(position * div_term)
        pe[:, 1::2] = torch.cos(position * div_term)
        self.register_buffer("pe", pe.unsqueeze(0))

    def forward(self, x):
        return self.dropout(x + self.pe[:, : x.size(1)])


@case(
    "LayerNorm",
    "buggy",
    source=src("Transformer/norm_layer.py"),
    why="divides by the unbiased std plus eps (eps 1e-6 outside the root), and the parameters are a2 / b2 instead "
    "of weight / bias",
    expect=r"unbiased|bessel|n ?- ?1|\bstd\b|standard deviation|biased variance|(outside|inside) the (square )?root|"
    r"a2|b2",
    pattern="__init__(features, eps=1e-6): a2 = ones, b2 = zeros; forward: mean and x.std (unbiased) over the last "
    "axis; a2 * (x - mean) / (std + eps) + b2.",
    differences=["unbiased std", "eps outside the root", "parameters a2 / b2", "eps default 1e-6"],
)
class LayerNorm(nn.Module):
    def __init__(self, features, eps=1e-6):
        super().__init__()
        self.a2 = nn.Parameter(torch.ones(features))
        self.b2 = nn.Parameter(torch.zeros(features))
        self.eps = eps

    def forward(self, x):
        mean = x.mean(-1, keepdim=True)
        std = x.std(-1, keepdim=True)
        return self.a2 * (x - mean) / (std + self.eps) + self.b2


@case(
    "MultiHeadAttention",
    "buggy",
    source=src("Transformer/encoder_layer.py"),
    why="the forward adds the head axis itself (mask.unsqueeze(1)), written for the Annotated Transformer's 3-D "
    "masks: the contract's [B, 1, 1, S] / [B, 1, T, T] masks become 5-D and the broadcast breaks",
    expect=r"unsqueeze|head axis|extra (axis|dimension)|5-D|rank|mask\b.{0,60}(shape|dimension|axis|3-D)",
    pattern="(Adapted: the original is (h, d_model, dropout) with four projections in a cloned list and attention "
    "dropout; here the contract's order, names W_q / W_k / W_v / W_o and no dropout.) forward: if a mask is given, "
    "mask = mask.unsqueeze(1); project, view [B, S, h, d_k], transpose; scores / sqrt(d_k), masked_fill(mask == 0, "
    "-1e9), softmax, weights @ V (the weights kept as attention_weights); concat; W_o.",
    differences=["mask.unsqueeze(1) inside the forward"],
)
class MultiHeadAttention(nn.Module):
    def __init__(self, d_model, num_heads):
        super().__init__()
        assert d_model % num_heads == 0
        self.d_k = d_model // num_heads
        self.h = num_heads
        self.W_q = nn.Linear(d_model, d_model)
        self.W_k = nn.Linear(d_model, d_model)
        self.W_v = nn.Linear(d_model, d_model)
        self.W_o = nn.Linear(d_model, d_model)
        self.attention_weights = None

    def forward(self, query, key, value, mask=None):
        if mask is not None:
            mask = mask.unsqueeze(1)
        b = query.size(0)
        q, k, v = [
            proj(x).view(b, -1, self.h, self.d_k).transpose(1, 2)
            for proj, x in zip((self.W_q, self.W_k, self.W_v), (query, key, value))
        ]
        scores = torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(self.d_k)
        if mask is not None:
            scores = scores.masked_fill(mask == 0, -1e9)
        weights = F.softmax(scores, dim=-1)
        self.attention_weights = weights.detach()
        x = torch.matmul(weights, v).transpose(1, 2).contiguous().view(b, -1, self.h * self.d_k)
        return self.W_o(x)


@case(
    "TokenEmbedding",
    "buggy",
    source=src("Transformer/emb_layer.py"),
    why="the constructor is (d_model, vocab): TokenEmbedding(vocab_size, d_model) builds a d_model-word table of "
    "vocab_size-wide vectors; the table is stored as `lut`",
    expect=r"order|swap|revers|\(d_model, vocab|positional arguments",
    pattern="class Embeddings: __init__(d_model, vocab): lut = nn.Embedding(vocab, d_model), d_model kept; forward: "
    "lut(x) * sqrt(d_model).",
    differences=["(d_model, vocab) argument order", "table named lut, not embedding"],
)
class TokenEmbedding(nn.Module):
    def __init__(self, d_model, vocab):
        super().__init__()
        self.lut = nn.Embedding(vocab, d_model)
        self.d_model = d_model

    def forward(self, x):
        return self.lut(x) * math.sqrt(self.d_model)
