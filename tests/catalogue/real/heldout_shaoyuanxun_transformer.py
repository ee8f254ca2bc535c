"""Held-out round: a pattern observed in shaoyuanxun/Transformer-in-Pytorch (``src/inference/beam_search.py``):
a list-of-candidates beam search that ranks by raw summed log-probability, with no length penalty.

Each case reproduces, in our own code, the behaviour its ``pattern`` describes; no code is copied.
"""

import torch

from solutions import create_future_mask, create_padding_mask

from . import case

SRC = dict(
    repo="shaoyuanxun/Transformer-in-Pytorch",
    path="src/inference/beam_search.py",
    commit="4154e242f4c381b5e42492de4db872824590ac3a",
)


@case(
    "beam_search",
    "buggy",
    source=SRC,
    why="no length penalty: finished and unfinished hypotheses are ranked together by raw summed "
    "log-probability, so `length_penalty` is never applied (short finished outputs win)",
    expect=r"length[ _]penalty|\(5 ?\+|Wu et al|normali[sz]|alpha|α",
    reject=r"start_idx|start token",
    pattern="(Adapted to the contract's signature; the original takes the tokenizer and a source mask.) Batch of "
    "one. Candidates are (prefix [1, L], summed log-prob), starting with [[start]] at 0. Each round: stop if any "
    "candidate has max_len tokens; a candidate ending in end_idx is carried over unchanged; others are decoded "
    "with a future mask, softmax of the last position, top beam_size tokens each appended with "
    "score + log(prob). Keep the beam_size best by score (no length penalty); stop when all end in end_idx. "
    "Returns the best candidate's prefix squeezed to 1-D.",
    differences=["no length penalty (raw summed log-probability)", "finished and open hypotheses share one pool"],
)
def beam_search(model, src, max_len, start_idx, end_idx, beam_size=4, length_penalty=0.6, pad_idx=0):
    src_mask = create_padding_mask(src, pad_idx)
    memory = model.encode(src, src_mask)
    pool = [(torch.full((1, 1), start_idx, dtype=src.dtype, device=src.device), 0.0)]
    while not any(prefix.size(1) == max_len for prefix, _ in pool):
        grown = []
        for prefix, score in pool:
            if prefix[0, -1].item() == end_idx:
                grown.append((prefix, score))
                continue
            future = create_future_mask(prefix.size(1), device=src.device)
            probs = model.generator(model.decode(prefix, memory, src_mask, future))[:, -1].softmax(dim=-1)
            top_p, top_i = probs.topk(beam_size, dim=1)
            for p, i in zip(top_p[0], top_i[0]):
                grown.append((torch.cat([prefix, i.view(1, 1)], dim=1), score + torch.log(p).item()))
        pool = sorted(grown, key=lambda item: item[1], reverse=True)[:beam_size]
        if all(prefix[0, -1].item() == end_idx for prefix, _ in pool):
            break
    return pool[0][0].squeeze()
