"""More buggy implementations: other spellings of the same classic mistakes.

Written after the checker had seen ``buggy.py``, to measure whether its diagnoses recognise a
mistake by its effect on the numbers, not by the one spelling it was tuned on.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from solutions import Decoder, Encoder, EncoderLayer, FeedForwardNetwork, LayerNorm, MultiHeadAttention, create_masks
from solutions import scaled_dot_product_attention

from . import bug
from .buggy import _EncoderLayerBase, _LSBase, _MHABase, _SchedulerBase


@bug("softmax", "softmax_wrong_axis", "stable, but normalises over every element of the tensor")
def softmax_whole_tensor(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    e = torch.exp(x - x.max())
    return e / e.sum()


@bug("TokenEmbedding", "embedding_wrong_scale", "scales by sqrt(vocab_size) instead of sqrt(d_model)")
class EmbeddingVocabScale(nn.Module):
    def __init__(self, vocab_size: int, d_model: int) -> None:
        super().__init__()
        self.vocab_size = vocab_size
        self.embedding = nn.Embedding(vocab_size, d_model)

    def forward(self, tokens):
        return self.embedding(tokens) * math.sqrt(self.vocab_size)


@bug("PositionalEncoding", "pe_wrong_frequencies", "exp/log form with the sign lost: exp(+2i log(10000)/d)")
class PESignError(nn.Module):
    def __init__(self, d_model: int, max_seq_length: int = 5000) -> None:
        super().__init__()
        self.max_seq_length = max_seq_length
        position = torch.arange(max_seq_length).unsqueeze(1).float()
        div_term = torch.exp(torch.arange(0, d_model, 2).float() * (math.log(10000.0) / d_model))
        pe = torch.zeros(max_seq_length, d_model)
        pe[:, 0::2] = torch.sin(position * div_term)
        pe[:, 1::2] = torch.cos(position * div_term)
        self.register_buffer("pe", pe.unsqueeze(0))

    def forward(self, x):
        if x.size(1) > self.max_seq_length:
            raise ValueError("sequence too long")
        return x + self.pe[:, : x.size(1)]


@bug("scaled_dot_product_attention", "attn_mask_polarity", "torch.where(mask, -1e9, scores): the arguments swapped")
def attention_where_swapped(query, key, value, mask=None):
    scores = torch.matmul(query, key.transpose(-2, -1)) / math.sqrt(query.size(-1))
    if mask is not None:
        scores = torch.where(mask, torch.tensor(-1e9, dtype=scores.dtype), scores)
    weights = torch.softmax(scores, dim=-1)
    return weights @ value, weights


@bug("MultiHeadAttention", "mha_projection_mixup", "the values are computed from the key input")
class MHAValuesFromKey(_MHABase):
    def forward(self, query, key, value, mask=None):
        B = query.size(0)
        q = self.W_q(query).view(B, -1, self.num_heads, self.d_k).transpose(1, 2)
        k = self.W_k(key).view(B, -1, self.num_heads, self.d_k).transpose(1, 2)
        v = self.W_v(key).view(B, -1, self.num_heads, self.d_k).transpose(1, 2)
        out, self.attention_weights = scaled_dot_product_attention(q, k, v, mask)
        return self.W_o(out.transpose(1, 2).reshape(B, -1, self.d_model))


@bug("MultiHeadAttention", "mha_concat_wrong", "permute(0, 2, 3, 1) before merging: features come out d_k-major")
class MHAConcatPermuted(_MHABase):
    def forward(self, query, key, value, mask=None):
        B, S_q, _ = query.shape
        q = self.W_q(query).view(B, -1, self.num_heads, self.d_k).transpose(1, 2)
        k = self.W_k(key).view(B, -1, self.num_heads, self.d_k).transpose(1, 2)
        v = self.W_v(value).view(B, -1, self.num_heads, self.d_k).transpose(1, 2)
        out, self.attention_weights = scaled_dot_product_attention(q, k, v, mask)
        return self.W_o(out.permute(0, 2, 3, 1).reshape(B, S_q, self.d_model))


@bug("FeedForwardNetwork", "ffn_wrong_activation", "sigmoid between the two layers")
class FFNSigmoid(nn.Module):
    def __init__(self, d_model: int, d_ff: int) -> None:
        super().__init__()
        self.W_1 = nn.Linear(d_model, d_ff)
        self.W_2 = nn.Linear(d_ff, d_model)

    def forward(self, x):
        return self.W_2(torch.sigmoid(self.W_1(x)))


@bug("EncoderLayer", "dropout_after_residual", "right around attention, Dropout(x + FFN(x)) around the FFN")
class EncoderLayerHalfDropoutAfterAdd(_EncoderLayerBase):
    def forward(self, x, mask=None):
        x = self.norm1(x + self.dropout(self.self_attn(x, x, x, mask)))
        return self.norm2(self.dropout(x + self.feed_forward(x)))


@bug("LabelSmoothingLoss", "ls_wrong_distribution", "Annotated Transformer style: smoothing / (V - 2), padding column zeroed")
class LSOverVMinus2(_LSBase):
    def forward(self, logits, target):
        V = logits.size(-1)
        log_probs = logits.reshape(-1, V).log_softmax(-1)
        target = target.reshape(-1)
        true_dist = torch.full_like(log_probs, self.smoothing / (V - 2))
        true_dist.scatter_(1, target.unsqueeze(1), 1.0 - self.smoothing)
        true_dist[:, self.ignore_index] = 0
        keep = target != self.ignore_index
        return -(true_dist * log_probs).sum(-1)[keep].mean()


@bug("TransformerLRScheduler", "lr_formula_wrong", "forgets the d_model^-0.5 factor")
class SchedulerNoDModel(_SchedulerBase):
    def get_lr(self, step_num):
        return self.factor * min(step_num**-0.5, step_num * self.warmup_steps**-1.5)


@bug("Transformer", "generator_not_tied", "ties the generator to the ENCODER's embedding")
class TransformerTiedToEncoder(nn.Module):
    def __init__(self, src_vocab_size, tgt_vocab_size, d_model=512, num_layers=6, num_heads=8, d_ff=2048,
                 dropout=0.1, max_seq_length=5000, pad_idx=0, share_embeddings=False):
        super().__init__()
        self.pad_idx = pad_idx
        self.encoder = Encoder(src_vocab_size, d_model, num_layers, num_heads, d_ff, dropout, max_seq_length)
        self.decoder = Decoder(tgt_vocab_size, d_model, num_layers, num_heads, d_ff, dropout, max_seq_length)
        self.generator = nn.Linear(d_model, tgt_vocab_size)
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)
        if share_embeddings:
            self.encoder.embedding.embedding.weight = self.decoder.embedding.embedding.weight
        if src_vocab_size == tgt_vocab_size:
            self.generator.weight = self.encoder.embedding.embedding.weight

    def encode(self, src, src_mask=None):
        return self.encoder(src, src_mask)

    def decode(self, tgt, memory, src_mask=None, tgt_mask=None):
        return self.decoder(tgt, memory, src_mask, tgt_mask)

    def forward(self, src, tgt):
        src_mask, tgt_mask = create_masks(src, tgt, self.pad_idx)
        return self.generator(self.decode(tgt, self.encode(src, src_mask), src_mask, tgt_mask))
