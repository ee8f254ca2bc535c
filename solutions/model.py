"""The Transformer of "Attention Is All You Need" (Vaswani et al., 2017), one piece per paper section.

Read it top to bottom: every class is small, typed, and says which section of the paper it implements
and what shapes go in and out. Conventions (see ``CONTRACT.md``):

* batch first: ``B`` batch, ``S`` source length, ``T`` target length, ``d`` = ``d_model``,
  ``h`` = ``num_heads``, ``d_k = d_model // num_heads``, ``V`` vocabulary size;
* a mask is a ``torch.bool`` tensor broadcastable to ``[B, h, S_q, S_k]``, **True = may attend**;
* post-norm, ``LayerNorm(x + Dropout(Sublayer(x)))``, and dropout only where section 5.4 puts it.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn


# --------------------------------------------------------------------------------------------------
# Section 3.4: embeddings
# --------------------------------------------------------------------------------------------------
class TokenEmbedding(nn.Module):
    """Turns token ids into vectors, scaled by sqrt(d_model) (section 3.4).

    Shapes: ``tokens`` [B, S] (long) -> [B, S, d_model].
    """

    def __init__(self, vocab_size: int, d_model: int) -> None:
        super().__init__()
        self.d_model = d_model
        self.embedding = nn.Embedding(vocab_size, d_model)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.embedding(tokens) * math.sqrt(self.d_model)


# --------------------------------------------------------------------------------------------------
# Section 3.5: positional encoding
# --------------------------------------------------------------------------------------------------
class PositionalEncoding(nn.Module):
    """Adds the fixed sinusoidal position signal to the embeddings (section 3.5).

    ``pe[0, pos, 2i] = sin(pos / 10000^(2i/d))`` and ``pe[0, pos, 2i+1] = cos(pos / 10000^(2i/d))``.
    The table is a buffer (saved with the model, never trained). Dropout is applied by the
    encoder / decoder, not here.

    Shapes: ``x`` [B, S, d_model] -> [B, S, d_model].
    """

    def __init__(self, d_model: int, max_seq_length: int = 5000) -> None:
        super().__init__()
        if d_model % 2 != 0:
            raise ValueError(
                f"PositionalEncoding needs an even d_model (sine and cosine come in pairs), got {d_model}."
            )
        self.max_seq_length = max_seq_length
        position = torch.arange(max_seq_length, dtype=torch.float32).unsqueeze(1)  # [max, 1]
        two_i = torch.arange(0, d_model, 2, dtype=torch.float32)  # [d/2]: the even indices 2i
        angle = position / (10000.0 ** (two_i / d_model))  # [max, d/2]
        pe = torch.zeros(max_seq_length, d_model)
        pe[:, 0::2] = torch.sin(angle)
        pe[:, 1::2] = torch.cos(angle)
        self.register_buffer("pe", pe.unsqueeze(0))  # [1, max, d]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seq_len = x.size(1)
        if seq_len > self.max_seq_length:
            raise ValueError(
                f"Sequence length {seq_len} is longer than max_seq_length={self.max_seq_length}; "
                "build the model with a larger max_seq_length."
            )
        return x + self.pe[:, :seq_len].to(x.dtype)


# --------------------------------------------------------------------------------------------------
# Section 3.2.1: scaled dot-product attention
# --------------------------------------------------------------------------------------------------
def scaled_dot_product_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``softmax(Q Kᵀ / sqrt(d_k)) V`` (section 3.2.1, equation 1).

    Shapes: ``query`` [..., S_q, d_k], ``key`` [..., S_k, d_k], ``value`` [..., S_k, d_v],
    ``mask`` bool broadcastable to [..., S_q, S_k] with True = may attend.
    Returns ``(output [..., S_q, d_v], weights [..., S_q, S_k])``.
    """
    d_k = query.size(-1)
    scores = query @ key.transpose(-2, -1) / math.sqrt(d_k)  # [..., S_q, S_k]
    if mask is not None:
        # The most negative number the dtype holds: exp() of it is exactly 0, and a row whose keys
        # are all masked gets uniform weights instead of NaN.
        scores = scores.masked_fill(mask.logical_not(), torch.finfo(scores.dtype).min)
    weights = torch.softmax(scores, dim=-1)
    return weights @ value, weights


