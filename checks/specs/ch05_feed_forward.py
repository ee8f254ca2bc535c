"""Chapter 05: ``FeedForwardNetwork`` (section 3.3, equation 2): ``W_2(relu(W_1(x)))``."""

from __future__ import annotations

import torch
import torch.nn.functional as F

import solutions

from ..core import Ctx, Fail, Spec, learner_call
from .common import (
    D_FF,
    D_MODEL,
    _is_remote,
    compare,
    expect_forward_signature,
    expect_init_signature,
    expect_shape,
    grads_match,
    make_pair,
    module_hygiene_tests,
)

SPEC = Spec("FeedForwardNetwork", solutions.FeedForwardNetwork)


def _pair(ctx: Ctx):
    try:
        return make_pair(ctx, D_MODEL, D_FF)
    except Fail as fail:
        if not any(key in fail.message for key in ("wrong shape", "missing", "unexpected")):
            raise
        found = _structure_problems(ctx)
        if not found:
            raise
        raise Fail("\n".join([fail.message, *(words for words, _ in found)]), [d for _, d in found]) from None


def _kind(module) -> str:
    """The class name of a sub-module (of a handle on the judge's worker too)."""
    return str(getattr(module, "_type", "")) if _is_remote(module) else type(module).__name__


def _hidden_width(ctx: Ctx, d_ff: int) -> int | None:
    """How many features W_1 of the learner's FeedForwardNetwork(D_MODEL, d_ff) produces (read off the
    shape of its `W_1.weight`, the first axis for a linear map and for a convolution alike)."""
    try:
        module = ctx.new(D_MODEL, d_ff)
        state = learner_call(module.state_dict, what="state_dict()")
    except Fail:
        return None
    weight = state.get("W_1.weight") if isinstance(state, dict) else None
    return int(weight.shape[0]) if isinstance(weight, torch.Tensor) and weight.dim() >= 2 else None


def _structure_problems(ctx: Ctx) -> list[tuple[str, str]]:
    """After a parameter mismatch: what the module tree shows, as (words, diagnosis id). Each of W_1 and
    W_2 that is a convolution (nn.Conv1d with kernel size 1 computes the same function on [B, d, S]), and a
    hidden width that is not d_ff (4 * d_model, GPT's fixed width, is named)."""
    try:
        module = ctx.new(D_MODEL, D_FF)
    except Fail:
        return []
    found: list[tuple[str, str]] = []
    convs = [name for name in ("W_1", "W_2") if "Conv" in _kind(getattr(module, name, None))]
    if not convs and not _is_remote(module):  # convolutions under other names (conv1, conv2, ...)
        try:
            convs = [
                n
                for n, m in learner_call(lambda: list(module.named_modules()), what="named_modules()")
                if n and "Conv" in _kind(m)
            ]
        except Fail:
            convs = []
        convs = [n for n in convs if "." not in n]
    if convs:
        kinds = " and ".join(f"`{name}` is an nn.{_kind(getattr(module, name))}" for name in convs)
        found.append(
            (
                f"Your {kinds}: a convolution's weight has a kernel axis ([out, in, kernel_size]), and it works on "
                "[B, d, S] inputs (features before positions). The contract's W_1 and W_2 are nn.Linear layers "
                "(weight [out, in]) that work on the last axis of [..., d] directly, so that the paper's weights "
                "load by name.",
                "ffn_conv1d",
            )
        )
    width, other = _hidden_width(ctx, D_FF), _hidden_width(ctx, D_FF + 16)
    if width is not None and width != D_FF:
        if other == width:
            named = (
                f"4 * d_model = {width}"
                if width == 4 * D_MODEL
                else f"d_model = {width}"
                if width == D_MODEL
                else str(width)
            )
            words = (
                f"Your hidden layer is {named} features wide whatever d_ff is (built with d_ff={D_FF} and with "
                f"d_ff={D_FF + 16}, W_1 gives {width} features both times): its width should be the d_ff the "
                "constructor is given."
            )
        else:
            words = (
                f"Built as FeedForwardNetwork(d_model={D_MODEL}, d_ff={D_FF}), your hidden layer is {width} features "
                f"wide: W_1 should map d_model features to d_ff = {D_FF}, and W_2 back to d_model."
            )
        found.append((words, "ffn_hidden_width"))
    return found


def _run(module, x):
    return learner_call(module, x, what=f"FeedForwardNetwork on x of shape {list(x.shape)}")


def hypotheses(ref, x) -> dict:
    acts = {
        "ffn_missing_relu": lambda t: t,
        "ffn_wrong_activation#gelu": F.gelu,
        "ffn_wrong_activation#tanh-gelu": lambda t: F.gelu(t, approximate="tanh"),
        "ffn_wrong_activation#silu": F.silu,
        "ffn_wrong_activation#tanh": torch.tanh,
        "ffn_wrong_activation#sigmoid": torch.sigmoid,
        "ffn_wrong_activation#leaky": F.leaky_relu,
        "ffn_wrong_activation#elu": F.elu,
    }
    hyps = {name: (lambda act=act: ref.W_2(act(ref.W_1(x))).detach()) for name, act in acts.items()}
    hyps["ffn_wrong_activation#relu-after-W_2"] = lambda: torch.relu(ref(x)).detach()
    return hyps


@SPEC.test("interface")
def constructor_and_parameters(ctx: Ctx) -> None:
    expect_init_signature(ctx, "(d_model, d_ff)", ((D_MODEL, D_FF), {}))
    mine, _ = _pair(ctx)
    expect_forward_signature(mine, "FeedForwardNetwork", "(x)", ((torch.zeros(1, D_MODEL),), {}))


@SPEC.test("shapes")
def output_shape(ctx: Ctx) -> None:
    mine, _ = _pair(ctx)
    for shape in ([2, 5, D_MODEL], [3, D_MODEL], [1, 1, D_MODEL]):
        expect_shape(_run(mine, torch.randn(shape)), shape, f"The output for x of shape {shape}")


@SPEC.test("numbers")
def matches_equation_2(ctx: Ctx) -> None:
    mine, ref = _pair(ctx)
    x = torch.randn(2, 5, D_MODEL)
    compare(_run(mine, x), ref(x), "Your feed-forward output", hypotheses(ref, x))


@SPEC.test("properties")
def gradients_reach_both_layers(ctx: Ctx) -> None:
    mine, ref = _pair(ctx)
    x = torch.randn(2, 3, D_MODEL)
    grads_match(mine, ref, lambda m: m(x), "FeedForwardNetwork")


@SPEC.test("properties")
def no_dropout_inside(ctx: Ctx) -> None:
    mine, _ = _pair(ctx)
    x = torch.randn(2, 5, D_MODEL)
    expected = _run(mine, x).detach()
    learner_call(mine.train, what="FeedForwardNetwork.train()")
    if not torch.allclose(_run(mine, x).detach(), expected):
        raise Fail("Your FeedForwardNetwork's output changes in train mode.", ["ffn_dropout_inside"])


module_hygiene_tests(
    SPEC,
    _pair,
    lambda dtype: [torch.randn(2, 4, D_MODEL, dtype=dtype)],
    ["x"],
    _run,
    unchanged_test="does_not_change_x",
)
