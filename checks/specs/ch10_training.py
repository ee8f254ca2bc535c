"""Chapter 10: ``TransformerLRScheduler`` (section 5.3) and ``LabelSmoothingLoss`` (section 5.4)."""

from __future__ import annotations

import inspect
import re

import torch
import torch.nn.functional as F

import solutions

from ..core import Ctx, Fail, Spec, StubReached, learner_call, several
from .common import (
    _is_remote,
    _remote_problem,
    compare,
    expect_forward_signature,
    expect_init_signature,
    expect_inputs_unchanged,
    expect_module,
    expect_tensor,
    in_float64,
)

SCHEDULER = Spec("TransformerLRScheduler", solutions.TransformerLRScheduler)
LOSS = Spec("LabelSmoothingLoss", solutions.LabelSmoothingLoss)


# --------------------------------------------------------------------------------------------------
# TransformerLRScheduler
# --------------------------------------------------------------------------------------------------
def rate(step: int, d_model: int, warmup: int, factor: float = 1.0) -> float:
    """Equation 3 of section 5.3."""
    return factor * d_model**-0.5 * min(step**-0.5, step * warmup**-1.5)


def _optimizer(kind: str = "sgd", lr: float = 123.0) -> torch.optim.Optimizer:
    a, b = torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(3))
    groups = [{"params": [a]}, {"params": [b]}]
    return torch.optim.SGD(groups, lr=lr) if kind == "sgd" else torch.optim.Adam(groups, lr=lr)


def _scheduler(ctx: Ctx, optimizer, d_model: int = 512, warmup: int = 10, factor: float = 1.0):
    return ctx.new(optimizer, d_model, warmup_steps=warmup, factor=factor)


def _close(a, b) -> bool:
    return isinstance(a, (int, float)) and abs(a - b) <= 1e-9 + 1e-6 * abs(b)


def _as_float(value, what: str) -> float:
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if not isinstance(value, (int, float)):
        raise Fail(
            f"{what} should return a number (float), but returned {type(value).__name__}.", ["returns_wrong_type"]
        )
    return float(value)


PLACEHOLDER_LR = 123.0  # the rate the probes' optimizers are built with: a scheduler overwrites it


def _built(ctx: Ctx, optimizer, d_model: int = 64, warmup: int = 10):
    """The learner's scheduler built as well as it can be, for the probes: the contract's call first,
    then without `factor` (real schedulers often have none), then with positional arguments only.
    None when none of them works (the interface test reports why)."""
    for args, kwargs in (
        ((optimizer, d_model), {"warmup_steps": warmup, "factor": 1.0}),
        ((optimizer, d_model), {"warmup_steps": warmup}),
        ((optimizer, d_model, warmup), {}),
    ):
        try:
            return ctx.new(*args, **kwargs)
        except Fail:
            continue
    return None


