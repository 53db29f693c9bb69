#!/usr/bin/env python3
"""slurm-fault-campaign.py [TRIALS] [SEED] [kill|int] — kill -9 (or Ctrl-C: int) of kiln at
random points of a run of 12 trainers on a real one-node Slurm cluster (tests/slurm/cluster.sh,
KillWait 2 s; needs root), each followed by a run to the end and the checks: every output
holds what its task writes, no step of any trainer ran twice, no two attempts of one task
ever wrote at once (a job cancelled at a Ctrl-C still saving while the next run's attempt
had started: two writers on one checkpoint), no job is left in Slurm's queue, and a no-op run
after it all submits nothing. Each trainer steps 20 times (0.2 s a step), keeps no periodic
checkpoint, and saves its step when told to stop (a second, as a slow disk would): so a step
runs twice only where a save was lost or an attempt started before the last one's save
landed — or where an attempt had finished as the stop came (the job's script marks its end
stopped when the signal reaches it before it has read its command's status: the safe side,
as locally), counted apart. After kill -9, kiln's jobs run on in Slurm's queue and the next
run re-attaches to them. Prints counts and the runs after the kills' times.

  /usr/bin/python3 scripts/slurm-fault-campaign.py 10 7 int
"""
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from campaign_timing import time_uninterrupted, trial_ended  # noqa: E402

KILN = os.environ.get("KILN") or os.path.join(HERE, "../build/kiln")
CLUSTER = os.path.join(HERE, "../tests/slurm/cluster.sh")
TASKS, STEPS = 12, 20
SIGNAL = sys.argv[3] if len(sys.argv) > 3 else "kill"

TRAINER = ('s=$(cat r/$KILN_TASK.ckpt 2>/dev/null || echo 0); echo "start $s $$" >> l/$KILN_TASK; '
           'trap \'sleep 1; echo $s > r/$KILN_TASK.tmp; mv r/$KILN_TASK.tmp r/$KILN_TASK.ckpt; '
           'echo "save $s $$" >> l/$KILN_TASK; exit 143\' TERM; '
           'while [ $s -lt %d ]; do s=$((s + 1)); echo "step $s $$" >> l/$KILN_TASK; sleep 0.2 & wait; done; '
           'echo done-$KILN_TASK > o/$KILN_TASK.txt' % STEPS)


def write_workspace(ws):
    for d in ("r", "l", "o"):
        os.makedirs(os.path.join(ws, d))
    with open(os.path.join(ws, "kiln.lua"), "w") as f:
        f.write("for i = 1, %d do\n  task { name = 't' .. i, outputs = {'o/t' .. i .. '.txt'}, "
                "resume = {'r/t' .. i .. '.ckpt'}, run = %r }\nend\n" % (TASKS, TRAINER))


def ledger_problems(ws):
    """Lines of an older attempt written after a newer one's first; steps run twice; and
    attempts that had run every step (their command finished, no save) and were run again:
    a stop that came as the command ended is taken for a stop (the safe side), counted apart."""
    problems, twice, finished_again = [], 0, 0
    for i in range(1, TASKS + 1):
        path = os.path.join(ws, "l/t%d" % i)
        lines = open(path).read().split("\n")[:-1] if os.path.exists(path) else []
        pids = [line.split()[2] for line in lines]
        done = [pid for pid in dict.fromkeys(pids) if "step %d %s" % (STEPS, pid) in lines
                and not any(line.startswith("save ") and line.endswith(" " + pid) for line in lines)]
        steps = [int(line.split()[1]) for line in lines if line.startswith("step ")]
        if done and done[0] != pids[-1]:
            finished_again += 1
        else:
            twice += len(steps) - len(set(steps))
        if sorted(set(steps)) != list(range(1, STEPS + 1)):
            problems.append("t%d stepped %s" % (i, sorted(steps)))
        seen = []  # the attempts (their pids) in the order they first wrote
        for line in lines:
            pid = line.split()[2]
            if pid not in seen:
                seen.append(pid)
            elif pid != seen[-1]:
                problems.append("t%d: attempt %s wrote after attempt %s had started: %s"
                                % (i, pid, seen[-1], lines))
                break
    return problems, twice, finished_again


