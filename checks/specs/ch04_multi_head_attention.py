"""Chapter 04: ``MultiHeadAttention`` (section 3.2.2, equation 3)."""

from __future__ import annotations

import itertools
import math

import torch

import solutions

from ..core import Ctx, Fail, Spec, StubReached, learner_call
from .common import (
    D_MODEL,
    HEADS,
    compare,
    expect_float64_module,
    expect_forward_signature,
    expect_init_signature,
    expect_inputs_unchanged,
    expect_shape,
    grads_match,
    in_float64,
    is_close,
    make_pair,
    padding_mask,
    which_hypothesis,
)

SPEC = Spec("MultiHeadAttention", solutions.MultiHeadAttention)


def mha_variant(
    ref,
    query,
    key,
    value,
    mask=None,
    *,
    proj=("q", "k", "v"),
    inputs=("q", "k", "v"),
    split: str = "right",
    merge: str = "right",
    out_proj: bool = True,
    scale: str = "d_k",
) -> torch.Tensor:
    """Equation 3 computed with the reference's weights, and its classic mistakes."""
    h, d = ref.num_heads, ref.d_model
    d_k = d // h
    layers = {"q": ref.W_q, "k": ref.W_k, "v": ref.W_v}
    given = {"q": query, "k": key, "v": value}
    q, k, v = (layers[p](given[x]) for p, x in zip(proj, inputs))

    def heads(x):
        b, n, _ = x.shape
        if split == "right":
            return x.view(b, n, h, d_k).transpose(1, 2)
        if split == "no_transpose":
            return x.view(b, n, h, d_k)
        return x.view(b, h, n, d_k)  # "direct"

    if scale == "d_k":
        out, _ = solutions.scaled_dot_product_attention(heads(q), heads(k), heads(v), mask)
    else:  # the attention written inline with another scale: sqrt(d_model), d_k, or none
        divisor = {"sqrt_d_model": math.sqrt(d), "d_k_itself": d_k, "none": 1.0}[scale]
        out = solutions.scaled_dot_product_attention(heads(q) * math.sqrt(d_k) / divisor, heads(k), heads(v), mask)[0]
    b, n = query.shape[:2]
    if split == "no_transpose" or merge == "reshape":
        out = out.reshape(b, n, d)
    elif merge == "permuted":  # [B, S, d_k, h]: each head's features interleaved with the others'
        out = out.permute(0, 2, 3, 1).reshape(b, n, d)
    else:
        out = out.transpose(1, 2).reshape(b, n, d)
    return ref.W_o(out) if out_proj else out


def hypotheses(ref, q, k, v, mask=None) -> dict:
    variants = {
        "mha_no_output_projection": dict(out_proj=False),
        "mha_heads_not_transposed": dict(split="no_transpose"),
        "mha_heads_not_transposed#direct": dict(split="direct"),
        "mha_heads_not_transposed#direct-reshape": dict(split="direct", merge="reshape"),
        "mha_concat_wrong": dict(merge="reshape"),
        "mha_concat_wrong#permuted": dict(merge="permuted"),
        "mha_scale_by_d_model": dict(scale="sqrt_d_model"),
        "attn_no_scale": dict(scale="none"),
        "attn_scale_by_dk": dict(scale="d_k_itself"),
    }
    for i, proj in enumerate(itertools.product("qkv", repeat=3)):
        if proj != ("q", "k", "v"):
            variants[f"mha_projection_mixup#{i}"] = dict(proj=proj)
    for i, inputs in enumerate((("q", "k", "k"), ("q", "v", "v"), ("q", "q", "q"), ("k", "k", "v"), ("q", "v", "k"))):
        variants[f"mha_projection_mixup#inputs{i}"] = dict(inputs=inputs)  # an input used in the wrong place
    hyps = {name: (lambda kw=kw: mha_variant(ref, q, k, v, mask, **kw).detach()) for name, kw in variants.items()}
    if mask is not None:  # the mask read the other way round (True = blocked, nn.Transformer's convention)
        hyps = {"attn_mask_polarity": lambda: mha_variant(ref, q, k, v, mask.logical_not()).detach(), **hyps}
    return hyps


def _pair(ctx: Ctx):
    return make_pair(ctx, D_MODEL, HEADS, diagnose=_diagnose_keys)