def _step_problems(ctx: Ctx) -> list[Fail]:
    """What one call of the learner's step() does besides setting the rate, found by its effect.

    * It steps the optimizer (an optimizer wrapper, like The Annotated Transformer's NoamOpt): given an
      L-BFGS optimizer, whose own step() cannot run without a `closure`, the scheduler's step() fails
      inside optimizer.step(). Nothing else calls an optimizer's step(), and the effect is the same in
      the judge's worker (an optimizer there is a twin, whose parameters would not move visibly).
    * It sets the rate on the first parameter group only: with two groups at a placeholder rate, the
      first one changes and the second keeps it.
    When either is found, a step() that returns no number is said too (it goes with them: a wrapper's
    step returns nothing). Empty when the scheduler cannot be built or its step() does neither.
    """
    problems: list[Fail] = []
    lbfgs = torch.optim.LBFGS([torch.nn.Parameter(torch.zeros(2))], lr=PLACEHOLDER_LR)
    sched = _built(ctx, lbfgs)
    if sched is not None and callable(getattr(sched, "step", None)):
        try:
            learner_call(sched.step, what="step()")
        except Fail as fail:
            if "closure" in fail.message:
                problems.append(
                    Fail(
                        "Your TransformerLRScheduler's step() also steps the optimizer: when the checker "
                        "called only `scheduler.step()`, your code called `optimizer.step()` too. Here the "
                        "scheduler only sets the rate; the training loop calls `optimizer.step()` itself.",
                        ["lr_steps_the_optimizer"],
                    )
                )
    optimizer = _optimizer("sgd", PLACEHOLDER_LR)
    sched = _built(ctx, optimizer)
    if sched is None or not callable(getattr(sched, "step", None)):
        return problems
    try:
        returned = learner_call(sched.step, what="step()")
    except Fail:
        return problems
    lrs = [group["lr"] for group in optimizer.param_groups]
    constant = _constant_rate(sched, optimizer, returned, lrs)
    if constant is not None:
        problems.insert(0, constant)
    if lrs[0] != PLACEHOLDER_LR and PLACEHOLDER_LR in lrs[1:]:
        problems.append(
            Fail(
                f"After step(), the optimizer's first parameter group has lr={lrs[0]:.6g} but another "
                f"group still has the rate it was built with ({PLACEHOLDER_LR:g}): every param group's "
                f"'lr' should follow the schedule (the optimizer had {len(lrs)} groups: {lrs}).",
                ["lr_one_group_only"],
            )
        )
    if problems and not isinstance(returned, (int, float, torch.Tensor)):
        problems.append(
            Fail(
                "step() should return the rate it set (a float), but yours returned "
                + ("nothing (None)." if returned is None else f"a {type(returned).__name__}."),
                ["returns_wrong_type"],
            )
        )
    return problems


def _constant_rate(sched, optimizer, returned, lrs: list) -> Fail | None:
    """After a first step() (which returned ``returned`` and left the groups at ``lrs``): two more calls;
    a failure when the rate is the same all three times (equation 3 changes at every step), None otherwise
    (or when a later call fails)."""
    seen = [(returned, lrs[0])]
    for _ in range(2):
        try:
            again = learner_call(sched.step, what="step()")
        except Fail:
            return None
        seen.append((again, optimizer.param_groups[0]["lr"]))
    numbers = [
        float(r.item() if isinstance(r, torch.Tensor) and r.numel() == 1 else r)
        for r, _ in seen
        if isinstance(r, (int, float)) or (isinstance(r, torch.Tensor) and r.numel() == 1)
    ]
    set_rates = [lr for _, lr in seen]
    if len(numbers) == 3 and len(set(numbers)) == 1 and len(set(set_rates)) == 1:
        value = numbers[0]
    elif not numbers and len(set(set_rates)) == 1 and set_rates[0] != PLACEHOLDER_LR:
        value = set_rates[0]
    else:
        return None
    want = ", ".join(f"{rate(step, 64, 10):.3g}" for step in (1, 2, 3))
    return Fail(
        f"Your TransformerLRScheduler's rate never changes: three calls of step() all gave lr = {value:.6g}. "
        f"Equation 3 changes at every step: it rises during the warmup steps and falls after them (built with "
        f"d_model=64 and warmup_steps=10, steps 1, 2, 3 get {want}).",
        ["lr_constant"],
    )


@SCHEDULER.test("interface")
def constructor_and_methods(ctx: Ctx) -> None:
    """The constructor and the methods, and what step() does: a wrong interface stops the ladder, so
    what step() does to the optimizer is examined here too (on a scheduler built without `factor` when
    the constructor refuses it), and said first: it is the more fundamental difference."""
    problems: list[Fail] = []
    try:
        expect_init_signature(
            ctx,
            "(optimizer, d_model, warmup_steps=4000, factor=1.0)",
            ((None, 512), {}),
            ((None, 512), {"warmup_steps": 10, "factor": 2.0}),
        )
    except Fail as fail:
        problems.append(fail)
    try:
        sched = _scheduler(ctx, _optimizer())
    except Fail:
        if not problems:
            raise
        sched = _built(ctx, _optimizer())
    if sched is not None:
        for method in ("get_lr", "step"):
            if _is_remote(ctx.obj):  # a handle on the judge's worker: ask its class
                absent = (_remote_problem(ctx.obj, method, []) or ("",))[0] == "absent"
            else:
                absent = not callable(getattr(sched, method, None))
            if absent:
                problems.append(Fail(f"Your TransformerLRScheduler has no `{method}` method."))
    found = several(_step_problems(ctx) + problems)
    if found is not None:
        raise found


