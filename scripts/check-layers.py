#!/usr/bin/env python3
"""check-layers.py — prints the folder-level include graph of kiln's C sources and exits
non-zero when a folder includes one on a higher floor. Floors, bottom up: base/ (what every
part uses), cache/ and kernels/, plots/ (reads results through cache/), runner/ (the
program). tests/ may include anything."""
import os
import re
import sys

FLOORS = {"base": 0, "cache": 1, "kernels": 1, "plots": 2, "runner": 3}
root = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
edges, bad = {}, []
for folder in FLOORS:
    for dirpath, _, files in os.walk(os.path.join(root, folder)):
        for name in sorted(files):
            if not name.endswith((".c", ".h", ".cu")):
                continue
            path = os.path.join(dirpath, name)
            with open(path, encoding="utf-8", errors="replace") as f:
                for lineno, line in enumerate(f, 1):
                    m = re.match(r'\s*#\s*include\s+"([^"]+)"', line)
                    if not m:
                        continue
                    target = os.path.relpath(os.path.normpath(os.path.join(dirpath, m.group(1))), root)
                    to = target.split(os.sep)[0]
                    if to not in FLOORS or to == folder:
                        continue
                    edges[(folder, to)] = edges.get((folder, to), 0) + 1
                    if FLOORS[to] >= FLOORS[folder]:
                        bad.append("%s:%d: %s/ includes %s (floor %d includes floor %d)" % (
                            os.path.relpath(path, root), lineno, folder, target, FLOORS[folder], FLOORS[to]))
for (a, b), n in sorted(edges.items(), key=lambda e: (-FLOORS[e[0][0]], e[0])):
    print("%-8s -> %-8s %3d include%s" % (a + "/", b + "/", n, "" if n == 1 else "s"))
for line in bad:
    print("upward: " + line)
sys.exit(1 if bad else 0)
