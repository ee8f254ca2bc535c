"""Attention code written for other contracts (issue 13): the checker names what differs by its effect.

* isolation: a multi-head attention that calls its own ``scaled_dot_product_attention`` with an extra
  argument (``dropout=p``, as The Annotated Transformer does) is graded against the reference swapped
  in, which ignores that argument: no shape error is blamed on the reshaping;
* a mask given another rank (``mask.unsqueeze(1)`` on the contract's 4-D masks) is named as such;
* projections without bias are named as such, and W_o is not said to be missing when it is there;
* an attention that accepts only 4-D (or only 3-D) inputs is told that any number of leading axes is asked.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn

import solutions
from checks import check
from checks.core import tolerant


@pytest.fixture(autouse=True)
def _private_progress_file(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKBOOK_HOME", str(tmp_path / "workbook-home"))


NOTEBOOK = """
import math
import torch
import torch.nn as nn


def scaled_dot_product_attention(query, key, value, mask=None, dropout=None):
    scores = query @ key.transpose(-2, -1) / math.sqrt(query.size(-1))
    if mask is not None:
        scores = scores.masked_fill(~mask, -1e9)
    weights = scores.softmax(dim=-1)
    if dropout is not None:
        weights = dropout(weights)
    return weights @ value, weights


class MultiHeadAttention(nn.Module):
    def __init__(self, d_model, num_heads):
        super().__init__()
        if d_model % num_heads:
            raise ValueError("num_heads must divide d_model")
        self.h, self.d_k = num_heads, d_model // num_heads
        self.W_q, self.W_k, self.W_v, self.W_o = (nn.Linear(d_model, d_model) for _ in range(4))
        self.attn_dropout = nn.Dropout(0.0)
        self.attention_weights = None

    def split(self, x):
        return x.view(x.size(0), x.size(1), self.h, self.d_k).transpose(1, 2)

    def forward(self, query, key, value, mask=None):
        q, k, v = self.split(self.W_q(query)), self.split(self.W_k(key)), self.split(self.W_v(value))
        if POSITIONAL:
            out, weights = scaled_dot_product_attention(q, k, v, mask, self.attn_dropout)
        else:
            out, weights = scaled_dot_product_attention(q, k, v, mask, dropout=self.attn_dropout)
        self.attention_weights = weights.detach()
        b, _, s, _ = out.shape
        return self.W_o(out.transpose(1, 2).reshape(b, s, self.h * self.d_k))
"""


def _notebook(positional: bool) -> dict:
    namespace = {"__name__": "learner_notebook", "POSITIONAL": positional}
    exec(compile(NOTEBOOK, "<cell 1>", "exec"), namespace)
    return namespace


def test_the_reference_swapped_in_ignores_extra_arguments() -> None:
    q, k, v = torch.randn(2, 2, 3, 4), torch.randn(2, 2, 5, 4), torch.randn(2, 2, 5, 4)
    mask = solutions.create_padding_mask(torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]]))
    stand_in = tolerant(solutions.scaled_dot_product_attention)
    expected = solutions.scaled_dot_product_attention(q, k, v, mask)
    for got in (stand_in(q, k, v, mask, nn.Dropout(0.5)), stand_in(q, k, v, mask, dropout=0.5, e=1e-12)):
        assert all(torch.equal(a, b) for a, b in zip(got, expected))


@pytest.mark.parametrize("positional", [False, True], ids=["dropout=p", "positional dropout"])
def test_multi_head_attention_calling_its_own_attention_with_dropout_passes(positional: bool) -> None:
    namespace = _notebook(positional)
    result = check(namespace["MultiHeadAttention"], "MultiHeadAttention")
    assert result.passed, result.failures
    assert check(namespace["scaled_dot_product_attention"], "scaled_dot_product_attention").passed


class HeadAxisAdded(solutions.MultiHeadAttention):
    """Written for 3-D masks: adds the head axis itself."""

    def forward(self, query, key, value, mask=None):
        return super().forward(query, key, value, None if mask is None else mask.unsqueeze(1))


class KVWithQueryLength(solutions.MultiHeadAttention):
    """Keys and values reshaped with the query's length: not a mask problem."""

    def forward(self, query, key, value, mask=None):
        b, s, d = query.shape
        h, d_k = self.num_heads, d // self.num_heads

        def split(x):
            return x.reshape(b, s, -1, h, d_k).transpose(1, 3).reshape(b, h, -1, d_k)

        out, self.attention_weights = solutions.scaled_dot_product_attention(
            split(self.W_q(query)), split(self.W_k(key)), split(self.W_v(value)), mask
        )
        return self.W_o(out.transpose(1, 2).reshape(b, -1, d))[:, :s]


def test_a_mask_given_a_head_axis_is_named_not_the_reshaping() -> None:
    result = check(HeadAxisAdded, "MultiHeadAttention")
    assert not result.passed
    assert "mha_mask_rank" in result.diagnoses and "mha_kv_reshaped_with_query_length" not in result.diagnoses
    assert "one axis fewer" in result.failures[0]


def test_a_shape_error_without_the_mask_is_not_blamed_on_the_mask() -> None:
    result = check(KVWithQueryLength, "MultiHeadAttention")
    assert not result.passed
    assert result.diagnoses == ["mha_kv_reshaped_with_query_length"]


class NoBias(nn.Module):
    def __init__(self, d_model, num_heads, out_proj=True):
        super().__init__()
        if d_model % num_heads:
            raise ValueError("num_heads must divide d_model")
        self.h = num_heads
        self.W_q, self.W_k, self.W_v = (nn.Linear(d_model, d_model, bias=False) for _ in range(3))
        if out_proj:
            self.W_o = nn.Linear(d_model, d_model, bias=False)

    def forward(self, query, key, value, mask=None):
        raise AssertionError("not reached: the parameters differ")


class NoOutputProjection(NoBias):
    def __init__(self, d_model, num_heads):
        super().__init__(d_model, num_heads, out_proj=False)


def test_projections_without_bias_are_named_and_w_o_is_not_said_missing() -> None:
    result = check(NoBias, "MultiHeadAttention")
    assert result.diagnoses == ["mha_projection_no_bias"]
    missing = check(NoOutputProjection, "MultiHeadAttention")
    assert "mha_no_output_projection" in missing.diagnoses


def attention_4d_only(q, k, v, mask=None):
    _, _, _, d_k = k.size()
    scores = q @ k.transpose(2, 3) / math.sqrt(d_k)
    if mask is not None:
        scores = scores.masked_fill(mask == 0, -1e9)
    weights = scores.softmax(dim=-1)
    return weights @ v, weights


def attention_3d_only(q, k, v, mask=None):
    scores = torch.bmm(q, k.transpose(1, 2)) / math.sqrt(q.size(-1))
    if mask is not None:
        scores = scores.masked_fill(~mask, -1e9)
    weights = scores.softmax(dim=-1)
    return torch.bmm(weights, v), weights


@pytest.mark.parametrize("fn, works", [(attention_4d_only, "4-D"), (attention_3d_only, "3-D")])
def test_attention_for_one_rank_only_is_told_any_leading_axes(fn, works: str) -> None:
    result = check(fn, "scaled_dot_product_attention")
    assert not result.passed
    assert result.diagnoses == ["attn_fixed_rank"]
    assert f"only accepts {works} inputs" in result.failures[0]
    assert "any number of leading axes" in result.failures[0]
