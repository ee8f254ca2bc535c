"""Held-out round 2 (issue 22): patterns observed in Shaundashuaibi/Project-Transformer (``transformer_model.py``,
a completed course assignment): True = blocked masks combined with OR, a batched greedy decoder that overwrites
everything after the first end token with padding, a beam search that ranks hypotheses by their raw summed
log-probability and forbids the end token at the first step, and an encoder whose post-norm mode normalises the
embeddings before the first layer.

Each case reproduces, in our own code, the behaviour its ``pattern`` describes; no code is copied.
Expectations were written before anything was graded.
"""

import torch
import torch.nn.functional as F
from torch import nn

from solutions import EncoderLayer, LayerNorm, PositionalEncoding, TokenEmbedding
from solutions import create_future_mask as reference_future_mask
from solutions import create_padding_mask as reference_padding_mask

from . import PASSES, case

SRC = dict(
    repo="Shaundashuaibi/Project-Transformer",
    path="transformer_model.py",
    commit="b81946621db7fd47334296568be0926051b77618",
)


@case(
    "create_masks",
    "variant",
    source=SRC,
    why="True = blocked masks (padding == pad, causal = triu(1)), combined with OR, and three-dimensional: "
    "src [B, 1, S], tgt [B, T, T]; the contract's are True = may attend, [B, 1, 1, S] and [B, 1, T, T]",
    expect=r"invert|opposite|revers|flipped|True (=|means|for|where|marks|on|at) (the )?(pad|padding|masked|blocked|"
    r"future)|convention|negat",
    pattern="(The model's create_pad_mask / create_causal_mask and the combination in forward, as one function.) "
    "src_mask = (src == pad).unsqueeze(1) [B, 1, S]; tgt_pad = (tgt == pad).unsqueeze(1) [B, 1, T]; causal = "
    "triu(ones(T, T), diagonal=1).bool().unsqueeze(0) [1, T, T]; tgt_mask = tgt_pad | causal [B, T, T]. The "
    "attention then fills the scores where the mask is True.",
    differences=["True = blocked", "OR of the blocked positions", "3-D masks (no head axis)"],
)
def create_masks(src, tgt, pad_idx=0):
    src_mask = (src == pad_idx).unsqueeze(1)
    causal = torch.triu(torch.ones(tgt.size(1), tgt.size(1), device=tgt.device), diagonal=1).bool().unsqueeze(0)
    return src_mask, (tgt == pad_idx).unsqueeze(1) | causal


@case(
    "greedy_decode",
    "correct",
    source=SRC,
    why="batched argmax decoding that stops when every row contains the end token (or the length reaches max_len) "
    "and then replaces every token after a row's first end token with pad_idx",
    expect=PASSES,
    pattern="(Adapted to the contract's interface; the original is a model method using its own embeddings and "
    "True = blocked masks.) Encode once; ys = [[start]] * B; repeat: decode with a causal mask, argmax of the "
    "last position appended (finished rows keep getting tokens); stop when every row has an end token or ys has "
    "max_len columns. Then a position mask finds each row's first end token and masked_fill sets every later "
    "position to pad_idx. (It appends before it checks the length, so with max_len = 1 it would return two "
    "tokens; max_len >= 2 is assumed.)",
    differences=["finished rows keep decoding; their tokens after the end are replaced with pad_idx afterwards"],
)
@torch.no_grad()
def greedy_decode(model, src, max_len, start_idx, end_idx, pad_idx=0):
    src_mask = reference_padding_mask(src, pad_idx)
    memory = model.encode(src, src_mask)
    ys = torch.full((src.size(0), 1), start_idx, dtype=src.dtype, device=src.device)
    for _ in range(max_len):
        hidden = model.decode(ys, memory, src_mask, reference_future_mask(ys.size(1), device=src.device))
        ys = torch.cat((ys, model.generator(hidden[:, -1, :]).argmax(dim=-1, keepdim=True)), dim=-1)
        if bool((ys == end_idx).any(dim=-1).all()) or ys.size(1) >= max_len:
            break
    is_end = torch.cat([ys == end_idx, torch.ones(ys.size(0), 1, dtype=torch.bool, device=ys.device)], dim=-1)
    positions = torch.arange(is_end.size(-1), device=ys.device).unsqueeze(0)
    first_end = torch.where(is_end, positions, torch.full_like(positions, is_end.size(-1))).min(dim=-1).values
    return ys.masked_fill(positions[:, :-1] > first_end.unsqueeze(-1), pad_idx)


