"""Held-out round 2 (issue 22): patterns observed in mukang98/Own_Transformer, a learner's rewrite of a well-known
tutorial: an attention score that forgets the key transpose it computed, lower-case projection names, an encoder
layer whose feed-forward sub-layer is never normalised, cross-attention queried with the layer's input, a
positional encoding that returns the table instead of adding it, a LayerNorm with gamma / beta and eps 1e-12,
and masks built with two unsqueezes.

Each case reproduces, in our own code, the behaviour its ``pattern`` describes; no code is copied.
Expectations were written before anything was graded.
"""

import math

import torch
from torch import nn

from solutions import FeedForwardNetwork

from . import PASSES, case


def src(path, commit):
    return dict(repo="mukang98/Own_Transformer", path=path, commit=commit)


@case(
    "scaled_dot_product_attention",
    "buggy",
    source=src("layers/scale_dot_product_attention.py", "480c6df361c05d8e776ee1c069b37f64ae14f324"),
    why="the transposed key is computed but the score multiplies the query by the untransposed key (Q K, not Q Kᵀ)",
    expect=r"(not|never|without|forg[eo]t\w*|missing)\b.{0,40}transpos|transpos\w*.{0,40}(missing|forgotten|"
    r"not (used|applied))|untransposed|\bQ ?K\b(?!ᵀ)|\bq ?@ ?k\b(?![.ᵀ_])",
    pattern="(Adapted: the stored file has a typo, `score (q @ k)`; modelled as the intended assignment.) Unpacks "
    "key as [batch, heads, length, d_tensor] (4-D only), computes key.transpose(2, 3) into a variable it never "
    "uses, then score = (q @ k) / sqrt(d_tensor) with the UNtransposed key; masked_fill(mask == 0, -10000); "
    "softmax over the last axis; returns (score @ v, score). Shapes only work when S_k == d_k.",
    differences=["q @ k instead of q @ k^T", "4-D inputs only", "-10000 fill"],
)
def scaled_dot_product_attention(query, key, value, mask=None):
    _, _, _, d_tensor = key.size()
    key_t = key.transpose(2, 3)  # noqa: F841 - computed and forgotten, as observed
    score = (query @ key) / math.sqrt(d_tensor)
    if mask is not None:
        score = score.masked_fill(mask == 0, -10000)
    score = torch.softmax(score, dim=-1)
    return score @ value, score


@case(
    "MultiHeadAttention",
    "buggy",
    source=src("layers/multihead_attention.py", "489ba0f22fc20ab75e837dbdbcbdc0b87c93757c"),
    why="projections named w_q, w_k, w_v and concat_out instead of W_q, W_k, W_v, W_o; no attention_weights",
    expect=r"\bw_q\b|concat_out|(no|missing|lacks|without)\b.{0,40}\bW_[qkvo]\b|\bW_[qkvo]\b.{0,40}(missing|not found)",
    pattern="Constructor (d_model, head_nums); four nn.Linear(d, d) with bias named w_q, w_k, w_v, concat_out; "
    "no divisibility check. forward(q, k, v, mask=None): project, split with view(B, S, h, d//h).transpose(1, 2), "
    "a separate attention module (scores / sqrt(d_tensor), masked_fill(mask == 0, -10000), softmax), merge with "
    "transpose(1, 2).contiguous().view(B, S, d), then concat_out. The weights are returned by the helper but not "
    "kept on the module.",
    differences=["lower-case projection names, output projection called concat_out", "no attention_weights"],
)
class MultiHeadAttention(nn.Module):
    def __init__(self, d_model, num_heads):
        super().__init__()
        self.head = num_heads
        self.w_q = nn.Linear(d_model, d_model)
        self.w_k = nn.Linear(d_model, d_model)
        self.w_v = nn.Linear(d_model, d_model)
        self.concat_out = nn.Linear(d_model, d_model)

    def split(self, t):
        b, n, d = t.size()
        return t.view(b, n, self.head, d // self.head).transpose(1, 2)

    def forward(self, query, key, value, mask=None):
        q, k, v = self.split(self.w_q(query)), self.split(self.w_k(key)), self.split(self.w_v(value))
        score = q @ k.transpose(2, 3) / math.sqrt(k.size(-1))
        if mask is not None:
            score = score.masked_fill(mask == 0, -10000)
        out = torch.softmax(score, dim=-1) @ v
        b, h, n, dt = out.size()
        return self.concat_out(out.transpose(1, 2).contiguous().view(b, n, h * dt))


@case(
    "LayerNorm",
    "buggy",
    source=src("layers/layer_norm.py", "bd584474ea91721a7aab185f092f95e423be6499"),
    why="parameters named gamma / beta instead of weight / bias, and eps defaults to 1e-12 instead of 1e-5",
    expect=r"gamma|beta|1e-12|(no|missing|lacks)\b.{0,30}\b(weight|bias)\b",
    pattern="Constructor (d_model, eps=1e-12); gamma = ones, beta = zeros. forward: mean and biased variance "
    "(unbiased=False) over the last axis, (x - mean) / sqrt(var + eps), then gamma * out + beta. The maths is "
    "nn.LayerNorm's; the names and the default eps are not the contract's.",
    differences=["parameters gamma / beta", "default eps 1e-12"],
)
class LayerNorm(nn.Module):
    def __init__(self, d_model, eps=1e-12):
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(d_model))
        self.beta = nn.Parameter(torch.zeros(d_model))
        self.eps = eps

    def forward(self, x):
        mean = x.mean(-1, keepdim=True)
        var = x.var(-1, unbiased=False, keepdim=True)
        return self.gamma * ((x - mean) / torch.sqrt(var + self.eps)) + self.beta


