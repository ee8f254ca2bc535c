"""Patterns observed in bentrevett/pytorch-seq2seq (``legacy/6 - Attention is All You Need.ipynb``): an
attention layer that returns its weights, post-norm layers with nn.LayerNorm, learned positional
embeddings and a batched greedy translation loop.

Each case reproduces, in our own code, the behaviour its ``pattern`` describes; no code is copied.
"""

import torch
from torch import nn

from solutions import MultiHeadAttention

from . import PASSES, case

SRC = dict(
    repo="bentrevett/pytorch-seq2seq",
    path="legacy/6 - Attention is All You Need.ipynb",
    commit="b3cd54c72cd6e4e63f672d334c795b4fe744ef92",
)


@case(
    "MultiHeadAttention",
    "variant",
    source=SRC,
    why="returns (x, attention) instead of keeping the weights in an attribute; dropout on the attention weights",
    expect=r"tuple|returns? .{0,30}(pair|two)|attention_weights|dropout|train mode",
    pattern="Constructor (d_model, num_heads, dropout=0.1, device='cpu'), asserts divisibility; W_q, W_k, W_v, "
    "W_o with bias, a dropout. Scores divided by sqrt(d_k) held as a 1-element float32 tensor; -1e10 where "
    "mask == 0; softmax; dropout applied to the weights before @ v; merged heads through W_o. Returns the "
    "PAIR (output, weights) and keeps no attention_weights. (Registered under another class name, so that "
    "this module's layers use the contract's MultiHeadAttention.)",
    differences=[
        "returns (output, weights)",
        "no attention_weights attribute",
        "dropout on the attention weights",
        "-1e10 fill",
    ],
)
class AttentionWithWeights(nn.Module):
    def __init__(self, d_model, num_heads, dropout=0.1, device="cpu"):
        super().__init__()
        assert d_model % num_heads == 0
        self.d_model = d_model
        self.heads = num_heads
        self.head_dim = d_model // num_heads
        self.W_q = nn.Linear(d_model, d_model)
        self.W_k = nn.Linear(d_model, d_model)
        self.W_v = nn.Linear(d_model, d_model)
        self.W_o = nn.Linear(d_model, d_model)
        self.dropout = nn.Dropout(dropout)
        self.scale = torch.tensor([float(self.head_dim)]).sqrt().to(device)

    def forward(self, query, key, value, mask=None):
        b = query.shape[0]

        def split(t):
            return t.view(b, -1, self.heads, self.head_dim).permute(0, 2, 1, 3)

        q, k, v = split(self.W_q(query)), split(self.W_k(key)), split(self.W_v(value))
        energy = q @ k.transpose(-1, -2) / self.scale
        if mask is not None:
            energy = torch.where(mask == 0, -1e10, energy)
        attention = energy.softmax(dim=-1)
        x = (self.dropout(attention) @ v).permute(0, 2, 1, 3).contiguous().view(b, -1, self.d_model)
        return self.W_o(x), attention


class FeedForwardNetwork(nn.Module):  # used by the layers below; not a case (its dropout is graded elsewhere)
    def __init__(self, d_model, d_ff, dropout=0.1):
        super().__init__()
        self.W_1 = nn.Linear(d_model, d_ff)
        self.W_2 = nn.Linear(d_ff, d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        hidden = self.dropout(torch.relu(self.W_1(x)))
        return self.W_2(hidden)


@case(
    "EncoderLayer",
    "correct",
    source=SRC,
    why="post-norm: norm(src + dropout(sublayer(src))) twice, one shared dropout, the mask passed on",
    expect=PASSES,
    pattern="Post-norm with nn.LayerNorm: x = norm1(x + dropout(self_attn(x, x, x, mask))), then "
    "norm2(x + dropout(feed_forward(x))); one dropout; the contract's MultiHeadAttention (reference) and "
    "this module's feed-forward network (dropout inside).",
    differences=["nn.LayerNorm for the norms", "the module's feed-forward network has its own dropout"],
)
class EncoderLayer(nn.Module):
    def __init__(self, d_model, num_heads, d_ff, dropout=0.1):
        super().__init__()
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.self_attn = MultiHeadAttention(d_model, num_heads)
        self.feed_forward = FeedForwardNetwork(d_model, d_ff, dropout)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x, mask=None):
        x = self.norm1(x + self.dropout(self.self_attn(x, x, x, mask)))
        return self.norm2(x + self.dropout(self.feed_forward(x)))


@case(
    "DecoderLayer",
    "correct",
    source=SRC,
    why="post-norm self-attention, cross-attention on the encoder output with the source mask, FFN",
    expect=PASSES,
    pattern="Post-norm with three nn.LayerNorm: self-attention with tgt_mask -> norm1, cross-attention to the "
    "encoder output with src_mask -> norm2, feed-forward -> norm3, each norm(x + dropout(sub-layer)); one "
    "dropout; the contract's MultiHeadAttention (reference) twice.",
    differences=["nn.LayerNorm for the norms", "the module's feed-forward network has its own dropout"],
)
class DecoderLayer(nn.Module):
    def __init__(self, d_model, num_heads, d_ff, dropout=0.1):
        super().__init__()
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.norm3 = nn.LayerNorm(d_model)
        self.self_attn = MultiHeadAttention(d_model, num_heads)
        self.cross_attn = MultiHeadAttention(d_model, num_heads)
        self.feed_forward = FeedForwardNetwork(d_model, d_ff, dropout)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x, encoder_output, src_mask=None, tgt_mask=None):
        x = self.norm1(x + self.dropout(self.self_attn(x, x, x, tgt_mask)))
        x = self.norm2(x + self.dropout(self.cross_attn(x, encoder_output, encoder_output, src_mask)))
        return self.norm3(x + self.dropout(self.feed_forward(x)))


