"""Chapter 09: the whole ``Transformer`` (sections 3 and 3.4): tied weights, Xavier init, masks in forward."""

from __future__ import annotations

import math

import torch

import solutions

from ..core import Ctx, Fail, Spec, learner_call
from .common import (
    D_FF,
    D_MODEL,
    HEADS,
    LAYERS,
    MAX_LEN,
    compare,
    expect_forward_signature,
    expect_independent,
    expect_init_signature,
    expect_module,
    expect_shape,
    grads_match,
    make_pair,
    module_hygiene_tests,
    own_parts_check,
    padded_tokens,
)

SPEC = Spec("Transformer", solutions.Transformer)
SRC_V, TGT_V = 13, 11
SIZES = dict(d_model=D_MODEL, num_layers=LAYERS, num_heads=HEADS, d_ff=D_FF, dropout=0.1, max_seq_length=MAX_LEN)


def _pair(ctx: Ctx, **kwargs):
    args = {**SIZES, **kwargs}
    return make_pair(
        ctx, args.pop("src_vocab_size", SRC_V), args.pop("tgt_vocab_size", TGT_V), diagnose=_diagnose_keys, **args
    )


def _diagnose_keys(missing, unexpected, wrong) -> list[str]:
    """A generator whose parameters are not generator.weight / generator.bias of shape [V, d] / [V]: it is
    not itself the nn.Linear of section 3.4 (a wrapper around one, a head with log-softmax, no bias...)."""
    keys = [*missing, *unexpected, *(w.split(":")[0] for w in wrong)]
    return ["generator_not_linear"] if any(k.startswith("generator.") for k in keys) else []


def _inputs():
    return padded_tokens([4, 6], 6, SRC_V), padded_tokens([5, 3], 5, TGT_V)


def _run(module, src, tgt):
    return learner_call(module, src, tgt, what=f"Transformer(src {list(src.shape)}, tgt {list(tgt.shape)})")


def forward_variant(ref, src, tgt, *, src_mask: str = "pad", tgt_mask: str = "both", out: str = "logits"):
    s_pad = solutions.create_padding_mask(src)
    t_pad = solutions.create_padding_mask(tgt)
    future = solutions.create_future_mask(tgt.size(1))
    sm = {"pad": s_pad, "none": None}[src_mask]
    tm = {"both": t_pad & future, "future": future, "pad": t_pad, "none": None}[tgt_mask]
    logits = ref.generator(ref.decode(tgt, ref.encode(src, sm), sm, tm))
    if out == "softmax":
        return torch.softmax(logits, -1)
    if out == "log_softmax":
        return torch.log_softmax(logits, -1)
    return logits


def hypotheses(ref, src, tgt) -> dict:
    variants = {
        "softmax_in_forward": dict(out="softmax"),
        "softmax_in_forward#log": dict(out="log_softmax"),
        "forward_masks_wrong": dict(src_mask="none", tgt_mask="none"),
        "forward_masks_wrong#future-only": dict(tgt_mask="future"),
        "forward_masks_wrong#pad-only": dict(tgt_mask="pad"),
        "forward_masks_wrong#no-src": dict(src_mask="none"),
        "forward_masks_wrong#no-tgt": dict(tgt_mask="none"),
    }
    return {k: (lambda kw=kw: forward_variant(ref, src, tgt, **kw).detach()) for k, kw in variants.items()}


@SPEC.test("interface")
def constructor_and_parameters(ctx: Ctx) -> None:
    expect_init_signature(
        ctx,
        "(src_vocab_size, tgt_vocab_size, d_model=512, num_layers=6, num_heads=8, "
        "d_ff=2048, dropout=0.1, max_seq_length=5000, pad_idx=0, share_embeddings=False)",
        ((SRC_V, TGT_V), SIZES),
        ((SRC_V, TGT_V), {"pad_idx": 0, "share_embeddings": False}),
    )
    mine, ref = _pair(ctx)
    src, tgt = _inputs()
    expect_forward_signature(mine, "Transformer", "(src, tgt)", ((src, tgt), {}))
    for method in ("encode", "decode"):
        if not callable(getattr(mine, method, None)):
            raise Fail(f"Your Transformer has no `{method}` method (greedy decoding and beam search use it).")
    expect_independent(mine, ref, "Transformer")


@SPEC.test("shapes")
def output_shapes(ctx: Ctx) -> None:
    mine, _ = _pair(ctx)
    for b, s, t in ((2, 6, 5), (1, 1, 1), (3, 3, 7)):
        src, tgt = padded_tokens([s] * b, s, SRC_V), padded_tokens([t] * b, t, TGT_V)
        expect_shape(_run(mine, src, tgt), [b, t, TGT_V], f"The logits for src [{b}, {s}] and tgt [{b}, {t}]")
    src, tgt = _inputs()
    src_mask = solutions.create_padding_mask(src)
    memory = expect_shape(
        learner_call(mine.encode, src, src_mask, what="Transformer.encode(src, src_mask)"),
        [2, 6, D_MODEL],
        "encode's output",
    )
    tgt_mask = solutions.create_masks(src, tgt)[1]
    expect_shape(
        learner_call(mine.decode, tgt, memory, src_mask, tgt_mask, what="Transformer.decode(...)"),
        [2, 5, D_MODEL],
        "decode's output (before the generator)",
    )


