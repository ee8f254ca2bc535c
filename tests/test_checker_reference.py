"""The checker on the reference and on untouched stubs, through ``check()`` as a learner calls it.

* every reference implementation passes every test of its exercise;
* every untouched stub, written the way the chapters write them, reads "not attempted";
* ``check("Name")`` finds the learner's object in the notebook (``__main__``);
* composite exercises are graded with reference parts, and a mistake in an earlier part is blamed on
  that part; the learner's namespace is left as it was.
"""

from __future__ import annotations

import inspect
import math
import sys
import types

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import solutions
from checks import check
from checks.specs import SPECS
from checks.specs.ch00_introduction import reference_softmax
from solutions import FeedForwardNetwork, MultiHeadAttention, create_future_mask, create_masks, create_padding_mask
from workbook.chapters import EXERCISE_TO_CHAPTER

EXERCISES = list(EXERCISE_TO_CHAPTER)


@pytest.fixture(autouse=True)
def _private_progress_file(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """check() records progress (workbook.progress): keep it out of the real home folder."""
    monkeypatch.setenv("WORKBOOK_HOME", str(tmp_path / "workbook-home"))


def reference(name: str):
    return reference_softmax if name == "softmax" else getattr(solutions, name)


def notebook(source: str, name: str = "learner_notebook") -> types.ModuleType:
    """Run ``source`` as a notebook would: in its own module namespace (like ``__main__``)."""
    module = types.ModuleType(name)
    module.__dict__.update({"torch": torch, "nn": torch.nn, "math": __import__("math")})
    sys.modules[name] = module
    exec(compile(source, f"<{name}>", "exec"), module.__dict__)
    return module


def test_every_exercise_has_a_spec() -> None:
    assert set(SPECS) == set(EXERCISES)


@pytest.mark.parametrize("name", EXERCISES)
def test_reference_passes_every_check(name: str) -> None:
    result = check(reference(name), exercise=name)
    assert result.state == "passed", str(result)
    assert result.passed and result.failures == [] and result.diagnoses == []
    assert result.tests and all(row.status == "passed" for row in result.tests), str(result)
    assert {row.name.split(":")[0] for row in result.tests} >= {"interface", "numbers"}


def _stub_source(name: str, where: str) -> str:
    """A chapter-style stub: the real signature, a body that raises NotImplementedError."""
    ref = reference(name)
    if inspect.isfunction(ref):
        return f"def {name}{inspect.signature(ref)}:\n    raise NotImplementedError('Exercise: write {name}')\n"
    init_sig = str(inspect.signature(ref.__init__))
    is_module = issubclass(ref, torch.nn.Module)
    base = "(nn.Module)" if is_module else ""
    sup = "        super().__init__()\n" if is_module else ""
    method = "forward" if is_module else "step"
    if where == "init":
        return (
            f"class {name}{base}:\n    def __init__{init_sig}:\n{sup}"
            f"        raise NotImplementedError('Exercise: build the parts of {name}')\n\n"
            f"    def {method}(self, *args, **kwargs):\n        raise NotImplementedError\n"
        )
    body = sup or "        pass\n"
    extra = "" if is_module else "    def get_lr(self, step_num):\n        raise NotImplementedError\n"
    return (
        f"class {name}{base}:\n    def __init__{init_sig}:\n{body}\n"
        f"    def {method}(self, *args, **kwargs):\n        raise NotImplementedError('Exercise')\n{extra}"
    )


# a class stub can raise in __init__ or in its method; a function has one body
STUB_CASES = [
    (name, where)
    for name in EXERCISES
    for where in (("init",) if inspect.isfunction(reference(name)) else ("init", "forward"))
]


@pytest.mark.parametrize(("name", "where"), STUB_CASES)
def test_untouched_stub_is_not_attempted(name: str, where: str) -> None:
    module = notebook(_stub_source(name, where), f"stub_{name}_{where}")
    result = check(getattr(module, name))
    assert result.state == "not attempted", str(result)
    assert not result.passed
    assert "NotImplementedError" in result.failures[0]


def test_check_by_name_looks_in_the_notebook(monkeypatch: pytest.MonkeyPatch) -> None:
    main = sys.modules["__main__"]
    monkeypatch.setattr(main, "FeedForwardNetwork", solutions.FeedForwardNetwork, raising=False)
    assert check("FeedForwardNetwork").state == "passed"
    monkeypatch.delattr(main, "LayerNorm", raising=False)
    result = check("LayerNorm")
    assert result.state == "not attempted" and "not defined" in result.failures[0]


def test_unknown_exercise_is_a_clear_failure_not_an_exception() -> None:
    def my_helper(x):
        return x

    result = check(my_helper)
    assert result.state == "failed" and "no exercise called 'my_helper'" in result.failures[0]


def test_an_instance_is_graded_by_its_class_and_left_untouched() -> None:
    layer = solutions.LayerNorm(16)
    with torch.no_grad():
        layer.weight.fill_(3.0)
    before = {k: v.clone() for k, v in layer.state_dict().items()}
    assert check(layer).state == "passed"
    assert all(torch.equal(before[k], v) for k, v in layer.state_dict().items())
    assert layer.training


BUGGY_MHA_NOTEBOOK = """
from solutions import FeedForwardNetwork, LayerNorm, scaled_dot_product_attention

class MultiHeadAttention(nn.Module):          # forgets W_o in forward
    def __init__(self, d_model, num_heads):
        super().__init__()
        self.h, self.d_k = num_heads, d_model // num_heads
        self.W_q, self.W_k = nn.Linear(d_model, d_model), nn.Linear(d_model, d_model)
        self.W_v, self.W_o = nn.Linear(d_model, d_model), nn.Linear(d_model, d_model)

    def forward(self, query, key, value, mask=None):
        b = query.size(0)
        split = lambda x: x.view(b, -1, self.h, self.d_k).transpose(1, 2)
        out, self.attention_weights = scaled_dot_product_attention(
            split(self.W_q(query)), split(self.W_k(key)), split(self.W_v(value)), mask)
        return out.transpose(1, 2).reshape(b, -1, self.h * self.d_k)

class EncoderLayer(nn.Module):                # right
    def __init__(self, d_model, num_heads, d_ff, dropout=0.1):
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, num_heads)
        self.feed_forward = FeedForwardNetwork(d_model, d_ff)
        self.norm1, self.norm2 = LayerNorm(d_model), LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x, mask=None):
        x = self.norm1(x + self.dropout(self.self_attn(x, x, x, mask)))
        return self.norm2(x + self.dropout(self.feed_forward(x)))
"""


def test_a_faulty_earlier_part_is_blamed_not_the_layer() -> None:
    nb = notebook(BUGGY_MHA_NOTEBOOK, "nb_buggy_mha")
    own_mha = nb.MultiHeadAttention
    assert "mha_no_output_projection" in check(nb.MultiHeadAttention).diagnoses
    result = check(nb.EncoderLayer)
    assert result.state == "failed"
    assert result.diagnoses == ["uses_faulty_part"]
    assert "right when given a correct MultiHeadAttention" in result.failures[0]
    assert "problem is in your MultiHeadAttention" in result.failures[0]
    assert [r.status for r in result.tests if r.name.startswith(("interface", "numbers"))] == ["passed"] * 2
    assert nb.MultiHeadAttention is own_mha  # the learner's namespace is restored


def test_a_part_that_is_still_a_stub_is_named() -> None:
    source = BUGGY_MHA_NOTEBOOK.replace(
        "        b = query.size(0)\n", "        raise NotImplementedError('Exercise')\n"
    )
    nb = notebook(source, "nb_stub_mha")
    assert check(nb.MultiHeadAttention).state == "not attempted"
    result = check(nb.EncoderLayer)
    assert result.state == "failed"
    assert "your own MultiHeadAttention is not written yet" in result.failures[0]


# --------------------------------------------------------------------------------------------------
# Correct implementations written differently from the reference: all must pass
# --------------------------------------------------------------------------------------------------
def sdpa_inf(q, k, v, mask=None):
    s = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(k.shape[-1])
    if mask is not None:
        s = torch.where(mask, s, torch.tensor(float("-inf"), dtype=s.dtype))
    w = F.softmax(s, dim=-1)
    return torch.matmul(w, v), w


def sdpa_eq0(q, k, v, mask=None):
    s = torch.einsum("...qd,...kd->...qk", q, k) * q.size(-1) ** -0.5
    if mask is not None:
        s = s.masked_fill(mask == 0, -1e9)
    w = s.softmax(-1)
    return torch.einsum("...qk,...kd->...qd", w, v), w


def sdpa_torch(q, k, v, mask=None):
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    s = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))
    if mask is not None:
        s = s.masked_fill(~mask, float("-inf"))
    return out, s.softmax(-1)


