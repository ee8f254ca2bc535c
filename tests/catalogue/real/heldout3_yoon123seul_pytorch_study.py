"""Held-out round 3 (issue 22): patterns observed in yoon123seul/PyTorch-Study (``Transformer/``, a study copy of a
well-known tutorial; its files write some comments with ``//``, read here as ``#`` comments): masks built
inside the model (right), attention that returns (output, weights), a decoder layer that takes the target mask
before the source mask and returns a pair, and an encoder with learned positional embeddings.

Each case reproduces, in our own code, the behaviour its ``pattern`` describes; no code is copied.
Expectations were written before anything was graded.
"""

import torch
from torch import nn

from solutions import EncoderLayer, FeedForwardNetwork, LayerNorm
from solutions import MultiHeadAttention as ContractAttention  # the contract's attention: returns a tensor

from . import case


def src(path, commit):
    return dict(repo="yoon123seul/PyTorch-Study", path=path, commit=commit)


MODEL = src("Transformer/Transformer.py", "39c5df4b36c6e24db4d4cfdff407907541b6ec6a")


@case(
    "create_padding_mask",
    "correct",
    source=MODEL,
    why="(src != pad).unsqueeze(1).unsqueeze(2): bool [B, 1, 1, L], True on the real tokens",
    expect="passes",
    pattern="make_src_mask(src): (src != src_pad_idx).unsqueeze(1).unsqueeze(2), [B, 1, 1, L] bool. Here a free "
    "function of (seq, pad_idx=0).",
)
def create_padding_mask(seq, pad_idx=0):
    return (seq != pad_idx).unsqueeze(1).unsqueeze(2)


@case(
    "create_masks",
    "correct",
    source=MODEL,
    why="source mask [B, 1, 1, S] from the padding; target mask = target padding [B, 1, 1, T] AND a boolean lower "
    "triangle [T, T], broadcast to [B, 1, T, T]",
    expect="passes",
    pattern="make_src_mask as above; make_trg_mask(trg): pad = (trg != pad).unsqueeze(1).unsqueeze(2); sub = "
    "tril(ones(T, T)).bool() on the target's device; pad & sub. Here one function returning both.",
)
def create_masks(src, tgt, pad_idx=0):
    src_mask = (src != pad_idx).unsqueeze(1).unsqueeze(2)
    tgt_pad = (tgt != pad_idx).unsqueeze(1).unsqueeze(2)
    t = tgt.shape[1]
    sub = torch.tril(torch.ones((t, t), device=tgt.device)).bool()
    return src_mask, tgt_pad & sub


@case(
    "MultiHeadAttention",
    "buggy",
    source=src("Transformer/MultiheadAttention.py", "e25e356e1f052e2715ac6890558cdb061020655f"),
    why="forward returns a pair (output, attention weights) instead of the [B, S_q, d] output; the weights also "
    "get dropout before they multiply V",
    expect=r"tuple|pair|two (values|outputs|things)|\(output, ?(weights|attention)\)|returns? (a|an) \w+ of",
    pattern="(Adapted: the original is (hidden_dim, n_heads, dropout_ratio, device) with fc_q / fc_k / fc_v / fc_o; "
    "here (d_model, num_heads, dropout=0.1) and W_q / W_k / W_v / W_o.) Project, view [B, S, h, d_k], permute; "
    "energy = QK^T / sqrt(d_k) (a stored tensor); masked_fill(mask == 0, -1e10); softmax; x = dropout(weights) @ V; "
    "permute back, view [B, S, d], W_o; returns (x, weights).",
    differences=["returns (output, weights)", "dropout on the attention weights", "no attention_weights attribute"],
)
class MultiHeadAttention(nn.Module):
    def __init__(self, d_model, num_heads, dropout=0.1):
        super().__init__()
        assert d_model % num_heads == 0
        self.d_model = d_model
        self.n_heads = num_heads
        self.head_dim = d_model // num_heads
        self.W_q = nn.Linear(d_model, d_model)
        self.W_k = nn.Linear(d_model, d_model)
        self.W_v = nn.Linear(d_model, d_model)
        self.W_o = nn.Linear(d_model, d_model)
        self.dropout = nn.Dropout(dropout)
        self.scale = torch.sqrt(torch.FloatTensor([self.head_dim]))

    def forward(self, query, key, value, mask=None):
        b = query.shape[0]
        q = self.W_q(query).view(b, -1, self.n_heads, self.head_dim).permute(0, 2, 1, 3)
        k = self.W_k(key).view(b, -1, self.n_heads, self.head_dim).permute(0, 2, 1, 3)
        v = self.W_v(value).view(b, -1, self.n_heads, self.head_dim).permute(0, 2, 1, 3)
        energy = torch.matmul(q, k.permute(0, 1, 3, 2)) / self.scale.to(q)
        if mask is not None:
            energy = energy.masked_fill(mask == 0, -1e10)
        attention = torch.softmax(energy, dim=-1)
        x = torch.matmul(self.dropout(attention), v)
        x = x.permute(0, 2, 1, 3).contiguous().view(b, -1, self.d_model)
        return self.W_o(x), attention


