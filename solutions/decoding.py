"""Inference (section 6.1): greedy decoding and beam search with a length penalty.

Both use only three parts of the model, so any model with this interface works:
``model.encode(src, src_mask)``, ``model.decode(tgt, memory, src_mask, tgt_mask)`` and
``model.generator``. Put the model in ``eval()`` mode first (dropout off).
"""

from __future__ import annotations

import torch

from .model import create_masks, create_padding_mask


def _next_token_logits(model, ys, memory, src, src_mask, pad_idx):
    """Logits for the token after the last one of every row of ``ys`` [B, L] -> [B, V]."""
    _, tgt_mask = create_masks(src, ys, pad_idx)
    out = model.decode(ys, memory, src_mask, tgt_mask)  # [B, L, d]
    return model.generator(out[:, -1])  # [B, V]


@torch.no_grad()
def greedy_decode(
    model,
    src: torch.Tensor,
    max_len: int,
    start_idx: int,
    end_idx: int,
    pad_idx: int = 0,
) -> torch.Tensor:
    """Pick the most likely next token at every step (section 6.1, without the beam).

    Shapes: ``src`` [B, S] -> long [B, L] with ``L <= max_len``. Every row starts with
    ``start_idx``; a row that has emitted ``end_idx`` is padded with ``pad_idx``; decoding stops
    early when every row has finished.
    """
    src_mask = create_padding_mask(src, pad_idx)
    memory = model.encode(src, src_mask)
    ys = torch.full((src.size(0), 1), start_idx, dtype=torch.long, device=src.device)
    finished = torch.zeros(src.size(0), dtype=torch.bool, device=src.device)
    while ys.size(1) < max_len:
        logits = _next_token_logits(model, ys, memory, src, src_mask, pad_idx)
        next_token = logits.argmax(dim=-1).masked_fill(finished, pad_idx)  # [B]
        ys = torch.cat([ys, next_token.unsqueeze(1)], dim=1)
        finished = finished | (next_token == end_idx)
        if finished.all():
            break
    return ys


def length_penalty_score(log_prob: float, length: int, alpha: float) -> float:
    """Wu et al. (2016): ``log P / ((5 + |Y|) / 6)^alpha``, ``|Y|`` counting the tokens after the start."""
    return log_prob / ((5 + length) / 6) ** alpha


@torch.no_grad()
def beam_search(
    model,
    src: torch.Tensor,
    max_len: int,
    start_idx: int,
    end_idx: int,
    beam_size: int = 4,
    length_penalty: float = 0.6,
    pad_idx: int = 0,
) -> torch.Tensor:
    """Keep the ``beam_size`` best partial translations at every step (section 6.1).

    A partial hypothesis is scored by its summed log-probability; a finished one (it emitted
    ``end_idx``) by ``logP / ((5+|Y|)/6)^length_penalty``. Search stops when ``beam_size``
    hypotheses have finished or ``max_len`` tokens are reached.

    Shapes: ``src`` [1, S] -> long [L] (starting with ``start_idx``, ``L <= max_len``).
    ``beam_size=1`` gives the greedy result.
    """
    if src.size(0) != 1:
        raise ValueError(f"beam_search decodes one sentence at a time: src must be [1, S], got {list(src.shape)}.")
    src_mask = create_padding_mask(src, pad_idx)
    memory = model.encode(src, src_mask)
    beams = torch.full((1, 1), start_idx, dtype=torch.long, device=src.device)  # [k, L]
    scores = torch.zeros(1, device=src.device)  # [k] summed log-probabilities
    finished: list[tuple[float, torch.Tensor]] = []  # (length-penalised score, tokens)

    while beams.size(1) < max_len and len(finished) < beam_size:
        k = beams.size(0)
        logits = _next_token_logits(
            model, beams, memory.expand(k, -1, -1), src.expand(k, -1), src_mask.expand(k, -1, -1, -1), pad_idx
        )
        log_probs = torch.log_softmax(logits.float(), dim=-1)  # [k, V]
        candidates = (scores.unsqueeze(1) + log_probs).flatten()  # [k * V]
        top_scores, top_ids = candidates.topk(min(2 * beam_size, candidates.numel()))
        vocab_size = log_probs.size(1)

        next_beams, next_scores = [], []
        for score, flat_id in zip(top_scores.tolist(), top_ids.tolist()):
            tokens = torch.cat([beams[flat_id // vocab_size], beams.new_tensor([flat_id % vocab_size])])
            if flat_id % vocab_size == end_idx:
                finished.append((length_penalty_score(score, tokens.numel() - 1, length_penalty), tokens))
            else:
                next_beams.append(tokens)
                next_scores.append(score)
            if len(next_beams) == beam_size or len(finished) >= beam_size:
                break
        if not next_beams:
            break
        beams = torch.stack(next_beams)
        scores = torch.tensor(next_scores, device=src.device)

    if not finished:  # nothing ended before max_len: take the best unfinished hypothesis
        finished = [
            (length_penalty_score(s, beams.size(1) - 1, length_penalty), b) for s, b in zip(scores.tolist(), beams)
        ]
    return max(finished, key=lambda pair: pair[0])[1]
