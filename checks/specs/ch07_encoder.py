"""Chapter 07: ``EncoderLayer`` and ``Encoder`` (sections 3.1, 3.2.3, 5.4).

Both are graded with the reference MultiHeadAttention, FeedForwardNetwork, LayerNorm, ... in place of
the learner's own (isolation), then once more with the learner's own parts ("with your own parts").
"""

from __future__ import annotations

import math

import torch

import solutions

from ..core import Ctx, Fail, Skip, Spec, learner_call
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
    expect_shape,
    grads_match,
    is_close,
    load_into,
    make_pair,
    module_hygiene_tests,
    own_parts_check,
    padded_tokens,
    padding_mask,
    zero_sublayer_outputs,
)

LAYER = Spec("EncoderLayer", solutions.EncoderLayer)
STACK = Spec("Encoder", solutions.Encoder)


# --------------------------------------------------------------------------------------------------
# EncoderLayer
# --------------------------------------------------------------------------------------------------
def encoder_layer_variant(
    ref,
    x,
    mask,
    *,
    norm: str = "post",
    residual: tuple = (True, True),
    use_mask: bool = True,
    norms: tuple = ("norm1", "norm2"),
):
    """The post-norm layer of section 3.1 (eval mode) and its classic mistakes."""
    m = mask if use_mask else None

    def sublayer(x, f, norm_module, res):
        if norm == "pre":
            return x + f(norm_module(x))
        return norm_module(x + f(x)) if res else norm_module(f(x))

    n1, n2 = (getattr(ref, n) for n in norms)
    x = sublayer(x, lambda t: ref.self_attn(t, t, t, m), n1, residual[0])
    return sublayer(x, ref.feed_forward, n2, residual[1])


def layer_hypotheses(ref, x, mask) -> dict:
    variants = {
        "prenorm": dict(norm="pre"),
        "missing_residual": dict(residual=(False, False)),
        "missing_residual#attn": dict(residual=(False, True)),
        "missing_residual#ffn": dict(residual=(True, False)),
        "mask_not_passed": dict(use_mask=False),
        "norms_shared": dict(norms=("norm1", "norm1")),
        "norms_shared#2": dict(norms=("norm2", "norm2")),
    }
    return {k: (lambda kw=kw: encoder_layer_variant(ref, x, mask, **kw).detach()) for k, kw in variants.items()}


def _layer_pair(ctx: Ctx, dropout: float = 0.1):
    return make_pair(ctx, D_MODEL, HEADS, D_FF, dropout)


def _run_layer(module, x, mask=None):
    shown = f"EncoderLayer(x {list(x.shape)}" + (f", mask {list(mask.shape)})" if mask is not None else ")")
    return learner_call(module, x, mask, what=shown) if mask is not None else learner_call(module, x, what=shown)