def _wrong_rate(got: float, step: int, d_model: int, warmup: int, factor: float = 1.0) -> tuple[str, list[str]]:
    """(words, diagnosis ids) for a wrong rate at ``step``: the rate of the step before or after (off by
    one), and/or the rate multiplied by the lr the probe's optimizer was built with (as torch's LambdaLR
    multiplies its lambda by the optimizer's initial lr); ("", ["lr_formula_wrong"]) when it is neither."""
    for scaled in (False, True):
        for shift in (0, 1, -1):
            if step + shift < 1 or (shift == 0 and not scaled):
                continue
            if not _close(got, (PLACEHOLDER_LR if scaled else 1.0) * rate(step + shift, d_model, warmup, factor)):
                continue
            words, ids = [], []
            if scaled:
                words.append(
                    f"Your rate is {PLACEHOLDER_LR:g} times equation 3's, and {PLACEHOLDER_LR:g} is the initial lr the "
                    "checker built the optimizer with (a placeholder): equation 3 gives the rate itself, so nothing "
                    "multiplies it by the optimizer's initial lr (torch's LambdaLR does that with its lambda)."
                )
                ids.append("lr_times_initial_lr")
            if shift:
                words.append(
                    f"{'And it' if scaled else 'It'} is the rate of step {step + shift}, not of step {step}: your step "
                    f"count is off by one (for step {step} yours computes equation 3 at step {step + shift})."
                )
                ids.append("lr_step_off_by_one")
            return "\n" + "\n".join(words), ids
    return "", ["lr_formula_wrong"]


@SCHEDULER.test("numbers")
def get_lr_follows_equation_3(ctx: Ctx) -> None:
    sched = _scheduler(ctx, _optimizer(), 512, 4000)
    steps = (1, 2, 100, 3999, 4000, 4001, 20000)
    values = [_as_float(learner_call(sched.get_lr, step, what=f"get_lr({step})"), f"get_lr({step})") for step in steps]
    if len(set(values)) == 1:
        raise Fail(
            f"With d_model=512 and warmup_steps=4000, your get_lr gives {values[0]:.6g} for every step "
            f"({', '.join(map(str, steps))}): your rate never changes. Equation 3 rises during the warmup steps "
            f"and falls after them (get_lr(1) = {rate(1, 512, 4000):.6g}, get_lr(4000) = {rate(4000, 512, 4000):.6g}).",
            ["lr_constant"],
        )
    for step, got in zip(steps, values):
        want = rate(step, 512, 4000)
        if not _close(got, want):
            words, ids = _wrong_rate(got, step, 512, 4000)
            raise Fail(
                f"With d_model=512 and warmup_steps=4000, get_lr({step}) should be {want:.6g}, "
                f"but yours gives {got:.6g}.{words}",
                ids,
            )


@SCHEDULER.test("numbers")
def factor_scales_the_rate(ctx: Ctx) -> None:
    sched = _scheduler(ctx, _optimizer(), 64, 10, factor=2.0)
    for step in (1, 5, 10, 50):
        got = _as_float(learner_call(sched.get_lr, step, what=f"get_lr({step})"), f"get_lr({step})")
        want = rate(step, 64, 10, 2.0)
        if not _close(got, want):
            words, diag = (
                ("", ["lr_factor_ignored"]) if _close(got, rate(step, 64, 10)) else _wrong_rate(got, step, 64, 10, 2.0)
            )
            raise Fail(
                f"With d_model=64, warmup_steps=10 and factor=2, get_lr({step}) should be {want:.6g}, "
                f"but yours gives {got:.6g}.{words}",
                diag,
            )


