"""The reference implementation (solutions/) against PyTorch's own modules and the paper's numbers."""

from __future__ import annotations

import math
import time

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import solutions
from solutions import (
    LabelSmoothingLoss,
    LayerNorm,
    MultiHeadAttention,
    PositionalEncoding,
    Transformer,
    TransformerLRScheduler,
    beam_search,
    create_future_mask,
    create_masks,
    create_padding_mask,
    greedy_decode,
    scaled_dot_product_attention,
)
from solutions.copy_task import CopyTaskConfig, exact_match, train_copy_task

ATOL = 1e-5  # float32 round-off for these sizes


def test_every_api_name_is_importable() -> None:
    names = [
        "TokenEmbedding",
        "PositionalEncoding",
        "scaled_dot_product_attention",
        "MultiHeadAttention",
        "FeedForwardNetwork",
        "LayerNorm",
        "EncoderLayer",
        "Encoder",
        "create_padding_mask",
        "create_future_mask",
        "create_masks",
        "DecoderLayer",
        "Decoder",
        "Transformer",
        "TransformerLRScheduler",
        "LabelSmoothingLoss",
        "greedy_decode",
        "beam_search",
    ]
    for name in names:
        assert callable(getattr(solutions, name)), name


# ----------------------------------------------------------------------------------------------
# Attention, norm and loss against PyTorch's own
# ----------------------------------------------------------------------------------------------
def test_sdpa_equals_pytorch_with_padding_mask() -> None:
    q, k, v = torch.randn(3, 4, 5, 8), torch.randn(3, 4, 7, 8), torch.randn(3, 4, 7, 6)
    lengths = torch.tensor([7, 4, 1])
    mask = (torch.arange(7)[None, :] < lengths[:, None])[:, None, None, :]  # [B,1,1,S_k]
    out, weights = scaled_dot_product_attention(q, k, v, mask)
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    torch.testing.assert_close(out, expected, atol=ATOL, rtol=1e-5)
    assert weights.shape == (3, 4, 5, 7)
    torch.testing.assert_close(weights.sum(-1), torch.ones(3, 4, 5))
    assert (weights[1, :, :, 4:] == 0).all() and (weights[2, :, :, 1:] == 0).all()


def test_sdpa_equals_pytorch_with_causal_mask() -> None:
    q, k, v = torch.randn(2, 6, 8), torch.randn(2, 6, 8), torch.randn(2, 6, 8)
    out, weights = scaled_dot_product_attention(q, k, v, create_future_mask(6)[0])
    expected = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    torch.testing.assert_close(out, expected, atol=ATOL, rtol=1e-5)
    assert torch.equal(weights.triu(1), torch.zeros_like(weights))


def _torch_mha_like(ours: MultiHeadAttention) -> nn.MultiheadAttention:
    """nn.MultiheadAttention holding our weights (its q/k/v projections are stacked in one matrix)."""
    theirs = nn.MultiheadAttention(ours.d_model, ours.num_heads, batch_first=True)
    with torch.no_grad():
        theirs.in_proj_weight.copy_(torch.cat([ours.W_q.weight, ours.W_k.weight, ours.W_v.weight]))
        theirs.in_proj_bias.copy_(torch.cat([ours.W_q.bias, ours.W_k.bias, ours.W_v.bias]))
        theirs.out_proj.weight.copy_(ours.W_o.weight)
        theirs.out_proj.bias.copy_(ours.W_o.bias)
    return theirs.eval()


@pytest.mark.parametrize("kind", ["self", "cross"])
def test_multi_head_attention_equals_nn_multiheadattention(kind: str) -> None:
    ours = MultiHeadAttention(32, 4).eval()
    theirs = _torch_mha_like(ours)
    x = torch.randn(3, 5, 32)
    memory = x if kind == "self" else torch.randn(3, 9, 32)
    src = torch.ones(3, memory.size(1), dtype=torch.long)
    src[1, 6 if kind == "cross" else 3 :] = 0  # padding at the end of sentence 1
    src[2, 2:] = 0
    out = ours(x, memory, memory, create_padding_mask(src))
    expected, expected_weights = theirs(x, memory, memory, key_padding_mask=(src == 0), average_attn_weights=False)
    torch.testing.assert_close(out, expected, atol=ATOL, rtol=1e-5)
    torch.testing.assert_close(ours.attention_weights, expected_weights, atol=ATOL, rtol=1e-5)
    assert ours.attention_weights.shape == (3, 4, 5, memory.size(1))


