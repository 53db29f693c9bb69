#!/bin/sh
# gpu-recipe-check.sh — a recipe end to end on this machine's GPUs, the way a researcher
# meets it. recipes/imagenet.lua (one-process and torchrun DDP ResNet training on dummy data,
# cuDNN convolution timings through kiln-kernels on a leased GPU) runs, then runs again as a
# no-op; then a longer training is interrupted twice — kiln killed with -9 (the next run
# re-attaches the training, which kept going) and Ctrl-C (the next run continues after the
# last finished epoch) — and every "epoch N:" line of every attempt's log is counted: an
# epoch printed twice is one that ran twice; then recipes/caption.lua (a map{} sharded over
# the GPUs) is interrupted the same two ways and the items given to its attempts counted.
# Runs on a machine without a GPU too (CPU and
# gloo, smaller images), which is how it is tried before a GPU machine is at hand.
#
# usage: [KILN=build/kiln] [PYTHON=/usr/bin/python3] sh scripts/gpu-recipe-check.sh [WORKDIR]
# Exit 0 when every step did what it should; each step says what it saw.
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
kiln=$(cd "$(dirname "${KILN:-$root/build/kiln}")" && pwd)/$(basename "${KILN:-kiln}")
py=${PYTHON:-/usr/bin/python3}
work=${1:-$(mktemp -d /tmp/kiln-gpu-recipe.XXXXXX)}
recipe=$root/recipes/imagenet.lua
status=0
fail() { echo "FAIL: $*"; status=1; }

# the epochs of TASK as printed across all its attempts' logs: "N times" per epoch
epochs_seen() { cat "$1"/.kiln/logs/imagenet/single@*.log 2>/dev/null | grep -o '^epoch [0-9]*:' | sort | uniq -c; }
wait_for_epoch() { # WORKDIR N PID: until epoch N is in a log (at most 300 s, while kiln PID lives)
	i=0
	while [ $i -lt 600 ]; do
		epochs_seen "$1" | grep -q "epoch $2:" && return 0
		kill -0 "$3" 2>/dev/null || return 1
		sleep 0.5
		i=$((i + 1))
	done
	return 1
}

echo "== the recipe, then its no-op (workspace $work/full)"
mkdir -p "$work/full"
targets="imagenet/* conv/*"
command -v gnuplot >/dev/null && targets="" # with gnuplot: the charts too
t0=$(date +%s)
# shellcheck disable=SC2086
"$kiln" -C "$work/full" run "$recipe" $targets python="$py" || fail "the recipe's first run"
echo "first run: $(($(date +%s) - t0)) s"
# shellcheck disable=SC2086
"$kiln" -C "$work/full" run "$recipe" $targets python="$py" >"$work/noop.txt" 2>&1 || fail "the no-op run"
cat "$work/noop.txt"
grep -q "nothing to do\|up to date\|0 ran" "$work/noop.txt" || fail "the second run did work"
for f in results/single.json results/ddp.json results/conv-fwd.json; do
	[ -s "$work/full/$f" ] || fail "$f missing"
done
"$py" - "$work/full" <<'EOF'
import json, sys
w = sys.argv[1]
for mode in ("single", "ddp"):
    r = json.load(open(f"{w}/results/{mode}.json"))
    print(f"{mode}: device {r['device']}, backend {r['backend']}, cuDNN {r['cudnn']}, world {r['world_size']}, "
          f"{r['images_per_s']:.0f} images/s")
for p in ("fwd", "bwd_data", "bwd_filter"):
    r = json.load(open(f"{w}/results/conv-{p}.json"))
    print(f"conv {p}: " + ", ".join(f"{k} {v}" for k, v in r.items() if not isinstance(v, (list, dict)))[:300])
EOF