@SCHEDULER.test("numbers")
def step_sets_the_rate_on_every_param_group(ctx: Ctx) -> None:
    for kind in ("sgd", "adam"):
        optimizer = _optimizer(kind)
        sched = _scheduler(ctx, optimizer, 64, 10)
        for step in (1, 2, 3):
            try:
                got = _as_float(learner_call(sched.step, what=f"step() (call number {step})"), "step()")
            except Fail as fail:
                raise Fail(
                    fail.message, ["lr_step_off_by_one"] if "ZeroDivisionError" in fail.message else []
                ) from None
            want = rate(step, 64, 10)
            if not _close(got, want):
                words, ids = _wrong_rate(got, step, 64, 10)
                raise Fail(
                    f"Call number {step} of step() should return the rate of step {step}, {want:.6g}, "
                    f"but yours returns {got:.6g}.{words}",
                    ids,
                )
            lrs = [group["lr"] for group in optimizer.param_groups]
            if not all(_close(lr, want) for lr in lrs):
                raise Fail(
                    f"After call number {step} of step(), every param group's 'lr' should be {want:.6g}; "
                    f"the optimizer ({type(optimizer).__name__}) has {lrs}.",
                    ["lr_one_group_only" if _close(lrs[0], want) else "lr_never_set"],
                )


@SCHEDULER.test("numbers")
def step_with_a_number_jumps_there(ctx: Ctx) -> None:
    optimizer = _optimizer()
    sched = _scheduler(ctx, optimizer, 64, 10)
    got = _as_float(learner_call(sched.step, 100, what="step(100)"), "step(100)")
    want = rate(100, 64, 10)
    if not _close(got, want):
        raise Fail(
            f"step(100) should set and return the rate of step 100, {want:.6g}; yours returns {got:.6g}.",
            ["lr_step_off_by_one"] if _close(got, rate(101, 64, 10)) else [],
        )
    if not all(_close(g["lr"], want) for g in optimizer.param_groups):
        raise Fail("step(100) did not write the rate into the optimizer's param groups.", ["lr_never_set"])


# --------------------------------------------------------------------------------------------------
# LabelSmoothingLoss
# --------------------------------------------------------------------------------------------------
def ls_variant(
    logits,
    target,
    smoothing: float,
    ignore_index: int,
    *,
    spread: str = "V",
    ignore: bool = True,
    reduction: str = "mean",
    probs: bool = False,
    kl: bool = False,
) -> torch.Tensor:
    """Cross-entropy against the smoothed target, and its classic mistakes."""
    v = logits.size(-1)
    flat, t = logits.reshape(-1, v).double(), target.reshape(-1)
    lp = torch.softmax(flat, -1) if probs else torch.log_softmax(flat, -1)
    if spread == "V":
        q = torch.full_like(lp, smoothing / v)
        q.scatter_add_(1, t[:, None], torch.full_like(lp[:, :1], 1 - smoothing))
    elif spread == "V-no-target-share":  # s/V on the other classes, 1-s on the target: sums to 1 - s/V
        q = torch.full_like(lp, smoothing / v)
        q.scatter_(1, t[:, None], 1 - smoothing)
    elif spread == "V-1":
        q = torch.full_like(lp, smoothing / (v - 1))
        q.scatter_(1, t[:, None], 1 - smoothing)
    elif spread == "V-1-pad":  # s/(V-1) on every class, then the padding column set to 0: sums to 1 - s/(V-1)
        q = torch.full_like(lp, smoothing / (v - 1))
        q[:, ignore_index] = 0
        q.scatter_(1, t[:, None], 1 - smoothing)
    else:  # "V-2": the padding column gets nothing either
        q = torch.full_like(lp, smoothing / (v - 2))
        q[:, ignore_index] = 0
        q.scatter_(1, t[:, None], 1 - smoothing)
    loss = -(q * lp).sum(-1)
    if kl:
        loss = loss + torch.xlogy(q, q).sum(-1)
    keep = t != ignore_index if ignore else torch.ones_like(t, dtype=torch.bool)
    if reduction == "sum":
        return loss[keep].sum()
    if reduction == "mean_all":
        return loss[keep].sum() / t.numel()
    return loss[keep].mean()


