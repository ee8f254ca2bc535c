"""The reference implementation of every exercise in the workbook (see CONTRACT.md).

``from solutions import MultiHeadAttention`` (or any other exercise name) gives the reference.
"""

from .decoding import beam_search, greedy_decode
from .model import (
    Decoder,
    DecoderLayer,
    Encoder,
    EncoderLayer,
    FeedForwardNetwork,
    LayerNorm,
    MultiHeadAttention,
    PositionalEncoding,
    TokenEmbedding,
    Transformer,
    create_future_mask,
    create_masks,
    create_padding_mask,
    scaled_dot_product_attention,
)
from .training import LabelSmoothingLoss, TransformerLRScheduler

__all__ = [
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
