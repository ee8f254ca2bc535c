"""Multi30k German -> English: sacreBLEU on test2016 after a time-limited training run.

    python benchmarks/bench_multi30k.py --minutes 30            # the issue's run (CPU)
    python benchmarks/bench_multi30k.py --minutes 5 --device cuda

Trains with the ``multi30k`` preset of ``workbook train`` (override sizes with the flags below),
validates every ``--eval-minutes``, then translates the 1,000 test2016 sentences with beam search
from the average of the last checkpoints and prints sacreBLEU (detokenized, sacrebleu's defaults)
and the curve of validation BLEU against minutes of training. Reads the files from
``../shared/data/multi30k`` when present, else ``--data-dir``, else downloads them.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import replace
from pathlib import Path

from solutions.pipeline.train import PRESETS, TrainConfig, train

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "multi30k"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=30.0, help="training time limit")
    parser.add_argument("--eval-minutes", type=float, default=None, help="validate every N minutes (default minutes/6)")
    parser.add_argument("--data-dir", default=str(SHARED) if (SHARED / "train.de.gz").exists() else None)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--d-model", type=int, default=None)
    parser.add_argument("--layers", type=int, default=None)
    parser.add_argument("--d-ff", type=int, default=None)
    parser.add_argument("--heads", type=int, default=None)
    parser.add_argument("--max-tokens", type=int, default=None)
    parser.add_argument("--warmup", type=int, default=None)
    parser.add_argument("--lr-factor", type=float, default=None)
    parser.add_argument("--vocab-size", type=int, default=None)
    parser.add_argument(
        "--threads",
        type=int,
        default=os.cpu_count(),
        help="CPU threads (default: every core; the run should have the machine to itself)",
    )
    parser.add_argument("--beam", type=int, default=4)
    parser.add_argument("--attention", default="manual", choices=["manual", "fused"])
    parser.add_argument("--out", default="runs/bench-multi30k")
    args = parser.parse_args()

    config = TrainConfig(**PRESETS["multi30k"])
    overrides = {
        "d_model": args.d_model,
        "num_layers": args.layers,
        "d_ff": args.d_ff,
        "num_heads": args.heads,
        "max_tokens": args.max_tokens,
        "warmup_steps": args.warmup,
        "lr_factor": args.lr_factor,
        "vocab_size": args.vocab_size,
    }
    config = replace(config, **{k: v for k, v in overrides.items() if v is not None})
    config = replace(
        config,
        data_dir=args.data_dir,
        device=args.device,
        minutes=args.minutes,
        steps=10**9,
        eval_every=0,
        eval_every_minutes=args.eval_minutes or max(args.minutes / 6, 0.5),
        checkpoint_every=100,  # frequent enough that the last 5 lie near the end of short runs
        beam_size=args.beam,
        attention=args.attention,
        out_dir=args.out,
        threads=args.threads,
    )
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    started, cpu_started = time.perf_counter(), time.process_time()
    result = train(config, progress=False)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started

    print("\n=== Multi30k de->en, test2016 ===")
    print(
        f"model: d_model={config.d_model}, layers={config.num_layers}, heads={config.num_heads}, d_ff={config.d_ff}, "
        f"batch {config.max_tokens} tokens, warmup {config.warmup_steps}; {result.step} steps in {args.minutes} min"
    )
    averaged = min(config.average_last, max(result.step // config.checkpoint_every, 1))
    print(
        f"test2016 sacreBLEU {result.test['bleu']:.2f} (beam {config.beam_size}, average of the last "
        f"{averaged} checkpoints), chrF {result.test['chrf']:.1f}"
    )
    print(
        f"training throughput {result.tokens_per_second:,.0f} target tokens/s; wall {wall / 60:.1f} min, "
        f"process CPU time {cpu / 60:.1f} min; load average at start {load}"
    )
    print(f"validation BLEU (greedy, first {config.eval_sentences} sentences) against minutes of training:")
    for line in (Path(config.out_dir) / "log.jsonl").read_text().splitlines():
        record = json.loads(line)
        if "val_loss" in record:
            print(
                f"  {record.get('minutes', float('nan')):6.1f} min  step {record['step']:6d}  "
                f"val loss {record['val_loss']:.3f}  BLEU {record['bleu']:5.2f}"
            )
    for source, reference, output in result.examples[:3]:
        print(f"  {source}\n    -> {output}\n   ref {reference}")


if __name__ == "__main__":
    main()