def ls_hypotheses(logits, target, smoothing, ignore_index) -> dict:
    variants = {
        "ls_no_ignore_index": dict(ignore=False),
        "ls_wrong_distribution": dict(spread="V-1"),
        "ls_wrong_distribution#V-2": dict(spread="V-2"),
        "ls_wrong_distribution#V-1-pad": dict(spread="V-1-pad"),
        "ls_wrong_distribution#no-target-share": dict(spread="V-no-target-share"),
        "ls_sum_not_mean": dict(reduction="sum"),
        "ls_sum_not_mean#all": dict(reduction="mean_all"),
        "ls_probs_not_logprobs": dict(probs=True),
        "ls_kl_divergence": dict(kl=True),
    }
    hyps = {k: (lambda kw=kw: ls_variant(logits, target, smoothing, ignore_index, **kw)) for k, kw in variants.items()}
    hyps["ls_smoothing_ignored"] = lambda: ls_variant(logits, target, 0.0, ignore_index)
    return hyps


# The differences a real label-smoothing loss combines (code copied from a repository often has two or
# three): each as (diagnosis id, what it is in words, the keywords of ``ls_variant``). Grouped by what they
# change, the most fundamental group first: which quantity, its target distribution, its averaging.
_KL = "the KL divergence instead of the cross-entropy (lower by the target's entropy, a constant)"
_SPREAD = "the smoothing spread over {} instead of all V classes"
_NO_SHARE = "no smoothing share for the target class (it gets 1 - smoothing, not 1 - smoothing + smoothing/V)"
LS_DIFFERENCES: tuple[tuple[tuple[str, str, dict], ...], ...] = (
    (("ls_kl_divergence", _KL, {"kl": True}),),
    (
        ("ls_wrong_distribution", _SPREAD.format("V-1 classes (all but the target)"), {"spread": "V-1"}),
        ("ls_wrong_distribution", _SPREAD.format("V-2 classes (neither the target nor padding)"), {"spread": "V-2"}),
        (
            "ls_wrong_distribution",
            "the smoothing spread as smoothing/(V-1) over the classes with the padding column then set to zero "
            "(so the smoothed target sums to less than 1) instead of smoothing/V over all V classes",
            {"spread": "V-1-pad"},
        ),
        ("ls_wrong_distribution", _NO_SHARE, {"spread": "V-no-target-share"}),
    ),
    (
        ("ls_sum_not_mean", "a sum over the tokens instead of their mean", {"reduction": "sum"}),
        ("ls_sum_not_mean", "divided by all the tokens, padding included", {"reduction": "mean_all"}),
        ("ls_no_ignore_index", "the padding tokens counted as well", {"ignore": False}),
    ),
)


def ls_compound(got: torch.Tensor, logits, target, smoothing: float, ignore_index: int) -> list[tuple[str, str]]:
    """The differences (id, words) whose combination, two or three at once, gives ``got``: every loss
    with one choice from two or three of the groups of ``LS_DIFFERENCES`` is computed, those with fewer
    differences first, and the first that matches is returned (empty when none does). The loss values
    are fitted, never the code read."""
    import itertools

    for count in (2, 3):
        for groups in itertools.combinations(LS_DIFFERENCES, count):
            for choice in itertools.product(*groups):
                kwargs = {k: v for _, _, kw in choice for k, v in kw.items()}
                want = ls_variant(logits, target, smoothing, ignore_index, **kwargs)
                if torch.allclose(got.detach().double(), want, rtol=1e-4, atol=1e-5):
                    return [(diag, words) for diag, words, _ in choice]
    return []


