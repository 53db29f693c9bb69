#!/bin/sh
# demo.sh — installs dependencies, builds kiln and kiln-kernels, runs the zero-shot
# evaluation grid (recipes/zeroshot.lua: 20 ELEVATER datasets x 4 models on synthetic
# features) in build/zeroshot, and writes its HTML report.
set -eu
cd "$(dirname "$0")/.."
sh scripts/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build
./build/kiln -C build/zeroshot run recipes/zeroshot.lua
./build/kiln -C build/zeroshot report recipes/zeroshot.lua --out report.html
cat <<MSG

kiln: done. Open these:
  report  build/zeroshot/report.html              (run summary, tables, charts; self-contained)
  charts  build/zeroshot/plots/*.svg, *.png and *.pdf
  table   build/zeroshot/results/top1_table.md     (dataset x model top-1, with each model's mean)
Run the same command again: nothing re-runs. Change one model and only its evals re-run:
  ./build/kiln -C build/zeroshot run recipes/zeroshot.lua q_team=0.6
MSG
