"""Chapter 00, the warm-up: a hand-written ``softmax(x, dim=-1)`` (used by attention, section 3.2.1)."""

from __future__ import annotations

import torch

from ..core import Ctx, Spec, learner_call
from .common import compare, expect_inputs_unchanged, expect_shape, expect_signature, in_float64, require_float64


def reference_softmax(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """The reference: ``torch.softmax``. Shapes: any -> the same."""
    return torch.softmax(x, dim=dim)


SPEC = Spec("softmax", reference_softmax, kind="function")


def _call(ctx: Ctx, x: torch.Tensor, **kwargs) -> torch.Tensor:
    shown = ", ".join([f"x of shape {list(x.shape)}"] + [f"{k}={v}" for k, v in kwargs.items()])
    return learner_call(ctx.obj, x.clone(), what=f"softmax({shown})", **kwargs)


def _wrong_axis(x: torch.Tensor, dim: int) -> dict:
    """What a softmax over another axis (or over everything) would give."""
    hyps = {}
    for other in range(x.dim()):
        if other != dim % x.dim():
            hyps[f"softmax_wrong_axis#{other}"] = torch.softmax(x, dim=other)
    hyps["softmax_wrong_axis#all"] = torch.softmax(x.flatten(), 0).view_as(x)
    hyps["softmax_not_normalised"] = torch.exp(x)
    hyps["softmax_not_normalised#max"] = torch.exp(x - x.max(dim=dim, keepdim=True).values)
    return hyps


def _strip(ids: list[str]) -> list[str]:
    return [i.split("#")[0] for i in ids]


@SPEC.test("interface")
def signature(ctx: Ctx) -> None:
    x = torch.zeros(2, 3)
    expect_signature(ctx.obj, "softmax", ((x,), {}), ((x,), {"dim": 0}), shown="softmax(x, dim=-1)")


@SPEC.test("shapes")
def output_has_the_input_shape(ctx: Ctx) -> None:
    for shape in ([3, 5], [2, 3, 4], [1, 1]):
        expect_shape(_call(ctx, torch.randn(shape)), shape, f"softmax(x) for x of shape {shape}")


def _compare(actual, x, dim, what):
    from ..core import Fail

    try:
        compare(actual, torch.softmax(x, dim=dim), what, _wrong_axis(x, dim))
    except Fail as fail:
        raise Fail(fail.message, _strip(fail.diagnoses)) from None


@SPEC.test("numbers")
def matches_torch_softmax_on_the_last_axis(ctx: Ctx) -> None:
    x = 3 * torch.randn(4, 6)
    _compare(_call(ctx, x), x, -1, "softmax(x) on a [4, 6] input")


@SPEC.test("numbers")
def uses_the_dim_argument(ctx: Ctx) -> None:
    x = 2 * torch.randn(3, 4, 5)
    for dim in (0, 1, -1):
        _compare(_call(ctx, x, dim=dim), x, dim, f"softmax(x, dim={dim}) on a [3, 4, 5] input")


@SPEC.test("properties")
def large_inputs_do_not_overflow(ctx: Ctx) -> None:
    from ..core import Fail

    x = torch.tensor([[1000.0, 1001.0, 1002.0], [-1000.0, -1001.0, -1002.0], [0.0, 500.0, -500.0]])
    out = _call(ctx, x)
    expect_shape(out, [3, 3], "softmax(x) on large inputs")
    if not torch.isfinite(out).all():
        raise Fail("softmax of [[1000, 1001, 1002], ...] contains NaN or inf.", ["softmax_not_stable"])
    _compare(out, x, -1, "softmax(x) for inputs like [1000, 1001, 1002]")


@SPEC.test("hygiene")
def does_not_change_its_input(ctx: Ctx) -> None:
    x = torch.randn(3, 4)
    expect_inputs_unchanged("softmax", {"x": x}, lambda: learner_call(ctx.obj, x, what="softmax(x)"))


@SPEC.test("hygiene")
@in_float64
def works_in_float64(ctx: Ctx) -> None:
    x = torch.randn(3, 4, dtype=torch.float64)
    out = _call(ctx, x)
    require_float64(out, "softmax(x)")
    compare(out, torch.softmax(x, -1), "softmax(x) in float64")
