"""Chapter 11: ``greedy_decode`` and ``beam_search`` (section 6.1).

Decoders are graded on hand-built models whose next-token distribution is known exactly (a small
Markov chain over tokens, a different one for each source sentence), so the right output is known and
every classic mistake gives a different one; and on a small real Transformer for the masks.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

import solutions
from solutions.decoding import length_penalty_score

from ..core import Ctx, Fail, Spec, learner_call
from .common import (
    D_FF,
    D_MODEL,
    HEADS,
    LAYERS,
    MAX_LEN,
    expect_signature,
    expect_tensor,
    expect_unchanged,
    own_parts_check,
    snapshot,
)

GREEDY = Spec("greedy_decode", solutions.greedy_decode, kind="function")
BEAM = Spec("beam_search", solutions.beam_search, kind="function")

PAD, START, END = 0, 1, 2
V = 8  # tokens 0..7
K = 4  # kinds of source sentence (the first source token, 1..3)


class MarkovModel(nn.Module):
    """A hand-built model with the Transformer's decoding interface (encode, decode, generator).

    The next token's logits are ``table[last token] + row_bias[first source token]``: decode returns
    one-hot vectors of the target tokens (and of the source kind), and the generator is a linear map
    that reads the tables off them. Padding and the start token are never predicted.
    """

    def __init__(self, seed: int, end_boost: float = 0.0, scale: float = 2.0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        table = scale * torch.randn(V, V, generator=g)
        row_bias = 1.0 * torch.randn(K, V, generator=g)
        table[:, END] += end_boost
        table[:, PAD] = table[:, START] = -30.0
        self.generator = nn.Linear(V + K, V, bias=False)
        with torch.no_grad():
            self.generator.weight.copy_(torch.cat([table.T, row_bias.T], dim=1))

    def encode(self, src: torch.Tensor, src_mask: torch.Tensor | None = None) -> torch.Tensor:
        kind = F.one_hot(src[:, 0] % K, K).float()  # [B, K]
        return kind[:, None, :].expand(src.size(0), src.size(1), K)  # memory [B, S, K]

    decode_limit: int | None = None  # set: decode refuses a target longer than that (see _stops_decoding)

    def decode(self, tgt, memory, src_mask=None, tgt_mask=None) -> torch.Tensor:
        if self.decode_limit is not None and tgt.size(1) > self.decode_limit:
            raise RuntimeError(
                f"the checker's model was asked to decode {tgt.size(1)} target tokens after every row had finished"
            )
        tokens = F.one_hot(tgt, V).float()  # [B, T, V]
        kind = memory[:, :1, :].expand(tgt.size(0), tgt.size(1), K)
        return torch.cat([tokens, kind], dim=-1)  # [B, T, V + K]

    def forward(self, src, tgt):
        return self.generator(self.decode(tgt, self.encode(src)))


def _with_weight(model: MarkovModel, weight: torch.Tensor) -> MarkovModel:
    other = copy.deepcopy(model)
    with torch.no_grad():
        other.generator.weight.copy_(weight)
    return other


def after_end_variants(model: MarkovModel) -> list[MarkovModel]:
    """``model`` with other predictions AFTER the end token (a flat row; one token almost certain).

    A right beam search never looks at them (a finished hypothesis is not extended), so its output
    is the same on all three models.
    """
    variants = []
    for peaked in (False, True):
        weight = model.generator.weight.detach().clone()
        row = torch.full((V,), -8.0 if peaked else 0.0)
        if peaked:
            row[3] = 8.0
        row[PAD] = row[START] = -30.0
        weight[:, END] = row  # column END of the generator: the logits after the end token
        variants.append(_with_weight(model, weight))
    return variants


def shifted_logits(model: MarkovModel) -> MarkovModel:
    """``model`` with every step's logits shifted by one constant (depending on the last token and
    the source kind): the probabilities, and so a right decoder's output, stay the same."""
    g = torch.Generator().manual_seed(3)
    weight = model.generator.weight.detach().clone()
    weight += (6 * torch.rand(V + K, generator=g) - 3)[None, :]  # adds c[last token] + c[kind] to each logit
    return _with_weight(model, weight)


# Other token ids (pad, start, end): with 0, 1, 2 a decoder that hard-codes them looks right.
IDS = (4, 6, 3)
# the tokens of a hand-built model renamed: old id -> new id (PAD, START, END -> IDS)
RENAME = (4, 6, 3, 0, 1, 2, 5, 7)


