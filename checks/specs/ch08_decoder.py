"""Chapter 08: the masks, ``DecoderLayer`` and ``Decoder`` (sections 3.1, 3.2.3, 5.4)."""

from __future__ import annotations

import itertools

import torch

import solutions

from ..core import Ctx, Fail, Spec, learner_call, picture, several
from .ch07_encoder import embedding_dropout_check, skipped_norms, sublayer_dropout_check, unused_sublayers
from .common import (
    D_FF,
    D_MODEL,
    HEADS,
    LAYERS,
    MAX_LEN,
    VOCAB,
    PassThrough,
    blame_submodules,
    compare,
    expect_forward_signature,
    expect_independent,
    expect_init_signature,
    expect_inputs_unchanged,
    expect_shape,
    expect_signature,
    expect_tensor,
    grads_match,
    load_into,
    make_pair,
    module_hygiene_tests,
    own_parts_check,
    padded_tokens,
    padding_mask,
    which_hypothesis,
    zero_sublayer_outputs,
)

PADDING = Spec("create_padding_mask", solutions.create_padding_mask, kind="function")
FUTURE = Spec("create_future_mask", solutions.create_future_mask, kind="function")
MASKS = Spec("create_masks", solutions.create_masks, kind="function")
LAYER = Spec("DecoderLayer", solutions.DecoderLayer)
STACK = Spec("Decoder", solutions.Decoder)


def expect_bool_mask(mask, shape: list[int], what: str, shape_diag: str = "") -> torch.Tensor:
    """``mask`` when it is a bool tensor of ``shape``; else a failure naming each problem (the dtype, with what
    an additive float mask means, and the shape)."""
    problems = mask_problems(mask, shape, what, shape_diag)
    if problems:
        raise several(problems)
    return mask


def _is_additive(mask: torch.Tensor) -> bool:
    """A float mask of 0 (may attend) and -inf or a large negative number (blocked): one to add to the scores."""
    if not mask.is_floating_point() or mask.numel() == 0:
        return False
    values = mask.detach().double()
    return bool(((values == 0) | (values <= -1e4)).all() and (values < 0).any())


def read_as_bool(mask: torch.Tensor, shape: list[int]) -> torch.Tensor | None:
    """The learner's ``mask`` as a bool mask of ``shape`` (True = may attend), whatever its dtype and however
    many axes it lacks (size-1 axes put in where it then broadcasts; None when no place works): an additive
    float mask is True where it is 0, any other mask where it is nonzero."""
    if not isinstance(mask, torch.Tensor) or mask.dim() > len(shape):
        return None
    for where in itertools.combinations(range(len(shape)), len(shape) - mask.dim()):
        grown = mask.detach()
        for axis in where:
            grown = grown.unsqueeze(axis)
        try:
            full = grown.expand(*shape)
        except RuntimeError:
            continue
        if full.dtype == torch.bool:
            return full
        return full == 0 if _is_additive(mask) else full != 0
    return None


def mask_problems(mask, shape: list[int], what: str, shape_diag: str = "", broadcast: bool = False) -> list[Fail]:
    """What is wrong with the form of a mask: its dtype (an additive float mask named as such), then its shape
    (``broadcast``: any 4-D shape that broadcasts to ``shape`` is fine)."""
    mask = expect_tensor(mask, what)
    problems = []
    if mask.dtype != torch.bool:
        if _is_additive(mask):
            problems.append(
                Fail(
                    f"{what} is a {mask.dtype} mask of 0 and -inf (or a large negative number): an additive mask, "
                    "the kind that is added to the attention scores (nn.Transformer's float attn_mask): 0 where "
                    "attention is allowed, -inf where it is blocked. The workbook's masks are torch.bool, True = "
                    "may attend; read as a bool mask (nonzero = True), yours is True exactly where attention is "
                    "blocked.",
                    ["mask_additive_float"],
                )
            )
        else:
            problems.append(
                Fail(
                    f"{what} should be a torch.bool tensor (True = may attend), but yours is {mask.dtype}.",
                    ["returns_wrong_type"],
                )
            )
    fits = list(mask.shape) == shape
    if broadcast and mask.dim() == len(shape):
        try:
            mask.expand(*shape)
            fits = True
        except RuntimeError:
            fits = False
    if not fits:
        wanted = f"[B, 1, T, T] = {shape}" if broadcast else str(shape)
        problems.append(
            Fail(
                f"{what} should have shape {wanted}, but yours has shape {list(mask.shape)}.",
                [shape_diag] if shape_diag else [],
            )
        )
    return problems


