#!/usr/bin/env python3
"""compare.py — kiln beside ninja, make (and Snakemake when installed) on the same
N-task grid, in one run on this machine.

No-op, touch and one-leaf figures are medians of REPEAT runs. The full run is the mean of
two, on two fresh trees, timed in opposite tool orders (the machine's speed drifts).
Every task i runs the same shell command in every tool: `cat shared.txt leaf/i.txt > out/i.txt`.
For each tool and size it prints: full run (-j2), no-op re-run, re-run after a
content-preserving touch of shared.txt, re-run after one leaf changed, and the peak RSS of
the no-op. It also times loading, validating and planning a 100k-task recipe with kiln, and
with --noop N the no-op re-run of an N-task map{} grid (N item tasks, each with its key,
inputs, output and record; the first run is two shard processes instead of N spawns).

usage: bench/compare.py [--kiln build/kiln] [--sizes 1000,10000] [--plan 100000] [--noop 100000,1000000] [--tools kiln,ninja,make,snakemake]
"""
import argparse
import atexit
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPEAT = 5  # no-op, touch and one-leaf figures are medians of this many runs (the machine is noisy)
# ext4 without a journal (as here) treats inodes freed in the last 60 s (6 min while their
# table block is dirty) as taken, so creating files right after mass deletions (tests, an
# earlier benchmark's clean-up) is several times slower: sync, then wait that out.
SETTLE_S = 65


def generate(root, n):
    os.makedirs(os.path.join(root, "leaf"), exist_ok=True)
    with open(os.path.join(root, "shared.txt"), "w") as f:
        f.write("shared input\n")
    for i in range(n):
        with open(os.path.join(root, "leaf", "%d.txt" % i), "w") as f:
            f.write("leaf %d\n" % i)
    cmd = "cat shared.txt leaf/{i}.txt > out/{i}.txt"
    with open(os.path.join(root, "kiln.lua"), "w") as f:
        f.write("for i = 0, %d do\n  task { name = \"t\" .. i, inputs = {\"shared.txt\", \"leaf/\" .. i .. \".txt\"},\n"
                "    outputs = {\"out/\" .. i .. \".txt\"}, run = \"cat shared.txt leaf/\" .. i .. \".txt > out/\" .. i .. \".txt\" }\nend\n" % (n - 1))
    with open(os.path.join(root, "build.ninja"), "w") as f:
        f.write("rule cat\n  command = cat $in > $out\n")
        for i in range(n):
            f.write("build out/%d.txt: cat shared.txt leaf/%d.txt\n" % (i, i))
    with open(os.path.join(root, "Makefile"), "w") as f:
        f.write("all: %s\n" % " ".join("out/%d.txt" % i for i in range(n)))
        f.write("out/%.txt: shared.txt leaf/%.txt | out\n\tcat shared.txt leaf/$*.txt > $@\nout:\n\tmkdir -p out\n")
    with open(os.path.join(root, "Snakefile"), "w") as f:
        f.write("rule all:\n    input: expand('out/{i}.txt', i=range(%d))\n" % n)
        f.write("rule cat:\n    input: 'shared.txt', 'leaf/{i}.txt'\n    output: 'out/{i}.txt'\n"
                "    shell: 'cat {input} > {output}'\n")
    os.makedirs(os.path.join(root, "out"), exist_ok=True)
    return cmd


def commands(tool, kiln):
    return {
        "kiln": [kiln, "run", "-j", "2"],
        "ninja": ["ninja", "-j", "2"],
        "make": ["make", "-j", "2", "-s"],
        "snakemake": ["snakemake", "-j", "2", "-q"],
    }[tool]


