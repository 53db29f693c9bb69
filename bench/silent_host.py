#!/usr/bin/env python3
"""silent_host.py — what a host that does not answer costs a run over the others. Two real
sshd servers (tests/e2e/sshhosts.py; root and openssh-server) and a third host whose
address accepts TCP connections and then says nothing (a server hung, or a network that
drops packets: ssh waits its 5 s ConnectTimeout each try). A chain of N short tasks runs
over the three hosts, so the scheduler places a task every ~0.2 s while kiln keeps retrying
the silent one; the same chain over the two live hosts alone is the floor. Builds given with
--kiln are timed in the same rounds, interleaved; medians.

  /usr/bin/python3 bench/silent_host.py [--tasks 40] [--rounds 3] [--kiln build/kiln [--kiln other/kiln]]
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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", type=int, default=40)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--kiln", action="append", help="repeatable: each build is timed in every round")
    a = ap.parse_args()
    builds = [os.path.abspath(k) for k in (a.kiln or [os.path.join(HERE, "../build/kiln")])]
    if sshhosts.skip_reason():
        sys.exit("skipped: %s" % sshhosts.skip_reason())
    lab = sshhosts.Lab({"v800": [], "v801": []})
    quiet = sshhosts.SilentHost()
    ws = tempfile.mkdtemp(prefix="kiln-silent-")
    try:
        live = lab.hosts_lua({"v800": "jobs = 2", "v801": "jobs = 2"})
        silent = live.rstrip().rstrip("}") + quiet.hosts_entry("vsilent", lab) + "}\n"
        with open(os.path.join(ws, "live.lua"), "w") as f:
            f.write(live)
        with open(os.path.join(ws, "silent.lua"), "w") as f:
            f.write(silent)
        with open(os.path.join(ws, "kiln.lua"), "w") as f:
            for i in range(a.tasks):
                dep = ', inputs = {"c/%d.txt"}' % (i - 1) if i else ""
                f.write('task { name = "c%d"%s, outputs = {"c/%d.txt"}, run = "sleep 0.1; echo %d > c/%d.txt" }\n'
                        % (i, dep, i, i, i))
        times = {}
        for r in range(a.rounds):
            for k, kiln in enumerate(builds):
                for hosts in ("live", "silent"):
                    lab.reset()
                    shutil.rmtree(os.path.join(ws, ".kiln"), ignore_errors=True)
                    shutil.rmtree(os.path.join(ws, "c"), ignore_errors=True)
                    start = time.perf_counter()
                    p = subprocess.run([kiln, "run", "--executor", "ssh", "--hosts", hosts + ".lua"], cwd=ws,
                                       capture_output=True, text=True, timeout=900)
                    took = time.perf_counter() - start
                    if p.returncode != 0:
                        sys.exit("failed (%s, %s):\n%s%s" % (kiln, hosts, p.stdout[-3000:], p.stderr[-2000:]))
                    times.setdefault((k, hosts), []).append(took)
            print("round %d done" % (r + 1), file=sys.stderr)
        print("%d chained tasks over two live ssh hosts, and with a silent third (medians of %d):"
              % (a.tasks, a.rounds))
        for k, kiln in enumerate(builds):
            base = statistics.median(times[(k, "live")])
            with_silent = statistics.median(times[(k, "silent")])
            print("  %s: live hosts %.2f s, with the silent host %.2f s (+%.2f s)"
                  % (kiln, base, with_silent, with_silent - base))
    finally:
        quiet.close()
        lab.close()
        shutil.rmtree(ws, ignore_errors=True)


if __name__ == "__main__":
    main()
