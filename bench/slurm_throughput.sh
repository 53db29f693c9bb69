#!/bin/sh
# slurm_throughput.sh — N trivial tasks (default 1000) through kiln on a local one-node
# Slurm cluster, beside the same N jobs sent by a plain sbatch loop and by one bare job
# array (the same throttle as kiln's default, %64), each waited for, in one run; the plain
# ways are timed before and after kiln so neither side has the cold cluster.
# usage: bench/slurm_throughput.sh [N]   (needs scripts/install-deps.sh's Slurm packages)
set -eu
n=${1:-1000}
root=$(cd "$(dirname "$0")/.." && pwd)
kiln=$root/build/kiln
work=$(mktemp -d /tmp/kiln-slurm-bench.XXXXXX)
trap 'sh "$root/tests/slurm/cluster.sh" stop "$work/cluster"; rm -rf "$work"' EXIT
conf=$(sh "$root/tests/slurm/cluster.sh" start "$work/cluster") || { echo "$conf"; exit 1; }
export SLURM_CONF=$conf

wait_gone() {
	while squeue -h --name="$1" -t pending,running,configuring,completing | grep -q .; do sleep 0.1; done
}

# the plain loop: submit every job, then wait until the queue has none of them left
plain_loop() {
	rm -rf "$work/plain" && mkdir -p "$work/plain/out" && cd "$work/plain"
	printf '#!/bin/sh\necho done > "out/$1.txt"\n' > job.sh
	t0=$(date +%s.%N)
	for i in $(seq 1 "$n"); do sbatch --parsable --job-name=plain -o /dev/null job.sh "$i" >/dev/null; done
	wait_gone plain
	t1=$(date +%s.%N)
	[ "$(ls out | wc -l)" = "$n" ] || { echo "plain loop: not every job wrote its output" >&2; exit 1; }
	echo "$t1 - $t0" | bc
}

# one bare array: the least a submission can cost
bare_array() {
	rm -rf "$work/array" && mkdir -p "$work/array/out" && cd "$work/array"
	printf '#!/bin/sh\necho done > "out/$SLURM_ARRAY_TASK_ID.txt"\n' > job.sh
	t0=$(date +%s.%N)
	sbatch --parsable --job-name=bare --array="1-$n%64" -o /dev/null job.sh >/dev/null
	wait_gone bare
	t1=$(date +%s.%N)
	[ "$(ls out | wc -l)" = "$n" ] || { echo "bare array: not every element wrote its output" >&2; exit 1; }
	echo "$t1 - $t0" | bc
}

plain=$(plain_loop)
array=$(bare_array)
mkdir -p "$work/kiln" && cd "$work/kiln"
cat > kiln.lua <<LUA
for i = 1, $n do
  task { name = "t" .. i, outputs = { "out/" .. i .. ".txt" }, run = { "sh", "-c", "echo done > \$0", "{out}" } }
end
LUA
t0=$(date +%s.%N)
said=$("$kiln" run --executor slurm | grep 'kiln: Slurm:' || true)
t1=$(date +%s.%N)
k=$(echo "$t1 - $t0" | bc)
t0=$(date +%s.%N)
"$kiln" run --executor slurm >/dev/null
t1=$(date +%s.%N)
noop=$(echo "$t1 - $t0" | bc)
plain2=$(plain_loop)
array2=$(bare_array)
pmean=$(echo "($plain + $plain2) / 2" | bc -l)
amean=$(echo "($array + $array2) / 2" | bc -l)
echo "Slurm $(sinfo -V | cut -d' ' -f2), $n trivial jobs on a one-node cluster:"
printf '  plain sbatch loop + wait : %6.2f s, then %6.2f s (%d sbatch calls)\n' "$plain" "$plain2" "$n"
printf '  one bare array + wait    : %6.2f s, then %6.2f s (1 sbatch call)\n' "$array" "$array2"
printf '  kiln run --executor slurm: %6.2f s  (%.2fx the loop, %.2fx the bare array; %s)\n' "$k" \
	"$(echo "$k / $pmean" | bc -l)" "$(echo "$k / $amean" | bc -l)" "${said#kiln: Slurm: }"
printf '  kiln no-op afterwards    : %6.2f s\n' "$noop"