@case(
    "EncoderLayer",
    "buggy",
    source=src("models/blocks/encoder_layer.py", "4e6685d1d25b221799e0bb6d17fb184f96a1a348"),
    why="the second sub-layer has its residual but no LayerNorm: x + dropout(ffn(x)) is returned un-normalised",
    expect=r"norm2|second (layer ?norm|norm|normali[sz]ation)|not normali[sz]ed|(no|missing|without)\b.{0,40}"
    r"(layer ?norm|norm)\b.{0,60}(feed|second|ffn)|after the feed-?forward",
    reject=r"pre-?norm",
    pattern="(Adapted to the contract's attribute names; the original has one LayerNorm called `norm`, the "
    "attention as `attention`, the feed-forward as `fc`.) forward(x, mask): h = norm(x + dropout(attn(x, x, x, "
    "mask))); then out = dropout(ffn(h)); out += h; return out: the feed-forward sub-layer is never normalised. "
    "Here norm2 exists (the contract names it) but, as in the original, nothing applies it.",
    differences=["no LayerNorm after the feed-forward residual (norm2 unused)"],
)
class EncoderLayer(nn.Module):
    def __init__(self, d_model, num_heads, d_ff, dropout=0.1):
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, num_heads)
        self.feed_forward = FeedForwardNetwork(d_model, d_ff)
        self.norm1 = LayerNorm(d_model)
        self.norm2 = LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x, mask=None):
        h = self.norm1(x + self.dropout(self.self_attn(x, x, x, mask)))
        out = self.dropout(self.feed_forward(h))
        return out + h


@case(
    "DecoderLayer",
    "buggy",
    source=src("models/blocks/decoder_layer.py", "0cd8a585e330d6d505ed561737c463faaeeee2a1"),
    why="the cross-attention takes its queries from the layer's input (the raw decoder input) instead of the "
    "output of the masked self-attention sub-layer",
    expect=r"quer(y|ies)\b.{0,120}\b(input|x\b|self-attention|first sub-?layer|norm1)",
    pattern="(Adapted to the contract's names and argument order; the original is forward(enc, dec, trg_mask, "
    "src_mask) with dec_attention / enc_dec_attention.) h1 = norm1(x + dropout(self_attn(x, x, x, tgt_mask))); "
    "then h2 = norm2(h1 + dropout(cross_attn(x, memory, memory, src_mask))): the query argument is the layer "
    "input x, not h1, while the residual uses h1; then norm3(h2 + dropout(ffn(h2))). Post-norm otherwise.",
    differences=["cross-attention queries from the layer input x instead of the self-attention output"],
)
class DecoderLayer(nn.Module):
    def __init__(self, d_model, num_heads, d_ff, dropout=0.1):
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, num_heads)
        self.cross_attn = MultiHeadAttention(d_model, num_heads)
        self.feed_forward = FeedForwardNetwork(d_model, d_ff)
        self.norm1 = LayerNorm(d_model)
        self.norm2 = LayerNorm(d_model)
        self.norm3 = LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x, encoder_output, src_mask=None, tgt_mask=None):
        h1 = self.norm1(x + self.dropout(self.self_attn(x, x, x, tgt_mask)))
        h2 = self.norm2(h1 + self.dropout(self.cross_attn(x, encoder_output, encoder_output, src_mask)))
        return self.norm3(h2 + self.dropout(self.feed_forward(h2)))


