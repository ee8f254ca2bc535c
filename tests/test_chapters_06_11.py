"""Chapters 06-11 teach what they claim.

The generic rules (header, hints, FAQ, doc links, notebooks executing in a kernel) are tested for every
chapter in ``tests/test_chapters.py``. Here, each chapter's solved cells run in-process, exactly as the
generator builds them (``workbook.notebooks.build_cells(..., "solved")``), and the claims the prose makes
about the figures and printouts are asserted on the values the cells computed: the residual keeps the
input, the future mask stops leaks, the parameter count matches the hand count of the table, token
budgets cut padding, greedy fails where beam search succeeds on the hand-built model, and so on.
Cells that train a model are skipped, except in the two tests of those training runs.
"""

from __future__ import annotations

import math
import warnings

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pytest
import torch

from workbook import notebooks

# Markers of the cells that train a model or use the trained one (skipped in the fast tests).
TRAINING_CELLS = ("train_copy_task(", "CopyTaskConfig(", "exact_match(", "greedy_out")
MY_CHAPTERS = ["06_layer_norm", "07_encoder", "08_decoder", "09_transformer", "10_training", "11_inference"]


def run_solved_cells(stem: str, skip_training: bool = True) -> dict:
    """Execute the solved variant of a chapter in this process; returns the namespace.

    The install cell is skipped (the workbook is installed); every check cell must pass.
    """
    cells = notebooks.build_cells(notebooks.load_source(stem), "solved")
    namespace: dict = {"__name__": "__main__"}
    checks_passed = []
    for cell in cells:
        if cell.cell_type != "code" or cell.source == notebooks.INSTALL_CELL:
            continue
        if skip_training and any(marker in cell.source for marker in TRAINING_CELLS):
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Agg's "non-interactive, cannot show"
            if cell.role == "check":
                result = eval(cell.source, namespace)
                assert result.passed, f"{stem}: {cell.source} failed on the reference: {result.failures}"
                checks_passed.append(cell.exercise)
            else:
                exec(compile(cell.source, f"{stem}:{cell.role}", "exec"), namespace)
        plt.close("all")
    assert checks_passed == list(notebooks.chapter(stem).exercises)
    return namespace


@pytest.fixture(autouse=True)
def _progress_home(tmp_path, monkeypatch):
    """Checks record progress: keep it out of the real progress file."""
    monkeypatch.setenv("WORKBOOK_HOME", str(tmp_path / "home"))


def test_my_chapters_have_sources():
    assert set(MY_CHAPTERS) <= {ch.stem for ch in notebooks.available_chapters()}


def test_06_residual_keeps_the_input_and_layer_norm_normalises():
    ns = run_solved_cells("06_layer_norm")
    plain, residual = ns["similarity"].values()
    assert all(r > p + 0.2 for r, p in zip(residual, plain)), (plain, residual)
    assert max(abs(p) for p in plain) < 0.5  # without the residual the input is forgotten at once
    y = ns["y"]  # the three "I like pizza" vectors after LayerNorm
    assert torch.allclose(y.mean(-1), torch.zeros(1, 3), atol=1e-5)
    assert torch.allclose(y.var(-1, correction=0), torch.ones(1, 3), atol=2e-3)  # eps: var / (var + eps)
    table = ns["normalised"][0]  # the worked table of section 2
    assert torch.allclose(table[1], torch.tensor([-1.0, -1.0, 1.0, 1.0]), atol=1e-4)


def test_07_padding_is_invisible_and_outputs_are_contextual():
    ns = run_solved_cells("07_encoder")
    assert tuple(ns["memory"].shape) == (2, 5, 32)
    encoder = ns["encoder"]
    with torch.no_grad():
        encoder(ns["src"], ns["src_mask"])  # the heatmap's batch: "I like pizza <pad> <pad>" first
    assert encoder.layers[0].self_attn.attention_weights[0, :, :, 3:].abs().max() == 0
    assert torch.allclose(ns["padded"], ns["encode"](["I", "like", "pizza"]), atol=1e-5)
    assert torch.nn.functional.cosine_similarity(ns["pizza_1"], ns["pizza_2"], dim=0) < 0.99
    assert sum(p.numel() for p in ns["layer"].parameters()) == 3_152_384  # 4d^2+4d + 2d*d_ff+d_ff+d + 4d


