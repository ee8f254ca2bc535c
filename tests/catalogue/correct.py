"""Correct learner implementations written differently from the reference in ``solutions/``.

Each satisfies CONTRACT.md exactly (names, signatures, attributes, state_dict keys) but takes another
road: einsum, ``-inf`` or ``-1e9`` masks, ``torch.where``, ``nn.LayerNorm`` inside the layers,
``torch.var_mean``, loops over the sinusoid frequencies, a hand-written smoothed distribution, and
so on. The checker must pass every one of them: a checker that rejects correct code is worse than none.
"""

from __future__ import annotations

import copy
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
    create_masks,
)

from . import good

# --- chapter 00 -----------------------------------------------------------------------------------


@good("softmax", "exp(x - logsumexp(x))")
def softmax_logsumexp(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    return torch.exp(x - torch.logsumexp(x, dim=dim, keepdim=True))


@good("softmax", "subtracts amax, divides by the sum (no keepdim: unsqueeze by hand)")
def softmax_amax(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    shifted = x - torch.amax(x, dim=dim, keepdim=True)
    e = shifted.exp()
    return e / e.sum(dim=dim).unsqueeze(dim)


# --- chapter 01 -----------------------------------------------------------------------------------


@good("TokenEmbedding", "precomputed scale d_model ** 0.5 stored as a float")
class TokenEmbeddingPow(nn.Module):
    def __init__(self, vocab_size: int, d_model: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, d_model)
        self.scale = d_model**0.5

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.scale * self.embedding(tokens)


# --- chapter 02 -----------------------------------------------------------------------------------


@good("PositionalEncoding", "a Python loop over the frequencies, math.pow; persistent buffer")
class PELoop(nn.Module):
    def __init__(self, d_model: int, max_seq_length: int = 5000) -> None:
        super().__init__()
        self.max_seq_length = max_seq_length
        pos = torch.arange(max_seq_length, dtype=torch.float64)
        pe = torch.empty(1, max_seq_length, d_model)
        for i in range(d_model // 2):
            angle = pos / math.pow(10000.0, 2 * i / d_model)
            pe[0, :, 2 * i] = torch.sin(angle).float()
            pe[0, :, 2 * i + 1] = torch.cos(angle).float()
        self.register_buffer("pe", pe)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] > self.max_seq_length:
            raise IndexError(f"Input has {x.shape[1]} positions but the table only has {self.max_seq_length}.")
        return x + self.pe[:, : x.shape[1], :].type_as(x)


@good("PositionalEncoding", "exp(-log(10000) * 2i/d) form (Annotated Transformer), non-persistent buffer")
class PEExpLog(nn.Module):
    def __init__(self, d_model: int, max_seq_length: int = 5000) -> None:
        super().__init__()
        self.max_seq_length = max_seq_length
        position = torch.arange(0, max_seq_length).unsqueeze(1).float()
        div_term = torch.exp(torch.arange(0, d_model, 2).float() * -(math.log(10000.0) / d_model))
        pe = torch.zeros(max_seq_length, d_model)
        pe[:, 0::2] = torch.sin(position * div_term)
        pe[:, 1::2] = torch.cos(position * div_term)
        self.register_buffer("pe", pe.unsqueeze(0), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.size(1)
        if n > self.max_seq_length:
            raise ValueError(f"max_seq_length is {self.max_seq_length}, got a sequence of {n}")
        return x + self.pe[:, :n].to(dtype=x.dtype)


@good("PositionalEncoding", "sin and cos stacked on a new axis, then interleaved with flatten")
class PEStackInterleave(nn.Module):
    def __init__(self, d_model: int, max_seq_length: int = 5000) -> None:
        super().__init__()
        self.max_seq_length = max_seq_length
        pos = torch.arange(max_seq_length).float()[:, None]
        freqs = 1.0 / torch.pow(10000.0, torch.arange(0, d_model, 2).float() / d_model)
        angle = pos * freqs  # [max, d/2]
        pe = torch.stack([angle.sin(), angle.cos()], dim=-1).flatten(-2)  # [max, d]: sin, cos, sin, cos...
        self.register_buffer("pe", pe[None])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.size(1) > self.pe.size(1):
            raise ValueError("sequence longer than max_seq_length")
        return x + self.pe[:, : x.size(1)].to(x.dtype)


# --- chapter 03 -----------------------------------------------------------------------------------


@good("scaled_dot_product_attention", "einsum, torch.where with -inf")
def attention_einsum_where(query, key, value, mask=None):
    scores = torch.einsum("...qd,...kd->...qk", query, key) * query.shape[-1] ** -0.5
    if mask is not None:
        scores = torch.where(mask, scores, torch.tensor(float("-inf"), dtype=scores.dtype))
    weights = torch.softmax(scores, dim=-1)
    return torch.einsum("...qk,...kv->...qv", weights, value), weights


@good("scaled_dot_product_attention", "matmul, masked_fill(mask == False, -1e9), F.softmax")
def attention_minus_1e9(query, key, value, mask=None):
    d_k = key.size(-1)
    scores = torch.matmul(query, key.transpose(-1, -2)) / math.sqrt(d_k)
    if mask is not None:
        scores = scores.masked_fill(mask == False, -1e9)  # noqa: E712 (a learner's spelling)
    weights = F.softmax(scores, dim=-1)
    return torch.matmul(weights, value), weights


@good("scaled_dot_product_attention", "an additive mask of 0 / -inf added to the scores")
def attention_additive_mask(query, key, value, mask=None):
    scores = query @ key.mT / math.sqrt(query.size(-1))
    if mask is not None:
        bias = torch.zeros(mask.shape, dtype=scores.dtype).masked_fill(~mask, float("-inf"))
        scores = scores + bias
    weights = scores.softmax(-1)
    return weights @ value, weights


# --- chapter 04 -----------------------------------------------------------------------------------


@good("MultiHeadAttention", "reshape/permute and einsum, no helper method")
class MHAEinsum(nn.Module):
    def __init__(self, d_model: int, num_heads: int) -> None:
        super().__init__()
        assert d_model % num_heads == 0, f"d_model={d_model} must be a multiple of num_heads={num_heads}"
        self.h = num_heads
        self.W_q = nn.Linear(d_model, d_model)
        self.W_k = nn.Linear(d_model, d_model)
        self.W_v = nn.Linear(d_model, d_model)
        self.W_o = nn.Linear(d_model, d_model)
        self.attention_weights = None

    def forward(self, query, key, value, mask=None):
        B, Sq, d = query.shape
        Sk = key.shape[1]
        q = self.W_q(query).reshape(B, Sq, self.h, -1).permute(0, 2, 1, 3)
        k = self.W_k(key).reshape(B, Sk, self.h, -1).permute(0, 2, 1, 3)
        v = self.W_v(value).reshape(B, Sk, self.h, -1).permute(0, 2, 1, 3)
        scores = torch.einsum("bhqd,bhkd->bhqk", q, k) / math.sqrt(q.shape[-1])
        if mask is not None:
            scores = scores.masked_fill(~mask, float("-inf"))
        weights = scores.softmax(dim=-1)
        self.attention_weights = weights
        out = torch.einsum("bhqk,bhkd->bhqd", weights, v).permute(0, 2, 1, 3).reshape(B, Sq, d)
        return self.W_o(out)


@good("MultiHeadAttention", "F.scaled_dot_product_attention for the output, weights computed separately")
class MHAFusedOutput(nn.Module):
    def __init__(self, d_model: int, num_heads: int) -> None:
        super().__init__()
        if d_model % num_heads:
            raise ValueError("num_heads must divide d_model")
        self.num_heads = num_heads
        self.d_k = d_model // num_heads
        self.W_q = nn.Linear(d_model, d_model)
        self.W_k = nn.Linear(d_model, d_model)
        self.W_v = nn.Linear(d_model, d_model)
        self.W_o = nn.Linear(d_model, d_model)
        self.attention_weights = None

    def _split(self, x):
        return x.unflatten(-1, (self.num_heads, self.d_k)).transpose(1, 2)

    def forward(self, query, key, value, mask=None):
        q, k, v = self._split(self.W_q(query)), self._split(self.W_k(key)), self._split(self.W_v(value))
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        with torch.no_grad():
            scores = q @ k.transpose(-2, -1) / math.sqrt(self.d_k)
            if mask is not None:
                scores = scores.masked_fill(~mask, float("-inf"))
            self.attention_weights = scores.softmax(-1)
        return self.W_o(out.transpose(1, 2).flatten(-2))


@good("MultiHeadAttention", "a loop over heads slicing i*d_k:(i+1)*d_k, torch.cat of the head outputs")
class MHAHeadLoop(nn.Module):
    def __init__(self, d_model: int, num_heads: int) -> None:
        super().__init__()
        if d_model % num_heads != 0:
            raise ValueError(f"cannot split d_model={d_model} into {num_heads} heads")
        self.num_heads, self.d_k = num_heads, d_model // num_heads
        self.W_q = nn.Linear(d_model, d_model)
        self.W_k = nn.Linear(d_model, d_model)
        self.W_v = nn.Linear(d_model, d_model)
        self.W_o = nn.Linear(d_model, d_model)
        self.attention_weights = None

    def forward(self, query, key, value, mask=None):
        Q, K, V = self.W_q(query), self.W_k(key), self.W_v(value)
        outs, weights = [], []
        for i in range(self.num_heads):
            sl = slice(i * self.d_k, (i + 1) * self.d_k)
            scores = Q[..., sl] @ K[..., sl].transpose(1, 2) / math.sqrt(self.d_k)  # [B, Sq, Sk]
            if mask is not None:
                m = mask[:, 0] if mask.dim() == 4 else mask  # heads axis (size 1) dropped
                scores = scores.masked_fill(~m, -1e9)
            w = scores.softmax(-1)
            outs.append(w @ V[..., sl])
            weights.append(w)
        self.attention_weights = torch.stack(weights, dim=1)
        return self.W_o(torch.cat(outs, dim=-1))


# --- chapter 05 -----------------------------------------------------------------------------------


@good("FeedForwardNetwork", "clamp(min=0) as the ReLU, an nn.ReLU-free module")
class FFNClamp(nn.Module):
    def __init__(self, d_model: int, d_ff: int) -> None:
        super().__init__()
        self.W_1 = nn.Linear(d_model, d_ff)
        self.W_2 = nn.Linear(d_ff, d_model)

    def forward(self, x):
        hidden = self.W_1(x).clamp(min=0)
        return self.W_2(hidden)


# --- chapter 06 -----------------------------------------------------------------------------------


@good("LayerNorm", "torch.var_mean(correction=0), rsqrt")
class LNVarMean(nn.Module):
    def __init__(self, d_model: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d_model))
        self.bias = nn.Parameter(torch.zeros(d_model))

    def forward(self, x):
        var, mean = torch.var_mean(x, dim=-1, keepdim=True, correction=0)
        return (x - mean) * torch.rsqrt(var + self.eps) * self.weight + self.bias


@good("LayerNorm", "manual sums divided by d, ** 0.5")
class LNManualSums(nn.Module):
    def __init__(self, d_model: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.d = d_model
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d_model))
        self.bias = nn.Parameter(torch.zeros(d_model))

    def forward(self, x):
        mean = x.sum(-1, keepdim=True) / self.d
        centred = x - mean
        var = (centred**2).sum(-1, keepdim=True) / self.d
        return self.weight * centred / (var + self.eps) ** 0.5 + self.bias


@good("LayerNorm", "F.layer_norm with its own weight and bias")
class LNFunctional(nn.Module):
    def __init__(self, d_model: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d_model))
        self.bias = nn.Parameter(torch.zeros(d_model))

    def forward(self, x):
        return F.layer_norm(x, self.weight.shape, self.weight, self.bias, self.eps)