@case(
    "PositionalEncoding",
    "buggy",
    source=src("models/embedding/postional_encoding.py", "4e6685d1d25b221799e0bb6d17fb184f96a1a348"),
    why="forward returns the sinusoid table itself ([S, d]) instead of x + pe; the table is a plain tensor "
    "attribute `encoding`, not a buffer `pe`",
    expect=r"x \+ pe|\badd(s|ed|ing)?\b.{0,40}(input|\bx\b)|not added|without adding|only the (positional )?"
    r"(encoding|table)|ignores? (the |its )?input",
    pattern="(Adapted: the original takes (max_length, dim, device) and is called with the token ids [B, S].) "
    "A zeros tensor `encoding` [max_len, d] (requires_grad False, not registered as a buffer), even columns "
    "sin(pos / 10000^(2i/d)), odd columns cos(...) with 2i from arange(0, d, 2). forward(x) reads the length "
    "x.size(1) and returns encoding[:S, :] ([S, d]): the input is not added.",
    differences=["returns the table, not x + pe", "table is a plain attribute `encoding` [max_len, d], no buffer pe"],
)
class PositionalEncoding(nn.Module):
    def __init__(self, d_model, max_seq_length=5000):
        super().__init__()
        self.encoding = torch.zeros(max_seq_length, d_model)
        self.encoding.requires_grad = False
        pos = torch.arange(0, max_seq_length).float().unsqueeze(1)
        two_i = torch.arange(0, d_model, 2).float()
        self.encoding[:, 0::2] = torch.sin(pos / 10000 ** (two_i / d_model))
        self.encoding[:, 1::2] = torch.cos(pos / 10000 ** (two_i / d_model))

    def forward(self, x):
        seq_len = x.size(1)
        return self.encoding[:seq_len, :]


@case(
    "create_padding_mask",
    "correct",
    source=src("models/model/transformer.py", "3bb0333a813531e5e87f1490ef93e08a332b18f8"),
    why="(src != pad).unsqueeze(1).unsqueeze(2): bool [B, 1, 1, L], True on real tokens",
    expect=PASSES,
    pattern="(The model's make_src_mask, as a function.) (seq != pad_idx) with two unsqueezes, no device move.",
    differences=["two unsqueezes"],
)
def create_padding_mask(seq, pad_idx=0):
    return (seq != pad_idx).unsqueeze(1).unsqueeze(2)


@case(
    "create_masks",
    "correct",
    source=src("models/model/transformer.py", "3bb0333a813531e5e87f1490ef93e08a332b18f8"),
    why="source mask from the padding; target mask = target padding [B, 1, 1, T] AND a bool lower triangle [T, T]",
    expect=PASSES,
    pattern="(The model's make_src_mask / make_trg_mask, as one function with one pad index.) src_mask = "
    "(src != pad)[:, None, None]; trg_pad = (tgt != pad)[:, None, None]; trg_sub = tril(ones(T, T)) cast to bool "
    "on the target's device; tgt_mask = trg_pad & trg_sub broadcast to [B, 1, T, T].",
    differences=["the future triangle built inline as a 2-D [T, T] tensor"],
)
def create_masks(src, tgt, pad_idx=0):
    src_mask = create_padding_mask(src, pad_idx)
    t = tgt.shape[1]
    sub = torch.tril(torch.ones(t, t, device=tgt.device)).type(torch.bool)
    return src_mask, create_padding_mask(tgt, pad_idx) & sub