class PENonPersistent(nn.Module):
    def __init__(self, d_model, max_seq_length=5000):
        super().__init__()
        pos = torch.arange(max_seq_length).unsqueeze(1)
        div = torch.exp(torch.arange(0, d_model, 2) * (-math.log(10000.0) / d_model))
        pe = torch.zeros(1, max_seq_length, d_model)
        pe[0, :, 0::2] = torch.sin(pos * div)
        pe[0, :, 1::2] = torch.cos(pos * div)
        self.register_buffer("pe", pe, persistent=False)
        self.max_seq_length = max_seq_length

    def forward(self, x):
        if x.size(1) > self.max_seq_length:
            raise ValueError("too long")
        return x + self.pe[:, : x.size(1), :]


class PEStack(nn.Module):
    def __init__(self, d_model, max_seq_length=5000):
        super().__init__()
        pos = torch.arange(max_seq_length, dtype=torch.float64)[:, None]
        i = torch.arange(d_model // 2, dtype=torch.float64)
        ang = pos / torch.pow(10000.0, 2 * i / d_model)
        pe = torch.stack([ang.sin(), ang.cos()], dim=-1).reshape(max_seq_length, d_model).float()
        self.register_buffer("pe", pe[None])

    def forward(self, x):
        assert x.size(1) <= self.pe.size(1), f"sequence of {x.size(1)} is longer than max_seq_length"
        return x + self.pe[:, : x.size(1)]


class MHAEinsum(nn.Module):
    def __init__(self, d_model, num_heads):
        super().__init__()
        assert d_model % num_heads == 0, "d_model must be divisible by num_heads"
        self.h, self.dk = num_heads, d_model // num_heads
        self.W_q = nn.Linear(d_model, d_model)
        self.W_k = nn.Linear(d_model, d_model)
        self.W_v = nn.Linear(d_model, d_model)
        self.W_o = nn.Linear(d_model, d_model)

    def forward(self, query, key, value, mask=None):
        B = query.size(0)
        q = self.W_q(query).reshape(B, -1, self.h, self.dk)
        k = self.W_k(key).reshape(B, -1, self.h, self.dk)
        v = self.W_v(value).reshape(B, -1, self.h, self.dk)
        s = torch.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(self.dk)
        if mask is not None:
            s = s.masked_fill(mask.logical_not(), float("-inf"))
        w = s.softmax(-1)
        self.attention_weights = w
        o = torch.einsum("bhqk,bkhd->bqhd", w, v).reshape(B, -1, self.h * self.dk)
        return self.W_o(o)


class LNFunctional(nn.Module):
    def __init__(self, d_model, eps=1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d_model))
        self.bias = nn.Parameter(torch.zeros(d_model))
        self.eps = eps

    def forward(self, x):
        return F.layer_norm(x, x.shape[-1:], self.weight, self.bias, self.eps)


