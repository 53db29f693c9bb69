#!/bin/sh
# run.sh — the GPU benchmarks of kiln-kernels, one after the other on this machine (needs a
# CUDA GPU): the zero-shot kernel against a cuBLAS GEMM floor and PyTorch; `comm` (NCCL
# all-reduce, reduce + broadcast, send/recv over every visible GPU, nccl-tests' figures);
# `conv` (cuDNN on ResNet-50's convolutions, fp16 and bf16) against PyTorch channels_last.
# KILN_BUILD names the build folder (default build); KILN_PREBUILT=1 uses it as it is (a build
# carried to a GPU machine without the build's dependencies); PYTHON as in scripts/gpu-env.sh.
set -u
cd "$(dirname "$0")/../.."
b=${KILN_BUILD:-build}
if [ "${KILN_PREBUILT:-0}" != 1 ]; then
  cmake -S . -B "$b" -G Ninja >/dev/null && cmake --build "$b" --target bench_zeroshot kiln-kernels || exit 1
fi
. scripts/gpu-env.sh
mkdir -p "$b/bench-gpu"
have_torch=0
"$PYTHON" -c "import torch; assert torch.cuda.is_available()" 2>/dev/null && have_torch=1
for part in ${KILN_BENCH:-zeroshot comm conv}; do # KILN_BENCH picks parts, in its order
  case $part in
  zeroshot)
    "$b/kernels/bench_zeroshot" "$@"
    "$b/kiln-kernels" probe
    [ $have_torch = 1 ] && "$PYTHON" kernels/bench/torch_zeroshot.py "$@" ;;
  comm) "$b/kiln-kernels" comm --device cuda --out "$b/bench-gpu/comm.json" ;;
  conv)
    for dtype in fp16 bf16; do
      "$b/kiln-kernels" conv --device cuda --dtype $dtype --batch 64 --graph-api --out "$b/bench-gpu/conv-$dtype.json" &&
        [ $have_torch = 1 ] && "$PYTHON" kernels/bench/torch_conv.py "$b/bench-gpu/conv-$dtype.json"
    done ;;
  *) echo "run.sh: no part '$part' (parts: zeroshot comm conv)"; exit 2 ;;
  esac
done
[ $have_torch = 1 ] || echo "PyTorch with CUDA not installed: no side-by-side ratios"
