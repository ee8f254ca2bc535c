"""Held-out round: patterns observed in alaneuler/my-transformer: an attention function that returns only the
attended values, batch-of-one greedy decoding without an end check, and a KL-divergence label smoothing.

Each case reproduces, in our own code, the behaviour its ``pattern`` describes; no code is copied.
"""

import math

import torch
from torch import nn

from solutions import create_future_mask, create_padding_mask

from . import case


def src(path, commit):
    return dict(repo="alaneuler/my-transformer", path=path, commit=commit)


@case(
    "scaled_dot_product_attention",
    "buggy",
    source=src("attention.py", "49b2927cf87c0b98a46be4148f4f3c35fbf500f8"),
    why="returns only weights @ V, not the pair (output, weights)",
    expect=r"tuple|pair|\(output, ?weights\)|two (values|things|tensors)|weights",
    pattern="scores = q @ k^T / sqrt(d_k) (d_k from the query); masked_fill(mask == 0, -1e9); softmax over the "
    "keys; an optional dropout module on the weights; returns the single tensor weights @ v (the weights are "
    "not returned).",
    differences=["returns one tensor, not (output, weights)", "-1e9 fill", "optional dropout argument"],
)
def scaled_dot_product_attention(query, key, value, mask=None, dropout=None):
    scores = query @ key.transpose(-2, -1) / math.sqrt(query.size(-1))
    if mask is not None:
        scores = scores.masked_fill(mask == 0, -1e9)
    probs = scores.softmax(dim=-1)
    if dropout is not None:
        probs = dropout(probs)
    return probs @ value


@case(
    "greedy_decode",
    "buggy",
    source=src("inference/greedy.py", "49b2927cf87c0b98a46be4148f4f3c35fbf500f8"),
    why="written for one sentence: every row gets row 0's token, and it never stops at end_idx nor pads a finished row",
    expect=r"end_idx|end token|stop|finished|pad|batch|row",
    # regex corrected after the held-out run: /start_idx|start token/ also matched the echoed call
    # `start_idx=1` and the hint's "look at ... (the start tokens, ...)" in a message that rightly blames the
    # one-row batch; it now matches only a blame of the start token (a missing one), not those mentions.
    reject=r"start_idx(?!=)|\b(not|no|without|missing)\b.{0,30}start token",
    pattern="(Adapted to the contract's signature; the original takes src_mask and start_symbol.) Encodes once; "
    "y starts as [[start]] of src's dtype (one row); max_len - 1 rounds decode y with a future-only mask, "
    "apply the generator to the last position, take the argmax and append next_word[0] (the first row's "
    "token) as a [1, 1] block. No end-token check: always max_len tokens, and always one row.",
    differences=["one row only (the first row's token)", "no end check, no padding, no early stop"],
)
def greedy_decode(model, src, max_len, start_idx, end_idx, pad_idx=0):
    src_mask = create_padding_mask(src, pad_idx)
    memory = model.encode(src, src_mask)
    ys = torch.full((1, 1), start_idx, dtype=src.dtype, device=src.device)
    for _ in range(max_len - 1):
        hidden = model.decode(ys, memory, src_mask, create_future_mask(ys.size(1), device=src.device))
        best = model.generator(hidden[:, -1]).max(dim=1).indices
        ys = torch.cat([ys, torch.full((1, 1), int(best[0]), dtype=src.dtype, device=src.device)], dim=1)
    return ys


@case(
    "LabelSmoothingLoss",
    "buggy",
    source=src("train/label_smoothing.py", "58842229f792dfa3e98ce7e96675a0721e395cf7"),
    why="a summed KL divergence on inputs taken to be log-probabilities, smoothing spread over V-2 classes "
    "(the padding column zeroed), not the mean cross-entropy over non-ignored tokens",
    expect=r"KL|diverg|sum|V ?- ?2|log[-_ ]?(softmax|prob)",
    pattern="Constructor (size, padding_idx=0, smoothing=0.0). forward(x [N, V] log-probabilities, target [N]): "
    "asserts x.size(1) == size; target distribution smoothing / (size - 2) everywhere, 1 - smoothing at the "
    "target, 0 in the padding column and on rows whose target is padding; returns nn.KLDivLoss(reduction='sum') "
    "of (x, distribution): a sum, no log_softmax of its own, 2-D input only.",
    differences=[
        "KL divergence, summed",
        "V-2 spread, padding column zeroed",
        "expects log-probabilities",
        "constructor takes the vocabulary size first",
    ],
)
class LabelSmoothingLoss(nn.Module):
    def __init__(self, size, padding_idx=0, smoothing=0.0):
        super().__init__()
        self.size = size
        self.padding_idx = padding_idx
        self.smoothing = smoothing
        self.kl = nn.KLDivLoss(reduction="sum")

    def forward(self, x, target):
        assert x.size(1) == self.size
        spread = torch.full_like(x, self.smoothing / (self.size - 2))
        spread.scatter_(1, target[:, None], 1.0 - self.smoothing)
        spread[:, self.padding_idx] = 0.0
        spread[target == self.padding_idx] = 0.0
        return self.kl(x, spread)