def values_problem(mask, expected: torch.Tensor, what: str, hyps: dict, rows: str = "query", columns: str = "key"):
    """The failure the values of a mask of the wrong form give, read as a bool mask of ``expected``'s shape
    (see :func:`read_as_bool`); None when they are right or cannot be read so."""
    full = read_as_bool(mask, list(expected.shape))
    if full is None:
        return None
    try:
        shown = f"{what}, read as a bool mask of shape {list(expected.shape)},"
        _mask_values(full, expected, shown, hyps, rows, columns)
    except Fail as fail:
        return fail
    return None


def _mask_values(actual, expected, what: str, hyps: dict, rows: str = "query", columns: str = "key") -> None:
    if not torch.equal(actual, expected):
        wrong = int((actual != expected).sum())
        raise Fail(
            f"{what} has {wrong} wrong entries (of {expected.numel()}).",
            which_hypothesis(actual.float(), {k: v.float() for k, v in hyps.items()}),
            picture(what, actual, expected, rows, columns, mask=True),  # drawn in the notebook only
        )


# --------------------------------------------------------------------------------------------------
# create_padding_mask
# --------------------------------------------------------------------------------------------------
@PADDING.test("interface")
def signature(ctx: Ctx) -> None:
    seq = padded_tokens([2], 3)
    expect_signature(
        ctx.obj,
        "create_padding_mask",
        ((seq,), {}),
        ((seq,), {"pad_idx": 0}),
        shown="create_padding_mask(seq, pad_idx=0)",
    )


@PADDING.test("shapes")
def shape_and_dtype(ctx: Ctx) -> None:
    for lengths, total in (([3, 5], 5), ([1], 1), ([2, 4, 1], 4)):
        seq = padded_tokens(lengths, total)
        out = learner_call(ctx.obj, seq.clone(), what=f"create_padding_mask(seq of shape {list(seq.shape)})")
        what = f"The padding mask for seq {list(seq.shape)}"
        problems = mask_problems(out, [len(lengths), 1, 1, total], what, "padding_mask_shape")
        if problems:
            expected = solutions.create_padding_mask(seq)
            hyps = {"padding_mask_polarity": ~expected}
            values = values_problem(out, expected, "Your padding mask", hyps, "sentence", "token")
            raise several([values, *problems])


@PADDING.test("numbers")
def true_for_real_tokens(ctx: Ctx) -> None:
    seq = padded_tokens([3, 5, 1], 5)
    out = learner_call(ctx.obj, seq.clone(), what="create_padding_mask(seq)")
    expected = solutions.create_padding_mask(seq)
    _mask_values(out, expected, "Your padding mask", {"padding_mask_polarity": ~expected}, "sentence", "token")


@PADDING.test("numbers")
def uses_pad_idx(ctx: Ctx) -> None:
    seq = padded_tokens([2, 4], 4, pad=3)
    out = learner_call(ctx.obj, seq.clone(), pad_idx=3, what="create_padding_mask(seq, pad_idx=3)")
    expected = solutions.create_padding_mask(seq, 3)
    _mask_values(
        expect_bool_mask(out, [2, 1, 1, 4], "The padding mask with pad_idx=3"),
        expected,
        "Your padding mask with pad_idx=3",
        {"padding_mask_polarity": ~expected},
        "sentence",
        "token",
    )


@PADDING.test("hygiene")
def does_not_change_seq(ctx: Ctx) -> None:
    seq = padded_tokens([2, 4], 4)
    expect_inputs_unchanged(
        "create_padding_mask", {"seq": seq}, lambda: learner_call(ctx.obj, seq, what="create_padding_mask(seq)")
    )


# --------------------------------------------------------------------------------------------------
# create_future_mask
# --------------------------------------------------------------------------------------------------
@FUTURE.test("interface")
def signature(ctx: Ctx) -> None:  # noqa: F811 - one `signature` test per spec
    expect_signature(ctx.obj, "create_future_mask", ((4,), {}), shown="create_future_mask(size)")


