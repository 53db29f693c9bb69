#!/usr/bin/env python3
"""resume-campaign.py [KILLS] [SEED] — interruptions of long work, counted in work redone.

Campaigns against build/kiln (or $KILN), each of KILLS interruptions (default 100):

  resume: four checkpointing trainers (tests/e2e/test_resume.py's TRAINER, resume = {...},
          30 epochs each, retries on), interrupted at random moments, three kill -9s of
          kiln for every Ctrl-C; after each, the next run. Counts epochs run more than once
          (beyond the one in flight at a Ctrl-C) from the ledger each epoch appends to.
  map:    a 400-item map{} over 4 shards (tests/e2e/test_map.py's worker, which renames each
          output into place: atomic_outputs = true), kiln killed with -9 at random moments and
          every fourth time stopped by Ctrl-C, run again until done. Counts item executions
          beyond 400.
  cut:    a PyTorch trainer that saves a 200 MB checkpoint in place (a plain torch.save, as
          most published trainers do) every 2 s epoch, its process killed with -9 (as the OOM
          killer or a preemption would) at random moments, every other kill within a save;
          kiln retries it. Counts epochs run more than once and attempts that failed on a
          checkpoint they could not load (must be none: kiln puts back its last whole copy).
          Runs when /usr/bin/python3 has torch; KILLS // 5 kills.
  folder: the same kills of a trainer keeping a checkpoint folder per epoch (Hugging Face's
          layout: the weights, the optimizer, then trainer_state.json, each saved in place) and
          continuing from the newest: counts epochs run more than once and attempts that failed
          on a checkpoint (none: kiln removes the folder cut short, within a file or between
          two).

  keeper: the four trainers again, each round a run whose keeper (the parent of its local
          attempts, `attempt-keeper` in ps) is killed with -9 at random moments until the run
          ends, a new keeper killed in turn; every fourth round kiln is then stopped by
          Ctrl-C. kiln keeps a killed keeper's attempts itself: each round must end well
          (a Ctrl-C'd one at the next run), and no epoch may run twice but at a Ctrl-C.
          KILLS // 2 keeper kills.

After each campaign the final run must finish with every output right and the next run
must be a no-op. Prints the counts; exits 1 when a bound is broken.
"""
import collections
import subprocess
import os
import random
import signal
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "../tests/e2e"))
os.environ.setdefault("KILN", os.path.join(HERE, "../build/kiln"))

from kilntest import Workspace, marked_processes, wait_for  # noqa: E402
import test_map  # noqa: E402
import test_resume  # noqa: E402


def ledger(ws, kind):
    if not ws.exists("ledger"):
        return []
    return [line.split() for line in ws.read("ledger").splitlines() if line.startswith(kind + " ")]


def trainers_workspace(epochs, extra):
    """Four checkpointing trainers (test_resume.TRAINER, each in its own directory w<i>)
    of epochs epochs, extra task fields after each: the workspace."""
    ws = Workspace()
    ws.write("train.py", test_resume.TRAINER)
    ws.write("kiln.lua", "\n".join(
        'task { name = "train%d", inputs = {"train.py"}, outputs = {"model%d.txt"}, resume = {"ckpt%d/snap.json"},'
        ' run = "mkdir -p w%d && cd w%d && python3 ../train.py %d ../ckpt%d/snap.json && mv model.txt ../model%d.txt"%s }'
        % (i, i, i, i, i, epochs, i, i, extra) for i in range(4)) + "\n")
    return ws


def resume_campaign(kills, rng):
    ws = trainers_workspace(30, ", retries = 2")
    env = {"EPOCH_SEC": "0.05"}
    ctrl_c = 0
    trial = 0
    while trial < kills:
        p = ws.spawn("run", "-j", "4", env=env)
        time.sleep(rng.uniform(0.05, 0.8))
        sig = signal.SIGINT if trial % 4 == 3 else signal.SIGKILL
        ctrl_c += sig == signal.SIGINT
        p.send_signal(sig)
        p.communicate(timeout=120)
        trial += 1
        start_over_when_trained(ws)
    epochs, redone = finish_trainers(ws, 30, "4", env)
    return kills, ctrl_c, epochs, redone


