"""Assembling the Transformer from the learner's parts, with the reference filling the gaps."""

from __future__ import annotations

import nbformat
import pytest
import torch

import solutions
from workbook.assembly import PARTS, assemble, build_model

SIZES = dict(d_model=32, num_layers=2, num_heads=4, d_ff=64, dropout=0.1, max_seq_length=50)


def test_assembled_from_the_reference_is_solutions_transformer_output_for_output():
    torch.manual_seed(3)
    model = build_model(40, 40, use_learner=False, verbose=False, share_embeddings=True, **SIZES).eval()
    torch.manual_seed(3)
    reference = solutions.Transformer(40, 40, share_embeddings=True, **SIZES).eval()
    assert list(model.state_dict()) == list(reference.state_dict())
    for key, value in reference.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key
    src = torch.tensor([[5, 6, 7, 8, 0], [9, 10, 11, 0, 0]])
    tgt = torch.tensor([[1, 12, 13, 0], [1, 14, 0, 0]])
    assert torch.equal(model(src, tgt), reference(src, tgt))
    # training mode too: same dropout masks from the same seed
    model.train(), reference.train()
    torch.manual_seed(5)
    out = model(src, tgt)
    torch.manual_seed(5)
    assert torch.equal(out, reference(src, tgt))


def test_fused_attention_trains_like_the_reference_and_still_keeps_weights_to_plot():
    sizes = {**SIZES, "dropout": 0.0}  # training mode without dropout: the same function, two kernels
    torch.manual_seed(3)
    fused = assemble(use_learner=False, attention="fused").model(40, 40, **sizes).train()
    torch.manual_seed(3)
    reference = solutions.Transformer(40, 40, **sizes).train()
    src, tgt = torch.tensor([[5, 6, 7, 0]]), torch.tensor([[1, 12, 13]])
    fused_out, reference_out = fused(src, tgt), reference(src, tgt)
    torch.testing.assert_close(fused_out, reference_out, atol=1e-5, rtol=1e-5)
    attentions = [m for m in fused.modules() if type(m).__name__ == "FusedMultiHeadAttention"]
    assert attentions and all(m.attention_weights is None for m in attentions)  # the fused kernel ran
    fused_out.square().sum().backward()
    reference_out.square().sum().backward()
    torch.testing.assert_close(fused.generator.weight.grad, reference.generator.weight.grad, atol=1e-4, rtol=1e-4)
    fused.eval()  # decoding and plots: the contract's forward, with its weights [B, h, S_q, S_k]
    torch.testing.assert_close(fused(src, tgt), reference.eval()(src, tgt), atol=1e-5, rtol=1e-5)
    assert all(m.attention_weights is not None and m.attention_weights.dim() == 4 for m in attentions)


def _notebook(path, cells: list[tuple[str, str]]) -> None:
    nb = nbformat.v4.new_notebook()
    for role, source in cells:
        cell = nbformat.v4.new_code_cell(source)
        cell.metadata["workbook"] = {"role": role, "exercise": None}
        nb.cells.append(cell)
    nbformat.write(nb, path)


SETUP = "import math\nimport torch\nimport torch.nn as nn\n"
BROKEN_FFN = """
class FeedForwardNetwork(nn.Module):
    def __init__(self, d_model, d_ff):
        super().__init__()
        self.W_1 = nn.Linear(d_model, d_ff)
        self.W_2 = nn.Linear(d_ff, d_model)

    def forward(self, x):
        return self.W_2(self.W_1(x))  # forgot the ReLU
"""
GOOD_LAYER_NORM = """
class LayerNorm(nn.Module):
    def __init__(self, d_model, eps=1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d_model))
        self.bias = nn.Parameter(torch.zeros(d_model))

    def forward(self, x):
        mean = x.mean(-1, keepdim=True)
        var = ((x - mean) ** 2).mean(-1, keepdim=True)
        return self.weight * (x - mean) / torch.sqrt(var + self.eps) + self.bias
"""


@pytest.fixture
def learner_chapters(tmp_path):
    """A learner who wrote a correct LayerNorm, a FeedForwardNetwork without its ReLU, and a cell
    that crashes; every other chapter is missing."""
    _notebook(tmp_path / "05_feed_forward.ipynb", [("setup", SETUP), ("exercise", BROKEN_FFN)])
    _notebook(
        tmp_path / "06_layer_norm.ipynb",
        [("setup", SETUP), ("exercise", GOOD_LAYER_NORM), ("exercise", "1 / 0"), ("check", "raise SystemExit")],
    )
    return tmp_path


def test_a_failing_learner_part_is_replaced_and_reported(learner_chapters, capsys):
    assembly = assemble(use_learner=True, chapters_dir=learner_chapters)
    assert assembly.sources["LayerNorm"][0] == "yours"
    assert assembly.sources["FeedForwardNetwork"][0] == "reference"
    assert "fail" in assembly.sources["FeedForwardNetwork"][1]
    assert assembly.parts["FeedForwardNetwork"].__module__ == "solutions._assembled"
    assert all(assembly.sources[name][0] == "reference" for name in PARTS if name != "LayerNorm")

    model = build_model(30, 30, use_learner=True, chapters_dir=learner_chapters, **SIZES)
    table = capsys.readouterr().out
    assert "LayerNorm" in table and "yours" in table and "1 of 18 parts are yours" in table
    # the learner's LayerNorm really is inside the (reference) layers, and the FFN has its ReLU back
    norm = model.encoder.layers[0].norm1
    # defined in the learner's notebook (its __main__, as in Jupyter), brought back from the runner's worker
    assert type(norm).__module__ == "__main__" and type(norm).__name__ == "LayerNorm"
    assert type(model.decoder.layers[1].feed_forward).__module__ == "solutions._assembled"
    model.eval()
    ffn = model.encoder.layers[0].feed_forward
    x = torch.randn(4, 32)
    torch.testing.assert_close(ffn(x), ffn.W_2(torch.relu(ffn.W_1(x))))


def test_no_chapters_folder_means_all_reference(tmp_path):
    assembly = assemble(use_learner=True, chapters_dir=tmp_path / "nowhere")
    assert {who for who, _ in assembly.sources.values()} == {"reference"}
    assert "no chapters folder" in assembly.sources["Transformer"][1]