@FUTURE.test("shapes")
def shape_and_dtype(ctx: Ctx) -> None:  # noqa: F811
    for size in (4, 7, 1):
        out = learner_call(ctx.obj, size, what=f"create_future_mask({size})")
        problems = mask_problems(out, [1, 1, size, size], f"create_future_mask({size})")
        if problems:  # what the values say too, on a mask big enough to show them
            values = values_problem(
                learner_call(ctx.obj, 5, what="create_future_mask(5)"),
                solutions.create_future_mask(5),
                "Your create_future_mask(5)",
                _future_hypotheses(5),
            )
            raise several([values, *problems])


def _future_hypotheses(size: int) -> dict:
    expected = solutions.create_future_mask(size)
    ones = torch.ones(size, size, dtype=torch.bool)
    return {
        "mask_convention_inverted": expected.logical_not(),
        "future_mask_excludes_diagonal": torch.tril(ones, -1)[None, None],
        "future_mask_upper": torch.triu(ones)[None, None],
        "future_mask_upper#strict": torch.triu(ones, 1)[None, None],
    }


@FUTURE.test("numbers")
def true_on_and_below_the_diagonal(ctx: Ctx) -> None:
    for size in (5, 1):
        out = learner_call(ctx.obj, size, what=f"create_future_mask({size})")
        expected = solutions.create_future_mask(size)
        _mask_values(out, expected, f"Your create_future_mask({size})", _future_hypotheses(size))


# --------------------------------------------------------------------------------------------------
# create_masks
# --------------------------------------------------------------------------------------------------
def _call_masks(ctx: Ctx, src, tgt, **kwargs):
    out = learner_call(
        ctx.obj, src.clone(), tgt.clone(), what=f"create_masks(src {list(src.shape)}, tgt {list(tgt.shape)})", **kwargs
    )
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        raise Fail(
            f"create_masks should return two masks, (src_mask, tgt_mask), but returned {type(out).__name__}.",
            ["returns_wrong_type"],
        )
    return out


def _tgt_mask_full(mask, b: int, t: int, what: str, cast: bool = False) -> torch.Tensor:
    """The learner's tgt_mask expanded to [B, 1, T, T] (any broadcastable 4-D shape is fine);
    ``cast``: a mask of another dtype is read as bool (nonzero = may attend) instead of failing."""
    mask = expect_tensor(mask, what)
    if mask.dim() != 4:
        raise Fail(f"{what} should have 4 dimensions, [B, 1, T, T], but yours has shape {list(mask.shape)}.")
    try:
        full = mask.expand(b, 1, t, t)
    except RuntimeError:
        raise Fail(
            f"{what} should have shape [B, 1, T, T] = {[b, 1, t, t]}, but yours has shape {list(mask.shape)}."
        ) from None
    if mask.dtype != torch.bool:
        if cast:
            return full != 0
        raise Fail(f"{what} should be a torch.bool tensor, but yours is {mask.dtype}.", ["returns_wrong_type"])
    return full


def _tgt_hypotheses(tgt, t: int) -> dict:
    b = tgt.shape[0]
    pad = solutions.create_padding_mask(tgt).expand(b, 1, t, t)
    future = solutions.create_future_mask(t).expand(b, 1, t, t)
    return {
        "mask_convention_inverted": (pad & future).logical_not(),
        "tgt_mask_missing_padding": future,
        "tgt_mask_missing_future": pad,
        "padding_mask_polarity": ~pad & future,
        "future_mask_upper": pad & future.transpose(-1, -2),
        "tgt_mask_padding_on_queries": pad.transpose(-1, -2) & future,
    }


def _values_problems(ctx: Ctx) -> list[Fail]:
    """The values of both masks on padded inputs, read as bool masks of the contract's shapes whatever their
    dtype and number of axes (so that a wrong form does not hide wrong entries): the failures they give."""
    src, tgt = padded_tokens([3, 5], 5), padded_tokens([4, 2], 4)
    try:
        src_mask, tgt_mask = _call_masks(ctx, src, tgt)
    except Fail:
        return []
    ref_src, ref_tgt = solutions.create_masks(src, tgt)
    found = [
        values_problem(src_mask, ref_src, "Your src_mask", {"padding_mask_polarity": ~ref_src}, "sentence", "token"),
        values_problem(tgt_mask, ref_tgt.expand(2, 1, 4, 4), "Your tgt_mask", _tgt_hypotheses(tgt, 4)),
    ]
    return [f for f in found if f is not None]


