"""Chapter 11: ``greedy_decode`` and ``beam_search`` (section 6.1).

Decoders are graded on hand-built models whose next-token distribution is known exactly (a small
Markov chain over tokens, a different one for each source sentence), so the right output is known and
every classic mistake gives a different one; and on a small real Transformer for the masks.
"""

from __future__ import annotations

import copy
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
) -> torch.Tensor:
    src_mask = solutions.create_padding_mask(src, pad) if masks in ("both", "no_future") else None
    memory = model.encode(src, src_mask)
    ys = torch.full((src.size(0), 1), start, dtype=torch.long)
    finished = torch.zeros(src.size(0), dtype=torch.bool)
    while ys.size(1) < max_len:
        tgt_mask = solutions.create_masks(src, ys, pad)[1] if masks in ("both", "no_src") else None
        logits = model.generator(model.decode(ys, memory, src_mask, tgt_mask)[:, position])
        nxt = logits.argmax(-1)
        if pad_after_end:
            nxt = nxt.masked_fill(finished, pad if fill is None else fill)
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
            if _same_tokens(actual, make()):
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


def _call_greedy(ctx: Ctx, model, src, max_len: int):
    return learner_call(
        ctx.obj,
        model,
        src.clone(),
        max_len,
        START,
        END,
        PAD,
        what=f"greedy_decode(model, src {list(src.shape)}, max_len={max_len}, start_idx={START}, "
        f"end_idx={END}, pad_idx={PAD})",
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


def _greedy(ctx: Ctx, model, src, max_len: int):
    try:
        out = _call_greedy(ctx, model, src, max_len)
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
        for max_len in (12, 3):
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
                raise Fail(message, found)


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


def _call_beam(ctx: Ctx, model, src, max_len: int, beam_size: int, alpha: float):
    return learner_call(
        ctx.obj,
        model,
        src.clone(),
        max_len,
        START,
        END,
        beam_size=beam_size,
        length_penalty=alpha,
        pad_idx=PAD,
        what=f"beam_search(model, src {list(src.shape)}, max_len={max_len}, "
        f"start_idx={START}, end_idx={END}, beam_size={beam_size}, length_penalty={alpha})",
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


def _beam(ctx: Ctx, model, src, max_len: int, beam_size: int, alpha: float, *, explain_errors: bool = True):
    try:
        out = _call_beam(ctx, model, src, max_len, beam_size, alpha)
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


def equally_good(model, src, out, want, alpha: float) -> bool:
    """Another hypothesis with exactly the best score (a tie broken differently) is right too."""
    if _same_tokens(out, want):
        return True
    if out.dim() != 1 or out.numel() < 2 or out[0].item() != START or out.numel() > 64:
        return False
    if (out[-1].item() == END) != (want[-1].item() == END) or (out[:-1] == END).any():
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
