"""Training benchmarks: the default `workbook train` run, and training throughput of the assembled
reference model against the same model with PyTorch's fused attention.

    python benchmarks/bench_training.py                 # both
    python benchmarks/bench_training.py --skip-default  # throughput only
    python benchmarks/bench_training.py --device cuda   # throughput on a GPU, with and without AMP

1. Default run: exactly `workbook train` (built-in numbers task, reference parts); prints held-out
   exact match, chrF, wall time and process CPU time (the CPU is often shared: the load average is
   printed too, and the CPU time is what the run itself used).
2. Throughput: target tokens per second of training steps (forward, backward, Adam) on the same
   batches, for the contract's attention (``softmax(QK^T/sqrt(d_k)) V`` written out, weights kept for
   plots) and for ``F.scaled_dot_product_attention``; the two are run alternately, several rounds,
   and the median is reported. On CUDA each is measured in float32 and in mixed precision.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from dataclasses import replace

import torch

from solutions.pipeline.batching import collate, make_batches
from solutions.pipeline.bpe import PAD_IDX, train_bpe
from solutions.pipeline.builtin_task import numbers_corpus
from solutions.pipeline.train import (
    MAX_TOKENS_PER_SENTENCE,
    TrainConfig,
    autocast_and_scaler,
    cpu_threads,
    encode_pairs,
    model_kwargs,
    pick_device,
    train,
)
from workbook.assembly import assemble


def default_run(threads: int | None) -> None:
    load = os.getloadavg()
    started, cpu_started = time.perf_counter(), time.process_time()
    result = train(replace(TrainConfig(), out_dir="runs/bench-default", threads=threads), progress=False)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    print("\n=== default `workbook train` (numbers task) ===")
    print(
        f"held-out exact match {result.test['exact_match']:.1%} on {len(result.examples)} numbers never seen "
        f"in training; chrF {result.test['chrf']:.1f}; {result.step} steps"
    )
    print(
        f"wall time {wall / 60:.2f} min (whole run: data, BPE, training, evaluation, plots); process CPU time "
        f"{cpu / 60:.2f} min; torch threads {torch.get_num_threads()}; load average before {load}, "
        f"after {os.getloadavg()}"
    )


def throughput(device: torch.device, steps: int, rounds: int, config: TrainConfig) -> None:
    corpus = numbers_corpus(num_train=4000)
    tokenizer = train_bpe((t for pair in corpus.train for t in pair), config.vocab_size)
    examples = encode_pairs(tokenizer, corpus.train)
    batches = make_batches([(len(s), len(t)) for s, t in examples], config.max_tokens, seed=0, epoch=0)
    batches = [collate([examples[i] for i in b]) for b in batches[: steps + 3]]
    vocab = tokenizer.get_vocab_size()
    precisions = [False, True] if device.type == "cuda" else [False]

    def run(attention: str, amp: bool) -> float:
        torch.manual_seed(0)
        assembly = assemble(use_learner=False, attention=attention)
        model = assembly.model(vocab, vocab, **model_kwargs(config, MAX_TOKENS_PER_SENTENCE)).to(device).train()
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-4, betas=(0.9, 0.98), eps=1e-9)
        criterion = assembly.LabelSmoothingLoss(0.1, PAD_IDX)
        autocast, scaler, _ = autocast_and_scaler(device, amp)
        tokens, clock = 0, None
        for i, batch in enumerate(batches):
            if i == 3:  # the first steps warm up kernels and allocators
                if device.type == "cuda":
                    torch.cuda.synchronize()
                clock, tokens = time.perf_counter(), 0
            src, tgt_in, tgt_out = (batch[k].to(device) for k in ("src", "tgt_in", "tgt_out"))
            with autocast():
                loss = criterion(model(src, tgt_in).float(), tgt_out)
            optimizer.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
            else:
                loss.backward()
                optimizer.step()
            tokens += int((tgt_out != PAD_IDX).sum())
        if device.type == "cuda":
            torch.cuda.synchronize()
        return tokens / (time.perf_counter() - clock)

    print(f"\n=== training throughput (target tokens/s), {device}, {torch.get_num_threads()} threads ===")
    print(
        f"model: d_model={config.d_model}, layers={config.num_layers}, heads={config.num_heads}, d_ff={config.d_ff}, "
        f"vocab {vocab}; batches of <= {config.max_tokens} tokens; {steps} timed steps x {rounds} rounds; "
        f"load average {os.getloadavg()}"
    )
    for amp in precisions:
        results: dict[str, list[float]] = {"manual": [], "fused": []}
        for _ in range(rounds):
            for attention in results:
                results[attention].append(run(attention, amp))
        manual, fused = (statistics.median(results[k]) for k in ("manual", "fused"))
        label = "mixed precision" if amp else "float32"
        print(
            f"  {label:15}  contract attention {manual:10,.0f}   fused SDPA {fused:10,.0f}   "
            f"speed-up x{fused / manual:.2f}   (rounds: {[round(x) for x in results['manual']]} vs "
            f"{[round(x) for x in results['fused']]})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--skip-default", action="store_true", help="skip the default training run")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: as `workbook train`)")
    parser.add_argument("--steps", type=int, default=30, help="timed steps per measurement")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--size",
        choices=["numbers", "base"],
        default="numbers",
        help="numbers: the default run's model; base: d_model 512, 6 layers (GPU)",
    )
    args = parser.parse_args()
    device = pick_device(args.device)
    if device.type == "cpu":
        torch.set_flush_denormal(True)
        torch.set_num_threads(cpu_threads(args.threads))
    if not args.skip_default:
        default_run(args.threads)
    if not args.skip_throughput:
        config = TrainConfig()
        if args.size == "base":
            config = replace(config, d_model=512, num_layers=6, num_heads=8, d_ff=2048, max_tokens=8192)
        throughput(device, args.steps, args.rounds, config)


if __name__ == "__main__":
    main()