class LNRsqrt(nn.Module):
    def __init__(self, d_model, eps=1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d_model))
        self.bias = nn.Parameter(torch.zeros(d_model))
        self.eps = eps

    def forward(self, x):
        mu = x.mean(-1, keepdim=True)
        var = ((x - mu) ** 2).mean(-1, keepdim=True)
        return (x - mu) * torch.rsqrt(var + self.eps) * self.weight + self.bias


class EncLayerFunctionalDropout(nn.Module):
    def __init__(self, d_model, num_heads, d_ff, dropout=0.1):
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, num_heads)
        self.feed_forward = FeedForwardNetwork(d_model, d_ff)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.p = dropout

    def forward(self, x, mask=None):
        a = self.self_attn(x, x, x, mask)
        x = self.norm1(x + F.dropout(a, self.p, self.training))
        return self.norm2(x + F.dropout(self.feed_forward(x), self.p, self.training))


class EncoderDeepcopy(nn.Module):
    def __init__(self, vocab_size, d_model=512, num_layers=6, num_heads=8, d_ff=2048, dropout=0.1, max_seq_length=5000):
        super().__init__()
        import copy

        self.embedding = solutions.TokenEmbedding(vocab_size, d_model)
        self.positional_encoding = solutions.PositionalEncoding(d_model, max_seq_length)
        self.dropout = nn.Dropout(dropout)
        layer = solutions.EncoderLayer(d_model, num_heads, d_ff, dropout)
        self.layers = nn.ModuleList([copy.deepcopy(layer) for _ in range(num_layers)])

    def forward(self, src, src_mask=None):
        x = self.dropout(self.positional_encoding(self.embedding(src)))
        for layer in self.layers:
            x = layer(x, mask=src_mask)
        return x