def _loss_inputs(v: int = 7, pad: int = 0, dtype=torch.float32):
    logits = 2 * torch.randn(3, 5, v, dtype=dtype)
    target = torch.randint(1, v, (3, 5))
    target[target == pad] = (pad + 1) % v
    target[0, 3:], target[1, 4:] = pad, pad
    return logits, target


def _loss(ctx: Ctx, logits, target, smoothing: float = 0.1, ignore_index: int = 0):
    module = expect_module(ctx.new(smoothing=smoothing, ignore_index=ignore_index), "LabelSmoothingLoss")
    out = learner_call(
        module,
        logits,
        target,
        what=f"LabelSmoothingLoss(smoothing={smoothing}, ignore_index={ignore_index}) on logits {list(logits.shape)}",
    )
    out = expect_tensor(out, "LabelSmoothingLoss")
    if out.dim() != 0:
        raise Fail(
            f"The loss should be a single number (a 0-dimensional tensor), but yours has shape "
            f"{list(out.shape)}: average over the tokens.",
            ["ls_sum_not_mean"],
        )
    return out


def _single_difference(got: torch.Tensor, logits, target, smoothing: float, ignore_index: int) -> tuple[str, str]:
    """(id, words) of the one known difference (of ``LS_DIFFERENCES``) that gives ``got`` at a tolerance
    tighter than the hypotheses' (two differences can come close at theirs); ("", "") when none does."""
    for group in LS_DIFFERENCES:
        for diag, words, kwargs in group:
            want = ls_variant(logits, target, smoothing, ignore_index, **kwargs)
            if torch.allclose(got.detach().double(), want, rtol=1e-5, atol=1e-6):
                return diag, words
    return "", ""


def _gradient_problem(ctx: Ctx, smoothing: float, ignore_index: int) -> Fail | None:
    """A failure when the learner's loss on logits that require a gradient has no gradient (None when it has one)."""
    logits, target = _loss_inputs(pad=ignore_index)
    try:
        out = _loss(ctx, logits.clone().requires_grad_(True), target, smoothing, ignore_index)
    except Fail:
        return None
    if out.requires_grad:
        return None
    return Fail(
        "Your loss is cut off from the logits (no gradient): given logits that require a gradient, it returns a "
        "number with no graph, so training could not learn from it. Avoid .item(), .detach(), .data or "
        "torch.no_grad() inside the loss.",
        ["no_gradient"],
    )


def _compare_loss(ctx: Ctx, smoothing: float, ignore_index: int, gradient: bool = False) -> None:
    """The learner's loss against the contract's; ``gradient``: a failure also says when it has no gradient
    (said first: it makes the loss useless for training, whatever its value)."""
    logits, target = _loss_inputs(pad=ignore_index)
    got = _loss(ctx, logits.clone(), target.clone(), smoothing, ignore_index)
    want = F.cross_entropy(
        logits.reshape(-1, 7), target.reshape(-1), label_smoothing=smoothing, ignore_index=ignore_index
    )
    try:
        compare(
            got,
            want,
            f"Your loss with smoothing={smoothing} and ignore_index={ignore_index}",
            ls_hypotheses(logits, target, smoothing, ignore_index),
            rtol=1e-5,
            atol=1e-5,
        )
    except Fail as fail:
        found = _with_compound(fail, got, logits, target, smoothing, ignore_index)
        if found is fail and fail.diagnoses:
            diag, words = _single_difference(got, logits, target, smoothing, ignore_index)
            if words:
                found = Fail(
                    f"{fail.message}\nYour values are those of the contract's loss with one difference: {words}.",
                    [diag],
                )
        no_gradient = _gradient_problem(ctx, smoothing, ignore_index) if gradient else None
        raise (several([no_gradient, found]) if no_gradient is not None else found) from None