# --------------------------------------------------------------------------------------------------
# Section 3.2.2: multi-head attention
# --------------------------------------------------------------------------------------------------
class MultiHeadAttention(nn.Module):
    """``h`` attention heads side by side, each on its own ``d_k``-wide slice (section 3.2.2).

    Shapes: ``query`` [B, S_q, d], ``key`` and ``value`` [B, S_k, d] -> [B, S_q, d].
    After each forward, ``attention_weights`` holds the weights, [B, h, S_q, S_k].
    """

    def __init__(self, d_model: int, num_heads: int) -> None:
        super().__init__()
        if d_model % num_heads != 0:
            raise ValueError(
                f"d_model ({d_model}) must be divisible by num_heads ({num_heads}): "
                "each head gets d_model // num_heads features."
            )
        self.d_model = d_model
        self.num_heads = num_heads
        self.d_k = d_model // num_heads
        self.W_q = nn.Linear(d_model, d_model)
        self.W_k = nn.Linear(d_model, d_model)
        self.W_v = nn.Linear(d_model, d_model)
        self.W_o = nn.Linear(d_model, d_model)
        self.attention_weights: torch.Tensor | None = None

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:
        """[B, L, d] -> [B, h, L, d_k]: head i gets features i*d_k:(i+1)*d_k."""
        batch, length, _ = x.shape
        return x.view(batch, length, self.num_heads, self.d_k).transpose(1, 2)

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        q = self.split_heads(self.W_q(query))  # [B, h, S_q, d_k]
        k = self.split_heads(self.W_k(key))  # [B, h, S_k, d_k]
        v = self.split_heads(self.W_v(value))  # [B, h, S_k, d_k]
        out, weights = scaled_dot_product_attention(q, k, v, mask)  # [B, h, S_q, d_k]
        self.attention_weights = weights.detach()
        batch, _, length, _ = out.shape
        out = out.transpose(1, 2).reshape(batch, length, self.d_model)  # concat the heads
        return self.W_o(out)


# --------------------------------------------------------------------------------------------------
# Section 3.3: position-wise feed-forward network
# --------------------------------------------------------------------------------------------------
class FeedForwardNetwork(nn.Module):
    """``W_2(relu(W_1 x))``, applied to every position alike (section 3.3, equation 2).

    Shapes: ``x`` [..., d] -> [..., d], through a hidden layer of width ``d_ff``.
    """

    def __init__(self, d_model: int, d_ff: int) -> None:
        super().__init__()
        self.W_1 = nn.Linear(d_model, d_ff)
        self.W_2 = nn.Linear(d_ff, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.W_2(torch.relu(self.W_1(x)))


# --------------------------------------------------------------------------------------------------
# Section 3.1: layer normalisation (Ba et al., 2016)
# --------------------------------------------------------------------------------------------------
class LayerNorm(nn.Module):
    """Normalise each position's features to mean 0 and variance 1, then scale and shift (section 3.1).

    ``weight * (x - mean) / sqrt(var + eps) + bias`` with the biased variance over the last axis;
    equals ``nn.LayerNorm(d_model, eps)``. Shapes: ``x`` [..., d] -> [..., d].
    """

    def __init__(self, d_model: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d_model))
        self.bias = nn.Parameter(torch.zeros(d_model))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=-1, keepdim=True)
        var = x.var(dim=-1, keepdim=True, correction=0)
        return self.weight * (x - mean) / torch.sqrt(var + self.eps) + self.bias


# --------------------------------------------------------------------------------------------------
# Sections 3.1 and 3.2.3: the encoder
# --------------------------------------------------------------------------------------------------
class EncoderLayer(nn.Module):
    """Self-attention, then the feed-forward network, each wrapped as
    ``LayerNorm(x + Dropout(Sublayer(x)))`` (sections 3.1 and 5.4).

    Shapes: ``x`` [B, S, d], ``mask`` bool [B, 1, 1, S] -> [B, S, d].
    """

    def __init__(self, d_model: int, num_heads: int, d_ff: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, num_heads)
        self.feed_forward = FeedForwardNetwork(d_model, d_ff)
        self.norm1 = LayerNorm(d_model)
        self.norm2 = LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        x = self.norm1(x + self.dropout(self.self_attn(x, x, x, mask)))
        x = self.norm2(x + self.dropout(self.feed_forward(x)))
        return x