def main():
    trials = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    rng = random.Random(int(sys.argv[2]) if len(sys.argv) > 2 else 7)
    cluster = tempfile.mkdtemp(prefix="kiln-slurmfault-")
    p = subprocess.run(["sh", CLUSTER, "start", cluster], capture_output=True, text=True, timeout=120)
    if p.returncode != 0:
        sys.exit("slurm-fault-campaign.py: Slurm did not start: " + (p.stdout + p.stderr)[-800:])
    env = dict(os.environ, SLURM_CONF=p.stdout.strip().splitlines()[-1])
    env.pop("PYTHONUNBUFFERED", None)
    t0 = time.time()
    failures = twice_all = finished_again = 0
    rerun_s = []

    def run(ws, *args):
        return subprocess.run([KILN, "run", "--executor", "slurm", *args], cwd=ws, env=env, capture_output=True,
                              text=True, timeout=600)

    def queued():
        out = subprocess.run(["squeue", "-h", "-t", "PENDING,RUNNING,COMPLETING,CONFIGURING", "-o", "%i"],
                             capture_output=True, text=True, env=env).stdout
        return out.split()

    try:
        ws = tempfile.mkdtemp(prefix="kiln-slurmfault-ws-")  # an uninterrupted run, timed
        write_workspace(ws)
        first_s, full_s, out, rc = time_uninterrupted([KILN, "run", "--executor", "slurm"], ws, env,
                                                      lambda: os.listdir(os.path.join(ws, "l")))
        shutil.rmtree(ws, ignore_errors=True)
        if rc != 0 or first_s is None:
            sys.exit("an uninterrupted run failed: " + out[-1600:])
        window = (first_s, max(first_s + 0.1, full_s - 0.5))
        for trial in range(trials):
            ws = tempfile.mkdtemp(prefix="kiln-slurmfault-ws-")
            write_workspace(ws)
            kills = rng.randint(1, 3)
            problems = []
            for _ in range(kills):
                p = subprocess.Popen([KILN, "run", "--executor", "slurm"], cwd=ws, env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
                time.sleep(rng.uniform(*window))
                p.send_signal(signal.SIGINT if SIGNAL == "int" else signal.SIGKILL)
                out = p.communicate(timeout=120)[0]
                if SIGNAL == "int" and p.returncode not in (0, 130):
                    problems.append("a Ctrl-C'd kiln ended with status %d: %s" % (p.returncode, out[-800:]))
            t_run = time.time()
            r = run(ws)
            rerun_s.append(time.time() - t_run)
            if r.returncode != 0:
                problems.append("the run after the kills failed: %s" % (r.stdout[-800:] + r.stderr[-800:]))
            for i in range(1, TASKS + 1):
                path = os.path.join(ws, "o/t%d.txt" % i)
                text = open(path).read() if os.path.exists(path) else None
                if text != "done-t%d\n" % i:
                    problems.append("o/t%d.txt holds %r" % (i, text))
            found, twice, again = ledger_problems(ws)
            problems += found
            twice_all += twice
            finished_again += again
            if twice:
                problems.append("%d steps ran twice" % twice)
            n = run(ws)
            if n.returncode != 0 or "%d up to date" % TASKS not in n.stdout or "submission" in n.stdout:
                problems.append("the no-op run did not find everything up to date: %s" % n.stdout[-400:])
            deadline = time.time() + 10
            while queued() and time.time() < deadline:
                time.sleep(0.2)
            if queued():
                problems.append("jobs left in Slurm's queue: %s" % queued())
            failures += trial_ended(trial, "%d %s" % (kills, "Ctrl-Cs" if SIGNAL == "int" else "kills"), problems, ws)
        print("an uninterrupted run: %.1f s, its first step at %.1f s (%s drawn from %.1f-%.1f s)"
              % (full_s, first_s, "Ctrl-Cs" if SIGNAL == "int" else "kills", window[0], window[1]))
        print("%d trials, %d failed, in %.0f s; steps run twice over all trials: %d; attempts that had finished "
              "as a stop came, run again (the safe side): %d; the runs after the interruptions: median %.1f s, "
              "longest %.1f s" % (trials, failures, time.time() - t0, twice_all, finished_again,
                                  sorted(rerun_s)[len(rerun_s) // 2], max(rerun_s)))
    finally:
        subprocess.run(["sh", CLUSTER, "stop", cluster], capture_output=True, timeout=60)
        shutil.rmtree(cluster, ignore_errors=True)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
