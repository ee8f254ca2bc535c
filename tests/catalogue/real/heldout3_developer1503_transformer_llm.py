"""Held-out round 3 (issue 22): patterns observed in Developer1503/Transformer_LLM: stacks that repeat ONE layer
object (``[layer for _ in range(N)]``) and end with a final norm, RMSNorm in place of LayerNorm in the encoder
layer, a feed-forward network of grouped 1x1 convolutions, an attention module that keeps no weights, and a
relative positional encoding whose forward uses an undefined name.

Each case reproduces, in our own code, the behaviour its ``pattern`` describes; no code is copied.
Expectations were written before anything was graded.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from solutions import DecoderLayer, TokenEmbedding
from solutions import PositionalEncoding as ReferencePositionalEncoding

from . import case


def src(path, commit):
    return dict(repo="Developer1503/Transformer_LLM", path=path, commit=commit)


@case(
    "FeedForwardNetwork",
    "buggy",
    source=src("model/encoder.py", "dbbaa1e0dfeb5e7583ca12b1b091530fb186019d"),
    why="the first layer is a 1x1 convolution with groups=d_model (depthwise): each hidden unit sees ONE input "
    "feature instead of all d_model of them, so it is not the paper's position-wise linear layer; there is also "
    "a dropout on the output",
    expect=r"group|depthwise|conv|shape|size mismatch|\[\d+, ?1, ?1\]",
    pattern="(Adapted: the two convolutions carry the contract's names W_1 / W_2; the original's are depthwise / "
    "pointwise.) W_1 = Conv1d(d, d_ff, kernel_size=1, groups=d), W_2 = Conv1d(d_ff, d, kernel_size=1), a Dropout; "
    "forward: transpose to [B, d, S], W_1, relu, W_2, dropout, transpose back.",
    differences=["grouped (depthwise) first layer: weight [d_ff, 1, 1]", "convolutions, not nn.Linear", "dropout"],
)
class FeedForwardNetwork(nn.Module):
    def __init__(self, d_model, d_ff, dropout=0.1):
        super().__init__()
        self.W_1 = nn.Conv1d(d_model, d_ff, kernel_size=1, groups=d_model)
        self.W_2 = nn.Conv1d(d_ff, d_model, kernel_size=1)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        x = x.transpose(1, 2)
        x = self.W_2(F.relu(self.W_1(x)))
        return self.dropout(x).transpose(1, 2)


class RMSNorm(nn.Module):
    def __init__(self, d_model, eps=1e-6):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(d_model))
        self.eps = eps

    def forward(self, x):
        return x / torch.sqrt(torch.mean(x**2, dim=-1, keepdim=True) + self.eps) * self.scale


@case(
    "EncoderLayer",
    "buggy",
    source=src("model/encoder.py", "dbbaa1e0dfeb5e7583ca12b1b091530fb186019d"),
    why="the two norms are RMSNorm (no mean subtraction, a `scale` and no bias), not LayerNorm",
    expect=r"RMS|mean|cent(er|re)|scale|bias|LayerNorm",
    pattern="(Adapted: the original receives the attention and feed-forward modules and keeps the norms in a "
    "ModuleList `sublayer`; here the contract's names norm1 / norm2.) Post-norm: x = norm1(x + dropout(self_attn(x, "
    "x, x, mask))); norm2(x + dropout(feed_forward(x))), with norm = RMSNorm: x / sqrt(mean(x^2) + 1e-6) * scale.",
    differences=["RMSNorm instead of LayerNorm (parameter `scale`, no bias, no centring)"],
)
class EncoderLayer(nn.Module):
    def __init__(self, d_model, num_heads, d_ff, dropout=0.1):
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, num_heads)
        self.feed_forward = FeedForwardNetwork(d_model, d_ff)
        self.norm1 = RMSNorm(d_model)
        self.norm2 = RMSNorm(d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x, mask=None):
        x = self.norm1(x + self.dropout(self.self_attn(x, x, x, mask)))
        return self.norm2(x + self.dropout(self.feed_forward(x)))


@case(
    "Decoder",
    "buggy",
    source=src("model/decoder.py", "ebe6d53c21f69d26c3af6f1790f59ef3046086ec"),
    why="nn.ModuleList([layer for _ in range(N)]) repeats ONE DecoderLayer object N times (every layer shares the "
    "same weights), and the stack ends with a final LayerNorm",
    expect=r"same (layer|object|module|weights)|shar|independent|cop(y|ies)|deepcopy|final (layer ?)?norm|"
    r"norm\w* after",
    pattern="(Adapted: the original's Decoder(layer, N) receives a built layer and the embeddings live outside; "
    "here the contract's constructor builds one DecoderLayer and repeats it.) layers = ModuleList([layer] * N); "
    "norm = nn.LayerNorm(d); forward: embedding, positional encoding, dropout, every layer, then norm.",
    differences=["one layer object repeated N times (shared weights)", "final LayerNorm"],
)
class Decoder(nn.Module):
    def __init__(self, vocab_size, d_model=512, num_layers=6, num_heads=8, d_ff=2048, dropout=0.1, max_seq_length=5000):
        super().__init__()
        self.embedding = TokenEmbedding(vocab_size, d_model)
        self.positional_encoding = ReferencePositionalEncoding(d_model, max_seq_length)
        self.dropout = nn.Dropout(dropout)
        layer = DecoderLayer(d_model, num_heads, d_ff, dropout)
        self.layers = nn.ModuleList([layer for _ in range(num_layers)])
        self.norm = nn.LayerNorm(d_model)

    def forward(self, tgt, encoder_output, src_mask=None, tgt_mask=None):
        x = self.dropout(self.positional_encoding(self.embedding(tgt)))
        for layer in self.layers:
            x = layer(x, encoder_output, src_mask, tgt_mask)
        return self.norm(x)


@case(
    "Encoder",
    "buggy",
    source=src("model/encoder.py", "dbbaa1e0dfeb5e7583ca12b1b091530fb186019d"),
    why="nn.ModuleList([layer for _ in range(N)]) repeats ONE EncoderLayer object N times (shared weights), and "
    "the stack ends with a final RMSNorm",
    expect=r"same (layer|object|module|weights)|shar|independent|cop(y|ies)|deepcopy|final (layer ?|rms ?)?norm|"
    r"norm\w* after",
    pattern="(Adapted as the Decoder case: the contract's constructor builds one EncoderLayer and repeats it.) "
    "layers = ModuleList([layer] * N); norm = RMSNorm(d) (x / sqrt(mean(x^2) + 1e-6) * scale); forward: "
    "embedding, positional encoding, dropout, every layer, then the norm.",
    differences=["one layer object repeated N times (shared weights)", "final RMSNorm"],
)
class Encoder(nn.Module):
    def __init__(self, vocab_size, d_model=512, num_layers=6, num_heads=8, d_ff=2048, dropout=0.1, max_seq_length=5000):
        super().__init__()
        self.embedding = TokenEmbedding(vocab_size, d_model)
        self.positional_encoding = ReferencePositionalEncoding(d_model, max_seq_length)
        self.dropout = nn.Dropout(dropout)
        layer = EncoderLayer(d_model, num_heads, d_ff, dropout)
        self.layers = nn.ModuleList([layer for _ in range(num_layers)])
        self.norm = RMSNorm(d_model)

    def forward(self, src, src_mask=None):
        x = self.dropout(self.positional_encoding(self.embedding(src)))
        for layer in self.layers:
            x = layer(x, src_mask)
        return self.norm(x)


@case(
    "MultiHeadAttention",
    "buggy",
    source=src("model/attention.py", "311edf0b51c3674792ab9c35870ae5d01fe5f63a"),
    why="the maths is right, but the weights are never kept: there is no `attention_weights` after a forward",
    expect=r"attention_weights",
    pattern="(Adapted: the original class is FlashAttention with q_linear / k_linear / v_linear / out; here W_q / "
    "W_k / W_v / W_o.) Project, view [B, S, h, d_k], transpose; scores / sqrt(d_k), masked_fill(mask == 0, -1e9), "
    "softmax, optional dropout module argument; weights @ V, concat, W_o. The weights are a local variable only.",
    differences=["no attention_weights attribute"],
)
class MultiHeadAttention(nn.Module):
    def __init__(self, d_model, num_heads):
        super().__init__()
        assert d_model % num_heads == 0
        self.d_k = d_model // num_heads
        self.num_heads = num_heads
        self.W_q = nn.Linear(d_model, d_model)
        self.W_k = nn.Linear(d_model, d_model)
        self.W_v = nn.Linear(d_model, d_model)
        self.W_o = nn.Linear(d_model, d_model)

    def forward(self, q, k, v, mask=None, dropout=None):
        bs = q.size(0)
        q = self.W_q(q).view(bs, -1, self.num_heads, self.d_k).transpose(1, 2)
        k = self.W_k(k).view(bs, -1, self.num_heads, self.d_k).transpose(1, 2)
        v = self.W_v(v).view(bs, -1, self.num_heads, self.d_k).transpose(1, 2)
        scores = torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(self.d_k)
        if mask is not None:
            scores = scores.masked_fill(mask == 0, -1e9)
        scores = F.softmax(scores, dim=-1)
        if dropout is not None:
            scores = dropout(scores)
        output = torch.matmul(scores, v)
        concat = output.transpose(1, 2).contiguous().view(bs, -1, self.num_heads * self.d_k)
        return self.W_o(concat)


@case(
    "PositionalEncoding",
    "buggy",
    source=src("utils/positional_encoding.py", "8e30033cea80e5cbfd6d93e2849cfcb75e1e6d13"),
    why="a 'relative' encoding whose forward uses `max_len`, a constructor argument it never stored: every call "
    "raises NameError; its buffer is [2 * max_len - 1, 1, d], not [1, max_len, d], and it applies dropout",
    expect=r"NameError|max_len.{0,40}(not defined|undefined)|\bpe\b.{0,80}(shape|\[1, ?\w+, ?\w+\])",
    pattern="(Adapted: the original's constructor is (d_model, dropout=0.1, max_len=5000); here (d_model, "
    "max_seq_length=5000, dropout=0.1).) pe = sin / cos of the positions -max+1 .. max-1 ([2max-1, d]), unsqueezed "
    "and transposed to [2max-1, 1, d], registered as `pe`; forward builds relative indices i - j + max_len - 1 with "
    "the undefined global max_len (NameError), then would add pe[indices] and apply dropout.",
    differences=["NameError in forward (max_len undefined)", "pe shape [2max-1, 1, d]", "dropout inside"],
)
class PositionalEncoding(nn.Module):
    def __init__(self, d_model, max_seq_length=5000, dropout=0.1):
        super().__init__()
        self.dropout = nn.Dropout(p=dropout)
        n = max_seq_length
        pe = torch.zeros(2 * n - 1, d_model)
        position = torch.arange(-n + 1, n, dtype=torch.float).unsqueeze(1)
        div_term = torch.exp(torch.arange(0, d_model, 2).float() * (-math.log(10000.0) / d_model))
        pe[:, 0::2] = torch.sin(position * div_term)
        pe[:, 1::2] = torch.cos(position * div_term)
        self.register_buffer("pe", pe.unsqueeze(0).transpose(0, 1))

    def forward(self, x):
        seq_len = x.size(1)
        indices = torch.arange(seq_len, dtype=torch.long)
        relative = indices.unsqueeze(0) - indices.unsqueeze(1) + max_len - 1  # noqa: F821 (as observed)
        x = x + self.pe[relative.to(x.device)]
        return self.dropout(x)