class TokenEmbeddingPad(nn.Module):
    def __init__(self, vocab_size, d_model):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, d_model, padding_idx=0)
        self.scale = d_model**0.5

    def forward(self, tokens):
        return self.embedding(tokens) * self.scale


class TransformerTieFirst(nn.Module):
    def __init__(
        self,
        src_vocab_size,
        tgt_vocab_size,
        d_model=512,
        num_layers=6,
        num_heads=8,
        d_ff=2048,
        dropout=0.1,
        max_seq_length=5000,
        pad_idx=0,
        share_embeddings=False,
    ):
        super().__init__()
        self.pad_idx = pad_idx
        self.encoder = solutions.Encoder(src_vocab_size, d_model, num_layers, num_heads, d_ff, dropout, max_seq_length)
        self.decoder = solutions.Decoder(tgt_vocab_size, d_model, num_layers, num_heads, d_ff, dropout, max_seq_length)
        if share_embeddings:
            self.encoder.embedding.embedding = self.decoder.embedding.embedding
        self.generator = nn.Linear(d_model, tgt_vocab_size)
        self.generator.weight = self.decoder.embedding.embedding.weight
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)

    def encode(self, src, src_mask=None):
        return self.encoder(src, src_mask)

    def decode(self, tgt, memory, src_mask=None, tgt_mask=None):
        return self.decoder(tgt, memory, src_mask, tgt_mask)

    def forward(self, src, tgt):
        src_mask = create_padding_mask(src, self.pad_idx)
        tgt_mask = create_padding_mask(tgt, self.pad_idx) & create_future_mask(tgt.size(1)).to(tgt.device)
        return self.generator(self.decode(tgt, self.encode(src, src_mask), src_mask, tgt_mask))


class SchedSimple:
    def __init__(self, optimizer, d_model, warmup_steps=4000, factor=1.0):
        self.optimizer, self.d_model, self.warmup, self.factor, self._step = optimizer, d_model, warmup_steps, factor, 0

    def get_lr(self, step_num):
        return self.factor * (self.d_model**-0.5) * min(step_num**-0.5, step_num * self.warmup**-1.5)

    def step(self, step_num=None):
        self._step = step_num if step_num is not None else self._step + 1
        lr = self.get_lr(self._step)
        for g in self.optimizer.param_groups:
            g["lr"] = lr
        return lr


class LSHand(nn.Module):
    def __init__(self, smoothing=0.1, ignore_index=0):
        super().__init__()
        self.s, self.ii = smoothing, ignore_index

    def forward(self, logits, target):
        V = logits.size(-1)
        lp = logits.log_softmax(-1).view(-1, V)
        t = target.reshape(-1)
        q = torch.full_like(lp, self.s / V).scatter(1, t.unsqueeze(1), 1 - self.s + self.s / V)
        loss = -(q * lp).sum(-1)
        keep = (t != self.ii).float()
        return (loss * keep).sum() / keep.sum()


@torch.no_grad()
def greedy_forward(model, src, max_len, start_idx, end_idx, pad_idx=0):
    ys = torch.full((src.size(0), 1), start_idx, dtype=torch.long)
    done = torch.zeros(src.size(0), dtype=torch.bool)
    src_mask = create_padding_mask(src, pad_idx)
    memory = model.encode(src, src_mask)
    for _ in range(max_len - 1):
        _, tgt_mask = create_masks(src, ys, pad_idx)
        nxt = model.generator(model.decode(ys, memory, src_mask, tgt_mask))[:, -1].argmax(-1)
        nxt = torch.where(done, torch.full_like(nxt, pad_idx), nxt)
        ys = torch.cat([ys, nxt.unsqueeze(-1)], -1)
        done = done | nxt.eq(end_idx)
        if bool(done.all()):
            break
    return ys