def test_08_the_future_mask_stops_leaks():
    ns = run_solved_cells("08_decoder")
    assert ns["change"][:3].max() == 0, "earlier positions must not see the changed last token"
    assert ns["change"][3] > 0
    assert (ns["change_unmasked"][:3] > 0).all(), "without the mask the change leaks backwards"
    # The mask picture: "<s> ich mag Pizza <pad>"; the <pad> column and the future are False.
    _, tgt_mask = ns["create_masks_fn"](torch.tensor([[0, 0, 0]]), torch.tensor([[1, 3, 4, 5, 0]]))
    expected = torch.tril(torch.ones(5, 5, dtype=torch.bool))
    expected[:, 4] = False
    assert tgt_mask.dtype == torch.bool and torch.equal(tgt_mask[0, 0], expected)


def test_09_parameter_counts_match_the_hand_count():
    ns = run_solved_cells("09_transformer")

    def by_hand(d: int, d_ff: int, vocab: int = 37000, layers: int = 6) -> int:
        attention, ffn, norm = 4 * d * d + 4 * d, 2 * d * d_ff + d_ff + d, 2 * d
        encoder_layer, decoder_layer = attention + ffn + 2 * norm, 2 * attention + ffn + 3 * norm
        return layers * (encoder_layer + decoder_layer) + vocab * d + vocab  # shared matrix + generator bias

    base, big = (ns["count"](ns["models"][name]) for name in ("base", "big"))
    assert base == by_hand(512, 2048) == 63_119_496
    assert big == by_hand(1024, 4096)
    assert round(big / 1e6, 1) == 214.3 and abs(base - 65e6) / 65e6 < 0.03  # paper: 65M and 213M
    assert ns["count"](ns["untied"]) - base == 37000 * 512


def test_10_token_budget_cuts_padding_and_the_schedule_peaks_at_warmup():
    ns = run_solved_cells("10_training")
    fixed, budget = ns["padding_share"](ns["fixed"], ns["lengths"]), ns["padding_share"](ns["budget"], ns["lengths"])
    assert budget < fixed / 5, (fixed, budget)
    assert sorted(i for b in ns["budget"] for i in b) == list(range(2000)), "every sentence in exactly one batch"
    scheduler = ns["scheduler_class"](torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0), 512, 4000)
    rates = [scheduler.step() for _ in range(8000)]
    assert max(range(8000), key=rates.__getitem__) == 3999  # the peak is step 4000
    assert math.isclose(rates[3999], 512**-0.5 * 4000**-0.5)


def test_11_greedy_fails_where_beam_search_succeeds_on_the_hand_built_model():
    ns = run_solved_cells("11_inference")
    show, results = ns["show"], ns["results"]
    assert show(results["greedy"]) == show(results["beam_size=1"]) == "<s> I like pizza </s>"
    assert show(results["beam_size=2"]) == show(results["beam_size=4"]) == "<s> I love pizza </s>"
    toy, log_prob = ns["toy"], ns["log_prob"]
    assert math.isclose(math.exp(log_prob(toy, results["greedy"])), 0.9 * 0.45 * 0.36, rel_tol=1e-3)
    assert math.isclose(math.exp(log_prob(toy, results["beam_size=2"])), 0.9 * 0.4 * 0.95, rel_tol=1e-3)
    # Section 6's claim: the short sentence wins without a penalty, the long one with alpha = 0.6.
    score, words = ns["length_penalty_score"], ns["words"]
    short, long_ = (torch.tensor([words.index(w) for w in s.split()]) for s in ns["candidates"])
    lp_short, lp_long = log_prob(toy, short), log_prob(toy, long_)
    assert lp_short > lp_long
    assert score(lp_short, len(short) - 1, 0.6) < score(lp_long, len(long_) - 1, 0.6)


def test_10_the_first_training_run_learns_to_copy():
    ns = run_solved_cells("10_training", skip_training=False)
    losses = ns["losses"]
    assert len(losses) == 200 and losses[-1] < 0.5 < losses[0]
    assert ns["exact_match"](ns["model"], ns["config"]) > 0.6


def test_11_the_trained_copy_model_attends_along_the_diagonal():
    ns = run_solved_cells("11_inference", skip_training=False)
    assert ns["copied_greedy"] >= 12 and ns["same"] >= 16
    weights = ns["weights"].mean(0)  # [T, S], averaged over heads
    source_len = weights.size(1)
    assert (weights[:source_len].argmax(-1) == torch.arange(source_len)).float().mean() >= 0.75
