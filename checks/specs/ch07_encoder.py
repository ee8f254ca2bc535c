"""Chapter 07: ``EncoderLayer`` and ``Encoder`` (sections 3.1, 3.2.3, 5.4).

Both are graded with the reference MultiHeadAttention, FeedForwardNetwork, LayerNorm, ... in place of
the learner's own (isolation), then once more with the learner's own parts ("with your own parts").
"""

from __future__ import annotations

import math

import torch

import solutions

from ..core import Ctx, Fail, Skip, Spec, learner_call, several
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
    expect_tensor,
    grads_match,
    is_close,
    load_into,
    make_pair,
    module_hygiene_tests,
    own_parts_check,
    padded_tokens,
    padding_mask,
    randomise,
    seed,
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
    skip: tuple = (),
):
    """The post-norm layer of section 3.1 (eval mode) and its classic mistakes; ``skip``: the norms
    (by name) left out, their sub-layer's residual sum returned un-normalised."""
    m = mask if use_mask else None

    def sublayer(x, f, norm_module, res):
        if norm == "pre":
            return x + f(norm_module(x))
        return norm_module(x + f(x)) if res else norm_module(f(x))

    n1, n2 = (PassThrough() if n in skip else getattr(ref, n) for n in norms)
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
        "sublayer_not_normalised#norm1": dict(skip=("norm1",)),
        "sublayer_not_normalised#norm2": dict(skip=("norm2",)),
        "sublayer_not_normalised#norm1+norm2": dict(skip=("norm1", "norm2")),
    }
    return {k: (lambda kw=kw: encoder_layer_variant(ref, x, mask, **kw).detach()) for k, kw in variants.items()}


def skipped_norms(actual, hypotheses: dict, words: dict[str, str]) -> str:
    """After a match of ``sublayer_not_normalised``: which norms the learner's output leaves out, in words
    (``words``: norm name -> the sub-layer it belongs to); "" when none of those hypotheses matches."""
    from .common import which_hypothesis

    for key, make in hypotheses.items():
        if not key.startswith("sublayer_not_normalised#") or not which_hypothesis(actual, {key: make}):
            continue
        names = key.split("#", 1)[1].split("+")
        said = " and ".join(f"`{n}` (after the {words[n]} sub-layer)" for n in names)
        return (
            f"Your output is exactly the layer's output with {said} left out: that residual sum, x + Sublayer(x), "
            "is passed on without its LayerNorm."
        )
    return ""


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
    out = _run_layer(mine, x, mask)
    hyps = layer_hypotheses(ref, x, mask)
    try:
        compare(out, ref(x, mask), "Your EncoderLayer's output (eval mode, padded batch)", hyps)
    except Fail as fail:
        if "sublayer_not_normalised" in fail.diagnoses:
            words = skipped_norms(out, hyps, {"norm1": "self-attention", "norm2": "feed-forward"})
            raise Fail(f"{fail.message}\n{words}" if words else fail.message, fail.diagnoses) from None
        unused = (
            ""
            if fail.diagnoses
            else unused_sublayers(
                ctx,
                lambda: _layer_pair(ctx),
                lambda m: _run_layer(m, x, mask),
                [("self_attn.W_o", "self-attention"), ("feed_forward.W_2", "feed-forward")],
            )
        )
        if unused:
            raise Fail(f"{fail.message}\n{unused}", ["sublayer_unused"]) from None
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