# --- chapter 07 -----------------------------------------------------------------------------------


@good("EncoderLayer", "nn.LayerNorm for the norms, a sublayer-connection helper")
class EncoderLayerTorchNorm(nn.Module):
    def __init__(self, d_model: int, num_heads: int, d_ff: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, num_heads)
        self.feed_forward = FeedForwardNetwork(d_model, d_ff)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)

    def _residual(self, x, norm, sublayer):
        return norm(x + self.dropout(sublayer(x)))

    def forward(self, x, mask=None):
        x = self._residual(x, self.norm1, lambda y: self.self_attn(y, y, y, mask))
        return self._residual(x, self.norm2, self.feed_forward)


@good("Encoder", "layers as copy.deepcopy clones of one prototype (Annotated Transformer style)")
class EncoderClones(nn.Module):
    def __init__(self, vocab_size, d_model=512, num_layers=6, num_heads=8, d_ff=2048, dropout=0.1,
                 max_seq_length=5000):
        super().__init__()
        self.embedding = TokenEmbedding(vocab_size, d_model)
        self.positional_encoding = PositionalEncoding(d_model, max_seq_length)
        self.dropout = nn.Dropout(p=dropout)
        prototype = EncoderLayer(d_model, num_heads, d_ff, dropout)
        self.layers = nn.ModuleList([copy.deepcopy(prototype) for _ in range(num_layers)])

    def forward(self, src, src_mask=None):
        x = self.embedding(src)
        x = self.positional_encoding(x)
        x = self.dropout(x)
        for layer in self.layers:
            x = layer(x, mask=src_mask)
        return x