@case(
    "DecoderLayer",
    "buggy",
    source=src("Transformer/DecoderLayer.py", "ad780f9e28b25e1631c86b65b82b5c18e94d360e"),
    why="forward(x, encoder_output, tgt_mask, src_mask): the target mask comes BEFORE the source mask (the "
    "contract's order is src_mask, tgt_mask), and it returns a pair (output, cross-attention weights)",
    expect=r"order|swap|revers|tgt_mask.{0,60}src_mask|src_mask.{0,60}tgt_mask|tuple|pair",
    pattern="(Adapted: the original's constructor is (hidden_dim, n_heads, pf_dim, dropout_ratio, device) with "
    "self_attn_layer_norm / enc_attn_layer_norm / ff_layer_norm; here the contract's names, and the contract's "
    "attention returns a tensor, so the weights are read from cross_attn.attention_weights.) Post-norm: x = "
    "norm1(x + dropout(self_attn(x, x, x, tgt_mask))); x = norm2(x + dropout(cross_attn(x, enc, enc, src_mask))); "
    "x = norm3(x + dropout(ffn(x))); returns (x, cross-attention weights).",
    differences=["(tgt_mask, src_mask) argument order", "returns (output, weights)"],
)
class DecoderLayer(nn.Module):
    def __init__(self, d_model, num_heads, d_ff, dropout=0.1):
        super().__init__()
        self.self_attn = ContractAttention(d_model, num_heads)
        self.cross_attn = ContractAttention(d_model, num_heads)
        self.feed_forward = FeedForwardNetwork(d_model, d_ff)
        self.norm1 = LayerNorm(d_model)
        self.norm2 = LayerNorm(d_model)
        self.norm3 = LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x, encoder_output, tgt_mask=None, src_mask=None):
        x = self.norm1(x + self.dropout(self.self_attn(x, x, x, tgt_mask)))
        x = self.norm2(x + self.dropout(self.cross_attn(x, encoder_output, encoder_output, src_mask)))
        x = self.norm3(x + self.dropout(self.feed_forward(x)))
        return x, self.cross_attn.attention_weights


@case(
    "Encoder",
    "buggy",
    source=src("Transformer/Encoder.py", "0d990fe69d1211d5bec2c0fafea2cbc5cb95ba6b"),
    why="positions come from a LEARNED nn.Embedding(max_length=100, d) (BERT-style), not the paper's sinusoidal "
    "PositionalEncoding; the token table is a bare nn.Embedding (tok_embedding) scaled in the forward",
    expect=r"learn|sinusoid|positional_encoding|PositionalEncoding|pos_embedding",
    pattern="(Adapted: the original's constructor is (input_dim, hidden_dim, n_layers, n_heads, pf_dim, "
    "dropout_ratio, device, max_length=100); here the contract's.) tok_embedding = nn.Embedding(V, d); "
    "pos_embedding = nn.Embedding(100, d); forward: pos = arange(S) repeated over the batch; x = dropout("
    "tok_embedding(src) * sqrt(d) + pos_embedding(pos)); every layer; no final norm.",
    differences=["learned positional embedding (max 100)", "no TokenEmbedding / PositionalEncoding"],
)
class Encoder(nn.Module):
    def __init__(self, vocab_size, d_model=512, num_layers=6, num_heads=8, d_ff=2048, dropout=0.1, max_seq_length=5000):
        super().__init__()
        self.tok_embedding = nn.Embedding(vocab_size, d_model)
        self.pos_embedding = nn.Embedding(100, d_model)
        self.layers = nn.ModuleList([EncoderLayer(d_model, num_heads, d_ff, dropout) for _ in range(num_layers)])
        self.dropout = nn.Dropout(dropout)
        self.scale = d_model**0.5

    def forward(self, src, src_mask=None):
        b, s = src.shape
        pos = torch.arange(0, s, device=src.device).unsqueeze(0).repeat(b, 1)
        x = self.dropout(self.tok_embedding(src) * self.scale + self.pos_embedding(pos))
        for layer in self.layers:
            x = layer(x, src_mask)
        return x