def start_over_when_trained(ws):
    """All four trainers done: a new round of training (kiln clean)."""
    if all(ws.exists("model%d.txt" % i) for i in range(4)):
        for i in range(4):
            os.remove(ws.path("model%d.txt" % i))
        ws.kiln("clean")


def finish_trainers(ws, epochs, jobs, env):
    """The run to the end and its checks (every model whole, a no-op after, nothing left
    running): (epochs run, epochs run twice) from the trainers' ledgers; the workspace goes."""
    r = ws.kiln("run", "-j", jobs, env=env, timeout=600)
    assert r.rc == 0, r
    for i in range(4):
        assert ws.read("model%d.txt" % i) == "trained %d epochs\n" % epochs, i
    assert ws.kiln("run").ran == set(), "a no-op after"
    assert not marked_processes(ws.dir), "nothing left running"
    counts = epochs_redone(ws, 4)
    ws.cleanup()
    return counts


def epochs_redone(ws, trainers):
    """Epochs run and those run more than once, from each trainer's ledger (w<i>/ledger): a
    round of training starts at epoch 0 (after kiln clean)."""
    redone = epochs = 0
    for i in range(trainers):
        counts = collections.Counter()
        lines = ws.read("w%d/ledger" % i).splitlines() if ws.exists("w%d/ledger" % i) else []
        for line in lines:
            if not line.startswith("epoch "):
                continue
            e = int(line.split()[1])
            if e == 0 and counts[0]:
                redone += sum(n - 1 for n in counts.values())
                counts = collections.Counter()
            counts[e] += 1
            epochs += 1
        redone += sum(n - 1 for n in counts.values())
    return epochs, redone


def keepers_of(pid):
    out = subprocess.run(["pgrep", "-P", str(pid), "-x", "attempt-keeper"], capture_output=True, text=True).stdout
    return [int(x) for x in out.split()]


def keeper_campaign(kills, rng):
    ws = trainers_workspace(40, "")
    env = {"EPOCH_SEC": "0.05"}
    done = rounds = ctrl_c = failed = 0
    while done < kills:
        rounds += 1
        p = ws.spawn("run", "-j", "2", env=env)
        stop = rounds % 4 == 0
        while p.poll() is None and done < kills:
            time.sleep(rng.uniform(0.1, 1.0))
            for k in keepers_of(p.pid):
                os.kill(k, signal.SIGKILL)
                done += 1
            if stop and done:
                p.send_signal(signal.SIGINT)
                ctrl_c += 1
                break
        out, err = p.communicate(timeout=300)
        failed += p.returncode not in ((130,) if stop else (0,))
        if p.returncode not in (0, 130):
            print("round %d: kiln exited %d\n%s%s" % (rounds, p.returncode, out, err), file=sys.stderr)
        start_over_when_trained(ws)
    epochs, redone = finish_trainers(ws, 40, "2", env)
    return done, rounds, ctrl_c, failed, epochs, redone


def map_campaign(kills, rng):
    ws = Workspace()
    ws.write("kiln.lua", test_map.recipe(400, extra=", atomic_outputs = true"))  # the worker renames
    env = {"SLEEP": "0.01"}
    rounds = ctrl_c = 0
    for trial in range(kills):
        p = ws.spawn("run", env=env)
        time.sleep(rng.uniform(0.05, 1.0))
        sig = signal.SIGINT if trial % 4 == 3 else signal.SIGKILL
        ctrl_c += sig == signal.SIGINT
        p.send_signal(sig)
        p.communicate(timeout=120)
        if ws.exists("all.txt"):  # finished before the kill: a new round
            rounds += 1
            ws.kiln("clean")
            os.rename(ws.path("ledger"), ws.path("ledger.%d" % rounds))
    r = ws.kiln("run", env=env, timeout=600)
    assert r.rc == 0, r
    assert ws.read("all.txt").strip() == "400"
    for i in range(1, 401):
        assert ws.read("out/%04d.txt" % i) == "caption of %04d\n" % i
    assert ws.kiln("run").ran == set()
    assert not marked_processes(ws.dir)
    runs = 0
    extra = 0
    for name in [n for n in os.listdir(ws.dir) if n.startswith("ledger")]:
        items = [line.split()[0] for line in ws.read(name).splitlines()]
        runs += len(items)
        extra += len(items) - len(set(items))
    ws.cleanup()
    return kills, ctrl_c, rounds + 1, runs, extra


