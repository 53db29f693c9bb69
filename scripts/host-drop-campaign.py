#!/usr/bin/env python3
"""host-drop-campaign.py [TRIALS] [SEED] — hosts that drop while checkpointing trainers run on
them: each trial runs a grid of resumable trainers, a map{} of items in three shards and a plain
task over three ssh hosts (the test suite's sshd servers, tests/e2e/sshhosts.py; needs root)
and, at random moments, drops one host for a random while — either its network (the server
stops, its jobs work on: a partition) or the machine (the server stops with every process
under it: a reboot) — then brings it back. After each run: every output is right, no job is
left running there (3 s after kiln's end), a no-op run starts nothing, and what ran twice is
counted: trainers' epochs (a partition may cost none: the job is re-attached; a reboot at
most the epoch in flight of each job it killed: the retry goes back to the host holding the
checkpoint) and map items (those of a lost shard not yet brought back run again elsewhere).
A third kind, "kill", cuts a host's network and kills kiln (kill -9) while it is cut off,
once kiln has seen the loss; a new kiln then runs while the host is still away (its lost jobs
must be waited for and taken up, not run again elsewhere). A fourth, "retry", gives a trial a
--host-wait of 1 s rather than 60 s, so work lost with a host starts afresh elsewhere after a
second (its job may run on there); a "kill" in such a trial comes once those retries have
started, so the new kiln finds two jobs of a task (the lost one, the retry) and must run one
of them on and stop the other (trainers that still ran to their last epoch twice are counted:
a host away for longer than the rest of the lost job lets it end there). KINDS picks the kinds
drawn (default partition,reboot). Prints counts and times. With KILN_CAMPAIGN_PRINTED=1 the
trainers write no KILN_PROGRESS: they print `epoch e/N`, which their log_progress reads (a
script nobody here wrote).

  /usr/bin/python3 scripts/host-drop-campaign.py 10 7 [partition,reboot,kill,retry]
"""
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "../tests/e2e"))
import sshhosts  # noqa: E402

KILN = os.environ.get("KILN") or os.path.join(HERE, "../build/kiln")
TRAINERS, EPOCHS, ITEMS = 4, 12, 30

PRINTED = os.environ.get("KILN_CAMPAIGN_PRINTED") == "1"
# epoch e of trainer T: "T e" in the host's ledger, "e/EPOCHS" in its progress file (or only
# printed, PRINTED), then its checkpoint; resumes from it
TRAIN = ('s=$(cat ckpt/{t}/last 2>/dev/null || echo 0); mkdir -p ckpt/{t}; for e in $(seq $((s + 1)) %d); do '
         'sleep {sec}; echo "{t} $e" >> $HOME/ledger; %s; '
         'echo $e > ckpt/{t}/last.tmp; mv ckpt/{t}/last.tmp ckpt/{t}/last; done; echo {t} done > out/{t}.txt'
         % (EPOCHS, "echo epoch $e/%d" % EPOCHS if PRINTED else "echo epoch $e; echo $e/%d >> $KILN_PROGRESS" % EPOCHS))


def write_recipe(ws, epoch_sec):
    """The trainers (epochs of epoch_sec), the plain task and the map, into ws/kiln.lua."""
    with open(os.path.join(ws, "kiln.lua"), "w") as f:
        for t in range(TRAINERS):
            name = "t%d" % t
            f.write('task { name = "%s", outputs = {"out/%s.txt"}, resume = {"ckpt/%s"}, %srun = %r }\n'
                    % (name, name, name, 'log_progress = "epoch (%d+)/(%d+)", ' if PRINTED else "",
                       TRAIN.format(t=name, sec=epoch_sec)))
        f.write('task { name = "plain", outputs = {"out/plain.txt"}, run = "sleep 2; echo plain > out/plain.txt" }\n'
                'local items = {}\nfor i = 1, %d do items[#items + 1] = "i" .. i end\n'
                'map { name = "cap", items = items, shards = 3, output = "out/items/{item}.txt", '
                'run = "while read it; do sleep 0.2; echo \\"$it item\\" >> $HOME/ledger; '
                'echo $it > out/items/$it.txt; done < {items}" }\n' % ITEMS)


def ledger(lab):
    rows = []
    for h in lab.hosts.values():
        p = os.path.join(h.home, "ledger")
        if os.path.exists(p):
            with open(p) as f:
                rows += [tuple(line.split()) for line in f if line.strip()]
    return rows