# --- chapter 08 -----------------------------------------------------------------------------------


@good("create_padding_mask", ".ne(pad_idx) then two unsqueeze calls")
def padding_mask_ne(seq, pad_idx=0):
    return seq.ne(pad_idx).unsqueeze(1).unsqueeze(2)


@good("create_future_mask", "triu(ones, diagonal=1) == 0 (the blog's spelling)")
def future_mask_triu_eq0(size, device=None):
    return (torch.triu(torch.ones(1, 1, size, size, device=device), diagonal=1) == 0)


@good("create_future_mask", "comparison of two aranges")
def future_mask_arange(size, device=None):
    idx = torch.arange(size, device=device)
    return (idx[None, :] <= idx[:, None]).view(1, 1, size, size)


@good("create_masks", "logical_and of the padding mask and an arange-built future mask")
def masks_logical_and(src, tgt, pad_idx=0):
    src_mask = (src != pad_idx).view(src.size(0), 1, 1, src.size(1))
    T = tgt.size(1)
    future = torch.ones(T, T, dtype=torch.bool, device=tgt.device).tril()
    tgt_mask = torch.logical_and((tgt != pad_idx)[:, None, None, :], future[None, None])
    return src_mask, tgt_mask


@good("DecoderLayer", "nn.LayerNorm norms, named intermediate steps")
class DecoderLayerTorchNorm(nn.Module):
    def __init__(self, d_model: int, num_heads: int, d_ff: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, num_heads)
        self.cross_attn = MultiHeadAttention(d_model, num_heads)
        self.feed_forward = FeedForwardNetwork(d_model, d_ff)
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(d_model), nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x, encoder_output, src_mask=None, tgt_mask=None):
        attended = self.self_attn(query=x, key=x, value=x, mask=tgt_mask)
        x = self.norm1(x + self.dropout(attended))
        memory = encoder_output
        looked_up = self.cross_attn(query=x, key=memory, value=memory, mask=src_mask)
        x = self.norm2(x + self.dropout(looked_up))
        return self.norm3(x + self.dropout(self.feed_forward(x)))


