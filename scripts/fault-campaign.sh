#!/bin/sh
# fault-campaign.sh [KILLS] [SEED] [SIGINTS] — the fault campaigns of tests/e2e/test_faults.py
# at length against build/kiln: KILLS kill -9s (default 500: half at random points, half
# right after a task's first command started), each followed by the checks the test makes
# (no recorded success lost, every task kiln calls done has exactly the right output, no
# task process left alive after a run); then SIGINTS Ctrl-Cs (default 60) of runs whose
# workers trap SIGTERM and leave TERM-ignoring writers behind. Prints counts and times.
set -eu
cd "$(dirname "$0")/.."
kills=${1:-500}
seed=${2:-$(date +%s)}
start=$(date +%s)
KILN=${KILN:-$PWD/build/kiln} KILN_FAULT_TRIALS=$kills KILN_FAULT_SEED=$seed \
	python3 tests/e2e/test_faults.py Faults.test_kill9_campaign
echo "fault campaign: $kills kills (seed $seed), no wrong done, no lost success, no orphan; $(( $(date +%s) - start ))s"
sigints=${3:-60}
start=$(date +%s)
KILN=${KILN:-$PWD/build/kiln} KILN_SIGINT_TRIALS=$sigints \
	python3 tests/e2e/test_faults.py Faults.test_sigint_with_term_trapping_workers
echo "Ctrl-C campaign: $sigints SIGINTs, every group gone when kiln exited, every re-run right; $(( $(date +%s) - start ))s"