@MASKS.test("interface")
def signature(ctx: Ctx) -> None:  # noqa: F811
    src, tgt = padded_tokens([2], 3), padded_tokens([2], 4)
    expect_signature(
        ctx.obj,
        "create_masks",
        ((src, tgt), {}),
        ((src, tgt), {"pad_idx": 0}),
        shown="create_masks(src, tgt, pad_idx=0)",
    )


@MASKS.test("shapes")
def shapes_and_dtypes(ctx: Ctx) -> None:
    for b, s, t in ((2, 5, 4), (1, 1, 1), (3, 2, 6)):
        src, tgt = padded_tokens([s] * b, s), padded_tokens([t] * b, t)
        src_mask, tgt_mask = _call_masks(ctx, src, tgt)
        problems = mask_problems(src_mask, [b, 1, 1, s], f"src_mask for src {[b, s]}", "padding_mask_shape")
        problems += mask_problems(tgt_mask, [b, 1, t, t], f"tgt_mask for tgt {[b, t]}", broadcast=True)
        if problems:  # the wrong entries first: they matter more than the form
            raise several([*_values_problems(ctx), *problems])


@MASKS.test("numbers")
def both_masks_are_right(ctx: Ctx) -> None:
    src, tgt = padded_tokens([3, 5], 5), padded_tokens([4, 2], 4)
    src_mask, tgt_mask = _call_masks(ctx, src, tgt)
    ref_src, ref_tgt = solutions.create_masks(src, tgt)
    _mask_values(
        expect_bool_mask(src_mask, [2, 1, 1, 5], "src_mask", "padding_mask_shape"),
        ref_src,
        "Your src_mask",
        {"padding_mask_polarity": ~ref_src},
        "sentence",
        "token",
    )
    full = _tgt_mask_full(tgt_mask, 2, 4, "tgt_mask")
    _mask_values(full, ref_tgt.expand(2, 1, 4, 4), "Your tgt_mask", _tgt_hypotheses(tgt, 4))


@MASKS.test("numbers")
def uses_pad_idx(ctx: Ctx) -> None:  # noqa: F811
    src, tgt = padded_tokens([2, 4], 4, pad=2), padded_tokens([3, 1], 3, pad=2)
    src_mask, tgt_mask = _call_masks(ctx, src, tgt, pad_idx=2)
    ref_src, ref_tgt = solutions.create_masks(src, tgt, 2)
    src_mask = expect_bool_mask(src_mask, [2, 1, 1, 4], "src_mask")
    _mask_values(src_mask, ref_src, "Your src_mask with pad_idx=2", {}, "sentence", "token")
    _mask_values(_tgt_mask_full(tgt_mask, 2, 3, "tgt_mask"), ref_tgt, "Your tgt_mask with pad_idx=2", {})


@MASKS.test("hygiene")
def does_not_change_its_inputs(ctx: Ctx) -> None:
    src, tgt = padded_tokens([2, 4], 4), padded_tokens([3, 1], 3)
    expect_inputs_unchanged(
        "create_masks", {"src": src, "tgt": tgt}, lambda: learner_call(ctx.obj, src, tgt, what="create_masks(src, tgt)")
    )


@MASKS.own_parts_test
def with_your_own_parts(ctx: Ctx) -> None:
    src, tgt = padded_tokens([3, 5], 5), padded_tokens([4, 2], 4)

    def run(fn):
        src_mask, tgt_mask = fn(src, tgt)
        return torch.cat([src_mask.expand(2, 1, 1, 5).flatten(), tgt_mask.expand(2, 1, 4, 4).flatten()]).float()

    own_parts_check(ctx, lambda: (ctx.obj, ctx.reference), run)


