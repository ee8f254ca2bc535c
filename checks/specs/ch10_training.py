"""Chapter 10: ``TransformerLRScheduler`` (section 5.3) and ``LabelSmoothingLoss`` (section 5.4)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

import solutions

from ..core import Ctx, Fail, Spec, learner_call
from .common import (
    compare,
    expect_forward_signature,
    expect_init_signature,
    expect_inputs_unchanged,
    expect_module,
    expect_tensor,
    in_float64,
    require_float64,
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


@SCHEDULER.test("interface")
def constructor_and_methods(ctx: Ctx) -> None:
    expect_init_signature(
        ctx,
        "(optimizer, d_model, warmup_steps=4000, factor=1.0)",
        ((None, 512), {}),
        ((None, 512), {"warmup_steps": 10, "factor": 2.0}),
    )
    sched = _scheduler(ctx, _optimizer())
    for method in ("get_lr", "step"):
        if not callable(getattr(sched, method, None)):
            raise Fail(f"Your TransformerLRScheduler has no `{method}` method.")


@SCHEDULER.test("numbers")
def get_lr_follows_equation_3(ctx: Ctx) -> None:
    sched = _scheduler(ctx, _optimizer(), 512, 4000)
    for step in (1, 2, 100, 3999, 4000, 4001, 20000):
        got = _as_float(learner_call(sched.get_lr, step, what=f"get_lr({step})"), f"get_lr({step})")
        want = rate(step, 512, 4000)
        if not _close(got, want):
            off = _close(got, rate(step + 1, 512, 4000)) or (step > 1 and _close(got, rate(step - 1, 512, 4000)))
            raise Fail(
                f"With d_model=512 and warmup_steps=4000, get_lr({step}) should be {want:.6g}, "
                f"but yours gives {got:.6g}.",
                ["lr_step_off_by_one" if off else "lr_formula_wrong"],
            )


@SCHEDULER.test("numbers")
def factor_scales_the_rate(ctx: Ctx) -> None:
    sched = _scheduler(ctx, _optimizer(), 64, 10, factor=2.0)
    for step in (1, 5, 10, 50):
        got = _as_float(learner_call(sched.get_lr, step, what=f"get_lr({step})"), f"get_lr({step})")
        want = rate(step, 64, 10, 2.0)
        if not _close(got, want):
            diag = ["lr_factor_ignored"] if _close(got, rate(step, 64, 10)) else ["lr_formula_wrong"]
            raise Fail(
                f"With d_model=64, warmup_steps=10 and factor=2, get_lr({step}) should be {want:.6g}, "
                f"but yours gives {got:.6g}.",
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
                off = _close(got, rate(step + 1, 64, 10)) or (step > 1 and _close(got, rate(step - 1, 64, 10)))
                raise Fail(
                    f"Call number {step} of step() should return the rate of step {step}, {want:.6g}, "
                    f"but yours returns {got:.6g}.",
                    ["lr_step_off_by_one" if off else "lr_formula_wrong"],
                )
            lrs = [group["lr"] for group in optimizer.param_groups]
            if not all(_close(lr, want) for lr in lrs):
                raise Fail(
                    f"After call number {step} of step(), every param group's 'lr' should be {want:.6g}; "
                    f"the optimizer ({type(optimizer).__name__}) has {lrs}.",
                    ["lr_never_set"],
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
        "ls_wrong_distribution#no-target-share": dict(spread="V-no-target-share"),
        "ls_sum_not_mean": dict(reduction="sum"),
        "ls_sum_not_mean#all": dict(reduction="mean_all"),
        "ls_probs_not_logprobs": dict(probs=True),
        "ls_kl_divergence": dict(kl=True),
        "ls_kl_divergence#V-2": dict(kl=True, spread="V-2"),
        "ls_kl_divergence#sum": dict(kl=True, reduction="sum"),
        "ls_kl_divergence#V-2-sum": dict(kl=True, spread="V-2", reduction="sum"),
    }
    hyps = {k: (lambda kw=kw: ls_variant(logits, target, smoothing, ignore_index, **kw)) for k, kw in variants.items()}
    hyps["ls_smoothing_ignored"] = lambda: ls_variant(logits, target, 0.0, ignore_index)
    return hyps


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


def _compare_loss(ctx: Ctx, smoothing: float, ignore_index: int) -> None:
    logits, target = _loss_inputs(pad=ignore_index)
    got = _loss(ctx, logits.clone(), target.clone(), smoothing, ignore_index)
    want = F.cross_entropy(
        logits.reshape(-1, 7), target.reshape(-1), label_smoothing=smoothing, ignore_index=ignore_index
    )
    compare(
        got,
        want,
        f"Your loss with smoothing={smoothing} and ignore_index={ignore_index}",
        ls_hypotheses(logits, target, smoothing, ignore_index),
        rtol=1e-5,
        atol=1e-5,
    )


@LOSS.test("interface")
def constructor_and_forward(ctx: Ctx) -> None:
    expect_init_signature(ctx, "(smoothing=0.1, ignore_index=0)", ((), {}), ((0.1,), {"ignore_index": 0}))
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
    _compare_loss(ctx, 0.1, 0)


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
    logits, target = _loss_inputs(dtype=torch.float64)
    out = _loss(ctx, logits, target)
    require_float64(out, "The loss")
    compare(
        out,
        F.cross_entropy(logits.reshape(-1, 7), target.reshape(-1), label_smoothing=0.1, ignore_index=0),
        "The float64 loss",
    )
