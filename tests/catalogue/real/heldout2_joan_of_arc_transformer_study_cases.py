"""Held-out round 2 (issue 22): a pattern observed in Joan-Of-Arc/transformer-study-cases
(``transformer_utils分析/train_utils.py``): the future mask taken from nn.Transformer.generate_square_subsequent_mask,
a float additive mask (0 / -inf).

Each case reproduces, in our own code, the behaviour its ``pattern`` describes; no code is copied.
Expectations were written before anything was graded.
"""

from torch import nn

from . import case

SRC = dict(
    repo="Joan-Of-Arc/transformer-study-cases",
    path="transformer_utils分析/train_utils.py",
    commit="18601d46b9c521c2c1e219a81ee6e578c6f1ed09",
)


@case(
    "create_future_mask",
    "variant",
    source=SRC,
    why="a float additive mask (0.0 on and below the diagonal, -inf above) of shape [1, size, size], not a bool "
    "True = may attend mask",
    expect=r"\bbool|dtype|float|additive|-?inf\b",
    pattern="(Adapted: the original then repeats it B * heads times for nn.Transformer's 3-D attn_mask.) "
    "nn.Transformer.generate_square_subsequent_mask(size) unsqueezed at 0: float32, 0 where attention is "
    "allowed and -inf strictly above the diagonal, shape [1, size, size].",
    differences=["float additive mask instead of bool", "shape [1, size, size]"],
)
def create_future_mask(size):
    return nn.Transformer.generate_square_subsequent_mask(size).unsqueeze(0)