for how in kill9 ctrlc; do
	echo "== a longer training, kiln interrupted by $how after epoch 2, then run again ($work/$how)"
	mkdir -p "$work/$how"
	args="modes=single conv=false epochs=5 steps=15 python=$py"
	# shellcheck disable=SC2086
	"$kiln" -C "$work/$how" run "$recipe" 'imagenet/*' $args >"$work/$how.first.txt" 2>&1 &
	pid=$!
	wait_for_epoch "$work/$how" 2 $pid || fail "$how: epoch 2 never came"
	if [ $how = kill9 ]; then kill -9 $pid; else kill -INT $pid; fi
	wait $pid 2>/dev/null
	echo "interrupted run's exit: $? (last lines:)"
	tail -n 3 "$work/$how.first.txt"
	# shellcheck disable=SC2086
	"$kiln" -C "$work/$how" run "$recipe" 'imagenet/*' $args >"$work/$how.again.txt" 2>&1 || fail "$how: the run after"
	tail -n 5 "$work/$how.again.txt"
	echo "epochs across all attempts' logs:"
	epochs_seen "$work/$how"
	n=$(epochs_seen "$work/$how" | wc -l)
	twice=$(epochs_seen "$work/$how" | awk '$1 > 1' | wc -l)
	[ "$n" = 5 ] || fail "$how: $n distinct epochs, not 5"
	[ "$twice" = 0 ] || fail "$how: $twice epoch(s) ran twice"
	grep -h "resuming after\|re-attach\|attach" "$work/$how"/.kiln/logs/imagenet/single@*.log "$work/$how.again.txt" | head -3
done
# the sharded captioning map{}: every caption finished before the interruption must be the
# same file after the next run (caption.py writes each by a rename, so a redone one is a new
# inode); the items given to attempts are shown beside
caption=$root/recipes/caption.lua
items=1500
for how in kill9 ctrlc; do
	echo "== captioning $items images, kiln interrupted by $how a third of the way, then run again ($work/cap-$how)"
	mkdir -p "$work/cap-$how"
	"$kiln" -C "$work/cap-$how" run "$caption" images=$items python="$py" >"$work/cap-$how.first.txt" 2>&1 &
	pid=$!
	i=0
	while [ $i -lt 600 ] && kill -0 $pid 2>/dev/null &&
		[ "$(ls "$work/cap-$how/captions" 2>/dev/null | wc -l)" -lt $((items / 3)) ]; do
		sleep 0.5
		i=$((i + 1))
	done
	if [ $how = kill9 ]; then kill -9 $pid; else kill -INT $pid; fi
	wait $pid 2>/dev/null
	code=$?
	sleep 1 # kill -9: the shards go on; what they finished by now is what must not be redone
	(cd "$work/cap-$how/captions" && ls -i | grep '\.txt$' | sort -k2) >"$work/cap-$how.before"
	echo "interrupted (exit $code) with $(wc -l <"$work/cap-$how.before") of $items captioned"
	"$kiln" -C "$work/cap-$how" run "$caption" images=$items python="$py" >"$work/cap-$how.again.txt" 2>&1 ||
		fail "cap-$how: the run after"
	tail -n 3 "$work/cap-$how.again.txt"
	(cd "$work/cap-$how/captions" && ls -i | grep '\.txt$' | sort -k2) >"$work/cap-$how.after"
	redone=$(join -1 2 -2 2 "$work/cap-$how.before" "$work/cap-$how.after" | awk '$2 != $3' | wc -l)
	have=$(wc -l <"$work/cap-$how.after")
	given=$(cat "$work/cap-$how"/.kiln/logs/caption:shard-*@*.items | wc -l)
	echo "$have captions; $redone finished before the interruption were redone; items given to attempts: $given"
	[ "$have" = $items ] || fail "cap-$how: $have captions, not $items"
	[ "$redone" = 0 ] || fail "cap-$how: $redone finished captions were redone"
done
[ $status = 0 ] && echo "gpu-recipe-check: all steps as they should be" || echo "gpu-recipe-check: failures above"
exit $status
