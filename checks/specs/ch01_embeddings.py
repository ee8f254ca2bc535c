"""Chapter 01: ``TokenEmbedding`` (section 3.4): ``embedding(tokens) * sqrt(d_model)``."""

from __future__ import annotations

import math

import torch

import solutions

from ..core import Ctx, Spec, learner_call
from .common import (
    D_MODEL,
    VOCAB,
    compare,
    expect_float64_module,
    expect_forward_signature,
    expect_init_signature,
    expect_inputs_unchanged,
    expect_shape,
    grads_match,
    in_float64,
    make_pair,
)

SPEC = Spec("TokenEmbedding", solutions.TokenEmbedding)


def _pair(ctx: Ctx):
    return make_pair(ctx, VOCAB, D_MODEL)


def _tokens(*shape: int) -> torch.Tensor:
    return torch.randint(0, VOCAB, shape)


@SPEC.test("interface")
def constructor_and_parameters(ctx: Ctx) -> None:
    expect_init_signature(ctx, "(vocab_size, d_model)", ((VOCAB, D_MODEL), {}))
    mine, _ = _pair(ctx)
    expect_forward_signature(mine, "TokenEmbedding", "(tokens)", ((_tokens(2, 3),), {}))


@SPEC.test("shapes")
def output_shape(ctx: Ctx) -> None:
    mine, _ = _pair(ctx)
    for b, s in ((2, 5), (1, 1), (3, 7)):
        out = learner_call(mine, _tokens(b, s), what=f"TokenEmbedding on tokens [{b}, {s}]")
        expect_shape(out, [b, s, D_MODEL], f"TokenEmbedding's output for tokens [{b}, {s}]")


@SPEC.test("numbers")
def matches_the_scaled_lookup(ctx: Ctx) -> None:
    mine, ref = _pair(ctx)
    tokens = _tokens(3, 6)
    table = ref.embedding(tokens).detach()
    d = D_MODEL
    hyps = {
        "embedding_no_scale": table,
        "embedding_wrong_scale": table / math.sqrt(d),
        "embedding_wrong_scale#d": table * d,
        "embedding_wrong_scale#1/d": table / d,
        "embedding_wrong_scale#sqrt(V)": table * math.sqrt(VOCAB),
    }
    from ..core import Fail

    try:
        compare(learner_call(mine, tokens, what="TokenEmbedding"), ref(tokens), "TokenEmbedding's output", hyps)
    except Fail as fail:
        raise Fail(fail.message, [i.split("#")[0] for i in fail.diagnoses]) from None


@SPEC.test("properties")
def gradients_reach_the_table(ctx: Ctx) -> None:
    mine, ref = _pair(ctx)
    tokens = 1 + torch.randint(0, VOCAB - 1, (2, 4))  # no 0: nn.Embedding(padding_idx=0) is fine too
    grads_match(mine, ref, lambda m: m(tokens), "TokenEmbedding")


@SPEC.test("hygiene")
def does_not_change_the_tokens(ctx: Ctx) -> None:
    mine, _ = _pair(ctx)
    tokens = _tokens(2, 5)
    expect_inputs_unchanged(
        "TokenEmbedding", {"tokens": tokens}, lambda: learner_call(mine, tokens, what="TokenEmbedding")
    )


@SPEC.test("hygiene")
@in_float64
def works_in_float64_and_keeps_the_device(ctx: Ctx) -> None:
    mine, ref = _pair(ctx)
    expect_float64_module(
        mine,
        ref,
        "TokenEmbedding",
        lambda: [_tokens(2, 5)],
        lambda m, tokens: learner_call(m, tokens, what="TokenEmbedding in float64"),
    )
