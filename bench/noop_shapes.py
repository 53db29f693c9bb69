#!/usr/bin/env python3
"""noop_shapes.py — the no-op re-run of kiln beside ninja on the DAG shapes people run, in
one interleaved run: a 300-task grid, three workflow-shaped DAGs (after the WfCommons
traces' structure: Montage, Epigenomics, 1000Genome) of a few hundred to a few thousand
tasks, and 10k and 100k-task grids; then, for kiln alone, the plan (`kiln run -n`) of a
1M-task grid and the no-op re-runs of 100k- and 1M-item map{}s (bench/compare.py's
workspaces), each build's runs interleaved, with medians and peak memory.

Both tools get the same tasks with the same command (`cat INPUTS > OUTPUT`, files in
per-stage folders) from one generated description; each is built once, then their no-op
re-runs alternate, REPEAT times, and the medians and the ratio kiln / ninja are printed.

usage: bench/noop_shapes.py [--kiln build/kiln ...] [--repeat 11] [--big 10000,100000]
                            [--plan 1000000] [--maps 100000,1000000]
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def grid(n):
    """n independent tasks: a shared input and a leaf each."""
    tasks = [("t%d" % i, ["src/shared.txt", "src/leaf%d.txt" % i], "out/t%d.txt" % i) for i in range(n)]
    return ["src/shared.txt"] + ["src/leaf%d.txt" % i for i in range(n)], tasks


def montage(n):
    """Montage: project each image, diff overlapping pairs, fit a background model from all
    diffs, correct each image, add them into one mosaic, shrink it, make a jpeg."""
    srcs = ["src/img%d.fits" % i for i in range(n)]
    tasks = [("project/%d" % i, [srcs[i]], "proj/%d.fits" % i) for i in range(n)]
    diffs = []
    for i in range(n):
        for j in (i + 1, i + 3):
            if j < n:
                diffs.append(("diff/%d_%d" % (i, j), ["proj/%d.fits" % i, "proj/%d.fits" % j], "diff/%d_%d.fits" % (i, j)))
    tasks += diffs
    tasks.append(("concat", [d[2] for d in diffs], "model/fits.tbl"))
    tasks.append(("bgmodel", ["model/fits.tbl"], "model/corrections.tbl"))
    tasks += [("background/%d" % i, ["proj/%d.fits" % i, "model/corrections.tbl"], "corr/%d.fits" % i) for i in range(n)]
    tasks.append(("add", ["corr/%d.fits" % i for i in range(n)], "mosaic/mosaic.fits"))
    tasks.append(("shrink", ["mosaic/mosaic.fits"], "mosaic/small.fits"))
    tasks.append(("jpeg", ["mosaic/small.fits"], "mosaic/mosaic.jpg"))
    return srcs, tasks


def epigenomics(lanes, chunks):
    """Epigenomics: per lane, split the reads into chunks; each chunk goes through filter,
    sol2sanger, fastq2bfq and map; a lane's maps merge; all merges are indexed, then pileup."""
    srcs = ["src/lane%d.fastq" % l for l in range(lanes)]
    tasks = []
    for l in range(lanes):
        for c in range(chunks):
            tasks.append(("split/%d/%d" % (l, c), [srcs[l]], "split/%d/%d.fq" % (l, c)))
            prev = "split/%d/%d.fq" % (l, c)
            for step in ("filter", "sanger", "bfq", "map"):
                out = "%s/%d/%d.dat" % (step, l, c)
                tasks.append(("%s/%d/%d" % (step, l, c), [prev], out))
                prev = out
        tasks.append(("merge/%d" % l, ["map/%d/%d.dat" % (l, c) for c in range(chunks)], "merge/%d.dat" % l))
    tasks.append(("index", ["merge/%d.dat" % l for l in range(lanes)], "final/index.dat"))
    tasks.append(("pileup", ["final/index.dat"], "final/pileup.dat"))
    return srcs, tasks


