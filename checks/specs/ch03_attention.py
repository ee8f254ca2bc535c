"""Chapter 03: ``scaled_dot_product_attention`` (section 3.2.1, equation 1)."""

from __future__ import annotations

import math

import torch

import solutions

from ..core import Ctx, Fail, Spec, StubReached, learner_call, picture
from .common import (
    compare,
    expect_inputs_unchanged,
    expect_signature,
    expect_tensor,
    in_float64,
    is_close,
    require_device,
    require_float64,
    which_hypothesis,
)

SPEC = Spec("scaled_dot_product_attention", solutions.scaled_dot_product_attention, kind="function")


def attention_variant(
    q,
    k,
    v,
    mask=None,
    *,
    scale: str = "sqrt",
    softmax_dim: int = -1,
    polarity: bool = True,
    use_mask: bool = True,
    weights: str = "softmax",
    transpose_key: bool = True,
):
    """Equation 1 and its classic mistakes. Returns (output, weights). ``transpose_key=False``: Q K instead of
    Q Kᵀ (computes only when S_k == d_k)."""
    d_k = q.size(-1)
    scores = q @ (k.transpose(-2, -1) if transpose_key else k)
    if scale == "sqrt":
        scores = scores / math.sqrt(d_k)
    elif scale == "dk":
        scores = scores / d_k
    if mask is not None and use_mask:
        blocked = mask.logical_not() if polarity else mask
        scores = scores.masked_fill(blocked, torch.finfo(scores.dtype).min)
    w = torch.softmax(scores, dim=softmax_dim)
    if weights == "scores":
        return scores @ v, scores
    return w @ v, w


def hypotheses(q, k, v, mask, which: int) -> dict:
    """Predicted output (which=0) or weights (which=1) under each known mistake."""
    variants = {
        "attn_no_scale": dict(scale="none"),
        "attn_scale_by_dk": dict(scale="dk"),
        "attn_softmax_wrong_axis": dict(softmax_dim=-2),
        "attn_softmax_wrong_axis#noscale": dict(softmax_dim=-2, scale="none"),
        "attn_returns_scores": dict(weights="scores"),
        "attn_returns_scores#noscale": dict(weights="scores", scale="none"),
        "attn_key_not_transposed": dict(transpose_key=False),
        "attn_key_not_transposed#noscale": dict(transpose_key=False, scale="none"),
    }
    if mask is not None:
        variants = {"attn_mask_polarity": dict(polarity=False), "attn_mask_ignored": dict(use_mask=False), **variants}
    return {name: (lambda kw=kw: attention_variant(q, k, v, mask, **kw)[which]) for name, kw in variants.items()}


def call(fn, q, k, v, mask=None, what: str = "scaled_dot_product_attention"):
    """Call the learner's function on copies; check it returns (output, weights) tensors."""
    args = [q.clone(), k.clone(), v.clone()] + ([mask.clone()] if mask is not None else [])
    shown = f"{what}(query {list(q.shape)}, key {list(k.shape)}, value {list(v.shape)}" + (
        f", mask {list(mask.shape)})" if mask is not None else ")"
    )
    try:
        result = learner_call(fn, *args, what=shown)
    except Fail as fail:
        seen = _rank_at_fault(fn, q, k, v, mask)
        if seen:
            raise Fail(fail.message + "\n" + seen, fail.diagnoses or ["attn_fixed_rank"]) from None
        if fail.diagnoses:
            raise
        square = _square_reading(fn, q)
        if square is None:
            raise
        raise Fail(fail.message + "\n" + square[0], square[1]) from None
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        raise Fail(
            f"{shown} should return two tensors, (output, weights), but returned "
            f"{type(result).__name__}"
            + (f" of length {len(result)}" if isinstance(result, (tuple, list)) else "")
            + ".",
            ["returns_wrong_type"],
        )
    out, weights = result
    return expect_tensor(out, "the output"), expect_tensor(weights, "the weights")