CASES = [
    ("scaled_dot_product_attention", sdpa_inf),
    ("scaled_dot_product_attention", sdpa_eq0),
    ("scaled_dot_product_attention", sdpa_torch),
    ("PositionalEncoding", PENonPersistent),
    ("PositionalEncoding", PEStack),
    ("MultiHeadAttention", MHAEinsum),
    ("LayerNorm", LNFunctional),
    ("LayerNorm", LNRsqrt),
    ("EncoderLayer", EncLayerFunctionalDropout),
    ("Encoder", EncoderDeepcopy),
    ("TokenEmbedding", TokenEmbeddingPad),
    ("Transformer", TransformerTieFirst),
    ("TransformerLRScheduler", SchedSimple),
    ("LabelSmoothingLoss", LSHand),
    ("greedy_decode", greedy_forward),
]


@pytest.mark.parametrize("exercise, obj", CASES, ids=[f"{e}-{o.__name__}" for e, o in CASES])
def test_correct_but_different_code_passes(exercise: str, obj) -> None:
    result = check(obj, exercise)
    assert result.state == "passed", str(result)


DECODING_NOTEBOOK = """
from solutions import create_future_mask, create_padding_mask

def create_masks(src, tgt, pad_idx=0):        # forgets the future mask
    return create_padding_mask(src, pad_idx), create_padding_mask(tgt, pad_idx)

@torch.no_grad()
def greedy_decode(model, src, max_len, start_idx, end_idx, pad_idx=0):   # right
    src_mask = create_padding_mask(src, pad_idx)
    memory = model.encode(src, src_mask)
    ys = torch.full((src.size(0), 1), start_idx, dtype=torch.long)
    done = torch.zeros(src.size(0), dtype=torch.bool)
    while ys.size(1) < max_len:
        _, tgt_mask = create_masks(src, ys, pad_idx)
        token = model.generator(model.decode(ys, memory, src_mask, tgt_mask)[:, -1]).argmax(-1)
        token = token.masked_fill(done, pad_idx)
        ys = torch.cat([ys, token[:, None]], dim=1)
        done = done | (token == end_idx)
        if done.all():
            break
    return ys
"""


def test_a_decorated_function_is_isolated_too() -> None:
    nb = notebook(DECODING_NOTEBOOK, "nb_decoding")
    assert "tgt_mask_missing_future" in check(nb.create_masks).diagnoses
    result = check(nb.greedy_decode)
    assert result.state == "failed" and result.diagnoses == ["uses_faulty_part"], str(result)
    assert "problem is in your create_masks" in result.failures[0]


OWN_CLASS_NOTEBOOK = """
from solutions import FeedForwardNetwork, scaled_dot_product_attention

class MyAttention(nn.Module):                 # not named MultiHeadAttention, and forgets the scale
    def __init__(self, d_model, num_heads):
        super().__init__()
        self.h, self.d_k = num_heads, d_model // num_heads
        self.W_q, self.W_k = nn.Linear(d_model, d_model), nn.Linear(d_model, d_model)
        self.W_v, self.W_o = nn.Linear(d_model, d_model), nn.Linear(d_model, d_model)

    def forward(self, query, key, value, mask=None):
        b = query.size(0)
        split = lambda x: x.view(b, -1, self.h, self.d_k).transpose(1, 2)
        out, _ = scaled_dot_product_attention(split(self.W_q(query)) * self.d_k ** 0.5, split(self.W_k(key)),
                                              split(self.W_v(value)), mask)
        return self.W_o(out.transpose(1, 2).reshape(b, -1, self.h * self.d_k))

class EncoderLayer(nn.Module):                # right, with nn.LayerNorm
    def __init__(self, d_model, num_heads, d_ff, dropout=0.1):
        super().__init__()
        self.self_attn = MyAttention(d_model, num_heads)
        self.feed_forward = FeedForwardNetwork(d_model, d_ff)
        self.norm1, self.norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x, mask=None):
        x = self.norm1(x + self.dropout(self.self_attn(x, x, x, mask)))
        return self.norm2(x + self.dropout(self.feed_forward(x)))
"""


def test_a_faulty_sub_module_class_with_another_name_is_blamed() -> None:
    nb = notebook(OWN_CLASS_NOTEBOOK, "nb_own_class")
    result = check(nb.EncoderLayer)
    assert result.state == "failed" and result.diagnoses == ["uses_faulty_part"], str(result)
    assert "problem is in your class MyAttention (used for `self_attn`)" in result.failures[0]
