"""One training step (forward + backward + Adam) of the reference Transformer against nn.Transformer.

Both models get the same sizes, the same embeddings + sinusoidal positions, the same tied output
layer and the same batch; steps alternate between the two so machine noise hits both alike.
Prints tokens per second of each and the ratio (reference / nn.Transformer). Target: >= 0.95x on CPU.

    python benchmarks/bench_model.py [--d-model 256 --layers 3 --batch 32 --len 32 --steps 20]
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import torch
import torch.nn as nn

from solutions import PositionalEncoding, Transformer


class TorchTransformer(nn.Module):
    """nn.Transformer with the reference's embeddings, positions and tied generator around it.

    Note: nn.Transformer adds a final LayerNorm after each stack (the reference, like the paper,
    has none): two extra norms, a negligible cost.
    """

    def __init__(self, vocab: int, d_model: int, layers: int, heads: int, d_ff: int, dropout: float) -> None:
        super().__init__()
        self.d_model = d_model
        self.embedding = nn.Embedding(vocab, d_model)
        self.positional_encoding = PositionalEncoding(d_model, 512)
        self.dropout = nn.Dropout(dropout)
        self.transformer = nn.Transformer(d_model, heads, layers, layers, d_ff, dropout, batch_first=True)
        self.generator = nn.Linear(d_model, vocab)
        self.generator.weight = self.embedding.weight

    def embed(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.positional_encoding(self.embedding(tokens) * math.sqrt(self.d_model)))

    def forward(self, src: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
        causal = nn.Transformer.generate_square_subsequent_mask(tgt.size(1), dtype=torch.bool)
        out = self.transformer(
            self.embed(src),
            self.embed(tgt),
            tgt_mask=causal,
            src_key_padding_mask=src == 0,
            tgt_key_padding_mask=tgt == 0,
            memory_key_padding_mask=src == 0,
            tgt_is_causal=True,
        )
        return self.generator(out)


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, src: torch.Tensor, tgt: torch.Tensor) -> None:
    logits = model(src, tgt[:, :-1])
    loss = nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)), tgt[:, 1:].reshape(-1), ignore_index=0)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vocab", type=int, default=8000)
    parser.add_argument("--d-model", type=int, default=256)
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--d-ff", type=int, default=1024)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--len", type=int, default=32)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()

    torch.manual_seed(0)
    ours = Transformer(
        args.vocab,
        args.vocab,
        args.d_model,
        args.layers,
        args.heads,
        args.d_ff,
        0.1,
        max_seq_length=512,
        share_embeddings=True,
    ).train()
    theirs = TorchTransformer(args.vocab, args.d_model, args.layers, args.heads, args.d_ff, 0.1).train()
    n_ours = sum(p.numel() for p in ours.parameters())
    n_theirs = sum(p.numel() for p in theirs.parameters())
    opts = {
        name: torch.optim.Adam(m.parameters(), lr=1e-4, betas=(0.9, 0.98), eps=1e-9)
        for name, m in (("reference", ours), ("nn.Transformer", theirs))
    }
    models = {"reference": ours, "nn.Transformer": theirs}

    src = torch.randint(3, args.vocab, (args.batch, args.len))
    tgt = torch.randint(3, args.vocab, (args.batch, args.len + 1))
    src[: args.batch // 4, -args.len // 4 :] = 0  # some padding, as in real batches
    tokens = int((tgt[:, 1:] != 0).sum())

    for name in models:  # warm-up
        for _ in range(2):
            train_step(models[name], opts[name], src, tgt)
    times: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(args.steps):
        for name in models:
            start = time.perf_counter()
            train_step(models[name], opts[name], src, tgt)
            times[name].append(time.perf_counter() - start)

    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; d_model={args.d_model}, "
        f"layers={args.layers}, heads={args.heads}, d_ff={args.d_ff}, batch={args.batch}x{args.len}"
    )
    print(f"parameters: reference {n_ours / 1e6:.2f}M, nn.Transformer {n_theirs / 1e6:.2f}M")
    speed = {}
    for name, ts in times.items():
        speed[name] = tokens / statistics.median(ts)
        print(
            f"{name:>15}: {statistics.median(ts) * 1000:7.1f} ms/step (median of {len(ts)}), "
            f"{speed[name]:8.0f} target tokens/s"
        )
    print(f"ratio reference / nn.Transformer: {speed['reference'] / speed['nn.Transformer']:.2f}x (target >= 0.95x)")


if __name__ == "__main__":
    main()
