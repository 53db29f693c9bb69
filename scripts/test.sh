#!/bin/sh
# test.sh — installs dependencies, builds kiln twice (plain, and with AddressSanitizer +
# UBSan, C back end of kiln-kernels) and runs the whole test suite under both with ctest
# (the sanitizer build skips the label `external`: tests whose time is mostly PyTorch's or
# Chromium's, whose kiln code paths the other tests run under it too).
# Where the CUDA toolkit is installed the plain build also compiles the CUDA back end;
# its GPU tests skip (exit 77) without a GPU.
set -eu
cd "$(dirname "$0")/.."
sh scripts/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build
# four at once, the long ones first (tests/CMakeLists.txt): 6.6-7.0 minutes on a 2-core
# machine, where three at once took 7.7 (half of the suite's time is tests waiting on
# clocks: a Slurm time limit, a stalled ssh start, a host cut off). Tests that time a
# Ctrl-C, a Slurm requeue or `kiln log -f` failed so once; each now waits for what it times,
# and a map shard's freeze before a Ctrl-C waits by the clock
ctest --test-dir build --output-on-failure -j4
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DKILN_SANITIZE=ON -DKILN_CUDA=OFF >/dev/null
cmake --build build-asan
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 ctest --test-dir build-asan --output-on-failure -j2 -LE external
