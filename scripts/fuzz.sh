#!/bin/sh
# fuzz.sh [SECONDS] [HARNESS...] — builds the libFuzzer harnesses in tests/fuzz with clang
# (ASan + UBSan) and runs each for SECONDS (default 600), side by side, keeping the corpus
# in build-fuzz/corpus-<name>. Harnesses: npy, metrics, recipe (default: all three). Prints
# each harness's run count and corpus size.
set -eu
cd "$(dirname "$0")/.."
secs=${1:-600}
[ $# -gt 0 ] && shift
names=${*:-npy metrics recipe}
out=build-fuzz
mkdir -p "$out"
flags="-g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -I/usr/include/lua5.4"
for name in $names; do
	case $name in
	npy) clang $flags -o "$out/fuzz_npy" tests/fuzz/fuzz_npy.c kernels/npy.c ;;
	metrics) clang $flags -o "$out/fuzz_metrics" tests/fuzz/fuzz_metrics.c cache/state/metrics.c base/json.c base/util.c base/fileio.c base/thread.c -lm -lpthread ;;
	recipe) # the loader with everything it reaches; not the verbs, not main
		clang $flags -o "$out/fuzz_recipe" tests/fuzz/fuzz_recipe.c base/*.c cache/*.c cache/state/*.c plots/*.c \
			runner/recipe/*.c runner/sched/*.c runner/exec/ssh/*.c runner/exec/slurm/*.c $(ls runner/exec/*.c | grep -v keeper.c) \
			-llua5.4 -lsqlite3 -lxxhash -lm -lpthread ;;
	*) echo "fuzz.sh: no harness \"$name\" (npy, metrics, recipe)"; exit 2 ;;
	esac
	mkdir -p "$out/corpus-$name"
done
# seeds (tests/fuzz/seeds, which ctest replays through each harness too): .npy and metrics
# files, and for the loader the recipes in recipes/ and every hostile-campaign case
[ -d "$out/corpus-npy" ] && cp tests/fuzz/seeds/*.npy "$out/corpus-npy/"
[ -d "$out/corpus-metrics" ] && cp tests/fuzz/seeds/*.json "$out/corpus-metrics/"
if [ -d "$out/corpus-recipe" ]; then
	cp recipes/*.lua "$out/corpus-recipe/"
	python3 scripts/hostile-campaign.py --emit-seeds "$out/corpus-recipe" >/dev/null
fi
for name in $names; do
	# -timeout: a load past its 0.3 s is stopped by the load watch; only a stuck library call
	# (lsandbox.h) would reach this
	ASAN_OPTIONS=allocator_may_return_null=1 "$out/fuzz_$name" -max_total_time="$secs" -timeout=30 \
		-rss_limit_mb=4096 -print_final_stats=1 -artifact_prefix="$out/" "$out/corpus-$name" 2>"$out/fuzz_$name.log" &
done
failed=0
wait
for name in $names; do
	# a slow unit (over 10 s) is written too, and is no finding: crashes, leaks, timeouts, OOMs are
	if grep -aq "ERROR: \|deadly signal\|Test unit written to .*/\(crash\|leak\|timeout\|oom\)-" "$out/fuzz_$name.log"; then
		tail -40 "$out/fuzz_$name.log"; echo "fuzz_$name: FOUND A CRASH (see $out/fuzz_$name.log)"; failed=1
		continue
	fi
	runs=$(grep -ao 'stat::number_of_executed_units: *[0-9]*' "$out/fuzz_$name.log" | grep -o '[0-9]*$')
	slow=$(grep -ac "Slowest unit" "$out/fuzz_$name.log" || true)
	echo "fuzz_$name: $runs runs in ${secs}s, no finding; corpus $(ls "$out/corpus-$name" | wc -l) inputs;" \
		"$slow slow unit(s) noted in $out/fuzz_$name.log"
done
exit $failed
