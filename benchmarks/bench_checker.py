"""How long ``check()`` takes per exercise, warm (median of several runs), on the reference.

Target (issue 3): every exercise under 0.5 s on a 2-core laptop CPU. Run:

    python benchmarks/bench_checker.py [--runs 5] [--json out.json]

It prints one line per exercise (median, min, max seconds, and whether it is under the target) and
the total. Also times one failing check (a buggy LayerNorm), whose diagnosis costs extra work.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import torch

import solutions
from checks import check
from checks.specs.ch00_introduction import reference_softmax
from workbook.chapters import EXERCISE_TO_CHAPTER

TARGET_S = 0.5


class _EpsOutsideLayerNorm(solutions.LayerNorm):
    def forward(self, x):
        centred = x - x.mean(-1, keepdim=True)
        return self.weight * centred / (centred.pow(2).mean(-1, keepdim=True).sqrt() + self.eps) + self.bias


def time_check(obj, exercise: str, runs: int) -> list[float]:
    check(obj, exercise)  # warm-up: imports, first torch kernels
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        result = check(obj, exercise)
        times.append(time.perf_counter() - start)
    assert result.state in ("passed", "failed"), result
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", default=None, help="also write the numbers to this JSON file")
    args = parser.parse_args()

    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    rows = {}
    for name in EXERCISE_TO_CHAPTER:
        obj = reference_softmax if name == "softmax" else getattr(solutions, name)
        rows[name] = time_check(obj, name, args.runs)
    rows["LayerNorm (buggy, diagnosed)"] = time_check(_EpsOutsideLayerNorm, "LayerNorm", args.runs)

    print(f"{'exercise':32s} {'median':>8s} {'min':>8s} {'max':>8s}")
    for name, times in rows.items():
        median = statistics.median(times)
        flag = "" if median < TARGET_S else f"  over the {TARGET_S} s target"
        print(f"{name:32s} {median:8.3f} {min(times):8.3f} {max(times):8.3f}{flag}")
    total = sum(statistics.median(t) for t in rows.values())
    print(f"{'all exercises (sum of medians)':32s} {total:8.3f}")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({k: {"median": statistics.median(v), "runs": v} for k, v in rows.items()}, handle, indent=1)


if __name__ == "__main__":
    main()