def _diagnose_keys(missing, unexpected, wrong) -> list[str]:
    """What the parameter names show: a projection without its bias (its weight is there), no W_o (when no
    other weight stands in its place), or projections under other names (weights the reference does not name)."""
    diagnoses = []
    if any(k.endswith(".bias") and k[: -len("bias")] + "weight" not in missing for k in missing):
        diagnoses.append("mha_projection_no_bias")
    renamed = any(k.startswith("W_") and k.endswith(".weight") for k in missing) and any(
        k.endswith("weight") for k in unexpected
    )
    if renamed:
        diagnoses.append("mha_projection_names")
    elif "W_o.weight" in missing:
        diagnoses.append("mha_no_output_projection")
    return diagnoses


def _run(module, q, k, v, mask=None, name: str = "MultiHeadAttention"):
    args = [q, k, v] + ([mask] if mask is not None else [])
    shown = f"{name}(query {list(q.shape)}, key {list(k.shape)}, value {list(v.shape)}" + (
        f", mask {list(mask.shape)})" if mask is not None else ")"
    )
    return learner_call(module, *args, what=shown)


@SPEC.test("interface")
def constructor_and_parameters(ctx: Ctx) -> None:
    expect_init_signature(ctx, "(d_model, num_heads)", ((D_MODEL, HEADS), {}))
    mine, _ = _pair(ctx)
    x = torch.zeros(1, 2, D_MODEL)
    expect_forward_signature(
        mine, "MultiHeadAttention", "(query, key, value, mask=None)", ((x, x, x), {}), ((x, x, x, None), {})
    )


@SPEC.test("shapes")
def self_attention_shapes(ctx: Ctx) -> None:
    mine, _ = _pair(ctx)
    for b, s in ((2, 5), (1, 1), (3, 4)):
        x = torch.randn(b, s, D_MODEL)
        expect_shape(_run(mine, x, x, x), [b, s, D_MODEL], f"The output for x of shape [{b}, {s}, {D_MODEL}]")


@SPEC.test("shapes")
def cross_attention_shapes(ctx: Ctx) -> None:
    mine, _ = _pair(ctx)
    for s_q, s_k in ((3, 7), (6, 2)):
        q, kv = torch.randn(2, s_q, D_MODEL), torch.randn(2, s_k, D_MODEL)
        mask = padding_mask([s_k, s_k - 1], s_k)
        try:
            out = _run(mine, q, kv, kv, mask)
            expect_shape(out, [2, s_q, D_MODEL], f"The output for query length {s_q} and key length {s_k}")
        except Fail as fail:
            seen = _mask_at_fault(ctx, q, kv, mask)
            if seen:
                raise Fail(fail.message + "\n" + seen, fail.diagnoses or ["mha_mask_rank"]) from None
            raise Fail(
                fail.message + "\n(Self-attention shapes were fine, so the difference is the key length.)",
                fail.diagnoses or _diagnose_self_attention(ctx) or ["mha_kv_reshaped_with_query_length"],
            ) from None


def _mask_at_fault(ctx: Ctx, q: torch.Tensor, kv: torch.Tensor, mask: torch.Tensor) -> str:
    """What the same call shows without the mask, and with it one axis shorter ("" when the mask is not
    at fault): code written for 3-D masks adds the head axis itself, which breaks the contract's 4-D ones."""
    shape = [q.shape[0], q.shape[1], D_MODEL]

    def fits(*given: torch.Tensor) -> bool:
        mine, _ = _pair(ctx)
        try:
            out = _run(mine, q, kv, kv, *given)
        except (Fail, StubReached):
            return False
        return isinstance(out, torch.Tensor) and list(out.shape) == shape

    if not fits():
        return ""
    text = f"(Without the mask the output has the right shape {shape}: the mask, {list(mask.shape)}, is at fault."
    shorter = mask.squeeze(1)  # [B, 1, S_k]: the head axis taken out
    if fits(shorter):
        text += f" With the same mask given as {list(shorter.shape)}, one axis fewer, the shape is right too."
    return text + ")"


def _diagnose_self_attention(ctx: Ctx) -> list[str]:
    """Which known mistake the self-attention numbers show (they compute whatever the key length)."""
    mine, ref = _pair(ctx)
    x = torch.randn(2, 5, D_MODEL)
    try:
        out = _run(mine, x, x, x)
    except Fail:
        return []
    return [] if is_close(out, ref(x, x, x)) else which_hypothesis(out, hypotheses(ref, x, x, x))


@SPEC.test("numbers")
def self_attention_matches_the_reference(ctx: Ctx) -> None:
    mine, ref = _pair(ctx)
    x = torch.randn(2, 5, D_MODEL)
    compare(_run(mine, x, x, x), ref(x, x, x), "Your self-attention output", hypotheses(ref, x, x, x))