def trainer_campaign(kills, rng, trainer, lua, env, late):
    """Runs the recipe lua of one task "train" (trainer as train.py, 3 epochs a kill and 3
    more) and kills its process with -9 kills times: every other kill at a random moment,
    the others within a save (up to late seconds after the epoch's ledger line, written
    right before it). Returns (epochs, epoch runs, epochs run twice, "cut short" notes,
    attempts that failed on a checkpoint they could not load)."""
    ws = Workspace()
    ws.write("train.py", trainer)
    epochs = 3 * kills + 3
    ws.write("kiln.lua", lua % (kills + 5, epochs))
    p = ws.spawn("run", env=env)
    pids = []
    for _ in range(kills):
        if not wait_for(lambda: ws.exists("pid") and ws.read("pid") not in pids and ws.read("pid") != "", 120):
            p.kill()
            out, err = p.communicate()
            logs = sorted((n for n in os.listdir(ws.path(".kiln/logs")) if n.endswith(".log")),
                          key=lambda n: os.path.getmtime(ws.path(".kiln/logs/" + n)))
            sys.exit("no new attempt within 120 s after kill %d (workspace %s kept); kiln said:\n%s\nits last log, %s:\n%s"
                     % (len(pids), ws.dir, (out + err)[-3000:], logs[-1:], ws.read(".kiln/logs/" + logs[-1])[-3000:]
                        if logs else ""))
        pid = ws.read("pid")
        pids.append(pid)
        if len(pids) % 2:  # at a random moment
            time.sleep(rng.uniform(1.0, 5.0))
        else:  # within its save: the ledger's line comes right before it
            seen = len(ws.read("ledger").splitlines()) if ws.exists("ledger") else 0
            wait_for(lambda: ws.exists("ledger") and len(ws.read("ledger").splitlines()) > seen, 30)
            time.sleep(rng.uniform(0, late))
        try:
            os.kill(int(pid), signal.SIGKILL)
        except ProcessLookupError:
            pass
    out, _ = p.communicate(timeout=1200)
    assert p.returncode == 0, out
    w = subprocess.run(["/usr/bin/python3", "-c", "import torch; print(int(torch.load('model.pt')[0]))"],
                       cwd=ws.dir, capture_output=True, text=True).stdout.strip()
    assert w == str(epochs), "the weights saw every epoch once: %s" % w
    cut = out.count("was cut short") + out.count("which every checkpoint before it holds") + \
        out.count("which the Hugging Face Trainer writes last")
    unloadable = sum(1 for n in os.listdir(ws.path(".kiln/logs")) if n.endswith(".log") and
                     any(s in ws.read(".kiln/logs/" + n) for s in ("central directory", "PytorchStreamReader",
                                                                    "trainer_state.json'")))
    counts = collections.Counter(int(line.split()[1]) for line in ws.read("ledger").splitlines())
    assert sorted(counts) == list(range(1, epochs + 1)), counts
    redone = sum(n - 1 for n in counts.values())
    ws.cleanup()
    return epochs, sum(counts.values()), redone, cut, unloadable


def cut_campaign(kills, rng):
    """A trainer saving one 200 MB checkpoint in place with a plain torch.save."""
    return trainer_campaign(kills, rng, test_resume.TORCH_TRAINER,
                            'task { name = "train", inputs = {"train.py"}, outputs = {"model.pt"}, resume = {"ckpt.pt"}, '
                            'retries = %d, run = {"/usr/bin/python3", "train.py", "{resume}", "%d"} }\n',
                            {"EPOCH_SEC": "2", "SIZE": "50000000"}, 0.2)