def _with_compound(fail: Fail, got, logits, target, smoothing: float, ignore_index: int) -> Fail:
    """``fail``, told which combination of known differences gives ``got`` when one does."""
    found = [] if fail.diagnoses else ls_compound(got, logits, target, smoothing, ignore_index)
    if not found:
        return fail
    differences = "; ".join(f"({i}) {words}" for i, (_, words) in enumerate(found, 1))
    return Fail(
        f"{fail.message}\nYour values are those of the contract's loss computed with {len(found)} "
        f"differences: {differences}.",
        [diag for diag, _ in found],
    )


def _init_parameters(ctx: Ctx) -> list[tuple[str, bool]] | None:
    """(name, has a default) of each named parameter of the learner's __init__ (without self); None when
    it takes any number of positional arguments or cannot be read (a handle on the judge's worker is
    asked with a call nobody can take, whose answer shows the parameters)."""
    if _is_remote(ctx.obj):
        problem = _remote_problem(ctx.obj, "__init__", [((0,) * 32, {})])
        if problem is None or problem[0] == "absent":
            return None
        shown = problem[0]
    else:
        try:
            shown = str(inspect.signature(ctx.obj.__init__))
        except (TypeError, ValueError):
            return None
    inner, depth, pieces, piece = shown.strip()[1:].rsplit(")", 1)[0], 0, [], ""
    for char in inner:
        depth += char in "([{"
        depth -= char in ")]}"
        if char == "," and depth == 0:
            pieces.append(piece)
            piece = ""
        else:
            piece += char
    pieces.append(piece)
    params = []
    for piece in (p.strip() for p in pieces):
        match = re.match(r"(\*{0,2})([A-Za-z_]\w*)", piece)
        if match is None:
            continue  # "/" or "*"
        if match.group(1) == "*":
            return None
        if match.group(1) == "**" or match.group(2) == "self":
            continue
        params.append((match.group(2), "=" in piece))
    return params


def _tolerant_loss_arguments(ctx: Ctx, vocab: int, smoothing: float, ignore_index: int) -> dict | None:
    """The contract's values under the learner's own parameter names (the smoothing, the ignored index
    as padding_idx / pad / ignore..., the vocabulary size as size / n_class / vocab...), matched by name
    only; None when a required parameter matches none of them."""
    params = _init_parameters(ctx)
    if not params:
        return None
    kwargs: dict = {}
    for name, has_default in params:
        low = name.lower()
        if "smooth" in low or low in ("eps", "epsilon", "alpha", "label_smoothing"):
            kwargs[name] = smoothing
        elif re.search(r"pad|ignore", low):
            kwargs[name] = ignore_index
        elif re.fullmatch(r"(n_?|num_?)?(size|class(es)?|vocab(_?size)?|tgt_?vocab(_?size)?|labels?|tokens?)", low):
            kwargs[name] = vocab
        elif not has_default:
            return None
    return kwargs


def _tolerant_loss_problems(ctx: Ctx) -> list[Fail]:
    """When the contract's constructor call does not fit: the loss built under the learner's own parameter
    names (see ``_tolerant_loss_arguments``) and compared on log-probabilities as logits (the contract's
    value is the same for them) of a 2-D batch; its differences as a failure (an empty list when it cannot
    be built or run, or when it matches)."""
    logits, target = _loss_inputs()
    logits, target = torch.log_softmax(logits.reshape(-1, 7), -1), target.reshape(-1)
    kwargs = _tolerant_loss_arguments(ctx, 7, 0.1, 0)
    if kwargs is None:
        return []
    shown = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
    what = f"LabelSmoothingLoss({shown})"
    try:
        module = learner_call(ctx.obj, what=what, **kwargs)
        got = expect_tensor(learner_call(module, logits.clone(), target.clone(), what=what), "LabelSmoothingLoss")
    except (Fail, StubReached):
        return []
    if got.dim() != 0:
        return []
    want = F.cross_entropy(logits, target, label_smoothing=0.1, ignore_index=0)
    try:
        compare(
            got,
            want,
            f"Built as {what} (your parameters matched to the contract's by name), your loss on "
            f"log-probabilities {list(logits.shape)} as logits",
            ls_hypotheses(logits, target, 0.1, 0),
            rtol=1e-5,
            atol=1e-5,
        )
    except Fail as fail:
        return [_with_compound(fail, got, logits, target, 0.1, 0)]
    return []


