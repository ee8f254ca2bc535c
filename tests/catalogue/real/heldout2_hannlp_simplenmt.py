"""Held-out round 2 (issue 22): patterns observed in hannlp/SimpleNMT (``simplenmt/``), a small NMT toolkit:
attention masks in the True = padding convention, a feed-forward width fixed at 4 * d_model, a sinusoid table
kept as a plain attribute, a final LayerNorm after the encoder stack, a decoder with a bare nn.Embedding, an
output layer tied only on request, a label-smoothing loss that returns (loss, nll) and spreads over V-1 classes,
a Noam wrapper that steps the optimizer, and a batched greedy search that never pads finished rows.

Each case reproduces, in our own code, the behaviour its ``pattern`` describes; no code is copied.
Expectations were written before anything was graded.
"""

import torch
import torch.nn.functional as F
from torch import nn

from solutions import Decoder as ReferenceDecoder
from solutions import DecoderLayer, EncoderLayer, TokenEmbedding, create_masks
from solutions import Encoder as ReferenceEncoder
from solutions import create_future_mask as reference_future_mask
from solutions import create_padding_mask as reference_padding_mask

from . import case

REPO = "hannlp/SimpleNMT"
MODEL = dict(repo=REPO, path="simplenmt/models/transformer.py", commit="1b0b0bd9d12ef60e2161ef2720fd3f36fc184bd2")


@case(
    "MultiHeadAttention",
    "buggy",
    source=MODEL,
    why="the mask is read as True = blocked (masked_fill(mask, -1e9) where the mask is True), the opposite of the "
    "contract's True = may attend: it blocks exactly the keys it should keep",
    expect=r"invert|opposite|revers|flipped|True (=|means|for|where|marks) (the )?(masked|blocked|pad)|"
    r"convention|negat|masked_fill\(mask\b|~mask|logical_not",
    pattern="(Adapted to the contract's names and biases; the original's four projections are bias-free w_q, "
    "w_k, w_v, w_out.) Projections viewed as [B, S, h, d_k] and transposed; Q Kᵀ; where mask is True the scores "
    "are set (in place, on the score tensor) to -1e9; softmax of scores / sqrt(d_k); merge and output projection. "
    "The model builds its masks as tokens.eq(pad), so True marks padding. No attention_weights.",
    differences=["mask convention inverted (True = blocked)", "no attention_weights"],
)
class MultiHeadAttention(nn.Module):
    def __init__(self, d_model, num_heads):
        super().__init__()
        self.n_head = num_heads
        self.d_k = d_model // num_heads
        self.W_q = nn.Linear(d_model, d_model)
        self.W_k = nn.Linear(d_model, d_model)
        self.W_v = nn.Linear(d_model, d_model)
        self.W_o = nn.Linear(d_model, d_model)

    def forward(self, query, key, value, mask=None):
        b, sq, sk = query.size(0), query.size(1), key.size(1)
        q = self.W_q(query).view(b, sq, self.n_head, self.d_k).transpose(1, 2)
        k = self.W_k(key).view(b, sk, self.n_head, self.d_k).transpose(1, 2)
        v = self.W_v(value).view(b, sk, self.n_head, self.d_k).transpose(1, 2)
        scores = torch.matmul(q, k.transpose(2, 3))
        if mask is not None:
            scores.masked_fill_(mask, -1e9)
        attn = F.softmax(scores / self.d_k**0.5, dim=-1)
        return self.W_o(torch.matmul(attn, v).transpose(1, 2).reshape(b, sq, self.d_k * self.n_head))


@case(
    "FeedForwardNetwork",
    "buggy",
    source=MODEL,
    why="the hidden width is always 4 * d_model: d_ff is not used",
    expect=r"d_ff|4 ?\* ?d_model|hidden (width|size|dimension|layer)|inner (width|dimension|size|layer)",
    reject=r"dropout",
    pattern="(Adapted: the original's constructor is (d_model) alone; here it accepts d_ff and ignores it, and "
    "uses the contract's names W_1 / W_2 for its linear1 / linear2.) W_1 = Linear(d, 4d), W_2 = Linear(4d, d); "
    "forward: W_2(relu(W_1(x))).",
    differences=["hidden width 4 * d_model regardless of d_ff"],
)
class FeedForwardNetwork(nn.Module):
    def __init__(self, d_model, d_ff=None):
        super().__init__()
        self.W_1 = nn.Linear(d_model, 4 * d_model)
        self.W_2 = nn.Linear(4 * d_model, d_model)

    def forward(self, x):
        return self.W_2(F.relu(self.W_1(x)))