def test_layer_norm_equals_nn_layernorm() -> None:
    ours, theirs = LayerNorm(16), nn.LayerNorm(16)
    with torch.no_grad():
        ours.weight.copy_(torch.randn(16))
        ours.bias.copy_(torch.randn(16))
        theirs.load_state_dict(ours.state_dict())
    for scale, shift in ((1.0, 3.0), (1e-3, 0.0)):  # a small variance makes eps matter
        x = torch.randn(4, 7, 16) * scale + shift
        torch.testing.assert_close(ours(x), theirs(x), atol=ATOL, rtol=1e-5)


@pytest.mark.parametrize("smoothing", [0.0, 0.1, 0.6])
def test_label_smoothing_equals_cross_entropy(smoothing: float) -> None:
    logits = torch.randn(4, 6, 11)
    target = torch.randint(1, 11, (4, 6))
    target[0, 3:] = 0  # padding is ignored
    target[2, 1:] = 0
    ours = LabelSmoothingLoss(smoothing, ignore_index=0)(logits, target)
    expected = F.cross_entropy(logits.reshape(-1, 11), target.reshape(-1), label_smoothing=smoothing, ignore_index=0)
    torch.testing.assert_close(ours, expected, atol=ATOL, rtol=1e-5)


# ----------------------------------------------------------------------------------------------
# The model: size, weight tying, causality, padding
# ----------------------------------------------------------------------------------------------
def _count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())  # parameters() yields a shared tensor once


def test_base_model_parameter_count_and_tying() -> None:
    model = Transformer(37000, 37000, share_embeddings=True)
    assert round(_count(model) / 1e6, 1) == 63.1  # paper, Table 3: 65M for "base"
    shared = model.decoder.embedding.embedding.weight
    assert model.generator.weight is shared
    assert model.encoder.embedding.embedding.weight is shared


def test_big_model_parameter_count() -> None:
    model = Transformer(37000, 37000, d_model=1024, num_heads=16, d_ff=4096, dropout=0.3, share_embeddings=True)
    assert 213e6 <= _count(model) <= 215e6  # paper, Table 3: 213M


def test_unshared_vocabularies_still_tie_generator() -> None:
    model = Transformer(50, 60, d_model=16, num_layers=1, num_heads=2, d_ff=32)
    assert model.generator.weight is model.decoder.embedding.embedding.weight
    assert model.encoder.embedding.embedding.weight is not model.generator.weight
    assert model(torch.randint(1, 50, (2, 5)), torch.randint(1, 60, (2, 4))).shape == (2, 4, 60)


def test_xavier_uniform_init() -> None:
    model = Transformer(100, 100, d_model=64, num_layers=1, num_heads=4, d_ff=256)
    w = model.encoder.layers[0].feed_forward.W_1.weight  # [256, 64]
    bound = math.sqrt(6 / (64 + 256))
    assert w.abs().max() <= bound and w.abs().max() > 0.9 * bound


def _small_model() -> Transformer:
    torch.manual_seed(0)
    return Transformer(20, 20, d_model=32, num_layers=2, num_heads=4, d_ff=64).eval()


def test_causality() -> None:
    model = _small_model()
    src = torch.randint(3, 20, (2, 7))
    tgt = torch.randint(3, 20, (2, 6))
    logits = model(src, tgt)
    for t in range(5):
        changed = tgt.clone()
        changed[:, t + 1 :] = torch.randint(3, 20, changed[:, t + 1 :].shape)
        torch.testing.assert_close(model(src, changed)[:, : t + 1], logits[:, : t + 1], atol=ATOL, rtol=1e-5)
        assert not torch.allclose(model(src, changed)[:, t + 1 :], logits[:, t + 1 :])


def test_source_padding_does_not_change_real_positions() -> None:
    model = _small_model()
    src = torch.randint(3, 20, (2, 7))
    tgt = torch.randint(3, 20, (2, 6))
    padded = torch.cat([src, torch.zeros(2, 4, dtype=torch.long)], dim=1)
    torch.testing.assert_close(model(padded, tgt), model(src, tgt), atol=ATOL, rtol=1e-5)
    memory, padded_memory = (
        model.encode(src, create_padding_mask(src)),
        model.encode(padded, create_padding_mask(padded)),
    )
    torch.testing.assert_close(padded_memory[:, :7], memory, atol=ATOL, rtol=1e-5)


