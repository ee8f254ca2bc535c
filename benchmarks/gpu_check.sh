#!/usr/bin/env bash
# Issue 14's GPU measurements as one short script, for a session that is lent a GPU (about 12 minutes):
#   bash benchmarks/gpu_check.sh [OUT_DIR]     (default: $OUT on the device machine, else runs/gpu)
# 1. training throughput, float32 and mixed precision, contract attention and fused (bench_training.py);
# 2. the multi30k preset for MINUTES (default 8) minutes of training with mixed precision, test2016 BLEU.
# Needs a CUDA build of torch and the package's dependencies (pip install -e .); the data from
# ../shared/data/multi30k (pass DATA_DIR=... otherwise; without it the files are downloaded).
set -euo pipefail
out="${1:-${OUT:-runs/gpu}}"
mkdir -p "$out"
python -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.__version__, torch.cuda.get_device_name())" | tee "$out/device.txt"
python benchmarks/bench_training.py --device cuda --skip-default --steps 30 --rounds 2 2>&1 | tee "$out/throughput.txt"
python benchmarks/bench_training.py --device cuda --skip-default --steps 30 --rounds 2 --size base 2>&1 | tee -a "$out/throughput.txt"
data=()
if [ -n "${DATA_DIR:-}" ]; then data=(--data-dir "$DATA_DIR"); fi
python benchmarks/bench_multi30k.py --device cuda --minutes "${MINUTES:-8}" --eval-minutes 2 "${data[@]}" \
    --out "$out/multi30k" 2>&1 | tee "$out/multi30k.txt"
