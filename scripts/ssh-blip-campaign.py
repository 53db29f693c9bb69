#!/usr/bin/env python3
"""ssh-blip-campaign.py [TRIALS] [SEED] — network blips under trainers on ssh hosts: kiln's
connections to its hosts drop (its ssh master connections killed: every stream through them
ends, the hosts still answer) while three checkpointing trainers run there, one a host, the way
scripts run them (`python train.py 2>&1 | tee -a tN.log; echo ended`); then kiln is
Ctrl-C'd (or, one in three, killed -9), twice a trial (the second run's attempts start through
the hosts' agents, or re-attach), and run to the end.

A trainer steps (50 ms each, a line in its ledger there) and, told to stop (SIGTERM), saves
after the step under way (half a second) and prints around it. Checked: a Ctrl-C'd kiln ends
with status 130 and no job left running on any host (it waits for the saves: kill_grace); each
save begun reaches the local log whole ("saving" and "saved"); the run to the end finishes
every trainer with each step once; a no-op run after starts nothing. Counted: blips, jobs left
running when a Ctrl-C'd kiln ended, saves whose end never reached the log, steps run twice.
Needs root (the test suite's sshd servers, tests/e2e/sshhosts.py). Exits 1 when a trial failed.

  /usr/bin/python3 scripts/ssh-blip-campaign.py 10 7
"""
import os
import random
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "../tests/e2e"))
import sshhosts  # noqa: E402
from campaign_timing import STOP_FLAG, trial_ended  # noqa: E402
from kilntest import processes_matching  # noqa: E402

KILN = os.path.abspath(os.environ.get("KILN") or os.path.join(HERE, "../build/kiln"))
PYTHON = "/usr/bin/python3"
HOSTS, STEPS = ("v800", "v801", "v802"), 120
TRAINER = """
import os, signal, sys, time
name = sys.argv[1]
ckpt = "ckpt/" + name
step = int(open(ckpt).read()) if os.path.exists(ckpt) else 0
%swhile step < %d:
    step += 1
    with open("ledger." + name, "a") as f:
        f.write("%%d\\n" %% step)
    print("step", step, flush=True)
    time.sleep(0.05)
    if stop:
        print("saving at step", step, flush=True)
        time.sleep(0.5)
        os.makedirs("ckpt", exist_ok=True)
        open(ckpt + ".tmp", "w").write(str(step))
        os.replace(ckpt + ".tmp", ckpt)
        print("saved at step", step, flush=True)
        sys.exit(143)
os.makedirs("out", exist_ok=True)
open("out/%%s.txt" %% name, "w").write("trained\\n")
""" % (STOP_FLAG, STEPS)


def write_workspace(lab):
    ws = tempfile.mkdtemp(prefix="kiln-blips-")
    files = {"train.py": TRAINER, "hosts.lua": lab.hosts_lua(),
             "kiln.lua": "".join(
                 'task { name = "t%d", host = "%s", inputs = {"train.py"}, outputs = {"out/t%d.txt"}, '
                 'resume = {"ckpt/t%d"}, kill_grace = 10, run = "%s train.py t%d 2>&1 | tee -a t%d.log; echo ended" }\n'
                 % (i, h, i, i, PYTHON, i, i) for i, h in enumerate(HOSTS))}
    for name, text in files.items():
        with open(os.path.join(ws, name), "w") as f:
            f.write(text)
    return ws


def ledger(lab, i):
    path = os.path.join(lab.hosts[HOSTS[i]].workdir(), "ledger.t%d" % i)
    return [int(x) for x in open(path).read().split()] if os.path.exists(path) else []


def local_logs(ws, i):
    d = os.path.join(ws, ".kiln/logs")
    names = sorted(f for f in os.listdir(d) if f.startswith("t%d@" % i) and f.endswith(".log")) if os.path.isdir(d) else []
    return "".join(open(os.path.join(d, f)).read() for f in names)


def blip(ws):
    """Kills this workspace's ssh master connections: their streams all end. How many."""
    masters = processes_matching("ControlMaster=yes", cwd=ws)
    for pid in masters:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return len(masters)


