"""Patterns observed in gordicaleksa/pytorch-original-transformer: ``models/definitions/transformer_model.py``,
``utils/data_utils.py``, ``utils/optimizers_and_distributions.py`` and ``utils/decoding_utils.py``: shape
assertions, dropout on the attention weights, an optimizer wrapper, KL label smoothing over V-2 classes and
a batched greedy decoding that counts max_len in generated tokens.

Each case reproduces, in our own code, the behaviour its ``pattern`` describes; no code is copied.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from . import PASSES, case

COMMIT = "d5b29a41c5c3f68e1bcd0c528a58281632fa9d6d"
MODEL = "models/definitions/transformer_model.py"


def src(path):
    return dict(repo="gordicaleksa/pytorch-original-transformer", path=path, commit=COMMIT)


@case(
    "TokenEmbedding",
    "correct",
    source=src(MODEL),
    why="nn.Embedding times sqrt(d_model), with an assertion on the input's rank",
    expect=PASSES,
    pattern="Asserts that the token ids are 2-D (with a message naming the shape), then returns "
    "embedding(tokens) * sqrt(d_model).",
    differences=["an assertion that the input is [B, S]"],
)
class TokenEmbedding(nn.Module):
    def __init__(self, vocab_size, d_model):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, d_model)
        self.d_model = d_model

    def forward(self, tokens):
        assert tokens.ndim == 2, f"token ids should be [batch, length], not {tuple(tokens.shape)}"
        return self.embedding(tokens) * math.sqrt(self.d_model)


@case(
    "PositionalEncoding",
    "variant",
    source=src(MODEL),
    why="the table is [max_len, d] (no batch axis) and dropout is applied inside",
    expect=r"\[1, ?max_seq_length|shape|dropout|train mode",
    pattern="Constructor (d_model, max_seq_length=5000, dropout_probability=0.1). Frequencies "
    "10000^(-2i/d) (torch.pow, float32); buffer pe of shape [max_len, d] with NO batch axis, sin on even "
    "and cos on odd features. forward asserts a 3-D input whose last size is d, and returns "
    "dropout(x + pe[:S]) with its own dropout.",
    differences=["pe is [max_len, d], no batch axis", "dropout inside", "an assertion on the input's shape"],
)
class PositionalEncoding(nn.Module):
    def __init__(self, d_model, max_seq_length=5000, dropout_probability=0.1):
        super().__init__()
        self.dropout = nn.Dropout(dropout_probability)
        freqs = torch.pow(10000.0, -torch.arange(0, d_model, 2, dtype=torch.float) / d_model)
        t = torch.arange(max_seq_length).unsqueeze(1) * freqs
        grid = torch.zeros(max_seq_length, d_model)
        grid[:, 0::2] = t.sin()
        grid[:, 1::2] = t.cos()
        self.register_buffer("pe", grid)

    def forward(self, x):
        assert x.ndim == 3 and x.shape[-1] == self.pe.shape[1], f"expected [B, S, d], got {tuple(x.shape)}"
        return self.dropout(x + self.pe[: x.shape[1]])


@case(
    "MultiHeadAttention",
    "variant",
    source=src(MODEL),
    why="dropout on the attention weights (the repository notes the paper does not have it); -inf fill; "
    "otherwise the paper's multi-head attention with 4-D masks",
    expect=r"dropout|train mode",
    pattern="Constructor (d_model, num_heads, dropout_probability=0.1, log_attention_weights=True), asserts "
    "divisibility; W_q, W_k, W_v, W_o with bias. Scores q @ k^T / sqrt(d_k), -inf where the mask is False, "
    "softmax, then a DROPOUT on the weights before @ v; the (post-dropout) weights are kept in "
    "attention_weights when the flag is set; merged heads through W_o. 4-D masks as in the contract.",
    differences=["dropout on the attention weights", "-inf fill", "extra optional arguments"],
)
class MultiHeadAttention(nn.Module):
    def __init__(self, d_model, num_heads, dropout_probability=0.1, log_attention_weights=True):
        super().__init__()
        assert d_model % num_heads == 0, "d_model must be a multiple of num_heads"
        self.n_heads = num_heads
        self.d_head = d_model // num_heads
        self.W_q = nn.Linear(d_model, d_model)
        self.W_k = nn.Linear(d_model, d_model)
        self.W_v = nn.Linear(d_model, d_model)
        self.W_o = nn.Linear(d_model, d_model)
        self.attention_dropout = nn.Dropout(p=dropout_probability)
        self.keep_weights = log_attention_weights
        self.attention_weights = None

    def forward(self, query, key, value, mask=None):
        b = query.shape[0]
        q, k, v = (
            proj(t).view(b, -1, self.n_heads, self.d_head).transpose(1, 2)
            for proj, t in ((self.W_q, query), (self.W_k, key), (self.W_v, value))
        )
        scores = q @ k.transpose(-2, -1) / math.sqrt(self.d_head)
        if mask is not None:
            scores = scores.masked_fill(mask == torch.tensor(False), float("-inf"))
        weights = self.attention_dropout(scores.softmax(dim=-1))
        if self.keep_weights:
            self.attention_weights = weights
        out = (weights @ v).transpose(1, 2).reshape(b, -1, self.n_heads * self.d_head)
        return self.W_o(out)


def _lower_triangle(n, device=None):
    return torch.ones(n, n, dtype=torch.bool, device=device).tril()[None, None]


def _target_keep(tokens, pad_idx):
    not_pad = (tokens != pad_idx).view(tokens.shape[0], 1, 1, -1)
    return not_pad & _lower_triangle(tokens.shape[1], tokens.device)


@case(
    "create_padding_mask",
    "correct",
    source=src("utils/data_utils.py"),
    why="(seq != pad).view(B, 1, 1, -1): bool [B, 1, 1, L]",
    expect=PASSES,
    pattern="Returns (seq != pad_idx) viewed as [B, 1, 1, L] (bool).",
)
def create_padding_mask(seq, pad_idx=0):
    return (seq != pad_idx).view(seq.shape[0], 1, 1, -1)


@case(
    "create_future_mask",
    "correct",
    source=src("utils/data_utils.py"),
    why="the lower triangle, bool [1, 1, size, size]",
    expect=PASSES,
    pattern="Returns the lower triangle (diagonal included) of a [1, 1, size, size] bool tensor of ones on `device`.",
)
def create_future_mask(size, device=None):
    return _lower_triangle(size, device)


@case(
    "create_masks",
    "correct",
    source=src("utils/data_utils.py"),
    why="src padding [B, 1, 1, S]; tgt padding [B, 1, 1, T] AND the no-look-forward mask -> [B, 1, T, T]",
    expect=PASSES,
    pattern="Builds both masks with its own helpers (not the contract-named functions): src padding "
    "[B, 1, 1, S]; target padding [B, 1, 1, T] AND the [1, 1, T, T] lower triangle -> [B, 1, T, T].",
    differences=["built with private helpers instead of create_padding_mask / create_future_mask"],
)
def create_masks(src, tgt, pad_idx=0):
    return (src != pad_idx).view(src.shape[0], 1, 1, -1), _target_keep(tgt, pad_idx)


@case(
    "TransformerLRScheduler",
    "variant",
    source=src("utils/optimizers_and_distributions.py"),
    why="merged into an optimizer wrapper: step() also calls optimizer.step() and returns nothing; no "
    "`factor`; the rate is first set at the first step",
    expect=r"optimizer\.step|steps the optimizer|wrapper",
    pattern="Wraps the optimizer (optimizer, d_model, warmup_steps=4000): NO factor argument. step() takes no "
    "argument: +1, rate = get_lr(), written to every group, then optimizer.step(); returns None. get_lr() "
    "takes no step number: d_model^-0.5 * min(n^-0.5, n * warmup^-1.5) of its counter. zero_grad() passes "
    "through.",
    differences=[
        "step() also calls optimizer.step()",
        "no `factor`",
        "get_lr() takes no step number",
        "step() returns None",
        "no rate before the first step",
    ],
)
class TransformerLRScheduler:
    def __init__(self, optimizer, d_model, warmup_steps=4000):
        self.optimizer = optimizer
        self.d_model = d_model
        self.warmup_steps = warmup_steps
        self.t = 0

    def get_lr(self):
        return self.d_model ** (-0.5) * min(self.t ** (-0.5), self.t * self.warmup_steps ** (-1.5))

    def step(self):
        self.t += 1
        lr = self.get_lr()
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.step()

    def zero_grad(self):
        self.optimizer.zero_grad()


@case(
    "LabelSmoothingLoss",
    "variant",
    source=src("utils/optimizers_and_distributions.py"),
    path="utils/optimizers_and_distributions.py + training_script.py",
    why="KL divergence ('batchmean': divided by ALL tokens, padding included) to a target spreading the "
    "smoothing over V-2 classes; the target distribution is built in float32",
    expect=r"KL|entropy|V-2|V - 2|number of classes|distribution|padding",
    pattern="Target distribution built in float32: smoothing / (V-2) everywhere, 1 - smoothing on the gold "
    "class, 0 in the padding column, all-zero rows where the target is padding. Loss = KL divergence of the "
    "log_softmax [N, V] to it with reduction 'batchmean': the sum divided by N, ALL tokens, padding "
    "included.",
    differences=[
        "KL divergence instead of cross-entropy",
        "smoothing spread over V-2 classes",
        "divided by all tokens, padding included",
        "float32 target distribution",
    ],
)
class LabelSmoothingLoss(nn.Module):
    def __init__(self, smoothing=0.1, ignore_index=0):
        super().__init__()
        self.smoothing = smoothing
        self.ignore_index = ignore_index

    def forward(self, logits, target):
        assert 0.0 <= self.smoothing <= 1.0
        vocab = logits.shape[-1]
        logp = F.log_softmax(logits, dim=-1).reshape(-1, vocab)
        gold = target.reshape(-1, 1)
        q = torch.full((gold.shape[0], vocab), self.smoothing / (vocab - 2), device=logits.device)
        q.scatter_(1, gold, 1.0 - self.smoothing)
        q[:, self.ignore_index] = 0.0
        q.masked_fill_(gold == self.ignore_index, 0.0)
        return F.kl_div(logp, q, reduction="batchmean")


@case(
    "greedy_decode",
    "variant",
    source=src("utils/decoding_utils.py"),
    why="batched greedy decoding that stops when every row has its end token, but max_len counts the "
    "generated tokens: rows can reach max_len + 1 tokens with the start token",
    expect=r"max_len|too long|longer than|at most|≤",
    pattern="Batched: all rows start with start_idx (on the model's device); each round decodes the whole "
    "prefix with its padding-and-future mask, takes every T-th row of the flattened [B*T, V] logits (the last "
    "position) and appends its argmax to every row. Stops when every row has produced end_idx or when the "
    "prefix (before appending) had max_len tokens, so rows reach max_len + 1. Each row is cut after its first "
    "end_idx and padded with pad_idx.",
    differences=["max_len counts the generated tokens: up to max_len + 1 with the start token"],
)
def greedy_decode(model, src, max_len, start_idx, end_idx, pad_idx=0):
    src_mask = create_padding_mask(src, pad_idx)
    memory = model.encode(src, src_mask)
    device = next(model.parameters()).device
    n = memory.shape[0]
    rows = [[start_idx] for _ in range(n)]
    done = [False] * n
    prefix = torch.full((n, 1), start_idx, dtype=torch.long, device=device)
    while True:
        length = len(rows[0])
        logits = model.generator(model.decode(prefix, memory, src_mask, _target_keep(prefix, pad_idx)))
        last = logits.reshape(-1, logits.shape[-1])[length - 1 :: length]
        picks = last.argmax(dim=-1)
        for r, token in enumerate(picks.tolist()):
            rows[r].append(token)
            done[r] = done[r] or token == end_idx
        if all(done) or length == max_len:
            break
        prefix = torch.cat([prefix, picks.to(device)[:, None]], dim=1)
    cut = [r[: r.index(end_idx) + 1] if end_idx in r else r for r in rows]
    width = max(len(r) for r in cut)
    return torch.tensor([r + [pad_idx] * (width - len(r)) for r in cut], device=device)