# --------------------------------------------------------------------------------------------------
# DecoderLayer
# --------------------------------------------------------------------------------------------------
def decoder_layer_variant(
    ref,
    x,
    memory,
    src_mask,
    tgt_mask,
    *,
    norm: str = "post",
    residual: tuple = (True, True, True),
    kv: str = "memory",
    cross_mask: str = "src",
    self_mask: str = "tgt",
    norms: tuple = ("norm1", "norm2", "norm3"),
    skip: tuple = (),
    query: str = "sublayer",
):
    """The post-norm decoder layer (eval mode) and its classic mistakes; ``skip``: the norms (by name) left
    out; ``query="input"``: the cross-attention queried with the layer's input x instead of the output of the
    self-attention sub-layer (the residual still adds that output)."""
    masks = {"src": src_mask, "tgt": tgt_mask, "none": None}

    def sublayer(x, f, norm_module, res):
        if norm == "pre":
            return x + f(norm_module(x))
        return norm_module(x + f(x)) if res else norm_module(f(x))

    n1, n2, n3 = (PassThrough() if n in skip else getattr(ref, n) for n in norms)
    source = memory if kv == "memory" else None
    given = x
    x = sublayer(x, lambda t: ref.self_attn(t, t, t, masks[self_mask]), n1, residual[0])
    if kv == "swapped":  # queries from the encoder output, keys and values from the decoder
        x = sublayer(x, lambda t: ref.cross_attn(memory, t, t, masks[cross_mask]), n2, residual[1])
    else:
        x = sublayer(
            x,
            lambda t: ref.cross_attn(
                given if query == "input" else t,
                t if source is None else source,
                t if source is None else source,
                masks[cross_mask],
            ),
            n2,
            residual[1],
        )
    return sublayer(x, ref.feed_forward, n3, residual[2])


def layer_hypotheses(ref, x, memory, src_mask, tgt_mask) -> dict:
    variants = {
        "prenorm": dict(norm="pre"),
        "missing_residual": dict(residual=(False, False, False)),
        "missing_residual#1": dict(residual=(False, True, True)),
        "missing_residual#2": dict(residual=(True, False, True)),
        "missing_residual#3": dict(residual=(True, True, False)),
        "cross_attn_kv_from_decoder": dict(kv="decoder"),
        "cross_attn_kv_from_decoder#tgtmask": dict(kv="decoder", cross_mask="tgt"),
        "cross_attn_kv_from_decoder#nomask": dict(kv="decoder", cross_mask="none"),
        "cross_attn_kv_from_decoder#swapped": dict(kv="swapped", cross_mask="none"),
        "cross_attn_kv_from_decoder#swapped-tgt": dict(kv="swapped", cross_mask="tgt"),
        "cross_attn_wrong_mask": dict(cross_mask="tgt"),
        "cross_attn_wrong_mask#none": dict(cross_mask="none"),
        "self_attn_no_future_mask": dict(self_mask="none"),
        "self_attn_no_future_mask#src": dict(self_mask="src"),
        "mask_not_passed": dict(self_mask="none", cross_mask="none"),
        "cross_attn_wrong_mask#swapped": dict(self_mask="src", cross_mask="tgt"),
    }
    for i, norms in enumerate(
        [
            ("norm1", "norm1", "norm1"),
            ("norm1", "norm1", "norm3"),
            ("norm1", "norm2", "norm2"),
            ("norm1", "norm2", "norm1"),
            ("norm2", "norm2", "norm3"),
        ]
    ):
        variants[f"norms_shared#{i}"] = dict(norms=norms)
    variants["cross_attn_query_from_input"] = dict(query="input")
    for skipped in (("norm1",), ("norm2",), ("norm3",), ("norm1", "norm2"), ("norm2", "norm3"), ("norm1", "norm3")):
        variants["sublayer_not_normalised#" + "+".join(skipped)] = dict(skip=skipped)
    return {
        k: (lambda kw=kw: decoder_layer_variant(ref, x, memory, src_mask, tgt_mask, **kw).detach())
        for k, kw in variants.items()
    }


def _layer_pair(ctx: Ctx, dropout: float = 0.1):
    return make_pair(ctx, D_MODEL, HEADS, D_FF, dropout)


def _layer_inputs(b: int = 2, s: int = 6, t: int = 5, dtype=torch.float32):
    x, memory = torch.randn(b, t, D_MODEL, dtype=dtype), torch.randn(b, s, D_MODEL, dtype=dtype)
    src_mask = padding_mask([max(s - 2, 1)] + [s] * (b - 1), s)
    tgt = padded_tokens([t] + [max(t - 1, 1)] * (b - 1), t)
    tgt_mask = solutions.create_masks(torch.ones(b, s, dtype=torch.long), tgt)[1]
    return x, memory, src_mask, tgt_mask