def _layer_inputs(dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """(x, mask) of a padded batch of two."""
    return torch.randn(2, 4, D_MODEL, dtype=dtype), padding_mask([2, 4], 4)


@LAYER.test("interface")
def constructor_and_parameters(ctx: Ctx) -> None:
    expect_init_signature(
        ctx,
        "(d_model, num_heads, d_ff, dropout=0.1)",
        ((D_MODEL, HEADS, D_FF), {}),
        ((D_MODEL, HEADS, D_FF), {"dropout": 0.1}),
    )
    mine, ref = _layer_pair(ctx)
    expect_forward_signature(
        mine,
        "EncoderLayer",
        "(x, mask=None)",
        ((torch.zeros(1, 2, D_MODEL),), {}),
        ((torch.zeros(1, 2, D_MODEL), None), {}),
    )
    expect_independent(mine, ref, "EncoderLayer")


@LAYER.test("shapes")
def output_shape(ctx: Ctx) -> None:
    mine, _ = _layer_pair(ctx)
    for b, s in ((2, 5), (1, 1), (3, 4)):
        x = torch.randn(b, s, D_MODEL)
        expect_shape(
            _run_layer(mine, x, padding_mask([s] * b, s)),
            [b, s, D_MODEL],
            f"The output for x of shape [{b}, {s}, {D_MODEL}]",
        )
    expect_shape(_run_layer(mine, torch.randn(2, 3, D_MODEL)), [2, 3, D_MODEL], "The output without a mask")


@LAYER.test("numbers")
def matches_the_post_norm_layer(ctx: Ctx) -> None:
    mine, ref = _layer_pair(ctx)
    x = torch.randn(2, 5, D_MODEL)
    mask = padding_mask([3, 5], 5)
    try:
        compare(
            _run_layer(mine, x, mask),
            ref(x, mask),
            "Your EncoderLayer's output (eval mode, padded batch)",
            layer_hypotheses(ref, x, mask),
        )
    except Fail as fail:
        blame_submodules(
            ctx, lambda: _layer_pair(ctx), lambda m: m(x, mask), ["self_attn", "feed_forward", "norm1", "norm2"], fail
        )


@LAYER.test("properties")
def dropout_only_on_sublayer_outputs(ctx: Ctx) -> None:
    """With both sub-layers' outputs forced to zero, dropout in the right place changes nothing."""
    mine, ref = _layer_pair(ctx, dropout=0.5)
    zero_sublayer_outputs(ref, ["self_attn.W_o", "feed_forward.W_2"])
    load_into(mine, ref, "EncoderLayer")
    x = torch.randn(2, 5, D_MODEL)
    expected = ref.norm2(ref.norm1(x)).detach()
    learner_call(mine.train, what="EncoderLayer.train()")
    for _ in range(2):
        out = _run_layer(mine, x)
        if not torch.allclose(out.detach(), expected, atol=1e-5):
            raise Fail(
                "With both sub-layers' outputs set to zero, your EncoderLayer in train mode should "
                "give LayerNorm(LayerNorm(x)) exactly, whatever dropout does; yours gives something "
                "else, so dropout acts on more than the sub-layer outputs.",
                ["dropout_after_residual"],
            )


@LAYER.test("properties")
def dropout_is_used_in_train_mode(ctx: Ctx) -> None:
    mine, ref = _layer_pair(ctx, dropout=0.5)
    x = torch.randn(2, 5, D_MODEL)
    learner_call(mine.train, what="EncoderLayer.train()")
    if torch.allclose(_run_layer(mine, x).detach(), ref(x).detach()):
        raise Fail(
            "Your EncoderLayer(dropout=0.5) gives the same output in train mode as in eval mode.", ["dropout_missing"]
        )


@LAYER.test("properties")
def gradients_match(ctx: Ctx) -> None:
    mine, ref = _layer_pair(ctx)
    x, mask = _layer_inputs()
    grads_match(mine, ref, lambda m: m(x, mask), "EncoderLayer")


module_hygiene_tests(LAYER, _layer_pair, _layer_inputs, ["x", "mask"], _run_layer)


@LAYER.own_parts_test
def with_your_own_parts(ctx: Ctx) -> None:
    x, mask = torch.randn(2, 5, D_MODEL), padding_mask([3, 5], 5)
    own_parts_check(ctx, lambda: _layer_pair(ctx), lambda m: m(x, mask))


# --------------------------------------------------------------------------------------------------
# Encoder
# --------------------------------------------------------------------------------------------------
STACK_ARGS = (VOCAB, D_MODEL, LAYERS, HEADS, D_FF)


def _stack_pair(ctx: Ctx, dropout: float = 0.1):
    return make_pair(ctx, *STACK_ARGS, dropout=dropout, max_seq_length=MAX_LEN, diagnose=_stack_keys)


def _stack_keys(missing, unexpected, wrong) -> list[str]:
    if any("norm" in k and not k.startswith("layers.") for k in unexpected):
        return ["final_layer_norm"]
    return []


def stack_variant(ref, src, mask, *, use_mask: bool = True, positions: bool = True, scale: bool = True):
    x = ref.embedding.embedding(src) * (math.sqrt(ref.embedding.d_model) if scale else 1.0)
    if positions:
        x = ref.positional_encoding(x)
    for layer in ref.layers:
        x = layer(x, mask if use_mask else None)
    return x


def stack_hypotheses(ref, src, mask) -> dict:
    variants = {
        "mask_not_passed": dict(use_mask=False),
        "pe_not_added": dict(positions=False),
        "embedding_no_scale": dict(scale=False),
    }
    hyps = {k: (lambda kw=kw: stack_variant(ref, src, mask, **kw).detach()) for k, kw in variants.items()}
    final = solutions.LayerNorm(D_MODEL)
    hyps["final_layer_norm"] = lambda: final(stack_variant(ref, src, mask)).detach()
    return hyps


def _run_stack(module, src, mask=None, name="Encoder"):
    shown = f"{name}(src {list(src.shape)}" + (f", src_mask {list(mask.shape)})" if mask is not None else ")")
    return learner_call(module, src, mask, what=shown)


def _padded_src(dtype: torch.dtype | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(src, src_mask) of a padded batch; token ids whatever ``dtype`` (float64 comes from the weights)."""
    src = padded_tokens([3, 5], 5)
    return src, solutions.create_padding_mask(src)


@STACK.test("interface")
def constructor_and_parameters(ctx: Ctx) -> None:  # noqa: F811 - the same row name on the stack's spec
    expect_init_signature(
        ctx,
        "(vocab_size, d_model=512, num_layers=6, num_heads=8, d_ff=2048, dropout=0.1, max_seq_length=5000)",
        (STACK_ARGS, {"dropout": 0.1, "max_seq_length": MAX_LEN}),
        ((VOCAB,), {}),
    )
    mine, ref = _stack_pair(ctx)
    expect_forward_signature(
        mine, "Encoder", "(src, src_mask=None)", ((padded_tokens([2], 2),), {}), ((padded_tokens([2], 2), None), {})
    )
    expect_independent(mine, ref, "Encoder")


@STACK.test("shapes")
def output_shape(ctx: Ctx) -> None:  # noqa: F811 - the same row name on the stack's spec
    mine, _ = _stack_pair(ctx)
    for b, s in ((2, 5), (1, 1), (3, 4)):
        src = padded_tokens([s] * b, s)
        expect_shape(
            _run_stack(mine, src, padding_mask([s] * b, s)), [b, s, D_MODEL], f"The output for src of shape [{b}, {s}]"
        )


@STACK.test("numbers")
def matches_the_reference_encoder(ctx: Ctx) -> None:
    mine, ref = _stack_pair(ctx)
    src = padded_tokens([4, 6], 6)
    mask = solutions.create_padding_mask(src)
    try:
        compare(
            _run_stack(mine, src, mask),
            ref(src, mask),
            "Your Encoder's output (eval mode, padded batch)",
            stack_hypotheses(ref, src, mask),
        )
    except Fail as fail:
        blame_submodules(
            ctx, lambda: _stack_pair(ctx), lambda m: m(src, mask), ["embedding", "positional_encoding"], fail
        )


def embedding_dropout_check(ctx: Ctx, mine, ref, run_mine, name: str, src) -> None:
    """With the layers replaced by pass-throughs, train mode must give dropout(embedding + positions)."""
    learner_call(
        setattr,
        mine,
        "layers",
        torch.nn.ModuleList([PassThrough() for _ in range(LAYERS)]),
        what=f"replacing {name}.layers",
    )
    expected = ref.positional_encoding(ref.embedding(src)).detach()
    if not is_close(run_mine(mine), expected):
        raise Skip(
            f"your {name} does not run its layers through `self.layers`, so this test cannot look "
            "at the embedding path alone"
        )
    learner_call(mine.train, what=f"{name}.train()")
    out = run_mine(mine).detach()
    if list(out.shape) != list(expected.shape):
        raise Fail(f"Your {name}'s output has shape {list(out.shape)}, expected {list(expected.shape)}.")
    dropped = out.abs() < 1e-7
    kept = torch.isclose(out, 2 * expected, rtol=1e-4, atol=1e-5)
    if not dropped.any() and torch.allclose(out, expected, atol=1e-5):
        raise Fail(
            f"Your {name}(dropout=0.5) in train mode leaves the sum of embeddings and positional encodings untouched.",
            ["missing_embedding_dropout"],
        )
    if not (dropped | kept).all():
        raise Fail(
            f"In train mode, the output of your {name}'s embedding path (before the layers) should be "
            "dropout(scaled embedding + positional encoding): each value either 0 or doubled "
            "(p=0.5). Yours is neither.",
            ["embedding_dropout_missing_or_extra"],
        )


@STACK.test("properties")
def dropout_on_the_sum_of_embeddings_and_positions(ctx: Ctx) -> None:
    mine, ref = _stack_pair(ctx, dropout=0.5)
    src = padded_tokens([6, 6], 6)
    embedding_dropout_check(ctx, mine, ref, lambda m: m(src, None), "Encoder", src)


@STACK.test("properties")
def gradients_match(ctx: Ctx) -> None:  # noqa: F811 - the same row name on the stack's spec
    mine, ref = _stack_pair(ctx)
    src, mask = _padded_src()
    grads_match(mine, ref, lambda m: m(src, mask), "Encoder")


module_hygiene_tests(STACK, _stack_pair, _padded_src, ["src", "src_mask"], _run_stack)


@STACK.own_parts_test
def with_your_own_parts(ctx: Ctx) -> None:  # noqa: F811 - the same row name on the stack's spec
    src = padded_tokens([4, 6], 6)
    mask = solutions.create_padding_mask(src)
    own_parts_check(ctx, lambda: _stack_pair(ctx), lambda m: m(src, mask))