@good("Decoder", "deepcopy clones, keyword arguments to the layers")
class DecoderClones(nn.Module):
    def __init__(self, vocab_size, d_model=512, num_layers=6, num_heads=8, d_ff=2048, dropout=0.1,
                 max_seq_length=5000):
        super().__init__()
        self.embedding = TokenEmbedding(vocab_size, d_model)
        self.positional_encoding = PositionalEncoding(d_model, max_seq_length)
        self.dropout = nn.Dropout(dropout)
        layer = DecoderLayer(d_model, num_heads, d_ff, dropout)
        self.layers = nn.ModuleList(copy.deepcopy(layer) for _ in range(num_layers))

    def forward(self, tgt, encoder_output, src_mask=None, tgt_mask=None):
        x = self.dropout(self.positional_encoding(self.embedding(tgt)))
        for layer in self.layers:
            x = layer(x, encoder_output=encoder_output, src_mask=src_mask, tgt_mask=tgt_mask)
        return x


# --- chapter 09 -----------------------------------------------------------------------------------


@good("Transformer", "ties first (embedding := generator weight), then Xavier via named_parameters")
class TransformerTieFirst(nn.Module):
    def __init__(self, src_vocab_size, tgt_vocab_size, d_model=512, num_layers=6, num_heads=8, d_ff=2048,
                 dropout=0.1, max_seq_length=5000, pad_idx=0, share_embeddings=False):
        super().__init__()
        if share_embeddings and src_vocab_size != tgt_vocab_size:
            raise ValueError("share_embeddings needs src_vocab_size == tgt_vocab_size")
        self.pad_idx = pad_idx
        self.encoder = Encoder(src_vocab_size, d_model, num_layers, num_heads, d_ff, dropout, max_seq_length)
        self.decoder = Decoder(tgt_vocab_size, d_model, num_layers, num_heads, d_ff, dropout, max_seq_length)
        self.generator = nn.Linear(d_model, tgt_vocab_size)
        self.decoder.embedding.embedding.weight = self.generator.weight
        if share_embeddings:
            self.encoder.embedding.embedding.weight = self.generator.weight
        for _, p in self.named_parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)

    def encode(self, src, src_mask=None):
        return self.encoder(src, src_mask)

    def decode(self, tgt, memory, src_mask=None, tgt_mask=None):
        return self.decoder(tgt, memory, src_mask, tgt_mask)

    def forward(self, src, tgt):
        src_mask, tgt_mask = create_masks(src, tgt, pad_idx=self.pad_idx)
        hidden = self.decode(tgt, self.encode(src, src_mask), src_mask, tgt_mask)
        return self.generator(hidden)