def _run_layer(module, x, memory, src_mask=None, tgt_mask=None):
    shown = f"DecoderLayer(x {list(x.shape)}, encoder_output {list(memory.shape)}, masks)"
    return learner_call(module, x, memory, src_mask, tgt_mask, what=shown)


def _diagnose_layer(mine, ref) -> list[str]:
    """With S == T every known mistake computes without error: see which one the learner made."""
    x, memory, src_mask, tgt_mask = _layer_inputs(s=5, t=5)
    try:
        out = _run_layer(mine, x, memory, src_mask, tgt_mask)
    except Fail:
        return []
    return which_hypothesis(out, layer_hypotheses(ref, x, memory, src_mask, tgt_mask))


@LAYER.test("interface")
def constructor_and_parameters(ctx: Ctx) -> None:
    expect_init_signature(
        ctx,
        "(d_model, num_heads, d_ff, dropout=0.1)",
        ((D_MODEL, HEADS, D_FF), {}),
        ((D_MODEL, HEADS, D_FF), {"dropout": 0.1}),
    )
    mine, ref = _layer_pair(ctx)
    x = torch.zeros(1, 2, D_MODEL)
    expect_forward_signature(
        mine,
        "DecoderLayer",
        "(x, encoder_output, src_mask=None, tgt_mask=None)",
        ((x, x), {}),
        ((x, x, None, None), {}),
    )
    expect_independent(mine, ref, "DecoderLayer")


@LAYER.test("shapes")
def output_shape(ctx: Ctx) -> None:
    mine, ref = _layer_pair(ctx)
    for b, s, t in ((2, 5, 5), (2, 6, 4), (1, 1, 1), (3, 2, 7)):
        x, memory, src_mask, tgt_mask = _layer_inputs(b, s, t)
        try:
            expect_shape(
                _run_layer(mine, x, memory, src_mask, tgt_mask),
                [b, t, D_MODEL],
                f"The output for x [{b}, {t}, {D_MODEL}] and encoder_output [{b}, {s}, {D_MODEL}]",
            )
        except Fail as fail:
            raise Fail(fail.message, fail.diagnoses or _diagnose_layer(mine, ref)) from None


@LAYER.test("numbers")
def matches_the_post_norm_layer(ctx: Ctx) -> None:
    mine, ref = _layer_pair(ctx)
    for s, t in ((5, 5), (6, 4)):
        inputs = _layer_inputs(2, s, t)
        out = _run_layer(mine, *inputs)
        hyps = layer_hypotheses(ref, *inputs)
        try:
            compare(
                out,
                ref(*inputs),
                f"Your DecoderLayer's output (eval mode, padded batch, source length {s}, target length {t})",
                hyps,
            )
        except Fail as fail:
            if "sublayer_not_normalised" in fail.diagnoses:
                words = skipped_norms(
                    out, hyps, {"norm1": "self-attention", "norm2": "cross-attention", "norm3": "feed-forward"}
                )
                raise Fail(f"{fail.message}\n{words}" if words else fail.message, fail.diagnoses) from None
            unused = (
                ""
                if fail.diagnoses
                else unused_sublayers(
                    ctx,
                    lambda: _layer_pair(ctx),
                    lambda m, inputs=inputs: _run_layer(m, *inputs),
                    [
                        ("self_attn.W_o", "self-attention"),
                        ("cross_attn.W_o", "cross-attention"),
                        ("feed_forward.W_2", "feed-forward"),
                    ],
                )
            )
            if unused:
                raise Fail(f"{fail.message}\n{unused}", ["sublayer_unused"]) from None
            blame_submodules(
                ctx,
                lambda: _layer_pair(ctx),
                lambda m, inputs=inputs: m(*inputs),
                ["self_attn", "cross_attn", "feed_forward", "norm1", "norm2", "norm3"],
                fail,
            )


