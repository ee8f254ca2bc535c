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


# --------------------------------------------------------------------------------------------------
# Second held-out round (08:45 UTC), written after the checker had seen everything above.
# --------------------------------------------------------------------------------------------------
from solutions import DecoderLayer, PositionalEncoding, TokenEmbedding, create_padding_mask  # noqa: E402

from .buggy import _beam, _DecoderLayerBase, _LNBase, _step_logits, _table  # noqa: E402


@bug("create_padding_mask", "padding_mask_shape", "[B, 1, L, 1]: the padding axis lands on the queries")
def padding_mask_on_queries(seq, pad_idx=0):
    return seq.eq(pad_idx).logical_not()[:, None, :, None]


@bug("create_future_mask", "future_mask_upper", "tril(...).T: the transpose turns it into the upper triangle")
def future_mask_transposed(size, device=None):
    return torch.tril(torch.ones(size, size, device=device)).bool().T[None, None]


@bug("LayerNorm", "ln_unbiased_variance", "torch.var(x, dim=-1) keeps its unbiased (n-1) default")
class LNTorchVar(_LNBase):
    def forward(self, x):
        mean = torch.mean(x, dim=-1, keepdim=True)
        var = torch.var(x, dim=-1, keepdim=True)
        return self.weight * (x - mean) / torch.sqrt(var + self.eps) + self.bias


@bug("LayerNorm", "ln_wrong_axis", "statistics over the last TWO axes (sequence and features)")
class LNTwoAxes(_LNBase):
    def forward(self, x):
        mean = x.mean(dim=(-2, -1), keepdim=True)
        var = x.var(dim=(-2, -1), keepdim=True, unbiased=False)
        return self.weight * (x - mean) / torch.sqrt(var + self.eps) + self.bias


@bug("DecoderLayer", "missing_residual", "no residual around the masked self-attention")
class DecoderLayerNoSelfResidual(_DecoderLayerBase):
    def forward(self, x, encoder_output, src_mask=None, tgt_mask=None):
        x = self.norm1(self.dropout(self.self_attn(x, x, x, tgt_mask)))
        x = self.norm2(x + self.dropout(self.cross_attn(x, encoder_output, encoder_output, src_mask)))
        return self.norm3(x + self.dropout(self.feed_forward(x)))


@bug("Decoder", "final_layer_norm", "an nn.LayerNorm called final_norm after the stack")
class DecoderFinalTorchNorm(nn.Module):
    def __init__(self, vocab_size, d_model=512, num_layers=6, num_heads=8, d_ff=2048, dropout=0.1,
                 max_seq_length=5000):
        super().__init__()
        self.embedding = TokenEmbedding(vocab_size, d_model)
        self.positional_encoding = PositionalEncoding(d_model, max_seq_length)
        self.dropout = nn.Dropout(dropout)
        self.layers = nn.ModuleList([DecoderLayer(d_model, num_heads, d_ff, dropout) for _ in range(num_layers)])
        self.final_norm = nn.LayerNorm(d_model)

    def forward(self, tgt, encoder_output, src_mask=None, tgt_mask=None):
        x = self.dropout(self.positional_encoding(self.embedding(tgt)))
        for layer in self.layers:
            x = layer(x, encoder_output, src_mask, tgt_mask)
        return self.final_norm(x)


@bug("Encoder", "layers_shared", "one EncoderLayer built before the list comprehension, reused in it")
class EncoderOneLayerObject(nn.Module):
    def __init__(self, vocab_size, d_model=512, num_layers=6, num_heads=8, d_ff=2048, dropout=0.1,
                 max_seq_length=5000):
        super().__init__()
        self.embedding = TokenEmbedding(vocab_size, d_model)
        self.positional_encoding = PositionalEncoding(d_model, max_seq_length)
        self.dropout = nn.Dropout(dropout)
        layer = EncoderLayer(d_model, num_heads, d_ff, dropout)
        self.layers = nn.ModuleList([layer for _ in range(num_layers)])

    def forward(self, src, src_mask=None):
        x = self.dropout(self.positional_encoding(self.embedding(src)))
        for layer in self.layers:
            x = layer(x, src_mask)
        return x


@bug("PositionalEncoding", "pe_wrong_axis", "self.pe[:S] slices the table's first axis (of size 1)")
class PESlicesFirstAxis(nn.Module):
    def __init__(self, d_model: int, max_seq_length: int = 5000) -> None:
        super().__init__()
        self.max_seq_length = max_seq_length
        self.register_buffer("pe", _table(d_model, max_seq_length))

    def forward(self, x):
        if x.size(1) > self.max_seq_length:
            raise ValueError("sequence too long")
        return x + self.pe[: x.size(1)]


@bug("greedy_decode", "greedy_no_padding_after_end", "finished rows are filled with end_idx instead of pad_idx")
@torch.no_grad()
def greedy_pads_with_end(model, src, max_len, start_idx, end_idx, pad_idx=0):
    src_mask = create_padding_mask(src, pad_idx)
    memory = model.encode(src, src_mask)
    ys = torch.full((src.size(0), 1), start_idx, dtype=torch.long)
    done = torch.zeros(src.size(0), dtype=torch.bool)
    while ys.size(1) < max_len:
        nxt = _step_logits(model, ys, memory, src, src_mask, pad_idx).argmax(-1).masked_fill(done, end_idx)
        ys = torch.cat([ys, nxt[:, None]], dim=1)
        done |= nxt == end_idx
        if done.all():
            break
    return ys


@bug("beam_search", "beam_wrong_length_penalty", "multiplies logP by the penalty instead of dividing")
@torch.no_grad()
def beam_penalty_multiplied(model, src, max_len, start_idx, end_idx, beam_size=4, length_penalty=0.6, pad_idx=0):
    return _beam(model, src, max_len, start_idx, end_idx, beam_size, pad_idx,
                 lambda lp, n: lp * ((5 + n) / 6) ** length_penalty)