def timed(cmd, cwd):
    """Wall seconds and peak RSS (MiB) of one command, through /usr/bin/time."""
    t0 = time.perf_counter()
    p = subprocess.run(["/usr/bin/time", "-f", "%M", *cmd], cwd=cwd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        sys.exit("%s failed in %s:\n%s%s" % (" ".join(cmd), cwd, p.stdout[-2000:], p.stderr[-2000:]))
    rss_kib = int(p.stderr.strip().splitlines()[-1])
    return wall, rss_kib / 1024


def full_run(tool, kiln, root):
    os.sync()  # the trees were just written: let writeback finish before anyone is timed
    time.sleep(1)
    return timed(commands(tool, kiln), root)[0]


def bench_tool(tool, n, kiln, root):
    """The figures for one tool on a tree generated beforehand. Trees are made before and
    deleted after all measurements: see SETTLE_S."""
    cmd = commands(tool, kiln)
    full = full_run(tool, kiln, root)
    first_noop, _ = timed(cmd, root)  # kiln re-hashes files written < 50 ms before it hashed them
    noops = [timed(cmd, root) for _ in range(REPEAT)]
    noop, rss = statistics.median(w for w, _ in noops), max(r for _, r in noops)
    touches, leaves = [], []
    for k in range(REPEAT if tool != "make" or n <= 1000 else 1):
        time.sleep(0.05)
        os.utime(os.path.join(root, "shared.txt"))
        touches.append(timed(cmd, root)[0])
        with open(os.path.join(root, "leaf", "%d.txt" % (n // 2 + k)), "a") as f:
            f.write("changed\n")
        leaves.append(timed(cmd, root)[0])
    return full, first_noop, noop, statistics.median(touches), statistics.median(leaves), rss


def plan_time(n, kiln, rounds=3):
    """Median wall time and peak RSS (MiB) of `kiln run -n` on a fresh n-task recipe."""
    root = tempfile.mkdtemp(prefix="kiln-plan-%d-" % n)
    try:
        generate(root, n)
        os.sync()  # the tree's writeback would otherwise share the cores with the first runs
        walls, peaks = [], []
        for _ in range(rounds):
            p = subprocess.run(["/usr/bin/time", "-f", "%e %M", kiln, "run", "-n"], cwd=root, capture_output=True,
                               text=True)
            if p.returncode != 0:
                sys.exit(p.stderr)
            wall, kib = p.stderr.strip().splitlines()[-1].split()
            walls.append(float(wall))
            peaks.append(int(kib) / 1024)
        return statistics.median(walls), max(peaks)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def generate_map(root, n):
    """n leaf files and a recipe whose n tasks are the items of one map{} (each its own
    task: key, inputs, output, record), so the first run is two shard processes writing n
    files instead of n processes: what makes a million-task no-op measurable here."""
    os.makedirs(os.path.join(root, "leaf"), exist_ok=True)
    os.makedirs(os.path.join(root, "out"), exist_ok=True)
    with open(os.path.join(root, "shared.txt"), "w") as f:
        f.write("shared input\n")
    for i in range(n):
        with open(os.path.join(root, "leaf", "%d.txt" % i), "w") as f:
            f.write("leaf %d\n" % i)
    with open(os.path.join(root, "cat.py"), "w") as f:
        f.write("import os, sys\nshared = open('shared.txt').read()\n"
                "for item in open(os.environ['KILN_ITEMS']).read().split():\n"
                "    tmp = 'out/%s.txt.tmp' % item\n"
                "    open(tmp, 'w').write(shared + open('leaf/%s.txt' % item).read())\n"
                "    os.rename(tmp, 'out/%s.txt' % item)\n")
    with open(os.path.join(root, "kiln.lua"), "w") as f:
        f.write("local items = {}\nfor i = 0, %d do items[#items + 1] = tostring(i) end\n"
                "map { name = \"t\", items = items, shards = 2, inputs = { \"shared.txt\", \"cat.py\" },\n"
                "      input = \"leaf/{item}.txt\", output = \"out/{item}.txt\", run = { \"/usr/bin/python3\", \"cat.py\" } }\n"
                % (n - 1))


def stat_floor(root, n):
    """Seconds a bare C loop takes to stat the n items' inputs and outputs of a map
    workspace on every core (bench/statfloor.c, best of three): what no no-op goes under
    here. None when no C compiler is at hand."""
    exe = os.path.join(tempfile.gettempdir(), "kiln-statfloor-%d" % os.getpid())
    if not os.path.exists(exe):
        cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
        if not cc or subprocess.run([cc, "-O2", "-pthread", "-o", exe, os.path.join(HERE, "statfloor.c")]).returncode:
            return None
        atexit.register(os.unlink, exe)
    return float(subprocess.run([exe, root, str(n)], capture_output=True, text=True, check=True).stdout)


def noop_time(n, kiln, rounds=3):
    """The first run's wall time, then the median wall time and peak RSS (MiB) of the
    no-op re-run, of an n-task map{} grid."""
    root = tempfile.mkdtemp(prefix="kiln-noop-%d-" % n)
    try:
        generate_map(root, n)
        os.sync()
        t0 = time.monotonic()
        p = subprocess.run([kiln, "run"], cwd=root, capture_output=True, text=True)
        first = time.monotonic() - t0
        if p.returncode != 0:
            sys.exit(p.stdout[-2000:] + p.stderr[-2000:])
        os.sync()  # the outputs' writeback would otherwise share the cores with the no-ops
        walls, peaks = [], []
        for _ in range(rounds):
            p = subprocess.run(["/usr/bin/time", "-f", "%e %M", kiln, "run"], cwd=root, capture_output=True,
                               text=True)
            if p.returncode != 0 or "0 ran" not in p.stdout + p.stderr:
                sys.exit("the re-run was not a no-op:\n" + p.stdout[-2000:] + p.stderr[-2000:])
            wall, kib = p.stderr.strip().splitlines()[-1].split()
            walls.append(float(wall))
            peaks.append(int(kib) / 1024)
        return first, statistics.median(walls), max(peaks), stat_floor(root, n)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kiln", default=os.path.join(HERE, "..", "build", "kiln"))
    ap.add_argument("--sizes", default="1000,10000")
    ap.add_argument("--plan", type=int, default=100000)
    ap.add_argument("--noop", default="", help="also time the no-op re-run of N-task map{} grids (N,N,...)")
    ap.add_argument("--tools", default="kiln,ninja,make,snakemake")
    a = ap.parse_args()
    kiln = os.path.abspath(a.kiln)
    tools = [t for t in a.tools.split(",") if t == "kiln" or shutil.which(t)]
    print("machine: %d CPUs; tools: %s" % (os.cpu_count(), ", ".join(tools)))
    sizes = [int(s) for s in a.sizes.split(",") if s.strip() and int(s) > 0]  # --sizes 0: the plan only
    roots = {}
    for n in sizes:
        for tool in tools:
            for rep in (0, 1):
                roots[tool, n, rep] = tempfile.mkdtemp(prefix="kiln-bench-%s-%d-%d-" % (tool, n, rep))
                generate(roots[tool, n, rep], n)
    os.sync()
    time.sleep(SETTLE_S)
    print("%-10s %7s %9s %10s %9s %9s %9s %9s" % ("tool", "tasks", "full", "1st no-op", "no-op", "touch", "one-leaf",
                                                 "noop-RSS"))
    try:
        for n in sizes:
            rows = {}
            for tool in tools:
                rows[tool] = bench_tool(tool, n, kiln, roots[tool, n, 0])
            second = {tool: full_run(tool, kiln, roots[tool, n, 1]) for tool in reversed(tools)}
            for tool in tools:
                full, first, noop, touch, leaf, rss = rows[tool]
                print("%-10s %7d %8.3fs %9.3fs %8.3fs %8.3fs %8.3fs %6.1fMiB" % (
                    tool, n, (full + second[tool]) / 2, first, noop, touch, leaf, rss), flush=True)
            print("%-10s %7d full runs: %s" % ("", n, ", ".join(
                "%s %.2fs then %.2fs" % (tool, rows[tool][0], second[tool]) for tool in tools)), flush=True)
    finally:
        for root in roots.values():
            shutil.rmtree(root, ignore_errors=True)
    if a.plan:
        wall, peak = plan_time(a.plan, kiln)
        print("kiln: load + validate + plan (run -n) of a %d-task recipe: %.2fs (median of 3), peak %.0f MiB"
              % (a.plan, wall, peak), flush=True)
    for n in (int(s) for s in a.noop.split(",") if s.strip()):
        first, wall, peak, floor = noop_time(n, kiln)
        print("kiln: no-op re-run of a %d-task map{} grid: %.2fs (median of 3), peak %.0f MiB (first run %.0fs)%s"
              % (n, wall, peak, first, "" if floor is None else
                 "; its %d stats alone, bare C on %d cores: %.2fs" % (2 * n, os.cpu_count(), floor)), flush=True)


if __name__ == "__main__":
    main()
