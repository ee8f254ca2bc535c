"""Issue 22 ("the checker on code nobody here has seen"): thirteen mistakes the issue reports, each
modelled on a public file with that pattern (or, where none was found quickly, on the closest real file
and the issue report, as its ``pattern`` says), and the correct spellings the new checks must still pass.

Each case reproduces, in our own code, the behaviour its ``pattern`` describes; no code is copied. The
parts a composite case uses are the reference's (imported from ``solutions`` under the contract's
names); the single-part cases have names of their own so that they do not shadow them.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from solutions import DecoderLayer as ReferenceDecoderLayer
from solutions import (
    EncoderLayer,
    FeedForwardNetwork,
    LayerNorm,
    MultiHeadAttention,
    PositionalEncoding,
    TokenEmbedding,
)

from . import PASSES, case

ANNOTATED = dict(
    repo="harvardnlp/annotated-transformer",
    path="the_annotated_transformer.py",
    commit="debc9fd747bb2123160a98046ad1c2d4da44a567",
)
CONV_FFN = dict(
    repo="CerryXu/pytorch-transformer",
    path="model/competition/positional_wise_feed_forward.py",
    commit="d5cf0f7c33e26e8477526ab37b494215d4364c7c",
)
FAIRSEQ = dict(
    repo="facebookresearch/fairseq",
    path="fairseq/modules/sinusoidal_positional_embedding.py",
    commit="05625e3e6e660909e4df833de1f7b49019496a68",
)
WENET = dict(
    repo="wenet-e2e/wenet",
    path="wenet/transformer/label_smoothing_loss.py",
    commit="decd0cf41b52abb230f6e3e5a3b4179eefc3e2c4",
)
SHARED_LAYERS = dict(
    repo="nbdaaa/Transformer", path="transformer/layers/decoder.py", commit="8b99038a71a1c66106a3c7608b85a487981c2dd0"
)


# ---------------------------------------------------------------------------------------------- 1: dropout
@case(
    "DecoderLayer",
    "buggy",
    source=ANNOTATED,
    why="dropout applied twice to the self-attention output and not at all to the feed-forward output",
    expect=r"self-attention[\s\S]{0,200}twice[\s\S]{0,400}feed-forward[\s\S]{0,120}(no|not|without) dropout",
    pattern="(Modelled on the issue report; the closest real file is the Annotated Transformer's decoder layer.) "
    "Post-norm layer with one nn.Dropout: the self-attention output goes through the dropout once when "
    "computed and once more in norm1(x + dropout(attn)); the cross-attention output once; the feed-forward "
    "output is added with no dropout: norm3(x + feed_forward(x)). In eval mode it equals the contract's layer.",
    differences=["dropout twice on the self-attention output", "no dropout on the feed-forward output"],
    suffix="dropout-misplaced",
)
class DecoderLayerDropoutTwice(nn.Module):
    def __init__(self, d_model, num_heads, d_ff, dropout=0.1):
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, num_heads)
        self.cross_attn = MultiHeadAttention(d_model, num_heads)
        self.feed_forward = FeedForwardNetwork(d_model, d_ff)
        self.norm1, self.norm2, self.norm3 = LayerNorm(d_model), LayerNorm(d_model), LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x, encoder_output, src_mask=None, tgt_mask=None):
        attended = self.dropout(self.self_attn(x, x, x, tgt_mask))
        x = self.norm1(x + self.dropout(attended))
        x = self.norm2(x + self.dropout(self.cross_attn(x, encoder_output, encoder_output, src_mask)))
        return self.norm3(x + self.feed_forward(x))


@case(
    "DecoderLayer",
    "correct",
    source=ANNOTATED,
    why="three dropout modules of its own (dropout1/2/3), one on each sub-layer's output: the paper's placement",
    expect=PASSES,
    pattern="(Modelled on the issue report.) Post-norm layer with dropout1, dropout2, dropout3 = nn.Dropout(p) "
    "and no `dropout` attribute: norm_k(x + dropout_k(sublayer_k(x))) for the three sub-layers.",
    differences=["separate dropout modules dropout1/2/3 instead of one `dropout`"],
    suffix="three-dropouts",
)
class DecoderLayerThreeDropouts(nn.Module):
    def __init__(self, d_model, num_heads, d_ff, dropout=0.1):
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, num_heads)
        self.cross_attn = MultiHeadAttention(d_model, num_heads)
        self.feed_forward = FeedForwardNetwork(d_model, d_ff)
        self.norm1, self.norm2, self.norm3 = LayerNorm(d_model), LayerNorm(d_model), LayerNorm(d_model)
        self.dropout1, self.dropout2, self.dropout3 = nn.Dropout(dropout), nn.Dropout(dropout), nn.Dropout(dropout)

    def forward(self, x, encoder_output, src_mask=None, tgt_mask=None):
        x = self.norm1(x + self.dropout1(self.self_attn(x, x, x, tgt_mask)))
        x = self.norm2(x + self.dropout2(self.cross_attn(x, encoder_output, encoder_output, src_mask)))
        return self.norm3(x + self.dropout3(self.feed_forward(x)))


@case(
    "EncoderLayer",
    "correct",
    source=ANNOTATED,
    why="functional dropout F.dropout(t, self.dropout.p, self.training) on each sub-layer's output",
    expect=PASSES,
    pattern="(Modelled on the issue report.) Post-norm encoder layer that keeps an nn.Dropout only for its rate "
    "and applies F.dropout(sublayer(x), p=self.dropout.p, training=self.training) before each residual add.",
    differences=["functional dropout with the module's rate"],
    suffix="functional-dropout",
)
class EncoderLayerFunctionalDropout(nn.Module):
    def __init__(self, d_model, num_heads, d_ff, dropout=0.1):
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, num_heads)
        self.feed_forward = FeedForwardNetwork(d_model, d_ff)
        self.norm1, self.norm2 = LayerNorm(d_model), LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)

    def _drop(self, t):
        return F.dropout(t, p=self.dropout.p, training=self.training)

    def forward(self, x, mask=None):
        x = self.norm1(x + self._drop(self.self_attn(x, x, x, mask)))
        return self.norm2(x + self._drop(self.feed_forward(x)))


# ---------------------------------------------------------------------------------------------- 2: FFN unused
@case(
    "EncoderLayer",
    "buggy",
    source=ANNOTATED,
    why="the feed-forward output is computed but never added: norm2(x + dropout(x))",
    expect=r"feed-forward[\s\S]{0,200}(does not contribute|never (used|reaches)|no effect|not used|thrown away)",
    pattern="(Modelled on the issue report.) Post-norm encoder layer whose second sub-layer computes "
    "ff = feed_forward(x) and then returns norm2(x + dropout(x)): the feed-forward result is discarded "
    "(the residual adds x to itself).",
    differences=["the feed-forward output is discarded"],
    suffix="ffn-discarded",
)
class EncoderLayerFfnDiscarded(nn.Module):
    def __init__(self, d_model, num_heads, d_ff, dropout=0.1):
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, num_heads)
        self.feed_forward = FeedForwardNetwork(d_model, d_ff)
        self.norm1, self.norm2 = LayerNorm(d_model), LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x, mask=None):
        x = self.norm1(x + self.dropout(self.self_attn(x, x, x, mask)))
        ff = self.feed_forward(x)  # noqa: F841 - the mistake: computed, never used
        return self.norm2(x + self.dropout(x))


# ---------------------------------------------------------------------------------------------- 3: smoothing
@case(
    "LabelSmoothingLoss",
    "buggy",
    source=WENET,
    why="smoothing spread as s/(V-1) over every class but with the padding column set to zero",
    expect=r"V-1[\s\S]{0,120}padding (column|class)",
    reject=r"V-2",
    pattern="(The file spreads smoothing / (size - 1); zeroing the padding column on top of it is modelled on the "
    "issue report.) Target distribution: smoothing / (V - 1) on every class, the padding column then set to 0, "
    "1 - smoothing on the target; cross-entropy -(q * log_softmax(logits)).sum(-1), mean over the non-padding "
    "tokens.",
    differences=["s/(V-1) spread", "padding column zeroed"],
    suffix="v-1-pad-zeroed",
)
class LabelSmoothingVMinus1PadZeroed(nn.Module):
    def __init__(self, smoothing=0.1, ignore_index=0):
        super().__init__()
        self.smoothing, self.ignore_index = smoothing, ignore_index

    def forward(self, logits, target):
        v = logits.size(-1)
        logp = torch.log_softmax(logits.reshape(-1, v), dim=-1)
        target = target.reshape(-1)
        q = torch.full_like(logp, self.smoothing / (v - 1))
        q[:, self.ignore_index] = 0.0
        q = q.scatter(1, target[:, None], 1.0 - self.smoothing)
        keep = target != self.ignore_index
        return -(q * logp).sum(-1)[keep].mean()


# ---------------------------------------------------------------------------------------------- 4, 5: FFN shapes
@case(
    "FeedForwardNetwork",
    "variant",
    source=CONV_FFN,
    why="W_1 and W_2 are nn.Conv1d(kernel_size=1) on [B, d, S] (weights [d_ff, d, 1]) instead of nn.Linear",
    expect=r"Conv1d[\s\S]{0,300}nn\.Linear|nn\.Linear[\s\S]{0,300}Conv1d",
    pattern="W_1 = nn.Conv1d(d_model, d_ff, 1), W_2 = nn.Conv1d(d_ff, d_model, 1); forward transposes x to "
    "[B, d, S], applies W_2(relu(W_1(.))) and transposes back. The same function as the contract's, but the "
    "weights are [d_ff, d_model, 1] and [d_model, d_ff, 1], and inputs must be 3-D.",
    differences=["Conv1d with kernel size 1 instead of nn.Linear", "3-D inputs only"],
    suffix="conv1d",
)
class FeedForwardConv1d(nn.Module):
    def __init__(self, d_model, d_ff):
        super().__init__()
        self.W_1 = nn.Conv1d(d_model, d_ff, kernel_size=1)
        self.W_2 = nn.Conv1d(d_ff, d_model, kernel_size=1)

    def forward(self, x):
        return self.W_2(torch.relu(self.W_1(x.transpose(1, 2)))).transpose(1, 2)


@case(
    "FeedForwardNetwork",
    "buggy",
    source=ANNOTATED,
    why="the hidden width is 4 * d_model whatever d_ff is given",
    expect=r"4 ?\* ?d_model[\s\S]{0,200}d_ff|d_ff[\s\S]{0,200}4 ?\* ?d_model",
    pattern="(Modelled on the issue report; GPT-style code fixes the hidden width at 4 * d_model.) Constructor "
    "(d_model, d_ff) that ignores d_ff: W_1 = nn.Linear(d_model, 4 * d_model), W_2 = nn.Linear(4 * d_model, "
    "d_model); forward W_2(relu(W_1(x))).",
    differences=["hidden width 4 * d_model instead of d_ff"],
    suffix="four-d-model",
)
class FeedForwardFourDModel(nn.Module):
    def __init__(self, d_model, d_ff):
        super().__init__()
        self.W_1 = nn.Linear(d_model, 4 * d_model)
        self.W_2 = nn.Linear(4 * d_model, d_model)

    def forward(self, x):
        return self.W_2(torch.relu(self.W_1(x)))


# ---------------------------------------------------------------------------------------------- 6, 7: tables
def _paper_table(n, d):
    pos = torch.arange(n, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, d, 2, dtype=torch.float32) * -(math.log(10000.0) / d))
    table = torch.zeros(n, d)
    table[:, 0::2] = torch.sin(pos * freq)
    table[:, 1::2] = torch.cos(pos * freq)
    return table


@case(
    "PositionalEncoding",
    "buggy",
    source=FAIRSEQ,
    why="a table of max_seq_length + 1 rows whose row 0 is kept aside: positions start at 1",
    expect=r"max_seq_length ?\+ ?1[\s\S]{0,400}(position 1|start at 1|from 1)",
    pattern="(fairseq offsets positions past a padding index; this simpler spelling is modelled on the issue "
    "report.) pe holds the paper's table for positions 0..max_seq_length ([1, max_seq_length + 1, d]); forward "
    "checks S against max_seq_length and returns x + pe[:, 1:S + 1]: the first token gets position 1.",
    differences=["max_seq_length + 1 rows", "positions start at 1"],
    suffix="rows-from-one",
)
class PositionalEncodingFromOne(nn.Module):
    def __init__(self, d_model, max_seq_length=5000):
        super().__init__()
        self.max_seq_length = max_seq_length
        self.register_buffer("pe", _paper_table(max_seq_length + 1, d_model)[None])

    def forward(self, x):
        if x.size(1) > self.max_seq_length:
            raise ValueError(f"sequence of length {x.size(1)} is longer than max_seq_length={self.max_seq_length}")
        return x + self.pe[:, 1 : x.size(1) + 1]


@case(
    "PositionalEncoding",
    "variant",
    source=FAIRSEQ,
    why="fairseq's layout: all sines (features 0..d/2-1), then all cosines, with frequencies "
    "exp(-k * ln(10000) / (d/2 - 1))",
    expect=r"(first half|all the sines|sines first)[\s\S]{0,300}(interleave|2i\+1|odd)",
    pattern="half = d // 2; step = ln(10000) / (half - 1); frequencies exp(-k * step) for k < half; the table "
    "is cat([sin(pos * f), cos(pos * f)], dim=1): columns 0..half-1 sines, half..d-1 cosines (tensor2tensor's "
    "layout, not interleaved); buffer pe [1, max_seq_length, d]; forward adds pe[:, :S] after a length check.",
    differences=["sines then cosines, concatenated", "frequency step ln(10000)/(d/2 - 1)"],
    suffix="fairseq-layout",
)
class PositionalEncodingConcatenated(nn.Module):
    def __init__(self, d_model, max_seq_length=5000):
        super().__init__()
        self.max_seq_length = max_seq_length
        half = d_model // 2
        freq = torch.exp(torch.arange(half, dtype=torch.float32) * -(math.log(10000.0) / (half - 1)))
        angles = torch.arange(max_seq_length, dtype=torch.float32)[:, None] * freq[None, :]
        self.register_buffer("pe", torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)[None])

    def forward(self, x):
        if x.size(1) > self.max_seq_length:
            raise ValueError(f"sequence of length {x.size(1)} is longer than max_seq_length={self.max_seq_length}")
        return x + self.pe[:, : x.size(1)]


# ---------------------------------------------------------------------------------------------- 8, 11: schedulers
def _noam(step, d_model, warmup, factor):
    return factor * d_model**-0.5 * min(step**-0.5, step * warmup**-1.5)


@case(
    "TransformerLRScheduler",
    "buggy",
    source=ANNOTATED,
    why="LambdaLR-style: the rate is the optimizer's initial lr times the schedule of step + 1",
    expect=r"(optimizer's (initial|own|starting)|initial (lr|learning rate)|built with)[\s\S]{0,400}"
    r"(off by one|step \+ ?1)|(off by one|step \+ ?1)[\s\S]{0,400}"
    r"(optimizer's (initial|own|starting)|initial (lr|learning rate)|built with)",
    pattern="(Modelled on the Annotated Transformer's LambdaLR(optimizer, lr_lambda=...) use, written as a class, "
    "and on the issue report.) The constructor keeps base_lrs = the optimizer's lr of each group; "
    "get_lr(step) = base_lrs[0] * f(step + 1) with f equation 3 (the lambda counts from 0 and adds 1); "
    "step(step_num=None) advances a counter from 0 (first call: 1), writes base_lr * f(step + 1) into every "
    "group and returns it.",
    differences=["multiplied by the optimizer's initial lr", "f(step + 1): off by one"],
    suffix="base-lr-times-next",
)
class LambdaStyleScheduler:
    def __init__(self, optimizer, d_model, warmup_steps=4000, factor=1.0):
        self.optimizer = optimizer
        self.d_model, self.warmup_steps, self.factor = d_model, warmup_steps, factor
        self.base_lrs = [group["lr"] for group in optimizer.param_groups]
        self.last_step = 0

    def _lambda(self, step):
        return _noam(step + 1, self.d_model, self.warmup_steps, self.factor)

    def get_lr(self, step_num):
        return self.base_lrs[0] * self._lambda(step_num)

    def step(self, step_num=None):
        self.last_step = self.last_step + 1 if step_num is None else step_num
        for group, base in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = base * self._lambda(self.last_step)
        return self.optimizer.param_groups[0]["lr"]


@case(
    "TransformerLRScheduler",
    "buggy",
    source=ANNOTATED,
    why="an optimizer wrapper whose rate never changes (the peak rate, set once) and whose step() steps the optimizer",
    expect=r"(never changes|does not change|constant|same rate)",
    pattern="(Modelled on the Annotated Transformer's NoamOpt wrapper and on the issue report.) The constructor "
    "sets every group's lr to factor * d_model^-0.5 * warmup^-0.5 (the peak of equation 3) once; get_lr(step) "
    "returns that number for every step; step(step_num=None) calls optimizer.step() and returns it.",
    differences=["constant rate", "step() steps the optimizer"],
    suffix="constant-wrapper",
)
class ConstantRateWrapper:
    def __init__(self, optimizer, d_model, warmup_steps=4000, factor=1.0):
        self.optimizer = optimizer
        self.rate = factor * d_model**-0.5 * warmup_steps**-0.5
        for group in optimizer.param_groups:
            group["lr"] = self.rate

    def get_lr(self, step_num):
        return self.rate

    def step(self, step_num=None):
        self.optimizer.step()
        return self.rate


# ---------------------------------------------------------------------------------------------- 9: greedy
@torch.no_grad()
def _greedy_padded_to_max_len(model, src, max_len, start_idx, end_idx, pad_idx=0):
    src_mask = (src != pad_idx)[:, None, None, :]
    memory = model.encode(src, src_mask)
    ys = torch.full((src.size(0), 1), start_idx, dtype=torch.long, device=src.device)
    done = torch.zeros(src.size(0), dtype=torch.bool, device=src.device)
    while ys.size(1) < max_len and not done.all():
        t = ys.size(1)
        future = torch.tril(torch.ones(t, t, dtype=torch.bool, device=src.device))[None, None]
        tgt_mask = (ys != pad_idx)[:, None, None, :] & future
        logits = model.generator(model.decode(ys, memory, src_mask, tgt_mask)[:, -1])
        nxt = logits.argmax(-1).masked_fill(done, pad_idx)
        ys = torch.cat([ys, nxt[:, None]], dim=1)
        done = done | (nxt == end_idx)
    return F.pad(ys, (0, max_len - ys.size(1)), value=pad_idx)  # the mistake: a fixed-width batch


greedy_padded_to_max_len = case(
    "greedy_decode",
    "buggy",
    source=ANNOTATED,
    why="stops decoding when every row has finished, then pads the output with pad_idx up to max_len",
    expect=r"(pads?|padded|padding)[\s\S]{0,200}max_len",
    reject=r"keeps going after every row has finished",
    pattern="(Modelled on the issue report; the Annotated Transformer's greedy_decode is the closest file.) "
    "Batched greedy decoding with the contract's masks; a finished row gets pad_idx; the loop stops as soon "
    "as every row has emitted end_idx; the result is then right-padded with pad_idx to exactly max_len "
    "columns (a fixed-width batch), so L is always max_len.",
    differences=["output padded to max_len after an early stop"],
    suffix="padded-to-max-len",
)(_greedy_padded_to_max_len)


# ---------------------------------------------------------------------------------------------- 10: embedding norm
@case(
    "Encoder",
    "buggy",
    source=ANNOTATED,
    why="a LayerNorm on the sum of embeddings and positional encodings (before the layers), none at the end",
    expect=r"(embedding|before the first layer)[\s\S]{0,200}(LayerNorm|norm)|(LayerNorm|norm)[\s\S]{0,200}"
    r"(embeddings|before the first layer)",
    reject=r"after the last layer",
    pattern="(BERT-style embedding norm; modelled on the issue report.) Encoder whose forward is "
    "layers(dropout(norm(positional_encoding(embedding(src))))) with norm = nn.LayerNorm(d_model): a norm on "
    "the embedding path, no norm after the last layer.",
    differences=["LayerNorm on the embeddings"],
    suffix="embedding-norm",
)
class EncoderEmbeddingNorm(nn.Module):
    def __init__(self, vocab_size, d_model=512, num_layers=6, num_heads=8, d_ff=2048, dropout=0.1, max_seq_length=5000):
        super().__init__()
        self.embedding = TokenEmbedding(vocab_size, d_model)
        self.positional_encoding = PositionalEncoding(d_model, max_seq_length)
        self.norm = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)
        self.layers = nn.ModuleList([EncoderLayer(d_model, num_heads, d_ff, dropout) for _ in range(num_layers)])

    def forward(self, src, src_mask=None):
        x = self.dropout(self.norm(self.positional_encoding(self.embedding(src))))
        for layer in self.layers:
            x = layer(x, src_mask)
        return x


# ---------------------------------------------------------------------------------------------- 12: no_grad loss
@case(
    "LabelSmoothingLoss",
    "buggy",
    source=WENET,
    why="the whole loss is computed under torch.no_grad() (no gradient), with the smoothing spread over V-1 classes",
    expect=r"(no_grad|no gradient|not require a gradient|cut off)",
    pattern="(The file spreads smoothing / (size - 1); the torch.no_grad() around the whole loss is modelled on the "
    "issue report.) Inside `with torch.no_grad():` a target distribution smoothing / (V - 1) everywhere and "
    "1 - smoothing on the target, cross-entropy against log_softmax, mean over the non-padding tokens: the "
    "returned loss has no graph.",
    differences=["torch.no_grad() around the loss", "s/(V-1) spread"],
    suffix="no-grad",
)
class LabelSmoothingNoGrad(nn.Module):
    def __init__(self, smoothing=0.1, ignore_index=0):
        super().__init__()
        self.smoothing, self.ignore_index = smoothing, ignore_index

    def forward(self, logits, target):
        with torch.no_grad():
            v = logits.size(-1)
            logp = torch.log_softmax(logits.reshape(-1, v), dim=-1)
            target = target.reshape(-1)
            q = torch.full_like(logp, self.smoothing / (v - 1))
            q = q.scatter(1, target[:, None], 1.0 - self.smoothing)
            keep = target != self.ignore_index
            return -(q * logp).sum(-1)[keep].mean()


# ---------------------------------------------------------------------------------------------- 13: shared layers
@case(
    "Decoder",
    "buggy",
    source=SHARED_LAYERS,
    why="one DecoderLayer object repeated N times (nn.ModuleList([layer] * N)) and a final LayerNorm",
    expect=r"(same|shared|repeat)[\s\S]{0,300}(layer)[\s\S]{0,600}(after the last layer|final)"
    r"|(after the last layer|final)[\s\S]{0,600}(same|shared|repeat)[\s\S]{0,300}layer",
    pattern="One DecoderLayer built once and put N times in nn.ModuleList([layer] * num_layers) (every entry the "
    "same object, one set of weights); the paper's embedding path (scaled embedding, positional encoding, "
    "dropout); forward ends with self.norm = nn.LayerNorm(d_model) after the last layer.",
    differences=["the N layers are one shared object", "a final LayerNorm"],
    suffix="shared-layers",
)
class DecoderSharedLayers(nn.Module):
    def __init__(self, vocab_size, d_model=512, num_layers=6, num_heads=8, d_ff=2048, dropout=0.1, max_seq_length=5000):
        super().__init__()
        self.embedding = TokenEmbedding(vocab_size, d_model)
        self.positional_encoding = PositionalEncoding(d_model, max_seq_length)
        self.dropout = nn.Dropout(dropout)
        layer = ReferenceDecoderLayer(d_model, num_heads, d_ff, dropout)
        self.layers = nn.ModuleList([layer] * num_layers)
        self.norm = nn.LayerNorm(d_model)

    def forward(self, tgt, encoder_output, src_mask=None, tgt_mask=None):
        x = self.dropout(self.positional_encoding(self.embedding(tgt)))
        for layer in self.layers:
            x = layer(x, encoder_output, src_mask, tgt_mask)
        return self.norm(x)
