"""Patterns observed in SamLynnEvans/Transformer ("How to code The Transformer in PyTorch"): ``Embed.py``,
``Sublayers.py``, ``Models.py``, ``Batch.py`` and ``Beam.py``: embeddings scaled inside the positional
encoder (whose exponent is doubled), 3-D masks and a beam search that keeps extending finished hypotheses.

Each case reproduces, in our own code, the behaviour its ``pattern`` describes; no code is copied.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from solutions import EncoderLayer
from solutions import create_future_mask as reference_future_mask
from solutions import create_padding_mask as reference_padding_mask

from . import case

COMMIT = "49e01800aab01dcd83403a056c059f429a7d7512"


def src(path):
    return dict(repo="SamLynnEvans/Transformer", path=path, commit=COMMIT)


@case(
    "TokenEmbedding",
    "variant",
    source=src("Embed.py"),
    why="a plain lookup: the sqrt(d_model) scaling lives in its positional encoder instead",
    expect=r"sqrt|square root|factor that depends on d_model|scale",
    pattern="`embedding` = nn.Embedding(vocab_size, d_model); forward is the plain lookup (the sqrt(d_model) "
    "factor is applied later, by its positional encoder).",
    differences=["no sqrt(d_model) factor here (it is in the positional encoder)"],
)
class TokenEmbedding(nn.Module):
    def __init__(self, vocab_size, d_model):
        super().__init__()
        self.d_model = d_model
        self.embedding = nn.Embedding(vocab_size, d_model)

    def forward(self, tokens):
        return self.embedding(tokens)


@case(
    "PositionalEncoding",
    "buggy",
    source=src("Embed.py"),
    why="the exponent is doubled: i already runs over the even features 0, 2, 4, ..., and the code uses "
    "10000 ** (2i/d_model) (and 2(i+1)/d_model for the cosine); it also multiplies x by sqrt(d_model) and "
    "applies dropout inside",
    expect=r"exponent|2i/d_model|frequenc|wavelength",
    pattern="Constructor (d_model, max_seq_length=200, dropout=0.1). For each EVEN feature index i the table "
    "holds pe[pos, i] = sin(pos / 10000^(2i/d)) and pe[pos, i+1] = cos(pos / 10000^(2(i+1)/d)) (exponent "
    "doubled, computed in double, stored float32), buffer [1, max_len, d]. forward: x * sqrt(d_model) + "
    "pe[:, :S], then its own dropout.",
    differences=[
        "exponent 2i/d where i is already the even feature index (doubled)",
        "cosine uses the next index's exponent",
        "multiplies x by sqrt(d_model)",
        "dropout inside",
        "default max_seq_length 200",
    ],
)
class PositionalEncoding(nn.Module):
    def __init__(self, d_model, max_seq_length=200, dropout=0.1):
        super().__init__()
        self.d_model = d_model
        self.dropout = nn.Dropout(dropout)
        pos = torch.arange(max_seq_length, dtype=torch.float64)[:, None]
        even = torch.arange(0, d_model, 2, dtype=torch.float64)
        table = torch.zeros(max_seq_length, d_model)
        table[:, 0::2] = torch.sin(pos / 10000 ** (2 * even / d_model)).float()
        table[:, 1::2] = torch.cos(pos / 10000 ** (2 * (even + 1) / d_model)).float()
        self.register_buffer("pe", table[None])

    def forward(self, x):
        x = x * math.sqrt(self.d_model)
        return self.dropout(x + self.pe[:, : x.size(1)])


@case(
    "MultiHeadAttention",
    "variant",
    source=src("Sublayers.py"),
    why="written for 3-D masks: it adds the head axis itself with mask.unsqueeze(1), which breaks the "
    "contract's 4-D masks; it keeps no attention weights; dropout on the attention weights",
    expect=r"mask.{0,80}(4-D|four|\[B, ?1, ?1|shape|unsqueeze|head axis)|(4-D|\[B, ?1, ?1).{0,80}mask|"
    r"attention_weights",
    reject=r"reshaped using the QUERY",
    pattern="Linear maps created in the order W_q, W_v, W_k, a dropout, W_o (all with bias); no divisibility "
    "check. Heads via view(B, -1, h, d_k).transpose(1, 2); scores / sqrt(d_k) with the mask given "
    "unsqueeze(1) and -1e9 where it is 0, softmax, dropout on the weights, @ v; merged with "
    "view(B, -1, d_model), W_o. The weights are not kept.",
    differences=[
        "mask.unsqueeze(1): written for 3-D masks",
        "no attention_weights attribute",
        "dropout on the attention weights",
    ],
)
class MultiHeadAttention(nn.Module):
    def __init__(self, d_model, num_heads, dropout=0.1):
        super().__init__()
        self.d_model = d_model
        self.h = num_heads
        self.d_k = d_model // num_heads
        self.W_q = nn.Linear(d_model, d_model)
        self.W_v = nn.Linear(d_model, d_model)
        self.W_k = nn.Linear(d_model, d_model)
        self.dropout = nn.Dropout(dropout)
        self.W_o = nn.Linear(d_model, d_model)

    def forward(self, q, k, v, mask=None):
        b = q.size(0)
        keys = self.W_k(k).view(b, -1, self.h, self.d_k).transpose(1, 2)
        queries = self.W_q(q).view(b, -1, self.h, self.d_k).transpose(1, 2)
        values = self.W_v(v).view(b, -1, self.h, self.d_k).transpose(1, 2)
        logits = queries @ keys.transpose(-2, -1) / math.sqrt(self.d_k)
        if mask is not None:
            logits = logits.masked_fill(mask.unsqueeze(1) == 0, -1e9)
        mixed = self.dropout(F.softmax(logits, dim=-1)) @ values
        return self.W_o(mixed.transpose(1, 2).contiguous().view(b, -1, self.d_model))


class _UnbiasedNorm(nn.Module):
    def __init__(self, d_model, eps=1e-6):
        super().__init__()
        self.alpha = nn.Parameter(torch.ones(d_model))
        self.bias = nn.Parameter(torch.zeros(d_model))
        self.eps = eps

    def forward(self, x):
        z = (x - x.mean(dim=-1, keepdim=True)) / (x.std(dim=-1, keepdim=True) + self.eps)
        return self.alpha * z + self.bias


@case(
    "Encoder",
    "variant",
    source=src("Models.py"),
    why="a final norm after the stack (its layers are pre-norm); the embedding dropout and the sqrt(d_model) "
    "scaling live inside its positional encoder (no `dropout` of its own)",
    expect=r"final (LayerNorm|norm)|extra LayerNorm|after the last layer|dropout",
    pattern="embedding = this module's TokenEmbedding; positional_encoding = this module's "
    "PositionalEncoding(d_model, dropout=dropout) (scaling and dropout inside, default length); no dropout of "
    "its own; layers = the contract's EncoderLayer (reference), run by index for range(num_layers); a final "
    "norm `norm` with parameters alpha, bias (unbiased std, eps 1e-6 outside the root).",
    differences=[
        "a final norm after the stack (norm.alpha, norm.bias)",
        "no `dropout` attribute: the embedding dropout is inside the positional encoder",
    ],
)
class Encoder(nn.Module):
    def __init__(self, vocab_size, d_model=512, num_layers=6, num_heads=8, d_ff=2048, dropout=0.1, max_seq_length=5000):
        super().__init__()
        self.num_layers = num_layers
        self.embedding = TokenEmbedding(vocab_size, d_model)
        self.positional_encoding = PositionalEncoding(d_model, dropout=dropout)
        self.layers = nn.ModuleList([EncoderLayer(d_model, num_heads, d_ff, dropout) for _ in range(num_layers)])
        self.norm = _UnbiasedNorm(d_model)

    def forward(self, src, src_mask=None):
        h = self.positional_encoding(self.embedding(src))
        for i in range(self.num_layers):
            h = self.layers[i](h, src_mask)
        return self.norm(h)


@case(
    "create_masks",
    "variant",
    source=src("Batch.py"),
    why="3-D masks: src [B, 1, S], tgt [B, T, T] (its attention adds the head axis)",
    expect=r"\[B, ?1, ?1, ?S\]|\[B, ?1, ?T, ?T\]|shape",
    pattern="src_mask = src != pad_idx with an axis before the last ([B, 1, S]); tgt_mask = the same for the "
    "target AND a bool [1, T, T] lower triangle ([B, T, T]); tgt_mask is None when tgt is None.",
    differences=["3-D masks [B, 1, S] and [B, T, T]"],
)
def create_masks(src, tgt, pad_idx=0):
    src_keep = (src != pad_idx)[:, None, :]
    if tgt is None:
        return src_keep, None
    n = tgt.size(1)
    no_peek = torch.ones(1, n, n, dtype=torch.bool, device=src.device).tril()
    return src_keep, (tgt != pad_idx)[:, None, :] & no_peek


@case(
    "beam_search",
    "buggy",
    source=src("Beam.py"),
    why="hypotheses that emitted the end token keep being extended and scored; it only stops when all k "
    "contain one; the penalty is 1/len^alpha; when no beam finishes it indexes an empty nonzero() (IndexError)",
    expect=r"finished|after (the|its) end|end token|length penalty",
    reject=r"With beam_size=1 your beam search should give exactly the greedy result",
    pattern="The contract's reference mask functions. Start: the top-k of softmax(generator(decode([[start]]))) "
    "fill column 1 of a zero [k, max_len] long buffer (column 0 start_idx), log-scores as float32 [1, k]; "
    "the memory copied into a float32 [k, S, d]. Each step: per row top-k, math.log of the probabilities + "
    "row score, best k of k^2; rows holding end_idx are extended too. When every row holds end_idx "
    "(length = first end position) the best score / length^alpha wins. Returns row[:first end + 1], "
    "using row 0 when the loop ran out (an IndexError when it has no end token).",
    differences=[
        "finished hypotheses keep being extended and scored",
        "length penalty 1/len^alpha",
        "IndexError when no hypothesis finishes",
    ],
)
def beam_search(model, src, max_len, start_idx, end_idx, beam_size=4, length_penalty=0.6, pad_idx=0):
    k = beam_size
    device = src.device

    def step_probs(prefix, memory, src_mask):
        future = reference_future_mask(prefix.size(1), device)
        return F.softmax(model.generator(model.decode(prefix, memory, src_mask, future)), dim=-1)[:, -1]

    src_mask = reference_padding_mask(src, pad_idx)
    memory = model.encode(src, src_mask)
    p, tok = step_probs(torch.tensor([[start_idx]], device=device), memory, src_mask).topk(k)
    log_scores = torch.tensor([[math.log(x) for x in p[0].tolist()]])
    beams = torch.zeros(k, max_len, dtype=torch.long, device=device)
    beams[:, 0] = start_idx
    beams[:, 1] = tok[0]
    memories = torch.zeros(k, memory.size(-2), memory.size(-1), device=device)
    memories[:] = memory[0]
    winner = None
    for t in range(2, max_len):
        p, tok = step_probs(beams[:, :t], memories, src_mask).topk(k)
        logs = torch.tensor([math.log(x) for x in p.reshape(-1).tolist()]).view(k, k)
        best, flat = (logs + log_scores.t()).view(-1).topk(k)
        parent, pick = flat // k, flat % k
        beams[:, :t] = beams[parent, :t]
        beams[:, t] = tok[parent, pick]
        log_scores = best.unsqueeze(0)
        first_end = torch.zeros(k, dtype=torch.long, device=device)
        for r, c in (beams == end_idx).nonzero().tolist():
            if first_end[r] == 0:
                first_end[r] = c
        if int((first_end > 0).sum()) == k:
            penalised = log_scores * (1 / first_end.type_as(log_scores) ** length_penalty)
            winner = int(penalised.argmax(dim=1)[0])
            break
    row = beams[0 if winner is None else winner]
    end = int((row == end_idx).nonzero()[0])
    return row[: end + 1]
