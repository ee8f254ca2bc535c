"""``workbook demo``: train the reference Transformer on the copy task, on the CPU, in seconds."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="train the reference Transformer to copy random sequences (CPU, about 25 s)",
        description="Builds the reference Transformer from `solutions`, trains it on the copy task "
        "(random sequences of 10 symbols) with the paper's schedule and loss, then greedy-decodes "
        "held-out sequences and prints the exact-match score. No download, no GPU.",
    )
    parser.add_argument("--steps", type=int, default=None, help="training steps (default 700)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument(
        "--threads", type=int, default=None, help="CPU threads (default: 1 on a busy machine, else all cores)"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import time

    import torch

    from solutions.copy_task import main
    from solutions.pipeline.train import cpu_threads

    # Two threads on a busy 2-core machine wait for each other: 200 s instead of 28 s with one.
    before = torch.get_num_threads()
    torch.set_num_threads(cpu_threads(args.threads))
    started = time.perf_counter()
    try:
        score = main(steps=args.steps, seed=args.seed)
        print(f"({time.perf_counter() - started:.0f} s, {torch.get_num_threads()} CPU thread(s))")
    finally:
        torch.set_num_threads(before)  # called from Python (tests), leave the caller's setting
    return 0 if score > 0.0 else 1
