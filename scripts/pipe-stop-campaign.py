#!/usr/bin/env python3
"""pipe-stop-campaign.py [TRIALS] [SEED] — a real PyTorch trainer run the way shell scripts run
it (`python train.py 2>&1 | tee -a train.log; echo ...` under sh; or through `| grep ... | tee`,
`| sed ... >> train.log`, or under `timeout 3600`, drawn per trial), its kiln Ctrl-C'd or
killed -9 at random moments, then run to the end; counted in steps run twice and saves lost.

The trainer (an MLP, SGD with momentum, 200 steps of ~20 ms on CPU, its batches from a
DataLoader with two worker processes, as most trainers read theirs) saves model, optimizer
and step with torch.save when SIGTERM comes (a flag its loop reads: it saves after the step
under way) and prints as it does, into the pipe. Each trial interrupts kiln 1-3 times,
each time a Ctrl-C or (one in three) a kill -9, at a point drawn between the trainer's first
step and the end of an uninterrupted run; a kill -9's kiln is followed by a run that
re-attaches. Counted: steps run twice (none may be: each Ctrl-C's save lands after the step
under way, a kill -9 leaves the trainer running; a Ctrl-C after the trainer's last step, before
its command has ended, is counted apart: the steps since its last save run again), steps skipped, Ctrl-Cs whose save did not
reach train.log, BrokenPipeError, a final run that did not finish. Exits 1 when a trial lost
anything.

  KILN=build-dev/kiln /usr/bin/python3 scripts/pipe-stop-campaign.py 8 3
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
from campaign_timing import STOP_FLAG, stop_window, trial_ended  # noqa: E402

KILN = os.environ.get("KILN") or os.path.join(HERE, "../build/kiln")
PYTHON = "/usr/bin/python3"  # Debian's, with torch
STEPS = 200
TRAINER = """
import os, signal, sys, time
import torch, torch.nn as nn
from torch.utils.data import DataLoader, TensorDataset
torch.manual_seed(0)
data = DataLoader(TensorDataset(torch.randn(64 * 50, 256), torch.randint(0, 10, (64 * 50,))), batch_size=64,
                  num_workers=2, persistent_workers=True)
batches = iter(data)
model = nn.Sequential(nn.Linear(256, 512), nn.ReLU(), nn.Linear(512, 10))
opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
step = 0
if os.path.exists("ckpt.pt"):
    state = torch.load("ckpt.pt")
    model.load_state_dict(state["model"]); opt.load_state_dict(state["opt"]); step = state["step"]
    print("resumed at step", step)
%swhile step < %d:
    x, y = next(batches, (None, None))
    if x is None:
        batches = iter(data)
        x, y = next(batches)
    loss = nn.functional.cross_entropy(model(x), y)
    opt.zero_grad(); loss.backward(); opt.step()
    step += 1
    with open("ledger", "a") as f:
        f.write("%%d\\n" %% step)
    if step %% 20 == 0:
        print("step", step, "loss %%.4f" %% loss.item())
    time.sleep(0.01)
    if stop:
        print("saving at step", step)
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step}, "ckpt.pt.tmp")
        os.replace("ckpt.pt.tmp", "ckpt.pt")
        print("saved at step", step)
        sys.exit(143)
