#!/bin/sh
# bench/speed.sh [KILN] — the speed figures in one run, this build against ninja: the no-op
# re-run of a 300-task grid, of three workflow-shaped DAGs (Montage, Epigenomics,
# 1000Genome) and of 10k and 100k-task grids, interleaved with ninja's, medians and ratios
# (bench/noop_shapes.py); then the plan (`run -n`) of a million-task recipe with its peak
# memory, and the no-op re-runs of 100k and 1M-item map{} grids (bench/compare.py).
# About 30 minutes on a 2-core machine, most of it first builds (ninja's of the 100k grid alone
# took 9 minutes in session 16) and the million-file trees; run it
# alone (no test suite, no other benchmark).
set -e
here=$(cd "$(dirname "$0")" && pwd)
kiln=$(realpath "${1:-$here/../build/kiln}")
python3 "$here/noop_shapes.py" --kiln "$kiln" --big 10000,100000
python3 "$here/compare.py" --kiln "$kiln" --sizes 0 --plan 1000000 --noop 100000,1000000 --tools kiln
