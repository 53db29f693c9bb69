#!/usr/bin/env python3
"""attempt_overhead.py — what running every local attempt under kiln-keeper costs.

N trivial tasks (argv `true`, no inputs, no outputs) run with -j2 in a fresh workspace, by
this kiln, by an older kiln given with --old (attempts spawned directly, no keeper), and by
ninja on the same N commands; ROUNDS rounds, the tools interleaved in a rotating order,
medians printed with the per-task cost and the ratios. Nothing else should run meanwhile.

usage: bench/attempt_overhead.py [--kiln build/kiln] [--old OLD/build/kiln] [--tasks 2000] [--rounds 5]
"""
import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def workspace(n):
    d = tempfile.mkdtemp(prefix="kiln-bench-")
    with open(os.path.join(d, "kiln.lua"), "w") as f:
        f.write('for i = 1, %d do task { name = "t" .. i, run = {"true"} } end\n' % n)
    with open(os.path.join(d, "build.ninja"), "w") as f:
        f.write("rule r\n  command = true\n")
        for i in range(n):
            f.write("build o%d: r\n" % i)
    return d


def timed(cmd, cwd):
    t0 = time.perf_counter()
    p = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit("%s failed:\n%s%s" % (" ".join(cmd), p.stdout[-1500:], p.stderr[-1500:]))
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kiln", default=os.path.join(HERE, "../build/kiln"))
    ap.add_argument("--old", help="an older kiln binary, without the keeper")
    ap.add_argument("--tasks", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=5)
    a = ap.parse_args()
    tools = {"kiln": [os.path.abspath(a.kiln), "run", "-j", "2"]}
    if a.old:
        tools["kiln-old"] = [os.path.abspath(a.old), "run", "-j", "2"]
    if shutil.which("ninja"):
        tools["ninja"] = ["ninja", "-j", "2"]
    names = list(tools)
    times = {t: [] for t in names}
    for r in range(a.rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        for t in order:
            d = workspace(a.tasks)
            times[t].append(timed(tools[t], d))
            shutil.rmtree(d)
    print("%d trivial tasks, -j2, %d rounds interleaved (median, per task)" % (a.tasks, a.rounds))
    med = {t: statistics.median(v) for t, v in times.items()}
    for t in names:
        print("  %-9s %6.2f s  %6.3f ms/task  (runs: %s)" % (t, med[t], med[t] / a.tasks * 1000,
                                                         ", ".join("%.2f" % x for x in times[t])))
    for t in names[1:]:
        print("  kiln / %s: %.2f" % (t, med["kiln"] / med[t]))


if __name__ == "__main__":
    main()
