"""Patterns observed in jadore801120/attention-is-all-you-need-pytorch (``transformer/`` and ``train.py``):
sub-layers that carry their own residual and LayerNorm, 3-D masks, a tied and scaled output projection, an
optimizer wrapper, a summed label-smoothed loss and a beam search that keeps extending finished hypotheses.

Each case reproduces, in our own code, the behaviour its ``pattern`` describes; no code is copied.
"""

import torch
import torch.nn.functional as F
from torch import nn

from solutions import Decoder, Encoder

from . import case

COMMIT = "132907dd272e2cc92e3c10e6c4e783a87ff8893d"


def src(path):
    return dict(repo="jadore801120/attention-is-all-you-need-pytorch", path=path, commit=COMMIT)


@case(
    "scaled_dot_product_attention",
    "variant",
    source=src("transformer/Modules.py"),
    why="accepts only 4-D inputs (k.transpose(2, 3)); scales q before the product (same numbers)",
    expect=r"4-D|four|leading (axes|dimensions)|3-D|any number",
    pattern="(q, k, v, mask=None, dropout=None): q is divided by sqrt(d_k) (d_k = q.size(-1)) BEFORE the "
    "product with k.transpose(2, 3), so only 4-D inputs work (a 3-D key raises IndexError); where mask == 0 "
    "the score becomes -1e9; softmax; optional dropout module on the weights; returns (weights @ v, weights).",
    differences=[
        "4-D inputs only (transpose of axes 2 and 3)",
        "q scaled before the product",
        "-1e9 fill",
        "extra optional `dropout`",
    ],
)
def scaled_dot_product_attention(q, k, v, mask=None, dropout=None):
    scaled_q = q / q.size(-1) ** 0.5
    scores = scaled_q @ torch.transpose(k, 2, 3)
    if mask is not None:
        scores = torch.where(mask == 0, -1e9, scores)
    p = scores.softmax(dim=-1)
    if dropout is not None:
        p = dropout(p)
    return p @ v, p


@case(
    "MultiHeadAttention",
    "variant",
    source=src("transformer/SubLayers.py"),
    why="the sub-layer's dropout, residual add and LayerNorm(eps=1e-6) live inside the attention module, "
    "which returns (output, attn); projections without bias; 3-D masks (mask.unsqueeze(1))",
    expect=r"residual|LayerNorm|layer_norm|tuple|bias|mask.{0,60}(shape|4-D|unsqueeze)",
    reject=r"no output projection|concatenated heads directly",
    pattern="W_q, W_k, W_v, W_o without bias (d_k = d_model // num_heads, no divisibility check); an attention "
    "dropout fixed at 0.1, a `dropout` and a `layer_norm` = nn.LayerNorm(d_model, eps=1e-6). A given mask "
    "gets unsqueeze(1). Heads via view(B, L, h, d_k).transpose(1, 2), this module's "
    "scaled_dot_product_attention with the attention dropout; weights kept in attention_weights; output = "
    "layer_norm(dropout(W_o(merged)) + query), returned as the pair (output, weights).",
    differences=[
        "dropout, residual and LayerNorm(eps=1e-6) inside the module",
        "returns (output, weights)",
        "no bias on the projections",
        "mask.unsqueeze(1): written for 3-D masks",
        "dropout 0.1 on the attention weights",
    ],
)
class MultiHeadAttention(nn.Module):
    def __init__(self, d_model, num_heads, dropout=0.1):
        super().__init__()
        self.heads = num_heads
        self.d_head = d_model // num_heads
        inner = num_heads * self.d_head
        self.W_q = nn.Linear(d_model, inner, bias=False)
        self.W_k = nn.Linear(d_model, inner, bias=False)
        self.W_v = nn.Linear(d_model, inner, bias=False)
        self.W_o = nn.Linear(inner, d_model, bias=False)
        self.attn_dropout = nn.Dropout(0.1)
        self.dropout = nn.Dropout(dropout)
        self.layer_norm = nn.LayerNorm(d_model, 1e-6)

    def forward(self, q, k, v, mask=None):
        b = q.size(0)

        def split(layer, t):
            return layer(t).view(b, t.size(1), self.heads, self.d_head).transpose(1, 2)

        if mask is not None:
            mask = mask.unsqueeze(1)
        out, weights = scaled_dot_product_attention(
            split(self.W_q, q), split(self.W_k, k), split(self.W_v, v), mask=mask, dropout=self.attn_dropout
        )
        self.attention_weights = weights
        merged = out.transpose(1, 2).contiguous().view(b, q.size(1), -1)
        return self.layer_norm(self.dropout(self.W_o(merged)) + q), weights


