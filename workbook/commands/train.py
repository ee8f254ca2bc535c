"""``workbook train`` and ``workbook translate``: the last chapter from the command line.

``workbook train`` with no arguments is the main job: the built-in numbers task (English number
words -> German), on the CPU in a few minutes, ending with example translations and a score.
``workbook train --dataset multi30k`` trains German -> English on Multi30k (downloaded once).
The same command under ``torchrun --nproc_per_node N`` trains on N processes.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import fields

# command-line option -> TrainConfig field (None: same name with dashes)
OPTIONS = {
    "--steps": ("steps", int, "optimizer steps in total"),
    "--minutes": ("minutes", float, "stop training after this many minutes"),
    "--data-dir": ("data_dir", str, "Multi30k: read the six .gz files from this folder (no download)"),
    "--cache-dir": ("cache_dir", str, "Multi30k: download into this folder (default ~/.cache/transformer-workbook)"),
    "--num-train": ("num_train", int, "use only the first N training pairs"),
    "--vocab-size": ("vocab_size", int, "size of the shared BPE vocabulary"),
    "--d-model": ("d_model", int, "model width"),
    "--layers": ("num_layers", int, "encoder and decoder layers (each)"),
    "--heads": ("num_heads", int, "attention heads"),
    "--d-ff": ("d_ff", int, "feed-forward hidden width"),
    "--dropout": ("dropout", float, "residual dropout"),
    "--max-tokens": ("max_tokens", int, "token budget per batch (per process)"),
    "--warmup": ("warmup_steps", int, "warmup steps of the learning-rate schedule"),
    "--lr-factor": ("lr_factor", float, "multiplier of the learning-rate schedule"),
    "--clip-norm": ("clip_norm", float, "clip the gradients' global norm to this (default: no clipping)"),
    "--embedding-init": ("embedding_init", str, "xavier (as the model builds them) or normal (N(0, 1/d_model))"),
    "--eval-every": ("eval_every", int, "validation loss and BLEU every N steps"),
    "--eval-sentences": ("eval_sentences", int, "validation sentences translated for BLEU at each evaluation"),
    "--test-sentences": ("test_sentences", int, "test sentences translated at the end (default: all)"),
    "--checkpoint-every": ("checkpoint_every", int, "write a checkpoint every N steps"),
    "--average-last": ("average_last", int, "average the last k checkpoints at the end"),
    "--beam": ("beam_size", int, "beam size for the final test translations (1 = greedy)"),
    "--length-penalty": ("length_penalty", float, "beam search's length penalty alpha (0: none; 0.6 as the paper)"),
    "--seed": ("seed", int, "random seed"),
    "--device": ("device", str, "cuda, mps, cpu or auto"),
    "--threads": ("threads", int, "CPU threads (default: 1 on a busy machine, else all cores)"),
    "--out": ("out_dir", str, "run folder for checkpoints, log and plots"),
    "--attention": ("attention", str, "manual (the contract's) or fused (F.scaled_dot_product_attention)"),
}


def register(subparsers) -> None:
    train = subparsers.add_parser(
        "train",
        help="train a Transformer (default: the built-in numbers task, a few minutes on a CPU)",
        description="Train the Transformer assembled from your chapter notebooks (the reference fills in any "
        "part that is missing or fails its check). Without arguments: the built-in numbers task.",
    )
    train.add_argument(
        "--dataset",
        choices=["numbers", "multi30k"],
        default="numbers",
        help="numbers (built in, no download) or multi30k (German->English)",
    )
    for option, (_, kind, text) in OPTIONS.items():
        train.add_argument(option, type=kind, default=None, help=text)
    train.add_argument(
        "--parts",
        choices=["learner", "reference"],
        default="learner",
        help="build from your notebooks' parts (default) or from the reference only",
    )
    train.add_argument("--chapters", default="chapters", metavar="DIR", help="folder of your chapter notebooks")
    train.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out from its last checkpoint, with that run's settings "
        "(same data order, same learning rate; e.g. after Colab disconnected)",
    )
    train.add_argument("--no-amp", action="store_true", help="no mixed precision on CUDA")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    train.set_defaults(func=run_train)

    translate = subparsers.add_parser(
        "translate",
        help="translate sentences with a trained checkpoint",
        description="Translate with a checkpoint written by `workbook train`.",
    )
    translate.add_argument("sentences", nargs="*", help="sentences to translate (none: read lines from stdin)")
    translate.add_argument(
        "--checkpoint", required=True, help="a .pt file or a run folder (uses averaged.pt, else last.pt)"
    )
    translate.add_argument(
        "--beam",
        type=int,
        default=None,
        help="beam size (1 = greedy decoding; default: the run's own, as its test set was decoded: "
        "1 for numbers, 4 for multi30k)",
    )
    translate.add_argument("--device", default="auto")
    translate.add_argument(
        "--parts",
        choices=["learner", "reference"],
        default="reference",
        help="decode with your notebooks' parts or the reference (default)",
    )
    translate.add_argument("--chapters", default="chapters")
    translate.set_defaults(func=run_translate)


def config_from_args(args: argparse.Namespace):
    from solutions.pipeline.train import PRESETS, TrainConfig

    values = dict(PRESETS[args.dataset])
    for option, (name, _, _) in OPTIONS.items():
        value = getattr(args, option.lstrip("-").replace("-", "_"))
        if value is not None:
            values[name] = value
    values["amp"] = not args.no_amp
    known = {f.name for f in fields(TrainConfig)}
    return TrainConfig(**{k: v for k, v in values.items() if k in known})


def run_train(args: argparse.Namespace) -> int:
    from solutions.pipeline.multi30k import ChecksumError
    from solutions.pipeline.train import train
    from workbook.assembly import assemble

    try:
        config = config_from_args(args)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    parts = assemble(args.parts == "learner", args.chapters, config.attention)
    if os.environ.get("RANK", "0") == "0":  # under torchrun: once, from the first process
        print("The model's parts (yours where your chapter notebook's passes its check):")
        print(parts.table() + "\n", flush=True)
    try:
        result = train(config, resume=args.resume, progress=not args.no_progress, parts=parts)
    except (FileNotFoundError, ConnectionError, ChecksumError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if not result.test:  # not the main process of a multi-process run
        return 0
    print(f"\nExample translations of held-out test sentences ({result.out_dir}):")
    for source, reference, output in result.examples[:5]:
        mark = "OK " if output == reference else "   "
        print(f"  {mark}{source}\n       -> {output}\n     ref {reference}")
    print(test_summary(result))
    print(
        f"Checkpoint, log and plots (loss.png, lr.png, attention.png) are in {result.out_dir}/. Translate with:\n"
        f'  workbook translate --checkpoint {result.out_dir} "{result.examples[0][0]}"'
    )
    return 0


def test_summary(result) -> str:
    """The test-set line: exact match and chrF, and sacreBLEU where it can mean something.

    BLEU is the geometric mean of the 1- to 4-gram precisions: on targets of one word (the numbers
    task: "dreihundertvierundzwanzig") there are no 2-, 3- or 4-grams, and sacreBLEU is 0.0 even for
    a perfect translation. There, exact match and chrF (character n-grams) are the measures."""
    test, examples = result.test, result.examples
    longest = max((len(reference.split()) for _, reference, _ in examples), default=0)
    scores = f"exact match {test['exact_match']:.1%}, chrF {test.get('chrf', float('nan')):.1f}"
    if longest >= 4:
        scores = f"sacreBLEU {test['bleu']:.1f}, " + scores
    line = (
        f"Test set ({len(examples)} sentences, never seen in training): {scores}; "
        f"{result.step} steps, {result.seconds / 60:.1f} minutes in all."
    )
    if longest < 4:
        line += (
            f"\n(No BLEU for this task: BLEU counts matching runs of 1 to 4 words, and these targets have "
            f"at most {longest} word{'s' if longest != 1 else ''}, so there are no 4-word runs and BLEU is 0 "
            'even for perfect translations; the validation lines\' "BLEU 0.0" means that. Exact match and '
            "chrF, which compares characters, measure it.)"
        )
    return line


def run_translate(args: argparse.Namespace) -> int:
    from solutions.pipeline.translate import load_translator
    from workbook.assembly import assemble

    try:
        translator = load_translator(args.checkpoint, args.device, assemble(args.parts == "learner", args.chapters))
    except FileNotFoundError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    sentences = args.sentences or [line.strip() for line in sys.stdin if line.strip()]
    beam = args.beam if args.beam is not None else translator.config.beam_size  # as `workbook train` tested it
    for sentence, output in zip(sentences, translator(sentences, beam_size=beam)):
        print(output if len(sentences) == 1 else f"{sentence}\n  -> {output}")
    return 0