def genome(individuals, chromosomes):
    """1000Genome: per chromosome, one task per individual chunk, their merge, a sifting;
    per chromosome and population, mutation overlap and frequency."""
    srcs = ["src/chr%d.vcf" % c for c in range(chromosomes)] + ["src/pop%d.txt" % p for p in range(5)]
    tasks = []
    for c in range(chromosomes):
        for i in range(individuals):
            tasks.append(("individuals/%d/%d" % (c, i), ["src/chr%d.vcf" % c], "ind/%d/%d.tar" % (c, i)))
        tasks.append(("merge/%d" % c, ["ind/%d/%d.tar" % (c, i) for i in range(individuals)], "merged/%d.tar" % c))
        tasks.append(("sifting/%d" % c, ["src/chr%d.vcf" % c], "sift/%d.txt" % c))
        for p in range(5):
            for kind in ("overlap", "frequency"):
                tasks.append(("%s/%d/%d" % (kind, c, p), ["merged/%d.tar" % c, "sift/%d.txt" % c, "src/pop%d.txt" % p],
                              "%s/%d/%d.txt" % (kind, c, p)))
    return srcs, tasks


def write(root, srcs, tasks):
    for s in srcs:
        os.makedirs(os.path.join(root, os.path.dirname(s)), exist_ok=True)
        with open(os.path.join(root, s), "w") as f:
            f.write(s + "\n")
    with open(os.path.join(root, "kiln.lua"), "w") as f:
        for name, ins, out in tasks:
            f.write('task { name = "%s", inputs = {%s}, outputs = {"%s"}, run = "cat %s > %s" }\n'
                    % (name, ", ".join('"%s"' % i for i in ins), out, " ".join(ins), out))
    with open(os.path.join(root, "build.ninja"), "w") as f:
        f.write("rule cat\n  command = cat $in > $out\n")
        for name, ins, out in tasks:
            f.write("build %s: cat %s\n" % (out, " ".join(ins)))
    for _, _, out in tasks:  # both tools expect the folders (kiln makes them, ninja too)
        os.makedirs(os.path.join(root, os.path.dirname(out)), exist_ok=True)


