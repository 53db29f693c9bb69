#!/bin/sh
# slurm_throughput.sh — 100 trivial tasks through kiln on a local one-node Slurm cluster,
# beside the same 100 jobs sent by a plain sbatch loop and waited for, in one run.
# usage: bench/slurm_throughput.sh [N]   (needs scripts/install-deps.sh's Slurm packages)
set -eu
n=${1:-100}
root=$(cd "$(dirname "$0")/.." && pwd)
kiln=$root/build/kiln
work=$(mktemp -d /tmp/kiln-slurm-bench.XXXXXX)
trap 'sh "$root/tests/slurm/cluster.sh" stop "$work/cluster"; rm -rf "$work"' EXIT
conf=$(sh "$root/tests/slurm/cluster.sh" start "$work/cluster") || { echo "$conf"; exit 1; }
export SLURM_CONF=$conf

# the plain loop: submit every job, then wait until the queue has none of them left
plain_loop() {
	rm -rf "$work/plain" && mkdir -p "$work/plain/out" && cd "$work/plain"
	printf '#!/bin/sh\necho done > "out/$1.txt"\n' > job.sh
	t0=$(date +%s.%N)
	for i in $(seq 1 "$n"); do sbatch --parsable --job-name=plain -o /dev/null job.sh "$i" >/dev/null; done
	while squeue -h --name=plain -t pending,running,configuring,completing | grep -q .; do sleep 0.1; done
	t1=$(date +%s.%N)
	[ "$(ls out | wc -l)" = "$n" ] || { echo "plain loop: not every job wrote its output" >&2; exit 1; }
	echo "$t1 - $t0" | bc
}
plain=$(plain_loop)

mkdir -p "$work/kiln" && cd "$work/kiln"
cat > kiln.lua <<LUA
for i = 1, $n do
  task { name = "t" .. i, outputs = { "out/" .. i .. ".txt" }, run = { "sh", "-c", "echo done > \$0", "{out}" } }
end
LUA
t0=$(date +%s.%N)
"$kiln" run --executor slurm >/dev/null
t1=$(date +%s.%N)
k=$(echo "$t1 - $t0" | bc)
plain2=$(plain_loop) # again after kiln, so neither side has the cold cluster
mean=$(echo "($plain + $plain2) / 2" | bc -l)
echo "Slurm $(sinfo -V | cut -d' ' -f2), $n trivial jobs on a one-node cluster:"
printf '  plain sbatch loop + wait : %6.2f s, then %6.2f s\n' "$plain" "$plain2"
printf '  kiln run --executor slurm: %6.2f s  (%.2fx the loop'"'"'s mean)\n' "$k" "$(echo "$k / $mean" | bc -l)"
