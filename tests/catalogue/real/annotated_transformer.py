"""Patterns observed in harvardnlp/annotated-transformer (``the_annotated_transformer.py``): the Annotated
Transformer's pre-norm model with 3-D masks, its LayerNorm, label smoothing and batch-of-one greedy decoding.

Each case reproduces, in our own code, the behaviour its ``pattern`` describes; no code is copied.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from . import PASSES, case

SRC = dict(
    repo="harvardnlp/annotated-transformer",
    path="the_annotated_transformer.py",
    commit="debc9fd747bb2123160a98046ad1c2d4da44a567",
)


@case(
    "TokenEmbedding",
    "correct",
    source=SRC,
    why="nn.Embedding lookup times sqrt(d_model), as in section 3.4",
    expect=PASSES,
    pattern="A lookup in `embedding` = nn.Embedding(vocab_size, d_model), multiplied by math.sqrt(d_model).",
)
class TokenEmbedding(nn.Module):
    def __init__(self, vocab_size, d_model):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, d_model)
        self.scale = math.sqrt(d_model)

    def forward(self, tokens):
        return self.embedding(tokens) * self.scale


@case(
    "PositionalEncoding",
    "variant",
    source=SRC,
    why="dropout inside the positional encoding; no length check (a longer input gives a raw shape error)",
    expect=r"dropout|train mode|max_seq_length|longer than",
    pattern="Constructor (d_model, max_seq_length=5000, dropout=0.1). Buffer pe [1, max_len, d]: sin / cos of "
    "pos * exp(2i * -ln(10000)/d) (float32) on even / odd features. forward returns dropout(x + pe[:, :S]) "
    "with its own nn.Dropout; no check of S against the table's length.",
    differences=["dropout inside the positional encoding", "no length check"],
)
class PositionalEncoding(nn.Module):
    def __init__(self, d_model, max_seq_length=5000, dropout=0.1):
        super().__init__()
        self.dropout = nn.Dropout(p=dropout)
        inv_freq = torch.exp(torch.arange(0, d_model, 2) * -(math.log(10000.0) / d_model))
        angles = torch.arange(max_seq_length)[:, None] * inv_freq
        table = torch.zeros(max_seq_length, d_model)
        table[:, 0::2] = angles.sin()
        table[:, 1::2] = angles.cos()
        self.register_buffer("pe", table[None])

    def forward(self, x):
        return self.dropout(x + self.pe[:, : x.size(1)])


@case(
    "scaled_dot_product_attention",
    "correct",
    source=SRC,
    why="softmax(QK^T/sqrt(d_k)) with masked_fill(mask == 0, -1e9); the extra optional `dropout` is free",
    expect=PASSES,
    pattern="scores = q @ k^T / sqrt(d_k) (d_k from the query); where mask == 0 the score becomes -1e9; softmax "
    "over the keys; an optional `dropout` module is applied to the weights; returns (weights @ v, weights).",
    differences=["-1e9 fill", "extra optional `dropout` module argument"],
)
def scaled_dot_product_attention(query, key, value, mask=None, dropout=None):
    scores = torch.matmul(query, key.mT) / math.sqrt(query.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(mask.logical_not(), -1e9)
    weights = F.softmax(scores, dim=-1)
    if dropout is not None:
        weights = dropout(weights)
    return torch.matmul(weights, value), weights


@case(
    "MultiHeadAttention",
    "variant",
    source=SRC,
    why="written for 3-D masks ([B,1,S]/[B,T,T]): it adds the head axis itself with mask.unsqueeze(1), "
    "which breaks the contract's 4-D masks; also dropout on the attention weights",
    expect=r"mask.{0,80}(4-D|four|\[B, ?1, ?1|shape|unsqueeze|head axis)|(4-D|\[B, ?1, ?1).{0,80}mask",
    reject=r"reshaped using the QUERY",
    pattern="Asserts d_model % num_heads == 0; W_q, W_k, W_v, W_o with bias; an extra dropout=0.1 module. "
    "A given mask gets mask.unsqueeze(1) (for 3-D masks). Heads: view(B, -1, h, d_k).transpose(1, 2); "
    "this module's scaled_dot_product_attention(q, k, v, mask=..., dropout=self.dropout); the weights are "
    "stored in attention_weights; heads merged with a (B, -1, h * d_k) reshape, then W_o.",
    differences=["mask.unsqueeze(1): written for 3-D masks", "dropout on the attention weights"],
)
class MultiHeadAttention(nn.Module):
    def __init__(self, d_model, num_heads, dropout=0.1):
        super().__init__()
        assert d_model % num_heads == 0
        self.n_heads = num_heads
        self.head_dim = d_model // num_heads
        self.W_q, self.W_k, self.W_v, self.W_o = (nn.Linear(d_model, d_model) for _ in range(4))
        self.attention_weights = None
        self.dropout = nn.Dropout(dropout)

    def _heads(self, layer, x, batch):
        return layer(x).view(batch, -1, self.n_heads, self.head_dim).transpose(1, 2)

    def forward(self, query, key, value, mask=None):
        if mask is not None:
            mask = mask.unsqueeze(1)
        b = query.size(0)
        q = self._heads(self.W_q, query, b)
        k = self._heads(self.W_k, key, b)
        v = self._heads(self.W_v, value, b)
        out, self.attention_weights = scaled_dot_product_attention(q, k, v, mask=mask, dropout=self.dropout)
        return self.W_o(out.transpose(1, 2).reshape(b, -1, self.n_heads * self.head_dim))


@case(
    "FeedForwardNetwork",
    "variant",
    source=SRC,
    why="dropout between the two linear maps (the contract's FFN has none of its own)",
    expect=r"dropout|train mode",
    pattern="Constructor (d_model, d_ff, dropout=0.1); forward is W_2(dropout(relu(W_1(x)))): a dropout of its "
    "own between the two maps.",
    differences=["dropout after the ReLU, inside the network"],
)
class FeedForwardNetwork(nn.Module):
    def __init__(self, d_model, d_ff, dropout=0.1):
        super().__init__()
        self.W_1 = nn.Linear(d_model, d_ff)
        self.W_2 = nn.Linear(d_ff, d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        hidden = torch.relu(self.W_1(x))
        return self.W_2(self.dropout(hidden))


@case(
    "LayerNorm",
    "variant",
    source=SRC,
    why="unbiased std (x.std) with eps added to the std, outside the square root; default eps 1e-6",
    expect=r"unbiased|d-1|d - 1|outside the square root|eps.{0,40}(sqrt|square root)",
    pattern="Constructor (d_model, eps=1e-6); weight ones, bias zeros. forward: "
    "weight * (x - mean) / (std + eps) + bias, with the UNBIASED standard deviation (divisor d-1) over the "
    "last axis and eps added to the std, outside the square root.",
    differences=["unbiased std (d-1)", "eps added outside the square root", "default eps 1e-6"],
)
class LayerNorm(nn.Module):
    def __init__(self, d_model, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d_model))
        self.bias = nn.Parameter(torch.zeros(d_model))
        self.eps = eps

    def forward(self, x):
        centred = x - x.mean(dim=-1, keepdim=True)
        sd = torch.std(x, dim=-1, keepdim=True)
        return self.weight * centred / (sd + self.eps) + self.bias


@case(
    "EncoderLayer",
    "variant",
    source=SRC,
    why="pre-norm residual: x + dropout(sublayer(norm(x)))",
    expect=r"pre-?norm|post-?norm|BEFORE the sub-layer",
    pattern="Pre-norm block: x = x + dropout(self_attn(n, n, n, mask)) with n = norm1(x), then "
    "x + dropout(feed_forward(norm2(x))). Parts: this module's MultiHeadAttention(d_model, num_heads), "
    "FeedForwardNetwork(d_model, d_ff, dropout) and LayerNorm(d_model) (eps 1e-6), one shared dropout.",
    differences=["pre-norm: the norm is applied to the sub-layer's input"],
)
class EncoderLayer(nn.Module):
    def __init__(self, d_model, num_heads, d_ff, dropout=0.1):
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, num_heads)
        self.feed_forward = FeedForwardNetwork(d_model, d_ff, dropout)
        self.norm1 = LayerNorm(d_model)
        self.norm2 = LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x, mask=None):
        n = self.norm1(x)
        x = x + self.dropout(self.self_attn(n, n, n, mask))
        return x + self.dropout(self.feed_forward(self.norm2(x)))


@case(
    "Encoder",
    "variant",
    source=SRC,
    why="a final LayerNorm after the stack (belongs to its pre-norm layers)",
    expect=r"final (LayerNorm|norm)|extra LayerNorm|after the last layer",
    pattern="Contract signature. Embedding path: dropout(positional_encoding(embedding(src))) with this "
    "module's TokenEmbedding and a PositionalEncoding built with dropout 0.0 (the dropout is the "
    "Encoder's). layers: num_layers EncoderLayers. After the last layer an extra "
    "LayerNorm(d_model) `norm` (eps 1e-6) is applied.",
    differences=["a final LayerNorm after the stack"],
)
class Encoder(nn.Module):
    def __init__(self, vocab_size, d_model=512, num_layers=6, num_heads=8, d_ff=2048, dropout=0.1, max_seq_length=5000):
        super().__init__()
        self.embedding = TokenEmbedding(vocab_size, d_model)
        self.positional_encoding = PositionalEncoding(d_model, max_seq_length, dropout=0.0)
        self.dropout = nn.Dropout(dropout)
        self.layers = nn.ModuleList([EncoderLayer(d_model, num_heads, d_ff, dropout) for _ in range(num_layers)])
        self.norm = LayerNorm(d_model)

    def forward(self, src, src_mask=None):
        h = self.dropout(self.positional_encoding(self.embedding(src)))
        for block in self.layers:
            h = block(h, src_mask)
        return self.norm(h)


@case(
    "create_future_mask",
    "variant",
    source=SRC,
    why="3-D mask [1, size, size] (the repository's masks carry no head axis)",
    expect=r"\[1, ?1, ?size, ?size\]|\[1, ?1, ?\d+, ?\d+\]|shape",
    pattern="Returns a bool [1, size, size] tensor, True on and below the diagonal (no head axis); device is "
    "accepted and ignored.",
    differences=["3-D [1, size, size] instead of [1, 1, size, size]"],
)
def create_future_mask(size, device=None):
    return torch.ones(size, size, dtype=torch.bool).tril().unsqueeze(0)


@case(
    "create_padding_mask",
    "variant",
    source=SRC,
    why="3-D mask (src != pad).unsqueeze(-2) of shape [B, 1, L]",
    expect=r"\[B, ?1, ?1, ?L\]|shape",
    pattern="Returns seq != pad_idx with one axis inserted before the last: bool [B, 1, L].",
    differences=["3-D [B, 1, L] instead of [B, 1, 1, L]"],
)
def create_padding_mask(seq, pad_idx=0):
    keep = seq.ne(pad_idx)
    return keep.unsqueeze(-2)


@case(
    "create_masks",
    "variant",
    source=SRC,
    why="3-D masks: src [B, 1, S], tgt [B, T, T]",
    expect=r"\[B, ?1, ?1, ?S\]|\[B, ?1, ?T, ?T\]|shape",
    pattern="Computes the padding masks itself (x != pad_idx with an axis before the last: [B, 1, L]); "
    "tgt_mask is the target's padding mask AND this module's create_future_mask(T) ([1, T, T]), as bool: "
    "src [B, 1, S], tgt [B, T, T].",
    differences=["3-D masks [B, 1, S] and [B, T, T]"],
)
def create_masks(src, tgt, pad_idx=0):
    src_keep = (src != pad_idx).unsqueeze(-2)
    tgt_keep = (tgt != pad_idx).unsqueeze(-2)
    return src_keep, tgt_keep & create_future_mask(tgt.size(-1)).bool()


@case(
    "DecoderLayer",
    "variant",
    source=SRC,
    why="pre-norm residuals around all three sub-layers",
    expect=r"pre-?norm|post-?norm|BEFORE the sub-layer",
    pattern="Pre-norm block with three residuals: self-attention on norm1(x) with tgt_mask, cross-attention "
    "from norm2(x) to the (unnormalised) encoder output with src_mask, feed_forward on norm3(x); each "
    "x + dropout(sub-layer). This module's MultiHeadAttention, FeedForwardNetwork(d_model, d_ff, dropout) and "
    "LayerNorm; one dropout.",
    differences=["pre-norm: the norm is applied to each sub-layer's input"],
)
class DecoderLayer(nn.Module):
    def __init__(self, d_model, num_heads, d_ff, dropout=0.1):
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, num_heads)
        self.cross_attn = MultiHeadAttention(d_model, num_heads)
        self.feed_forward = FeedForwardNetwork(d_model, d_ff, dropout)
        self.norm1 = LayerNorm(d_model)
        self.norm2 = LayerNorm(d_model)
        self.norm3 = LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x, encoder_output, src_mask=None, tgt_mask=None):
        n = self.norm1(x)
        x = x + self.dropout(self.self_attn(n, n, n, tgt_mask))
        n = self.norm2(x)
        x = x + self.dropout(self.cross_attn(n, encoder_output, encoder_output, src_mask))
        return x + self.dropout(self.feed_forward(self.norm3(x)))


@case(
    "Decoder",
    "variant",
    source=SRC,
    why="a final LayerNorm after the stack",
    expect=r"final (LayerNorm|norm)|extra LayerNorm|after the last layer",
    pattern="Like its Encoder: dropout(positional_encoding(embedding(tgt))) with a dropout-free "
    "PositionalEncoding, num_layers DecoderLayers called as layer(x, encoder_output, src_mask, "
    "tgt_mask), then an extra final LayerNorm `norm`.",
    differences=["a final LayerNorm after the stack"],
)
class Decoder(nn.Module):
    def __init__(self, vocab_size, d_model=512, num_layers=6, num_heads=8, d_ff=2048, dropout=0.1, max_seq_length=5000):
        super().__init__()
        self.embedding = TokenEmbedding(vocab_size, d_model)
        self.positional_encoding = PositionalEncoding(d_model, max_seq_length, dropout=0.0)
        self.dropout = nn.Dropout(dropout)
        self.layers = nn.ModuleList([DecoderLayer(d_model, num_heads, d_ff, dropout) for _ in range(num_layers)])
        self.norm = LayerNorm(d_model)

    def forward(self, tgt, encoder_output, src_mask=None, tgt_mask=None):
        h = self.dropout(self.positional_encoding(self.embedding(tgt)))
        for block in self.layers:
            h = block(h, encoder_output, src_mask, tgt_mask)
        return self.norm(h)


class _LogProbHead(nn.Module):
    def __init__(self, d_model, vocab_size):
        super().__init__()
        self.proj = nn.Linear(d_model, vocab_size, bias=True)

    def forward(self, x):
        return F.log_softmax(self.proj(x), dim=-1)


@case(
    "Transformer",
    "variant",
    source=SRC,
    why="the generator is a separate Linear + log_softmax, NOT tied to the target embedding (section 3.4 ties "
    "it); forward returns decoder states, the caller applies the generator",
    expect=r"tied|\btie\b|share|same Parameter|nn\.Linear|log.?softmax|logits",
    pattern="encoder / decoder are this module's Encoder and Decoder; generator is a module holding "
    "`proj` = nn.Linear(d, V) and returning log_softmax of it, NOT tied to the target embedding. Xavier-uniform "
    "init of every parameter with more than one dimension. forward(src, tgt) builds the masks with this "
    "module's create_masks and returns the DECODER STATES (the caller applies the generator). "
    "share_embeddings is accepted and ignored.",
    differences=[
        "generator not tied to the target embedding",
        "generator is Linear + log_softmax under generator.proj",
        "forward returns decoder states, not logits",
        "share_embeddings ignored",
    ],
)
class Transformer(nn.Module):
    def __init__(
        self,
        src_vocab_size,
        tgt_vocab_size,
        d_model=512,
        num_layers=6,
        num_heads=8,
        d_ff=2048,
        dropout=0.1,
        max_seq_length=5000,
        pad_idx=0,
        share_embeddings=False,
    ):
        super().__init__()
        self.pad_idx = pad_idx
        sizes = (d_model, num_layers, num_heads, d_ff, dropout, max_seq_length)
        self.encoder = Encoder(src_vocab_size, *sizes)
        self.decoder = Decoder(tgt_vocab_size, *sizes)
        self.generator = _LogProbHead(d_model, tgt_vocab_size)
        for weight in self.parameters():
            if weight.dim() > 1:
                nn.init.xavier_uniform_(weight)

    def encode(self, src, src_mask):
        return self.encoder(src, src_mask)

    def decode(self, tgt, memory, src_mask, tgt_mask):
        return self.decoder(tgt, memory, src_mask, tgt_mask)

    def forward(self, src, tgt):
        src_mask, tgt_mask = create_masks(src, tgt, self.pad_idx)
        memory = self.encode(src, src_mask)
        return self.decode(tgt, memory, src_mask, tgt_mask)


@case(
    "LabelSmoothingLoss",
    "variant",
    source=SRC,
    why="KL divergence (sum) to a target that spreads the smoothing over V-2 classes (not the target, not "
    "padding) and zeroes the padding column; divided by the token count",
    expect=r"KL|entropy|V-2|V - 2|number of classes|distribution",
    pattern="Log-probabilities (log_softmax) flattened to [N, V]. Target distribution: smoothing / (V-2) "
    "everywhere, 1 - smoothing on the gold class, 0 in the padding column and 0 on rows whose target is "
    "padding. Loss = KL divergence summed over everything, divided by the number of non-padding tokens.",
    differences=[
        "KL divergence instead of cross-entropy (the target's entropy is subtracted)",
        "smoothing spread over V-2 classes",
        "the padding column gets no mass",
    ],
)
class LabelSmoothingLoss(nn.Module):
    def __init__(self, smoothing=0.1, ignore_index=0):
        super().__init__()
        self.smoothing = smoothing
        self.ignore_index = ignore_index

    def forward(self, logits, target):
        vocab = logits.size(-1)
        logp = F.log_softmax(logits, dim=-1).reshape(-1, vocab)
        gold = target.reshape(-1)
        pad = gold == self.ignore_index
        wanted = torch.full_like(logp, self.smoothing / (vocab - 2))
        wanted.scatter_(1, gold[:, None], 1.0 - self.smoothing)
        wanted[:, self.ignore_index] = 0
        wanted[pad] = 0.0
        return F.kl_div(logp, wanted.detach(), reduction="sum") / (~pad).sum()


@case(
    "greedy_decode",
    "buggy",
    source=SRC,
    why="works for a batch of one only (a [1, 1] start tensor, the first row's argmax); never stops at end_idx "
    "and never pads a finished row",
    expect=r"batch|B ?> ?1|more than one|several (rows|sentences)|each row",
    pattern="src_mask from this module's create_padding_mask; ys starts as a [1, 1] tensor of start_idx "
    "(src's dtype) whatever the batch size. max_len - 1 times: decode(ys, memory, src_mask, "
    "create_future_mask(len)), generator on the last position, argmax; the FIRST row's token is appended "
    "as a [1, 1] tensor. end_idx is never looked at: no early stop, no padding. Returns ys.",
    differences=[
        "batch of one only ([1, 1] start tensor, first row's token)",
        "ignores end_idx",
        "no padding of finished rows",
    ],
)
def greedy_decode(model, src, max_len, start_idx, end_idx, pad_idx=0):
    src_mask = create_padding_mask(src, pad_idx)
    memory = model.encode(src, src_mask)
    ys = torch.full((1, 1), start_idx, dtype=src.dtype, device=src.device)
    for _ in range(max_len - 1):
        states = model.decode(ys, memory, src_mask, create_future_mask(ys.size(1)))
        best = model.generator(states[:, -1]).argmax(dim=1)
        ys = torch.cat([ys, ys.new_full((1, 1), int(best[0]))], dim=1)
    return ys
