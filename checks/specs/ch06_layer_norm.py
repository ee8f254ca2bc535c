"""Chapter 06: ``LayerNorm`` (section 3.1, Ba et al. 2016): equals ``nn.LayerNorm(d_model, eps)``."""

from __future__ import annotations

import torch

import solutions

from ..core import Ctx, Fail, Spec, learner_call
from .common import (
    D_MODEL,
    compare,
    expect_forward_signature,
    expect_init_signature,
    expect_module,
    expect_shape,
    grads_match,
    is_close,
    make_pair,
    module_hygiene_tests,
)

SPEC = Spec("LayerNorm", solutions.LayerNorm)


def ln_variant(
    x,
    weight,
    bias,
    eps=1e-5,
    *,
    correction: int = 0,
    eps_inside: bool = True,
    dims=(-1,),
    affine: str = "both",
    divide: str = "std",
):
    """Layer norm and its classic mistakes."""
    mean = x.mean(dim=dims, keepdim=True)
    var = x.var(dim=dims, keepdim=True, correction=correction)
    if divide == "var":
        denom = var + eps
    elif divide == "rms":
        denom = torch.sqrt((x * x).mean(dim=dims, keepdim=True) + eps)
    else:
        denom = torch.sqrt(var + eps) if eps_inside else torch.sqrt(var) + eps
    y = (x - mean) / denom
    if affine in ("both", "weight"):
        y = y * weight
    if affine in ("both", "bias"):
        y = y + bias
    return y


def hypotheses(ref, x) -> dict:
    w, b, eps = ref.weight.detach(), ref.bias.detach(), ref.eps
    variants = {
        "ln_unbiased_variance": dict(correction=1),
        "ln_eps_outside_sqrt": dict(eps_inside=False),
        "ln_eps_outside_sqrt#unbiased": dict(eps_inside=False, correction=1),
        "ln_no_affine": dict(affine="none"),
        "ln_no_affine#weight": dict(affine="weight"),
        "ln_no_affine#bias": dict(affine="bias"),
        "ln_std_of_wrong_thing": dict(divide="var"),
        "ln_std_of_wrong_thing#rms": dict(divide="rms"),
    }
    for i, dims in enumerate([(0,), (1,), (-2,), tuple(range(x.dim())), (-2, -1)]):
        if dims[-1] % x.dim() != x.dim() - 1 or len(dims) > 1:
            variants[f"ln_wrong_axis#{i}"] = dict(dims=dims)
    hyps = {name: (lambda kw=kw: ln_variant(x, w, b, eps, **kw)) for name, kw in variants.items()}
    for other in (1e-6, 1e-8, 1e-12, 0.0):  # an eps written into the code instead of the argument
        if other != eps:
            hyps[f"ln_eps_ignored#{other}"] = lambda other=other: ln_variant(x, w, b, other)
    return hyps


def _pair(ctx: Ctx, **kwargs):
    return make_pair(ctx, D_MODEL, diagnose=_diagnose_keys, **kwargs)


def _diagnose_keys(missing, unexpected, wrong) -> list[str]:
    return ["ln_no_affine"] if missing and not unexpected else []


def _run(module, x):
    return learner_call(module, x, what=f"LayerNorm on x of shape {list(x.shape)}")


@SPEC.test("interface")
def constructor_and_parameters(ctx: Ctx) -> None:
    expect_init_signature(ctx, "(d_model, eps=1e-5)", ((D_MODEL,), {}), ((D_MODEL,), {"eps": 1e-6}))
    fresh = expect_module(ctx.new(D_MODEL), "LayerNorm")
    _pair(ctx)  # names and shapes of the parameters
    params = dict(fresh.named_parameters())
    if not (
        torch.equal(params["weight"].detach(), torch.ones(D_MODEL))
        and torch.equal(params["bias"].detach(), torch.zeros(D_MODEL))
    ):
        raise Fail(
            "A new LayerNorm should start with weight = ones and bias = zeros (so it begins as a plain normalisation)."
        )
    expect_forward_signature(fresh, "LayerNorm", "(x)", ((torch.zeros(1, D_MODEL),), {}))


@SPEC.test("shapes")
def output_shape(ctx: Ctx) -> None:
    mine, _ = _pair(ctx)
    for shape in ([2, 5, D_MODEL], [3, D_MODEL], [1, 1, D_MODEL]):
        expect_shape(_run(mine, torch.randn(shape)), shape, f"The output for x of shape {shape}")


def _compare_default(ctx: Ctx, mine, ref, x, what: str, **tolerance) -> None:
    """``compare`` for a LayerNorm built WITHOUT an eps. When the output looks like another eps was
    used, build one with eps=1e-5 passed explicitly: if that one is right, only the default differs
    (the eps given is used); otherwise the eps is ignored."""
    try:
        compare(_run(mine, x), ref(x), what, hypotheses(ref, x), **tolerance)
    except Fail as fail:
        if "ln_eps_ignored" not in fail.diagnoses:
            raise
        explicit, _ = _pair(ctx, eps=ref.eps)
        if not is_close(_run(explicit, x), ref(x), **tolerance):
            raise
        raise Fail(
            f"{fail.message}\nWith eps=1e-5 passed explicitly, LayerNorm(d_model, eps=1e-5) gives the right "
            "output: the eps you are given is used, but when none is given your LayerNorm uses another "
            "value than the default 1e-5.",
            ["ln_default_eps"],
        ) from None


@SPEC.test("numbers")
def matches_nn_layernorm(ctx: Ctx) -> None:
    mine, ref = _pair(ctx)
    x = 3 * torch.randn(2, 5, D_MODEL) + 1
    _compare_default(ctx, mine, ref, x, "Your LayerNorm's output")


@SPEC.test("numbers")
def small_variance_inputs_show_where_eps_goes(ctx: Ctx) -> None:
    mine, ref = _pair(ctx)
    x = 1e-3 * torch.randn(3, 4, D_MODEL)
    _compare_default(
        ctx, mine, ref, x, "Your LayerNorm's output on inputs with a tiny variance (about 1e-6)", atol=1e-4
    )


@SPEC.test("numbers")
def uses_the_eps_it_is_given(ctx: Ctx) -> None:
    mine, ref = _pair(ctx, eps=0.1)
    x = 0.3 * torch.randn(2, 3, D_MODEL)
    hyps = {"ln_eps_ignored": ln_variant(x, ref.weight.detach(), ref.bias.detach(), 1e-5), **hypotheses(ref, x)}
    compare(_run(mine, x), ref(x), "Your LayerNorm(d_model, eps=0.1)'s output", hyps)


@SPEC.test("properties")
def gradients_reach_weight_and_bias(ctx: Ctx) -> None:
    mine, ref = _pair(ctx)
    x = torch.randn(2, 3, D_MODEL)
    grads_match(mine, ref, lambda m: m(x), "LayerNorm")


module_hygiene_tests(
    SPEC,
    _pair,
    lambda dtype: [torch.randn(2, 4, D_MODEL, dtype=dtype)],
    ["x"],
    _run,
    unchanged_test="does_not_change_x",
)
