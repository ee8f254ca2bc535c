"""The chapter map: one source of truth for which exercises each chapter holds.

Used by the notebook generator, the checker's command line (``workbook check``), progress tracking
and the nbgrader course. Keys are the notebook file stems in ``chapters/``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Chapter:
    stem: str  # file name in chapters/ without ".ipynb"
    title: str
    sections: tuple[str, ...]  # paper sections covered
    exercises: tuple[str, ...]  # exercise names (CONTRACT.md), in the order they appear; () = nothing to grade


CHAPTERS: tuple[Chapter, ...] = (
    Chapter("00_introduction", "How to use the workbook, and the big picture", ("1", "2", "3"), ("softmax",)),
    Chapter("01_embeddings", "Token embeddings", ("3.4",), ("TokenEmbedding",)),
    Chapter("02_positional_encoding", "Positional encoding", ("3.5",), ("PositionalEncoding",)),
    Chapter("03_attention", "Scaled dot-product attention", ("3.2.1",), ("scaled_dot_product_attention",)),
    Chapter("04_multi_head_attention", "Multi-head attention", ("3.2.2", "4"), ("MultiHeadAttention",)),
    Chapter("05_feed_forward", "Position-wise feed-forward networks", ("3.3",), ("FeedForwardNetwork",)),
    Chapter("06_layer_norm", "Layer normalisation and residual connections", ("3.1", "5.4"), ("LayerNorm",)),
    Chapter("07_encoder", "The encoder", ("3.1", "3.2.3"), ("EncoderLayer", "Encoder")),
    Chapter(
        "08_decoder",
        "Masks and the decoder",
        ("3.1", "3.2.3"),
        ("create_padding_mask", "create_future_mask", "create_masks", "DecoderLayer", "Decoder"),
    ),
    Chapter("09_transformer", "The full model and weight sharing", ("3", "3.4"), ("Transformer",)),
    Chapter(
        "10_training",
        "Training: schedule, label smoothing, batching",
        ("5.1", "5.3", "5.4"),
        ("TransformerLRScheduler", "LabelSmoothingLoss"),
    ),
    Chapter("11_inference", "Inference: greedy decoding and beam search", ("6.1",), ("greedy_decode", "beam_search")),
    # The last chapter has no exercises: it trains the model assembled from the learner's own parts.
    Chapter("12_training_a_translator", "Train your Transformer: translation", ("5", "6"), ()),
)

EXERCISE_TO_CHAPTER: dict[str, str] = {name: ch.stem for ch in CHAPTERS for name in ch.exercises}
GRADED_CHAPTERS: tuple[Chapter, ...] = tuple(ch for ch in CHAPTERS if ch.exercises)  # what check/course grade


def chapter(stem_or_number: str | int) -> Chapter:
    """Find a chapter by stem ("03_attention"), number (3 or "03") or exercise name."""
    key = str(stem_or_number)
    for ch in CHAPTERS:
        if key in (ch.stem, ch.stem[:2], ch.stem.split("_", 1)[0].lstrip("0") or "0"):
            return ch
    if key in EXERCISE_TO_CHAPTER:
        return chapter(EXERCISE_TO_CHAPTER[key])
    raise KeyError(f"No chapter called {stem_or_number!r}; chapters are: " + ", ".join(c.stem for c in CHAPTERS))
