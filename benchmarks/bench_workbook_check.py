"""A cold ``workbook check`` over every chapter notebook: wall-clock seconds, median over runs.

Two folders are graded, each by a fresh ``workbook check --json`` process (cold: torch imported from
scratch every run):

* ``stubs``: the chapter notebooks as found (``chapters/`` or ``--dir``), i.e. untouched stubs:
  every exercise reads "not attempted" quickly;
* ``solved``: a temporary copy of all 12 chapters where every exercise cell holds the reference
  (chapters with no notebook yet get a minimal one: the setup cell plus the reference), so every
  test of every exercise runs: the real cost of grading a finished workbook.

Target (issue #3): a full terminal grading of every chapter under 15 s on the 2-core CPU.

    python benchmarks/bench_workbook_check.py [--dir chapters] [--runs 3]
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

from workbook.chapters import CHAPTERS

REPO = Path(__file__).resolve().parents[1]
SETUP = "import math\nimport torch\nimport torch.nn as nn\nimport torch.nn.functional as F\n"


def reference_code(name: str) -> str:
    """The reference source of an exercise, plus an import of the module helpers it uses
    (``greedy_decode`` calls ``solutions.decoding._next_token_logits``, for instance)."""
    import re

    import solutions
    from workbook.chapters import EXERCISE_TO_CHAPTER

    if not hasattr(solutions, name):
        from workbook.notebooks import reference_source  # exercises without a solutions entry (softmax)

        return reference_source(name)
    obj = getattr(solutions, name)
    code = inspect.getsource(obj)
    module = inspect.getmodule(obj)
    helpers = [
        h
        for h, value in vars(module).items()
        if h not in EXERCISE_TO_CHAPTER
        and (inspect.isfunction(value) or inspect.isclass(value))
        and getattr(value, "__module__", None) == module.__name__
        and re.search(rf"\b{h}\(", code)
    ]
    return (f"from {module.__name__} import {', '.join(helpers)}\n" if helpers else "") + code


def solved_copy(source: Path, target: Path) -> None:
    """Every chapter, with each exercise cell replaced by the reference (never touches ``source``)."""
    target.mkdir(parents=True, exist_ok=True)
    for ch in CHAPTERS:
        path = source / f"{ch.stem}.ipynb"
        if path.exists():
            notebook = nbformat.read(str(path), as_version=4)
            for cell in notebook.cells:
                meta = cell.get("metadata", {}).get("workbook") or {}
                if cell.cell_type == "code" and meta.get("role") == "exercise":
                    cell.source = reference_code(meta["exercise"])
        else:
            notebook = nbformat.v4.new_notebook()
            earlier = (
                "import solutions.model, solutions.training, solutions.decoding  # earlier parts and helpers\n"
                "for _module in (solutions.model, solutions.training, solutions.decoding):\n"
                "    globals().update({k: v for k, v in vars(_module).items() if not k.startswith('__')})\n"
            )
            notebook.cells = [nbformat.v4.new_code_cell(SETUP + earlier)] + [
                nbformat.v4.new_code_cell(reference_code(name)) for name in ch.exercises
            ]
        nbformat.write(notebook, str(target / f"{ch.stem}.ipynb"))


def cold_run(folder: Path, home: Path) -> tuple[float, dict]:
    env = {**os.environ, "WORKBOOK_HOME": str(home)}
    start = time.perf_counter()
    command = [shutil.which("workbook")] if shutil.which("workbook") else [sys.executable, "-m", "workbook.cli"]
    proc = subprocess.run(
        [*command, "check", "--dir", str(folder), "--json"], capture_output=True, text=True, env=env, timeout=600
    )
    seconds = time.perf_counter() - start
    return seconds, json.loads(proc.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", default=str(REPO / "chapters"), help="the chapter notebooks (default: chapters/)")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    source = Path(args.dir)
    found = [c.stem for c in CHAPTERS if (source / f"{c.stem}.ipynb").exists()]
    print(
        f"{len(found)} of {len(CHAPTERS)} chapter notebooks found in {source}; {os.cpu_count()} CPU cores; "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        stubs = Path(tmp) / "stubs"
        shutil.copytree(source, stubs, ignore=shutil.ignore_patterns("solved", "__pycache__"))
        solved = Path(tmp) / "solved"
        solved_copy(source, solved)
        for label, folder in (("stubs", stubs), ("solved", solved)):
            times, inner = [], []
            for _ in range(args.runs):
                seconds, data = cold_run(folder, Path(tmp) / "home")
                times.append(seconds)
                inner.append(data["seconds"])
            s = data["summary"]
            per_chapter = {c["chapter"][:2]: c.get("seconds", 0.0) for c in data["chapters"]}
            print(
                f"{label:>6}: median {statistics.median(times):5.2f} s wall (runs: "
                + ", ".join(f"{t:.2f}" for t in times)
                + f"; inside the command {statistics.median(inner):.2f} s)"
                f"  -> {s['passed']} passed, {s['failed']} failed, {s['not attempted']} not attempted, "
                f"{s['error']} not gradable of {s['total']}"
            )
            print("        per chapter process (s): " + " ".join(f"{k}:{v:.2f}" for k, v in per_chapter.items()))
            if label == "solved" and s["passed"] != s["total"]:
                for c in data["chapters"]:
                    for e in c["exercises"]:
                        if e["state"] != "passed":
                            print(
                                f"        ! {c['chapter']} {e['exercise']}: {e['state']}: "
                                f"{(e['failures'] or [''])[0][:150]}"
                            )
    print("target: under 15 s for a full grading of every chapter (issue #3)")


if __name__ == "__main__":
    main()