class Fixed(torch.nn.Module):
    """Stands in for a sub-layer: returns a fixed tensor, whatever it is given."""

    def __init__(self, value: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("value", value)

    def forward(self, *args, **kwargs) -> torch.Tensor:
        return self.value.clone()


def sublayer_dropout_check(mine, name: str, run, x: torch.Tensor, slots, norms) -> None:
    """Where dropout acts, one sub-layer at a time (``mine`` built with dropout=0.5).

    Each norm is replaced by a pass-through and each sub-layer in ``slots`` ((attribute, words) pairs) by a
    module returning a fixed positive tensor, so that the layer's output is x plus what becomes of each
    sub-layer's output on its way to the residual add. In eval mode that is x + the sum (else: skipped, the
    layer does not call them as modules). In train mode, with one sub-layer's output kept and the others
    zero, each entry must be 0 or twice the output (dropout with p=0.5 applied once): an output that comes
    through unchanged got no dropout; entries of 0 or 4 times the output got it twice.
    """
    g = torch.Generator().manual_seed(5)
    outputs = {attr: 1.0 + torch.rand(x.shape, generator=g, dtype=x.dtype) for attr, _ in slots}
    try:
        for norm in norms:
            learner_call(setattr, mine, norm, PassThrough(), what=f"replacing {name}.{norm}")

        def use(live: set[str]):
            for attr, _ in slots:
                value = outputs[attr] if attr in live else torch.zeros_like(x)
                learner_call(setattr, mine, attr, Fixed(value), what=f"replacing {name}.{attr}")

        use({attr for attr, _ in slots})
        learner_call(mine.eval, what=f"{name}.eval()")
        ok = is_close(run(mine, x), x + sum(outputs.values()))
    except Fail:
        ok = False
    if not ok:
        raise Skip(
            f"your {name} does not use its norms and sub-layers as the modules {', '.join(norms)}, "
            f"{', '.join(a for a, _ in slots)}, so this test cannot look at each sub-layer's dropout"
        )
    learner_call(mine.train, what=f"{name}.train()")
    findings = []
    for attr, words in slots:
        use({attr})
        got = expect_tensor(run(mine, x), f"Your {name}'s output in train mode")
        if got.shape != x.shape:
            return
        got, out = got.detach().double() - x.double(), outputs[attr].double()
        dropped = got.abs() < 1e-6
        if torch.allclose(got, out, rtol=1e-4, atol=1e-5):
            findings.append(f"the {words} output reaches the residual add unchanged: it gets no dropout")
        elif bool((dropped | torch.isclose(got, 4 * out, rtol=1e-4, atol=1e-5)).all()) and not bool(dropped.all()):
            findings.append(
                f"the {words} output is dropped out twice: the values that are kept come out 4 times larger "
                f"(1/(1-p) twice, with p=0.5) and about 3 in 4 are zero ({float(dropped.double().mean()):.0%} here)"
            )
    if findings:
        raise Fail(
            f"In train mode (dropout=0.5), each sub-layer of your {name} in turn was made to give a fixed output "
            "(the others zero, the norms passing their input through), to see what dropout does to it on its "
            "way to the residual add:\n  " + ";\n  ".join(findings) + ".",
            ["dropout_per_sublayer"],
        )


@LAYER.test("properties")
def dropout_once_on_each_sublayer_output(ctx: Ctx) -> None:
    mine, _ = _layer_pair(ctx, dropout=0.5)
    sublayer_dropout_check(
        mine,
        "EncoderLayer",
        lambda m, x: _run_layer(m, x),
        torch.randn(2, 5, D_MODEL),
        [("self_attn", "self-attention"), ("feed_forward", "feed-forward")],
        ["norm1", "norm2"],
    )


def unused_sublayers(ctx: Ctx, build, run, slots) -> str:
    """After a numbers failure: each sub-layer whose output never reaches the layer's output. With its last
    linear map (``slots``: (weight prefix, words) pairs) set to zero, so that it outputs zeros, the learner's
    output must change; the words for each one that leaves it the same, "" when none does."""
    found = []
    for prefix, words in slots:
        try:
            mine, ref = build()
            before = run(mine)
            zero_sublayer_outputs(ref, [prefix])
            load_into(mine, ref, ctx.exercise)
            after = run(mine)
        except Fail:
            continue
        if not (isinstance(before, torch.Tensor) and isinstance(after, torch.Tensor) and before.shape == after.shape):
            continue
        if torch.allclose(after.detach(), before.detach(), rtol=1e-6, atol=1e-7):
            found.append(
                f"With the weights of `{prefix}` set to zero (so that the {words} sub-layer outputs zeros), your "
                f"{ctx.exercise} gives exactly the output it gave before: the {words} sub-layer does not contribute "
                "to your layer's output (its result is computed but never used, or something else is added in its "
                "place)."
            )
    return "\n".join(found)


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
    src = padded_tokens([4, 6], 6)
    mask = solutions.create_padding_mask(src)
    return stack_pair(
        ctx,
        dropout,
        lambda m: m(src, mask),
        lambda ref, norm: _layers(ref, norm(ref.positional_encoding(ref.embedding(src))), mask),
    )


def _layers(ref, x, mask):
    for layer in ref.layers:
        x = layer(x, mask)
    return x


def stack_pair(ctx: Ctx, dropout: float, run, embedding_norm):
    """(learner, reference) stacks (see ``make_pair``); a parameter mismatch is told what the learner's
    stack does with its extra norm and whether its layers are one object repeated.

    ``run(module)`` is a stack's output on fixed inputs; ``embedding_norm(ref, norm)`` the reference stack's
    output on them with ``norm`` applied to the sum of embeddings and positional encodings."""
    try:
        return make_pair(ctx, *STACK_ARGS, dropout=dropout, max_seq_length=MAX_LEN, diagnose=_stack_keys)
    except Fail as fail:
        problems = [_shared_layers(ctx, dropout), _extra_norm(ctx, dropout, fail, run, embedding_norm)]
        raise several(problems) from None


def _fresh_stack(ctx: Ctx, dropout: float):
    return ctx.new(*STACK_ARGS, dropout=dropout, max_seq_length=MAX_LEN)


def _shared_layers(ctx: Ctx, dropout: float) -> Fail | None:
    """A failure when the learner's `layers` hold one layer object more than once (``[layer] * N``), read
    from the objects themselves (a parameter mismatch stops the ladder before ``expect_independent``)."""
    try:
        layers = list(learner_call(lambda: list(_fresh_stack(ctx, dropout).layers), what="layers"))
    except Exception:  # noqa: BLE001 - no layers to look at: the parameter message says what is wrong
        return None
    for i, a in enumerate(layers):
        for j in range(i + 1, len(layers)):
            if layers[j] is a:
                return Fail(
                    f"In your {ctx.exercise}, `layers[{i}]` and `layers[{j}]` are the same layer object: the stack "
                    f"runs one layer {len(layers)} times, with one set of weights, instead of {len(layers)} "
                    "layers of their own.",
                    ["layers_shared"],
                )
    return None


def _extra_norm(ctx: Ctx, dropout: float, fail: Fail, run, embedding_norm) -> Fail:
    """``fail`` (a parameter mismatch); when it is a norm the reference stack does not have and the learner's
    stack applies it to the embeddings (its output, with the reference's weights loaded, is the reference
    stack's with that very norm after the positional encoding), said so instead of 'after the last layer'."""
    if "final_layer_norm" not in fail.diagnoses:
        return fail
    try:
        seed()
        ref = randomise(ctx.reference(*STACK_ARGS, dropout=dropout, max_seq_length=MAX_LEN)).eval()
        mine = _fresh_stack(ctx, dropout)
        load_into(mine, ref, ctx.exercise)
        learner_call(mine.eval, what=f"{ctx.exercise}.eval()")
        names = {k.rsplit(".", 1)[0] for k in learner_call(mine.state_dict, what="state_dict()") if "norm" in k}
        names = sorted(n for n in names if not n.startswith("layers.") and "." not in n)
        out = learner_call(run, mine, what=f"your {ctx.exercise}")
        for name in names:
            norm = getattr(mine, name)
            expected = embedding_norm(ref, lambda t, norm=norm, name=name: learner_call(norm, t, what=f"your `{name}`"))
            if is_close(out, expected):
                return Fail(
                    f"{fail.message}\nYour {ctx.exercise} applies its extra norm `{name}` to the sum of the scaled "
                    "embeddings and the positional encodings, before the first layer.",
                    ["embedding_layer_norm"],
                )
    except Exception:  # noqa: BLE001 - this only sharpens the message: anything unexpected keeps it as it is
        return fail
    return fail


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
