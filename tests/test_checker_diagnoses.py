"""The checker names known mistakes from the numbers alone (a handful of buggy variants written here;
the big catalogue lives in tests/catalogue/), and every diagnosis reads well: a beginner's sentence,
the paper section, a PyTorch doc link, and no code that gives the fix away.
"""

from __future__ import annotations

import math
import re

import pytest
import torch
import torch.nn as nn

import solutions
from checks import check
from checks.diagnoses import DIAGNOSES, SILENT, explain
from solutions import create_future_mask, create_padding_mask

# The shared vocabulary of the checker and the catalogue: the checker must know every one of these ids.
SHARED_IDS = """softmax_wrong_axis softmax_not_stable softmax_not_normalised embedding_no_scale embedding_wrong_scale
pe_sin_cos_swapped pe_wrong_frequencies pe_not_buffer pe_no_length_error pe_dropout_inside pe_wrong_axis attn_no_scale
attn_scale_by_dk attn_softmax_wrong_axis attn_mask_polarity attn_mask_ignored attn_returns_scores
mha_kv_reshaped_with_query_length mha_heads_not_transposed mha_no_output_projection mha_projection_mixup
mha_weights_not_stored mha_no_divisibility_error mha_concat_wrong ffn_missing_relu ffn_wrong_activation
ffn_dropout_inside ln_unbiased_variance ln_eps_outside_sqrt ln_wrong_axis ln_no_affine ln_std_of_wrong_thing prenorm
dropout_after_residual missing_residual mask_not_passed norms_shared layers_shared missing_embedding_dropout
final_layer_norm embedding_dropout_missing_or_extra cross_attn_kv_from_decoder cross_attn_wrong_mask
self_attn_no_future_mask padding_mask_polarity padding_mask_shape future_mask_upper future_mask_excludes_diagonal
tgt_mask_missing_padding tgt_mask_missing_future generator_not_tied shared_embeddings_not_tied no_xavier_init
forward_masks_wrong softmax_in_forward lr_never_set lr_step_off_by_one lr_formula_wrong lr_factor_ignored
ls_no_ignore_index ls_wrong_distribution ls_sum_not_mean ls_probs_not_logprobs ls_smoothing_ignored
greedy_no_early_stop greedy_no_padding_after_end greedy_uses_first_position greedy_missing_start_token
greedy_wrong_masks beam_no_length_penalty beam_wrong_length_penalty beam_returns_first_finished
beam_not_greedy_at_one inplace_input_modification float64_fails device_not_kept returns_wrong_type nan_or_inf""".split()


