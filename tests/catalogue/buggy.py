"""Buggy learner implementations, one classic mistake each (see ``/work/notes/mistakes.md``).

Each is written the way a learner would write it, then registered with ``@bug(exercise, diagnosis,
description)``. Everything that is not the bug is right, so the checker's diagnosis has one cause to
find. Composite exercises take their correct sub-modules from ``solutions``.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from solutions import (
    Decoder,
    DecoderLayer,
    Encoder,
    EncoderLayer,
    FeedForwardNetwork,
    LayerNorm,
    MultiHeadAttention,
    PositionalEncoding,
    TokenEmbedding,
    create_future_mask,
    create_masks,
    create_padding_mask,
    scaled_dot_product_attention,
)

from . import bug

# ==================================================================================================
# Chapter 00: the softmax warm-up
# ==================================================================================================


@bug("softmax", "softmax_wrong_axis", "ignores `dim` and normalises over the first axis")
def softmax_dim0(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    e = torch.exp(x - x.max(dim=0, keepdim=True).values)
    return e / e.sum(dim=0, keepdim=True)


@bug("softmax", "softmax_not_stable", "exp(x) / sum(exp(x)) without subtracting the max: overflows")
def softmax_naive(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    e = torch.exp(x)
    return e / e.sum(dim=dim, keepdim=True)


@bug("softmax", "softmax_not_normalised", "subtracts the max and exponentiates, but never divides by the sum")
def softmax_no_division(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    return torch.exp(x - x.max(dim=dim, keepdim=True).values)


@bug("softmax", "inplace_input_modification", "`x -= max` changes the caller's tensor")
def softmax_inplace(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    x -= x.max(dim=dim, keepdim=True).values
    e = x.exp()
    return e / e.sum(dim=dim, keepdim=True)


# ==================================================================================================
# Chapter 01: token embeddings
# ==================================================================================================


@bug("TokenEmbedding", "embedding_no_scale", "forgets the sqrt(d_model) factor of section 3.4")
class EmbeddingNoScale(nn.Module):
    def __init__(self, vocab_size: int, d_model: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, d_model)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.embedding(tokens)


@bug("TokenEmbedding", "embedding_wrong_scale", "divides by sqrt(d_model) instead of multiplying")
class EmbeddingDividesBySqrt(nn.Module):
    def __init__(self, vocab_size: int, d_model: int) -> None:
        super().__init__()
        self.d_model = d_model
        self.embedding = nn.Embedding(vocab_size, d_model)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.embedding(tokens) / math.sqrt(self.d_model)


@bug("TokenEmbedding", "embedding_wrong_scale", "multiplies by d_model (no square root)")
class EmbeddingTimesD(nn.Module):
    def __init__(self, vocab_size: int, d_model: int) -> None:
        super().__init__()
        self.d_model = d_model
        self.embedding = nn.Embedding(vocab_size, d_model)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.embedding(tokens) * self.d_model


# ==================================================================================================
# Chapter 02: positional encoding
# ==================================================================================================


def _angles(d_model: int, max_seq_length: int) -> torch.Tensor:
    """The correct angles pos / 10000^(2i/d), [max, d/2] (used by the bugs that are elsewhere)."""
    position = torch.arange(max_seq_length, dtype=torch.float32).unsqueeze(1)
    two_i = torch.arange(0, d_model, 2, dtype=torch.float32)
    return position / (10000.0 ** (two_i / d_model))


def _table(d_model: int, max_seq_length: int) -> torch.Tensor:
    angle = _angles(d_model, max_seq_length)
    pe = torch.zeros(max_seq_length, d_model)
    pe[:, 0::2] = torch.sin(angle)
    pe[:, 1::2] = torch.cos(angle)
    return pe.unsqueeze(0)


@bug("PositionalEncoding", "pe_sin_cos_swapped", "cosine on the even features, sine on the odd ones")
class PESwapped(nn.Module):
    def __init__(self, d_model: int, max_seq_length: int = 5000) -> None:
        super().__init__()
        self.max_seq_length = max_seq_length
        angle = _angles(d_model, max_seq_length)
        pe = torch.zeros(max_seq_length, d_model)
        pe[:, 0::2] = torch.cos(angle)
        pe[:, 1::2] = torch.sin(angle)
        self.register_buffer("pe", pe.unsqueeze(0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.size(1) > self.max_seq_length:
            raise ValueError(f"sequence of length {x.size(1)} is longer than max_seq_length={self.max_seq_length}")
        return x + self.pe[:, : x.size(1)]


@bug("PositionalEncoding", "pe_wrong_frequencies", "10000^(i/d) with i = 0, 1, 2... instead of 10000^(2i/d)")
class PEHalfFrequencies(nn.Module):
    def __init__(self, d_model: int, max_seq_length: int = 5000) -> None:
        super().__init__()
        self.max_seq_length = max_seq_length
        position = torch.arange(max_seq_length, dtype=torch.float32).unsqueeze(1)
        i = torch.arange(d_model // 2, dtype=torch.float32)
        angle = position / (10000.0 ** (i / d_model))
        pe = torch.zeros(max_seq_length, d_model)
        pe[:, 0::2] = torch.sin(angle)
        pe[:, 1::2] = torch.cos(angle)
        self.register_buffer("pe", pe.unsqueeze(0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.size(1) > self.max_seq_length:
            raise ValueError(f"sequence of length {x.size(1)} is longer than max_seq_length={self.max_seq_length}")
        return x + self.pe[:, : x.size(1)]


@bug("PositionalEncoding", "pe_wrong_frequencies", "pos * 10000^(2i/d): multiplies instead of dividing")
class PEMultiplies(nn.Module):
    def __init__(self, d_model: int, max_seq_length: int = 5000) -> None:
        super().__init__()
        self.max_seq_length = max_seq_length
        position = torch.arange(max_seq_length, dtype=torch.float32).unsqueeze(1)
        two_i = torch.arange(0, d_model, 2, dtype=torch.float32)
        angle = position * (10000.0 ** (two_i / d_model))
        pe = torch.zeros(max_seq_length, d_model)
        pe[:, 0::2] = torch.sin(angle)
        pe[:, 1::2] = torch.cos(angle)
        self.register_buffer("pe", pe.unsqueeze(0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.size(1) > self.max_seq_length:
            raise ValueError(f"sequence of length {x.size(1)} is longer than max_seq_length={self.max_seq_length}")
        return x + self.pe[:, : x.size(1)]


@bug("PositionalEncoding", "pe_not_buffer", "the table is an nn.Parameter (frozen), not a buffer")
class PEParameter(nn.Module):
    def __init__(self, d_model: int, max_seq_length: int = 5000) -> None:
        super().__init__()
        self.max_seq_length = max_seq_length
        self.pe = nn.Parameter(_table(d_model, max_seq_length), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.size(1) > self.max_seq_length:
            raise ValueError(f"sequence of length {x.size(1)} is longer than max_seq_length={self.max_seq_length}")
        return x + self.pe[:, : x.size(1)]


@bug("PositionalEncoding", "pe_not_buffer", "the table is a plain attribute: not saved, not moved by .to()")
class PEPlainAttribute(nn.Module):
    def __init__(self, d_model: int, max_seq_length: int = 5000) -> None:
        super().__init__()
        self.max_seq_length = max_seq_length
        self.pe = _table(d_model, max_seq_length)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.size(1) > self.max_seq_length:
            raise ValueError(f"sequence of length {x.size(1)} is longer than max_seq_length={self.max_seq_length}")
        return x + self.pe[:, : x.size(1)]


@bug("PositionalEncoding", "pe_no_length_error", "no length check: a long input dies in a broadcasting error")
class PENoLengthCheck(nn.Module):
    def __init__(self, d_model: int, max_seq_length: int = 5000) -> None:
        super().__init__()
        self.register_buffer("pe", _table(d_model, max_seq_length))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.pe[:, : x.size(1)]


@bug("PositionalEncoding", "pe_dropout_inside", "applies dropout itself (the encoder already does)")
class PEWithDropout(nn.Module):
    def __init__(self, d_model: int, max_seq_length: int = 5000, dropout: float = 0.1) -> None:
        super().__init__()
        self.max_seq_length = max_seq_length
        self.dropout = nn.Dropout(dropout)
        self.register_buffer("pe", _table(d_model, max_seq_length))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.size(1) > self.max_seq_length:
            raise ValueError(f"sequence of length {x.size(1)} is longer than max_seq_length={self.max_seq_length}")
        return self.dropout(x + self.pe[:, : x.size(1)])


@bug("PositionalEncoding", "pe_wrong_axis", "slices the table with the batch size x.size(0)")
class PESlicesByBatch(nn.Module):
    def __init__(self, d_model: int, max_seq_length: int = 5000) -> None:
        super().__init__()
        self.max_seq_length = max_seq_length
        self.register_buffer("pe", _table(d_model, max_seq_length))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.size(1) > self.max_seq_length:
            raise ValueError(f"sequence of length {x.size(1)} is longer than max_seq_length={self.max_seq_length}")
        return x + self.pe[:, : x.size(0)]


# ==================================================================================================
# Chapter 03: scaled dot-product attention
# ==================================================================================================


@bug("scaled_dot_product_attention", "attn_no_scale", "forgets to divide the scores by sqrt(d_k)")
def attention_no_scale(query, key, value, mask=None):
    scores = query @ key.transpose(-2, -1)
    if mask is not None:
        scores = scores.masked_fill(~mask, -1e9)
    weights = scores.softmax(dim=-1)
    return weights @ value, weights


@bug("scaled_dot_product_attention", "attn_scale_by_dk", "divides the scores by d_k instead of sqrt(d_k)")
def attention_scale_dk(query, key, value, mask=None):
    scores = query @ key.transpose(-2, -1) / query.size(-1)
    if mask is not None:
        scores = scores.masked_fill(~mask, -1e9)
    weights = scores.softmax(dim=-1)
    return weights @ value, weights


@bug("scaled_dot_product_attention", "attn_softmax_wrong_axis", "softmax over the query axis (dim=-2)")
def attention_softmax_queries(query, key, value, mask=None):
    scores = query @ key.transpose(-2, -1) / math.sqrt(query.size(-1))
    if mask is not None:
        scores = scores.masked_fill(~mask, -1e9)
    weights = scores.softmax(dim=-2)
    return weights @ value, weights


@bug("scaled_dot_product_attention", "attn_mask_polarity", "fills the positions where the mask is True")
def attention_mask_flipped(query, key, value, mask=None):
    scores = query @ key.transpose(-2, -1) / math.sqrt(query.size(-1))
    if mask is not None:
        scores = scores.masked_fill(mask, float("-inf"))
    weights = scores.softmax(dim=-1)
    return weights @ value, weights


@bug("scaled_dot_product_attention", "attn_mask_ignored", "calls masked_fill but throws its result away")
def attention_mask_discarded(query, key, value, mask=None):
    scores = query @ key.transpose(-2, -1) / math.sqrt(query.size(-1))
    if mask is not None:
        scores.masked_fill(~mask, -1e9)  # not in place: the result is lost
    weights = scores.softmax(dim=-1)
    return weights @ value, weights


@bug("scaled_dot_product_attention", "attn_returns_scores", "returns the scores before softmax as the weights")
def attention_returns_scores(query, key, value, mask=None):
    scores = query @ key.transpose(-2, -1) / math.sqrt(query.size(-1))
    if mask is not None:
        scores = scores.masked_fill(~mask, -1e9)
    return scores.softmax(dim=-1) @ value, scores


@bug("scaled_dot_product_attention", "float64_fails", "softmax forced to float32, then multiplied with a float64 V")
def attention_float32_softmax(query, key, value, mask=None):
    scores = query @ key.transpose(-2, -1) / math.sqrt(query.size(-1))
    if mask is not None:
        scores = scores.masked_fill(~mask, -1e9)
    weights = F.softmax(scores, dim=-1, dtype=torch.float32)
    return torch.matmul(weights, value), weights


@bug("scaled_dot_product_attention", "returns_wrong_type", "returns only the output, not (output, weights)")
def attention_output_only(query, key, value, mask=None):
    scores = query @ key.transpose(-2, -1) / math.sqrt(query.size(-1))
    if mask is not None:
        scores = scores.masked_fill(~mask, -1e9)
    return scores.softmax(dim=-1) @ value


# ==================================================================================================
# Chapter 04: multi-head attention
# ==================================================================================================


class _MHABase(nn.Module):
    """The right constructor; each bug below changes one line of ``forward``."""

    def __init__(self, d_model: int, num_heads: int) -> None:
        super().__init__()
        if d_model % num_heads != 0:
            raise ValueError(f"d_model={d_model} is not divisible by num_heads={num_heads}")
        self.d_model, self.num_heads, self.d_k = d_model, num_heads, d_model // num_heads
        self.W_q = nn.Linear(d_model, d_model)
        self.W_k = nn.Linear(d_model, d_model)
        self.W_v = nn.Linear(d_model, d_model)
        self.W_o = nn.Linear(d_model, d_model)
        self.attention_weights = None


@bug("MultiHeadAttention", "mha_kv_reshaped_with_query_length", "keys and values viewed with the query's length")
class MHAKVWithQueryLength(_MHABase):
    def forward(self, query, key, value, mask=None):
        B, S, _ = query.shape
        q = self.W_q(query).view(B, S, self.num_heads, self.d_k).transpose(1, 2)
        k = self.W_k(key).view(B, S, self.num_heads, self.d_k).transpose(1, 2)
        v = self.W_v(value).view(B, S, self.num_heads, self.d_k).transpose(1, 2)
        out, self.attention_weights = scaled_dot_product_attention(q, k, v, mask)
        return self.W_o(out.transpose(1, 2).contiguous().view(B, S, self.d_model))


@bug("MultiHeadAttention", "mha_heads_not_transposed", "view(B, h, S, d_k) straight away: heads mix positions")
class MHAViewHeadsFirst(_MHABase):
    def forward(self, query, key, value, mask=None):
        B, S_q, _ = query.shape
        S_k = key.size(1)
        q = self.W_q(query).view(B, self.num_heads, S_q, self.d_k)
        k = self.W_k(key).view(B, self.num_heads, S_k, self.d_k)
        v = self.W_v(value).view(B, self.num_heads, S_k, self.d_k)
        out, self.attention_weights = scaled_dot_product_attention(q, k, v, mask)
        return self.W_o(out.transpose(1, 2).contiguous().view(B, S_q, self.d_model))


@bug("MultiHeadAttention", "mha_heads_not_transposed", "view(B, S, h, d_k) and never moves the heads axis")
class MHANoTranspose(_MHABase):
    def forward(self, query, key, value, mask=None):
        B, S_q, _ = query.shape
        S_k = key.size(1)
        q = self.W_q(query).view(B, S_q, self.num_heads, self.d_k)
        k = self.W_k(key).view(B, S_k, self.num_heads, self.d_k)
        v = self.W_v(value).view(B, S_k, self.num_heads, self.d_k)
        out, self.attention_weights = scaled_dot_product_attention(q, k, v, mask)
        return self.W_o(out.reshape(B, S_q, self.d_model))


@bug("MultiHeadAttention", "mha_no_output_projection", "defines W_o but never applies it")
class MHANoWo(_MHABase):
    def forward(self, query, key, value, mask=None):
        B, S_q, _ = query.shape
        S_k = key.size(1)
        q = self.W_q(query).view(B, S_q, self.num_heads, self.d_k).transpose(1, 2)
        k = self.W_k(key).view(B, S_k, self.num_heads, self.d_k).transpose(1, 2)
        v = self.W_v(value).view(B, S_k, self.num_heads, self.d_k).transpose(1, 2)
        out, self.attention_weights = scaled_dot_product_attention(q, k, v, mask)
        return out.transpose(1, 2).reshape(B, S_q, self.d_model)


@bug("MultiHeadAttention", "mha_projection_mixup", "copy-paste: the keys go through W_q")
class MHAKeysThroughWq(_MHABase):
    def forward(self, query, key, value, mask=None):
        B, S_q, _ = query.shape
        S_k = key.size(1)
        q = self.W_q(query).view(B, S_q, self.num_heads, self.d_k).transpose(1, 2)
        k = self.W_q(key).view(B, S_k, self.num_heads, self.d_k).transpose(1, 2)
        v = self.W_v(value).view(B, S_k, self.num_heads, self.d_k).transpose(1, 2)
        out, self.attention_weights = scaled_dot_product_attention(q, k, v, mask)
        return self.W_o(out.transpose(1, 2).reshape(B, S_q, self.d_model))


@bug("MultiHeadAttention", "mha_weights_not_stored", "never stores attention_weights")
class MHAForgetsWeights(_MHABase):
    def forward(self, query, key, value, mask=None):
        B, S_q, _ = query.shape
        S_k = key.size(1)
        q = self.W_q(query).view(B, S_q, self.num_heads, self.d_k).transpose(1, 2)
        k = self.W_k(key).view(B, S_k, self.num_heads, self.d_k).transpose(1, 2)
        v = self.W_v(value).view(B, S_k, self.num_heads, self.d_k).transpose(1, 2)
        out, _ = scaled_dot_product_attention(q, k, v, mask)
        return self.W_o(out.transpose(1, 2).reshape(B, S_q, self.d_model))


@bug("MultiHeadAttention", "mha_no_divisibility_error", "no check that num_heads divides d_model")
class MHANoDivisibilityCheck(nn.Module):
    def __init__(self, d_model: int, num_heads: int) -> None:
        super().__init__()
        self.d_model, self.num_heads, self.d_k = d_model, num_heads, d_model // num_heads
        self.W_q = nn.Linear(d_model, d_model)
        self.W_k = nn.Linear(d_model, d_model)
        self.W_v = nn.Linear(d_model, d_model)
        self.W_o = nn.Linear(d_model, d_model)
        self.attention_weights = None

    def forward(self, query, key, value, mask=None):
        B, S_q, _ = query.shape
        S_k = key.size(1)
        q = self.W_q(query).view(B, S_q, self.num_heads, self.d_k).transpose(1, 2)
        k = self.W_k(key).view(B, S_k, self.num_heads, self.d_k).transpose(1, 2)
        v = self.W_v(value).view(B, S_k, self.num_heads, self.d_k).transpose(1, 2)
        out, self.attention_weights = scaled_dot_product_attention(q, k, v, mask)
        return self.W_o(out.transpose(1, 2).reshape(B, S_q, self.d_model))


@bug("MultiHeadAttention", "mha_concat_wrong", "merges the heads with reshape before moving them back")
class MHAConcatWithoutTranspose(_MHABase):
    def forward(self, query, key, value, mask=None):
        B, S_q, _ = query.shape
        S_k = key.size(1)
        q = self.W_q(query).view(B, S_q, self.num_heads, self.d_k).transpose(1, 2)
        k = self.W_k(key).view(B, S_k, self.num_heads, self.d_k).transpose(1, 2)
        v = self.W_v(value).view(B, S_k, self.num_heads, self.d_k).transpose(1, 2)
        out, self.attention_weights = scaled_dot_product_attention(q, k, v, mask)
        return self.W_o(out.contiguous().view(B, S_q, self.d_model))  # [B, h, S, d_k] read as [B, S, d]


# ==================================================================================================
# Chapter 05: feed-forward network
# ==================================================================================================


@bug("FeedForwardNetwork", "ffn_missing_relu", "two linear layers with no activation between them")
class FFNNoReLU(nn.Module):
    def __init__(self, d_model: int, d_ff: int) -> None:
        super().__init__()
        self.W_1 = nn.Linear(d_model, d_ff)
        self.W_2 = nn.Linear(d_ff, d_model)

    def forward(self, x):
        return self.W_2(self.W_1(x))


@bug("FeedForwardNetwork", "ffn_wrong_activation", "GELU (as in BERT/GPT) instead of the paper's ReLU")
class FFNGelu(nn.Module):
    def __init__(self, d_model: int, d_ff: int) -> None:
        super().__init__()
        self.W_1 = nn.Linear(d_model, d_ff)
        self.W_2 = nn.Linear(d_ff, d_model)

    def forward(self, x):
        return self.W_2(F.gelu(self.W_1(x)))


@bug("FeedForwardNetwork", "ffn_dropout_inside", "dropout on the hidden layer (the paper has none there)")
class FFNWithDropout(nn.Module):
    def __init__(self, d_model: int, d_ff: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.W_1 = nn.Linear(d_model, d_ff)
        self.W_2 = nn.Linear(d_ff, d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        return self.W_2(self.dropout(torch.relu(self.W_1(x))))


# ==================================================================================================
# Chapter 06: layer norm
# ==================================================================================================


class _LNBase(nn.Module):
    def __init__(self, d_model: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d_model))
        self.bias = nn.Parameter(torch.zeros(d_model))


@bug("LayerNorm", "ln_unbiased_variance", "x.std() defaults to the unbiased (n-1) estimate")
class LNUnbiased(_LNBase):
    def forward(self, x):
        mean = x.mean(-1, keepdim=True)
        std = x.std(-1, keepdim=True)
        return self.weight * (x - mean) / torch.sqrt(std**2 + self.eps) + self.bias


@bug("LayerNorm", "ln_eps_outside_sqrt", "(x - mean) / (std + eps), as in the Annotated Transformer")
class LNEpsOutside(_LNBase):
    def forward(self, x):
        mean = x.mean(-1, keepdim=True)
        std = x.var(-1, keepdim=True, unbiased=False).sqrt()
        return self.weight * (x - mean) / (std + self.eps) + self.bias


@bug("LayerNorm", "ln_wrong_axis", "mean and variance over dim=1 (the sequence) instead of the features")
class LNWrongAxis(_LNBase):
    def forward(self, x):
        mean = x.mean(1, keepdim=True)
        var = x.var(1, keepdim=True, unbiased=False)
        return self.weight * (x - mean) / torch.sqrt(var + self.eps) + self.bias


@bug("LayerNorm", "ln_no_affine", "defines weight and bias but never uses them")
class LNNoAffine(_LNBase):
    def forward(self, x):
        mean = x.mean(-1, keepdim=True)
        var = x.var(-1, keepdim=True, unbiased=False)
        return (x - mean) / torch.sqrt(var + self.eps)


@bug("LayerNorm", "ln_std_of_wrong_thing", "variance as mean(x^2), forgetting to centre x first")
class LNVarianceNotCentred(_LNBase):
    def forward(self, x):
        mean = x.mean(-1, keepdim=True)
        var = (x * x).mean(-1, keepdim=True)
        return self.weight * (x - mean) / torch.sqrt(var + self.eps) + self.bias


@bug("LayerNorm", "inplace_input_modification", "`x -= mean` centres the caller's tensor in place")
class LNInplace(_LNBase):
    def forward(self, x):
        x -= x.mean(-1, keepdim=True)
        var = x.pow(2).mean(-1, keepdim=True)
        return self.weight * x / torch.sqrt(var + self.eps) + self.bias


# ==================================================================================================
# Chapter 07: encoder layer and encoder
# ==================================================================================================


class _EncoderLayerBase(nn.Module):
    def __init__(self, d_model: int, num_heads: int, d_ff: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, num_heads)
        self.feed_forward = FeedForwardNetwork(d_model, d_ff)
        self.norm1 = LayerNorm(d_model)
        self.norm2 = LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)


@bug("EncoderLayer", "prenorm", "x + Dropout(Sublayer(LayerNorm(x))): pre-norm instead of the paper's post-norm")
class EncoderLayerPreNorm(_EncoderLayerBase):
    def forward(self, x, mask=None):
        h = self.norm1(x)
        x = x + self.dropout(self.self_attn(h, h, h, mask))
        return x + self.dropout(self.feed_forward(self.norm2(x)))


@bug("EncoderLayer", "dropout_after_residual", "Dropout(x + Sublayer(x)): dropout on the sum, not the sub-layer")
class EncoderLayerDropoutAfterAdd(_EncoderLayerBase):
    def forward(self, x, mask=None):
        x = self.norm1(self.dropout(x + self.self_attn(x, x, x, mask)))
        return self.norm2(self.dropout(x + self.feed_forward(x)))


@bug("EncoderLayer", "missing_residual", "LayerNorm(Dropout(FFN(x))): the residual around the FFN is gone")
class EncoderLayerNoResidual(_EncoderLayerBase):
    def forward(self, x, mask=None):
        x = self.norm1(x + self.dropout(self.self_attn(x, x, x, mask)))
        return self.norm2(self.dropout(self.feed_forward(x)))


@bug("EncoderLayer", "mask_not_passed", "self_attn(x, x, x): the padding mask never reaches attention")
class EncoderLayerNoMask(_EncoderLayerBase):
    def forward(self, x, mask=None):
        x = self.norm1(x + self.dropout(self.self_attn(x, x, x)))
        return self.norm2(x + self.dropout(self.feed_forward(x)))


@bug("EncoderLayer", "norms_shared", "typo: norm1 used after both sub-layers, norm2 never used")
class EncoderLayerNorm1Twice(_EncoderLayerBase):
    def forward(self, x, mask=None):
        x = self.norm1(x + self.dropout(self.self_attn(x, x, x, mask)))
        return self.norm1(x + self.dropout(self.feed_forward(x)))


class _EncoderBase(nn.Module):
    def __init__(self, vocab_size, d_model=512, num_layers=6, num_heads=8, d_ff=2048, dropout=0.1,
                 max_seq_length=5000):
        super().__init__()
        self.embedding = TokenEmbedding(vocab_size, d_model)
        self.positional_encoding = PositionalEncoding(d_model, max_seq_length)
        self.dropout = nn.Dropout(dropout)
        self.layers = nn.ModuleList([EncoderLayer(d_model, num_heads, d_ff, dropout) for _ in range(num_layers)])


@bug("Encoder", "layers_shared", "[EncoderLayer(...)] * num_layers: one layer object repeated")
class EncoderSharedLayers(_EncoderBase):
    def __init__(self, vocab_size, d_model=512, num_layers=6, num_heads=8, d_ff=2048, dropout=0.1,
                 max_seq_length=5000):
        super().__init__(vocab_size, d_model, num_layers, num_heads, d_ff, dropout, max_seq_length)
        self.layers = nn.ModuleList([EncoderLayer(d_model, num_heads, d_ff, dropout)] * num_layers)

    def forward(self, src, src_mask=None):
        x = self.dropout(self.positional_encoding(self.embedding(src)))
        for layer in self.layers:
            x = layer(x, src_mask)
        return x


@bug("Encoder", "missing_embedding_dropout", "defines self.dropout but never applies it to the embeddings")
class EncoderNoEmbeddingDropout(_EncoderBase):
    def forward(self, src, src_mask=None):
        x = self.positional_encoding(self.embedding(src))
        for layer in self.layers:
            x = layer(x, src_mask)
        return x


@bug("Encoder", "final_layer_norm", "an extra LayerNorm after the stack (pre-norm habit)")
class EncoderFinalNorm(_EncoderBase):
    def __init__(self, vocab_size, d_model=512, num_layers=6, num_heads=8, d_ff=2048, dropout=0.1,
                 max_seq_length=5000):
        super().__init__(vocab_size, d_model, num_layers, num_heads, d_ff, dropout, max_seq_length)
        self.norm = LayerNorm(d_model)

    def forward(self, src, src_mask=None):
        x = self.dropout(self.positional_encoding(self.embedding(src)))
        for layer in self.layers:
            x = layer(x, src_mask)
        return self.norm(x)


@bug("Encoder", "mask_not_passed", "layer(x): the source padding mask never reaches the layers")
class EncoderNoMask(_EncoderBase):
    def forward(self, src, src_mask=None):
        x = self.dropout(self.positional_encoding(self.embedding(src)))
        for layer in self.layers:
            x = layer(x)
        return x


@bug("Encoder", "embedding_dropout_missing_or_extra", "dropout on the token embedding, before the positions are added")
class EncoderDropoutBeforePE(_EncoderBase):
    def forward(self, src, src_mask=None):
        x = self.positional_encoding(self.dropout(self.embedding(src)))
        for layer in self.layers:
            x = layer(x, src_mask)
        return x


# ==================================================================================================
# Chapter 08: masks, decoder layer and decoder
# ==================================================================================================


@bug("create_padding_mask", "padding_mask_polarity", "True at the padding (seq == pad_idx)")
def padding_mask_flipped(seq, pad_idx=0):
    return (seq == pad_idx).unsqueeze(1).unsqueeze(2)


@bug("create_padding_mask", "padding_mask_shape", "[B, 1, L] instead of [B, 1, 1, L]")
def padding_mask_3d(seq, pad_idx=0):
    return (seq != pad_idx).unsqueeze(1)


@bug("create_padding_mask", "returns_wrong_type", "a float 0/1 mask instead of a bool one")
def padding_mask_float(seq, pad_idx=0):
    return (seq != pad_idx).float()[:, None, None, :]


@bug("create_future_mask", "future_mask_upper", "triu: each position sees the future and not the past")
def future_mask_triu(size, device=None):
    return torch.triu(torch.ones(size, size, dtype=torch.bool, device=device))[None, None]


@bug("create_future_mask", "future_mask_excludes_diagonal", "tril(diagonal=-1): a position may not see itself")
def future_mask_strict(size, device=None):
    return torch.tril(torch.ones(size, size, dtype=torch.bool, device=device), diagonal=-1)[None, None]


@bug("create_masks", "tgt_mask_missing_padding", "tgt_mask is only the future mask: target padding is attended")
def masks_no_tgt_padding(src, tgt, pad_idx=0):
    src_mask = (src != pad_idx)[:, None, None, :]
    tgt_mask = create_future_mask(tgt.size(1)).expand(tgt.size(0), 1, -1, -1)
    return src_mask, tgt_mask


@bug("create_masks", "tgt_mask_missing_future", "tgt_mask is only the target padding mask")
def masks_no_future(src, tgt, pad_idx=0):
    src_mask = (src != pad_idx)[:, None, None, :]
    tgt_mask = (tgt != pad_idx)[:, None, None, :].expand(-1, 1, tgt.size(1), -1)
    return src_mask, tgt_mask


@bug("create_masks", "padding_mask_polarity", "src_mask is True at the source padding")
def masks_src_flipped(src, tgt, pad_idx=0):
    src_mask = (src == pad_idx)[:, None, None, :]
    tgt_mask = (tgt != pad_idx)[:, None, None, :] & create_future_mask(tgt.size(1))
    return src_mask, tgt_mask


class _DecoderLayerBase(nn.Module):
    def __init__(self, d_model: int, num_heads: int, d_ff: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, num_heads)
        self.cross_attn = MultiHeadAttention(d_model, num_heads)
        self.feed_forward = FeedForwardNetwork(d_model, d_ff)
        self.norm1 = LayerNorm(d_model)
        self.norm2 = LayerNorm(d_model)
        self.norm3 = LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)


@bug("DecoderLayer", "cross_attn_kv_from_decoder", "cross_attn(x, x, x): keys and values from the decoder")
class DecoderLayerSelfCross(_DecoderLayerBase):
    def forward(self, x, encoder_output, src_mask=None, tgt_mask=None):
        x = self.norm1(x + self.dropout(self.self_attn(x, x, x, tgt_mask)))
        x = self.norm2(x + self.dropout(self.cross_attn(x, x, x, tgt_mask)))
        return self.norm3(x + self.dropout(self.feed_forward(x)))


@bug("DecoderLayer", "cross_attn_wrong_mask", "cross-attention masked with tgt_mask instead of src_mask")
class DecoderLayerCrossTgtMask(_DecoderLayerBase):
    def forward(self, x, encoder_output, src_mask=None, tgt_mask=None):
        x = self.norm1(x + self.dropout(self.self_attn(x, x, x, tgt_mask)))
        x = self.norm2(x + self.dropout(self.cross_attn(x, encoder_output, encoder_output, tgt_mask)))
        return self.norm3(x + self.dropout(self.feed_forward(x)))


@bug("DecoderLayer", "self_attn_no_future_mask", "self-attention without tgt_mask: the decoder sees the future")
class DecoderLayerNoFutureMask(_DecoderLayerBase):
    def forward(self, x, encoder_output, src_mask=None, tgt_mask=None):
        x = self.norm1(x + self.dropout(self.self_attn(x, x, x)))
        x = self.norm2(x + self.dropout(self.cross_attn(x, encoder_output, encoder_output, src_mask)))
        return self.norm3(x + self.dropout(self.feed_forward(x)))


@bug("DecoderLayer", "prenorm", "pre-norm sub-layers in the decoder")
class DecoderLayerPreNorm(_DecoderLayerBase):
    def forward(self, x, encoder_output, src_mask=None, tgt_mask=None):
        h = self.norm1(x)
        x = x + self.dropout(self.self_attn(h, h, h, tgt_mask))
        h = self.norm2(x)
        x = x + self.dropout(self.cross_attn(h, encoder_output, encoder_output, src_mask))
        return x + self.dropout(self.feed_forward(self.norm3(x)))


@bug("DecoderLayer", "dropout_after_residual", "LayerNorm(Dropout(x + Sublayer(x))) in every sub-layer")
class DecoderLayerDropoutAfterAdd(_DecoderLayerBase):
    def forward(self, x, encoder_output, src_mask=None, tgt_mask=None):
        x = self.norm1(self.dropout(x + self.self_attn(x, x, x, tgt_mask)))
        x = self.norm2(self.dropout(x + self.cross_attn(x, encoder_output, encoder_output, src_mask)))
        return self.norm3(self.dropout(x + self.feed_forward(x)))


@bug("DecoderLayer", "norms_shared", "norm1 = norm2 = norm3 = LayerNorm(d): one object under three names")
class DecoderLayerOneNorm(_DecoderLayerBase):
    def __init__(self, d_model: int, num_heads: int, d_ff: int, dropout: float = 0.1) -> None:
        super().__init__(d_model, num_heads, d_ff, dropout)
        self.norm1 = self.norm2 = self.norm3 = LayerNorm(d_model)

    def forward(self, x, encoder_output, src_mask=None, tgt_mask=None):
        x = self.norm1(x + self.dropout(self.self_attn(x, x, x, tgt_mask)))
        x = self.norm2(x + self.dropout(self.cross_attn(x, encoder_output, encoder_output, src_mask)))
        return self.norm3(x + self.dropout(self.feed_forward(x)))


@bug("DecoderLayer", "missing_residual", "no residual around the cross-attention")
class DecoderLayerNoCrossResidual(_DecoderLayerBase):
    def forward(self, x, encoder_output, src_mask=None, tgt_mask=None):
        x = self.norm1(x + self.dropout(self.self_attn(x, x, x, tgt_mask)))
        x = self.norm2(self.dropout(self.cross_attn(x, encoder_output, encoder_output, src_mask)))
        return self.norm3(x + self.dropout(self.feed_forward(x)))


class _DecoderBase(nn.Module):
    def __init__(self, vocab_size, d_model=512, num_layers=6, num_heads=8, d_ff=2048, dropout=0.1,
                 max_seq_length=5000):
        super().__init__()
        self.embedding = TokenEmbedding(vocab_size, d_model)
        self.positional_encoding = PositionalEncoding(d_model, max_seq_length)
        self.dropout = nn.Dropout(dropout)
        self.layers = nn.ModuleList([DecoderLayer(d_model, num_heads, d_ff, dropout) for _ in range(num_layers)])


@bug("Decoder", "layers_shared", "[DecoderLayer(...)] * num_layers: one layer object repeated")
class DecoderSharedLayers(_DecoderBase):
    def __init__(self, vocab_size, d_model=512, num_layers=6, num_heads=8, d_ff=2048, dropout=0.1,
                 max_seq_length=5000):
        super().__init__(vocab_size, d_model, num_layers, num_heads, d_ff, dropout, max_seq_length)
        self.layers = nn.ModuleList([DecoderLayer(d_model, num_heads, d_ff, dropout)] * num_layers)

    def forward(self, tgt, encoder_output, src_mask=None, tgt_mask=None):
        x = self.dropout(self.positional_encoding(self.embedding(tgt)))
        for layer in self.layers:
            x = layer(x, encoder_output, src_mask, tgt_mask)
        return x


@bug("Decoder", "missing_embedding_dropout", "no dropout on the target embeddings")
class DecoderNoEmbeddingDropout(_DecoderBase):
    def forward(self, tgt, encoder_output, src_mask=None, tgt_mask=None):
        x = self.positional_encoding(self.embedding(tgt))
        for layer in self.layers:
            x = layer(x, encoder_output, src_mask, tgt_mask)
        return x


@bug("Decoder", "final_layer_norm", "an extra LayerNorm after the decoder stack")
class DecoderFinalNorm(_DecoderBase):
    def __init__(self, vocab_size, d_model=512, num_layers=6, num_heads=8, d_ff=2048, dropout=0.1,
                 max_seq_length=5000):
        super().__init__(vocab_size, d_model, num_layers, num_heads, d_ff, dropout, max_seq_length)
        self.norm = LayerNorm(d_model)

    def forward(self, tgt, encoder_output, src_mask=None, tgt_mask=None):
        x = self.dropout(self.positional_encoding(self.embedding(tgt)))
        for layer in self.layers:
            x = layer(x, encoder_output, src_mask, tgt_mask)
        return self.norm(x)


@bug("Decoder", "mask_not_passed", "layer(x, encoder_output): neither mask reaches the layers")
class DecoderNoMasks(_DecoderBase):
    def forward(self, tgt, encoder_output, src_mask=None, tgt_mask=None):
        x = self.dropout(self.positional_encoding(self.embedding(tgt)))
        for layer in self.layers:
            x = layer(x, encoder_output)
        return x


# ==================================================================================================
# Chapter 09: the Transformer
# ==================================================================================================


class _TransformerBase(nn.Module):
    def __init__(self, src_vocab_size, tgt_vocab_size, d_model=512, num_layers=6, num_heads=8, d_ff=2048,
                 dropout=0.1, max_seq_length=5000, pad_idx=0, share_embeddings=False):
        super().__init__()
        self.pad_idx = pad_idx
        self.encoder = Encoder(src_vocab_size, d_model, num_layers, num_heads, d_ff, dropout, max_seq_length)
        self.decoder = Decoder(tgt_vocab_size, d_model, num_layers, num_heads, d_ff, dropout, max_seq_length)
        self.generator = nn.Linear(d_model, tgt_vocab_size)

    def _init_and_tie(self, share_embeddings: bool) -> None:
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)
        self.generator.weight = self.decoder.embedding.embedding.weight
        if share_embeddings:
            self.encoder.embedding.embedding.weight = self.decoder.embedding.embedding.weight

    def encode(self, src, src_mask=None):
        return self.encoder(src, src_mask)

    def decode(self, tgt, memory, src_mask=None, tgt_mask=None):
        return self.decoder(tgt, memory, src_mask, tgt_mask)

    def forward(self, src, tgt):
        src_mask, tgt_mask = create_masks(src, tgt, self.pad_idx)
        return self.generator(self.decode(tgt, self.encode(src, src_mask), src_mask, tgt_mask))


@bug("Transformer", "generator_not_tied", "the generator keeps its own weight (section 3.4 shares it)")
class TransformerUntiedGenerator(_TransformerBase):
    def __init__(self, src_vocab_size, tgt_vocab_size, d_model=512, num_layers=6, num_heads=8, d_ff=2048,
                 dropout=0.1, max_seq_length=5000, pad_idx=0, share_embeddings=False):
        super().__init__(src_vocab_size, tgt_vocab_size, d_model, num_layers, num_heads, d_ff, dropout,
                         max_seq_length, pad_idx, share_embeddings)
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)
        if share_embeddings:
            self.encoder.embedding.embedding.weight = self.decoder.embedding.embedding.weight


@bug("Transformer", "shared_embeddings_not_tied", "share_embeddings=True is accepted but the encoder keeps its own matrix")
class TransformerIgnoresShare(_TransformerBase):
    def __init__(self, src_vocab_size, tgt_vocab_size, d_model=512, num_layers=6, num_heads=8, d_ff=2048,
                 dropout=0.1, max_seq_length=5000, pad_idx=0, share_embeddings=False):
        super().__init__(src_vocab_size, tgt_vocab_size, d_model, num_layers, num_heads, d_ff, dropout,
                         max_seq_length, pad_idx, share_embeddings)
        self._init_and_tie(share_embeddings=False)


@bug("Transformer", "no_xavier_init", "keeps PyTorch's default init (embeddings N(0, 1))")
class TransformerDefaultInit(_TransformerBase):
    def __init__(self, src_vocab_size, tgt_vocab_size, d_model=512, num_layers=6, num_heads=8, d_ff=2048,
                 dropout=0.1, max_seq_length=5000, pad_idx=0, share_embeddings=False):
        super().__init__(src_vocab_size, tgt_vocab_size, d_model, num_layers, num_heads, d_ff, dropout,
                         max_seq_length, pad_idx, share_embeddings)
        self.generator.weight = self.decoder.embedding.embedding.weight
        if share_embeddings:
            self.encoder.embedding.embedding.weight = self.decoder.embedding.embedding.weight


@bug("Transformer", "forward_masks_wrong", "forward passes no masks at all")
class TransformerNoMasks(_TransformerBase):
    def __init__(self, src_vocab_size, tgt_vocab_size, d_model=512, num_layers=6, num_heads=8, d_ff=2048,
                 dropout=0.1, max_seq_length=5000, pad_idx=0, share_embeddings=False):
        super().__init__(src_vocab_size, tgt_vocab_size, d_model, num_layers, num_heads, d_ff, dropout,
                         max_seq_length, pad_idx, share_embeddings)
        self._init_and_tie(share_embeddings)

    def forward(self, src, tgt):
        return self.generator(self.decode(tgt, self.encode(src)))


@bug("Transformer", "forward_masks_wrong", "create_masks(src, tgt) without pad_idx: wrong when pad_idx != 0")
class TransformerDefaultPad(_TransformerBase):
    def __init__(self, src_vocab_size, tgt_vocab_size, d_model=512, num_layers=6, num_heads=8, d_ff=2048,
                 dropout=0.1, max_seq_length=5000, pad_idx=0, share_embeddings=False):
        super().__init__(src_vocab_size, tgt_vocab_size, d_model, num_layers, num_heads, d_ff, dropout,
                         max_seq_length, pad_idx, share_embeddings)
        self._init_and_tie(share_embeddings)

    def forward(self, src, tgt):
        src_mask, tgt_mask = create_masks(src, tgt)
        return self.generator(self.decode(tgt, self.encode(src, src_mask), src_mask, tgt_mask))


@bug("Transformer", "softmax_in_forward", "forward returns log-probabilities instead of logits")
class TransformerLogSoftmax(_TransformerBase):
    def __init__(self, src_vocab_size, tgt_vocab_size, d_model=512, num_layers=6, num_heads=8, d_ff=2048,
                 dropout=0.1, max_seq_length=5000, pad_idx=0, share_embeddings=False):
        super().__init__(src_vocab_size, tgt_vocab_size, d_model, num_layers, num_heads, d_ff, dropout,
                         max_seq_length, pad_idx, share_embeddings)
        self._init_and_tie(share_embeddings)

    def forward(self, src, tgt):
        src_mask, tgt_mask = create_masks(src, tgt, self.pad_idx)
        out = self.decode(tgt, self.encode(src, src_mask), src_mask, tgt_mask)
        return F.log_softmax(self.generator(out), dim=-1)


# ==================================================================================================
# Chapter 10: training
# ==================================================================================================


class _SchedulerBase:
    def __init__(self, optimizer, d_model, warmup_steps=4000, factor=1.0):
        self.optimizer = optimizer
        self.d_model = d_model
        self.warmup_steps = warmup_steps
        self.factor = factor
        self.step_num = 0

    def get_lr(self, step_num):
        return self.factor * self.d_model**-0.5 * min(step_num**-0.5, step_num * self.warmup_steps**-1.5)

    def step(self, step_num=None):
        self.step_num = self.step_num + 1 if step_num is None else step_num
        lr = self.get_lr(self.step_num)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        return lr


@bug("TransformerLRScheduler", "lr_never_set", "computes and returns the rate but never writes it to the optimizer")
class SchedulerNeverSets(_SchedulerBase):
    def step(self, step_num=None):
        self.step_num = self.step_num + 1 if step_num is None else step_num
        return self.get_lr(self.step_num)


@bug("TransformerLRScheduler", "lr_step_off_by_one", "counter starts at 1 and is incremented first: first step() is step 2")
class SchedulerStartsAtTwo(_SchedulerBase):
    def __init__(self, optimizer, d_model, warmup_steps=4000, factor=1.0):
        super().__init__(optimizer, d_model, warmup_steps, factor)
        self.step_num = 1


@bug("TransformerLRScheduler", "lr_formula_wrong", "max instead of min: the rate never warms up")
class SchedulerMax(_SchedulerBase):
    def get_lr(self, step_num):
        return self.factor * self.d_model**-0.5 * max(step_num**-0.5, step_num * self.warmup_steps**-1.5)


@bug("TransformerLRScheduler", "lr_formula_wrong", "warmup_steps^-0.5 instead of ^-1.5 in the warm-up branch")
class SchedulerWrongExponent(_SchedulerBase):
    def get_lr(self, step_num):
        return self.factor * self.d_model**-0.5 * min(step_num**-0.5, step_num * self.warmup_steps**-0.5)


@bug("TransformerLRScheduler", "lr_factor_ignored", "stores factor but leaves it out of the formula")
class SchedulerNoFactor(_SchedulerBase):
    def get_lr(self, step_num):
        return self.d_model**-0.5 * min(step_num**-0.5, step_num * self.warmup_steps**-1.5)


class _LSBase(nn.Module):
    def __init__(self, smoothing: float = 0.1, ignore_index: int = 0) -> None:
        super().__init__()
        self.smoothing = smoothing
        self.ignore_index = ignore_index


@bug("LabelSmoothingLoss", "ls_no_ignore_index", "every position counts, padding included")
class LSNoIgnore(_LSBase):
    def forward(self, logits, target):
        V = logits.size(-1)
        log_probs = logits.reshape(-1, V).log_softmax(-1)
        target = target.reshape(-1)
        nll = -log_probs.gather(1, target[:, None]).squeeze(1)
        return ((1 - self.smoothing) * nll - self.smoothing * log_probs.mean(-1)).mean()


@bug("LabelSmoothingLoss", "ls_wrong_distribution", "spreads smoothing over the V-1 wrong classes only")
class LSOverVMinus1(_LSBase):
    def forward(self, logits, target):
        V = logits.size(-1)
        log_probs = logits.reshape(-1, V).log_softmax(-1)
        target = target.reshape(-1)
        true_dist = torch.full_like(log_probs, self.smoothing / (V - 1))
        true_dist.scatter_(1, target[:, None], 1 - self.smoothing)
        loss = -(true_dist * log_probs).sum(-1)
        keep = target != self.ignore_index
        return loss[keep].mean()


@bug("LabelSmoothingLoss", "ls_sum_not_mean", "sums over the tokens instead of averaging")
class LSSum(_LSBase):
    def forward(self, logits, target):
        V = logits.size(-1)
        log_probs = logits.reshape(-1, V).log_softmax(-1)
        target = target.reshape(-1)
        keep = target != self.ignore_index
        nll = -log_probs.gather(1, target[:, None]).squeeze(1)
        loss = (1 - self.smoothing) * nll - self.smoothing * log_probs.mean(-1)
        return loss[keep].sum()


@bug("LabelSmoothingLoss", "ls_sum_not_mean", "zeroes the padding but divides by all positions, padding included")
class LSMeanOverAll(_LSBase):
    def forward(self, logits, target):
        V = logits.size(-1)
        log_probs = logits.reshape(-1, V).log_softmax(-1)
        target = target.reshape(-1)
        keep = (target != self.ignore_index).float()
        nll = -log_probs.gather(1, target[:, None]).squeeze(1)
        loss = (1 - self.smoothing) * nll - self.smoothing * log_probs.mean(-1)
        return (loss * keep).mean()


@bug("LabelSmoothingLoss", "ls_probs_not_logprobs", "softmax where log_softmax belongs")
class LSProbabilities(_LSBase):
    def forward(self, logits, target):
        V = logits.size(-1)
        log_probs = logits.reshape(-1, V).softmax(-1)
        target = target.reshape(-1)
        keep = target != self.ignore_index
        nll = -log_probs.gather(1, target[:, None]).squeeze(1)
        loss = (1 - self.smoothing) * nll - self.smoothing * log_probs.mean(-1)
        return loss[keep].mean()


@bug("LabelSmoothingLoss", "ls_smoothing_ignored", "plain cross-entropy: the smoothing argument is never used")
class LSPlainCrossEntropy(_LSBase):
    def forward(self, logits, target):
        V = logits.size(-1)
        return F.cross_entropy(logits.reshape(-1, V), target.reshape(-1), ignore_index=self.ignore_index)


# ==================================================================================================
# Chapter 11: inference
# ==================================================================================================


def _step_logits(model, ys, memory, src, src_mask, pad_idx):
    _, tgt_mask = create_masks(src, ys, pad_idx)
    return model.generator(model.decode(ys, memory, src_mask, tgt_mask)[:, -1])


@bug("greedy_decode", "greedy_no_early_stop", "always runs to max_len, even when every row has finished")
@torch.no_grad()
def greedy_always_max_len(model, src, max_len, start_idx, end_idx, pad_idx=0):
    src_mask = create_padding_mask(src, pad_idx)
    memory = model.encode(src, src_mask)
    ys = torch.full((src.size(0), 1), start_idx, dtype=torch.long)
    done = torch.zeros(src.size(0), dtype=torch.bool)
    for _ in range(max_len - 1):
        nxt = _step_logits(model, ys, memory, src, src_mask, pad_idx).argmax(-1).masked_fill(done, pad_idx)
        ys = torch.cat([ys, nxt[:, None]], dim=1)
        done |= nxt == end_idx
    return ys


@bug("greedy_decode", "greedy_no_padding_after_end", "keeps appending argmax tokens after a row emitted end_idx")
@torch.no_grad()
def greedy_no_padding(model, src, max_len, start_idx, end_idx, pad_idx=0):
    src_mask = create_padding_mask(src, pad_idx)
    memory = model.encode(src, src_mask)
    ys = torch.full((src.size(0), 1), start_idx, dtype=torch.long)
    done = torch.zeros(src.size(0), dtype=torch.bool)
    while ys.size(1) < max_len:
        nxt = _step_logits(model, ys, memory, src, src_mask, pad_idx).argmax(-1)
        ys = torch.cat([ys, nxt[:, None]], dim=1)
        done |= nxt == end_idx
        if done.all():
            break
    return ys


@bug("greedy_decode", "greedy_uses_first_position", "takes the argmax of position 0 instead of the last one")
@torch.no_grad()
def greedy_first_position(model, src, max_len, start_idx, end_idx, pad_idx=0):
    src_mask = create_padding_mask(src, pad_idx)
    memory = model.encode(src, src_mask)
    ys = torch.full((src.size(0), 1), start_idx, dtype=torch.long)
    done = torch.zeros(src.size(0), dtype=torch.bool)
    while ys.size(1) < max_len:
        _, tgt_mask = create_masks(src, ys, pad_idx)
        out = model.decode(ys, memory, src_mask, tgt_mask)
        nxt = model.generator(out[:, 0]).argmax(-1).masked_fill(done, pad_idx)
        ys = torch.cat([ys, nxt[:, None]], dim=1)
        done |= nxt == end_idx
        if done.all():
            break
    return ys


@bug("greedy_decode", "greedy_missing_start_token", "returns ys[:, 1:]: the start token is cut off")
@torch.no_grad()
def greedy_drops_start(model, src, max_len, start_idx, end_idx, pad_idx=0):
    src_mask = create_padding_mask(src, pad_idx)
    memory = model.encode(src, src_mask)
    ys = torch.full((src.size(0), 1), start_idx, dtype=torch.long)
    done = torch.zeros(src.size(0), dtype=torch.bool)
    while ys.size(1) < max_len:
        nxt = _step_logits(model, ys, memory, src, src_mask, pad_idx).argmax(-1).masked_fill(done, pad_idx)
        ys = torch.cat([ys, nxt[:, None]], dim=1)
        done |= nxt == end_idx
        if done.all():
            break
    return ys[:, 1:]


@bug("greedy_decode", "greedy_wrong_masks", "encode and decode called without any mask")
@torch.no_grad()
def greedy_no_masks(model, src, max_len, start_idx, end_idx, pad_idx=0):
    memory = model.encode(src, None)
    ys = torch.full((src.size(0), 1), start_idx, dtype=torch.long)
    done = torch.zeros(src.size(0), dtype=torch.bool)
    while ys.size(1) < max_len:
        nxt = model.generator(model.decode(ys, memory, None, None)[:, -1]).argmax(-1).masked_fill(done, pad_idx)
        ys = torch.cat([ys, nxt[:, None]], dim=1)
        done |= nxt == end_idx
        if done.all():
            break
    return ys


def _beam(model, src, max_len, start_idx, end_idx, beam_size, pad_idx, score_finished, *,
          log_softmax_dim: int = -1, first_finished: bool = False):
    """A correct beam search except for the knobs the bugs below turn."""
    src_mask = create_padding_mask(src, pad_idx)
    memory = model.encode(src, src_mask)
    beams = [(0.0, [start_idx])]
    finished = []
    while beams and len(beams[0][1]) < max_len and len(finished) < beam_size:
        ys = torch.tensor([tokens for _, tokens in beams], dtype=torch.long)
        k = ys.size(0)
        logits = _step_logits(model, ys, memory.expand(k, -1, -1), src.expand(k, -1),
                              src_mask.expand(k, -1, -1, -1), pad_idx)
        log_probs = torch.log_softmax(logits.float(), dim=log_softmax_dim)
        candidates = sorted(
            ((score + lp, tokens + [tok]) for (score, tokens), row in zip(beams, log_probs.tolist())
             for tok, lp in enumerate(row)),
            key=lambda c: c[0], reverse=True,
        )
        beams = []
        for score, tokens in candidates[: 2 * beam_size]:
            if tokens[-1] == end_idx:
                finished.append((score_finished(score, len(tokens) - 1), tokens))
                if first_finished:
                    return torch.tensor(tokens)
            else:
                beams.append((score, tokens))
            if len(beams) == beam_size or len(finished) >= beam_size:
                break
    if not finished:
        finished = [(score_finished(s, len(t) - 1), t) for s, t in beams]
    return torch.tensor(max(finished, key=lambda c: c[0])[1])


@bug("beam_search", "beam_no_length_penalty", "finished hypotheses ranked by raw log-probability")
@torch.no_grad()
def beam_raw_logprob(model, src, max_len, start_idx, end_idx, beam_size=4, length_penalty=0.6, pad_idx=0):
    return _beam(model, src, max_len, start_idx, end_idx, beam_size, pad_idx, lambda lp, n: lp)


@bug("beam_search", "beam_wrong_length_penalty", "divides by |Y|^alpha instead of ((5+|Y|)/6)^alpha")
@torch.no_grad()
def beam_length_power(model, src, max_len, start_idx, end_idx, beam_size=4, length_penalty=0.6, pad_idx=0):
    return _beam(model, src, max_len, start_idx, end_idx, beam_size, pad_idx,
                 lambda lp, n: lp / n**length_penalty)


@bug("beam_search", "beam_returns_first_finished", "returns the first hypothesis that ends")
@torch.no_grad()
def beam_first_finished(model, src, max_len, start_idx, end_idx, beam_size=4, length_penalty=0.6, pad_idx=0):
    return _beam(model, src, max_len, start_idx, end_idx, beam_size, pad_idx,
                 lambda lp, n: lp / ((5 + n) / 6) ** length_penalty, first_finished=True)


@bug("beam_search", "beam_not_greedy_at_one", "log_softmax over the beam axis (dim=0) instead of the vocabulary")
@torch.no_grad()
def beam_softmax_over_beams(model, src, max_len, start_idx, end_idx, beam_size=4, length_penalty=0.6, pad_idx=0):
    return _beam(model, src, max_len, start_idx, end_idx, beam_size, pad_idx,
                 lambda lp, n: lp / ((5 + n) / 6) ** length_penalty, log_softmax_dim=0)