class Encoder(nn.Module):
    """Embeddings + positional encoding, dropout, then ``num_layers`` encoder layers (section 3.1).

    Shapes: ``src`` [B, S] (long), ``src_mask`` bool [B, 1, 1, S] -> [B, S, d].
    """

    def __init__(
        self,
        vocab_size: int,
        d_model: int = 512,
        num_layers: int = 6,
        num_heads: int = 8,
        d_ff: int = 2048,
        dropout: float = 0.1,
        max_seq_length: int = 5000,
    ) -> None:
        super().__init__()
        self.embedding = TokenEmbedding(vocab_size, d_model)
        self.positional_encoding = PositionalEncoding(d_model, max_seq_length)
        self.dropout = nn.Dropout(dropout)
        self.layers = nn.ModuleList([EncoderLayer(d_model, num_heads, d_ff, dropout) for _ in range(num_layers)])

    def forward(self, src: torch.Tensor, src_mask: torch.Tensor | None = None) -> torch.Tensor:
        x = self.dropout(self.positional_encoding(self.embedding(src)))
        for layer in self.layers:
            x = layer(x, src_mask)
        return x


# --------------------------------------------------------------------------------------------------
# Sections 3.1 and 3.2.3: masks and the decoder
# --------------------------------------------------------------------------------------------------
def create_padding_mask(seq: torch.Tensor, pad_idx: int = 0) -> torch.Tensor:
    """True where a token is real, False where it is padding.

    Shapes: ``seq`` [B, L] (long) -> bool [B, 1, 1, L] (broadcasts over heads and query positions).
    """
    return (seq != pad_idx)[:, None, None, :]


def create_future_mask(size: int, device: torch.device | str | None = None) -> torch.Tensor:
    """True on and below the diagonal: position t may attend to positions 0..t (section 3.2.3).

    Shapes: -> bool [1, 1, size, size].
    """
    return torch.tril(torch.ones(size, size, dtype=torch.bool, device=device))[None, None]


