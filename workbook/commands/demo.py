"""``workbook demo``: train the reference Transformer on the copy task, on the CPU, in seconds."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="train the reference Transformer to copy random sequences (CPU, ~25 s)",
        description="Builds the reference Transformer from `solutions`, trains it on the copy task "
        "(random sequences of 10 symbols) with the paper's schedule and loss, then greedy-decodes "
        "held-out sequences and prints the exact-match score. No download, no GPU.",
    )
    parser.add_argument("--steps", type=int, default=None, help="training steps (default 700)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from solutions.copy_task import main

    score = main(steps=args.steps, seed=args.seed)
    return 0 if score > 0.0 else 1
