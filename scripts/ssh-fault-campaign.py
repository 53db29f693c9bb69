#!/usr/bin/env python3
"""ssh-fault-campaign.py [TRIALS] [SEED] [grid|chains] [kill|int] — kill -9 (or Ctrl-C: int) of kiln at random points of runs over three
ssh hosts (the test suite's sshd servers, tests/e2e/sshhosts.py; needs root), each followed by
a run to the end and the checks: every output holds exactly what its task writes, no task's
command runs to its end twice in that run, no remote job is left running, and a no-op run
after it all starts nothing. A task whose attempt a kill struck before it was recorded is taken up
by the next run (its job there is found and re-attached: counted), else started again (counted).
No host goes away here, so no attempt may be called lost with its host (one whose start never
got there is counted apart). The kills land between an uninterrupted run's first start and its
end, timed first. Prints counts, and the runs after the kills' times. The shape:
a grid of 12 independent tasks (default), chains: 48 short tasks in 4 chains, so kills
strike between one task's end and the next one's start, or map: a map{} of 60 items in three
shards, one a host, where the count is of items: one made there before a kill (its output
whole there, its line in the host's trace) and made again after it is redone, and each kill
may cost at most one a shard (the last item a shard made is recorded only once it has moved
on, or ended: an unrecorded one runs again); none with KILN_CAMPAIGN_ATOMIC=1, where the map
says its outputs appear whole (atomic_outputs), so a made item is kept however its shard ends. With int, each interrupted kiln must
end with status 130 (or 0, done before the signal) and leave no job running on any host.

  /usr/bin/python3 scripts/ssh-fault-campaign.py 30 7 [chains]
"""
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "../tests/e2e"))
sys.path.insert(0, HERE)
import sshhosts  # noqa: E402
from campaign_timing import time_uninterrupted, trial_ended  # noqa: E402

KILN = os.environ.get("KILN") or os.path.join(HERE, "../build/kiln")
SHAPE = sys.argv[3] if len(sys.argv) > 3 else "grid"
TASKS = 48 if SHAPE == "chains" else 60 if SHAPE == "map" else 12
SHARDS = 3
ATOMIC = os.environ.get("KILN_CAMPAIGN_ATOMIC") == "1"  # the map declares atomic_outputs (its worker renames)
SIGNAL = sys.argv[4] if len(sys.argv) > 4 else "kill"


def run(ws, *args, timeout=300):
    return subprocess.run([KILN, "run", "--executor", "ssh", "--hosts", "hosts.lua", *args], cwd=ws,
                          capture_output=True, text=True, timeout=timeout)


def starts(lab, word="start"):
    out = []
    for h in lab.hosts.values():
        p = os.path.join(h.home, "trace.txt")
        if os.path.exists(p):
            with open(p) as f:
                out += [line.split()[1] for line in f if line.startswith(word + " ")]
    return out


def map_workspace(ws):
    """A map of TASKS items over SHARDS hosts: each item's output written beside and renamed
    into place, then its end in the host's trace; o/N.txt as the grid's, so the checks hold."""
    os.makedirs(os.path.join(ws, "in"))
    for i in range(1, TASKS + 1):
        with open(os.path.join(ws, "in/%d.txt" % i), "w") as f:
            f.write("value-%d\n" % i)
    with open(os.path.join(ws, "work.sh"), "w") as f:
        f.write('while read it; do echo "start $it" >> $HOME/trace.txt; sleep 0.$((it % 3 + 1)); '
                'cp in/$it.txt o/$it.tmp && mv o/$it.tmp o/$it.txt; echo "end $it" >> $HOME/trace.txt; done < "$1"\n')
    with open(os.path.join(ws, "kiln.lua"), "w") as f:
        f.write("local items = {}\nfor i = 1, %d do items[#items + 1] = tostring(i) end\n"
                "map { name = 'm', items = items, shards = %d, hosts = {'v800', 'v801', 'v802'}, inputs = {'work.sh'},\n"
                "      input = 'in/{item}.txt', output = 'o/{item}.txt', atomic_outputs = %s, run = 'sh work.sh {items}' }\n" % (TASKS, SHARDS, "true" if ATOMIC else "false"))
    return ws


