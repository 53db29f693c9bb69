#!/bin/sh
# run.sh — builds and runs the zeroshot benchmark and, where PyTorch is installed, the same
# computation in PyTorch, on this machine, one after the other. Needs a CUDA GPU.
set -eu
cd "$(dirname "$0")/../.."
cmake -S . -B build -G Ninja >/dev/null
cmake --build build --target bench_zeroshot kiln-kernels
./build/kernels/bench_zeroshot "$@"
./build/kiln-kernels probe || true
if python3 -c "import torch" 2>/dev/null; then python3 kernels/bench/torch_zeroshot.py "$@"; else echo "PyTorch not installed: no side-by-side ratio"; fi
