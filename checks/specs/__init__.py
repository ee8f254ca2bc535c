"""The hidden tests, one module per chapter; ``SPECS`` maps each exercise name to its spec."""

from __future__ import annotations

from ..core import Spec
from . import (
    ch00_introduction,
    ch01_embeddings,
    ch02_positional_encoding,
    ch03_attention,
    ch04_multi_head_attention,
    ch05_feed_forward,
    ch06_layer_norm,
    ch07_encoder,
    ch08_decoder,
    ch09_transformer,
    ch10_training,
    ch11_inference,
)

_MODULES = [
    ch00_introduction,
    ch01_embeddings,
    ch02_positional_encoding,
    ch03_attention,
    ch04_multi_head_attention,
    ch05_feed_forward,
    ch06_layer_norm,
    ch07_encoder,
    ch08_decoder,
    ch09_transformer,
    ch10_training,
    ch11_inference,
]

SPECS: dict[str, Spec] = {}
for _module in _MODULES:
    for _value in vars(_module).values():
        if isinstance(_value, Spec):
            SPECS[_value.exercise] = _value