@case(
    "beam_search",
    "buggy",
    source=SRC,
    why="hypotheses are ranked and chosen by their raw summed log-probability: length_penalty is never applied "
    "(the ((5+|Y|)/6)^alpha normalisation is missing), and the end token is forbidden at the first step",
    expect=r"length.?penalty|\(\(5 ?\+|normali[sz]|raw (sum|log)|summed log|(un|not )normali[sz]ed|first step",
    reject=r"never stops|does not stop",
    pattern="(Adapted to the contract's interface, one sentence; the original is batched with beam size k=5 and "
    "returns a padded batch.) First step: log_softmax of the start token's logits, the end token's set to "
    "-inf, top beam_size tokens start the beams. Each step: every alive beam proposes its top 2 * beam_size "
    "tokens; candidates are scored by the sum of their log-probabilities; the best 2 * beam_size are kept, those "
    "ending in end_idx move to a finished list (kept to the best beam_size by the same raw score), the rest are "
    "alive (the best beam_size go on). Stops when the best finished score beats the best alive one, or at "
    "max_len; returns the best finished (else the best alive) sequence, start token included.",
    differences=[
        "no length penalty (raw summed log-probability)",
        "end token forbidden at the first step",
        "2 * beam_size candidates per beam",
    ],
)
@torch.no_grad()
def beam_search(model, src, max_len, start_idx, end_idx, beam_size=4, length_penalty=0.6, pad_idx=0):
    src_mask = reference_padding_mask(src, pad_idx)
    memory = model.encode(src, src_mask)

    def log_probs(seq):
        ys = torch.tensor([seq], dtype=torch.long, device=src.device)
        hidden = model.decode(ys, memory, src_mask, reference_future_mask(len(seq), device=src.device))
        return F.log_softmax(model.generator(hidden[:, -1]), dim=-1)[0]

    first = log_probs([start_idx]).clone()
    first[end_idx] = -float("inf")
    top = first.topk(beam_size)
    alive = [([start_idx, int(t)], float(v)) for v, t in zip(top.values, top.indices)]
    finished = []
    while alive and len(alive[0][0]) < max_len:
        candidates = []
        for seq, score in alive:
            lp = log_probs(seq)
            best = lp.topk(min(2 * beam_size, lp.numel()))
            candidates += [(seq + [int(t)], score + float(v)) for v, t in zip(best.values, best.indices)]
        candidates = sorted(candidates, key=lambda c: c[1], reverse=True)[: 2 * beam_size]
        finished += [c for c in candidates if c[0][-1] == end_idx]
        finished = sorted(finished, key=lambda c: c[1], reverse=True)[:beam_size]
        alive = [c for c in candidates if c[0][-1] != end_idx][:beam_size]
        if finished and (not alive or finished[0][1] > alive[0][1]):
            break
    best = finished[0] if finished else alive[0]
    return torch.tensor(best[0], dtype=torch.long, device=src.device)


@case(
    "Encoder",
    "variant",
    source=SRC,
    why="in its post-norm mode the encoder applies a LayerNorm to the embeddings BEFORE the first layer (its "
    "pre-norm mode applies it after the last); the contract's Encoder has no LayerNorm of its own",
    expect=r"(layer ?norm|norm)\b.{0,60}(before the first layer|embedding|input)|(extra|additional) (layer ?norm|"
    r"norm)|(input|embeddings?) (is |are )?normali[sz]ed|pre-?norm",
    pattern="(Adapted: built from the contract's parts in post-norm mode; the original stacks its own layers and "
    "takes the embeddings from the model.) embedding, positional encoding, dropout, layers, and norm = "
    "LayerNorm(d_model); forward: x = dropout(pe(embedding(src))); x = norm(x); then the layers; no norm after "
    "the last layer.",
    differences=["LayerNorm on the embeddings before the first layer"],
)
class Encoder(nn.Module):
    def __init__(self, vocab_size, d_model=512, num_layers=6, num_heads=8, d_ff=2048, dropout=0.1, max_seq_length=5000):
        super().__init__()
        self.embedding = TokenEmbedding(vocab_size, d_model)
        self.positional_encoding = PositionalEncoding(d_model, max_seq_length)
        self.dropout = nn.Dropout(dropout)
        self.layers = nn.ModuleList([EncoderLayer(d_model, num_heads, d_ff, dropout) for _ in range(num_layers)])
        self.norm = LayerNorm(d_model)

    def forward(self, src, src_mask=None):
        x = self.norm(self.dropout(self.positional_encoding(self.embedding(src))))
        for layer in self.layers:
            x = layer(x, src_mask)
        return x
