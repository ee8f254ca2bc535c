"""Held-out round: a pattern observed in ShouTu125/transformer (``src/utils/mask.py``): a padding mask built
with two unsqueezes.

Each case reproduces, in our own code, the behaviour its ``pattern`` describes; no code is copied.
"""

from . import PASSES, case

SRC = dict(repo="ShouTu125/transformer", path="src/utils/mask.py", commit="e2bf3379dfbaf4891da596c239879d269d9ff4af")


@case(
    "create_padding_mask",
    "correct",
    source=SRC,
    why="(seq != pad) with two unsqueezes: bool [B, 1, 1, L], True where a token may be attended",
    expect=PASSES,
    pattern="(Adapted: the original looks the pad index up in a vocabulary and takes a device.) "
    "(src != pad).unsqueeze(1).unsqueeze(2), moved to the device: bool [B, 1, 1, L], True on real tokens.",
    differences=["two unsqueezes instead of indexing with None"],
)
def create_padding_mask(seq, pad_idx=0):
    return (seq != pad_idx).unsqueeze(1).unsqueeze(2).to(seq.device)