@case(
    "Encoder",
    "variant",
    source=SRC,
    why="LEARNED positional embeddings (nn.Embedding(max_length=100, d)) instead of the sinusoidal table; the "
    "token embedding is a plain nn.Embedding scaled inline",
    expect=r"sinusoid|positional_encoding|PositionalEncoding|learn",
    pattern="Contract signature plus max_length=100 and device='cpu'. embedding is a plain nn.Embedding(V, d) "
    "and positional_encoding a LEARNED nn.Embedding(max_length, d) looked up with positions 0..S-1; the "
    "input is dropout(embedding(src) * sqrt(d) (a 1-element float32 tensor) + positional_encoding(pos)); "
    "then this module's EncoderLayers.",
    differences=[
        "learned positional embeddings instead of the sinusoidal table",
        "plain nn.Embedding, scaled inline",
        "extra optional max_length and device",
    ],
)
class Encoder(nn.Module):
    def __init__(
        self,
        vocab_size,
        d_model=512,
        num_layers=6,
        num_heads=8,
        d_ff=2048,
        dropout=0.1,
        max_seq_length=5000,
        max_length=100,
        device="cpu",
    ):
        super().__init__()
        self.device = device
        self.embedding = nn.Embedding(vocab_size, d_model)
        self.positional_encoding = nn.Embedding(max_length, d_model)
        self.layers = nn.ModuleList(EncoderLayer(d_model, num_heads, d_ff, dropout) for _ in range(num_layers))
        self.dropout = nn.Dropout(dropout)
        self.scale = torch.tensor([float(d_model)]).sqrt().to(device)

    def forward(self, src, src_mask=None):
        b, n = src.shape
        positions = torch.arange(n).expand(b, n).to(self.device)
        h = self.dropout(self.embedding(src) * self.scale + self.positional_encoding(positions))
        for layer in self.layers:
            h = layer(h, src_mask)
        return h


@case(
    "create_padding_mask",
    "correct",
    source=SRC,
    why="(src != pad) with two singleton axes after the batch: bool [B, 1, 1, L]",
    expect=PASSES,
    pattern="Returns seq != pad_idx with two singleton axes after the batch: bool [B, 1, 1, L].",
)
def create_padding_mask(seq, pad_idx=0):
    return (seq != pad_idx).unsqueeze(1).unsqueeze(1)


@case(
    "create_future_mask",
    "variant",
    source=SRC,
    why="a 2-D [T, T] lower-triangular bool mask (it broadcasts, but the contract fixes [1, 1, T, T])",
    expect=r"\[1, ?1, ?\d+, ?\d+\]|\[1, ?1, ?size|shape",
    pattern="Returns a 2-D bool [size, size] lower triangle (diagonal included) on `device`.",
    differences=["2-D [size, size] instead of [1, 1, size, size]"],
)
def create_future_mask(size, device=None):
    return torch.ones(size, size, device=device).tril().bool()


@case(
    "create_masks",
    "correct",
    source=SRC,
    why="src [B, 1, 1, S]; tgt padding [B, 1, 1, T] & tril [T, T] -> bool [B, 1, T, T]",
    expect=PASSES,
    pattern="Computes both masks inline: src padding [B, 1, 1, S]; target padding [B, 1, 1, T] AND a 2-D "
    "[T, T] lower triangle on tgt's device, which broadcasts to bool [B, 1, T, T].",
    differences=["the future mask is 2-D inside, broadcast by &"],
)
def create_masks(src, tgt, pad_idx=0):
    n = tgt.shape[1]
    tri = torch.ones(n, n, device=tgt.device).tril().bool()
    return (src != pad_idx)[:, None, None], (tgt != pad_idx)[:, None, None] & tri


@case(
    "greedy_decode",
    "variant",
    source=SRC,
    why="batched greedy decoding that stops when every row is done, but it runs max_len steps after the start "
    "token (rows up to max_len + 1 long)",
    expect=r"max_len|too long|longer than|at most|≤",
    pattern="Batched: memory from encode (no_grad) with this module's create_padding_mask; up to max_len "
    "rounds, each decoding all rows with the target mask of this module's create_masks and appending every "
    "row's argmax at the last position; stops early once every row has produced end_idx. So rows can reach "
    "max_len + 1 tokens. Each row is kept from start_idx to its first end_idx (included), padded with "
    "pad_idx.",
    differences=["max_len generated tokens after the start token: up to max_len + 1"],
)
def greedy_decode(model, src, max_len, start_idx, end_idx, pad_idx=0):
    src_mask = create_padding_mask(src, pad_idx)
    with torch.no_grad():
        memory = model.encode(src, src_mask)
    rows = [[start_idx] for _ in range(len(src))]
    finished = [False] * len(src)
    for _ in range(max_len):
        prefix = torch.tensor(rows, dtype=torch.long, device=src.device)
        tgt_mask = create_masks(src, prefix, pad_idx)[1]
        with torch.no_grad():
            scores = model.generator(model.decode(prefix, memory, src_mask, tgt_mask))
        for r, token in enumerate(scores.argmax(2)[:, -1].tolist()):
            rows[r].append(token)
            finished[r] = finished[r] or token == end_idx
        if all(finished):
            break
    kept = []
    for row in rows:
        stop = row.index(end_idx, 1) + 1 if end_idx in row[1:] else len(row)
        kept.append(row[:stop])
    width = max(len(r) for r in kept)
    return torch.tensor([r + [pad_idx] * (width - len(r)) for r in kept], device=src.device)