@LAYER.test("properties")
def dropout_only_on_sublayer_outputs(ctx: Ctx) -> None:
    mine, ref = _layer_pair(ctx, dropout=0.5)
    zero_sublayer_outputs(ref, ["self_attn.W_o", "cross_attn.W_o", "feed_forward.W_2"])
    load_into(mine, ref, "DecoderLayer")
    x, memory, src_mask, tgt_mask = _layer_inputs()
    expected = ref.norm3(ref.norm2(ref.norm1(x))).detach()
    learner_call(mine.train, what="DecoderLayer.train()")
    for _ in range(2):
        out = _run_layer(mine, x, memory, src_mask, tgt_mask)
        if not torch.allclose(out.detach(), expected, atol=1e-5):
            raise Fail(
                "With all three sub-layers' outputs set to zero, your DecoderLayer in train mode should "
                "give norm3(norm2(norm1(x))) exactly, whatever dropout does; yours gives something else, "
                "so dropout acts on more than the sub-layer outputs.",
                ["dropout_after_residual"],
            )


@LAYER.test("properties")
def dropout_once_on_each_sublayer_output(ctx: Ctx) -> None:
    mine, _ = _layer_pair(ctx, dropout=0.5)
    _, memory, src_mask, tgt_mask = _layer_inputs()
    sublayer_dropout_check(
        mine,
        "DecoderLayer",
        lambda m, x: _run_layer(m, x, memory, src_mask, tgt_mask),
        torch.randn(2, 5, D_MODEL),
        [("self_attn", "self-attention"), ("cross_attn", "cross-attention"), ("feed_forward", "feed-forward")],
        ["norm1", "norm2", "norm3"],
    )


@LAYER.test("properties")
def dropout_is_used_in_train_mode(ctx: Ctx) -> None:
    mine, ref = _layer_pair(ctx, dropout=0.5)
    x, memory, src_mask, tgt_mask = _layer_inputs()
    learner_call(mine.train, what="DecoderLayer.train()")
    if torch.allclose(
        _run_layer(mine, x, memory, src_mask, tgt_mask).detach(), ref(x, memory, src_mask, tgt_mask).detach()
    ):
        raise Fail(
            "Your DecoderLayer(dropout=0.5) gives the same output in train mode as in eval mode.", ["dropout_missing"]
        )


@LAYER.test("properties")
def gradients_match(ctx: Ctx) -> None:
    mine, ref = _layer_pair(ctx)
    x, memory, src_mask, tgt_mask = _layer_inputs()
    grads_match(mine, ref, lambda m: m(x, memory, src_mask, tgt_mask), "DecoderLayer")


module_hygiene_tests(
    LAYER,
    _layer_pair,
    lambda dtype: _layer_inputs(dtype=dtype),
    ["x", "encoder_output", "src_mask", "tgt_mask"],
    _run_layer,
)


@LAYER.own_parts_test
def with_your_own_parts(ctx: Ctx) -> None:  # noqa: F811
    inputs = _layer_inputs()
    own_parts_check(ctx, lambda: _layer_pair(ctx), lambda m: m(*inputs))


# --------------------------------------------------------------------------------------------------
# Decoder
# --------------------------------------------------------------------------------------------------
STACK_ARGS = (VOCAB, D_MODEL, LAYERS, HEADS, D_FF)


def _stack_pair(ctx: Ctx, dropout: float = 0.1):
    from .ch07_encoder import stack_pair

    tgt, memory, src_mask, tgt_mask = _stack_inputs()

    def embedding_norm(ref, norm):
        x = norm(ref.positional_encoding(ref.embedding(tgt)))
        for layer in ref.layers:
            x = layer(x, memory, src_mask, tgt_mask)
        return x

    return stack_pair(ctx, dropout, lambda m: m(tgt, memory, src_mask, tgt_mask), embedding_norm)


def _stack_inputs(b: int = 2, s: int = 6, t: int = 5, dtype=torch.float32):
    tgt = padded_tokens([t] + [max(t - 2, 1)] * (b - 1), t)
    memory = torch.randn(b, s, D_MODEL, dtype=dtype)
    src_mask = padding_mask([max(s - 2, 1)] + [s] * (b - 1), s)
    tgt_mask = solutions.create_masks(torch.ones(b, s, dtype=torch.long), tgt)[1]
    return tgt, memory, src_mask, tgt_mask


def stack_variant(
    ref, tgt, memory, src_mask, tgt_mask, *, self_mask: bool = True, cross_mask: bool = True, positions: bool = True
):
    x = ref.embedding(tgt)
    if positions:
        x = ref.positional_encoding(x)
    for layer in ref.layers:
        x = layer(x, memory, src_mask if cross_mask else None, tgt_mask if self_mask else None)
    return x


