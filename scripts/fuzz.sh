#!/bin/sh
# fuzz.sh [SECONDS] — builds the libFuzzer harnesses in tests/fuzz with clang (ASan +
# UBSan) and runs each for SECONDS (default 600) on all cores, keeping the corpus in
# build-fuzz/corpus-<name>. Prints each harness's run count and corpus size.
set -eu
cd "$(dirname "$0")/.."
secs=${1:-600}
out=build-fuzz
mkdir -p "$out"
flags="-g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -I/usr/include/lua5.4"
clang $flags -o "$out/fuzz_npy" tests/fuzz/fuzz_npy.c kernels/npy.c
clang $flags -o "$out/fuzz_metrics" tests/fuzz/fuzz_metrics.c cache/metrics.c base/json.c base/util.c -lm -lpthread
# seeds: a valid .npy (format 1.0, float32, shape (2, 3)) and a metrics file with a curve
mkdir -p "$out/corpus-npy" "$out/corpus-metrics"
python3 - "$out" <<'PY'
import struct, sys
hdr = b"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }"
hdr += b" " * ((64 - (10 + len(hdr) + 1) % 64) % 64) + b"\n"
open(sys.argv[1] + "/corpus-npy/seed.npy", "wb").write(
    b"\x93NUMPY\x01\x00" + struct.pack("<H", len(hdr)) + hdr + struct.pack("<6f", *range(6)))
open(sys.argv[1] + "/corpus-metrics/seed.json", "w").write(
    '{"top1": 0.5, "name": "x", "nested": {"a": [1, 2]}, "curve": [{"epoch": 1, "loss": 0.3}], "ok": true, "n": null}')
PY
for name in npy metrics; do # one core each, side by side
	"$out/fuzz_$name" -max_total_time="$secs" -print_final_stats=1 "$out/corpus-$name" 2>"$out/fuzz_$name.log" &
done
failed=0
wait
for name in npy metrics; do
	if grep -q "ERROR: \|deadly signal\|Test unit written" "$out/fuzz_$name.log"; then
		tail -40 "$out/fuzz_$name.log"; echo "fuzz_$name: FOUND A CRASH (see $out/fuzz_$name.log)"; failed=1
		continue
	fi
	runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$out/fuzz_$name.log" | grep -o '[0-9]*$')
	echo "fuzz_$name: $runs runs in ${secs}s, no finding; corpus $(ls "$out/corpus-$name" | wc -l) inputs"
done
exit $failed
