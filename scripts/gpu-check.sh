#!/bin/sh
# gpu-check.sh — everything that needs a GPU, as one run: builds with CUDA (sm_90 + PTX),
# runs the GPU tests (ctest -L gpu: the zero-shot kernel, comm and conv against the C
# references) and the benchmarks of kernels/bench/run.sh (zero-shot vs cuBLAS floor and
# PyTorch, NCCL patterns, cuDNN convolutions vs PyTorch). Output goes to stdout and, where
# $OUT is set, to $OUT/gpu-check.log with the JSON results beside it.
set -u
cd "$(dirname "$0")/.."
log=${OUT:-build}/gpu-check.log
mkdir -p "$(dirname "$log")"
{
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv || true
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null && cmake --build build || exit 1
  ctest --test-dir build -L gpu --output-on-failure
  sh kernels/bench/run.sh
  [ -n "${OUT:-}" ] && cp build/bench-gpu/*.json "$OUT"/ 2>/dev/null
} 2>&1 | tee "$log"
