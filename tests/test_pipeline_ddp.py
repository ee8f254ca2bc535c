"""`workbook train` under `torchrun --nproc_per_node 2` on the CPU (gloo): both processes train on
different batches, exchange gradients, and end with identical weights."""

from __future__ import annotations

import re
import socket
import subprocess
import sys

import torch

TINY = [
    "--num-train",
    "300",
    "--vocab-size",
    "300",
    "--d-model",
    "32",
    "--layers",
    "1",
    "--heads",
    "2",
    "--d-ff",
    "64",
    "--max-tokens",
    "256",
    "--warmup",
    "20",
    "--parts",
    "reference",
    "--no-progress",
    "--eval-sentences",
    "40",
    "--test-sentences",
    "40",
]


def read_log(run):
    import json

    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_process_torchrun_agrees_on_weights(tmp_path):
    run = tmp_path / "ddp"
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(_free_port()),
        "-m",
        "workbook.cli",
        "train",
        *TINY,
        "--steps",
        "20",
        "--checkpoint-every",
        "10",
        "--eval-every",
        "0",
        "--out",
        str(run),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    digests = dict(re.findall(r"\[rank (\d)\] step 20, final weights sha256 (\w+)", result.stdout))
    assert set(digests) == {"0", "1"}, result.stdout[-2000:]
    assert digests["0"] == digests["1"]
    assert "x 2 processes" in result.stdout

    # the weights moved (training happened), and rank 0's checkpoint is that same model
    state = torch.load(run / "last.pt", weights_only=False)
    assert state["step"] == 20 and isinstance(state["rng"], list) and len(state["rng"]) == 2
    steps = [r for r in read_log(run) if "loss" in r]
    assert len(steps) == 20 and steps[-1]["loss"] < steps[0]["loss"]
