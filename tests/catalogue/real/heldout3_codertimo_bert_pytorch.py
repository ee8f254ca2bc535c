"""Held-out round 3 (issue 22): patterns observed in codertimo/BERT-pytorch: a LayerNorm on the unbiased standard
deviation with eps outside the root, a GELU feed-forward network, a positional embedding that returns the table
instead of adding it, pre-norm sub-layer connections, heads-first constructor arguments, and a token embedding
that is never scaled.

Each case reproduces, in our own code, the behaviour its ``pattern`` describes; no code is copied.
Expectations were written before anything was graded.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from . import case


def src(path, commit):
    return dict(repo="codertimo/BERT-pytorch", path=path, commit=commit)


@case(
    "scaled_dot_product_attention",
    "correct",
    source=src("bert_pytorch/model/attention/single.py", "2cf41cf41bba2c3fc85e96e4e6fbede76a67a8a7"),
    why="QK^T / sqrt(d_k), masked_fill(mask == 0, -1e9), softmax over the keys, weights @ V; the optional dropout "
    "argument is an extra the contract allows",
    expect="passes",
    pattern="(Adapted: the original is an nn.Module whose forward does this.) scores = q @ k^T / sqrt(q.size(-1)); "
    "where a mask is given, scores.masked_fill(mask == 0, -1e9); softmax over the last axis; an optional dropout "
    "module applied to the weights when passed; returns (weights @ v, weights).",
    differences=["an extra optional `dropout` argument", "-1e9 fill instead of the dtype's minimum"],
)
def scaled_dot_product_attention(query, key, value, mask=None, dropout=None):
    scores = torch.matmul(query, key.transpose(-2, -1)) / math.sqrt(query.size(-1))
    if mask is not None:
        scores = scores.masked_fill(mask == 0, -1e9)
    weights = F.softmax(scores, dim=-1)
    if dropout is not None:
        weights = dropout(weights)
    return torch.matmul(weights, value), weights


@case(
    "LayerNorm",
    "buggy",
    source=src("model/utils/layer_norm.py", "d0351272f45651c6356cd91b0a0ca5808152a607"),
    why="divides by the UNBIASED standard deviation (x.std, Bessel's correction) plus eps, eps outside the square "
    "root, where nn.LayerNorm uses the biased variance with eps inside the root",
    expect=r"unbiased|bessel|n ?- ?1|\bstd\b|standard deviation|biased variance|outside the (square )?root|"
    r"inside the (square )?root",
    pattern="(Adapted: the original's parameters are a_2 / b_2 and its default eps is 1e-6; here the contract's "
    "weight / bias and eps=1e-5, so only the formula differs.) mean over the last axis; std = x.std(-1) "
    "(unbiased); weight * (x - mean) / (std + eps) + bias.",
    differences=["unbiased std", "eps added to the std, not inside the root"],
)
class LayerNorm(nn.Module):
    def __init__(self, d_model, eps=1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d_model))
        self.bias = nn.Parameter(torch.zeros(d_model))
        self.eps = eps

    def forward(self, x):
        mean = x.mean(-1, keepdim=True)
        std = x.std(-1, keepdim=True)
        return self.weight * (x - mean) / (std + self.eps) + self.bias


@case(
    "FeedForwardNetwork",
    "buggy",
    source=src("bert_pytorch/model/utils/feed_forward.py", "0867d0f026e68445247dfd3f21001a320dd5cb7c"),
    why="the activation between the two linear layers is GELU (BERT's choice), not the paper's ReLU",
    expect=r"gelu|relu|activation",
    pattern="(Adapted: the original's layers are w_1 / w_2; here the contract's W_1 / W_2.) W_2(gelu(W_1(x))) "
    "with the tanh-free (erf) GELU.",
    differences=["GELU instead of ReLU"],
)
class FeedForwardNetwork(nn.Module):
    def __init__(self, d_model, d_ff):
        super().__init__()
        self.W_1 = nn.Linear(d_model, d_ff)
        self.W_2 = nn.Linear(d_ff, d_model)

    def forward(self, x):
        return self.W_2(F.gelu(self.W_1(x)))


@case(
    "PositionalEncoding",
    "buggy",
    source=src("bert_pytorch/model/embedding/position.py", "0c8557fd9a1d40dbde80acd8acdf9fe9e6d91256"),
    why="forward returns the positional table pe[:, :S] alone; it never adds it to x (the caller is meant to add "
    "it), so the output ignores the input",
    expect=r"(does not|doesn't|never|without) add|only the (positional )?(encoding|table)|pe\[:, ?:S\] (alone|only)|"
    r"ignores? (the |its )?input|x \+|returns? (the )?(positional )?(encoding|table|pe)\b",
    pattern="(Adapted: the original's default max_len is 512; here the contract's max_seq_length=5000.) A [1, max, d] "
    "buffer `pe` with sin on even and cos on odd features (div_term = exp(2i * -ln(10000) / d)); forward(x) "
    "returns pe[:, :x.size(1)] (shape [1, S, d]) without x.",
    differences=["returns pe[:, :S] instead of x + pe[:, :S]"],
)
class PositionalEncoding(nn.Module):
    def __init__(self, d_model, max_seq_length=5000):
        super().__init__()
        pe = torch.zeros(max_seq_length, d_model)
        position = torch.arange(0, max_seq_length).float().unsqueeze(1)
        div_term = (torch.arange(0, d_model, 2).float() * -(math.log(10000.0) / d_model)).exp()
        pe[:, 0::2] = torch.sin(position * div_term)
        pe[:, 1::2] = torch.cos(position * div_term)
        self.register_buffer("pe", pe.unsqueeze(0))

    def forward(self, x):
        return self.pe[:, : x.size(1)]


@case(
    "MultiHeadAttention",
    "buggy",
    source=src("bert_pytorch/model/attention/multi_head.py", "0867d0f026e68445247dfd3f21001a320dd5cb7c"),
    why="the constructor takes (h, d_model), heads first: MultiHeadAttention(d_model, num_heads) builds d_model "
    "heads of a num_heads-wide model",
    expect=r"order|swap|revers|heads? first|\(num_heads, d_model\)|\(h, d_model\)|positional arguments",
    pattern="(Adapted: the original keeps the three input projections in a ModuleList `linear_layers` and the "
    "output one as `output_linear`, and applies attention dropout; here the contract's W_q / W_k / W_v / W_o, no "
    "dropout, and `attention_weights` stored, so only the argument order differs.) __init__(num_heads, d_model) "
    "asserts d_model % num_heads == 0; forward projects, views [B, S, h, d_k], transposes the heads forward, "
    "softmax(QK^T / sqrt(d_k)) with masked_fill(mask == 0, -1e9), concatenates and applies W_o.",
    differences=["(num_heads, d_model) argument order"],
)
class MultiHeadAttention(nn.Module):
    def __init__(self, num_heads, d_model):
        super().__init__()
        assert d_model % num_heads == 0
        self.d_k = d_model // num_heads
        self.num_heads = num_heads
        self.W_q = nn.Linear(d_model, d_model)
        self.W_k = nn.Linear(d_model, d_model)
        self.W_v = nn.Linear(d_model, d_model)
        self.W_o = nn.Linear(d_model, d_model)
        self.attention_weights = None

    def forward(self, query, key, value, mask=None):
        b = query.size(0)
        q, k, v = [
            proj(x).view(b, -1, self.num_heads, self.d_k).transpose(1, 2)
            for proj, x in zip((self.W_q, self.W_k, self.W_v), (query, key, value))
        ]
        scores = torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(self.d_k)
        if mask is not None:
            scores = scores.masked_fill(mask == 0, -1e9)
        weights = F.softmax(scores, dim=-1)
        self.attention_weights = weights.detach()
        x = torch.matmul(weights, v).transpose(1, 2).contiguous().view(b, -1, self.num_heads * self.d_k)
        return self.W_o(x)


@case(
    "EncoderLayer",
    "variant",
    source=src("bert_pytorch/model/utils/sublayer.py", "3e23e9bdd00ee8e4456475143963ca9e6c0ba8c9"),
    path="bert_pytorch/model/utils/sublayer.py",
    why="pre-norm sub-layer connections, x + dropout(sublayer(norm(x))) (the file says so: 'the norm is first as "
    "opposed to last'), where the contract (the paper) is post-norm",
    expect=r"pre-?norm|post-?norm|before (the|each) sub-?layer|normali[sz]es? (the |its )?input",
    pattern="(Adapted: the original TransformerBlock (bert_pytorch/model/transformer.py) wraps attention and the "
    "feed-forward network in two SublayerConnection modules; here the contract's names self_attn, feed_forward, "
    "norm1, norm2, dropout.) forward(x, mask): x = x + dropout(self_attn(n, n, n, mask)) with n = norm1(x); "
    "return x + dropout(feed_forward(norm2(x))).",
    differences=["pre-norm instead of post-norm"],
)
class EncoderLayer(nn.Module):
    def __init__(self, d_model, num_heads, d_ff, dropout=0.1):
        super().__init__()
        self.self_attn = MultiHeadAttention(num_heads=num_heads, d_model=d_model)
        self.feed_forward = FeedForwardNetwork(d_model, d_ff)
        self.norm1 = LayerNorm(d_model)
        self.norm2 = LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x, mask=None):
        n = self.norm1(x)
        x = x + self.dropout(self.self_attn(n, n, n, mask))
        return x + self.dropout(self.feed_forward(self.norm2(x)))


@case(
    "TokenEmbedding",
    "buggy",
    source=src("bert_pytorch/model/embedding/token.py", "5c7b845b38bfdf41911700b1b3b539e2daac5ea6"),
    why="a bare nn.Embedding subclass (padding_idx=0): the lookup is never multiplied by sqrt(d_model), and the "
    "weight is `weight`, not `embedding.weight`",
    expect=r"sqrt|√|scal",
    pattern="class TokenEmbedding(nn.Embedding): __init__(vocab_size, d_model=512) calls nn.Embedding's with "
    "padding_idx=0; forward is nn.Embedding's own (no scaling).",
    differences=["no sqrt(d_model) scaling", "weight at `weight`, not `embedding.weight`", "padding_idx=0"],
)
class TokenEmbedding(nn.Embedding):
    def __init__(self, vocab_size, d_model=512):
        super().__init__(vocab_size, d_model, padding_idx=0)