def _rank_at_fault(fn, q, k, v, mask=None) -> str:
    """What the same inputs show with one leading axis more (a 3-D call) or fewer (a 4-D or longer one):
    "" unless that call works, in which case the failed call's number of axes is at fault."""
    if q.dim() == 3:
        other = [t.unsqueeze(1) for t in (q, k, v)]  # [B, 1, S, d]: a head axis of size 1
        m = None if mask is None else mask.unsqueeze(1) if mask.dim() == 3 else mask
    elif q.dim() >= 4:
        lead = q.shape[:-2]
        try:  # the leading axes as one
            other = [t.expand(*lead, *t.shape[-2:]).flatten(0, -3) for t in (q, k, v)]
            m = None if mask is None else mask.expand(*lead, q.shape[-2], k.shape[-2]).flatten(0, -3)
        except RuntimeError:
            return ""
    else:
        return ""
    expected = [list(other[0].shape[:-1]) + [v.shape[-1]], list(other[0].shape[:-1]) + [k.shape[-2]]]
    try:
        result = learner_call(fn, *[t.clone() for t in other], *([] if m is None else [m.clone()]), what="")
    except (Fail, StubReached):
        return ""
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        return ""
    if [list(r.shape) if isinstance(r, torch.Tensor) else None for r in result] != expected:
        return ""
    return (
        f"(The same inputs as {other[0].dim()}-D tensors, query {list(other[0].shape)}, work: your attention "
        f"only accepts {other[0].dim()}-D inputs, not {q.dim()}-D ones.)"
    )


def _square_reading(fn, q) -> tuple[str, list[str]] | None:
    """After a failed call that no other number of axes explains: what the learner's attention does with
    queries, keys and values whose sizes all agree (S_q = S_k = d_k = d_v), with as many axes as ``q`` and
    with 3 or 4: such inputs let assumptions about the sizes (a fixed number of axes, a key used without
    its transpose) run, and the weights then say which known mistake it is. (words, diagnosis ids), or None
    when no such call runs."""
    n = 6
    ranks = sorted({3, 4, q.dim()}, key=lambda r: r != q.dim())
    for rank in ranks:
        lead = (2,) + (1,) * (rank - 3)
        qq, kk, vv = _qkv(*lead, s_q=n, s_k=n, d_k=n, d_v=n)
        try:
            result = learner_call(fn, qq.clone(), kk.clone(), vv.clone(), what="")
        except (Fail, StubReached):
            continue
        shape = [*lead, n, n]
        if not isinstance(result, (tuple, list)) or len(result) != 2:
            continue
        if [list(r.shape) if isinstance(r, torch.Tensor) else None for r in result] != [shape, shape]:
            continue
        ids = which_hypothesis(result[1], hypotheses(qq, kk, vv, None, 1))
        right = not ids and is_close(result[1], attention_variant(qq, kk, vv)[1], rtol=1e-3, atol=1e-4)
        words = f"(With query, key and value all of shape {shape}, every size the same, yours runs"
        if rank != q.dim():
            words += f": it only accepts {rank}-D inputs, not {q.dim()}-D ones"
            ids = ["attn_fixed_rank", *ids]
        else:
            words += ": it assumes that sizes which are free to differ (S_q, S_k, d_k, d_v) are equal"
        if right:
            words += ", and there its weights are right"
        elif ids and ids[-1] != "attn_fixed_rank":
            words += ", and there its weights show a mistake of equation 1 (below)"
        return words + ".)", ids
    return None


def _qkv(*lead: int, s_q: int = 4, s_k: int = 6, d_k: int = 16, d_v: int = 8, dtype=torch.float32):
    return (
        torch.randn(*lead, s_q, d_k, dtype=dtype),
        torch.randn(*lead, s_k, d_k, dtype=dtype),
        torch.randn(*lead, s_k, d_v, dtype=dtype),
    )


def check_against_reference(fn, q, k, v, mask=None) -> None:
    out, weights = call(fn, q, k, v, mask)
    ref_out, ref_w = attention_variant(q, k, v, mask)
    valid = None
    if mask is not None:
        valid = mask.expand(*ref_w.shape).any(-1, keepdim=True)  # rows with at least one visible key
    try:
        compare(
            weights,
            ref_w,
            "The attention weights",
            hypotheses(q, k, v, mask, 1),
            valid=None if valid is None else valid.expand(*ref_w.shape),
        )
    except Fail as fail:  # the weights, yours beside the expected ones (in the notebook only)
        shown = picture("The attention weights", weights, ref_w, "query", "key")
        raise Fail(fail.message, fail.diagnoses, shown) from None
    compare(
        out,
        ref_out,
        "The attention output",
        hypotheses(q, k, v, mask, 0),
        valid=None if valid is None else valid.expand(*ref_out.shape),
        atol=1e-5,
    )