def test_masks() -> None:
    src = torch.tensor([[5, 6, 0], [7, 0, 0]])
    tgt = torch.tensor([[1, 4, 0, 0], [1, 4, 5, 6]])
    src_mask, tgt_mask = create_masks(src, tgt)
    assert src_mask.dtype == torch.bool and src_mask.shape == (2, 1, 1, 3)
    assert src_mask[:, 0, 0].tolist() == [[True, True, False], [True, False, False]]
    assert tgt_mask.shape == (2, 1, 4, 4)
    assert tgt_mask[0, 0].tolist() == [
        [True, False, False, False],
        [True, True, False, False],
        [True, True, False, False],
        [True, True, False, False],
    ]
    assert tgt_mask[1, 0].tolist() == torch.ones(4, 4, dtype=torch.bool).tril().tolist()


# ----------------------------------------------------------------------------------------------
# Training pieces
# ----------------------------------------------------------------------------------------------
def test_lr_schedule_peaks_at_warmup_with_the_papers_value() -> None:
    optimizer = torch.optim.Adam([nn.Parameter(torch.zeros(1))], lr=123.0)
    scheduler = TransformerLRScheduler(optimizer, d_model=512, warmup_steps=4000)
    rates = [scheduler.get_lr(s) for s in range(1, 12001)]
    assert max(range(len(rates)), key=rates.__getitem__) + 1 == 4000
    assert math.isclose(max(rates), 1 / math.sqrt(512 * 4000), rel_tol=1e-9)  # 6.99e-4
    assert math.isclose(scheduler.get_lr(16000), 512**-0.5 * 16000**-0.5, rel_tol=1e-9)


def test_lr_scheduler_first_step_is_step_one_and_sets_the_rate() -> None:
    params = [nn.Parameter(torch.zeros(1))]
    optimizer = torch.optim.Adam([{"params": params}, {"params": [nn.Parameter(torch.zeros(1))]}], lr=123.0)
    scheduler = TransformerLRScheduler(optimizer, d_model=512, warmup_steps=10, factor=2.0)
    lr1 = scheduler.step()
    assert math.isclose(lr1, 2.0 * 512**-0.5 * 10**-1.5, rel_tol=1e-9)
    assert all(group["lr"] == lr1 for group in optimizer.param_groups)
    assert math.isclose(scheduler.step(), 2 * lr1, rel_tol=1e-9)
    assert math.isclose(scheduler.step(100), scheduler.get_lr(100)) and optimizer.param_groups[0][
        "lr"
    ] == scheduler.get_lr(100)
    with pytest.raises(ValueError):
        scheduler.get_lr(0)


# ----------------------------------------------------------------------------------------------
# Decoding
# ----------------------------------------------------------------------------------------------
class MarkovModel(nn.Module):
    """A hand-built 'model' whose next-token log-probabilities depend only on the previous token.

    Tokens: 0 pad, 1 start, 2 end, 3 'A', 4 'B'. From start: A 0.6, B 0.4. From A: end 0.4,
    A 0.3, B 0.3. From B: end 0.9, A 0.05, B 0.05. Greedy takes A then end (p = 0.24); the best
    sentence is B then end (p = 0.36).
    """

    def __init__(self) -> None:
        super().__init__()
        probs = torch.full((5, 5), 1e-6)
        probs[1, 3], probs[1, 4] = 0.6, 0.4
        probs[3, 2], probs[3, 3], probs[3, 4] = 0.4, 0.3, 0.3
        probs[4, 2], probs[4, 3], probs[4, 4] = 0.9, 0.05, 0.05
        probs[2, 2] = probs[0, 0] = 1.0
        self.generator = nn.Linear(5, 5, bias=False)
        with torch.no_grad():
            self.generator.weight.copy_(probs.log().T)  # logits[next] = log p(next | prev)

    def encode(self, src, src_mask=None):
        return torch.zeros(src.size(0), src.size(1), 5)

    def decode(self, tgt, memory, src_mask=None, tgt_mask=None):
        return F.one_hot(tgt, 5).float()


