"""Pictures of a training run: the loss and learning-rate curves, and where the model attends."""

from __future__ import annotations

from pathlib import Path

import torch

from .bpe import BOS_IDX, EOS_IDX, PAD_IDX, encode


def save_training_plots(history: dict, out_dir: Path, model, tokenizer, sentence: str, assembly, device) -> list[Path]:
    """Write ``loss.png``, ``lr.png`` and ``attention.png`` into ``out_dir``; returns their paths.

    The figures are plain ``matplotlib.figure.Figure`` objects, drawn without pyplot: saving them needs
    no display and leaves pyplot's backend alone (switching it to Agg here would stop every later
    ``plt.show()`` of a notebook that called ``train``)."""
    from matplotlib.figure import Figure

    paths = []
    fig = Figure(figsize=(7, 4))
    ax = fig.subplots()
    ax.plot(history["step"], history["loss"], lw=0.8, label="training loss (label-smoothed)")
    if history["val_step"]:
        ax.plot(history["val_step"], history["val_loss"], "o-", label="validation loss")
    ax.set_xlabel("step")
    ax.set_ylabel("loss per target token")
    ax.set_yscale("log")
    ax.legend()
    ax.set_title("Loss")
    paths.append(_save(fig, out_dir / "loss.png"))

    fig = Figure(figsize=(7, 3))
    ax = fig.subplots()
    ax.plot(history["step"], history["lr"])
    ax.set_xlabel("step")
    ax.set_ylabel("learning rate")
    ax.set_title("Learning rate: linear warmup, then 1/sqrt(step) (section 5.3)")
    paths.append(_save(fig, out_dir / "lr.png"))

    figure = attention_figure(model, tokenizer, sentence, assembly, device, figure=Figure(figsize=ATTENTION_FIGSIZE))
    if figure is not None:
        paths.append(_save(figure, out_dir / "attention.png"))
    return paths


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def _token_labels(tokenizer, ids: list[int]) -> list[str]:
    special = {BOS_IDX: "<s>", EOS_IDX: "</s>", PAD_IDX: "<pad>"}
    return [special.get(i) or tokenizer.decode([i]).strip() or "_" for i in ids]


@torch.no_grad()
def attention_maps(model, tokenizer, sentence: str, assembly, device, max_len: int = 64):
    """Translate ``sentence`` greedily, then run the model once on (source, translation) and read
    ``attention_weights`` of the last layer's three attentions. Returns a dict of
    ``{"encoder self-attention" | "decoder self-attention" | "cross-attention": (weights [h, q, k],
    query labels, key labels)}``, or None when a ``MultiHeadAttention`` keeps no ``attention_weights``."""
    model.eval()
    src_ids = encode(tokenizer, sentence)
    src = torch.tensor([src_ids], device=device)
    out = assembly.greedy_decode(model, src, max_len, BOS_IDX, EOS_IDX, pad_idx=PAD_IDX)[0].tolist()
    tgt_ids = [t for t in out if t != PAD_IDX]
    model(src, torch.tensor([tgt_ids], device=device))
    encoder_layer, decoder_layer = model.encoder.layers[-1], model.decoder.layers[-1]
    weights = [
        encoder_layer.self_attn.attention_weights,
        decoder_layer.self_attn.attention_weights,
        decoder_layer.cross_attn.attention_weights,
    ]
    if any(w is None for w in weights):
        return None
    src_labels, tgt_labels = _token_labels(tokenizer, src_ids), _token_labels(tokenizer, tgt_ids)
    return {
        "encoder self-attention": (weights[0][0].float().cpu(), src_labels, src_labels),
        "decoder self-attention": (weights[1][0].float().cpu(), tgt_labels, tgt_labels),
        "cross-attention": (weights[2][0].float().cpu(), tgt_labels, src_labels),
    }


# Three heatmaps side by side. Sized so that at a notebook's width (about 750 px, the figure is scaled
# down to fit) the 10-point token labels still come out about 10 px tall.
ATTENTION_FIGSIZE = (11, 5.2)


def attention_figure(model, tokenizer, sentence: str, assembly, device, figure=None):
    """One heatmap per attention kind (last layer, averaged over heads) for one sentence, drawn on
    ``figure`` (default: a new pyplot figure, shown by ``plt.show()`` in a notebook)."""
    maps = attention_maps(model, tokenizer, sentence, assembly, device)
    if maps is None:
        return None
    if figure is None:
        import matplotlib.pyplot as plt

        figure = plt.figure(figsize=ATTENTION_FIGSIZE)
    fig, axes = figure, figure.subplots(1, 3)
    for ax, (title, (weights, rows, cols)) in zip(axes, maps.items()):
        ax.imshow(weights.mean(0).numpy(), cmap="viridis", vmin=0.0, aspect="auto")
        ax.set_xticks(range(len(cols)), cols, rotation=90, fontsize=10)
        ax.set_yticks(range(len(rows)), rows, fontsize=10)
        ax.set_title(f"{title}\n(last layer, mean over heads)", fontsize=10)
        ax.set_xlabel("keys (attended to)")
        ax.set_ylabel("queries")
    fig.tight_layout()
    return fig