@case(
    "FeedForwardNetwork",
    "variant",
    source=src("transformer/SubLayers.py"),
    why="the sub-layer's dropout, residual add and LayerNorm(eps=1e-6) live inside the feed-forward network",
    expect=r"residual|LayerNorm|norm|x \+",
    pattern="Constructor (d_model, d_ff, dropout=0.1): W_1, W_2, a `layer_norm` = nn.LayerNorm(d_model, "
    "eps=1e-6) and a dropout. forward returns layer_norm(dropout(W_2(relu(W_1(x)))) + x): the residual and "
    "the norm are inside.",
    differences=["dropout, residual and LayerNorm(eps=1e-6) inside the network"],
)
class FeedForwardNetwork(nn.Module):
    def __init__(self, d_model, d_ff, dropout=0.1):
        super().__init__()
        self.W_1 = nn.Linear(d_model, d_ff)
        self.W_2 = nn.Linear(d_ff, d_model)
        self.layer_norm = nn.LayerNorm(d_model, 1e-6)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        y = self.dropout(self.W_2(F.relu(self.W_1(x))))
        return self.layer_norm(y + x)


@case(
    "PositionalEncoding",
    "variant",
    source=src("transformer/Models.py"),
    why="no length check: a sequence longer than the table gives a raw broadcasting error (the table itself is "
    "right, computed in float64)",
    expect=r"max_seq_length|longer than|clear message|length",
    pattern="Buffer pe [1, max_len, d] computed in float64 and stored as float32: angle = pos / "
    "10000^(2 * (j // 2) / d) for every feature j, sin on even and cos on odd features. forward returns "
    "x + pe[:, :S] (detached); no check of S against the table's length.",
    differences=["no length check"],
)
class PositionalEncoding(nn.Module):
    def __init__(self, d_model, max_seq_length=5000):
        super().__init__()
        j = torch.arange(d_model)
        rate = torch.pow(10000.0, (2 * (j // 2)).double() / d_model)
        angle = torch.arange(max_seq_length, dtype=torch.float64)[:, None] / rate
        angle[:, 0::2] = angle[:, 0::2].sin()
        angle[:, 1::2] = angle[:, 1::2].cos()
        self.register_buffer("pe", angle.float().unsqueeze(0))

    def forward(self, x):
        return x + self.pe[:, : x.size(1)].detach()


@case(
    "create_padding_mask",
    "variant",
    source=src("transformer/Models.py"),
    why="3-D padding mask [B, 1, L] (the repository adds the head axis inside attention)",
    expect=r"\[B, ?1, ?1, ?L\]|shape",
    pattern="Returns seq != pad_idx with an axis inserted before the last: bool [B, 1, L].",
    differences=["3-D [B, 1, L]"],
)
def create_padding_mask(seq, pad_idx=0):
    return torch.unsqueeze(seq != pad_idx, -2)


@case(
    "create_future_mask",
    "variant",
    source=src("transformer/Models.py"),
    why="3-D future mask [1, L, L]",
    expect=r"\[1, ?1, ?size, ?size\]|\[1, ?1, ?\d+, ?\d+\]|shape",
    pattern="Returns a bool [1, size, size] tensor on `device`, True on and below the diagonal (one minus the "
    "strict upper triangle).",
    differences=["3-D [1, size, size]"],
)
def create_future_mask(size, device=None):
    strict_upper = torch.ones(1, size, size, device=device).triu(diagonal=1)
    return (strict_upper == 0).bool()


@case(
    "create_masks",
    "variant",
    source=src("transformer/Models.py"),
    why="3-D masks: src [B, 1, S], tgt [B, T, T] (padding AND future, right otherwise), built with its own 3-D helpers",
    expect=r"\[B, ?1, ?1, ?S\]|\[B, ?1, ?T, ?T\]|shape|problem is in your create_(padding|future)_mask",
    pattern="Calls this module's create_padding_mask for the source and for the target, and ANDs the target's "
    "with this module's create_future_mask(T, tgt.device): src [B, 1, S], tgt [B, T, T].",
    differences=["3-D masks, built from the module's own 3-D mask functions"],
)
def create_masks(src, tgt, pad_idx=0):
    future = create_future_mask(tgt.size(1), tgt.device)
    return create_padding_mask(src, pad_idx), create_padding_mask(tgt, pad_idx) & future


@case(
    "Transformer",
    "variant",
    source=src("transformer/Models.py"),
    why="weights tied (right) and Xavier init (right), but the generator has no bias, the logits are scaled "
    "by d_model^-0.5 and flattened to [B*T, V]",
    expect=r"generator\.bias|\[B, ?T, ?V|logits.{0,60}(shape|scale)|shape.{0,60}logits|d_model\^?-0\.5|flatten",
    pattern="The contract's Encoder and Decoder (the reference's, imported); generator = nn.Linear(d, V, "
    "bias=False). Xavier-uniform init of all >1-D parameters, then the generator's weight is tied to the "
    "target embedding (and the source embedding too with share_embeddings). forward builds masks with this "
    "module's create_masks; logits are multiplied by d_model^-0.5 and flattened to [B*T, V].",
    differences=["generator without bias", "logits scaled by d_model^-0.5", "logits flattened to [B*T, V]"],
)
class Transformer(nn.Module):
    def __init__(
        self,
        src_vocab_size,
        tgt_vocab_size,
        d_model=512,
        num_layers=6,
        num_heads=8,
        d_ff=2048,
        dropout=0.1,
        max_seq_length=5000,
        pad_idx=0,
        share_embeddings=False,
    ):
        super().__init__()
        self.pad_idx = pad_idx
        self.d_model = d_model
        config = (d_model, num_layers, num_heads, d_ff, dropout, max_seq_length)
        self.encoder = Encoder(src_vocab_size, *config)
        self.decoder = Decoder(tgt_vocab_size, *config)
        self.generator = nn.Linear(d_model, tgt_vocab_size, bias=False)
        for w in self.parameters():
            if w.dim() > 1:
                nn.init.xavier_uniform_(w)
        shared = self.decoder.embedding.embedding.weight
        self.generator.weight = shared
        if share_embeddings:
            self.encoder.embedding.embedding.weight = shared

    def encode(self, src, src_mask):
        return self.encoder(src, src_mask)

    def decode(self, tgt, memory, src_mask, tgt_mask):
        return self.decoder(tgt, memory, src_mask, tgt_mask)

    def forward(self, src, tgt):
        src_mask, tgt_mask = create_masks(src, tgt, self.pad_idx)
        states = self.decode(tgt, self.encode(src, src_mask), src_mask, tgt_mask)
        logits = self.generator(states) * self.d_model**-0.5
        return logits.view(-1, logits.size(-1))


@case(
    "TransformerLRScheduler",
    "variant",
    source=src("transformer/Optim.py"),
    why="an optimizer wrapper: its step also calls optimizer.step() and returns nothing; no get_lr(step_num); "
    "the first rate is set at the first step, not at construction",
    expect=r"optimizer\.step|steps the optimizer|wrapper",
    pattern="Wraps the optimizer (optimizer, d_model, warmup_steps=4000, factor=1.0), counter from 0. step() "
    "takes no argument: +1, lr = factor * d_model^-0.5 * min(n^-0.5, n * warmup^-1.5) written to every "
    "group, then optimizer.step(); returns None. A zero_grad() passes through; there is no get_lr.",
    differences=[
        "step() also calls optimizer.step()",
        "no get_lr",
        "step() returns None",
        "no rate before the first step",
    ],
)
class TransformerLRScheduler:
    def __init__(self, optimizer, d_model, warmup_steps=4000, factor=1.0):
        self.optimizer = optimizer
        self.d_model = d_model
        self.warmup_steps = warmup_steps
        self.factor = factor
        self.steps_done = 0

    def zero_grad(self):
        self.optimizer.zero_grad()

    def step(self):
        self.steps_done += 1
        n = self.steps_done
        scale = self.d_model**-0.5 * min(n**-0.5, n * self.warmup_steps**-1.5)
        for group in self.optimizer.param_groups:
            group["lr"] = self.factor * scale
        self.optimizer.step()


@case(
    "LabelSmoothingLoss",
    "variant",
    source=src("train.py"),
    why="cross-entropy to a target with 1-eps on the gold class and eps/(V-1) elsewhere, SUMMED over the "
    "non-pad tokens (the caller averages later)",
    expect=r"\bsum\b|not the mean|V-1|V - 1|number of classes|distribution",
    pattern="Flattens to [N, V]; target distribution 1 - eps on the gold class and eps / (V-1) on every other "
    "class; per-token cross-entropy -sum(q * log_softmax); the SUM over the non-padding tokens is returned "
    "(no division by their number).",
    differences=["summed over the tokens, not averaged", "smoothing spread over V-1 classes"],
)
class LabelSmoothingLoss(nn.Module):
    def __init__(self, smoothing=0.1, ignore_index=0):
        super().__init__()
        self.smoothing = smoothing
        self.ignore_index = ignore_index

    def forward(self, logits, target):
        n_class = logits.size(-1)
        flat = logits.reshape(-1, n_class)
        gold = target.reshape(-1)
        gold_hot = F.one_hot(gold, n_class).bool()
        eps = self.smoothing
        q = torch.full_like(flat, eps / (n_class - 1)).masked_fill(gold_hot, 1 - eps)
        per_token = -(q * F.log_softmax(flat, dim=1)).sum(dim=1)
        return per_token[gold != self.ignore_index].sum()


@case(
    "beam_search",
    "buggy",
    source=src("transformer/Translator.py"),
    why="hypotheses that emitted the end token keep being extended and keep accumulating the log-probabilities "
    "of the tokens after it; the length penalty is len^alpha (start token counted), not ((5+|Y|)/6)^alpha",
    expect=r"finished|after (the|its) end|end token|length penalty",
    reject=r"With beam_size=1 your beam search should give exactly the greedy result",
    pattern="Batch of one (asserted). A [beam, max_len] buffer of pad_idx: column 0 start_idx, column 1 the "
    "first step's top-beam tokens, scores their log-probabilities (softmax of the generator, masks from this "
    "module's functions). Each step: every row's top-beam tokens, log p + row score, the best beam of the "
    "beam^2 kept; rows holding end_idx are extended like the others. Length = first end position + 1 (else "
    "max_len); once every row holds end_idx the best score / length^alpha wins (row 0 otherwise).",
    differences=[
        "finished hypotheses keep being extended and scored",
        "length penalty length^alpha with the start token counted",
        "stops only when every beam has an end token",
    ],
)
def beam_search(model, src, max_len, start_idx, end_idx, beam_size=4, length_penalty=0.6, pad_idx=0):
    assert src.size(0) == 1
    k = beam_size
    device = src.device

    def last_probs(prefix, memory, src_mask):
        future = create_future_mask(prefix.size(1), prefix.device)
        states = model.decode(prefix, memory, src_mask, future)
        return F.softmax(model.generator(states), dim=-1)[:, -1, :]

    positions = torch.arange(1, max_len + 1, device=device)
    chosen = 0
    with torch.no_grad():
        src_mask = create_padding_mask(src, pad_idx)
        memory = model.encode(src, src_mask)
        first_p, first_tok = last_probs(torch.tensor([[start_idx]], device=device), memory, src_mask).topk(k)
        scores = first_p.log().view(k)
        rows = torch.full((k, max_len), pad_idx, dtype=torch.long, device=device)
        rows[:, 0] = start_idx
        rows[:, 1] = first_tok[0]
        memory = memory.repeat(k, 1, 1)
        for t in range(2, max_len):
            p, tok = last_probs(rows[:, :t], memory, src_mask).topk(k)
            scores, flat = (p.log() + scores[:, None]).view(-1).topk(k)
            parent, pick = flat // k, flat % k
            rows[:, :t] = rows[parent, :t]
            rows[:, t] = tok[parent, pick]
            ended = rows == end_idx
            lengths = positions.masked_fill(~ended, max_len).min(dim=1).values
            if bool(ended.any(dim=1).all()):
                chosen = int((scores / lengths.float() ** length_penalty).argmax())
                break
    return rows[chosen][: lengths[chosen]]
