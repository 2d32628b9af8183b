#!/usr/bin/env bash
# GPU check (bench/gpu_check.py): a CUDA bf16 step of Baby Llama's 58M student (tokens/s, MFU), distillation from
# two teachers on the fly and from the teacher cache, and 4 trials at 0.25 GPU against 1 per GPU.
# Under 5 minutes on one GPU; without a GPU it stops with one sentence and exit status 2.
#   bench/gpu_check.sh [--steps 30] [--pack-steps 300] [--skip-packing]
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
    echo "bench/gpu_check.sh: no NVIDIA GPU found (nvidia-smi is missing or lists none), so there is nothing to check." >&2
    exit 2
fi
exec timeout 290 python bench/gpu_check.py "$@"