def create_masks(src: torch.Tensor, tgt: torch.Tensor, pad_idx: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """The two masks a Transformer needs.

    Shapes: ``src`` [B, S], ``tgt`` [B, T] -> ``src_mask`` bool [B, 1, 1, S],
    ``tgt_mask`` bool [B, 1, T, T] (target padding AND the future mask).
    """
    src_mask = create_padding_mask(src, pad_idx)
    tgt_mask = create_padding_mask(tgt, pad_idx) & create_future_mask(tgt.size(1), tgt.device)
    return src_mask, tgt_mask


class DecoderLayer(nn.Module):
    """Masked self-attention, cross-attention over the encoder output, then the feed-forward
    network, each wrapped as ``LayerNorm(x + Dropout(Sublayer(x)))`` (sections 3.1 and 3.2.3).

    Shapes: ``x`` [B, T, d], ``encoder_output`` [B, S, d], ``src_mask`` bool [B, 1, 1, S],
    ``tgt_mask`` bool [B, 1, T, T] -> [B, T, d].
    """

    def __init__(self, d_model: int, num_heads: int, d_ff: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, num_heads)
        self.cross_attn = MultiHeadAttention(d_model, num_heads)
        self.feed_forward = FeedForwardNetwork(d_model, d_ff)
        self.norm1 = LayerNorm(d_model)
        self.norm2 = LayerNorm(d_model)
        self.norm3 = LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(
        self,
        x: torch.Tensor,
        encoder_output: torch.Tensor,
        src_mask: torch.Tensor | None = None,
        tgt_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        x = self.norm1(x + self.dropout(self.self_attn(x, x, x, tgt_mask)))
        x = self.norm2(x + self.dropout(self.cross_attn(x, encoder_output, encoder_output, src_mask)))
        x = self.norm3(x + self.dropout(self.feed_forward(x)))
        return x


class Decoder(nn.Module):
    """Embeddings + positional encoding, dropout, then ``num_layers`` decoder layers (section 3.1).

    Shapes: ``tgt`` [B, T] (long), ``encoder_output`` [B, S, d] -> [B, T, d].
    """

    def __init__(
        self,
        vocab_size: int,
        d_model: int = 512,
        num_layers: int = 6,
        num_heads: int = 8,
        d_ff: int = 2048,
        dropout: float = 0.1,
        max_seq_length: int = 5000,
    ) -> None:
        super().__init__()
        self.embedding = TokenEmbedding(vocab_size, d_model)
        self.positional_encoding = PositionalEncoding(d_model, max_seq_length)
        self.dropout = nn.Dropout(dropout)
        self.layers = nn.ModuleList([DecoderLayer(d_model, num_heads, d_ff, dropout) for _ in range(num_layers)])

    def forward(
        self,
        tgt: torch.Tensor,
        encoder_output: torch.Tensor,
        src_mask: torch.Tensor | None = None,
        tgt_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        x = self.dropout(self.positional_encoding(self.embedding(tgt)))
        for layer in self.layers:
            x = layer(x, encoder_output, src_mask, tgt_mask)
        return x


# --------------------------------------------------------------------------------------------------
# Sections 3 and 3.4: the whole model
# --------------------------------------------------------------------------------------------------
class Transformer(nn.Module):
    """Encoder, decoder and the output layer ("generator") that turns vectors into logits (section 3).

    The generator's weight is the decoder's embedding matrix itself (section 3.4); with
    ``share_embeddings=True`` the encoder uses that same matrix too (one shared vocabulary).
    Every parameter with more than one dimension starts Xavier-uniform.

    Shapes: ``src`` [B, S], ``tgt`` [B, T] (long) -> logits [B, T, tgt_vocab_size].
    """

    def __init__(
        self,
        src_vocab_size: int,
        tgt_vocab_size: int,
        d_model: int = 512,
        num_layers: int = 6,
        num_heads: int = 8,
        d_ff: int = 2048,
        dropout: float = 0.1,
        max_seq_length: int = 5000,
        pad_idx: int = 0,
        share_embeddings: bool = False,
    ) -> None:
        super().__init__()
        if share_embeddings and src_vocab_size != tgt_vocab_size:
            raise ValueError(
                "share_embeddings=True needs one vocabulary for both languages, but "
                f"src_vocab_size={src_vocab_size} and tgt_vocab_size={tgt_vocab_size}."
            )
        self.pad_idx = pad_idx
        sizes = dict(
            d_model=d_model,
            num_layers=num_layers,
            num_heads=num_heads,
            d_ff=d_ff,
            dropout=dropout,
            max_seq_length=max_seq_length,
        )
        self.encoder = Encoder(src_vocab_size, **sizes)
        self.decoder = Decoder(tgt_vocab_size, **sizes)
        self.generator = nn.Linear(d_model, tgt_vocab_size)

        for p in self.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)
        # Section 3.4: tie the output layer to the target embedding (and the source one, if shared).
        self.generator.weight = self.decoder.embedding.embedding.weight
        if share_embeddings:
            self.encoder.embedding.embedding.weight = self.decoder.embedding.embedding.weight

    def encode(self, src: torch.Tensor, src_mask: torch.Tensor | None = None) -> torch.Tensor:
        """[B, S] -> memory [B, S, d]."""
        return self.encoder(src, src_mask)

    def decode(
        self,
        tgt: torch.Tensor,
        memory: torch.Tensor,
        src_mask: torch.Tensor | None = None,
        tgt_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """[B, T] and memory [B, S, d] -> [B, T, d] (apply ``generator`` for logits)."""
        return self.decoder(tgt, memory, src_mask, tgt_mask)

    def forward(self, src: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
        src_mask, tgt_mask = create_masks(src, tgt, self.pad_idx)
        memory = self.encode(src, src_mask)
        return self.generator(self.decode(tgt, memory, src_mask, tgt_mask))
