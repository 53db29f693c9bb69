#!/bin/sh
# run.sh — the GPU benchmarks of kiln-kernels, one after the other on this machine (needs a
# CUDA GPU): the zero-shot kernel against a cuBLAS GEMM floor and PyTorch; `comm` (NCCL
# all-reduce, reduce + broadcast, send/recv over every visible GPU, nccl-tests' figures);
# `conv` (cuDNN on ResNet-50's convolutions, fp16 and bf16) against PyTorch channels_last.
set -eu
cd "$(dirname "$0")/../.."
cmake -S . -B build -G Ninja >/dev/null
cmake --build build --target bench_zeroshot kiln-kernels
mkdir -p build/bench-gpu
./build/kernels/bench_zeroshot "$@"
./build/kiln-kernels probe || true
have_torch=0
/usr/bin/python3 -c "import torch; assert torch.cuda.is_available()" 2>/dev/null && have_torch=1
[ $have_torch = 1 ] && /usr/bin/python3 kernels/bench/torch_zeroshot.py "$@"
./build/kiln-kernels comm --device cuda --out build/bench-gpu/comm.json
for dtype in fp16 bf16; do
  ./build/kiln-kernels conv --device cuda --dtype $dtype --batch 64 --out build/bench-gpu/conv-$dtype.json
  [ $have_torch = 1 ] && /usr/bin/python3 kernels/bench/torch_conv.py build/bench-gpu/conv-$dtype.json
done
[ $have_torch = 1 ] || echo "PyTorch with CUDA not installed: no side-by-side ratios"