torch.save(model.state_dict(), "model.pt")
print("done")
""" % (STOP_FLAG, STEPS)
# how the trainer is run, drawn per trial: into kiln's tee, through a grep before it, through
# a sed alone, under GNU timeout (a process group of its own)
PIPES = ("%s train.py 2>&1 | tee -a train.log",
         "%s train.py 2>&1 | grep --line-buffered -v DEBUG | tee -a train.log",
         "%s train.py 2>&1 | sed -u 's/^/[t] /' >> train.log",
         "timeout 3600 %s train.py 2>&1 | tee -a train.log")
RECIPE = ('task { name = "train", inputs = {"train.py"}, outputs = {"model.pt"}, resume = {"ckpt.pt"}, '
          'kill_grace = 30, run = "%s; echo trainer ended" }\n')


def workspace(pipe=PIPES[0]):
    ws = tempfile.mkdtemp(prefix="kiln-pipestop-")
    for name, text in (("train.py", TRAINER), ("kiln.lua", RECIPE % (pipe % PYTHON))):
        with open(os.path.join(ws, name), "w") as f:
            f.write(text)
    return ws


def steps(ws):
    path = os.path.join(ws, "ledger")
    return [int(x) for x in open(path).read().split()] if os.path.exists(path) else []


def read(ws, rel):
    path = os.path.join(ws, rel)
    return open(path).read() if os.path.exists(path) else ""


def logs(ws):
    d = os.path.join(ws, ".kiln/logs")
    return "".join(read(d, f) for f in sorted(os.listdir(d)) if f.endswith(".log")) if os.path.isdir(d) else ""


def main():
    trials = int(sys.argv[1]) if len(sys.argv) > 1 else 8
    rng = random.Random(int(sys.argv[2]) if len(sys.argv) > 2 else 3)
    env = dict(os.environ)
    env.pop("PYTHONUNBUFFERED", None)  # as a researcher's shell has it
    argv = [KILN, "run"]
    full_s, first_s, window = stop_window(argv, workspace, env, steps, 0.3)
    t0 = time.time()
    failures = twice_all = lost_all = ctrl_cs = kills = saves = late_all = 0
    for trial in range(trials):
        pipe = rng.choice(PIPES)
        ws = workspace(pipe)
        problems = []
        n = rng.randint(1, 3)
        late = 0  # Ctrl-Cs after the trainer's last step: its command had not ended, nothing saved since
        for _ in range(n):
            before = len(steps(ws))
            p = subprocess.Popen(argv, cwd=ws, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            time.sleep(rng.uniform(*window))
            kill = rng.random() < 1 / 3
            saved_before = read(ws, "train.log").count("saved at step")
            late += not kill and len(steps(ws)) > before and steps(ws)[-1] == STEPS
            p.send_signal(signal.SIGKILL if kill else signal.SIGINT)
            out = p.communicate(timeout=120)[0]
            if kill:
                kills += 1
                continue
            ctrl_cs += 1
            if p.returncode not in (0, 130):
                problems.append("a Ctrl-C'd kiln ended with status %d: %s" % (p.returncode, out[-800:]))
            if p.returncode == 130 and len(steps(ws)) > before and not os.path.exists(os.path.join(ws, "model.pt")):
                # it trained in this run (its handler set) and had not finished: a save is due
                saved = read(ws, "train.log").count("saved at step") - saved_before
                saves += saved
                lost_all += saved != 1
                if saved != 1:
                    problems.append("a Ctrl-C mid-training left %d saves in train.log: %s" % (saved, out[-600:]))
        r = subprocess.run(argv, cwd=ws, env=env, capture_output=True, text=True, timeout=600)
        if r.returncode != 0 or not os.path.exists(os.path.join(ws, "model.pt")):
            problems.append("the run to the end failed: %s" % (r.stdout[-800:] + r.stderr[-800:]))
        if "BrokenPipeError" in logs(ws) + read(ws, "train.log"):
            problems.append("a print into the pipe failed (BrokenPipeError)")
        done = steps(ws)
        if sorted(set(done)) != list(range(1, STEPS + 1)):
            problems.append("steps skipped or missing: %s" % done)
        twice = len(done) - len(set(done))
        twice_all += twice
        late_all += late
        if twice and not late:
            problems.append("%d steps ran twice" % twice)
        failures += trial_ended(trial, "%d interruptions, %s" % (n, pipe % "python"), problems, ws)
    print("an uninterrupted run: %.1f s, its first step at %.1f s (interruptions drawn from %.1f-%.1f s)"
          % (full_s, first_s, window[0], window[1]))
    print("%d trials, %d failed, in %.0f s: %d Ctrl-Cs (%d saves in train.log, %d lost), %d kill -9s; "
          "steps run twice: %d (%d Ctrl-Cs came after the trainer's last step, before its command ended: the "
          "attempt is stopped, not done, and the steps since its last save run again, as in a terminal)"
          % (trials, failures, time.time() - t0, ctrl_cs, saves, lost_all, kills, twice_all, late_all))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
