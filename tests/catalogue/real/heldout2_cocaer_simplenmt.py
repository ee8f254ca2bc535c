"""Held-out round 2 (issue 22): patterns observed in cocaer/simpleNMT: a label-smoothing loss that spreads the
mass over V-2 classes and never ignores padding, PyTorch-convention masks (True = blocked) for nn.Transformer,
and a batched greedy search that multiplies finished rows' tokens by zero and forces an end token at max_len.

Each case reproduces, in our own code, the behaviour its ``pattern`` describes; no code is copied.
Expectations were written before anything was graded.
"""

import torch
import torch.nn.functional as F
from torch import nn

from solutions import create_future_mask as reference_future_mask
from solutions import create_padding_mask as reference_padding_mask

from . import case


def src(path, commit):
    return dict(repo="cocaer/simpleNMT", path=path, commit=commit)


MODEL = src("src/model/transformer.py", "130851f2bf980e64ba56d186ab9243c36186a403")


@case(
    "LabelSmoothingLoss",
    "buggy",
    source=src("src/utils/labelsmoothing.py", "b9779c8695a84e2ae98ef801e16270a91549a0f1"),
    why="padding targets are never ignored (every row counts), the smoothing is spread as smoothing/(V-2) over "
    "every class, and the loss is a summed KL divergence divided by the number of rows",
    expect=r"(not|never|doesn't|does not|without)\b.{0,30}ignor|ignor\w*.{0,40}(not|never|unused)|pad(ding)? "
    r"(tokens?|positions?|targets?)|V ?- ?2|\bKL\b|diverg",
    pattern="(Adapted: the original's constructor is (size, smoothing=0.0) and it asserts 2-D input; here "
    "(smoothing=0.1, ignore_index=0), the index stored but unused, and logits flattened to [N, V].) "
    "log_softmax of the logits; target distribution filled with smoothing / (V - 2), 1 - smoothing scattered at "
    "the target; nn.KLDivLoss(reduction='sum')(log_probs, dist) / N with N the number of rows, pads included.",
    differences=["no ignore_index (pads count)", "smoothing / (V - 2) everywhere", "KL divergence, sum / rows"],
)
class LabelSmoothingLoss(nn.Module):
    def __init__(self, smoothing=0.1, ignore_index=0):
        super().__init__()
        self.criterion = nn.KLDivLoss(reduction="sum")
        self.confidence = 1.0 - smoothing
        self.smoothing = smoothing
        self.ignore_index = ignore_index

    def forward(self, logits, target):
        vocab = logits.size(-1)
        x = F.log_softmax(logits.reshape(-1, vocab), dim=-1)
        dist = torch.full_like(x, self.smoothing / (vocab - 2))
        dist.scatter_(1, target.reshape(-1, 1), self.confidence)
        return self.criterion(x, dist) / x.size(0)


@case(
    "create_future_mask",
    "variant",
    source=MODEL,
    why="PyTorch's nn.Transformer convention: True ABOVE the diagonal marks the blocked (future) positions, the "
    "opposite of the contract's True = may attend",
    expect=r"invert|opposite|revers|flipped|True (=|means|for|where|marks|on) (the )?(masked|blocked|future|"
    r"forbidden)|above the diagonal|upper|convention|negat|~",
    pattern="(Adapted to [1, 1, size, size]; the original builds a [T, T] tgt_mask for nn.TransformerDecoder.) "
    "(triu(ones(T, T)) != 1).transpose(0, 1): True strictly above the diagonal (future), False on and below it.",
    differences=["True = blocked (PyTorch's boolean attn_mask convention)"],
)
def create_future_mask(size, device=None):
    allowed_upper = torch.triu(torch.ones(size, size, device=device)) != 1
    return allowed_upper.transpose(0, 1)[None, None]


@case(
    "create_padding_mask",
    "variant",
    source=MODEL,
    why="PyTorch's key_padding_mask convention: True AT the padding tokens, the opposite of the contract's "
    "True where a token may be attended",
    expect=r"invert|opposite|revers|flipped|True (=|means|for|where|marks|on|at) (the )?(pad|padding|masked|blocked)|"
    r"convention|negat|~|== ?pad",
    pattern="(Adapted to batch-first [B, 1, 1, L]; the original transposes a sequence-first [L, B] tensor into a "
    "[B, L] src_key_padding_mask.) seq == pad_idx: True on the padding positions.",
    differences=["True = padding (PyTorch's key_padding_mask convention)"],
)
def create_padding_mask(seq, pad_idx=0):
    return (seq == pad_idx)[:, None, None, :]


@case(
    "greedy_decode",
    "buggy",
    source=MODEL,
    path="src/model/transformer.py",
    why="a finished row gets `next * 0` = token 0, not pad_idx, and when max_len is reached the last token of "
    "every unfinished row is overwritten with end_idx; the output always has max_len columns",
    expect=r"pad(ded|s)? with 0|token 0|\b0 instead|instead of pad_idx|(overwrit|forc|replac)\w*.{0,60}end|end(_idx| "
    r"token).{0,60}(overwrit|forc|replac)|(always|exactly) max_len|stop(s|ped)? early",
    pattern="(Adapted to the contract's interface and batch-first tensors; the original is sequence-first and "
    "calls its own decoder.) A [B, max_len] buffer filled with pad_idx, column 0 = start; unfinished = ones(B). "
    "Each step decodes the prefix, takes the argmax of the last position and writes next * unfinished into the "
    "next column (a finished row gets 0), then unfinished *= (next != end). Stops when no row is unfinished; if "
    "the loop ran to max_len, the last column of the still-unfinished rows is set to end_idx. Returns the whole "
    "[B, max_len] buffer.",
    differences=["finished rows get token 0 (not pad_idx)", "end_idx forced at max_len", "always max_len columns"],
)
@torch.no_grad()
def greedy_decode(model, src, max_len, start_idx, end_idx, pad_idx=0):
    src_mask = reference_padding_mask(src, pad_idx)
    memory = model.encode(src, src_mask)
    b = src.size(0)
    generated = torch.full((b, max_len), pad_idx, dtype=torch.long, device=src.device)
    generated[:, 0] = start_idx
    unfinished = torch.ones(b, dtype=torch.long, device=src.device)
    cur_len = 1
    while cur_len < max_len:
        prefix = generated[:, :cur_len]
        hidden = model.decode(prefix, memory, src_mask, reference_future_mask(cur_len, device=src.device))
        next_words = model.generator(hidden[:, -1]).argmax(dim=-1)
        generated[:, cur_len] = next_words * unfinished
        unfinished = unfinished * (next_words != end_idx).long()
        cur_len += 1
        if unfinished.max() == 0:
            break
    if cur_len >= max_len:
        generated[unfinished.bool(), -1] = end_idx
    return generated
