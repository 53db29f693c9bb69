#!/bin/sh
# demo.sh — installs dependencies, builds kiln and runs the demo recipe in build/demo.
set -eu
cd "$(dirname "$0")/.."
sh scripts/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build
./build/kiln -C build/demo run recipes/demo.lua
echo "kiln: the demo's results are in build/demo/results/ (summary.md); run the same command again: nothing re-runs"