def main():
    trials = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    rng = random.Random(int(sys.argv[2]) if len(sys.argv) > 2 else 7)
    if sshhosts.skip_reason():
        print("skipped:", sshhosts.skip_reason())
        return 0
    lab = sshhosts.Lab({h: [] for h in HOSTS})
    run = [KILN, "run", "--executor", "ssh", "--hosts", "hosts.lua"]
    env = dict(os.environ)
    env.pop("PYTHONUNBUFFERED", None)
    failures = blips = ctrl_cs = kills = left_running = saves_cut = twice_all = 0
    t0 = time.time()
    try:
        for trial in range(trials):
            lab.reset()
            ws = write_workspace(lab)
            problems = []
            blips_before = blips
            for _ in range(2):  # the second run's attempts start through the hosts' agents
                before = [len(ledger(lab, i)) for i in range(len(HOSTS))]
                p = subprocess.Popen(run, cwd=ws, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                deadline = time.time() + 60
                while (any(len(ledger(lab, i)) <= before[i] for i in range(len(HOSTS))) and time.time() < deadline
                       and p.poll() is None):
                    time.sleep(0.05)
                for _ in range(rng.randint(1, 2)):
                    time.sleep(rng.uniform(0.2, 1.2))
                    blips += blip(ws) > 0
                time.sleep(rng.uniform(0.2, 1.2))
                if rng.random() < 1 / 3:
                    kills += 1
                    p.kill()
                    p.communicate()
                    continue
                ctrl_cs += 1
                p.send_signal(signal.SIGINT)
                out = p.communicate(timeout=120)[0]
                # a host kiln found down (a blip in its first contact: it is tried again later)
                # keeps what ran there for the next run to take up; any other must be quiet
                down = [h for h in HOSTS if "kiln: host %s:" % h in out and
                        "DOWN" in out.split("kiln: host %s:" % h, 1)[1].split("\n", 1)[0]]
                running = [pid for h in HOSTS if h not in down for pid in lab.jobs_running(lab.hosts[h])]
                left_running += bool(running)
                if p.returncode not in (0, 130):
                    problems.append("a Ctrl-C'd kiln ended with status %d: %s" % (p.returncode, out[-800:]))
                if running:
                    ps = subprocess.run(["ps", "-o", "pid=,args=", "-p", ",".join(map(str, running))],
                                        capture_output=True, text=True).stdout
                    problems.append("jobs still running there when kiln ended:\n%s%s" % (ps, out[-1500:]))
                    time.sleep(2)  # their saves land, so the run to the end is checked apart
            for i in range(len(HOSTS)):
                log = local_logs(ws, i)
                cut = log.count("saving at step") - log.count("saved at step")
                saves_cut += cut
                if cut:
                    problems.append("t%d: %d saves never reached the log's end" % (i, cut))
            r = subprocess.run(run, cwd=ws, env=env, capture_output=True, text=True, timeout=300)
            if r.returncode != 0:
                problems.append("the run to the end failed: %s" % (r.stdout[-800:] + r.stderr[-800:]))
            for i in range(len(HOSTS)):
                steps = ledger(lab, i)
                if sorted(set(steps)) != list(range(1, STEPS + 1)):
                    problems.append("t%d: steps missing: %s" % (i, steps))
                twice = len(steps) - len(set(steps))
                twice_all += twice
                if twice:  # a save that landed and a re-attach each continue where the work was
                    problems.append("t%d: %d steps ran twice" % (i, twice))
            again = subprocess.run(run, cwd=ws, env=env, capture_output=True, text=True, timeout=120)
            if again.returncode != 0 or " 0 ran," not in again.stdout:
                problems.append("the next run was no no-op: %s" % again.stdout[-400:])
            failures += trial_ended(trial, "%d blips" % (blips - blips_before), problems, ws)
    finally:
        lab.close()
    print("%d trials, %d failed, in %.0f s: %d blips, %d Ctrl-Cs (%d left jobs running), %d kill -9s; "
          "saves cut from the log: %d; steps run twice: %d"
          % (trials, failures, time.time() - t0, blips, ctrl_cs, left_running, kills, saves_cut, twice_all))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