def timed(cmd, cwd):
    t0 = time.perf_counter()
    p = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    took = time.perf_counter() - t0
    if p.returncode != 0:
        sys.exit("failed: %s\n%s%s" % (" ".join(cmd), p.stdout[-1500:], p.stderr[-1500:]))
    return took, p.stdout


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kiln", action="append", help="a kiln binary (repeatable: each is timed, interleaved; "
                    "default build/kiln)")
    ap.add_argument("--repeat", type=int, default=11)
    ap.add_argument("--big", default="10000,100000", help="grid sizes beyond the small shapes ('' for none)")
    ap.add_argument("--plan", type=int, default=1000000, help="tasks of the planned grid (0: none)")
    ap.add_argument("--maps", default="100000,1000000", help="items of the map{}s whose no-op is timed ('' for none)")
    a = ap.parse_args()
    kilns = [os.path.abspath(k) for k in (a.kiln or [os.path.join(HERE, "..", "build", "kiln")])]
    ninja = shutil.which("ninja")
    if not ninja:
        sys.exit("ninja is not installed (bench/install-peers.sh)")
    shapes = [("grid 300", grid(300)), ("montage 120 images", montage(120)),
              ("epigenomics 8 lanes x 24 chunks", epigenomics(8, 24)), ("1000genome 10 chr x 40", genome(40, 10))]
    shapes += [("grid %d" % n, grid(n)) for n in map(int, filter(None, a.big.split(",")))]
    print("no-op re-run, median of %d interleaved runs each (%s)" % (a.repeat, "ninja " + subprocess.run(
        [ninja, "--version"], capture_output=True, text=True).stdout.strip()))
    for i, k in enumerate(kilns):
        print("kiln %d: %s" % (i + 1, k))
    print("%-34s %7s %s %10s %s" % ("DAG", "tasks", " ".join("%9s" % ("kiln%d ms" % (i + 1)) for i in range(len(kilns))),
                                    "ninja ms", " ".join("%8s" % ("k%d/ninja" % (i + 1)) for i in range(len(kilns)))))
    for label, (srcs, tasks) in shapes:
        roots = []
        try:
            for k in kilns:  # a workspace each: state.db's schema may differ between builds
                root = tempfile.mkdtemp(prefix="kiln-shape-")
                roots.append(root)
                write(root, srcs, tasks)
                timed([k, "run", "-j", "2"], root)
            timed([ninja, "-j", "2"], roots[0])
            ks, n = [[] for _ in kilns], []
            for _ in range(a.repeat):
                for i, k in enumerate(kilns):
                    t, out = timed([k, "run"], roots[i])
                    if " 0 ran" not in out:
                        sys.exit("kiln's re-run was not a no-op: " + out[-500:])
                    ks[i].append(t)
                t, out = timed([ninja], roots[0])
                if "no work to do" not in out:
                    sys.exit("ninja's re-run was not a no-op: " + out[-500:])
                n.append(t)
            kms = [statistics.median(k) * 1000 for k in ks]
            nm = statistics.median(n) * 1000
            print("%-34s %7d %s %10.1f %s" % (label, len(tasks), " ".join("%9.1f" % m for m in kms), nm,
                                              " ".join("%7.2fx" % (m / nm) for m in kms)))
            sys.stdout.flush()
        finally:
            for root in roots:
                shutil.rmtree(root, ignore_errors=True)
    sizes = ([("plan of a %d-task grid" % a.plan, a.plan, False)] if a.plan else []) + [
        ("no-op of a %d-item map{}" % n, n, True) for n in map(int, filter(None, a.maps.split(",")))]
    for label, n, as_map in sizes:
        kiln_alone(label, n, as_map, kilns, max(3, a.repeat // 3))


def time_peak(cmd, cwd):
    """Wall seconds and peak RSS (MiB) of cmd, and its output."""
    p = subprocess.run(["/usr/bin/time", "-f", "%e %M"] + cmd, cwd=cwd, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit("%s failed in %s: %s" % (" ".join(cmd), cwd, (p.stdout + p.stderr)[-800:]))
    wall, kib = p.stderr.strip().splitlines()[-1].split()
    return float(wall), int(kib) / 1024, p.stdout + p.stderr


def kiln_alone(label, n, as_map, kilns, repeat):
    """The plan of an n-task grid, or the no-op of an n-item map{}, timed for each kiln build
    in turn, repeat rounds (a workspace each: state.db's schema may differ between builds)."""
    sys.path.insert(0, HERE)
    import compare  # its generators: the workspaces of its --plan and --noop rows
    roots = []
    try:
        for k in kilns:
            root = tempfile.mkdtemp(prefix="kiln-alone-")
            roots.append(root)
            if as_map:
                compare.generate_map(root, n)
                time_peak([k, "run"], root)
            else:
                compare.generate(root, n)
        os.sync()
        args = ["run"] if as_map else ["run", "-n"]
        walls, peaks = [[] for _ in kilns], [[] for _ in kilns]
        for r in range(repeat):
            for i in (range(len(kilns)) if r % 2 == 0 else reversed(range(len(kilns)))):
                wall, peak, out = time_peak([kilns[i]] + args, roots[i])
                if as_map and " 0 ran" not in out:
                    sys.exit("kiln's re-run was not a no-op: " + out[-500:])
                walls[i].append(wall)
                peaks[i].append(peak)
        # with the range: on a VM whose freed memory goes back to the host, a first touch
        # costs the host's fault and runs come out bimodal (bench/README, session 22)
        floor = compare.stat_floor(roots[0], n) if as_map else None
        print("%-34s %s%s" % (label, "   ".join("kiln%d %.2f s (median of %d, %.2f-%.2f), peak %.0f MiB" % (
            i + 1, statistics.median(walls[i]), repeat, min(walls[i]), max(walls[i]), max(peaks[i]))
            for i in range(len(kilns))), "" if floor is None else
            "   (its %d stats alone, bare C on %d cores: %.2f s)" % (2 * n, os.cpu_count(), floor)))
        sys.stdout.flush()
    finally:
        for root in roots:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
