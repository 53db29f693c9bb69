#!/usr/bin/env python3
"""ssh_hosts.py — 100 trivial tasks over three ssh hosts: kiln's ssh executor against the
same commands sent by a plain parallel `ssh host cmd` loop (xargs -P, as a group's glue
script would), and that loop over multiplexed connections. The hosts are three real sshd
servers on loopback ports (tests/e2e/sshhosts.py; needs root and openssh-server). Runs are
interleaved; medians and ratios are printed.

  /usr/bin/python3 bench/ssh_hosts.py [--tasks 100] [--rounds 5] [--chains] [--kiln build/kiln [--kiln other/kiln]]

With --kiln twice (a build before a change and after), both are timed in the same rounds.
--chains: the tasks in three chains instead (each step appends to the file the step before
made, as a pipeline's stages do), and the loops run each chain's commands one after the
other on one host.
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
sys.path.insert(0, os.path.join(HERE, "../tests/e2e"))
import sshhosts  # noqa: E402


def timed(cmd, cwd, env=None):
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    took = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit("failed: %s\n%s%s" % (" ".join(cmd), proc.stdout[-2000:], proc.stderr[-2000:]))
    return took


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--kiln", action="append", help="repeatable: each build is timed in every round")
    ap.add_argument("--chains", action="store_true", help="three chains of dependent steps")
    a = ap.parse_args()
    why = sshhosts.skip_reason()
    if why:
        sys.exit("ssh_hosts.py " + why)
    kilns = [os.path.abspath(k) for k in (a.kiln or [os.path.join(HERE, "../build/kiln")])]
    label = {k: "kiln --executor ssh" if len(kilns) == 1 else "kiln %s" % os.path.relpath(k) for k in kilns}
    lab = sshhosts.Lab({"v800": [], "v801": [], "v802": []})
    jobs = 8  # per host, as hosts{} says below and as the loop runs
    try:
        work = tempfile.mkdtemp(prefix="kiln-bench-ssh-")
        with open(os.path.join(work, "hosts.lua"), "w") as f:
            # as many at once as the loop runs: slots and CPUs (these hosts share this machine's cores)
            f.write(lab.hosts_lua({n: "jobs = %d, cpus = %d" % (jobs, jobs) for n in lab.hosts}))
        step = ("cat out/{prev}.txt > out/{i}.txt; echo {i} >> out/{i}.txt" if a.chains
                else "echo {i} > out/{i}.txt")
        with open(os.path.join(work, "kiln.lua"), "w") as f:
            if a.chains:  # step i reads step i - 3: chain i % 3
                f.write('for i = 1, %d do\n  task { name = "t" .. i, inputs = i > 3 and {"out/" .. (i - 3) .. ".txt"} or nil, '
                        'outputs = {"out/" .. i .. ".txt"}, run = (i > 3 and "cat out/" .. (i - 3) .. ".txt > out/" .. i .. '
                        '".txt; " or "") .. "echo " .. i .. " >> out/" .. i .. ".txt" }\nend\n' % a.tasks)
            else:
                f.write('for i = 1, %d do\n  task { name = "t" .. i, outputs = {"out/" .. i .. ".txt"}, '
                        'run = "echo " .. i .. " > out/" .. i .. ".txt" }\nend\n' % a.tasks)
        names = list(lab.hosts)
        # the loop: each command to host i % 3, 3 x jobs at once, as a glue script would
        lines = []
        for i in range(1, a.tasks + 1):
            h = lab.hosts[names[i % 3]]
            cmd = (step if a.chains and i > 3 else "echo {i} > out/{i}.txt").format(i=i, prev=i - 3)
            lines.append("%s\t%s\tmkdir -p %s/out && cd %s && %s" % (h.name, h.workdir(), h.workdir(), h.workdir(), cmd))
        with open(os.path.join(work, "commands.tsv"), "w") as f:
            f.write("\n".join(lines) + "\n")
        cfg = lab.ssh_config
        mux_dir = tempfile.mkdtemp(prefix="mux-", dir="/tmp")
        mux_opts = "-o ControlMaster=auto -o ControlPersist=60 -o ControlPath=%s/%%C" % mux_dir
        if a.chains:  # each chain's steps one after the other (its lines: every third), the chains side by side
            each = ("for c in 0 1 2; do awk -F '\\t' -v c=$c 'NR %% 3 == c { print $1 \"\\t\" $3 }' commands.tsv | "
                    "while IFS=\"$(printf '\\t')\" read -r h cmd; do ssh -F %s -o BatchMode=yes %s \"$h\" \"$cmd\" "
                    "< /dev/null || exit 1; done & done; wait")
            loop = ["sh", "-c", each % (cfg, "")]
            mux = ["sh", "-c", each % (cfg, mux_opts)]
        else:
            loop = ["sh", "-c", "cut -f1,3 commands.tsv | tr '\\t' '\\n' | xargs -d '\\n' -n 2 -P %d "
                    "ssh -F %s -o BatchMode=yes" % (3 * jobs, cfg)]
            mux = ["sh", "-c", "cut -f1,3 commands.tsv | tr '\\t' '\\n' | xargs -d '\\n' -n 2 -P %d "
                   "ssh -F %s -o BatchMode=yes %s" % (3 * jobs, cfg, mux_opts)]
        # warm-up: masters up for kiln and the multiplexed loop, known_hosts filled
        for kiln in kilns:
            timed([kiln, "run", "--executor", "ssh", "--hosts", "hosts.lua"], work)
            shutil.rmtree(os.path.join(work, ".kiln"), ignore_errors=True)
        timed(mux, work)
        times = {label[k]: [] for k in kilns}
        times.update({"plain ssh loop": [], "multiplexed ssh loop": []})
        for r in range(a.rounds):
            for kiln in kilns:
                shutil.rmtree(os.path.join(work, ".kiln"), ignore_errors=True)
                shutil.rmtree(os.path.join(work, "out"), ignore_errors=True)
                # the masters stay (ControlPersist), as between two runs of a working day
                times[label[kiln]].append(timed([kiln, "run", "--executor", "ssh", "--hosts", "hosts.lua"], work))
            times["plain ssh loop"].append(timed(loop, work))
            times["multiplexed ssh loop"].append(timed(mux, work))
        base = statistics.median(times["plain ssh loop"])
        print("%d trivial tasks%s over 3 ssh hosts (%d at once per host), %d rounds interleaved"
              % (a.tasks, " in 3 chains" if a.chains else "", jobs, a.rounds))
        mux_m = statistics.median(times["multiplexed ssh loop"])
        print("%-34s %10s %10s %12s" % ("", "median s", "vs loop", "vs mux loop"))
        for name, ts in times.items():
            m = statistics.median(ts)
            print("%-34s %10.2f %9.2fx %11.2fx" % (name, m, m / base, m / mux_m))
        print("(kiln also brings each output back (a tar after the log, same connection) and records it; the loops leave them there)")
    finally:
        lab.close()


if __name__ == "__main__":
    main()
