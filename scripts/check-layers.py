#!/usr/bin/env python3
"""check-layers.py — prints the folder-level include graph of kiln's C sources and exits
non-zero when the house's rules are broken:

- a folder includes one on a higher floor. Floors, bottom up: base/ (what every part
  uses), cache/state/ (state.db's owners) and kernels/, cache/ (keys, verdicts, the store),
  plots/ (reads results through cache/), then runner/'s rooms:
  runner/recipe/ (Lua to a graph), runner/exec/ (starting attempts) with runner/exec/ssh/
  above it, runner/sched/ (the DAG over the executors), runner/cli/ (the verbs). A folder
  may include its own floor's files; a room inside another (exec/ssh/ in exec/) counts as
  its own folder.
- the scheduler (runner/sched/) names an executor;
- a folder holds more than 15 C files, or a C file is over 700 lines;
- docs/architecture.md does not name a C file (by its path from the root).
tests/ may include anything."""
import os
import re
import sys

FLOORS = {"base": 0, "cache/state": 1, "kernels": 1, "cache": 2, "plots": 3, "runner/recipe": 4, "runner/exec": 5,
          "runner/exec/ssh": 6, "runner/exec/slurm": 6, "runner/sched": 7, "runner/cli": 8}
MAX_FILES, MAX_LINES = 15, 700
root = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


def room_of(rel):
    """The deepest room rel (a path from the root) lies in, or None."""
    best = None
    for room in FLOORS:
        if (rel == room or rel.startswith(room + "/")) and (best is None or len(room) > len(best)):
            best = room
    return best


edges, bad, sources = {}, [], []
for top in ("base", "cache", "kernels", "plots", "runner"):
    for dirpath, _, files in os.walk(os.path.join(root, top)):
        rel_dir = os.path.relpath(dirpath, root)
        c_files = [f for f in files if f.endswith(".c")]
        if len(c_files) > MAX_FILES:
            bad.append("%s/ holds %d C files (at most %d: give it rooms)" % (rel_dir, len(c_files), MAX_FILES))
        for name in sorted(files):
            if not name.endswith((".c", ".h", ".cu")):
                continue
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root)
            folder = room_of(rel)
            if folder is None:
                bad.append("%s is in no room (runner/ keeps its code in recipe/, exec/, sched/, cli/)" % rel)
                continue
            if name.endswith((".c", ".cu")):
                sources.append(rel)
            with open(path, encoding="utf-8", errors="replace") as f:
                lines = f.readlines()
            if name.endswith(".c") and len(lines) > MAX_LINES:
                bad.append("%s has %d lines (at most %d: split it by what it does)" % (rel, len(lines), MAX_LINES))
            for lineno, line in enumerate(lines, 1):
                if folder == "runner/sched" and re.search(r'"(local|slurm|ssh|plot)"', line):
                    bad.append("%s:%d: the scheduler names an executor (say it with an Executor field)" % (rel, lineno))
                m = re.match(r'\s*#\s*include\s+"([^"]+)"', line)
                if not m:
                    continue
                target = os.path.relpath(os.path.normpath(os.path.join(dirpath, m.group(1))), root)
                to = room_of(target)
                if to is None or to == folder:
                    continue
                edges[(folder, to)] = edges.get((folder, to), 0) + 1
                if FLOORS[to] >= FLOORS[folder]:
                    bad.append("%s:%d: %s/ includes %s (floor %d includes floor %d)" % (
                        rel, lineno, folder, target, FLOORS[folder], FLOORS[to]))

with open(os.path.join(root, "docs", "architecture.md"), encoding="utf-8") as f:
    architecture = f.read()
for rel in sources:
    if not re.search(r"(?<![\w/])" + re.escape(rel) + r"(?![\w.])", architecture):
        bad.append("docs/architecture.md does not name %s" % rel)

for (a, b), n in sorted(edges.items(), key=lambda e: (-FLOORS[e[0][0]], e[0])):
    print("%-16s -> %-14s %3d include%s" % (a + "/", b + "/", n, "" if n == 1 else "s"))
for line in bad:
    print("layers: " + line)
sys.exit(1 if bad else 0)