@case(
    "PositionalEncoding",
    "variant",
    source=MODEL,
    why="the (correct) sinusoid table is a plain tensor attribute `pos_encode` [max_len, d], not a registered "
    "buffer `pe` [1, max_len, d], and the default length is 512",
    expect=r"buffer|register_buffer|\bpos_encode\b|(no|missing|lacks)\b.{0,30}\bpe\b|512",
    pattern="Constructor (d_model, max_seq_len=512): a nested list comprehension of pos / 10000^(2 * (i // 2) / "
    "d) turned into a float32 tensor, sin on the even columns and cos on the odd ones, stored as "
    "self.pos_encode [max_len, d] (not a buffer, so not in the state_dict nor moved by .to()). forward: x + "
    "pos_encode[:S].unsqueeze(0).to(x.device); no length check.",
    differences=[
        "plain attribute pos_encode [max_len, d] instead of buffer pe",
        "default length 512",
        "no length check",
    ],
)
class PositionalEncoding(nn.Module):
    def __init__(self, d_model, max_seq_length=512):
        super().__init__()
        angles = torch.tensor(
            [[pos / 10000 ** (2 * (i // 2) / d_model) for i in range(d_model)] for pos in range(max_seq_length)]
        )
        angles[:, 0::2] = torch.sin(angles[:, 0::2])
        angles[:, 1::2] = torch.cos(angles[:, 1::2])
        self.pos_encode = angles

    def forward(self, x):
        return x + self.pos_encode[: x.size(1), :].unsqueeze(0).to(x.device)


@case(
    "Encoder",
    "variant",
    source=MODEL,
    why="a final LayerNorm after the last layer (the pre-norm recipe), which the contract's post-norm Encoder "
    "does not have",
    expect=r"final (layer ?norm|norm)|(extra|additional) (layer ?norm|norm)|(layer ?norm|norm)\b.{0,40}"
    r"(after|end of|on top of) the (last layer|stack|layers)|pre-?norm",
    pattern="(Adapted: built from the contract's parts; the original's layers are pre-norm and it uses its own "
    "sinusoid.) embedding = TokenEmbedding, positional encoding, dropout, layers of EncoderLayer, and a "
    "layer_norm = nn.LayerNorm(d_model) applied to the output of the last layer.",
    differences=["final LayerNorm after the stack"],
)
class Encoder(nn.Module):
    def __init__(self, vocab_size, d_model=512, num_layers=6, num_heads=8, d_ff=2048, dropout=0.1, max_seq_length=5000):
        super().__init__()
        self.embedding = TokenEmbedding(vocab_size, d_model)
        self.positional_encoding = PositionalEncoding(d_model, max_seq_length)
        self.dropout = nn.Dropout(dropout)
        self.layers = nn.ModuleList([EncoderLayer(d_model, num_heads, d_ff, dropout) for _ in range(num_layers)])
        self.layer_norm = nn.LayerNorm(d_model)

    def forward(self, src, src_mask=None):
        x = self.dropout(self.positional_encoding(self.embedding(src)))
        for layer in self.layers:
            x = layer(x, src_mask)
        return self.layer_norm(x)


@case(
    "Decoder",
    "variant",
    source=MODEL,
    why="the embedding is a bare nn.Embedding (padding_idx=0) scaled by sqrt(d_model) in the decoder's forward, "
    "not a TokenEmbedding: same maths, but the contract's `embedding: TokenEmbedding` (and its state_dict key "
    "embedding.embedding.weight) is missing",
    expect=r"TokenEmbedding|embedding\.embedding|state.?dict|(missing|unexpected) keys?",
    pattern="(Adapted: the contract's DecoderLayers and positional encoding; the original's layers are "
    "pre-norm.) input embedding nn.Embedding(vocab, d, padding_idx=pad) stored as `embedding`; forward: "
    "embedding(tgt) * d_model ** 0.5, positional encoding, dropout, the layers; no final norm (the original has "
    "it commented out).",
    differences=["bare nn.Embedding with padding_idx instead of TokenEmbedding, scaled in the decoder"],
)
class Decoder(nn.Module):
    def __init__(self, vocab_size, d_model=512, num_layers=6, num_heads=8, d_ff=2048, dropout=0.1, max_seq_length=5000):
        super().__init__()
        self.d_model = d_model
        self.embedding = nn.Embedding(vocab_size, d_model, padding_idx=0)
        self.positional_encoding = PositionalEncoding(d_model, max_seq_length)
        self.dropout = nn.Dropout(dropout)
        self.layers = nn.ModuleList([DecoderLayer(d_model, num_heads, d_ff, dropout) for _ in range(num_layers)])

    def forward(self, tgt, encoder_output, src_mask=None, tgt_mask=None):
        x = self.dropout(self.positional_encoding(self.embedding(tgt) * self.d_model**0.5))
        for layer in self.layers:
            x = layer(x, encoder_output, src_mask, tgt_mask)
        return x


@case(
    "Transformer",
    "buggy",
    source=MODEL,
    why="the output layer is its own nn.Linear: tied to the decoder's embedding only when "
    "share_decoder_embeddings=True, which defaults to False (section 3.4 ties them)",
    expect=r"\btie|\btied|tying|shar(e|ed|es|ing)\b.{0,40}(weight|embedding|matrix)|same (tensor|weight|"
    r"parameter|matrix)|is not the decoder'?s? embedding",
    pattern="(Adapted: built from the contract's Encoder and Decoder; the original uses its own pre-norm ones and "
    "True = padding masks.) generator = nn.Linear(d, V_tgt); Xavier-uniform on every parameter with more than one "
    "dimension; then, only if share_decoder_embeddings (default False), generator.weight = the decoder's "
    "embedding weight; share_embeddings ties the encoder's embedding to the decoder's. forward builds its masks "
    "with create_masks(src, tgt, pad_idx).",
    differences=["generator not tied to the decoder embedding by default"],
)
class Transformer(nn.Module):
    def __init__(
        self,
        src_vocab_size,
        tgt_vocab_size,
        d_model=512,
        num_layers=6,
        num_heads=8,
        d_ff=2048,
        dropout=0.1,
        max_seq_length=5000,
        pad_idx=0,
        share_embeddings=False,
        share_decoder_embeddings=False,
    ):
        super().__init__()
        self.pad_idx = pad_idx
        sizes = dict(
            d_model=d_model,
            num_layers=num_layers,
            num_heads=num_heads,
            d_ff=d_ff,
            dropout=dropout,
            max_seq_length=max_seq_length,
        )
        self.encoder = ReferenceEncoder(src_vocab_size, **sizes)
        self.decoder = ReferenceDecoder(tgt_vocab_size, **sizes)
        self.generator = nn.Linear(d_model, tgt_vocab_size)
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)
        if share_decoder_embeddings:
            self.generator.weight = self.decoder.embedding.embedding.weight
        if share_embeddings:
            self.encoder.embedding.embedding.weight = self.decoder.embedding.embedding.weight

    def encode(self, src, src_mask=None):
        return self.encoder(src, src_mask)

    def decode(self, tgt, memory, src_mask=None, tgt_mask=None):
        return self.decoder(tgt, memory, src_mask, tgt_mask)

    def forward(self, src, tgt):
        src_mask, tgt_mask = create_masks(src, tgt, self.pad_idx)
        return self.generator(self.decode(tgt, self.encode(src, src_mask), src_mask, tgt_mask))


@case(
    "LabelSmoothingLoss",
    "buggy",
    source=dict(repo=REPO, path="simplenmt/train/loss.py", commit="27f4f567826962fc7452b43d80ced67099076ebd"),
    why="returns a pair (smoothed loss, nll loss) instead of one scalar, and spreads the smoothing over the "
    "V-1 other classes (the target gets exactly 1 - smoothing)",
    expect=r"tuple|pair|two (values|tensors|things|results)|V ?- ?1|other classes",
    pattern="(Adapted: the original's constructor is (label_smoothing, ignore_index, reduction='mean') with no "
    "defaults and 2-D input; here (smoothing=0.1, ignore_index=0, reduction='mean') and flattened logits.) "
    "weight = one_hot * (1 - s) + (1 - one_hot) * s / (V - 1); loss = -(weight * log_softmax).sum(-1), nll = "
    "-(one_hot * log_softmax).sum(-1); both averaged over targets != ignore_index; returns (loss, nll).",
    differences=["returns (loss, nll_loss)", "smoothing over V-1 other classes"],
)
class LabelSmoothingLoss(nn.Module):
    def __init__(self, smoothing=0.1, ignore_index=0, reduction="mean"):
        super().__init__()
        self.label_smoothing = smoothing
        self.ignore_index = ignore_index
        self.reduction = reduction

    def forward(self, logits, target):
        vocab = logits.size(-1)
        x = logits.reshape(-1, vocab)
        t = target.reshape(-1)
        one_hot = torch.zeros_like(x).scatter(1, t.unsqueeze(-1), 1)
        weight = one_hot * (1 - self.label_smoothing) + (1 - one_hot) * self.label_smoothing / (vocab - 1)
        log_probs = F.log_softmax(x, dim=-1)
        loss = -(weight * log_probs).sum(dim=-1)
        nll = -(one_hot * log_probs).sum(dim=-1)
        keep = t.ne(self.ignore_index)
        if self.reduction == "mean":
            return loss.masked_select(keep).mean(), nll.masked_select(keep).mean()
        return loss.masked_select(keep).sum(), nll.masked_select(keep).sum()


@case(
    "TransformerLRScheduler",
    "buggy",
    source=dict(repo=REPO, path="simplenmt/train/optim.py", commit="67f3e7d303b7a1e89cca4e5f210d9d90b8ade360"),
    why="an optimizer wrapper: step() also runs optimizer.step(), the constructor is (optimizer, lr_scale, "
    "d_model, warmup_steps) with no defaults, there is no get_lr(step), and step() returns nothing",
    expect=r"optimizer\.step|steps the optimizer|(calls|runs|takes)\b.{0,30}optimizer'?s? (own )?step|lr_scale|"
    r"get_lr",
    pattern="Constructor (optimizer, lr_scale, d_model, warmup_steps); n_steps = 0, the optimizer's rate is "
    "not touched. step(): n_steps += 1, rate = d_model^-0.5 * min(n^-0.5, n * warmup^-1.5), every group's lr "
    "= lr_scale * rate, then optimizer.step(); returns None. zero_grad() forwards to the optimizer; "
    "param_groups is a property. No get_lr.",
    differences=[
        "step() steps the optimizer",
        "(optimizer, lr_scale, d_model, warmup_steps) order, no defaults",
        "no get_lr",
        "step() returns None",
        "no rate set at construction",
    ],
)
class TransformerLRScheduler:
    def __init__(self, optimizer, lr_scale, d_model, warmup_steps):
        self._optimizer = optimizer
        self.lr_scale = lr_scale
        self.d_model = d_model
        self.warmup_steps = warmup_steps
        self.n_steps = 0

    def zero_grad(self):
        self._optimizer.zero_grad()

    def step(self):
        self.n_steps += 1
        rate = self.d_model**-0.5 * min(self.n_steps**-0.5, self.n_steps * self.warmup_steps**-1.5)
        for group in self._optimizer.param_groups:
            group["lr"] = self.lr_scale * rate
        self._optimizer.step()

    @property
    def param_groups(self):
        return self._optimizer.param_groups


@case(
    "greedy_decode",
    "buggy",
    source=dict(repo=REPO, path="simplenmt/translate/algorithms.py", commit="03a8d86174f4c97d8aeda5b84ce1ac235d538658"),
    why="a row that has emitted end_idx keeps receiving argmax tokens (it is never padded with pad_idx), and when "
    "every row has finished the loop stops BEFORE appending the last end token",
    expect=r"(not|never|isn't|aren't)\b.{0,40}\bpad|pad(ded|ding)?\b.{0,40}after (the |its )?end|finished rows?"
    r".{0,60}(pad|keep|continue|go on)|(last|final) end token|end token.{0,40}(missing|dropped|not appended)",
    pattern="(Adapted to the contract's interface; the original calls model.encoder / model.decoder / "
    "out_vocab_proj with True = padding masks and no future mask.) ys = [[start]] * B; next = argmax of the "
    "first step; then for step in 2 .. max_len-1: done |= (next == end); if every row is done, stop (next is "
    "dropped); else append next to ys and compute the next argmax. Finished rows go on getting tokens; at most "
    "max_len - 1 columns.",
    differences=["finished rows not padded", "the final end token is not appended", "at most max_len - 1 tokens"],
)
@torch.no_grad()
def greedy_decode(model, src, max_len, start_idx, end_idx, pad_idx=0):
    src_mask = reference_padding_mask(src, pad_idx)
    memory = model.encode(src, src_mask)

    def next_tokens(ys):
        hidden = model.decode(ys, memory, src_mask, reference_future_mask(ys.size(1), device=src.device))
        return F.log_softmax(model.generator(hidden[:, -1]), dim=-1).topk(1).indices  # [B, 1]

    ys = torch.full((src.size(0), 1), start_idx, dtype=torch.long, device=src.device)
    done = torch.zeros(src.size(0), dtype=torch.bool, device=src.device)
    best = next_tokens(ys)
    for _ in range(2, max_len):
        done = done | best.eq(end_idx).squeeze(1)
        if bool(done.all()):
            break
        ys = torch.cat((ys, best), dim=1)
        best = next_tokens(ys)
    return ys
