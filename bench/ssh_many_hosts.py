#!/usr/bin/env python3
"""ssh_many_hosts.py — a lab grown to many GPU servers: T one-GPU tasks (each sleeps a few
seconds, as an evaluation would) over N ssh hosts of G GPUs each, through `kiln run
--executor ssh`, beside a glue script that sends the same commands over multiplexed ssh
with CUDA_VISIBLE_DEVICES dealt out round-robin (xargs -P, one slot per GPU). The hosts are
real sshd servers on loopback ports (tests/e2e/sshhosts.py; needs root and openssh-server),
each with an nvidia-smi that prints its readings and counts how often it was asked. Runs
are interleaved; medians are printed, with the nvidia-smi readings kiln asked for and the
ssh sessions they ran in.

  /usr/bin/python3 bench/ssh_many_hosts.py [--hosts 24] [--gpus 4] [--tasks 80] [--sleep 1.5]
                                           [--rounds 3] [--kiln build/kiln [--kiln other/kiln]]

All of them share this machine's cores, so the figures are an upper bound of what kiln
spends: on a real lab the hosts' side runs on the hosts.
"""
import argparse
import os
import shutil
import statistics
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "../tests/e2e"))
import ssh_hosts  # noqa: E402  (bench/: this script's folder)
import sshhosts  # noqa: E402

# each reading notes the session it ran in: an ssh command is a session of its own
COUNTING_NVIDIA_SMI = '#!/bin/sh\ncut -d" " -f6 /proc/$$/stat >> "$HOME/nvidia-smi.count"\ncat "$HOME/gpus.csv"\n'


def readings_asked(lab):
    """(readings, the ssh sessions they ran in) since the last call, over every host."""
    n = sessions = 0
    for h in lab.hosts.values():
        p = os.path.join(h.home, "nvidia-smi.count")
        if os.path.exists(p):
            with open(p) as f:
                seen = f.read().split()
            n, sessions = n + len(seen), sessions + len(set(seen))
            os.remove(p)
    return n, sessions


def timed(cmd, cwd):
    """ssh_hosts.py's timing of cmd, said as it goes."""
    took = ssh_hosts.timed(cmd, cwd)
    sys.stderr.write("  %.2f s  %s\n" % (took, os.path.basename(cmd[0]) if cmd[0] != "sh" else "multiplexed ssh loop"))
    return took


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--hosts", type=int, default=24)
    ap.add_argument("--gpus", type=int, default=4)
    ap.add_argument("--tasks", type=int, default=80)
    ap.add_argument("--sleep", type=float, default=1.5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--kiln", action="append", help="repeatable: each build is timed in every round")
    a = ap.parse_args()
    why = sshhosts.skip_reason()
    if why:
        sys.exit("ssh_many_hosts.py " + why)
    kilns = [os.path.abspath(k) for k in (a.kiln or [os.path.join(HERE, "../build/kiln")])]
    label = {k: "kiln" if len(kilns) == 1 else "kiln %s" % os.path.relpath(k) for k in kilns}
    lab = sshhosts.Lab({"g%02d" % i: sshhosts.gpus(a.gpus) for i in range(a.hosts)})
    work = tempfile.mkdtemp(prefix="kiln-bench-many-")
    try:
        for h in lab.hosts.values():
            with open(os.path.join(h.bin, "nvidia-smi"), "w") as f:
                f.write(COUNTING_NVIDIA_SMI)
        with open(os.path.join(work, "hosts.lua"), "w") as f:
            f.write(lab.hosts_lua())
        with open(os.path.join(work, "kiln.lua"), "w") as f:
            f.write('for i = 1, %d do\n  task { name = "eval/" .. i, gpus = 1, outputs = {"out/" .. i .. ".txt"}, '
                    'run = "sleep %g; echo $CUDA_VISIBLE_DEVICES > out/" .. i .. ".txt" }\nend\n' % (a.tasks, a.sleep))
        names = list(lab.hosts)
        lines = []  # task i to slot i: host i % N, device (i / N) % G, as a glue script deals them
        for i in range(a.tasks):
            h = lab.hosts[names[i % a.hosts]]
            lines.append("%s\tmkdir -p %s/out && cd %s && CUDA_VISIBLE_DEVICES=%d sleep %g && echo %d > out/%d.txt"
                         % (h.name, h.workdir(), h.workdir(), (i // a.hosts) % a.gpus, a.sleep, i, i))
        with open(os.path.join(work, "commands.tsv"), "w") as f:
            f.write("\n".join(lines) + "\n")
        mux_dir = tempfile.mkdtemp(prefix="mux-", dir="/tmp")
        mux = ["sh", "-c", "tr '\\t' '\\n' < commands.tsv | xargs -d '\\n' -n 2 -P %d ssh -F %s -o BatchMode=yes "
               "-o ControlMaster=auto -o ControlPersist=60 -o ControlPath=%s/%%C" % (a.hosts * a.gpus, lab.ssh_config, mux_dir)]
        kiln_run = ["run", "--executor", "ssh", "--hosts", "hosts.lua", "-j", str(a.hosts * a.gpus)]
        for kiln in kilns:  # warm-up: masters up, kiln's tools on every host, known_hosts filled
            timed([kiln] + kiln_run, work)
            shutil.rmtree(os.path.join(work, ".kiln"), ignore_errors=True)
        timed(mux, work)
        readings_asked(lab)
        times = {label[k]: [] for k in kilns}
        asked = {label[k]: [] for k in kilns}
        times["multiplexed ssh loop"] = []
        for _ in range(a.rounds):
            for kiln in kilns:
                shutil.rmtree(os.path.join(work, ".kiln"), ignore_errors=True)
                shutil.rmtree(os.path.join(work, "out"), ignore_errors=True)
                times[label[kiln]].append(timed([kiln] + kiln_run, work))
                asked[label[kiln]].append(readings_asked(lab))
            times["multiplexed ssh loop"].append(timed(mux, work))
        waves = -(-a.tasks // (a.hosts * a.gpus))
        print("%d one-GPU tasks (sleep %gs) over %d ssh hosts of %d GPUs (%d wave%s: %.1f s of sleeping), "
              "%d rounds interleaved" % (a.tasks, a.sleep, a.hosts, a.gpus, waves, "s" if waves > 1 else "",
                                         waves * a.sleep, a.rounds))
        loop = statistics.median(times["multiplexed ssh loop"])
        print("%-40s %10s %12s %18s %14s" % ("", "median s", "vs mux loop", "nvidia-smi asked", "ssh sessions"))
        for name, ts in times.items():
            m = statistics.median(ts)
            n = "%d" % statistics.median(r for r, _ in asked[name]) if name in asked else ""
            sess = "%d" % statistics.median(s for _, s in asked[name]) if name in asked else ""
            print("%-40s %10.2f %11.2fx %18s %14s" % (name, m, m / loop, n, sess))
        print("(kiln also reads each host's GPUs, leases one per task, brings each output back and records it)")
    finally:
        lab.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
