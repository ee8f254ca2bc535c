"""Chapter 05: ``FeedForwardNetwork`` (section 3.3, equation 2): ``W_2(relu(W_1(x)))``."""

from __future__ import annotations

import torch
import torch.nn.functional as F

import solutions

from ..core import Ctx, Fail, Spec, learner_call
from .common import (
    D_FF,
    D_MODEL,
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
    return make_pair(ctx, D_MODEL, D_FF)


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
