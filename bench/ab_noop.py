#!/usr/bin/env python3
"""ab_noop.py — two kiln binaries side by side on the same grids: the no-op re-run of an
N-task grid (each binary in a workspace of its own: state.db's schema may differ) and the
plan (`run -n`) of a large one, interleaved (old, new, new, old, ...) so the machine's drift
falls on both; medians and the new/old ratio.

usage: bench/ab_noop.py --old OLD_KILN [--new build/kiln] [--sizes 100,1000,10000] [--plan 100000] [--repeat 15]
"""
import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))

RECIPE = ('for i = 0, %d do task { name = "t" .. i, inputs = {"shared.txt", "leaf/" .. i .. ".txt"}, '
          'outputs = {"out/" .. i .. ".txt"}, run = {"sh", "-c", "cat shared.txt leaf/" .. i .. '
          '".txt > out/" .. i .. ".txt"} } end\n')


def workspace(n):
    d = tempfile.mkdtemp(prefix="kiln-ab-")
    os.makedirs(d + "/leaf")
    os.makedirs(d + "/out")
    with open(d + "/shared.txt", "w") as f:
        f.write("s\n")
    for i in range(n):
        with open(d + "/leaf/%d.txt" % i, "w") as f:
            f.write("%d\n" % i)
    with open(d + "/kiln.lua", "w") as f:
        f.write(RECIPE % (n - 1))
    return d


def interleaved(kilns, dirs, args, repeat, check):
    times = {k: [] for k in kilns}
    for rep in range(repeat):
        for k in (sorted(kilns) if rep % 2 else sorted(kilns, reverse=True)):
            t = time.perf_counter()
            p = subprocess.run([kilns[k]] + args, cwd=dirs[k], capture_output=True, text=True)
            times[k].append(time.perf_counter() - t)
            if check not in p.stdout + p.stderr:
                raise SystemExit("%s %s in %s: %s" % (k, " ".join(args), dirs[k], p.stdout[-500:] + p.stderr[-500:]))
    return {k: statistics.median(v) * 1000 for k, v in times.items()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--old", required=True)
    ap.add_argument("--new", default=os.path.join(HERE, "..", "build", "kiln"))
    ap.add_argument("--sizes", default="100,1000,10000")
    ap.add_argument("--plan", type=int, default=100000)
    ap.add_argument("--repeat", type=int, default=15)
    a = ap.parse_args()
    kilns = {"new": os.path.abspath(a.new), "old": os.path.abspath(a.old)}
    for n in [int(s) for s in a.sizes.split(",") if s]:
        dirs = {}
        for k in kilns:
            dirs[k] = workspace(n)
            subprocess.run([kilns[k], "run", "-j2"], cwd=dirs[k], capture_output=True, check=True)
        med = interleaved(kilns, dirs, ["run"], a.repeat, " 0 ran")
        print("%7d-task no-op   new %8.1f ms   old %8.1f ms   new/old %.2f" % (n, med["new"], med["old"], med["new"] / med["old"]))
        for d in dirs.values():
            shutil.rmtree(d)
    if a.plan:
        dirs = {k: workspace(a.plan) for k in kilns}
        med = interleaved(kilns, dirs, ["run", "-n"], max(3, a.repeat // 3), "would run")
        print("%7d-task plan    new %8.1f ms   old %8.1f ms   new/old %.2f" % (a.plan, med["new"], med["old"], med["new"] / med["old"]))
        for d in dirs.values():
            shutil.rmtree(d)


if __name__ == "__main__":
    main()
