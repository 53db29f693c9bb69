#!/bin/sh
# kernels_startup.sh — what a kiln-kernels process costs before it does any work, in one
# run: start-up time and peak RSS of `kiln-kernels zeroshot --device cpu` (a 400 x 10
# evaluation, a few ms of work) for the CUDA build and the C-only build (medians of 7),
# then the zero-shot demo (recipes/zeroshot.lua, 192 tasks) with each.
# usage: bench/kernels_startup.sh [CUDA_BUILD_DIR] [C_ONLY_BUILD_DIR]   (default build, build-dev)
set -eu
cd "$(dirname "$0")/.."
cuda=${1:-build} conly=${2:-build-dev}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$conly/kiln-kernels" synth --classes 10 --dim 64 --samples 400 --seed 1 --quality 0.5 --out "$tmp/d" >/dev/null
median() { sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
for b in "$cuda" "$conly"; do
	for i in 1 2 3 4 5 6 7; do
		/usr/bin/time -f "%e %M" "$b/kiln-kernels" zeroshot --images "$tmp/d/images.npy" --text "$tmp/d/text.npy" \
			--labels "$tmp/d/labels.npy" --out "$tmp/r.json" --device cpu 2>>"$tmp/$b.times" >/dev/null
	done
	secs=$(tail -7 "$tmp/$b.times" | awk '{print $1}' | median)
	kib=$(tail -7 "$tmp/$b.times" | awk '{print $2}' | median)
	linked=$(ldd "$b/kiln-kernels" | grep -c 'cuda\|cublas\|cudnn\|nccl' || true)
	printf '%-12s zeroshot --device cpu: %5.3f s, %6.1f MiB peak RSS; CUDA libraries linked: %s\n' "$b" "$secs" \
		"$(echo "$kib" | awk '{print $1 / 1024}')" "$linked"
done
for b in "$cuda" "$conly"; do
	start=$(date +%s.%N)
	"$b/kiln" -C "$tmp/demo-$(basename "$b")" run recipes/zeroshot.lua >/dev/null
	end=$(date +%s.%N)
	printf '%-12s zero-shot demo (192 tasks): %.1f s\n' "$b" "$(awk "BEGIN {print $end - $start}")"
done