@SPEC.test("numbers")
def cross_attention_with_padding_matches(ctx: Ctx) -> None:
    mine, ref = _pair(ctx)
    q, kv = torch.randn(2, 3, D_MODEL), torch.randn(2, 6, D_MODEL)
    mask = padding_mask([4, 6], 6)
    compare(
        _run(mine, q, kv, kv, mask),
        ref(q, kv, kv, mask),
        "Your cross-attention output (with a padding mask)",
        hypotheses(ref, q, kv, kv, mask),
    )


@SPEC.test("numbers")
def query_key_and_value_are_kept_apart(ctx: Ctx) -> None:
    mine, ref = _pair(ctx)
    q, k, v = torch.randn(2, 3, D_MODEL), torch.randn(2, 6, D_MODEL), torch.randn(2, 6, D_MODEL)
    mask = padding_mask([5, 6], 6)
    compare(
        _run(mine, q, k, v, mask),
        ref(q, k, v, mask),
        "Your output for three different query, key and value tensors",
        hypotheses(ref, q, k, v, mask),
    )


@SPEC.test("numbers")
def future_mask_matches(ctx: Ctx) -> None:
    mine, ref = _pair(ctx)
    x = torch.randn(2, 5, D_MODEL)
    mask = solutions.create_future_mask(5)
    compare(
        _run(mine, x, x, x, mask), ref(x, x, x, mask), "Your output with a future mask", hypotheses(ref, x, x, x, mask)
    )


@SPEC.test("numbers")
def attention_weights_are_stored(ctx: Ctx) -> None:
    mine, ref = _pair(ctx)
    q, kv = torch.randn(2, 3, D_MODEL), torch.randn(2, 6, D_MODEL)
    mask = padding_mask([4, 6], 6)
    _run(mine, q, kv, kv, mask)
    ref(q, kv, kv, mask)
    weights = getattr(mine, "attention_weights", None)
    if not isinstance(weights, torch.Tensor):
        raise Fail(
            "After forward, `attention_weights` should hold the weights of that call "
            f"(yours is {type(weights).__name__}).",
            ["mha_weights_not_stored"],
        )
    compare(
        weights,
        ref.attention_weights,
        "Your `attention_weights` after a forward with query length 3 and key length 6",
        {"mha_weights_not_stored": lambda: torch.zeros(1)},
    )


@SPEC.test("properties")
def gradients_reach_every_projection(ctx: Ctx) -> None:
    mine, ref = _pair(ctx)
    q, kv = torch.randn(2, 3, D_MODEL), torch.randn(2, 4, D_MODEL)
    mask = padding_mask([3, 4], 4)
    grads_match(mine, ref, lambda m: m(q, kv, kv, mask), "MultiHeadAttention")


@SPEC.test("properties")
def refuses_heads_that_do_not_divide_d_model(ctx: Ctx) -> None:
    try:
        learner_call(ctx.obj, D_MODEL, 3, what=f"MultiHeadAttention({D_MODEL}, 3)")
    except Fail:
        return  # an error: good
    raise Fail(
        f"MultiHeadAttention({D_MODEL}, 3) was built without an error, but 3 heads cannot share "
        f"{D_MODEL} features equally.",
        ["mha_no_divisibility_error"],
    )


@SPEC.test("properties")
def no_dropout_inside(ctx: Ctx) -> None:
    mine, _ = _pair(ctx)
    x = torch.randn(2, 5, D_MODEL)
    expected = _run(mine, x, x, x).detach()
    learner_call(mine.train, what="MultiHeadAttention.train()")
    if not torch.allclose(_run(mine, x, x, x).detach(), expected):
        raise Fail("Your MultiHeadAttention's output changes in train mode.", ["mha_dropout_inside"])


@SPEC.test("hygiene")
def does_not_change_its_inputs(ctx: Ctx) -> None:
    mine, _ = _pair(ctx)
    q, kv = torch.randn(2, 3, D_MODEL), torch.randn(2, 6, D_MODEL)
    mask = padding_mask([4, 6], 6)
    expect_inputs_unchanged(
        "MultiHeadAttention", {"query": q, "key/value": kv, "mask": mask}, lambda: _run(mine, q, kv, kv, mask)
    )


@SPEC.test("hygiene")
@in_float64
def works_in_float64_and_keeps_the_device(ctx: Ctx) -> None:
    mine, ref = _pair(ctx)

    def inputs() -> tuple[torch.Tensor, ...]:  # cross-attention: the same tensor is key and value
        q, kv = torch.randn(2, 3, D_MODEL, dtype=torch.float64), torch.randn(2, 6, D_MODEL, dtype=torch.float64)
        return q, kv, kv, padding_mask([4, 6], 6)

    expect_float64_module(mine, ref, "MultiHeadAttention", inputs, _run)
