#!/usr/bin/env python3
"""torchrun-stop-campaign.py [TRIALS] [SEED] — Ctrl-Cs of kiln while a real DDP trainer runs
under torchrun (2 processes, gloo on CPU, /usr/bin/python3's torch), counted in steps lost.

The trainer (tests/e2e/test_torchrun.py's INTERRUPT_TRAINER: 30 steps of 0.1 s, rank 0 saving
only on KeyboardInterrupt, half a second a save) runs with stop_signal = "INT". Each trial
Ctrl-Cs kiln once or twice at random points between the trainer's first step and the end of
an uninterrupted run, then runs it to the end. Counted: saves cut short (a worker interrupted
again within its `except KeyboardInterrupt:`), steps run twice (beyond the one in flight at
each Ctrl-C; a Ctrl-C after the trainer's last step lands outside its `try`, so the steps since
its last save run again, counted apart), steps skipped (must be none), and a final run that
did not finish. Exits 1 when a trial lost a save or skipped a step.

  KILN=build-dev/kiln /usr/bin/python3 scripts/torchrun-stop-campaign.py 10 7
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
from campaign_timing import stop_window, trial_ended  # noqa: E402
from test_torchrun import INTERRUPT_TRAINER, PYTHON  # noqa: E402

KILN = os.environ.get("KILN") or os.path.join(HERE, "../build/kiln")
STEPS = 30
RECIPE = ('task { name = "ddp", inputs = {"train.py"}, outputs = {"model.pt"}, resume = {"ckpt.pt"}, '
          'stop_signal = "INT", torchrun = { nproc = 2 }, run = { "%s", "train.py" } }\n' % PYTHON)


def workspace():
    ws = tempfile.mkdtemp(prefix="kiln-torchrunstop-")
    with open(os.path.join(ws, "train.py"), "w") as f:
        f.write(INTERRUPT_TRAINER)
    with open(os.path.join(ws, "kiln.lua"), "w") as f:
        f.write(RECIPE)
    return ws


def steps(ws):
    path = os.path.join(ws, "ledger")
    return [int(line.split()[1]) for line in open(path)] if os.path.exists(path) else []


def logs(ws):
    d = os.path.join(ws, ".kiln/logs")
    return "".join(open(os.path.join(d, f)).read() for f in sorted(os.listdir(d)) if f.endswith(".log"))


def main():
    trials = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    rng = random.Random(int(sys.argv[2]) if len(sys.argv) > 2 else 7)
    env = dict(os.environ)
    env.pop("PYTHONUNBUFFERED", None)
    argv = [KILN, "run", "--cpus", "2"]
    full_s, first_s, window = stop_window(argv, workspace, env, steps, 0.5)
    t0 = time.time()
    failures = cut = twice_all = stops = late_all = 0
    for trial in range(trials):
        ws = workspace()
        problems = []
        n = rng.randint(1, 2)
        late = 0  # Ctrl-Cs that came once the trainer's loop had ended (outside its try)
        for _ in range(n):
            before = len(steps(ws))
            p = subprocess.Popen(argv, cwd=ws, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            time.sleep(rng.uniform(*window))
            late += len(steps(ws)) > before and steps(ws)[-1] == STEPS
            p.send_signal(signal.SIGINT)
            out = p.communicate(timeout=120)[0]
            if p.returncode not in (0, 130):
                problems.append("a Ctrl-C'd kiln ended with status %d: %s" % (p.returncode, out[-800:]))
            stops += p.returncode == 130
        r = subprocess.run(argv, cwd=ws, env=env, capture_output=True, text=True, timeout=600)
        if r.returncode != 0 or not os.path.exists(os.path.join(ws, "model.pt")):
            problems.append("the run to the end failed: %s" % (r.stdout[-800:] + r.stderr[-800:]))
        text = logs(ws)
        cut_here = text.count("During handling of the above exception")
        cut += cut_here
        if cut_here:
            problems.append("%d saves cut short by a second KeyboardInterrupt" % cut_here)
        done = steps(ws)
        if sorted(set(done)) != list(range(1, STEPS + 1)):
            problems.append("steps skipped or missing: %s" % done)
        twice = len(done) - len(set(done))
        twice_all += twice
        late_all += late
        if twice > n and not late:
            problems.append("%d steps ran twice after %d Ctrl-Cs (at most one in flight each)" % (twice, n))
        failures += trial_ended(trial, "%d Ctrl-Cs" % n, problems, ws)
    print("an uninterrupted run: %.1f s, its first step at %.1f s (Ctrl-Cs drawn from %.1f-%.1f s)"
          % (full_s, first_s, window[0], window[1]))
    print("%d trials, %d failed, %d runs stopped mid-training, in %.0f s; saves cut short: %d; steps run twice: %d "
          "(%d Ctrl-Cs came after the trainer's last step, outside its try: its steps since its last save run again, "
          "as they would in a terminal)" % (trials, failures, stops, time.time() - t0, cut, twice_all, late_all))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