def renamed(model: MarkovModel) -> MarkovModel:
    """``model`` with its target tokens renamed by RENAME: the same chain, so the right output is the old one
    renamed, but padding, start and end are now the tokens IDS (and 0, 1, 2 are ordinary tokens)."""
    weight = model.generator.weight.detach()
    new = torch.empty_like(weight)
    index = torch.tensor(RENAME)
    new[index[:, None], index[None, :]] = weight[:, :V]  # row: the next token; column: the last token
    new[index, V:] = weight[:, V:]
    return _with_weight(model, new)


def small_transformer(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    model = solutions.Transformer(
        9, V, d_model=D_MODEL, num_layers=LAYERS, num_heads=HEADS, d_ff=D_FF, max_seq_length=MAX_LEN
    ).eval()
    with torch.no_grad():
        model.generator.bias[END] += 1.0
    return model


# --------------------------------------------------------------------------------------------------
# The reference algorithms with their classic mistakes switched on
# --------------------------------------------------------------------------------------------------
@torch.no_grad()
def greedy_variant(
    model,
    src,
    max_len,
    start=START,
    end=END,
    pad=PAD,
    *,
    early_stop: bool = True,
    pad_after_end: bool = True,
    position: int = -1,
    start_token: bool = True,
    masks: str = "both",
    fill: int | None = None,
    drop_last: bool = False,
    short: int = 0,
    start_as: int | None = None,
    end_as: int | None = None,
) -> torch.Tensor:
    """The reference greedy decoding and its classic mistakes: ``fill`` the token finished rows get instead of
    ``pad``; ``drop_last``: the step that finishes the last row is not appended; ``short``: stops ``short``
    tokens before max_len; ``start_as`` / ``end_as``: a start / end token used whatever ``start`` / ``end`` is."""
    end = end if end_as is None else end_as
    src_mask = solutions.create_padding_mask(src, pad) if masks in ("both", "no_future") else None
    memory = model.encode(src, src_mask)
    ys = torch.full((src.size(0), 1), start if start_as is None else start_as, dtype=torch.long)
    finished = torch.zeros(src.size(0), dtype=torch.bool)
    while ys.size(1) < max_len - short:
        tgt_mask = solutions.create_masks(src, ys, pad)[1] if masks in ("both", "no_src") else None
        logits = model.generator(model.decode(ys, memory, src_mask, tgt_mask)[:, position])
        nxt = logits.argmax(-1)
        if pad_after_end:
            nxt = nxt.masked_fill(finished, pad if fill is None else fill)
        if drop_last and early_stop and (finished | (nxt == end)).all():
            break
        ys = torch.cat([ys, nxt[:, None]], dim=1)
        finished = finished | (nxt == end)
        if early_stop and finished.all():
            break
    return ys if start_token else ys[:, 1:]


def greedy_hypotheses(model, src, max_len) -> dict:
    variants = {
        "greedy_no_early_stop": dict(early_stop=False),
        "greedy_no_padding_after_end": dict(pad_after_end=False),
        "greedy_no_padding_after_end#no-stop": dict(pad_after_end=False, early_stop=False),
        "greedy_no_padding_after_end#end": dict(fill=END),
        "greedy_uses_first_position": dict(position=0),
        "greedy_missing_start_token": dict(start_token=False),
        "greedy_wrong_masks": dict(masks="no_future"),
        "greedy_wrong_masks#src": dict(masks="no_src"),
        "greedy_wrong_masks#none": dict(masks="none"),
    }
    return {k: (lambda kw=kw: greedy_variant(model, src, max_len, **kw)) for k, kw in variants.items()}


# Mistakes that combine (each changes one thing of greedy decoding): diagnosis id -> greedy_variant's arguments.
# Several of them at once give an output no single mistake explains (see :func:`greedy_compound`).
GREEDY_ATOMS = (
    ("greedy_no_padding_after_end", dict(pad_after_end=False)),
    ("greedy_no_padding_after_end", dict(fill=END)),
    ("greedy_drops_last_end", dict(drop_last=True)),
    ("greedy_max_len_off_by_one", dict(short=1)),
    ("greedy_no_early_stop", dict(early_stop=False)),
    ("greedy_missing_start_token", dict(start_token=False)),
    ("greedy_uses_first_position", dict(position=0)),
)


def greedy_compound(runs: list, atoms=GREEDY_ATOMS, start=START, end=END, pad=PAD) -> tuple[list[str], bool]:
    """The smallest set of mistakes (2 or 3 of ``atoms``, each changing another argument) whose combination
    gives every learner output of ``runs`` ((model, src, max_len, output) tuples), else the smallest one that
    gives the first, with whether it gives them all; ([], False) when none does. The ids come in the order
    of ``atoms``."""

    def gives(combo, run) -> bool:
        model, src, max_len, out = run
        kwargs = {k: v for _, kw in combo for k, v in kw.items()}
        try:
            return _same_tokens(out, greedy_variant(model, src, max_len, start, end, pad, **kwargs))
        except Exception:  # noqa: BLE001 - a combination that cannot be computed does not match
            return False

    for wanted in (runs, runs[:1]):
        for size in (2, 3):
            for combo in itertools.combinations(atoms, size):
                keys = [k for _, kw in combo for k in kw]
                if len(set(keys)) != len(keys) or len({d for d, _ in combo}) != size:
                    continue
                if all(gives(combo, run) for run in wanted):
                    return [d for d, _ in combo], len(wanted) == len(runs)
    return [], False


@torch.no_grad()
def beam_variant(
    model,
    src,
    max_len,
    start=START,
    end=END,
    beam_size=4,
    alpha=0.6,
    pad=PAD,
    *,
    penalty: str = "finished",
    first_finished: bool = False,
) -> torch.Tensor:
    """The reference beam search; ``penalty``: finished | none | all | count_start | power."""

    def score_finished(logp: float, length: int) -> float:
        if penalty == "none":
            return logp
        if penalty == "count_start":
            return length_penalty_score(logp, length + 1, alpha)
        if penalty == "power":
            return logp / max(length, 1) ** alpha
        if penalty == "multiply":
            return logp * ((5 + length) / 6) ** alpha
        return length_penalty_score(logp, length, alpha)

    src_mask = solutions.create_padding_mask(src, pad)
    memory = model.encode(src, src_mask)
    beams = torch.full((1, 1), start, dtype=torch.long)
    scores = torch.zeros(1)
    finished: list[tuple[float, torch.Tensor]] = []
    while beams.size(1) < max_len and len(finished) < beam_size:
        k = beams.size(0)
        _, tgt_mask = solutions.create_masks(src.expand(k, -1), beams, pad)
        out = model.decode(beams, memory.expand(k, -1, -1), src_mask.expand(k, -1, -1, -1), tgt_mask)
        log_probs = torch.log_softmax(model.generator(out[:, -1]).float(), dim=-1)
        candidates = (scores[:, None] + log_probs).flatten()
        if penalty == "all":  # ranks partial hypotheses by the penalised score too
            rank = candidates / (((5 + beams.size(1)) / 6) ** alpha)
            order = rank.argsort(descending=True)[: 2 * beam_size]
            top_scores, top_ids = candidates[order], order
        else:
            top_scores, top_ids = candidates.topk(min(2 * beam_size, candidates.numel()))
        next_beams, next_scores = [], []
        for score, flat in zip(top_scores.tolist(), top_ids.tolist()):
            tokens = torch.cat([beams[flat // V], beams.new_tensor([flat % V])])
            if flat % V == end:
                finished.append((score_finished(score, tokens.numel() - 1), tokens))
                if first_finished:
                    return tokens
            else:
                next_beams.append(tokens)
                next_scores.append(score)
            if len(next_beams) == beam_size or len(finished) >= beam_size:
                break
        if not next_beams:
            break
        beams, scores = torch.stack(next_beams), torch.tensor(next_scores)
    if not finished:
        finished = [(score_finished(s, beams.size(1) - 1), b) for s, b in zip(scores.tolist(), beams)]
    return max(finished, key=lambda pair: pair[0])[1]


def beam_hypotheses(model, src, max_len, beam_size, alpha) -> dict:
    variants = {
        "beam_no_length_penalty": dict(penalty="none"),
        "beam_wrong_length_penalty#all": dict(penalty="all"),
        "beam_wrong_length_penalty#start": dict(penalty="count_start"),
        "beam_wrong_length_penalty#power": dict(penalty="power"),
        "beam_wrong_length_penalty#multiply": dict(penalty="multiply"),
        "beam_returns_first_finished": dict(first_finished=True),
    }
    hyps = {
        k: (lambda kw=kw: beam_variant(model, src, max_len, beam_size=beam_size, alpha=alpha, **kw))
        for k, kw in variants.items()
    }
    if beam_size > 1:  # at beam_size=1 the greedy result is the right one
        hyps["beam_acts_greedy"] = lambda: greedy_variant(model, src, max_len)[0]
    return hyps


def _same_tokens(actual, expected) -> bool:
    return (
        isinstance(actual, torch.Tensor)
        and actual.shape == expected.shape
        and torch.equal(actual.detach().cpu().long(), expected.cpu().long())
    )


def _match(actual, hypotheses: dict) -> list[str]:
    for name, make in hypotheses.items():
        try:
            if _same_tokens(actual, make() if callable(make) else make):
                return [name.split("#")[0]]
        except Exception:  # noqa: BLE001
            continue
    return []


def _fmt(tokens: torch.Tensor) -> str:
    return str(tokens.tolist())


def _expect_unchanged_by_decoding(
    decode: Callable[[nn.Module, torch.Tensor], Any], src: torch.Tensor, what: str
) -> None:
    """``decode(model, src)`` on a small Transformer leaves ``src`` and every tensor of the model's
    state_dict as they were (the state_dict is read again afterwards)."""
    model = small_transformer(5)
    before = snapshot(src, *model.state_dict().values())
    decode(model, src)
    expect_unchanged(before, (src, *model.state_dict().values()), ["src"] + list(model.state_dict()), what)


# --------------------------------------------------------------------------------------------------
# greedy_decode
# --------------------------------------------------------------------------------------------------
GREEDY_SRC = torch.tensor([[1, 5, 6, 0], [2, 3, 0, 0], [3, 4, 4, 5]])
# (seed, end_boost, scale) of hand-built models on which every known greedy mistake shows
GREEDY_CASES = ((4, 1.0, 1.0), (9, 0.0, 2.0))


def _call_greedy(ctx: Ctx, model, src, max_len: int, ids: tuple[int, int, int] = (PAD, START, END)):
    pad, start, end = ids
    return learner_call(
        ctx.obj,
        model,
        src.clone(),
        max_len,
        start,
        end,
        pad,
        what=f"greedy_decode(model, src {list(src.shape)}, max_len={max_len}, start_idx={start}, "
        f"end_idx={end}, pad_idx={pad})",
    )


def _greedy_batch_error(ctx: Ctx, model, src, max_len: int, fail: Fail) -> Fail:
    """``fail`` (an error on a batch of several rows) with a diagnosis when each row alone runs."""
    same = True
    for row in range(src.size(0)):
        try:
            out = _call_greedy(ctx, model, src[row : row + 1], max_len)
        except Fail:
            return fail
        want = greedy_variant(model, src[row : row + 1], max_len)
        same = same and isinstance(out, torch.Tensor) and _same_tokens(out.reshape(1, -1), want)
    return Fail(
        f"{fail.message}\nYet on each sentence of that batch alone (a batch of one row) yours runs"
        f"{' and gives the right tokens' if same else ''}: it breaks only for a batch of more than one row "
        f"(B = {src.size(0)}).",
        ["greedy_batch_of_one"],
    )


def _greedy(ctx: Ctx, model, src, max_len: int, ids: tuple[int, int, int] = (PAD, START, END)):
    try:
        out = _call_greedy(ctx, model, src, max_len, ids)
    except Fail as fail:
        if src.size(0) == 1 or fail.diagnoses:
            raise
        raise _greedy_batch_error(ctx, model, src, max_len, fail) from None
    out = expect_tensor(out, "greedy_decode")
    if out.dim() != 2 or out.size(0) != src.size(0):
        raise Fail(
            f"greedy_decode should return a [B, L] tensor (B = {src.size(0)}), but yours has shape {list(out.shape)}.",
            ["returns_wrong_type"],
        )
    if out.size(1) > max_len:
        raise Fail(f"greedy_decode returned {out.size(1)} tokens per row with max_len={max_len}.")
    return out


def _stops_decoding(ctx: Ctx, model: MarkovModel, max_len: int, want: torch.Tensor, out: torch.Tensor) -> bool:
    """Whether the learner's decoding, whose output ``out`` is ``want`` padded to ``max_len``, stops calling
    the model when every row has finished: it gives the same output with a copy of ``model`` that refuses to
    decode more target tokens than the right decoding needs (an effect seen across processes too)."""
    limited = copy.deepcopy(model)
    limited.decode_limit = want.size(1) - 1
    try:
        again = _call_greedy(ctx, limited, GREEDY_SRC, max_len)
    except Fail:
        return False
    return _same_tokens(again, out)


@GREEDY.test("interface")
def signature(ctx: Ctx) -> None:
    expect_signature(
        ctx.obj,
        "greedy_decode",
        ((None, None, 5, START, END), {}),
        ((None, None, 5, START, END), {"pad_idx": PAD}),
        shown="greedy_decode(model, src, max_len, start_idx, end_idx, pad_idx=0)",
    )


@GREEDY.test("shapes")
def returns_batch_by_length_token_ids(ctx: Ctx) -> None:
    model = MarkovModel(*GREEDY_CASES[0])
    out = _greedy(ctx, model, GREEDY_SRC, 10)
    if out.dtype != torch.long:
        raise Fail(
            f"greedy_decode should return token ids (torch.long), but yours are {out.dtype}.", ["returns_wrong_type"]
        )
    _greedy(ctx, model, GREEDY_SRC[:1, :1], 1)


@GREEDY.test("numbers")
def matches_greedy_decoding_on_hand_built_models(ctx: Ctx) -> None:
    for case in GREEDY_CASES:
        model, seed = MarkovModel(*case), case[0]
        lengths = (12, 3)
        for max_len in lengths:
            out = _greedy(ctx, model, GREEDY_SRC, max_len)
            want = greedy_variant(model, GREEDY_SRC, max_len)
            if not _same_tokens(out, want):
                message = (
                    f"On a hand-built model (seed {seed}) with max_len={max_len}, greedy_decode should give "
                    f"{_fmt(want)}, but yours gives {_fmt(out)}."
                )
                found = _match(out, greedy_hypotheses(model, GREEDY_SRC, max_len))
                if found == ["greedy_no_early_stop"] and _stops_decoding(ctx, model, max_len, want, out):
                    raise Fail(
                        f"{message}\nYours stops calling the model once every row has finished (good), but its "
                        f"output always has max_len = {max_len} columns: after column {want.size(1)} they are all "
                        "padding. When every row has finished, the output ends there.",
                        ["greedy_pads_to_max_len"],
                    )
                if not found:
                    raise _greedy_compound_fail(ctx, model, lengths, max_len, out, message)
                raise Fail(message, found)


def _greedy_compound_fail(ctx: Ctx, model, lengths, max_len: int, out, message: str) -> Fail:
    """A wrong greedy output no single known mistake explains: the failure, naming the mistakes whose
    combination gives it (and the learner's outputs for the other max_len on that model too, when possible)."""
    runs = [(model, GREEDY_SRC, max_len, out)]
    for other in lengths:
        if other != max_len:
            try:
                runs.append((model, GREEDY_SRC, other, _greedy(ctx, model, GREEDY_SRC, other)))
            except Fail:
                pass
    found, every = greedy_compound(runs)
    if not found:
        return Fail(message)
    others = ", ".join(f"max_len={run[2]}" for run in runs[1:])
    also = f" (and your outputs with {others} on that model too)" if every and others else ""
    return Fail(
        f"{message}\nNo single known mistake gives that output, but {len(found)} of them together give exactly "
        f"yours{also}: each is explained below.",
        found,
    )


@GREEDY.test("numbers")
def gives_the_model_the_right_masks(ctx: Ctx) -> None:
    src = torch.tensor([[3, 5, 7, 2, 0, 0], [4, 4, 6, 8, 5, 1]])
    for seed in (2, 5):  # models on which a missing future or padding mask changes the output
        model = small_transformer(seed)
        out = _greedy(ctx, model, src, 7)
        want = greedy_variant(model, src, 7)
        if not _same_tokens(out, want):
            raise Fail(
                f"On a small Transformer, greedy_decode should give {_fmt(want)}, but yours gives {_fmt(out)}.",
                _match(out, greedy_hypotheses(model, src, 7)),
            )


# GREEDY_SRC with IDS[0] as its padding (and no other token equal to it)
GREEDY_SRC_IDS = torch.tensor([[1, 5, 6, 4], [2, 3, 4, 4], [3, 5, 7, 5]])


@GREEDY.test("properties")
def uses_the_token_ids_it_is_given(ctx: Ctx) -> None:
    pad, start, end = IDS
    id_atoms = (
        ("greedy_start_not_start_idx", dict(start_as=START)),
        ("greedy_pad_not_pad_idx", dict(fill=PAD)),
        ("greedy_end_not_end_idx", dict(end_as=END)),
    )
    for case in GREEDY_CASES:
        model = renamed(MarkovModel(*case))
        for max_len in (12, 3):
            out = _greedy(ctx, model, GREEDY_SRC_IDS, max_len, IDS)
            want = greedy_variant(model, GREEDY_SRC_IDS, max_len, start, end, pad)
            if _same_tokens(out, want):
                continue
            message = (
                f"With other token ids, pad_idx={pad}, start_idx={start}, end_idx={end} (the same hand-built model "
                f"of seed {case[0]} with its tokens renamed), greedy_decode with max_len={max_len} should give "
                f"{_fmt(want)}, but yours gives {_fmt(out)}. With pad_idx=0, start_idx=1, end_idx=2 yours was right."
            )
            found = []
            for diagnosis, kwargs in id_atoms:
                if _same_tokens(out, greedy_variant(model, GREEDY_SRC_IDS, max_len, start, end, pad, **kwargs)):
                    found = [diagnosis]
                    break
            if not found:
                found, _ = greedy_compound([(model, GREEDY_SRC_IDS, max_len, out)], id_atoms, start, end, pad)
            raise Fail(message, found)


@GREEDY.test("hygiene")
def does_not_change_src_or_the_model(ctx: Ctx) -> None:
    _expect_unchanged_by_decoding(
        lambda model, src: learner_call(ctx.obj, model, src, 5, START, END, PAD, what="greedy_decode"),
        torch.tensor([[3, 5, 7, 2, 0, 0]]),
        "greedy_decode",
    )


@GREEDY.own_parts_test
def with_your_own_parts(ctx: Ctx) -> None:
    src = torch.tensor([[3, 5, 7, 2, 0, 0], [4, 4, 6, 8, 5, 1]])
    models = [small_transformer(seed) for seed in (2, 5)]  # wrong masks change their outputs
    own_parts_check(
        ctx,
        lambda: (ctx.obj, ctx.reference),
        lambda f: torch.cat([f(m, src, 7, START, END, PAD).flatten().float() for m in models]),
    )


# --------------------------------------------------------------------------------------------------
# beam_search
# --------------------------------------------------------------------------------------------------
# (seed, end_boost, scale, beam size, alpha): hand-built models on which every known beam mistake shows
BEAM_CASES = (
    (5, 0.0, 2.0, 3, 1.0),
    (56, 0.0, 2.0, 4, 0.6),
    (1, -1.0, 1.0, 4, 0.6),
    (71, -1.0, 1.0, 4, 0.6),
    (27, 0.0, 2.0, 3, 1.0),
)
BEAM_SRC = torch.tensor([[1, 5, 6]])


def _call_beam(
    ctx: Ctx, model, src, max_len: int, beam_size: int, alpha: float, ids: tuple[int, int, int] = (PAD, START, END)
):
    pad, start, end = ids
    shown_pad = f", pad_idx={pad}" if pad != PAD else ""
    return learner_call(
        ctx.obj,
        model,
        src.clone(),
        max_len,
        start,
        end,
        beam_size=beam_size,
        length_penalty=alpha,
        pad_idx=pad,
        what=f"beam_search(model, src {list(src.shape)}, max_len={max_len}, "
        f"start_idx={start}, end_idx={end}, beam_size={beam_size}, length_penalty={alpha}{shown_pad})",
    )


# Hand-built models on which no hypothesis ever finishes (end_idx is never likely) or all finish at once
NEVER_ENDS, ENDS_AT_ONCE = (5, -30.0, 2.0), (5, 30.0, 2.0)


def _beam_error(ctx: Ctx, max_len: int, beam_size: int, alpha: float, fail: Fail) -> Fail:
    """``fail`` (an error) with a diagnosis when the error comes only where no hypothesis finishes."""
    try:
        _call_beam(ctx, MarkovModel(*ENDS_AT_ONCE), BEAM_SRC, max_len, beam_size, alpha)
    except Fail:
        return fail
    try:
        _call_beam(ctx, MarkovModel(*NEVER_ENDS), BEAM_SRC, max_len, beam_size, alpha)
    except Fail as never:
        return Fail(
            f"On a hand-built model that never predicts end_idx={END} (so no hypothesis finishes within "
            f"max_len={max_len}), {never.message[0].lower()}{never.message[1:]}\nOn a model where every "
            "hypothesis finishes at once, yours runs.",
            ["beam_no_finished_hypothesis"],
        )
    return fail


def _beam(
    ctx: Ctx,
    model,
    src,
    max_len: int,
    beam_size: int,
    alpha: float,
    *,
    explain_errors: bool = True,
    ids: tuple[int, int, int] = (PAD, START, END),
):
    try:
        out = _call_beam(ctx, model, src, max_len, beam_size, alpha, ids)
    except Fail as fail:
        if not explain_errors or fail.diagnoses:
            raise
        raise _beam_error(ctx, max_len, beam_size, alpha, fail) from None
    out = expect_tensor(out, "beam_search")
    if out.dim() != 1:
        raise Fail(
            f"beam_search should return one sentence, a 1-D tensor [L], but yours has shape {list(out.shape)}.",
            ["returns_wrong_type"],
        )
    return out


@BEAM.test("interface")
def signature(ctx: Ctx) -> None:  # noqa: F811
    expect_signature(
        ctx.obj,
        "beam_search",
        ((None, None, 5, START, END), {}),
        ((None, None, 5, START, END), {"beam_size": 4, "length_penalty": 0.6, "pad_idx": PAD}),
        shown="beam_search(model, src, max_len, start_idx, end_idx, beam_size=4, length_penalty=0.6, pad_idx=0)",
    )


@BEAM.test("shapes")
def returns_one_sentence_of_token_ids(ctx: Ctx) -> None:
    model = MarkovModel(*BEAM_CASES[0][:3])
    out = _beam(ctx, model, BEAM_SRC, 10, 4, 0.6)
    if out.dtype != torch.long or out.numel() == 0 or out[0].item() != START:
        raise Fail(
            f"beam_search should return token ids (torch.long) starting with start_idx={START}; yours "
            f"returned {_fmt(out)} ({out.dtype}).",
            ["greedy_missing_start_token"] if out.numel() else [],
        )
    if out.numel() > 10:
        raise Fail(f"beam_search returned {out.numel()} tokens with max_len=10.")


@BEAM.test("numbers")
def beam_size_one_is_greedy(ctx: Ctx) -> None:
    for seed, boost, scale, _, _ in BEAM_CASES:
        model = MarkovModel(seed, boost, scale)
        want = greedy_variant(model, BEAM_SRC, 10)[0]
        out = _beam(ctx, model, BEAM_SRC, 10, 1, 0.6)
        if not _same_tokens(out, want):
            raise Fail(
                f"With beam_size=1, beam_search should give the greedy result {_fmt(want)}, but yours "
                f"gives {_fmt(out)}.",
                ["beam_not_greedy_at_one"],
            )


@torch.no_grad()
def sequence_score(model, src, tokens: torch.Tensor, alpha: float) -> float:
    """The length-penalised log-probability of ``tokens`` (start token first) under ``model``."""
    ys = tokens.long()[None]
    src_mask = solutions.create_padding_mask(src)
    memory = model.encode(src, src_mask)
    _, tgt_mask = solutions.create_masks(src, ys[:, :-1])
    log_probs = torch.log_softmax(model.generator(model.decode(ys[:, :-1], memory, src_mask, tgt_mask)).float(), -1)
    logp = log_probs[0].gather(1, ys[0, 1:, None]).sum().item()
    return length_penalty_score(logp, ys.size(1) - 1, alpha)


def equally_good(model, src, out, want, alpha: float, start: int = START, end: int = END) -> bool:
    """Another hypothesis with exactly the best score (a tie broken differently) is right too."""
    if _same_tokens(out, want):
        return True
    if out.dim() != 1 or out.numel() < 2 or out[0].item() != start or out.numel() > 64:
        return False
    if (out[-1].item() == end) != (want[-1].item() == end) or (out[:-1] == end).any():
        return False
    try:
        return abs(sequence_score(model, src, out, alpha) - sequence_score(model, src, want, alpha)) < 1e-4
    except Exception:  # noqa: BLE001 - tokens out of range and the like
        return False


@BEAM.test("numbers")
def finds_the_best_hypothesis_on_hand_built_models(ctx: Ctx) -> None:
    runs = []  # (model, max_len, beam_size, alpha, learner output, reference output)
    for seed, boost, scale, beam_size, alpha in BEAM_CASES:
        model = MarkovModel(seed, boost, scale)
        for max_len in (10, 4):
            want = beam_variant(model, BEAM_SRC, max_len, beam_size=beam_size, alpha=alpha)
            runs.append(
                (seed, model, max_len, beam_size, alpha, _beam(ctx, model, BEAM_SRC, max_len, beam_size, alpha), want)
            )
    wrong = [r for r in runs if not equally_good(r[1], BEAM_SRC, r[5], r[6], r[4])]
    if not wrong:
        return
    seed, model, max_len, beam_size, alpha, out, want = wrong[0]
    head = (
        f"On a hand-built model (seed {seed}), beam_search with beam_size={beam_size}, length_penalty={alpha} "
        f"and max_len={max_len} should give {_fmt(want)}, but yours gives {_fmt(out)}."
    )
    probed = _probe_beam(ctx, runs)
    if probed:
        raise Fail(f"{head}\n{probed[0]}", [probed[1]])
    # The known mistake that explains EVERY output (several can explain one of them).
    names = beam_hypotheses(model, BEAM_SRC, max_len, beam_size, alpha)
    diagnoses = []
    for name in names:
        if all(
            equally_good(r[1], BEAM_SRC, r[5], beam_hypotheses(r[1], BEAM_SRC, r[2], r[3], r[4])[name](), r[4])
            for r in runs
        ):
            diagnoses = [name.split("#")[0]]
            break
    raise Fail(head, diagnoses or _match(out, names))


def _probe_beam(ctx: Ctx, runs: list) -> tuple[str, str] | None:
    """Two properties every right beam search has, tried on the models of ``runs``, the most
    fundamental first: (what broke, the diagnosis) for the first broken one, else None.

    * its output does not change when every logit of a step is shifted by one constant (the
      probabilities stay the same): scores add up log-probabilities, not raw logits;
    * its output does not change when only the predictions AFTER the end token change: a finished
      hypothesis is not extended.
    """
    probes = (
        (lambda m: [shifted_logits(m)], "every logit of a step is shifted by the same amount, which leaves "
         "the probabilities as they were", "beam_sums_logits"),
        (after_end_variants, "only the model's predictions AFTER the end token change", "beam_extends_finished"),
    )  # fmt: skip
    for make, change, diagnosis in probes:
        for seed, model, max_len, beam_size, alpha, out, _ in runs:
            for other in make(model):
                try:
                    got = _beam(ctx, other, BEAM_SRC, max_len, beam_size, alpha, explain_errors=False)
                except Fail:
                    continue
                if not equally_good(model, BEAM_SRC, got, out, alpha):
                    return (
                        f"On the model of seed {seed} (beam_size={beam_size}, max_len={max_len}) yours gives "
                        f"{_fmt(out)}; when {change}, yours gives {_fmt(got)} instead.",
                        diagnosis,
                    )
    return None


@BEAM.test("numbers")
def works_with_a_real_transformer(ctx: Ctx) -> None:
    src = torch.tensor([[3, 5, 7, 2, 0]])
    model = small_transformer(7)
    want = beam_variant(model, src, 7, beam_size=3)
    out = _beam(ctx, model, src, 7, 3, 0.6)
    if not equally_good(model, src, out, want, 0.6):
        raise Fail(
            f"On a small Transformer, beam_search (beam_size=3) should give {_fmt(want)}, but yours gives {_fmt(out)}.",
            _match(out, beam_hypotheses(model, src, 7, 3, 0.6)),
        )


@BEAM.test("properties")
def uses_the_token_ids_it_is_given(ctx: Ctx) -> None:  # noqa: F811 - the same row name on greedy's spec
    pad, start, end = IDS
    for seed, boost, scale, beam_size, alpha in BEAM_CASES[:2]:
        model = renamed(MarkovModel(seed, boost, scale))
        for max_len in (10, 4):
            want = beam_variant(model, BEAM_SRC, max_len, start, end, beam_size, alpha, pad)
            out = _beam(ctx, model, BEAM_SRC, max_len, beam_size, alpha, explain_errors=False, ids=IDS)
            if equally_good(model, BEAM_SRC, out, want, alpha, start, end):
                continue
            hyps = {
                "greedy_start_not_start_idx": beam_variant(model, BEAM_SRC, max_len, START, end, beam_size, alpha, pad),
                "greedy_end_not_end_idx": beam_variant(model, BEAM_SRC, max_len, start, END, beam_size, alpha, pad),
            }
            raise Fail(
                f"With other token ids, start_idx={start}, end_idx={end}, pad_idx={pad} (the hand-built model of "
                f"seed {seed} with its tokens renamed), beam_search with beam_size={beam_size}, "
                f"length_penalty={alpha} and max_len={max_len} should give {_fmt(want)}, but yours gives "
                f"{_fmt(out)}. With start_idx=1, end_idx=2 yours was right.",
                _match(out, hyps),
            )


@BEAM.test("hygiene")
def does_not_change_src_or_the_model(ctx: Ctx) -> None:  # noqa: F811
    _expect_unchanged_by_decoding(
        lambda model, src: learner_call(ctx.obj, model, src, 5, START, END, what="beam_search"),
        torch.tensor([[3, 5, 7, 2, 0]]),
        "beam_search",
    )


@BEAM.own_parts_test
def with_your_own_parts(ctx: Ctx) -> None:  # noqa: F811
    src = torch.tensor([[3, 5, 7, 2, 0]])
    models = [small_transformer(seed) for seed in (2, 7)]
    own_parts_check(
        ctx,
        lambda: (ctx.obj, ctx.reference),
        lambda f: torch.cat([f(m, src, 7, START, END, beam_size=3).float() for m in models]),
    )
