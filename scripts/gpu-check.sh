#!/bin/sh
# gpu-check.sh — everything that needs a GPU, as one run: builds with CUDA (sm_90 + PTX),
# runs the GPU tests (the zero-shot kernel, comm and conv against the C references), the
# benchmarks of kernels/bench/run.sh (zero-shot vs cuBLAS floor and PyTorch, cuDNN
# convolutions vs PyTorch, NCCL patterns) and a recipe end to end (scripts/gpu-recipe-check.sh,
# KILN_RECIPE_TIMEOUT seconds at most, default 400).
# Output goes to stdout and, where $OUT is set, to $OUT/gpu-check.log with the JSON results.
#
# On a GPU machine without Lua, SQLite and xxHash's development files, build here with CUDA
# and carry the build folder: KILN_BUILD=DIR KILN_PREBUILT=1 skips the build and runs DIR's
# programs. PYTHON names the interpreter with PyTorch (default: /usr/bin/python3, else the
# first python3 on PATH whose torch sees a GPU). CUDA libraries that the loader does not
# find (cuDNN, NCCL, cuBLAS from pip's nvidia-* wheels) are looked up beside that torch.
set -u
cd "$(dirname "$0")/.."
export KILN_BUILD=${KILN_BUILD:-build}
log=${OUT:-$KILN_BUILD}/gpu-check.log
mkdir -p "$(dirname "$log")"
. scripts/gpu-env.sh
{
	nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv || true
	echo "python: $PYTHON; extra library folders: ${kiln_gpu_libs:-none}"
	if [ "${KILN_PREBUILT:-0}" != 1 ]; then
		cmake -S . -B "$KILN_BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null &&
			cmake --build "$KILN_BUILD" || exit 1
	fi
	# ctest -L gpu (and the modules' load check), without needing this tree's ctest files
	for t in test_modules_load test_cuda_vs_cpu test_gpu_comm_conv; do
		echo "== $t"
		timeout 300 "$KILN_BUILD/tests/$t"
		echo "$t: exit $?"
	done
	echo "== zero-shot against the cuBLAS floor and PyTorch ($(date +%T))"
	KILN_BENCH=zeroshot KILN_PREBUILT=1 sh kernels/bench/run.sh
	echo "== cuDNN convolutions against PyTorch ($(date +%T))"
	KILN_BENCH=conv KILN_PREBUILT=1 sh kernels/bench/run.sh
	echo "== NCCL patterns ($(date +%T))"
	KILN_BENCH=comm KILN_PREBUILT=1 sh kernels/bench/run.sh
	[ -n "${OUT:-}" ] && cp "$KILN_BUILD"/bench-gpu/*.json "$OUT"/ 2>/dev/null
	# last: the longest part, so a short lease still brings back every figure above
	echo "== a recipe end to end ($(date +%T))"
	KILN="$KILN_BUILD/kiln" timeout "${KILN_RECIPE_TIMEOUT:-400}" sh scripts/gpu-recipe-check.sh
	echo "== done ($(date +%T))"
} 2>&1 | tee "$log"