def test_beam_search_beats_greedy_on_a_hand_built_model() -> None:
    model, src = MarkovModel(), torch.tensor([[3, 4]])
    assert greedy_decode(model, src, 10, start_idx=1, end_idx=2)[0].tolist() == [1, 3, 2]
    assert beam_search(model, src, 10, start_idx=1, end_idx=2, beam_size=2).tolist() == [1, 4, 2]
    assert beam_search(model, src, 10, start_idx=1, end_idx=2, beam_size=1).tolist() == [1, 3, 2]


def test_beam_size_one_is_greedy_on_random_models() -> None:
    model = _small_model()
    for seed in range(5):
        torch.manual_seed(seed)
        src = torch.randint(3, 20, (1, 6))
        greedy = greedy_decode(model, src, 12, start_idx=1, end_idx=2)[0]
        assert torch.equal(beam_search(model, src, 12, start_idx=1, end_idx=2, beam_size=1), greedy)


def test_greedy_pads_finished_rows_and_stops_early() -> None:
    model = MarkovModel()
    with torch.no_grad():  # from A, always A (never ends); from B, end
        model.generator.weight[:, 3] = torch.tensor([-9.0, -9, -9, 0, -9])
        model.generator.weight[:, 1] = torch.tensor([-9.0, -9, -9, -9, 0])
    out = greedy_decode(model, torch.tensor([[3], [4]]), 6, start_idx=1, end_idx=2)
    assert out.tolist() == [[1, 4, 2]] * 2
    model.generator.weight.data[:, 1] = torch.tensor([-9.0, -9, -9, 0, -9])  # start -> A -> A -> ... never ends
    out = greedy_decode(model, torch.tensor([[3]]), 6, start_idx=1, end_idx=2)
    assert out.tolist() == [[1, 3, 3, 3, 3, 3]]


def test_greedy_pads_rows_that_finish_first() -> None:
    class TwoRows(MarkovModel):
        def decode(self, tgt, memory, src_mask=None, tgt_mask=None):  # row 0 behaves as after B
            onehot = F.one_hot(tgt, 5).float()
            onehot[0, :, :] = F.one_hot(torch.tensor(4), 5).float()
            return onehot

    model = TwoRows()
    with torch.no_grad():
        model.generator.weight[:, 3] = torch.tensor([-9.0, -9, -9, 0, -9])  # A -> A, for ever
        model.generator.weight[:, 1] = torch.tensor([-9.0, -9, -9, 0, -9])  # start -> A
    out = greedy_decode(model, torch.tensor([[3], [3]]), 5, start_idx=1, end_idx=2, pad_idx=0)
    assert out.tolist() == [[1, 2, 0, 0, 0], [1, 3, 3, 3, 3]]


# ----------------------------------------------------------------------------------------------
# The copy task: every part wired together learns
# ----------------------------------------------------------------------------------------------
@pytest.mark.timeout(60)
def test_copy_task_trains_to_exact_match() -> None:
    start = time.perf_counter()
    config = CopyTaskConfig()
    model, losses = train_copy_task(config, progress=False)
    assert losses[-1] < losses[0] / 10
    assert exact_match(model, config, num_sequences=200, seed=999) == 1.0
    assert time.perf_counter() - start < 60


# ----------------------------------------------------------------------------------------------
# Clear errors for bad arguments
# ----------------------------------------------------------------------------------------------
def test_bad_arguments_raise_clear_errors() -> None:
    with pytest.raises(ValueError, match="divisible by num_heads"):
        MultiHeadAttention(30, 4)
    with pytest.raises(ValueError, match="even d_model"):
        PositionalEncoding(15)
    with pytest.raises(ValueError, match="longer than max_seq_length=8"):
        PositionalEncoding(16, max_seq_length=8)(torch.zeros(1, 9, 16))
    with pytest.raises(ValueError, match="longer than max_seq_length"):
        Transformer(10, 10, d_model=16, num_layers=1, num_heads=2, d_ff=32, max_seq_length=4)(
            torch.ones(1, 5, dtype=torch.long), torch.ones(1, 2, dtype=torch.long)
        )
    with pytest.raises(ValueError, match="one vocabulary"):
        Transformer(10, 11, share_embeddings=True)


def test_workbook_demo_command(capsys: pytest.CaptureFixture[str]) -> None:
    from workbook.cli import main

    assert main(["demo", "--steps", "5"]) in (0, 1)
    out = capsys.readouterr().out
    assert "exact match on 200 held-out sequences" in out
