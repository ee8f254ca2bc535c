"""Batches of similar-length sentence pairs that fill a token budget (section 5.1).

The paper: "Sentence pairs were batched together by approximate sequence length. Each training batch
contained a set of sentence pairs containing approximately 25000 source tokens and 25000 target
tokens." Grouping by length wastes little compute on padding; a token budget (not a fixed number of
sentences) keeps the work per step about constant.

Everything here is deterministic: the batches of epoch ``e`` depend only on ``(seed, e)``, so a
resumed run finds the same data order from an (epoch, batch index) position alone.
"""

from __future__ import annotations

import random

import torch

from ..model import create_masks
from .bpe import PAD_IDX


def make_batches(lengths: list[tuple[int, int]], max_tokens: int, seed: int, epoch: int) -> list[list[int]]:
    """Group example indices into batches of similar length, each with at most ``max_tokens`` tokens.

    ``lengths[i]`` = (source length, target length) of example ``i``. A batch's size counts padding:
    ``len(batch) * max(longest source, longest target) <= max_tokens``. Ties in length are broken at
    random and the batch order is shuffled, both from ``seed`` and ``epoch``.
    """
    rng = random.Random(seed * 1_000_003 + epoch)
    noise = [rng.random() for _ in lengths]
    order = sorted(range(len(lengths)), key=lambda i: (max(lengths[i]), lengths[i][0], noise[i]))
    batches: list[list[int]] = []
    current: list[int] = []
    longest = 0
    for i in order:
        longest_if_added = max(longest, *lengths[i])
        if current and (len(current) + 1) * longest_if_added > max_tokens:
            batches.append(current)
            current, longest_if_added = [], max(lengths[i])
        current.append(i)
        longest = longest_if_added
    if current:
        batches.append(current)
    rng.shuffle(batches)
    return batches


def pad(sequences: list[list[int]], pad_idx: int = PAD_IDX) -> torch.Tensor:
    """Right-pad token lists to one length: -> long [B, L_max]."""
    longest = max(len(s) for s in sequences)
    return torch.tensor([s + [pad_idx] * (longest - len(s)) for s in sequences], dtype=torch.long)


def collate(examples: list[tuple[list[int], list[int]]], pad_idx: int = PAD_IDX) -> dict[str, torch.Tensor]:
    """Turn (source ids, target ids ``<s> ... </s>``) pairs into model inputs.

    Returns ``src`` [B, S], ``tgt_in`` [B, T] (target without its last token, what the decoder reads),
    ``tgt_out`` [B, T] (target without ``<s>``, what it must predict: teacher forcing) and the masks
    ``src_mask`` [B, 1, 1, S], ``tgt_mask`` [B, 1, T, T] from the contract's ``create_masks``.
    """
    src = pad([s for s, _ in examples], pad_idx)
    tgt = pad([t for _, t in examples], pad_idx)
    tgt_in, tgt_out = tgt[:, :-1], tgt[:, 1:]
    src_mask, tgt_mask = create_masks(src, tgt_in, pad_idx)
    return {"src": src, "tgt_in": tgt_in, "tgt_out": tgt_out, "src_mask": src_mask, "tgt_mask": tgt_mask}