@LOSS.test("interface")
def constructor_and_forward(ctx: Ctx) -> None:
    try:
        expect_init_signature(ctx, "(smoothing=0.1, ignore_index=0)", ((), {}), ((0.1,), {"ignore_index": 0}))
    except Fail as fail:
        raise several([fail, *_tolerant_loss_problems(ctx)]) from None
    module = expect_module(ctx.new(smoothing=0.1, ignore_index=0), "LabelSmoothingLoss")
    logits, target = _loss_inputs()
    expect_forward_signature(module, "LabelSmoothingLoss", "(logits, target)", ((logits, target), {}))


@LOSS.test("shapes")
def returns_a_scalar_for_2d_and_3d_logits(ctx: Ctx) -> None:
    logits, target = _loss_inputs()
    _loss(ctx, logits, target)
    _loss(ctx, logits.reshape(-1, 7), target.reshape(-1))


@LOSS.test("numbers")
def matches_cross_entropy_with_label_smoothing(ctx: Ctx) -> None:
    _compare_loss(ctx, 0.1, 0, gradient=True)


@LOSS.test("numbers")
def large_smoothing_shows_the_target_distribution(ctx: Ctx) -> None:
    _compare_loss(ctx, 0.6, 0)


@LOSS.test("numbers")
def uses_its_ignore_index(ctx: Ctx) -> None:
    _compare_loss(ctx, 0.3, 2)


@LOSS.test("properties")
def gradient_matches(ctx: Ctx) -> None:
    logits, target = _loss_inputs()
    mine = logits.clone().requires_grad_(True)
    out = _loss(ctx, mine, target, 0.2, 0)
    if not out.requires_grad:
        raise Fail(
            "Your loss is cut off from the logits (no gradient): avoid .item(), .detach() or "
            "torch.no_grad() inside the loss.",
            ["no_gradient"],
        )
    learner_call(out.backward, what="backward through your loss")
    ref = logits.clone().requires_grad_(True)
    F.cross_entropy(ref.reshape(-1, 7), target.reshape(-1), label_smoothing=0.2, ignore_index=0).backward()
    compare(mine.grad, ref.grad, "The gradient of your loss with respect to the logits")


@LOSS.test("hygiene")
def does_not_change_its_inputs(ctx: Ctx) -> None:
    logits, target = _loss_inputs()
    expect_inputs_unchanged(
        "LabelSmoothingLoss", {"logits": logits, "target": target}, lambda: _loss(ctx, logits, target)
    )


@LOSS.test("hygiene")
@in_float64
def works_in_float64(ctx: Ctx) -> None:
    """The precision policy (CONTRACT.md): a loss for float64 logits may come back in float64, or computed
    in float32 (`logits.float()`, the habit of mixed-precision training) and then it matches at float32's
    tolerance; any other dtype (float16, bfloat16) is refused. A layer's output keeps the input's dtype."""
    logits, target = _loss_inputs(dtype=torch.float64)
    out = expect_tensor(_loss(ctx, logits, target), "The loss")
    want = F.cross_entropy(logits.reshape(-1, 7), target.reshape(-1), label_smoothing=0.1, ignore_index=0)
    if out.dtype == torch.float32:
        compare(out, want, "The float64 loss (computed in float32)", rtol=1e-5, atol=1e-5)
        return
    if out.dtype != torch.float64:
        raise Fail(
            f"The loss on float64 input came back as {out.dtype}. A loss may be computed in the input's "
            "dtype or in float32 (as mixed-precision training does), but not in a lower precision: "
            f"{out.dtype} rounds the loss and its gradient too coarsely.",
            ["float64_fails"],
        )
    compare(out, want, "The float64 loss")