@pytest.fixture(autouse=True)
def _private_progress_file(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """check() records progress (workbook.progress): keep it out of the real home folder."""
    monkeypatch.setenv("WORKBOOK_HOME", str(tmp_path / "workbook-home"))


# --------------------------------------------------------------------------------------------------
# A handful of buggy variants, one classic mistake each
# --------------------------------------------------------------------------------------------------
def softmax_dim0(x, dim=-1):
    e = torch.exp(x - x.max())
    return e / e.sum(dim=0, keepdim=True)


class EmbeddingDividedBySqrt(solutions.TokenEmbedding):
    def forward(self, tokens):
        return self.embedding(tokens) / math.sqrt(self.d_model)


class PEParameter(nn.Module):
    def __init__(self, d_model, max_seq_length=5000):
        super().__init__()
        self.pe = nn.Parameter(solutions.PositionalEncoding(d_model, max_seq_length).pe.clone())

    def forward(self, x):
        return x + self.pe[:, : x.size(1)]


class PEOnTheFly(nn.Module):
    """Computes the table for any length: never refuses a long sequence."""

    def __init__(self, d_model, max_seq_length=5000):
        super().__init__()
        self.d_model = d_model
        self.register_buffer("pe", solutions.PositionalEncoding(d_model, max_seq_length).pe.clone())

    def forward(self, x):
        return x + solutions.PositionalEncoding(self.d_model, x.size(1)).pe.to(x.dtype)


def attention_unscaled(query, key, value, mask=None):
    scores = query @ key.transpose(-2, -1)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = scores.softmax(dim=-1)
    return weights @ value, weights


class MHANoOutput(nn.Module):
    def __init__(self, d_model, num_heads):
        super().__init__()
        self.h, self.d_k = num_heads, d_model // num_heads
        self.W_q, self.W_k, self.W_v = (nn.Linear(d_model, d_model) for _ in range(3))

    def forward(self, query, key, value, mask=None):
        b = query.size(0)
        split = lambda x: x.view(b, -1, self.h, self.d_k).transpose(1, 2)
        out, self.attention_weights = solutions.scaled_dot_product_attention(
            split(self.W_q(query)), split(self.W_k(key)), split(self.W_v(value)), mask
        )
        return out.transpose(1, 2).reshape(b, -1, self.h * self.d_k)


class MHAHeadsFirst(solutions.MultiHeadAttention):
    """The contract's multi-head attention with its constructor's arguments in the other order."""

    def __init__(self, num_heads, d_model):
        assert d_model % num_heads == 0
        super().__init__(d_model, num_heads)


class LNEpsOutside(solutions.LayerNorm):
    def forward(self, x):
        centred = x - x.mean(-1, keepdim=True)
        return self.weight * centred / (centred.pow(2).mean(-1, keepdim=True).sqrt() + self.eps) + self.bias


class PreNormLayer(solutions.EncoderLayer):
    def forward(self, x, mask=None):
        y = self.norm1(x)
        x = x + self.dropout(self.self_attn(y, y, y, mask))
        return x + self.dropout(self.feed_forward(self.norm2(x)))


class DropoutAfterResidual(solutions.EncoderLayer):
    def forward(self, x, mask=None):
        x = self.norm1(self.dropout(x + self.self_attn(x, x, x, mask)))
        return self.norm2(self.dropout(x + self.feed_forward(x)))


class SharedLayersEncoder(solutions.Encoder):
    def __init__(self, vocab_size, d_model=512, num_layers=6, num_heads=8, d_ff=2048, dropout=0.1, max_seq_length=5000):
        super().__init__(vocab_size, d_model, num_layers, num_heads, d_ff, dropout, max_seq_length)
        layer = solutions.EncoderLayer(d_model, num_heads, d_ff, dropout)
        self.layers = nn.ModuleList([layer] * num_layers)


def padding_mask_inverted(seq, pad_idx=0):
    return (seq == pad_idx)[:, None, None, :]


def masks_without_target_padding(src, tgt, pad_idx=0):
    return create_padding_mask(src, pad_idx), create_future_mask(tgt.size(1))


class CrossAttentionOnItself(solutions.DecoderLayer):
    def forward(self, x, encoder_output, src_mask=None, tgt_mask=None):
        x = self.norm1(x + self.dropout(self.self_attn(x, x, x, tgt_mask)))
        x = self.norm2(x + self.dropout(self.cross_attn(x, x, x, None)))
        return self.norm3(x + self.dropout(self.feed_forward(x)))


class UntiedTransformer(solutions.Transformer):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.generator.weight = nn.Parameter(self.generator.weight.detach().clone())


class SchedulerNeverSets(solutions.TransformerLRScheduler):
    def step(self, step_num=None):
        self.step_num = self.step_num + 1 if step_num is None else step_num
        return self.get_lr(self.step_num)


class SchedulerAlsoStepsTheOptimizer(solutions.TransformerLRScheduler):
    """Right rates and interface, but step() also steps the optimizer (an optimizer wrapper)."""

    def step(self, step_num=None):
        rate = super().step(step_num)
        self.optimizer.step()
        return rate


class SchedulerFirstGroupOnly(solutions.TransformerLRScheduler):
    def step(self, step_num=None):
        self.step_num = self.step_num + 1 if step_num is None else step_num
        rate = self.get_lr(self.step_num)
        self.optimizer.param_groups[0]["lr"] = rate
        return rate


class LossCountsPadding(nn.Module):
    def __init__(self, smoothing=0.1, ignore_index=0):
        super().__init__()
        self.smoothing = smoothing

    def forward(self, logits, target):
        return nn.functional.cross_entropy(
            logits.reshape(-1, logits.size(-1)), target.reshape(-1), label_smoothing=self.smoothing
        )


@torch.no_grad()
def greedy_never_stops_early(model, src, max_len, start_idx, end_idx, pad_idx=0):
    src_mask = create_padding_mask(src, pad_idx)
    memory = model.encode(src, src_mask)
    ys = torch.full((src.size(0), 1), start_idx, dtype=torch.long)
    done = torch.zeros(src.size(0), dtype=torch.bool)
    for _ in range(max_len - 1):
        tgt_mask = create_padding_mask(ys, pad_idx) & create_future_mask(ys.size(1))
        token = model.generator(model.decode(ys, memory, src_mask, tgt_mask)[:, -1]).argmax(-1)
        token = token.masked_fill(done, pad_idx)
        ys = torch.cat([ys, token[:, None]], dim=1)
        done |= token == end_idx
    return ys


class FFNConvolutions(nn.Module):
    """Kernel-size-1 convolutions under names of their own."""

    def __init__(self, d_model, d_ff):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv1d(d_model, d_ff, 1), nn.Conv1d(d_ff, d_model, 1)

    def forward(self, x):
        return self.conv2(torch.relu(self.conv1(x.transpose(1, 2)))).transpose(1, 2)


class PEFromPositionOne(nn.Module):
    def __init__(self, d_model, max_seq_length=5000):
        super().__init__()
        self.register_buffer("pe", solutions.PositionalEncoding(d_model, max_seq_length + 1).pe[:, 1:].clone())

    def forward(self, x):
        if x.size(1) > self.pe.size(1):
            raise ValueError("longer than max_seq_length")
        return x + self.pe[:, : x.size(1)]


class DecoderNoCrossDropout(solutions.DecoderLayer):
    def forward(self, x, encoder_output, src_mask=None, tgt_mask=None):
        x = self.norm1(x + self.dropout(self.self_attn(x, x, x, tgt_mask)))
        x = self.norm2(x + self.cross_attn(x, encoder_output, encoder_output, src_mask))
        return self.norm3(x + self.dropout(self.feed_forward(x)))


class DecoderCrossUnused(solutions.DecoderLayer):
    def forward(self, x, encoder_output, src_mask=None, tgt_mask=None):
        x = self.norm1(x + self.dropout(self.self_attn(x, x, x, tgt_mask)))
        self.cross_attn(x, encoder_output, encoder_output, src_mask)
        x = self.norm2(x)
        return self.norm3(x + self.dropout(self.feed_forward(x)))


# Issue 22's fold-in of held-out round 2: the mechanisms its misses showed, each in another spelling
class EncoderWithoutFirstNorm(solutions.EncoderLayer):
    def forward(self, x, mask=None):
        x = x + self.dropout(self.self_attn(x, x, x, mask))
        return self.norm2(x + self.dropout(self.feed_forward(x)))


class CrossAttentionQueriedWithInput(solutions.DecoderLayer):
    def forward(self, x, encoder_output, src_mask=None, tgt_mask=None):
        y = self.norm1(x + self.dropout(self.self_attn(x, x, x, tgt_mask)))
        y = self.norm2(y + self.dropout(self.cross_attn(x, encoder_output, encoder_output, src_mask)))
        return self.norm3(y + self.dropout(self.feed_forward(y)))


class MHAMaskTrueBlocks(solutions.MultiHeadAttention):
    def forward(self, query, key, value, mask=None):
        return super().forward(query, key, value, None if mask is None else mask.logical_not())


def future_mask_true_blocks(size, device=None):
    return torch.ones(size, size, dtype=torch.bool, device=device).triu(1)[None, None]


def future_mask_additive(size, device=None):
    blocked = torch.ones(size, size, dtype=torch.bool).triu(1)
    return torch.zeros(size, size).masked_fill(blocked, float("-inf"))[None, None]


def masks_true_blocks(src, tgt, pad_idx=0):
    t = tgt.size(1)
    return (src == pad_idx)[:, None, :], (tgt == pad_idx)[:, None, :] | torch.ones(t, t, dtype=torch.bool).triu(1)


def attention_key_as_is(query, key, value, mask=None):
    scores = query @ key / math.sqrt(query.size(-1))
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = scores.softmax(dim=-1)
    return weights @ value, weights


class PEReturnsTable(solutions.PositionalEncoding):
    def forward(self, x):
        return self.pe[:, : x.size(1)]


def _greedy_with(model, src, max_len, start_idx, end_idx, pad_idx, *, start=None, fill=None, keep_start=True):
    """Greedy decoding written here with optional slips: a fixed start token, another fill token, and (with
    ``keep_start=False``) no start token in the output and the last row's end token not appended."""
    src_mask = create_padding_mask(src, pad_idx)
    memory = model.encode(src, src_mask)
    ys = torch.full((src.size(0), 1), start_idx if start is None else start, dtype=torch.long)
    done = torch.zeros(src.size(0), dtype=torch.bool)
    while ys.size(1) < max_len:
        tgt_mask = create_padding_mask(ys, pad_idx) & create_future_mask(ys.size(1))
        token = model.generator(model.decode(ys, memory, src_mask, tgt_mask)[:, -1]).argmax(-1)
        token = token.masked_fill(done, pad_idx if fill is None else fill)
        if not keep_start and (done | (token == end_idx)).all():
            break
        ys = torch.cat([ys, token[:, None]], dim=1)
        done |= token == end_idx
        if done.all():
            break
    return ys if keep_start else ys[:, 1:]


def greedy_start_fixed(model, src, max_len, start_idx, end_idx, pad_idx=0):
    return _greedy_with(model, src, max_len, start_idx, end_idx, pad_idx, start=1)


def greedy_fills_zero(model, src, max_len, start_idx, end_idx, pad_idx=0):
    return _greedy_with(model, src, max_len, start_idx, end_idx, pad_idx, fill=0)


def greedy_two_slips(model, src, max_len, start_idx, end_idx, pad_idx=0):
    return _greedy_with(model, src, max_len, start_idx, end_idx, pad_idx, keep_start=False)


def beam_start_fixed(model, src, max_len, start_idx, end_idx, beam_size=4, length_penalty=0.6, pad_idx=0):
    return solutions.beam_search(model, src, max_len, 1, end_idx, beam_size, length_penalty, pad_idx)


class MHAOwnNames(solutions.MultiHeadAttention):
    """The contract's maths with the four projections under names of its own."""

    def __init__(self, d_model, num_heads):
        super().__init__(d_model, num_heads)
        self.query, self.key, self.value, self.out = self.W_q, self.W_k, self.W_v, self.W_o
        del self.W_q, self.W_k, self.W_v, self.W_o


FOLD_IN = [
    ("MultiHeadAttention", MHAOwnNames, "mha_projection_names"),
    ("EncoderLayer", EncoderWithoutFirstNorm, "sublayer_not_normalised"),
    ("DecoderLayer", CrossAttentionQueriedWithInput, "cross_attn_query_from_input"),
    ("MultiHeadAttention", MHAMaskTrueBlocks, "attn_mask_polarity"),
    ("create_future_mask", future_mask_true_blocks, "mask_convention_inverted"),
    ("create_future_mask", future_mask_additive, "mask_additive_float"),
    ("create_masks", masks_true_blocks, "padding_mask_polarity"),
    ("scaled_dot_product_attention", attention_key_as_is, "attn_key_not_transposed"),
    ("PositionalEncoding", PEReturnsTable, "pe_returns_table"),
    ("greedy_decode", greedy_start_fixed, "greedy_start_not_start_idx"),
    ("greedy_decode", greedy_fills_zero, "greedy_pad_not_pad_idx"),
    ("greedy_decode", greedy_two_slips, "greedy_drops_last_end"),
    ("beam_search", beam_start_fixed, "greedy_start_not_start_idx"),
]
# and what each of those with more than one problem is told besides
FOLD_IN_ALSO = {
    masks_true_blocks: ["mask_convention_inverted", "padding_mask_shape"],
    greedy_two_slips: ["greedy_missing_start_token"],
}

CASES = [
    *FOLD_IN,
    ("softmax", softmax_dim0, "softmax_wrong_axis"),
    ("FeedForwardNetwork", FFNConvolutions, "ffn_conv1d"),
    ("PositionalEncoding", PEFromPositionOne, "pe_positions_from_one"),
    ("DecoderLayer", DecoderNoCrossDropout, "dropout_per_sublayer"),
    ("DecoderLayer", DecoderCrossUnused, "sublayer_unused"),
    ("TokenEmbedding", EmbeddingDividedBySqrt, "embedding_wrong_scale"),
    ("PositionalEncoding", PEParameter, "pe_not_buffer"),
    ("PositionalEncoding", PEOnTheFly, "pe_no_length_error"),
    ("scaled_dot_product_attention", attention_unscaled, "attn_no_scale"),
    ("MultiHeadAttention", MHANoOutput, "mha_no_output_projection"),
    ("MultiHeadAttention", MHAHeadsFirst, "constructor_argument_order"),
    ("LayerNorm", LNEpsOutside, "ln_eps_outside_sqrt"),
    ("EncoderLayer", PreNormLayer, "prenorm"),
    ("EncoderLayer", DropoutAfterResidual, "dropout_after_residual"),
    ("Encoder", SharedLayersEncoder, "layers_shared"),
    ("create_padding_mask", padding_mask_inverted, "padding_mask_polarity"),
    ("create_masks", masks_without_target_padding, "tgt_mask_missing_padding"),
    ("DecoderLayer", CrossAttentionOnItself, "cross_attn_kv_from_decoder"),
    ("Transformer", UntiedTransformer, "generator_not_tied"),
    ("TransformerLRScheduler", SchedulerNeverSets, "lr_never_set"),
    ("TransformerLRScheduler", SchedulerAlsoStepsTheOptimizer, "lr_steps_the_optimizer"),
    ("TransformerLRScheduler", SchedulerFirstGroupOnly, "lr_one_group_only"),
    ("LabelSmoothingLoss", LossCountsPadding, "ls_no_ignore_index"),
    ("greedy_decode", greedy_never_stops_early, "greedy_no_early_stop"),
]


@pytest.mark.parametrize("exercise, obj, diagnosis", CASES, ids=[f"{c[2]}-{c[1].__name__}" for c in CASES])
def test_a_known_mistake_is_named(exercise: str, obj, diagnosis: str) -> None:
    result = check(obj, exercise)
    assert result.state == "failed", str(result)
    assert diagnosis in result.diagnoses, str(result)
    assert result.diagnoses[0] == diagnosis  # the first message is about the real cause
    assert "Likely cause: " in result.failures[0] or diagnosis in SILENT
    assert "checks/" not in result.failures[0]
    for also in FOLD_IN_ALSO.get(obj, []):
        assert also in result.diagnoses, str(result)


# Issue 22's reported mistakes (tests/catalogue/real/issue22_cases.py): the diagnosis each one gets first
ISSUE22_FIRST = {
    "DecoderLayer-dropout-misplaced": "dropout_per_sublayer",
    "EncoderLayer-ffn-discarded": "sublayer_unused",
    "LabelSmoothingLoss-v-1-pad-zeroed": "ls_wrong_distribution",
    "FeedForwardNetwork-conv1d": "ffn_conv1d",
    "FeedForwardNetwork-four-d-model": "ffn_hidden_width",
    "PositionalEncoding-rows-from-one": "pe_table_rows",
    "PositionalEncoding-fairseq-layout": "pe_wrong_layout",
    "TransformerLRScheduler-base-lr-times-next": "lr_times_initial_lr",
    "TransformerLRScheduler-constant-wrapper": "lr_constant",
    "greedy_decode-padded-to-max-len": "greedy_pads_to_max_len",
    "Encoder-embedding-norm": "embedding_layer_norm",
    "LabelSmoothingLoss-no-grad": "no_gradient",
    "Decoder-shared-layers": "layers_shared",
}
# and the ones that have a second mistake, named too
ISSUE22_ALSO = {
    "TransformerLRScheduler-base-lr-times-next": "lr_step_off_by_one",
    "TransformerLRScheduler-constant-wrapper": "lr_steps_the_optimizer",
    "LabelSmoothingLoss-no-grad": "ls_wrong_distribution",
    "Decoder-shared-layers": "final_layer_norm",
    "PositionalEncoding-fairseq-layout": "pe_wrong_frequencies",
}


def _issue22_cases() -> dict:
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from catalogue.real import load

    return {c.id.split("/", 1)[1]: c for c in load() if c.id.startswith("issue22_cases/")}


@pytest.mark.parametrize("name", sorted(ISSUE22_FIRST))
def test_an_issue22_mistake_is_named_first(name: str) -> None:
    case = _issue22_cases()[name]
    result = check(case.obj, case.exercise)
    assert result.state == "failed", str(result)
    assert result.diagnoses[0] == ISSUE22_FIRST[name], str(result)
    if name in ISSUE22_ALSO:
        assert ISSUE22_ALSO[name] in result.diagnoses, str(result)


def test_several_problems_are_said_to_be_several_the_most_fundamental_first() -> None:
    class WrapperWithoutFactor:  # a NoamOpt-style wrapper: no `factor`, step() steps the optimizer
        def __init__(self, optimizer, d_model, warmup_steps=4000):
            self.optimizer, self.d_model, self.warmup, self.n = optimizer, d_model, warmup_steps, 0

        def get_lr(self, step_num):
            return self.d_model**-0.5 * min(step_num**-0.5, step_num * self.warmup**-1.5)

        def step(self):
            self.n += 1
            for group in self.optimizer.param_groups:
                group["lr"] = self.get_lr(self.n)
            self.optimizer.step()

    result = check(WrapperWithoutFactor, "TransformerLRScheduler")
    message = result.failures[0]
    assert message.startswith("There is more than one problem here"), message
    assert message.index("steps the optimizer") < message.index("'factor'"), message
    assert result.diagnoses[0] == "lr_steps_the_optimizer"


def test_a_diagnosed_message_points_to_the_paper_and_the_docs() -> None:
    message = check(LNEpsOutside, "LayerNorm").failures[0]
    assert "paper section 3.1" in message
    assert "https://docs.pytorch.org/docs/stable/generated/torch.nn.LayerNorm.html" in message


def test_every_shared_id_is_known() -> None:
    assert not sorted(set(SHARED_IDS) - set(DIAGNOSES))


@pytest.mark.parametrize("diagnosis", sorted(DIAGNOSES))
def test_every_explanation_is_a_hint_not_a_fix(diagnosis: str) -> None:
    entry = DIAGNOSES[diagnosis]
    assert len(entry.text) > 30 and entry.text.rstrip().endswith((".", ")"))
    assert not entry.doc or entry.doc.startswith("https://")
    assert not re.search(r"\b(self\.\w+|def \w+\(|return \w+\(|torch\.\w+\()", entry.text), "no code in a hint"
    if diagnosis not in SILENT:
        assert explain(diagnosis).startswith("Likely cause: ")