def folder_campaign(kills, rng):
    """A trainer keeping a checkpoint folder per epoch (the Hugging Face Trainer's layout:
    checkpoint-N/ with model.pt, training_args.bin and optimizer.pt, 2 x 100 MB, saved in
    place, then trainer_state.json, 0.2 s between two files) and continuing from the newest:
    kiln removes the folder cut short before each retry, the first checkpoint's too."""
    return trainer_campaign(kills, rng, test_resume.FOLDER_TRAINER,
                            'task { name = "train", inputs = {"train.py"}, outputs = {"model.pt"}, resume = {"ckpt"}, '
                            'retries = %d, env = { LAYOUT = "hf", ARGS_FILE = "1" }, '
                            'run = {"/usr/bin/python3", "train.py", "%d"} }\n',
                            {"EPOCH_SEC": "1.5", "SIZE": "25000000", "BETWEEN_SEC": "0.2"}, 0.8)


def has_torch():
    return subprocess.run(["/usr/bin/python3", "-c", "import torch"], capture_output=True).returncode == 0


def main():
    kills = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    seed = int(sys.argv[2]) if len(sys.argv) > 2 else int(time.time())
    rng = random.Random(seed)
    start = time.time()
    n, ctrl_c, epochs, redone = resume_campaign(kills, rng)
    print("resume campaign (seed %d): %d interruptions (%d kill -9, %d Ctrl-C), %d epochs run, "
          "%d run twice (bound: one per Ctrl-C per running trainer, %d); %.0fs"
          % (seed, n, n - ctrl_c, ctrl_c, epochs, redone, 4 * ctrl_c, time.time() - start))
    start = time.time()
    n, map_ctrl_c, rounds, runs, extra = map_campaign(kills, rng)
    print("map campaign (seed %d): %d interruptions (%d kill -9, %d Ctrl-C) over %d round(s) of 400 items, %d item "
          "executions, %d beyond one per item (bound: 4 per interruption, the items in flight); %.0fs"
          % (seed, n, n - map_ctrl_c, map_ctrl_c, rounds, runs, extra, time.time() - start))
    ok = redone <= 4 * ctrl_c and extra <= 4 * n
    start = time.time()
    n, rounds, keeper_ctrl_c, failed, epochs, redone = keeper_campaign(max(1, kills // 2), rng)
    print("keeper campaign (seed %d): %d kill -9s of the attempts' keeper over %d runs (%d then stopped by Ctrl-C), "
          "%d runs that did not end as they should (bound: 0), %d epochs, %d run twice (bound: one per Ctrl-C per "
          "trainer, %d); %.0fs" % (seed, n, rounds, keeper_ctrl_c, failed, epochs, redone, 4 * keeper_ctrl_c,
                                   time.time() - start))
    ok = ok and failed == 0 and redone <= 4 * keeper_ctrl_c
    if has_torch():
        start = time.time()
        n = max(1, kills // 5)
        epochs, ran, redone, cut, unloadable = cut_campaign(n, rng)
        print("cut campaign (seed %d): %d kill -9s of a trainer saving 200 MB in place, %d epochs, %d epoch runs, "
              "%d run twice (bound: 2 per kill, %d); %d checkpoints cut short and put back; %d attempts failed on a "
              "checkpoint they could not load (bound: 0); %.0fs" % (seed, n, epochs, ran, redone, 2 * n, cut, unloadable,
                                                                    time.time() - start))
        ok = ok and redone <= 2 * n and unloadable == 0
        start = time.time()
        epochs, ran, redone, removed, unloadable = folder_campaign(n, rng)
        print("folder campaign (seed %d): %d kill -9s of a trainer keeping a checkpoint folder per epoch (2 x 100 MB, "
              "in place), %d epochs, %d epoch runs, %d run twice (bound: 2 per kill, %d); %d folders cut short (in a file "
              "or between two) and removed; %d attempts failed on a checkpoint they could not load (bound: 0); %.0fs"
              % (seed, n, epochs, ran, redone, 2 * n, removed, unloadable, time.time() - start))
        ok = ok and redone <= 2 * n and unloadable == 0
    else:
        print("cut campaign: skipped (/usr/bin/python3 has no torch)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
