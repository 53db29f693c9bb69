#!/bin/sh
# fault-campaign.sh [KILLS] [SEED] — the kill -9 campaign of tests/e2e/test_faults.py at
# length (default 500 kills: half at random points, half right after a task's first command
# started), against build/kiln. Every kill is followed by the checks the test makes: no
# recorded success lost, every task kiln calls done has exactly the right output, and no
# task process left alive after a run. Prints the trial count and time.
set -eu
cd "$(dirname "$0")/.."
kills=${1:-500}
seed=${2:-$(date +%s)}
start=$(date +%s)
KILN=${KILN:-$PWD/build/kiln} KILN_FAULT_TRIALS=$kills KILN_FAULT_SEED=$seed \
	python3 tests/e2e/test_faults.py Faults.test_kill9_campaign
echo "fault campaign: $kills kills (seed $seed), no wrong done, no lost success, no orphan; $(( $(date +%s) - start ))s"