def stack_hypotheses(ref, tgt, memory, src_mask, tgt_mask) -> dict:
    variants = {
        "mask_not_passed": dict(self_mask=False, cross_mask=False),
        "self_attn_no_future_mask": dict(self_mask=False),
        "mask_not_passed#cross": dict(cross_mask=False),
        "pe_not_added": dict(positions=False),
    }
    hyps = {
        k: (lambda kw=kw: stack_variant(ref, tgt, memory, src_mask, tgt_mask, **kw).detach())
        for k, kw in variants.items()
    }
    final = solutions.LayerNorm(D_MODEL)
    hyps["final_layer_norm"] = lambda: final(stack_variant(ref, tgt, memory, src_mask, tgt_mask)).detach()
    return hyps


def _run_stack(module, tgt, memory, src_mask=None, tgt_mask=None):
    shown = f"Decoder(tgt {list(tgt.shape)}, encoder_output {list(memory.shape)}, masks)"
    return learner_call(module, tgt, memory, src_mask, tgt_mask, what=shown)


@STACK.test("interface")
def constructor_and_parameters(ctx: Ctx) -> None:  # noqa: F811
    expect_init_signature(
        ctx,
        "(vocab_size, d_model=512, num_layers=6, num_heads=8, d_ff=2048, dropout=0.1, max_seq_length=5000)",
        (STACK_ARGS, {"dropout": 0.1, "max_seq_length": MAX_LEN}),
        ((VOCAB,), {}),
    )
    mine, ref = _stack_pair(ctx)
    tgt, memory = padded_tokens([2], 2), torch.zeros(1, 3, D_MODEL)
    expect_forward_signature(
        mine,
        "Decoder",
        "(tgt, encoder_output, src_mask=None, tgt_mask=None)",
        ((tgt, memory), {}),
        ((tgt, memory, None, None), {}),
    )
    expect_independent(mine, ref, "Decoder")


@STACK.test("shapes")
def output_shape(ctx: Ctx) -> None:  # noqa: F811
    mine, _ = _stack_pair(ctx)
    for b, s, t in ((2, 5, 5), (2, 6, 4), (1, 1, 1), (3, 2, 7)):
        expect_shape(
            _run_stack(mine, *_stack_inputs(b, s, t)),
            [b, t, D_MODEL],
            f"The output for tgt [{b}, {t}] and encoder_output [{b}, {s}, {D_MODEL}]",
        )


@STACK.test("numbers")
def matches_the_reference_decoder(ctx: Ctx) -> None:
    mine, ref = _stack_pair(ctx)
    inputs = _stack_inputs()
    try:
        compare(
            _run_stack(mine, *inputs),
            ref(*inputs),
            "Your Decoder's output (eval mode, padded batch)",
            stack_hypotheses(ref, *inputs),
        )
    except Fail as fail:
        blame_submodules(
            ctx, lambda: _stack_pair(ctx), lambda m: m(*inputs), ["embedding", "positional_encoding"], fail
        )


@STACK.test("properties")
def dropout_on_the_sum_of_embeddings_and_positions(ctx: Ctx) -> None:
    mine, ref = _stack_pair(ctx, dropout=0.5)
    tgt, memory, _, _ = _stack_inputs()
    embedding_dropout_check(ctx, mine, ref, lambda m: m(tgt, memory, None, None), "Decoder", tgt)


@STACK.test("properties")
def gradients_match(ctx: Ctx) -> None:  # noqa: F811
    mine, ref = _stack_pair(ctx)
    inputs = _stack_inputs()
    grads_match(mine, ref, lambda m: m(*inputs), "Decoder")


module_hygiene_tests(
    STACK,
    _stack_pair,
    lambda dtype: _stack_inputs(dtype=dtype),
    ["tgt", "encoder_output", "src_mask", "tgt_mask"],
    _run_stack,
    device_of=1,
)


@STACK.own_parts_test
def with_your_own_parts(ctx: Ctx) -> None:  # noqa: F811
    inputs = _stack_inputs()
    own_parts_check(ctx, lambda: _stack_pair(ctx), lambda m: m(*inputs))
