#!/usr/bin/env python3
"""map_items.py — N items as one map{} over S shards beside the same N items as N tasks, in
one run: plan (kiln run -n), full run, and no-op re-run, each the median of REPEAT runs
(the full run of 2, on fresh workspaces, in alternating order: the machine drifts), and
kiln's own cost per item: (map full run - the items' own work) / N, where the items' own
work is the same command timed outside kiln.

Each item does what a real item does in miniature, with shell builtins only (so kiln's own
cost is not hidden under process start-ups): reads its input, writes its output. The map's
shard runs them in a shell loop over its list; the task form runs one `sh -c` per item.

usage: bench/map_items.py [--kiln build/kiln] [--items 5000] [--shards 8]
"""
import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import time

REPEAT = 3
ITEM = "read l < in/$it.txt && echo \"$l\" > out/$it.txt"


def workspace(n, shards, as_map):
    root = tempfile.mkdtemp(prefix="kiln-bench-map-")
    os.makedirs(os.path.join(root, "in"))
    for i in range(n):
        with open(os.path.join(root, "in", "%05d.txt" % i), "w") as f:
            f.write("item %d\n" % i)
    with open(os.path.join(root, "kiln.lua"), "w") as f:
        f.write("local items = {}\nfor i = 0, %d do items[#items + 1] = string.format('%%05d', i) end\n" % (n - 1))
        if as_map:
            f.write("map { name = 'm', items = items, shards = %d, input = 'in/{item}.txt', output = 'out/{item}.txt',\n"
                    "      run = 'while read it; do %s; done < {items}' }\n" % (shards, ITEM))
        else:
            f.write("for _, it in ipairs(items) do\n"
                    "  task { name = 'm/' .. it, inputs = {'in/' .. it .. '.txt'}, outputs = {'out/' .. it .. '.txt'},\n"
                    "         run = 'it=' .. it .. '; %s' }\nend\n" % ITEM)
    return root


def timed(cmd, cwd):
    start = time.perf_counter()
    p = subprocess.run(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if p.returncode != 0:
        raise SystemExit("%s failed in %s: %s" % (" ".join(cmd), cwd, p.stderr[-500:]))
    return time.perf_counter() - start


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--kiln", default=os.path.join(os.path.dirname(__file__), "..", "build", "kiln"))
    ap.add_argument("--items", type=int, default=5000)
    ap.add_argument("--shards", type=int, default=8)
    a = ap.parse_args()
    kiln = os.path.abspath(a.kiln)
    n, s = a.items, a.shards
    full = {"map": [], "tasks": []}
    roots = {}
    for rep in range(2):
        for form in (("map", "tasks") if rep == 0 else ("tasks", "map")):
            root = workspace(n, s, form == "map")
            full[form].append(timed([kiln, "run", "-j", str(s)], root))
            if form in roots:
                shutil.rmtree(roots[form])
            roots[form] = root
    plan = {f: statistics.median(timed([kiln, "run", "-n"], roots[f]) for _ in range(REPEAT)) for f in roots}
    noop = {f: statistics.median(timed([kiln, "run"], roots[f]) for _ in range(REPEAT)) for f in roots}
    # the items' own work, without kiln: the same loop, split the same way, s shells at once
    own = tempfile.mkdtemp(prefix="kiln-bench-own-")
    shutil.copytree(os.path.join(roots["map"], "in"), os.path.join(own, "in"))
    os.makedirs(os.path.join(own, "out"))
    names = ["%05d" % i for i in range(n)]
    for k in range(s):
        with open(os.path.join(own, "list%d" % k), "w") as f:
            f.write("".join(x + "\n" for x in names[k::s]))
    start = time.perf_counter()
    procs = [subprocess.Popen(["sh", "-c", "while read it; do %s; done < list%d" % (ITEM, k)], cwd=own) for k in range(s)]
    for p in procs:
        p.wait()
    bare = time.perf_counter() - start
    shutil.rmtree(own)
    fm, ft = statistics.mean(full["map"]), statistics.mean(full["tasks"])
    print("%d items, %d shards (kiln: %s)" % (n, s, kiln))
    print("%-24s %10s %10s %10s" % ("", "plan (-n)", "full run", "no-op"))
    print("%-24s %9.3fs %9.2fs %9.3fs" % ("map{} (%d shards)" % s, plan["map"], fm, noop["map"]))
    print("%-24s %9.3fs %9.2fs %9.3fs" % ("%d tasks" % n, plan["tasks"], ft, noop["tasks"]))
    print("%-24s %10s %9.2fs" % ("the items alone (sh)", "", bare))
    print("kiln's cost per item in the map: %.0f us ((%.2f s - %.2f s) / %d); as tasks: %.0f us per task"
          % ((fm - bare) / n * 1e6, fm, bare, n, (ft - bare) / n * 1e6))
    print("map full run / items alone: %.2fx; tasks / map: %.1fx" % (fm / bare, ft / fm))
    for root in roots.values():
        shutil.rmtree(root)


if __name__ == "__main__":
    main()