def main():
    trials = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    rng = random.Random(int(sys.argv[2]) if len(sys.argv) > 2 else 1)
    kinds_drawn = (sys.argv[3] if len(sys.argv) > 3 else "partition,reboot").split(",")
    if sshhosts.skip_reason():
        print("skipped:", sshhosts.skip_reason())
        return 0
    lab = sshhosts.Lab({"v800": [], "v801": [], "v802": []})
    ws = tempfile.mkdtemp(prefix="kiln-drops-")
    failures, twice, items_twice, drops = [], 0, 0, {"partition": 0, "reboot": 0, "kill": 0}
    reattached = killed = short_trials = ended_twice = 0
    started = time.time()
    try:
        with open(os.path.join(ws, "hosts.lua"), "w") as f:
            f.write(lab.hosts_lua({n: "jobs = 2" for n in lab.hosts}))
        for trial in range(trials):
            lab.reset()
            for h in lab.hosts.values():
                if os.path.exists(os.path.join(h.home, "ledger")):
                    os.remove(os.path.join(h.home, "ledger"))
            shutil.rmtree(os.path.join(ws, ".kiln"), ignore_errors=True)
            shutil.rmtree(os.path.join(ws, "out"), ignore_errors=True)
            short = "retry" in kinds_drawn and rng.random() < 0.5
            short_trials += short
            write_recipe(ws, 0.6 if short else 0.25)  # a lost trainer outlives the outage: it must be stopped
            run = [KILN, "run", "--executor", "ssh", "--hosts", "hosts.lua", "--host-wait", "1s" if short else "60s"]
            p = subprocess.Popen(run, cwd=ws, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            kinds, earlier = [], ""
            for _ in range(rng.randint(1, 2)):
                time.sleep(rng.uniform(0.5, 2.0))
                if p.poll() is not None:
                    break
                name = rng.choice(sorted(lab.hosts))
                kind = rng.choice([k for k in kinds_drawn if k != "retry"] or ["kill"])
                before = set(lab.jobs_running())
                getattr(lab.hosts[name], "stop" if kind == "reboot" else "partition")()
                killed += kind == "reboot" and len(before - set(lab.jobs_running())) > 0
                kinds.append(kind)
                drops[kind] += 1
                if kind == "kill":  # kiln sees the loss (a refused connection: at once), then dies
                    time.sleep(rng.uniform(2.0, 3.0) if short else rng.uniform(0.5, 1.5))  # retries start elsewhere
                    p.kill()
                    earlier += p.communicate()[0]
                    p = subprocess.Popen(run, cwd=ws, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                time.sleep(rng.uniform(0.3, 4.0))
                lab.hosts[name].start()
            out, _ = p.communicate(timeout=600)
            out = earlier + out
            reattached += out.count("which ran on while its host did not answer")
            why = [] if p.returncode == 0 else ["kiln exited %d" % p.returncode]
            for t in range(TRAINERS):
                path = os.path.join(ws, "out/t%d.txt" % t)
                if not (os.path.exists(path) and open(path).read() == "t%d done\n" % t):
                    why.append("out/t%d.txt wrong" % t)
            path = os.path.join(ws, "out/plain.txt")
            if not (os.path.exists(path) and open(path).read() == "plain\n"):
                why.append("out/plain.txt wrong")
            for i in range(1, ITEMS + 1):
                path = os.path.join(ws, "out/items/i%d.txt" % i)
                if not (os.path.exists(path) and open(path).read() == "i%d\n" % i):
                    why.append("out/items/i%d.txt wrong" % i)
            if not sshhosts_wait_idle(lab, 3):
                why.append("jobs left running: %s" % "; ".join(describe(pid) for pid in lab.jobs_running()))
            rows = ledger(lab)
            items = [r[0] for r in rows if r[1] == "item"]
            items_twice += len(items) - len(set(items))
            epochs = [(r[0], r[1]) for r in rows if r[1] != "item"]
            dup = len(epochs) - len(set(epochs))
            ended_twice += sum(1 for t in range(TRAINERS) if epochs.count(("t%d" % t, str(EPOCHS))) > 1)
            missing = {("t%d" % t, str(e)) for t in range(TRAINERS) for e in range(1, EPOCHS + 1)} - set(epochs)
            if missing:
                why.append("epochs never run: %s" % sorted(missing))
            again = subprocess.run([KILN, "run", "--executor", "ssh", "--hosts", "hosts.lua"], cwd=ws,
                                   capture_output=True, text=True, timeout=120)
            if again.returncode != 0 or " 0 ran," not in again.stdout:
                why.append("the next run was no no-op")
            ok = not why
            twice += dup
            print("trial %d: %sdrops %s, rc %d, epochs twice %d, items twice %d%s"
                  % (trial, "host wait 1 s, " if short else "", ",".join(kinds) or "none", p.returncode, dup,
                     len(items) - len(set(items)),
                     "" if ok else "  FAILED: " + "; ".join(why)), flush=True)
            if not ok:
                failures.append((trial, out[-2000:], again.stdout[-500:], why))
    finally:
        lab.close()
        shutil.rmtree(ws, ignore_errors=True)
    print("host-drop campaign: %d trials (%d with a 1 s host wait), %d partitions, %d reboots (%d that killed jobs), "
          "%d partitions with kiln killed, %d jobs re-attached after a partition, %d epochs run twice of %d, "
          "%d trainers ran to their last epoch twice, %d map items run twice of %d, %d failed, %.0f s"
          % (trials, short_trials, drops["partition"], drops["reboot"], killed, drops["kill"], reattached, twice,
             trials * TRAINERS * EPOCHS, ended_twice, items_twice, trials * ITEMS, len(failures), time.time() - started))
    for trial, out, again, why in failures:
        print("--- trial %d: %s\n%s\n--- the next run:\n%s" % (trial, "; ".join(why), out, again))
    return 1 if failures else 0


def describe(pid):
    """A leftover process in words: its pid, parent, group, working directory and command."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        with open("/proc/%d/cmdline" % pid) as f:
            cmd = f.read().replace("\0", " ").strip()
        try:
            with open("/proc/%s/cmdline" % fields[1]) as f:
                parent = f.read().replace("\0", " ").strip()[:80]
        except OSError:
            parent = "?"
        return "%d (parent %s: %s; group %s; in %s): %s" % (pid, fields[1], parent, fields[2],
                                                            os.readlink("/proc/%d/cwd" % pid),
                                                            cmd if len(cmd) < 900 else cmd[:200] + " ... " + cmd[-700:])
    except OSError:
        return "%d (gone)" % pid


def sshhosts_wait_idle(lab, timeout=30):
    end = time.time() + timeout
    while time.time() < end:
        if not lab.jobs_running():
            return True
        time.sleep(0.2)
    return False


if __name__ == "__main__":
    sys.exit(main())
