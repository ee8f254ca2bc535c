"""Patterns observed in hkproj/pytorch-transformer ("Coding a Transformer from scratch"): ``model.py``,
``train.py``, ``dataset.py`` and ``Beam_Search.ipynb``: a pre-norm model with bias-free attention
projections, int32 and 3-D masks, batch-of-one decoding and a beam search over raw logits.

Each case reproduces, in our own code, the behaviour its ``pattern`` describes; no code is copied.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from solutions import DecoderLayer as ReferenceDecoderLayer
from solutions import EncoderLayer as ReferenceEncoderLayer

from . import PASSES, case

COMMIT = "3beddd2604bfa5e0fbd53f52361bd887dc027a8c"


def src(path):
    return dict(repo="hkproj/pytorch-transformer", path=path, commit=COMMIT)


@case(
    "LayerNorm",
    "variant",
    source=src("model.py"),
    why="unbiased std (x.std) with eps added outside the square root; default eps 1e-6",
    expect=r"unbiased|d-1|d - 1|outside the square root|eps.{0,40}(sqrt|square root)",
    pattern="Constructor (d_model, eps=10**-6); weight ones, bias zeros. forward: "
    "weight * (x - mean) / (std + eps) + bias with the UNBIASED std (d-1) of the last axis, eps outside "
    "the square root.",
    differences=["unbiased std (d-1)", "eps added outside the square root", "default eps 1e-6"],
)
class LayerNorm(nn.Module):
    def __init__(self, d_model, eps=10**-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d_model))
        self.bias = nn.Parameter(torch.zeros(d_model))

    def forward(self, x):
        spread = x.std(dim=-1, keepdim=True) + self.eps
        return self.weight * (x - x.mean(dim=-1, keepdim=True)) / spread + self.bias


@case(
    "TokenEmbedding",
    "correct",
    source=src("model.py"),
    why="nn.Embedding times sqrt(d_model)",
    expect=PASSES,
    pattern="`embedding` = nn.Embedding(vocab_size, d_model); forward multiplies the lookup by math.sqrt(d_model).",
)
class TokenEmbedding(nn.Module):
    def __init__(self, vocab_size, d_model):
        super().__init__()
        self.d_model = d_model
        self.embedding = nn.Embedding(vocab_size, d_model)

    def forward(self, tokens):
        return math.sqrt(self.d_model) * self.embedding(tokens)


@case(
    "PositionalEncoding",
    "variant",
    source=src("model.py"),
    why="dropout inside the positional encoding; no length check",
    expect=r"dropout|train mode|max_seq_length|longer than",
    pattern="Constructor (d_model, max_seq_length=5000, dropout=0.1). Buffer pe [1, max_len, d] with sin / cos "
    "of pos * exp(2i * -ln(10000)/d) (float32) on even / odd features; forward returns dropout(x + pe[:, :S]) "
    "with its own dropout and no length check.",
    differences=["dropout inside the positional encoding", "no length check"],
)
class PositionalEncoding(nn.Module):
    def __init__(self, d_model, max_seq_length=5000, dropout=0.1):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        where = torch.arange(max_seq_length, dtype=torch.float).unsqueeze(1)
        step = torch.exp(torch.arange(0, d_model, 2).float() * (-math.log(10000.0) / d_model))
        grid = torch.zeros(max_seq_length, d_model)
        grid[:, 0::2] = torch.sin(where * step)
        grid[:, 1::2] = torch.cos(where * step)
        self.register_buffer("pe", grid.unsqueeze(0))

    def forward(self, x):
        return self.dropout(x + self.pe[:, : x.shape[1], :])


@case(
    "scaled_dot_product_attention",
    "correct",
    source=src("model.py"),
    why="softmax(QK^T/sqrt(d_k)) with an in-place -1e9 fill (mask == 0) on the fresh scores (not an input)",
    expect=PASSES,
    pattern="(query, key, value, mask=None, dropout=None): scores = q @ k^T / sqrt(d_k) (d_k from the query), "
    "filled IN PLACE with -1e9 where mask == 0 (the scores are a fresh tensor, no input is changed), "
    "softmax, optional dropout module; returns (weights @ v, weights).",
    differences=["-1e9 fill, in place on the fresh scores", "extra optional `dropout`"],
)
def scaled_dot_product_attention(query, key, value, mask=None, dropout=None):
    s = query @ key.transpose(-2, -1) / math.sqrt(query.shape[-1])
    if mask is not None:
        s.masked_fill_(mask == 0, -1e9)
    a = s.softmax(dim=-1)
    if dropout is not None:
        a = dropout(a)
    return a @ value, a


@case(
    "MultiHeadAttention",
    "variant",
    source=src("model.py"),
    why="projections without bias (bias=False on W_q, W_k, W_v, W_o); dropout on the attention weights",
    expect=r"bias",
    reject=r"no output projection|concatenated heads directly",
    pattern="Constructor (d_model, num_heads, dropout=0.1), asserts divisibility; W_q, W_k, W_v, W_o are "
    "nn.Linear(d, d, bias=False); a dropout module. Heads: view(B, L, h, d_k).transpose(1, 2); this "
    "module's scaled_dot_product_attention(q, k, v, mask, self.dropout) (dropout on the weights); weights "
    "stored in attention_weights; heads merged to (B, -1, h * d_k); W_o.",
    differences=["no bias on any projection", "dropout on the attention weights"],
)
class MultiHeadAttention(nn.Module):
    def __init__(self, d_model, num_heads, dropout=0.1):
        super().__init__()
        assert d_model % num_heads == 0, "num_heads must divide d_model"
        self.h = num_heads
        self.d_k = d_model // num_heads
        self.W_q = nn.Linear(d_model, d_model, bias=False)
        self.W_k = nn.Linear(d_model, d_model, bias=False)
        self.W_v = nn.Linear(d_model, d_model, bias=False)
        self.W_o = nn.Linear(d_model, d_model, bias=False)
        self.dropout = nn.Dropout(dropout)

    def forward(self, q, k, v, mask=None):
        def heads(t):
            return t.view(t.shape[0], t.shape[1], self.h, self.d_k).transpose(1, 2)

        ctx, self.attention_weights = scaled_dot_product_attention(
            heads(self.W_q(q)), heads(self.W_k(k)), heads(self.W_v(v)), mask, self.dropout
        )
        ctx = ctx.transpose(1, 2).contiguous()
        return self.W_o(ctx.view(ctx.shape[0], -1, self.h * self.d_k))


class FeedForwardNetwork(nn.Module):  # used by DecoderLayer below; not a case (its dropout is graded elsewhere)
    def __init__(self, d_model, d_ff, dropout=0.1):
        super().__init__()
        self.W_1 = nn.Linear(d_model, d_ff)
        self.dropout = nn.Dropout(dropout)
        self.W_2 = nn.Linear(d_ff, d_model)

    def forward(self, x):
        return self.W_2(self.dropout(F.relu(self.W_1(x))))


@case(
    "DecoderLayer",
    "variant",
    source=src("model.py"),
    why="pre-norm residual connections: x + dropout(sublayer(norm(x)))",
    expect=r"pre-?norm|post-?norm|BEFORE the sub-layer",
    pattern="Pre-norm: x + dropout(sub-layer(norm(x))) around self-attention (tgt_mask), cross-attention to "
    "the encoder output (src_mask) and the feed-forward network. Parts: this module's "
    "MultiHeadAttention(d, h, dropout) twice, FeedForwardNetwork(d, d_ff, dropout), LayerNorm(d) three "
    "times, one dropout.",
    differences=["pre-norm: the norm is applied to each sub-layer's input"],
)
class DecoderLayer(nn.Module):
    def __init__(self, d_model, num_heads, d_ff, dropout=0.1):
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, num_heads, dropout=dropout)
        self.cross_attn = MultiHeadAttention(d_model, num_heads, dropout=dropout)
        self.feed_forward = FeedForwardNetwork(d_model, d_ff, dropout=dropout)
        self.norm1 = LayerNorm(d_model)
        self.norm2 = LayerNorm(d_model)
        self.norm3 = LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x, encoder_output, src_mask=None, tgt_mask=None):
        y = self.norm1(x)
        x = x + self.dropout(self.self_attn(y, y, y, tgt_mask))
        y = self.norm2(x)
        x = x + self.dropout(self.cross_attn(y, encoder_output, encoder_output, src_mask))
        y = self.norm3(x)
        return x + self.dropout(self.feed_forward(y))


@case(
    "create_padding_mask",
    "variant",
    source=src("dataset.py"),
    why="an int32 mask (.int()), not torch.bool; shape [B, 1, 1, L] (right)",
    expect=r"torch\.bool|bool",
    pattern="Returns seq != pad_idx reshaped to [B, 1, 1, L] and converted to int32 (1 = attend), not bool.",
    differences=["int32 instead of torch.bool"],
)
def create_padding_mask(seq, pad_idx=0):
    return (seq != pad_idx)[:, None, None, :].to(torch.int32)


@case(
    "create_future_mask",
    "variant",
    source=src("dataset.py"),
    why="3-D causal mask [1, size, size]",
    expect=r"\[1, ?1, ?size, ?size\]|\[1, ?1, ?\d+, ?\d+\]|shape",
    pattern="Returns bool [1, size, size]: True where an int32 strict upper triangle of ones is 0 (on and "
    "below the diagonal); device ignored.",
    differences=["3-D [1, size, size]"],
)
def create_future_mask(size, device=None):
    above = torch.ones(1, size, size).triu(1).int()
    return above == 0


def create_masks(src, tgt, pad_idx=0):  # used by Transformer below; not a case
    tgt_keep = (tgt != pad_idx)[:, None, :].int()
    return create_padding_mask(src, pad_idx), tgt_keep & create_future_mask(tgt.size(1))


class _VocabProjection(nn.Module):
    def __init__(self, d_model, vocab_size):
        super().__init__()
        self.proj = nn.Linear(d_model, vocab_size, bias=True)

    def forward(self, x):
        return self.proj(x)


class _LayerStack(nn.Module):
    def __init__(self, d_model, layers):
        super().__init__()
        self.layers = layers
        self.norm = LayerNorm(d_model)


@case(
    "Transformer",
    "variant",
    source=src("model.py"),
    why="the projection layer is a separate module wrapping an nn.Linear, not tied to the target embedding; "
    "embeddings outside the encoder/decoder stacks",
    expect=r"tied|\btie\b|share|same Parameter|nn\.Linear",
    pattern="encoder / decoder are containers holding `layers` (the contract's reference EncoderLayer / "
    "DecoderLayer) and a final `norm` (this module's LayerNorm); the embeddings live on the model: src_embed, "
    "tgt_embed (TokenEmbedding), src_pos, tgt_pos (PositionalEncoding with dropout). generator wraps "
    "`proj` = nn.Linear(d, V), NOT tied. Xavier init of >1-D parameters; forward uses this module's "
    "create_masks and returns the generator's logits; share_embeddings ignored.",
    differences=[
        "generator not tied to the target embedding (generator.proj)",
        "embeddings outside the encoder/decoder, attribute names differ",
        "a final norm after each stack",
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
        enc = [ReferenceEncoderLayer(d_model, num_heads, d_ff, dropout) for _ in range(num_layers)]
        dec = [ReferenceDecoderLayer(d_model, num_heads, d_ff, dropout) for _ in range(num_layers)]
        self.encoder = _LayerStack(d_model, nn.ModuleList(enc))
        self.decoder = _LayerStack(d_model, nn.ModuleList(dec))
        self.src_embed, self.tgt_embed = (TokenEmbedding(v, d_model) for v in (src_vocab_size, tgt_vocab_size))
        self.src_pos, self.tgt_pos = (PositionalEncoding(d_model, max_seq_length, dropout) for _ in range(2))
        self.generator = _VocabProjection(d_model, tgt_vocab_size)
        for w in self.parameters():
            if w.dim() > 1:
                nn.init.xavier_uniform_(w)

    def encode(self, src, src_mask):
        h = self.src_pos(self.src_embed(src))
        for layer in self.encoder.layers:
            h = layer(h, src_mask)
        return self.encoder.norm(h)

    def decode(self, tgt, memory, src_mask, tgt_mask):
        h = self.tgt_pos(self.tgt_embed(tgt))
        for layer in self.decoder.layers:
            h = layer(h, memory, src_mask, tgt_mask)
        return self.decoder.norm(h)

    def forward(self, src, tgt):
        src_mask, tgt_mask = create_masks(src, tgt, self.pad_idx)
        return self.generator(self.decode(tgt, self.encode(src, src_mask), src_mask, tgt_mask))


@case(
    "greedy_decode",
    "buggy",
    source=src("train.py"),
    why="works for a batch of one only (a [1, 1] start tensor, next token read with .item()) and returns a 1-D row",
    expect=r"batch|B ?> ?1|more than one|several (rows|sentences)|each row",
    pattern="src_mask from this module's create_padding_mask; the sequence starts as a [1, 1] tensor of "
    "start_idx (src's dtype). Until its length is max_len: decode with create_future_mask(len) converted to "
    "the padding mask's dtype, generator on the last position, argmax, append the token read with .item(); "
    "stop after end_idx. Returns the 1-D row (squeeze(0)); a batch of more than one cannot work.",
    differences=["batch of one only", "returns a 1-D row"],
)
def greedy_decode(model, src, max_len, start_idx, end_idx, pad_idx=0):
    src_mask = create_padding_mask(src, pad_idx)
    memory = model.encode(src, src_mask)
    out = torch.full((1, 1), start_idx, dtype=src.dtype, device=src.device)
    while out.size(1) != max_len:
        future = create_future_mask(out.size(1)).type_as(src_mask).to(src.device)
        logits = model.generator(model.decode(out, memory, src_mask, future)[:, -1])
        token = logits.argmax(dim=1)
        out = torch.cat([out, torch.full((1, 1), token.item(), dtype=src.dtype, device=src.device)], dim=1)
        if token == end_idx:
            break
    return out.squeeze(0)


@case(
    "beam_search",
    "buggy",
    source=src("Beam_Search.ipynb"),
    why="sums the generator's raw LOGITS as if they were log-probabilities (no log_softmax); a finished "
    "candidate is dropped from the beam instead of kept; no length penalty",
    expect=r"log.?prob|log_softmax|logits|finished",
    reject=r"With beam_size=1 your beam search should give exactly the greedy result",
    pattern="Candidates are ([1, L] tensor, score) pairs, starting from ([[start_idx]], 1). Stops when a "
    "candidate reaches max_len. Each round: a candidate ending in end_idx is dropped (not kept); the others "
    "are decoded (future mask typed like the padding mask) and extended by the generator's top beam_size "
    "tokens, adding the RAW logit to the score; the best beam_size survive (stable sort, high first); stop "
    "when all end in end_idx. Returns the best candidate, squeezed; no length penalty.",
    differences=[
        "raw logits summed as if log-probabilities",
        "finished candidates dropped from the beam",
        "no length penalty",
    ],
)
def beam_search(model, src, max_len, start_idx, end_idx, beam_size=4, length_penalty=0.6, pad_idx=0):
    src_mask = create_padding_mask(src, pad_idx)
    memory = model.encode(src, src_mask)
    beam = [(torch.full((1, 1), start_idx, dtype=src.dtype, device=src.device), 1)]
    while all(seq.size(1) != max_len for seq, _ in beam):
        grown = []
        for seq, score in beam:
            if seq[0, -1].item() == end_idx:
                continue
            future = create_future_mask(seq.size(1)).type_as(src_mask).to(src.device)
            logits = model.generator(model.decode(seq, memory, src_mask, future)[:, -1])
            values, tokens = logits.topk(beam_size, dim=1)
            for j in range(beam_size):
                longer = torch.cat([seq, tokens[0, j].view(1, 1)], dim=1)
                grown.append((longer, score + values[0, j].item()))
        beam = sorted(grown, key=lambda pair: pair[1], reverse=True)[:beam_size]
        if all(seq[0, -1].item() == end_idx for seq, _ in beam):
            break
    return beam[0][0].squeeze()