# --- chapter 10 -----------------------------------------------------------------------------------


@good("TransformerLRScheduler", "written with rsqrt-style 1/sqrt, counter incremented before use")
class SchedulerRsqrt:
    def __init__(self, optimizer, d_model, warmup_steps=4000, factor=1.0):
        self.optimizer = optimizer
        self.scale = factor / math.sqrt(d_model)
        self.warmup_steps = warmup_steps
        self._step = 0

    def get_lr(self, step_num):
        return self.scale * min(1 / math.sqrt(step_num), step_num / (self.warmup_steps * math.sqrt(self.warmup_steps)))

    def step(self, step_num=None):
        if step_num is None:
            self._step += 1
        else:
            self._step = step_num
        lr = self.get_lr(self._step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        return lr


@good("LabelSmoothingLoss", "an explicit smoothed target distribution, cross-entropy by sum over V")
class LSTrueDistribution(nn.Module):
    def __init__(self, smoothing: float = 0.1, ignore_index: int = 0) -> None:
        super().__init__()
        self.smoothing = smoothing
        self.ignore_index = ignore_index

    def forward(self, logits, target):
        V = logits.shape[-1]
        log_p = F.log_softmax(logits.reshape(-1, V), dim=-1)
        target = target.reshape(-1)
        keep = target != self.ignore_index
        log_p, target = log_p[keep], target[keep]
        true_dist = torch.full_like(log_p, self.smoothing / V)
        true_dist[torch.arange(target.numel()), target] += 1.0 - self.smoothing
        return -(true_dist * log_p).sum() / keep.sum()


@good("LabelSmoothingLoss", "F.cross_entropy with label_smoothing and ignore_index")
class LSCrossEntropy(nn.Module):
    def __init__(self, smoothing: float = 0.1, ignore_index: int = 0) -> None:
        super().__init__()
        self.smoothing = smoothing
        self.ignore_index = ignore_index

    def forward(self, logits, target):
        return F.cross_entropy(logits.flatten(0, -2), target.flatten(), ignore_index=self.ignore_index,
                               label_smoothing=self.smoothing)


# --- chapter 11 -----------------------------------------------------------------------------------


@good("greedy_decode", "re-encodes and re-decodes everything at every step, Python lists per row")
@torch.no_grad()
def greedy_recompute(model, src, max_len, start_idx, end_idx, pad_idx=0):
    rows = [[start_idx] for _ in range(src.size(0))]
    done = [False] * src.size(0)
    while len(rows[0]) < max_len and not all(done):
        ys = torch.tensor(rows, dtype=torch.long, device=src.device)
        src_mask, tgt_mask = create_masks(src, ys, pad_idx)
        memory = model.encode(src, src_mask)
        logits = model.generator(model.decode(ys, memory, src_mask, tgt_mask))[:, -1]
        best = logits.argmax(-1).tolist()
        for b, token in enumerate(best):
            rows[b].append(pad_idx if done[b] else token)
            done[b] = done[b] or token == end_idx
    return torch.tensor(rows, dtype=torch.long, device=src.device)


@good("beam_search", "hypotheses as (score, list) pairs, sorted with Python")
@torch.no_grad()
def beam_lists(model, src, max_len, start_idx, end_idx, beam_size=4, length_penalty=0.6, pad_idx=0):
    src_mask = (src != pad_idx)[:, None, None, :]
    memory = model.encode(src, src_mask)

    def penalised(logp: float, n_tokens: int) -> float:
        return logp / ((5 + n_tokens) / 6) ** length_penalty

    alive = [(0.0, [start_idx])]
    done = []
    while alive and len(alive[0][1]) < max_len and len(done) < beam_size:
        ys = torch.tensor([t for _, t in alive])
        k = len(alive)
        _, tgt_mask = create_masks(src.expand(k, -1), ys, pad_idx)
        out = model.decode(ys, memory.expand(k, -1, -1), src_mask.expand(k, -1, -1, -1), tgt_mask)
        logp = torch.log_softmax(model.generator(out[:, -1]).float(), dim=-1)
        flat = [(score + lp, tokens, tok) for (score, tokens), row in zip(alive, logp.tolist())
                for tok, lp in enumerate(row)]
        flat.sort(key=lambda c: -c[0])
        alive = []
        for score, tokens, tok in flat[: 2 * beam_size]:
            if tok == end_idx:
                done.append((penalised(score, len(tokens)), tokens + [tok]))
            else:
                alive.append((score, tokens + [tok]))
            if len(alive) == beam_size or len(done) >= beam_size:
                break
    if not done:
        done = [(penalised(s, len(t) - 1), t) for s, t in alive]
    return torch.tensor(max(done, key=lambda c: c[0])[1], dtype=torch.long)


# --- a few more roads ---------------------------------------------------------------------------


@good("LayerNorm", "std with unbiased=False, eps added to the variance inside the square root")
class LNStd(nn.Module):
    def __init__(self, d_model: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d_model))
        self.bias = nn.Parameter(torch.zeros(d_model))

    def forward(self, x):
        mu = x.mean(dim=-1, keepdim=True)
        sigma = torch.sqrt(x.std(dim=-1, unbiased=False, keepdim=True) ** 2 + self.eps)
        return self.weight * ((x - mu) / sigma) + self.bias


