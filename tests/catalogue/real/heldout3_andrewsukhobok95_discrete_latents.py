"""Held-out round 3 (issue 22): a causal mask observed in AndrewSukhobok95/discrete_latents_for_text_to_image_gen
(``modules/common_utils.py``): PyTorch's additive float mask (0 where allowed, -inf where blocked), [size, size].

Each case reproduces, in our own code, the behaviour its ``pattern`` describes; no code is copied.
Expectations were written before anything was graded.
"""

import torch

from . import case


@case(
    "create_future_mask",
    "variant",
    source=dict(
        repo="AndrewSukhobok95/discrete_latents_for_text_to_image_gen",
        path="modules/common_utils.py",
        commit="d1d026910c32c9748f7e3621f0ae97b61761f695",
    ),
    why="nn.Transformer's ADDITIVE float mask: 0.0 on and below the diagonal, -inf above it, shape [size, size]; "
    "the contract wants a boolean [1, 1, size, size] mask, True = may attend",
    expect=r"float|bool|dtype|-inf|additive|\[1, ?1, ?\w+, ?\w+\]",
    pattern="mask = (triu(ones(sz, sz)) == 1).transpose(0, 1).float(); masked_fill(mask == 0, -inf); "
    "masked_fill(mask == 1, 0.0); returns the [sz, sz] float tensor.",
    differences=["float additive mask (0 / -inf) instead of bool", "[size, size] instead of [1, 1, size, size]"],
)
def create_future_mask(size, device=None):
    mask = (torch.triu(torch.ones(size, size, device=device)) == 1).transpose(0, 1).float()
    return mask.masked_fill(mask == 0, float("-inf")).masked_fill(mask == 1, 0.0)