def main():
    trials = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    rng = random.Random(int(sys.argv[2]) if len(sys.argv) > 2 else 7)
    why = sshhosts.skip_reason()
    if why:
        sys.exit("ssh-fault-campaign.py " + why)
    lab = sshhosts.Lab({n: [(0, 81920, 100, 0), (1, 81920, 100, 0)] for n in ("v800", "v801", "v802")})
    t0 = time.time()
    failures = swept = restarts = adopted = never_there = redone = 0
    rerun_s = []

    def fresh_workspace():
        ws = tempfile.mkdtemp(prefix="kiln-sshfault-")
        for h in lab.hosts.values():
            shutil.rmtree(h.workdir(), ignore_errors=True)
            if os.path.exists(os.path.join(h.home, "trace.txt")):
                os.remove(os.path.join(h.home, "trace.txt"))
        with open(os.path.join(ws, "hosts.lua"), "w") as f:
            f.write(lab.hosts_lua())
        if SHAPE == "map":
            return map_workspace(ws)
        with open(os.path.join(ws, "kiln.lua"), "w") as f:
            sleep, extra = (("'0.1'", "inputs = i > 4 and {'o/' .. (i - 4) .. '.txt'} or nil") if SHAPE == "chains"
                            else ("'0.' .. (i % 7 + 2)", "gpus = i % 2"))
            f.write(("for i = 1, %d do\n  local sleep = %s\n  task { name = 't' .. i, outputs = {'o/' .. i .. '.txt'}, %s,\n"
                     "    run = 'echo start $KILN_TASK >> $HOME/trace.txt; sleep ' .. sleep .. "
                     "'; echo value-' .. i .. ' > o/' .. i .. '.txt; echo end $KILN_TASK >> $HOME/trace.txt' }\nend\n")
                    % (TASKS, sleep, extra))
        return ws

    try:
        # the kills land between an uninterrupted run's first start there and its end (timed
        # once here), so they strike while work is on its way on any machine
        ws = fresh_workspace()
        first_s, full_s, out, rc = time_uninterrupted([KILN, "run", "--executor", "ssh", "--hosts", "hosts.lua"], ws,
                                                      None, lambda: starts(lab))
        shutil.rmtree(ws, ignore_errors=True)
        if rc != 0 or first_s is None:
            sys.exit("an uninterrupted run failed: " + out[-1600:])
        window = (max(0.1, first_s - 0.2), max(first_s, full_s - 0.1))
        for trial in range(trials):
            ws = fresh_workspace()
            kills = rng.randint(1, 3)
            problems = []
            for _ in range(kills):  # kill -9 (or Ctrl-C) at a random point, maybe more than once
                p = subprocess.Popen([KILN, "run", "--executor", "ssh", "--hosts", "hosts.lua"], cwd=ws,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                time.sleep(rng.uniform(*window))
                p.send_signal(signal.SIGINT if SIGNAL == "int" else signal.SIGKILL)
                out = p.communicate(timeout=120)[0]
                if SIGNAL == "int":
                    if p.returncode not in (0, 130):
                        problems.append("a Ctrl-C'd kiln ended with status %d: %s" % (p.returncode, out[-800:]))
                    time.sleep(3)  # a start let go late would be running by now
                    if lab.jobs_running():
                        problems.append("Ctrl-C left jobs running there: %s\n%s" % (lab.jobs_running(), out[-800:]))
            time.sleep(0.5)  # a start still on its way after the kill shows up (and is stopped later)
            before, ends_before = starts(lab), starts(lab, "end")
            t_run = time.time()
            r = run(ws)
            rerun_s.append(time.time() - t_run)
            if "lost with host" in r.stdout:
                problems.append("an attempt was called lost with a host that never went: %s" % r.stdout[-800:])
            never_there += r.stdout.count("its start never got to host")
            if r.returncode != 0:
                problems.append("the run after the kills failed: %s" % (r.stdout[-800:] + r.stderr[-800:]))
            for i in range(1, TASKS + 1):
                path = os.path.join(ws, "o/%d.txt" % i)
                text = open(path).read() if os.path.exists(path) else None
                if text != "value-%d\n" % i:
                    problems.append("o/%d.txt holds %r" % (i, text))
            after, ends_after = starts(lab), starts(lab, "end")
            if SHAPE == "map":  # an item made before (or between) the kills and made again
                again = sum(n - 1 for n in (ends_after.count(t) for t in set(ends_after)) if n > 1)
                redone += again
                bound = 0 if ATOMIC else SHARDS * kills
                if again > bound:
                    problems.append("%d items made again after %d kills (at most %d): %s"
                                    % (again, kills, bound, sorted(ends_after, key=int)))
            elif any(ends_after.count(t) > ends_before.count(t) + 1 for t in set(ends_after)):
                problems.append("a task's command ran to its end twice in the run after the kills: %s" % sorted(ends_after))
            restarted = 0 if SHAPE == "map" else sum(1 for t in set(before) if after.count(t) > before.count(t))
            swept += re.search(r"stopped \d+ jobs? on \S+ that a killed kiln had started", r.stderr) is not None
            adopted += "their tasks take them up" in r.stderr
            restarts += restarted
            n = run(ws)
            if n.returncode != 0 or "%d up to date" % (TASKS + (SHAPE == "map")) not in n.stdout:  # and its runner
                problems.append("the no-op run did not find everything up to date: %s" % n.stdout[-400:])
            if starts(lab) != after:
                problems.append("the no-op run started something")
            deadline = time.time() + 5  # the agents' shells end just after kiln; jobs must not
            while lab.jobs_running() and time.time() < deadline:
                time.sleep(0.1)
            alive = lab.jobs_running()
            if alive:
                problems.append("remote processes left: %s" % alive)
            failures += trial_ended(trial, "%d kills" % kills, problems, ws)
        print("an uninterrupted run: %.1f s, its first start at %.1f s (kills drawn from %.1f-%.1f s)"
              % (full_s, first_s, window[0], window[1]))
        if SHAPE == "map":
            print("map items made again over all trials: %d (bound: %s)"
                  % (redone, "none: atomic_outputs" if ATOMIC else "one a shard a kill"))
        print("%d trials, %d failed, in %.0f s; %d tasks started again after a kill (their attempt was not yet "
              "recorded); %d runs took such unrecorded jobs up, %d stopped some first; %d recorded attempts whose "
              "start never got there; the runs after the kills: median %.1f s, longest %.1f s"
              % (trials, failures, time.time() - t0, restarts, adopted, swept, never_there,
                 sorted(rerun_s)[len(rerun_s) // 2], max(rerun_s)))
    finally:
        lab.close()
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
