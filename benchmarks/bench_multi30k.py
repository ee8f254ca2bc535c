"""Multi30k German -> English: sacreBLEU on test2016 after a time-limited training run.

    python benchmarks/bench_multi30k.py --minutes 30 --seeds 0 1   # the issue's runs (CPU), one after the other
    python benchmarks/bench_multi30k.py --minutes 10 --device cuda  # a GPU
    python benchmarks/bench_multi30k.py --minutes 8 --warmup 800    # a proxy run while tuning

Trains with the ``multi30k`` preset of ``workbook train`` (override any setting with the flags below),
validates every ``--eval-minutes``, then translates the 1,000 test2016 sentences with beam search
from the average of the last checkpoints and prints sacreBLEU and chrF (detokenized, sacrebleu's
defaults) and the curve of validation BLEU against minutes of training; with several seeds, also
their mean. Writes ``summary.json`` and ``curve.png`` (validation BLEU against minutes, one line
per seed) into ``--out``. Reads the files from ``../shared/data/multi30k`` when present, else
``--data-dir``, else downloads them. The run should have the machine to itself: the BLEU reached in
a fixed time depends on the steps per minute.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from dataclasses import asdict, replace
from pathlib import Path

import torch

from solutions.pipeline.train import PRESETS, TrainConfig, train

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "multi30k"

# flag -> TrainConfig field (None on the command line: the preset's value)
OVERRIDES = {
    "d_model": int,
    "layers": int,
    "d_ff": int,
    "heads": int,
    "dropout": float,
    "max_tokens": int,
    "warmup": int,
    "lr_factor": float,
    "vocab_size": int,
    "beam": int,
    "length_penalty": float,
    "average_last": int,
    "checkpoint_every": int,
    "attention": str,
}
FIELD = {"layers": "num_layers", "heads": "num_heads", "warmup": "warmup_steps", "beam": "beam_size"}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=30.0, help="training time limit of each run")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="one run per seed, one after the other")
    parser.add_argument("--eval-minutes", type=float, default=None, help="validate every N minutes (default minutes/6)")
    parser.add_argument("--data-dir", default=str(SHARED) if (SHARED / "train.de.gz").exists() else None)
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--threads",
        type=int,
        default=os.cpu_count(),
        help="CPU threads (default: every core; the run should have the machine to itself)",
    )
    for flag, kind in OVERRIDES.items():
        parser.add_argument("--" + flag.replace("_", "-"), type=kind, default=None, help="default: the preset's")
    parser.add_argument("--no-amp", action="store_true", help="float32 on CUDA too (default: mixed precision)")
    parser.add_argument("--out", default="runs/bench-multi30k")
    return parser.parse_args()


def config_for(args: argparse.Namespace, seed: int) -> TrainConfig:
    config = TrainConfig(**PRESETS["multi30k"])
    overrides = {FIELD.get(flag, flag): getattr(args, flag) for flag in OVERRIDES}
    config = replace(config, **{k: v for k, v in overrides.items() if v is not None})
    return replace(
        config,
        data_dir=args.data_dir,
        device=args.device,
        minutes=args.minutes,
        steps=10**9,
        eval_every=0,
        eval_every_minutes=args.eval_minutes or max(args.minutes / 6, 0.5),
        seed=seed,
        out_dir=str(Path(args.out) / f"seed{seed}"),
        threads=args.threads,
        amp=not args.no_amp,
    )


def validation_curve(out_dir: str) -> list[dict]:
    records = [json.loads(line) for line in (Path(out_dir) / "log.jsonl").read_text().splitlines()]
    return [
        {"minutes": r["minutes"], "step": r["step"], "val_loss": r["val_loss"], "bleu": r["bleu"]}
        for r in records
        if "val_loss" in r
    ]


def one_run(config: TrainConfig) -> dict:
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    started, cpu_started = time.perf_counter(), time.process_time()
    result = train(config, progress=False)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    averaged = min(config.average_last, max(result.step // max(config.checkpoint_every, 1), 1))
    run = {
        "seed": config.seed,
        "steps": result.step,
        "test_bleu": result.test["bleu"],
        "test_chrf": result.test["chrf"],
        "tokens_per_second": result.tokens_per_second,
        "averaged_checkpoints": averaged,
        "wall_minutes": wall / 60,
        "cpu_minutes": cpu / 60,
        "load_at_start": load,
        "curve": validation_curve(config.out_dir),
        "examples": result.examples[:3],
    }
    print(f"\n=== Multi30k de->en, test2016, seed {config.seed} ===")
    print(
        f"model: d_model={config.d_model}, layers={config.num_layers}+{config.num_layers}, heads={config.num_heads}, "
        f"d_ff={config.d_ff}, vocabulary {config.vocab_size}, dropout {config.dropout}; batches of "
        f"{config.max_tokens} tokens, warmup {config.warmup_steps}, lr factor {config.lr_factor}, "
        f"attention {config.attention}, {'mixed precision' if config.amp else 'float32'} on CUDA; "
        f"{result.step} steps in {config.minutes} min of training"
    )
    print(
        f"test2016 sacreBLEU {run['test_bleu']:.2f}, chrF {run['test_chrf']:.1f} (beam {config.beam_size}, "
        f"length penalty {config.length_penalty}, average of the last {averaged} checkpoints)"
    )
    print(
        f"training throughput {run['tokens_per_second']:,.0f} target tokens/s; wall {run['wall_minutes']:.1f} min "
        f"(training, evaluations, test decoding), process CPU time {run['cpu_minutes']:.1f} min; "
        f"load average at start {load}"
    )
    print(f"validation BLEU (greedy, first {config.eval_sentences} sentences) against minutes of training:")
    for point in run["curve"]:
        print(
            f"  {point['minutes']:6.1f} min  step {point['step']:6d}  val loss {point['val_loss']:.3f}  "
            f"BLEU {point['bleu']:5.2f}"
        )
    for source, reference, output in run["examples"]:
        print(f"  {source}\n    -> {output}\n   ref {reference}")
    return run


def plot_curves(runs: list[dict], path: Path, minutes: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for run in runs:
        points = run["curve"][:-1]  # the last point is the averaged model, after training
        ax.plot([p["minutes"] for p in points], [p["bleu"] for p in points], marker="o", label=f"seed {run['seed']}")
        ax.scatter([minutes], [run["test_bleu"]], marker="*", s=120, zorder=3)
    ax.set_xlabel("minutes of training")
    ax.set_ylabel("BLEU")
    ax.set_title("Multi30k de->en: validation BLEU (greedy); stars: test2016 (beam, averaged)", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    args = parse_args()
    runs = [one_run(config_for(args, seed)) for seed in args.seeds]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    config = asdict(config_for(args, args.seeds[0]))
    summary = {"config": config, "torch": torch.__version__, "cpu_count": os.cpu_count(), "runs": runs}
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    plot_curves(runs, out / "curve.png", args.minutes)
    bleus = [run["test_bleu"] for run in runs]
    print(f"\n=== {len(runs)} run(s) of {args.minutes} minutes ===")
    print(f"test2016 sacreBLEU per seed: {', '.join(f'{b:.2f}' for b in bleus)}; mean {statistics.mean(bleus):.2f}")
    chrfs = [run["test_chrf"] for run in runs]
    print(f"chrF per seed: {', '.join(f'{c:.1f}' for c in chrfs)}")
    print(f"summary: {out / 'summary.json'}; curve: {out / 'curve.png'}")


if __name__ == "__main__":
    main()
