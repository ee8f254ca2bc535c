"""Patterns observed in hyunwoongko/transformer (``models/``): a from-scratch implementation of the paper
with BERT's LayerNorm eps, 4-D-only attention, a decoder that ends in the LM head and a uint8 target mask.

Each case reproduces, in our own code, the behaviour its ``pattern`` describes; no code is copied.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from . import PASSES, case

COMMIT = "63286547b9cd174a6cfc204832271814d685181f"


def src(path):
    return dict(repo="hyunwoongko/transformer", path=path, commit=COMMIT)


@case(
    "LayerNorm",
    "variant",
    source=src("models/layers/layer_norm.py"),
    why="biased variance, eps inside the sqrt (right), but the DEFAULT eps is 1e-12 instead of the contract's "
    "1e-5 (BERT's value); the eps it is given is used",
    expect=r"default.{0,60}(eps|1e-12|1e-05|1e-5)|(eps|1e-12).{0,60}default",
    reject=r"ignores the .?eps.? it was given",
    pattern="Constructor (d_model, eps=1e-12); weight ones, bias zeros. forward: (x - mean) / sqrt(var + eps) "
    "with the BIASED variance over the last axis, then weight * . + bias: the contract's formula, only the "
    "default eps differs.",
    differences=["default eps 1e-12"],
)
class LayerNorm(nn.Module):
    def __init__(self, d_model, eps=1e-12):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d_model))
        self.bias = nn.Parameter(torch.zeros(d_model))
        self.eps = eps

    def forward(self, x):
        mu = x.mean(dim=-1, keepdim=True)
        sigma2 = x.var(dim=-1, keepdim=True, unbiased=False)
        return self.weight * ((x - mu) / torch.sqrt(sigma2 + self.eps)) + self.bias


@case(
    "scaled_dot_product_attention",
    "variant",
    source=src("models/layers/scale_dot_product_attention.py"),
    why="accepts only 4-D [B, h, S, d_k] inputs (the key's size unpacked into four names, k.transpose(2, 3)); "
    "the contract allows any leading axes",
    expect=r"4-D|four|leading (axes|dimensions)|3-D|\[…|any number",
    pattern="Signature (q, k, v, mask=None, e=1e-12), e unused. The key's size is unpacked into exactly four "
    "names (so a 3-D input raises 'not enough values to unpack'); scores = q @ k.transpose(2, 3) / "
    "sqrt(d_k); where mask == 0 the score becomes -10000; softmax; returns (weights @ v, weights).",
    differences=["4-D inputs only", "-10000 fill", "extra unused argument e"],
)
def scaled_dot_product_attention(q, k, v, mask=None, e=1e-12):
    _, _, _, d_k = k.size()
    scores = torch.matmul(q, k.transpose(2, 3)) / math.sqrt(d_k)
    if mask is not None:
        scores = scores.masked_fill(mask == 0, -10000)
    weights = torch.softmax(scores, dim=-1)
    return torch.matmul(weights, v), weights


@case(
    "MultiHeadAttention",
    "variant",
    source=src("models/layers/multi_head_attention.py"),
    why="no check that num_heads divides d_model (the view fails later, at forward); otherwise the paper's "
    "multi-head attention",
    expect=r"divid|d_model % num_heads|multiple of",
    pattern="W_q, W_k, W_v, W_o with bias and NO check that num_heads divides d_model. forward: project, "
    "split each tensor with view(B, L, h, d // h).transpose(1, 2) (fails at forward when h does not divide "
    "d), this module's scaled_dot_product_attention(q, k, v, mask=mask), merge the heads, W_o; the weights "
    "are stored in attention_weights after each forward.",
    differences=["no divisibility check in the constructor"],
)
class MultiHeadAttention(nn.Module):
    def __init__(self, d_model, num_heads):
        super().__init__()
        self.num_heads = num_heads
        self.W_q = nn.Linear(d_model, d_model)
        self.W_k = nn.Linear(d_model, d_model)
        self.W_v = nn.Linear(d_model, d_model)
        self.W_o = nn.Linear(d_model, d_model)

    def _to_heads(self, t):
        b, n, width = t.size()
        return t.view(b, n, self.num_heads, width // self.num_heads).transpose(1, 2)

    def forward(self, q, k, v, mask=None):
        heads = [self._to_heads(proj(t)) for proj, t in ((self.W_q, q), (self.W_k, k), (self.W_v, v))]
        out, self.attention_weights = scaled_dot_product_attention(*heads, mask=mask)
        b, h, n, d_head = out.size()
        return self.W_o(out.transpose(1, 2).contiguous().view(b, n, h * d_head))


@case(
    "FeedForwardNetwork",
    "variant",
    source=src("models/layers/position_wise_feed_forward.py"),
    why="dropout after the ReLU, inside the feed-forward network",
    expect=r"dropout|train mode",
    pattern="Constructor (d_model, d_ff, drop_prob=0.1); forward is W_2(dropout(relu(W_1(x)))).",
    differences=["dropout after the ReLU, inside the network"],
)
class FeedForwardNetwork(nn.Module):
    def __init__(self, d_model, d_ff, drop_prob=0.1):
        super().__init__()
        self.W_1 = nn.Linear(d_model, d_ff)
        self.W_2 = nn.Linear(d_ff, d_model)
        self.dropout = nn.Dropout(p=drop_prob)

    def forward(self, x):
        return self.W_2(self.dropout(F.relu(self.W_1(x))))


@case(
    "TokenEmbedding",
    "buggy",
    source=src("models/embedding/token_embeddings.py"),
    why="no sqrt(d_model) scaling anywhere (section 3.4); also padding_idx=1 freezes row 1 at zero",
    expect=r"sqrt|square root|factor that depends on d_model|scale",
    pattern="`embedding` = nn.Embedding(vocab_size, d_model, padding_idx=1); forward is the plain lookup, "
    "with no sqrt(d_model) factor.",
    differences=["no sqrt(d_model) scaling", "padding_idx=1"],
)
class TokenEmbedding(nn.Module):
    def __init__(self, vocab_size, d_model):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, d_model, padding_idx=1)

    def forward(self, tokens):
        return self.embedding(tokens)


@case(
    "PositionalEncoding",
    "variant",
    source=src("models/embedding/positional_encoding.py"),
    why="forward takes the token ids and returns the table slice [S, d] for the caller to add (the contract "
    "adds it: x + pe); the table is a plain tensor of shape [max_len, d]",
    expect=r"x \+ pe|adds?|returns? .{0,40}(table|encoding)|\[1, ?max_seq_length|buffer|\[B, ?S, ?d\]",
    pattern="Constructor (d_model, max_seq_length=5000, device=None). pe is a PLAIN tensor [max_len, d] (no "
    "buffer, no batch axis): sin / cos of pos / 10000^(2i/d) (float32) on even / odd features. forward "
    "expects the 2-D token ids: it unpacks x.size() into (batch, length), so a [B, S, d] input raises, and "
    "returns pe[:length] for the caller to add.",
    differences=[
        "returns the table slice [S, d] instead of x + pe",
        "forward takes [B, S] token ids",
        "pe is a plain [max_len, d] tensor",
    ],
)
class PositionalEncoding(nn.Module):
    def __init__(self, d_model, max_seq_length=5000, device=None):
        super().__init__()
        pos = torch.arange(max_seq_length, device=device).float()[:, None]
        even = torch.arange(0, d_model, 2, device=device).float()
        div = 10000 ** (even / d_model)
        self.pe = torch.zeros(max_seq_length, d_model, device=device)
        self.pe[:, 0::2] = torch.sin(pos / div)
        self.pe[:, 1::2] = torch.cos(pos / div)

    def forward(self, x):
        _, length = x.size()
        return self.pe[:length, :]


@case(
    "EncoderLayer",
    "correct",
    source=src("models/blocks/encoder_layer.py"),
    why="post-norm: norm(x + dropout(sublayer(x))) around attention and FFN, with two dropout modules",
    expect=PASSES,
    pattern="Post-norm: x = norm1(x + dropout(self_attn(x, x, x, mask=mask))), then "
    "norm2(x + dropout2(feed_forward(x))). Parts built with keywords: this module's "
    "MultiHeadAttention(d_model=, num_heads=), LayerNorm(d_model=) (eps 1e-12), FeedForwardNetwork(d_model=, "
    "d_ff=, drop_prob=); two dropout modules, `dropout` and `dropout2`.",
    differences=["a second dropout module, dropout2", "the module's parts (LayerNorm eps 1e-12, FFN dropout)"],
)
class EncoderLayer(nn.Module):
    def __init__(self, d_model, num_heads, d_ff, dropout=0.1):
        super().__init__()
        self.self_attn = MultiHeadAttention(num_heads=num_heads, d_model=d_model)
        self.norm1 = LayerNorm(d_model=d_model)
        self.dropout = nn.Dropout(p=dropout)
        self.feed_forward = FeedForwardNetwork(d_ff=d_ff, d_model=d_model, drop_prob=dropout)
        self.norm2 = LayerNorm(d_model=d_model)
        self.dropout2 = nn.Dropout(p=dropout)

    def forward(self, x, mask=None):
        attended = self.dropout(self.self_attn(x, x, x, mask=mask))
        x = self.norm1(attended + x)
        transformed = self.dropout2(self.feed_forward(x))
        return self.norm2(transformed + x)


@case(
    "DecoderLayer",
    "correct",
    source=src("models/blocks/decoder_layer.py"),
    why="post-norm self-attention, cross-attention on the encoder output, FFN",
    expect=PASSES,
    pattern="Post-norm, three blocks each with its own dropout (dropout, dropout2, dropout3): self-attention "
    "with tgt_mask -> norm1; when encoder_output is not None, cross-attention to it with src_mask -> norm2; "
    "feed_forward -> norm3; each norm(sub-layer output after dropout + its input). Parts as in its "
    "EncoderLayer.",
    differences=["one dropout module per sub-layer", "cross-attention skipped when encoder_output is None"],
)
class DecoderLayer(nn.Module):
    def __init__(self, d_model, num_heads, d_ff, dropout=0.1):
        super().__init__()
        self.self_attn = MultiHeadAttention(num_heads=num_heads, d_model=d_model)
        self.norm1 = LayerNorm(d_model=d_model)
        self.dropout = nn.Dropout(p=dropout)
        self.cross_attn = MultiHeadAttention(num_heads=num_heads, d_model=d_model)
        self.norm2 = LayerNorm(d_model=d_model)
        self.dropout2 = nn.Dropout(p=dropout)
        self.feed_forward = FeedForwardNetwork(d_ff=d_ff, d_model=d_model, drop_prob=dropout)
        self.norm3 = LayerNorm(d_model=d_model)
        self.dropout3 = nn.Dropout(p=dropout)

    def forward(self, x, encoder_output, src_mask=None, tgt_mask=None):
        x = self.norm1(self.dropout(self.self_attn(x, x, x, mask=tgt_mask)) + x)
        if encoder_output is not None:
            mixed = self.cross_attn(x, encoder_output, encoder_output, mask=src_mask)
            x = self.norm2(self.dropout2(mixed) + x)
        return self.norm3(self.dropout3(self.feed_forward(x)) + x)


@case(
    "create_padding_mask",
    "correct",
    source=src("models/model/transformer.py"),
    why="(src != pad) with two axes inserted after the batch: bool [B, 1, 1, L]",
    expect=PASSES,
    pattern="Returns seq != pad_idx with two singleton axes inserted after the batch axis: bool [B, 1, 1, L].",
)
def create_padding_mask(seq, pad_idx=0):
    return (seq != pad_idx)[:, None, None, :]


@case(
    "create_masks",
    "buggy",
    source=src("models/model/transformer.py"),
    why="target padding put on the QUERY axis ([B, 1, T, 1]) instead of the key axis (harmless for "
    "right-padding only); and the tgt mask comes out uint8 (a uint8 lower triangle)",
    expect=r"(query|key|column|row|axis|\[B, ?1, ?1, ?T\]).{0,120}(padding|pad)|(padding|pad).{0,120}"
    r"(query|key|column|row|axis|\[B, ?1, ?1, ?T\])",
    pattern="src_mask is right ([B, 1, 1, S] bool). The target padding is put on the QUERY axis, shape "
    "[B, 1, T, 1], and combined with & with a uint8 lower-triangular [T, T] matrix of ones (on tgt's "
    "device), so tgt_mask is a uint8 [B, 1, T, T] tensor.",
    differences=["target padding on the query axis instead of the key axis", "tgt_mask is uint8, not bool"],
)
def create_masks(src, tgt, pad_idx=0):
    src_mask = (src != pad_idx)[:, None, None, :]
    rows_ok = (tgt != pad_idx)[:, None, :, None]
    n = tgt.size(1)
    lower = torch.ones(n, n, dtype=torch.uint8).tril().to(tgt.device)
    return src_mask, rows_ok & lower


@case(
    "Decoder",
    "variant",
    source=src("models/model/decoder.py"),
    why="the output projection (`linear`, the LM head) is inside the decoder: it returns logits [B, T, V], "
    "not the decoder states [B, T, d]",
    expect=r"\[B, ?T, ?d|logits|generator|LM head|vocabulary|unexpected: linear\.weight",
    pattern="Contract parts (this module's TokenEmbedding and PositionalEncoding applied as "
    "dropout(positional_encoding(embedding(tgt))), DecoderLayers built with keywords), then an extra "
    "`linear` = nn.Linear(d_model, vocab_size): it returns LOGITS [B, T, V], the LM head inside the decoder.",
    differences=["an output projection `linear` inside the decoder: returns logits [B, T, V]"],
)
class Decoder(nn.Module):
    def __init__(self, vocab_size, d_model=512, num_layers=6, num_heads=8, d_ff=2048, dropout=0.1, max_seq_length=5000):
        super().__init__()
        self.embedding = TokenEmbedding(vocab_size, d_model)
        self.positional_encoding = PositionalEncoding(d_model, max_seq_length)
        self.dropout = nn.Dropout(p=dropout)
        self.layers = nn.ModuleList(
            DecoderLayer(d_model=d_model, num_heads=num_heads, d_ff=d_ff, dropout=dropout) for _ in range(num_layers)
        )
        self.linear = nn.Linear(d_model, vocab_size, bias=True)

    def forward(self, tgt, encoder_output, src_mask=None, tgt_mask=None):
        h = self.dropout(self.positional_encoding(self.embedding(tgt)))
        for block in self.layers:
            h = block(h, encoder_output, src_mask, tgt_mask)
        return self.linear(h)