@SPEC.test("interface")
def signature_and_return_value(ctx: Ctx) -> None:
    q, k, v = _qkv(2)
    expect_signature(
        ctx.obj,
        "scaled_dot_product_attention",
        ((q, k, v), {}),
        ((q, k, v, None), {}),
        ((q, k, v), {"mask": None}),
        shown="(query, key, value, mask=None)",
    )
    call(ctx.obj, q, k, v)


@SPEC.test("shapes")
def output_and_weight_shapes(ctx: Ctx) -> None:
    for lead, s_q, s_k, d_k, d_v in (((2,), 4, 6, 16, 8), ((2, 3), 5, 5, 8, 8), ((1,), 1, 3, 4, 4)):
        q, k, v = _qkv(*lead, s_q=s_q, s_k=s_k, d_k=d_k, d_v=d_v)
        out, weights = call(ctx.obj, q, k, v)
        for tensor, shape, name in ((out, [*lead, s_q, d_v], "output"), (weights, [*lead, s_q, s_k], "weights")):
            if list(tensor.shape) != shape:
                raise Fail(
                    f"For query {list(q.shape)}, key {list(k.shape)} and value {list(v.shape)} the "
                    f"{name} should have shape {shape}, but yours has shape {list(tensor.shape)}."
                )


@SPEC.test("numbers")
def matches_equation_1(ctx: Ctx) -> None:
    q, k, v = _qkv(2, d_k=16)
    check_against_reference(ctx.obj, q, k, v)


@SPEC.test("numbers")
def mask_blocks_the_right_keys(ctx: Ctx) -> None:
    q, k, v = _qkv(2, s_q=4, s_k=6)
    mask = torch.rand(2, 4, 6) > 0.4
    mask[..., 0], mask[..., 1] = True, False  # every row sees some keys and misses some
    check_against_reference(ctx.obj, q, k, v, mask)


@SPEC.test("numbers")
def padding_mask_broadcasts_over_heads(ctx: Ctx) -> None:
    q, k, v = _qkv(2, 2, s_q=3, s_k=5)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)[:, None, None, :]
    check_against_reference(ctx.obj, q, k, v, mask)


@SPEC.test("properties")
def weights_sum_to_one_and_masked_keys_get_zero(ctx: Ctx) -> None:
    q, k, v = _qkv(3, s_q=4, s_k=5)
    mask = torch.ones(3, 4, 5, dtype=torch.bool)
    mask[0, :, 3:] = False
    mask[1, 2, :] = False  # a fully masked row: not graded (any value is accepted there)
    _, weights = call(ctx.obj, q, k, v, mask)
    graded = mask.any(-1)
    sums = weights.detach().double().sum(-1)[graded]
    if not torch.allclose(sums, torch.ones_like(sums), atol=1e-5):
        raise Fail(
            "Each query's attention weights should sum to 1 over the keys; yours sum to values "
            f"between {sums.min().item():.4g} and {sums.max().item():.4g}.",
            ["attn_softmax_wrong_axis"],
        )
    leaked = weights.detach()[graded.unsqueeze(-1).expand_as(mask) & ~mask]
    if not leaked.abs().max() <= 1e-6:  # (a NaN weight is no zero either)
        raise Fail(
            "Masked keys (mask False) should get zero attention weight; yours get up to "
            f"{leaked.abs().max().item():.3g}.",
            ["attn_mask_polarity"],
        )


@SPEC.test("hygiene")
def does_not_change_its_inputs(ctx: Ctx) -> None:
    q, k, v = _qkv(2)
    mask = torch.rand(2, 4, 6) > 0.3
    mask[..., 0] = True
    expect_inputs_unchanged(
        "scaled_dot_product_attention",
        {"query": q, "key": k, "value": v, "mask": mask},
        lambda: learner_call(ctx.obj, q, k, v, mask, what="scaled_dot_product_attention"),
    )


@SPEC.test("hygiene")
@in_float64
def works_in_float64_and_keeps_the_device(ctx: Ctx) -> None:
    q, k, v = _qkv(2, dtype=torch.float64)
    mask = torch.ones(2, 1, 6, dtype=torch.bool)
    mask[0, :, 4:] = False
    out, weights = call(ctx.obj, q, k, v, mask)
    require_float64(out, "The attention output")
    require_float64(weights, "The attention weights")
    require_device(out, q.device, "The attention output")
    check_against_reference(ctx.obj, q, k, v, mask)