@SPEC.test("numbers")
def logits_match_the_reference(ctx: Ctx) -> None:
    mine, ref = _pair(ctx)
    src, tgt = _inputs()
    compare(
        _run(mine, src, tgt),
        ref(src, tgt),
        "Your Transformer's logits (eval mode, padded batch)",
        hypotheses(ref, src, tgt),
    )


@SPEC.test("numbers")
def uses_its_pad_idx(ctx: Ctx) -> None:
    mine, ref = _pair(ctx, pad_idx=1)
    src, tgt = _inputs()
    src, tgt = src + 1, tgt + 1  # real tokens 2.., padding 1
    src[src == SRC_V] = 2
    tgt[tgt == TGT_V] = 2
    wrong_pad = lambda: forward_variant(ref, src, tgt).detach()
    compare(
        _run(mine, src, tgt),
        ref(src, tgt),
        "Your Transformer(pad_idx=1)'s logits on a batch padded with 1",
        {"forward_masks_wrong": wrong_pad, **hypotheses(ref, src, tgt)},
    )


@SPEC.test("numbers")
def encode_and_decode_match(ctx: Ctx) -> None:
    mine, ref = _pair(ctx)
    src, tgt = _inputs()
    src_mask, tgt_mask = solutions.create_masks(src, tgt)
    memory = ref.encode(src, src_mask)
    compare(learner_call(mine.encode, src, src_mask, what="Transformer.encode"), memory, "encode's output")
    compare(
        learner_call(mine.decode, tgt, memory, src_mask, tgt_mask, what="Transformer.decode"),
        ref.decode(tgt, memory, src_mask, tgt_mask),
        "decode's output",
    )


@SPEC.test("properties")
def generator_shares_the_target_embedding(ctx: Ctx) -> None:
    model = expect_module(ctx.new(SRC_V, TGT_V, **SIZES), "Transformer")
    generator, embedding = getattr(model, "generator", None), model.decoder.embedding.embedding
    if generator is None or generator.weight is not embedding.weight:
        raise Fail(
            "`generator.weight` should be the very same Parameter as "
            "`decoder.embedding.embedding.weight` (section 3.4).",
            ["generator_not_tied"],
        )
    shared = expect_module(ctx.new(TGT_V, TGT_V, share_embeddings=True, **SIZES), "Transformer")
    if shared.encoder.embedding.embedding.weight is not shared.decoder.embedding.embedding.weight:
        raise Fail(
            "With share_embeddings=True, `encoder.embedding.embedding.weight` should be the very same "
            "Parameter as the decoder's.",
            ["shared_embeddings_not_tied"],
        )
    if model.encoder.embedding.embedding.weight is model.decoder.embedding.embedding.weight:
        raise Fail(
            "With share_embeddings=False (the default), the encoder and decoder embeddings should be separate.",
            ["shared_embeddings_not_tied"],
        )


@SPEC.test("properties")
def weight_matrices_start_xavier_uniform(ctx: Ctx) -> None:
    model = expect_module(ctx.new(SRC_V, TGT_V, **SIZES), "Transformer")
    names = {n for n, p in solutions.Transformer(SRC_V, TGT_V, **SIZES).named_parameters() if p.dim() > 1}
    for name, param in model.named_parameters():
        if name not in names:
            continue
        fan_out, fan_in = param.shape[0], param.shape[1]
        bound = math.sqrt(6.0 / (fan_in + fan_out))
        biggest = param.detach().abs().max().item()
        if not 0.7 * bound <= biggest <= bound * 1.001:  # (NaN is in no range)
            raise Fail(
                f"`{name}` (shape {list(param.shape)}) has values up to {biggest:.3g}; Xavier-uniform "
                f"values lie in ±{bound:.3g} and fill that range.",
                ["no_xavier_init"],
            )


@SPEC.test("properties")
def future_target_tokens_do_not_leak(ctx: Ctx) -> None:
    mine, _ = _pair(ctx)
    src, tgt = _inputs()
    changed = tgt.clone()
    changed[:, 3:] = (changed[:, 3:] % (TGT_V - 1)) + 1
    a, b = _run(mine, src, tgt).detach(), _run(mine, src, changed).detach()
    if not torch.allclose(a[:, :3], b[:, :3], atol=1e-5):
        raise Fail(
            "Changing the target tokens from position 3 on changed your logits at positions 0-2: "
            "the decoder can see the future.",
            ["forward_masks_wrong"],
        )


@SPEC.test("properties")
def extra_source_padding_changes_nothing(ctx: Ctx) -> None:
    mine, _ = _pair(ctx)
    src, tgt = _inputs()
    padded = torch.cat([src, torch.zeros(2, 3, dtype=torch.long)], dim=1)
    if not torch.allclose(_run(mine, src, tgt).detach(), _run(mine, padded, tgt).detach(), atol=1e-5):
        raise Fail(
            "Adding padding tokens at the end of the source changed your logits: padding must be masked out.",
            ["forward_masks_wrong"],
        )


@SPEC.test("properties")
def gradients_match(ctx: Ctx) -> None:
    mine, ref = _pair(ctx)
    src, tgt = _inputs()
    grads_match(mine, ref, lambda m: m(src, tgt), "Transformer")


module_hygiene_tests(SPEC, _pair, lambda dtype: _inputs(), ["src", "tgt"], _run, output="logits")


@SPEC.own_parts_test
def with_your_own_parts(ctx: Ctx) -> None:
    src, tgt = _inputs()
    own_parts_check(ctx, lambda: _pair(ctx), lambda m: m(src, tgt))
