"""Held-out round 2 (issue 22): a pattern observed in Yondijr/NER_Transformer
(``validation_testing/validation_modules.py``): an Annotated-Transformer greedy decoder whose signature lost the
start symbol, so every output starts with token 1.

Each case reproduces, in our own code, the behaviour its ``pattern`` describes; no code is copied.
Expectations were written before anything was graded.
"""

import torch

from solutions import create_future_mask, create_padding_mask

from . import case

SRC = dict(
    repo="Yondijr/NER_Transformer",
    path="validation_testing/validation_modules.py",
    commit="ad2a132285e51ef7812896e70b31fa3174d18286",
)


@case(
    "greedy_decode",
    "buggy",
    source=SRC,
    why="the first token is always 1 (torch.ones), whatever start_idx is; it also decodes one row only (row 0's "
    "token for every step) and never stops at end_idx",
    expect=r"start(_idx| token| symbol)\b.{0,60}(ignored|not used|unused|always|hard-?coded|instead)|"
    r"(ignores?|not use\w*)\b.{0,30}start|first token.{0,40}(always|wrong|instead)",
    pattern="(Adapted to the contract's signature; the original is greedy_decode(model, src, src_mask, max_len) "
    "with no start argument.) ys = torch.ones(1, 1) of src's dtype; max_len - 1 steps: decode with a future "
    "mask, generator on the last position, max over the vocabulary, append next_word[0] as a [1, 1] block. No "
    "end check, no padding, one row.",
    differences=["start token hard-coded to 1 (start_idx ignored)", "one row only", "no end check"],
)
def greedy_decode(model, src, max_len, start_idx, end_idx, pad_idx=0):
    src_mask = create_padding_mask(src, pad_idx)
    memory = model.encode(src, src_mask)
    ys = torch.ones(1, 1).type_as(src)
    for _ in range(max_len - 1):
        out = model.decode(ys, memory, src_mask, create_future_mask(ys.size(1), device=src.device))
        _, next_word = torch.max(model.generator(out[:, -1]), dim=1)
        ys = torch.cat([ys, torch.ones(1, 1).type_as(src).fill_(int(next_word[0]))], dim=1)
    return ys
