"""Held-out round 2 (issue 22): a pattern observed in mancanelli/PHYDI
(``PH-Transformers/models/real_embedding/embedding.py``): the PyTorch tutorial's TokenEmbedding.

Each case reproduces, in our own code, the behaviour its ``pattern`` describes; no code is copied.
Expectations were written before anything was graded.
"""

import math

from torch import nn

from . import PASSES, case

SRC = dict(
    repo="mancanelli/PHYDI",
    path="PH-Transformers/models/real_embedding/embedding.py",
    commit="8019460b40e711d2b2a5b596c13853d0aef27786",
)


@case(
    "TokenEmbedding",
    "correct",
    source=SRC,
    why="nn.Embedding(vocab, d) as `embedding`, tokens cast to long, times sqrt(d)",
    expect=PASSES,
    pattern="Constructor (vocab_size, emb_size): embedding = nn.Embedding(vocab_size, emb_size). forward: "
    "embedding(tokens.long()) * math.sqrt(emb_size).",
    differences=["tokens cast with .long()"],
)
class TokenEmbedding(nn.Module):
    def __init__(self, vocab_size, d_model):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, d_model)
        self.emb_size = d_model

    def forward(self, tokens):
        return self.embedding(tokens.long()) * math.sqrt(self.emb_size)