@good("MultiHeadAttention", "accepts 3-D masks too (unsqueezes a heads axis only when missing)")
class MHAFlexibleMask(nn.Module):
    def __init__(self, d_model: int, num_heads: int) -> None:
        super().__init__()
        if d_model % num_heads:
            raise ValueError(f"{num_heads} heads do not divide d_model={d_model}")
        self.h, self.d_k = num_heads, d_model // num_heads
        self.W_q, self.W_k = nn.Linear(d_model, d_model), nn.Linear(d_model, d_model)
        self.W_v, self.W_o = nn.Linear(d_model, d_model), nn.Linear(d_model, d_model)
        self.attention_weights = None

    def forward(self, query, key, value, mask=None):
        if mask is not None and mask.dim() == 3:
            mask = mask.unsqueeze(1)
        B = query.size(0)
        q, k, v = [W(t).view(B, -1, self.h, self.d_k).transpose(1, 2)
                   for W, t in ((self.W_q, query), (self.W_k, key), (self.W_v, value))]
        out, weights = _attend(q, k, v, mask)
        self.attention_weights = weights.detach()
        return self.W_o(out.transpose(1, 2).contiguous().view(B, -1, self.h * self.d_k))


def _attend(q, k, v, mask):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))
    if mask is not None:
        scores = scores.masked_fill(mask.logical_not(), -1e9)
    weights = scores.softmax(-1)
    return weights @ v, weights


@good("Transformer", "shares the whole TokenEmbedding module when share_embeddings; forward calls encoder/decoder")
class TransformerShareModule(nn.Module):
    def __init__(self, src_vocab_size, tgt_vocab_size, d_model=512, num_layers=6, num_heads=8, d_ff=2048,
                 dropout=0.1, max_seq_length=5000, pad_idx=0, share_embeddings=False):
        super().__init__()
        if share_embeddings and src_vocab_size != tgt_vocab_size:
            raise ValueError("shared embeddings need equal vocabularies")
        self.pad_idx = pad_idx
        self.encoder = Encoder(src_vocab_size, d_model, num_layers, num_heads, d_ff, dropout, max_seq_length)
        self.decoder = Decoder(tgt_vocab_size, d_model, num_layers, num_heads, d_ff, dropout, max_seq_length)
        self.generator = nn.Linear(d_model, tgt_vocab_size)
        if share_embeddings:
            self.encoder.embedding = self.decoder.embedding
        self.generator.weight = self.decoder.embedding.embedding.weight
        for p in self.parameters():
            if p.ndim >= 2:
                nn.init.xavier_uniform_(p)

    def encode(self, src, src_mask=None):
        return self.encoder(src, src_mask)

    def decode(self, tgt, memory, src_mask=None, tgt_mask=None):
        return self.decoder(tgt, memory, src_mask, tgt_mask)

    def forward(self, src, tgt):
        src_mask, tgt_mask = create_masks(src, tgt, self.pad_idx)
        memory = self.encoder(src, src_mask)
        return self.generator(self.decoder(tgt, memory, src_mask, tgt_mask))


@good("greedy_decode", "a for loop of max_len - 1 steps, torch.where for the padding, memory computed once")
@torch.no_grad()
def greedy_where(model, src, max_len, start_idx, end_idx, pad_idx=0):
    src_mask = (src != pad_idx).unsqueeze(1).unsqueeze(1)
    memory = model.encode(src, src_mask)
    out = src.new_full((src.size(0), 1), start_idx)
    alive = torch.ones(src.size(0), dtype=torch.bool, device=src.device)
    for _ in range(max_len - 1):
        _, tgt_mask = create_masks(src, out, pad_idx)
        logits = model.generator(model.decode(out, memory, src_mask, tgt_mask)[:, -1, :])
        token = torch.where(alive, logits.argmax(dim=-1), torch.full_like(alive, pad_idx, dtype=torch.long))
        out = torch.cat((out, token[:, None]), dim=1)
        alive = alive & (token != end_idx)
        if not alive.any():
            break
    return out
