"""End-to-end: interrupted work resumes where it stopped. A checkpointing trainer with
`resume` continues after a failed attempt (retry), after Ctrl-C and after kill -9 of kiln,
running no epoch twice beyond the one in flight (counted from a ledger each epoch appends
to); a changed key starts afresh; the final output is recorded and the next run is a no-op.
A local task started by a kiln killed with -9 is re-attached by the next run (started once
in all); a closed terminal (SIGHUP) leaves it running too. Every attempt keeps its log:
attempt numbers never repeat across runs, `kiln log TASK N` and `--all` read them back,
`kiln log -f` follows one as it is written (on to a retry's, past a killed kiln) and
`kiln gc` prunes by its rule. A real PyTorch trainer that saves in place (plain torch.save)
and is killed or stopped halfway through a save continues from kiln's last whole copy of
its checkpoint, or starts afresh when there is none, instead of failing on the cut file; one
that keeps a checkpoint per epoch in a resume folder (files, or folders as Hugging Face's)
continues from the newest whole one, the cut one removed."""
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter

from kilntest import KILN, KilnTestCase, main, marked_processes, wait_for
from test_torchrun import PYTHON, SKIP as NO_TORCH

# Saves a snapshot after every epoch (atomically, as trainers do) and loads it at start;
# each epoch appends "epoch N pid" to the ledger; FAIL_AT fails once at that epoch.
TRAINER = r'''
import json, os, sys, time
epochs, snap = int(sys.argv[1]), sys.argv[2]
start = 0
if os.path.exists(snap):
    start = json.load(open(snap))["epoch"]
    print("Resuming training from snapshot at epoch", start, "KILN_RESUME=%s" % os.environ.get("KILN_RESUME"))
with open("ledger", "a") as f:
    f.write("start %d\n" % os.getpid())
for e in range(start, epochs):
    time.sleep(float(os.environ.get("EPOCH_SEC", "0.25")))
    with open("ledger", "a") as f:
        f.write("epoch %d %d\n" % (e, os.getpid()))
    if e == int(os.environ.get("FAIL_AT", "-1")) and not os.path.exists("failed-once"):
        open("failed-once", "w").close()
        sys.exit("simulated crash at epoch %d" % e)
    os.makedirs(os.path.dirname(snap), exist_ok=True)
    json.dump({"epoch": e + 1}, open(snap + ".tmp", "w"))
    os.replace(snap + ".tmp", snap)
    print("Epoch %d | snapshot saved" % e, flush=True)
    with open(os.environ["KILN_PROGRESS"], "a") as f:
        f.write("%d/%d\n" % (e + 1, epochs))
open("model.txt", "w").write("trained %d epochs\n" % epochs)
'''


def recipe(epochs=8, extra=""):
    return """
task { name = "train", inputs = {"train.py"}, outputs = {"model.txt"}, resume = {"ckpt/snapshot.json"},
       run = {"python3", "train.py", "%d", "{resume}"}, %s }
""" % (epochs, extra)


class Resume(KilnTestCase):
    def setUp(self):
        super().setUp()
        self.ws.write("train.py", TRAINER)

    def tearDown(self):
        for pid in marked_processes(self.ws.dir):  # nothing of a failed test outlives it
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        super().tearDown()

    def ledger(self, kind="epoch"):
        if not self.ws.exists("ledger"):
            return []
        return [line.split()[1] for line in self.ws.read("ledger").splitlines() if line.startswith(kind + " ")]

    def assert_each_epoch_once_but(self, epochs, in_flight):
        counts = Counter(int(e) for e in self.ledger())
        self.assertEqual(sorted(counts), list(range(epochs)), "every epoch ran")
        twice = [e for e, n in counts.items() if n > 1]
        self.assertLessEqual(len(twice), in_flight, "at most the epoch in flight ran again: %s" % counts)
        self.assertTrue(all(n <= 2 for n in counts.values()), counts)

    def finished_and_noop(self, epochs=8):
        self.assertEqual(self.ws.read("model.txt"), "trained %d epochs\n" % epochs)
        r = self.ws.kiln("run")
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(r.ran, set(), "the next run is a no-op")
        self.assertIn("1 up to date", r.out)

    def test_a_retry_continues_from_the_snapshot(self):
        self.ws.write("kiln.lua", recipe(extra="retries = 1"))
        r = self.ws.kiln("run", env={"FAIL_AT": "3"})
        self.assertEqual(r.rc, 0, r)
        self.assertIn("retry", r.out)
        self.assert_each_epoch_once_but(8, in_flight=1)
        self.assertEqual(self.ledger().count("3"), 2, "the epoch in flight at the crash ran again")
        log2 = self.ws.read(".kiln/logs/train@2.log")
        self.assertIn("Resuming training from snapshot at epoch 3 KILN_RESUME=1", log2)
        self.assertIn("KILN_RESUME=1", log2.split("# --")[0], "the log header says it continues")
        self.assertIn("simulated crash at epoch 3", self.ws.read(".kiln/logs/train@1.log"))
        self.finished_and_noop()

    def interrupt(self, sig, epochs_before=3):
        p = self.ws.spawn("run")
        self.assertTrue(wait_for(lambda: len(self.ledger()) >= epochs_before, timeout=60), "training got going")
        os.kill(p.pid, sig)
        p.out, p.err = p.communicate(timeout=60)
        return p

    def test_ctrl_c_then_a_rerun_continues(self):
        self.ws.write("kiln.lua", recipe())
        p = self.interrupt(signal.SIGINT)
        self.assertEqual(p.returncode, 130)
        self.assertIn("kept     train: ckpt/snapshot.json, its resume state: the next `kiln run` continues from it",
                      p.out, "the Ctrl-C says what it kept")
        self.assertFalse(marked_processes(self.ws.dir), "Ctrl-C stops the attempt")
        done = len(self.ledger())
        self.assertLess(done, 8)
        self.assertIn("it continues from its resume state (ckpt/snapshot.json)", self.ws.kiln("status").out)
        r = self.ws.kiln("run")
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(r.ran, {"train"})
        self.assert_each_epoch_once_but(8, in_flight=1)
        self.assertEqual(len(self.ledger("start")), 2)
        self.assertIn("Resuming training from snapshot", self.ws.read(".kiln/logs/train@2.log"))
        self.finished_and_noop()

    # a script that keeps its checkpoints in its output folder and continues from the last
    # one there, as Hugging Face's example scripts do (get_last_checkpoint(output_dir))
    OUTPUT_DIR_TRAINER = r'''
import os, re, sys, time
out = sys.argv[1]
os.makedirs(out, exist_ok=True)
start = max([int(m.group(1)) for m in (re.fullmatch(r"checkpoint-(\d+)", d) for d in os.listdir(out)) if m], default=0)
for step in range(start + 1, 9):
    time.sleep(0.25)
    open("ledger", "a").write("epoch %d\n" % step)
    if step == int(os.environ.get("FAIL_AT", "-1")):
        sys.exit("simulated crash")
    os.makedirs(os.path.join(out, "checkpoint-%d" % step))
    open(os.path.join(out, "checkpoint-%d" % step, "trainer_state.json"), "w").write("{}")
open(os.path.join(out, "model.txt"), "w").write("trained")
'''

    def test_checkpoints_in_an_output_folder_are_said_to_be_deleted_and_resume_keeps_them(self):
        # the task names its output folder but no resume: a Ctrl-C says the next attempt
        # deletes the checkpoints there and what keeps them; with resume added (not part of
        # the key) the re-run continues from the last one
        self.ws.write("train.py", self.OUTPUT_DIR_TRAINER)
        task = 'task { name = "train", inputs = {"train.py"}, outputs = {"out"}, %srun = {"python3", "train.py", "out"} }\n'
        self.ws.write("kiln.lua", task % "")
        p = self.interrupt(signal.SIGINT)
        self.assertEqual(p.returncode, 130, p.out)
        self.assertRegex(p.out, r"train: out holds checkpoints \(out/checkpoint-\d\) that its next attempt deletes "
                         r"with its other outputs, starting afresh: resume = \{ \"out\" \} in the task keeps them")
        last = max(int(d.split("-")[1]) for d in os.listdir(self.ws.path("out")))
        self.ws.write("kiln.lua", task % 'resume = {"out"}, ')
        r = self.ws.kiln("run")
        self.assertEqual(r.rc, 0, r)
        self.assertNotIn("deleted", r.out)
        self.assertEqual([int(e) for e in self.ledger()][-(8 - last):], list(range(last + 1, 9)),
                         "continued after checkpoint-%d" % last)
        self.assertLessEqual(len(self.ledger()), 9, "at most the step in flight ran twice")

    def test_a_failed_attempt_without_resume_says_its_checkpoints_go_and_the_next_says_they_went(self):
        self.ws.write("train.py", self.OUTPUT_DIR_TRAINER)
        self.ws.write("kiln.lua", 'task { name = "train", inputs = {"train.py"}, outputs = {"out"}, '
                      'run = {"python3", "train.py", "out"} }\n')
        r = self.ws.kiln("run", env={"FAIL_AT": "3"})
        self.assertEqual(r.rc, 1, r)
        self.assertIn("train: out holds checkpoints (out/checkpoint-2) that its next attempt deletes", r.out)
        self.assertIn("; out (out/checkpoint-2), holding checkpoints it left, deleted as it starts afresh (resume = "
                      "{ \"out\" } keeps them", self.ws.kiln("status").out, "said before the run")
        self.ws.write("train.py", self.OUTPUT_DIR_TRAINER + "\n")  # a new key: they are not its own
        self.assertNotIn("holding checkpoints", self.ws.kiln("status").out)
        self.ws.write("train.py", self.OUTPUT_DIR_TRAINER)
        r = self.ws.kiln("run")
        self.assertEqual(r.rc, 0, r)
        self.assertIn("train: out (out/checkpoint-2), holding checkpoints an unfinished attempt left, deleted with the "
                      "task's outputs: this attempt starts afresh (resume = { \"out\" } keeps them", r.out)
        self.assertEqual(self.ledger(), [str(e) for e in (1, 2, 3)] + [str(e) for e in range(1, 9)])
        r = self.ws.kiln("run", "--force", "train")  # after a success: nothing to say
        self.assertEqual(r.rc, 0, r)
        self.assertNotIn("checkpoints", r.out)

    def test_kill_9_of_kiln_reattaches_and_no_epoch_runs_twice(self):
        self.ws.write("kiln.lua", recipe(epochs=10))
        self.interrupt(signal.SIGKILL)
        self.assertTrue(marked_processes(self.ws.dir), "the attempt outlives a kill -9 of kiln")
        # how far it got, from its progress file, which it goes on writing
        self.assertRegex(self.ws.kiln("status").out, r"running   train: attempt 1 \(local/[\d/]+\), started [\d.]+s ago "
                         r"by an earlier kiln, at ([3-9]|10)/10, still runs: `kiln run` re-attaches to it")
        time.sleep(0.5)  # it goes on working while no kiln watches
        r = self.ws.kiln("run")
        self.assertEqual(r.rc, 0, r)
        self.assertIn("train: attached to local job", r.out)
        self.assertEqual(r.ran, {"train"})
        self.assertEqual(len(self.ledger("start")), 1, "started once in all")
        self.assert_each_epoch_once_but(10, in_flight=0)
        self.assertEqual(sorted(os.listdir(self.ws.path(".kiln/logs"))), ["train@1.log"])
        self.finished_and_noop(10)

    def test_a_start_a_slow_keeper_makes_after_kiln_was_killed_is_re_attached_not_run_again(self):
        # a loaded machine: kiln sent a start, was killed -9, and only then did its keeper
        # (here one that sleeps 2 s before it reads anything) make the attempt. The next kiln
        # waits for that keeper and re-attaches to it rather than starting the task beside it
        bindir = tempfile.mkdtemp(prefix="kiln-slow-keeper-")
        self.addCleanup(shutil.rmtree, bindir, ignore_errors=True)
        shutil.copy(KILN, os.path.join(bindir, "kiln"))
        keeper = os.path.join(bindir, "kiln-keeper")
        with open(keeper, "w") as f:  # it waits for kiln's start to arrive (not reading it), then sleeps
            f.write("#!/bin/sh\n%s -c 'import select; select.select([0], [], [])'\ntouch start-sent\nsleep 2\n"
                    "exec %s \"$@\"\n" % (sys.executable, os.path.join(os.path.dirname(os.path.realpath(KILN)),
                                                                    "kiln-keeper")))
        os.chmod(keeper, 0o755)
        self.ws.write("kiln.lua", 'task { name = "t", outputs = {"t.txt"}, '
                      'run = "echo start >> ledger; sleep 1; echo done >> t.txt" }\n')
        p = subprocess.Popen([os.path.join(bindir, "kiln"), "run"], cwd=self.ws.dir, env=self.ws.env(),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.assertTrue(wait_for(lambda: self.ws.exists("start-sent"), timeout=30), "the start was sent")
        p.kill()
        p.wait()
        self.assertFalse(self.ws.exists("ledger"), "the keeper had not made the attempt yet")
        r = self.ws.kiln("run")
        self.assertEqual(r.rc, 0, r)
        self.assertIn("t: attached to local job", r.out)
        self.assertIn("1 ran (1 in attempts an earlier kiln started, re-attached)", r.out)
        self.assertEqual(self.ws.read("ledger"), "start\n", "started once in all")
        self.assertEqual(self.ws.read("t.txt"), "done\n")
        self.assertEqual(self.ws.kiln("run").ran, set())

    def test_only_an_error_of_a_resumed_attempt_points_at_its_state(self):
        self.ws.write("kiln.lua", recipe(extra="timeout = 1"))
        r = self.ws.kiln("run", env={"FAIL_AT": "1"})  # a snapshot of epoch 0 is left
        self.assertEqual(r.rc, 1, r)
        self.assertNotIn("kiln clean", r.out, "it did not continue from anything")
        r = self.ws.kiln("run", env={"EPOCH_SEC": "5"})
        self.assertEqual(r.rc, 1, r)
        self.assertIn("[timeout]", r.out)
        self.assertNotIn("kiln clean", r.out, "a timeout is no sign of a damaged state")
        self.ws.write("ckpt/snapshot.json", "{\"epo\": 1}")  # whole, but a state it cannot load
        r = self.ws.kiln("run")
        self.assertEqual(r.rc, 1, r)
        self.assertIn("it continued from the resume state an earlier attempt left (ckpt/snapshot.json): if that is "
                      "damaged, `kiln clean train` starts afresh", r.out)

    def test_a_changed_key_starts_afresh(self):
        self.ws.write("kiln.lua", recipe())
        self.interrupt(signal.SIGINT)
        self.assertTrue(self.ws.exists("ckpt/snapshot.json"))
        self.ws.write("kiln.lua", recipe(epochs=6))  # another run: the snapshot is not its own
        r = self.ws.kiln("status")
        self.assertIn("its resume state (ckpt/snapshot.json) is of the task as it was, so it starts afresh (after a "
                      "change that makes no difference to it, `kiln accept train` keeps it)", r.out)
        r = self.ws.kiln("run")
        self.assertEqual(r.rc, 0, r)
        self.assertIn("train: its resume state (ckpt/snapshot.json), left unfinished by an attempt of the task as it "
                      "was (its key changed), is removed: this attempt starts afresh", r.out, "said, not silent")
        self.assertNotIn("Resuming", self.ws.read(".kiln/logs/train@2.log"))
        self.assertEqual(self.ledger("start").__len__(), 2)
        second = self.ws.read("ledger").split("start ")[2]
        self.assertEqual(re.findall(r"epoch (\d+)", second), [str(e) for e in range(6)], "from epoch 0")
        # --force starts afresh too, even from a snapshot of the same key
        self.interrupt_forced()

    def interrupt_forced(self):
        self.ws.write("ckpt/snapshot.json", '{"epoch": 4}')
        r = self.ws.kiln("run", "--force", "train")
        self.assertEqual(r.rc, 0, r)
        self.assertNotIn("Resuming", self.ws.read(".kiln/logs/train@3.log"))

    def test_accept_keeps_the_resume_state_across_an_edit_that_changes_no_result(self):
        self.ws.write("kiln.lua", recipe())
        self.interrupt(signal.SIGINT)
        self.ws.write("train.py", TRAINER + "# prints a little more\n")
        r = self.ws.kiln("accept", "train")
        self.assertEqual(r.rc, 0, r)
        self.assertIn("accepted  train: its resume state (ckpt/snapshot.json), left by an attempt under the recipe as "
                      "it was, is kept for the recipe as it is: the next `kiln run` continues from it", r.out)
        r = self.ws.kiln("run")
        self.assertEqual(r.rc, 0, r)
        self.assertIn("Resuming training from snapshot", self.ws.read(".kiln/logs/train@2.log"))
        self.assert_each_epoch_once_but(8, in_flight=1)
        self.finished_and_noop()

    def test_accept_after_a_kill_9_and_an_edit_reattaches_instead_of_restarting(self):
        self.ws.write("kiln.lua", recipe(epochs=10))
        self.interrupt(signal.SIGKILL)
        self.ws.write("train.py", TRAINER + "# prints a little more\n")
        r = self.ws.kiln("status")
        self.assertIn("but the task changed since it started: `kiln run` stops it and starts afresh (after a change "
                      "that makes no difference to it, `kiln accept train` first and the run re-attaches to it)", r.out)
        r = self.ws.kiln("accept", "train")
        self.assertIn("accepted  train: its attempt still running, started under the recipe as it was, counts for the "
                      "recipe as it is: the next `kiln run` re-attaches to it", r.out)
        r = self.ws.kiln("accept", "train")
        self.assertEqual(r.rc, 1, r)
        self.assertIn("refused   train: an attempt of the recipe as it is still runs", r.out)
        r = self.ws.kiln("run")
        self.assertEqual(r.rc, 0, r)
        self.assertIn("train: attached to local job", r.out)
        self.assertEqual(len(self.ledger("start")), 1, "started once in all")
        self.assert_each_epoch_once_but(10, in_flight=0)
        self.finished_and_noop(10)

    def test_a_kill_9_then_a_changed_key_stops_the_old_attempt(self):
        self.ws.write("kiln.lua", recipe(epochs=40))
        self.interrupt(signal.SIGKILL, epochs_before=1)
        old = marked_processes(self.ws.dir)
        self.assertTrue(old)
        self.ws.write("kiln.lua", recipe(epochs=3))
        r = self.ws.kiln("run")
        self.assertEqual(r.rc, 0, r)
        self.assertNotIn("attached", r.out)
        self.assertIn("train: stopped the attempt an earlier kiln left running: the task changed since it started",
                      r.out, "said, not silent")
        self.assertFalse(set(old) & set(marked_processes(self.ws.dir)), "the stale attempt was stopped")
        self.assertEqual(self.ws.read("model.txt"), "trained 3 epochs\n")
        self.assertNotIn("Resuming", self.ws.read(".kiln/logs/train@2.log"))

    def test_a_closed_terminal_leaves_the_attempt_running(self):
        self.ws.write("kiln.lua", recipe())
        p = self.interrupt(signal.SIGHUP)
        self.assertIn("train: left running as local job", p.out)
        self.assertIn("the terminal closed", p.out)
        self.assertTrue(marked_processes(self.ws.dir), "SIGHUP leaves the attempt running")
        r = self.ws.kiln("run")
        self.assertEqual(r.rc, 0, r)
        self.assertIn("attached to local job", r.out)
        self.assertEqual(len(self.ledger("start")), 1)
        self.assert_each_epoch_once_but(8, in_flight=0)

    def test_detach_leaves_the_attempt_running_on_purpose(self):
        self.ws.write("kiln.lua", recipe())
        p = self.ws.spawn("run", "--detach")
        self.assertTrue(wait_for(lambda: len(self.ledger()) >= 2, timeout=60))
        p.send_signal(signal.SIGINT)
        out, _ = p.communicate(timeout=60)
        self.assertIn("train: left running as local job", out)
        self.assertIn("(--detach)", out)
        self.assertTrue(marked_processes(self.ws.dir))
        r = self.ws.kiln("run")
        self.assertEqual(r.rc, 0, r)
        self.assertIn("attached to local job", r.out)
        self.assertEqual(len(self.ledger("start")), 1, "started once in all")
        self.assert_each_epoch_once_but(8, in_flight=0)

    def test_a_reattached_attempt_keeps_its_gpu_and_no_other_task_gets_it(self):
        # a runs on one of two devices; kiln is killed; the next run re-attaches to a and
        # gives b the other device, never the one a still uses
        self.ws.write("kiln.lua", 'task { name = "a", gpus = 1, outputs = {"a.txt"}, '
                      'run = "echo $CUDA_VISIBLE_DEVICES > a.dev; sleep 2; echo done > a.txt" }\n')
        p = self.ws.spawn("run", "--gpus", "0,1")
        self.assertTrue(wait_for(lambda: self.ws.exists("a.dev")))
        time.sleep(0.2)
        p.send_signal(signal.SIGKILL)
        p.communicate()
        self.ws.write("kiln.lua", self.ws.read("kiln.lua") + 'task { name = "b", gpus = 1, outputs = {"b.txt"}, '
                      'run = "echo $CUDA_VISIBLE_DEVICES > b.dev; sleep 0.5; echo done > b.txt" }\n')
        r = self.ws.kiln("run", "--gpus", "0,1")
        self.assertEqual(r.rc, 0, r)
        self.assertIn("a: attached to local job", r.out)
        self.assertEqual({self.ws.read("a.dev").strip(), self.ws.read("b.dev").strip()}, {"0", "1"})

    def test_a_reattached_attempt_keeps_what_is_left_of_its_timeout(self):
        # a hangs with a 4 s timeout; kiln is killed 2.5 s in; the next run re-attaches and
        # stops it when its 4 s are up, not 4 s after the re-attach (a hung job would hold
        # its GPU twice its timeout, more after each kill)
        self.ws.write("kiln.lua", 'task { name = "a", timeout = 4, outputs = {"a.txt"}, '
                      'run = "touch started; sleep 60; echo done > a.txt" }\n')
        p = self.ws.spawn("run")
        self.assertTrue(wait_for(lambda: self.ws.exists("started")))
        time.sleep(2.5)
        p.send_signal(signal.SIGKILL)
        p.communicate()
        r = self.ws.kiln("run")
        self.assertEqual(r.rc, 1, r)
        self.assertIn("a: attached to local job", r.out)
        self.assertIn("timed out after 4.0s", r.out)
        ran = self.ws.query("SELECT ended - started FROM attempts WHERE task = 'a' AND attempt > 0")
        self.assertEqual(len(ran), 1, ran)
        self.assertLess(ran[0][0], 5.8, "stopped at its timeout (4 s), not 4 s after the re-attach (6.5 s)")

    def test_clean_stops_what_a_killed_kiln_left_running_before_its_outputs_go(self):
        # all reads a.txt, then writes on: cleaned in between, it would finish with a.txt
        # gone and be taken up as done by the next run (a wrong all.txt recorded as done)
        self.ws.write("kiln.lua", 'task { name = "a", outputs = {"a.txt"}, run = "echo a > {out}" }\n'
                      'task { name = "all", deps = {"a"}, outputs = {"all.txt"}, '
                      'run = "cat a.txt > {out}; echo begun > begun; sleep 2; echo done >> {out}" }\n')
        p = self.ws.spawn("run")
        self.assertTrue(wait_for(lambda: self.ws.exists("begun")))
        p.send_signal(signal.SIGKILL)
        p.communicate()
        self.assertTrue(marked_processes(self.ws.dir))
        r = self.ws.kiln("clean")
        self.assertEqual(r.rc, 0, r)
        self.assertIn('stopped the attempt of "all" an earlier kiln left running: kiln clean removes its outputs', r.err)
        self.assertFalse(marked_processes(self.ws.dir), "nothing of the killed kiln runs on")
        time.sleep(2.2)
        self.assertFalse(self.ws.exists("all.txt"), "nothing wrote the output after clean")
        r = self.ws.kiln("run")
        self.assertEqual(r.rc, 0, r)
        self.assertNotIn("attached", r.out)
        self.assertEqual(r.ran, {"a", "all"})
        self.assertEqual(self.ws.read("all.txt"), "a\ndone\n")


# Saves its checkpoint in place with a plain torch.save after every epoch, as most published
# trainers do; each epoch appends "epoch N pid" to the ledger. At epoch DIE_AT it is stopped
# halfway through the save (once): "kill" as the OOM killer would, "hang" to be stopped by a
# Ctrl-C there. It first waits until kiln's copy holds the checkpoint on disk (the copy keeps
# the file's time), so the copy's epoch is known.
TORCH_TRAINER = r'''
import io, os, signal, sys, time, torch
open("pid", "w").write(str(os.getpid()))
ckpt, epochs = sys.argv[1], int(sys.argv[2])
die_at, how = int(os.environ.get("DIE_AT", "-1")), os.environ.get("HOW", "kill")
start, state = 0, {"w": torch.zeros(int(os.environ.get("SIZE", "300000")))}
if os.path.exists(ckpt):
    state = torch.load(ckpt)  # a checkpoint cut short fails here
    start = state["epoch"]
    print("resuming after epoch", start, flush=True)
for e in range(start + 1, epochs + 1):
    time.sleep(float(os.environ.get("EPOCH_SEC", "0.3")))
    state["w"] += 1
    state["epoch"] = e
    with open("ledger", "a") as f:
        f.write("epoch %d %d\n" % (e, os.getpid()))
    if e == die_at and not os.path.exists("died"):
        open("died", "w").close()
        copy = ".kiln/resume/%s@0" % os.environ["KILN_TASK"]
        for _ in range(300):
            if os.environ.get("NO_WAIT"):  # time enough for a copy, were one taken
                time.sleep(2.5)
                break
            if e == 1 or (os.path.exists(copy) and os.stat(copy).st_mtime_ns == os.stat(ckpt).st_mtime_ns):
                break
            time.sleep(0.1)
        buf = io.BytesIO()
        torch.save(state, buf)
        data = buf.getvalue()
        with open(ckpt, "wb") as f:
            f.write(data[: len(data) // 2])
            f.flush()
            open("saving", "w").close()
            if how == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            time.sleep(600)
    torch.save(state, ckpt)
torch.save(state["w"][:4], "model.pt")
'''


class CutCheckpoint(KilnTestCase):
    def setUp(self):
        if NO_TORCH:
            self.skipTest(NO_TORCH)
        super().setUp()
        self.ws.write("train.py", TORCH_TRAINER)
        self.ws.write("kiln.lua", """
task { name = "train", inputs = {"train.py"}, outputs = {"model.pt"}, resume = {"ckpt.pt"}, retries = 1,
       run = {"%s", "train.py", "{resume}", "5"} }
""" % PYTHON)

    def tearDown(self):
        for pid in marked_processes(self.ws.dir):
            os.kill(pid, signal.SIGKILL)
        super().tearDown()

    def epochs(self):
        return [int(line.split()[1]) for line in self.ws.read("ledger").splitlines()]

    def finished(self):
        self.assertEqual(self.ws.read(".kiln/logs/train@1.log").count("resuming"), 0)
        self.assertFalse(self.ws.exists(".kiln/resume/train@0"), "a success drops the copy")
        r = self.ws.kiln("run")
        self.assertEqual(r.ran, set(), "the next run is a no-op")

    def test_killed_mid_save_continues_from_the_last_whole_copy(self):
        r = self.ws.kiln("run", env={"DIE_AT": "3"})
        self.assertEqual(r.rc, 0, r)
        self.assertIn("train: ckpt.pt was cut short (an attempt was stopped while writing it): put back its last "
                      "whole copy, saved at ", r.out)
        self.assertIn("resuming after epoch 2", self.ws.read(".kiln/logs/train@2.log"))
        self.assertEqual(self.epochs(), [1, 2, 3, 3, 4, 5], "only the epoch in flight ran again")
        self.finished()

    def test_a_cut_checkpoint_without_a_copy_is_removed_and_the_attempt_starts_afresh(self):
        r = self.ws.kiln("run", env={"DIE_AT": "1"})
        self.assertEqual(r.rc, 0, r)
        self.assertIn("train: ckpt.pt was cut short (an attempt was stopped while writing it) and kiln holds no "
                      "whole copy of it: removed, so this attempt starts it afresh", r.out)
        self.assertNotIn("resuming", self.ws.read(".kiln/logs/train@2.log"))
        self.assertEqual(self.epochs(), [1, 1, 2, 3, 4, 5])
        self.finished()

    def test_no_copy_where_it_would_leave_too_little_room(self):
        mnt = self.ws.path(".kiln/resume")  # 64 MiB there: under the GiB a copy must leave free
        os.makedirs(mnt)
        if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", mnt], capture_output=True).returncode:
            self.skipTest("mounting a tmpfs is not allowed here (needs root outside a container)")
        try:
            r = self.ws.kiln("run", env={"DIE_AT": "3", "NO_WAIT": "1"})
        finally:
            subprocess.run(["umount", "-l", mnt])
        self.assertEqual(r.rc, 0, r)
        self.assertIn("kiln holds no whole copy of it: removed, so this attempt starts it afresh", r.out)
        self.assertEqual(self.epochs(), [1, 2, 3, 1, 2, 3, 4, 5])

    def test_ctrl_c_mid_save_says_so_and_the_rerun_continues_from_the_copy(self):
        p = self.ws.spawn("run", env={"DIE_AT": "4", "HOW": "hang"})
        self.assertTrue(wait_for(lambda: self.ws.exists("saving"), timeout=60), "the save got going")
        os.kill(p.pid, signal.SIGINT)
        out, _ = p.communicate(timeout=60)
        self.assertEqual(p.returncode, 130, out)
        self.assertRegex(out, r"kept     train: ckpt.pt was being written when it stopped; the next `kiln run` "
                              r"continues from its last whole copy, saved at \d\d:\d\d:\d\d")
        self.ws.write(".kiln/resume/gone/task@0", "x" * 1000)  # of a task no attempt of which is open
        self.ws.write(".kiln/resume/train@0.tmp", "half")  # a copy a killed kiln left half made
        r = self.ws.kiln("gc")
        self.assertIn(", 2 checkpoint copies no attempt needs", r.out)
        self.assertTrue(self.ws.exists(".kiln/resume/train@0"), "the copy the next attempt needs stays")
        self.assertFalse(self.ws.exists(".kiln/resume/gone"))
        r = self.ws.kiln("run")
        self.assertEqual(r.rc, 0, r)
        self.assertIn("put back its last whole copy", r.out)
        self.assertIn("resuming after epoch 3", self.ws.read(".kiln/logs/train@2.log"))
        self.assertEqual(self.epochs(), [1, 2, 3, 4, 4, 5])
        self.finished()


# Keeps every epoch's checkpoint in a folder, as many trainers do, and continues from the
# newest: ckpt/epoch_N.pt (LAYOUT=files), or ckpt/checkpoint-N/ holding model.pt and
# optimizer.pt (LAYOUT=dirs, Hugging Face's layout); each saved in place with torch.save.
# At DIE_AT it is killed halfway through that epoch's save (once). (scripts/resume-campaign.py
# kills it at random: EPOCH_SEC and SIZE, the checkpoint's floats, make its epochs longer.)
FOLDER_TRAINER = r'''
import io, json, os, re, signal, sys, time, torch
open("pid", "w").write(str(os.getpid()))
# LAYOUT: files (ckpt/epoch_N.pt), dirs (ckpt/checkpoint-N/{model,optimizer}.pt), hf (as dirs,
# then trainer_state.json, which says the epoch to continue after, as Hugging Face's does;
# with ARGS_FILE, training_args.bin after the weights, as its Trainer writes); WEIGHTS =
# safetensors: the files layout's epoch_N.safetensors, in that format (no torch.save);
# CUT_JSON: the stop at DIE_AT comes within trainer_state.json's write; dcp: checkpoint-N/
# holding __0_0.distcp, then .metadata, as torch.distributed.checkpoint writes
epochs, hf = int(sys.argv[1]), os.environ.get("LAYOUT") == "hf"
dcp = os.environ.get("LAYOUT") == "dcp"  # as torch.distributed.checkpoint: a rank's .distcp, then .metadata
dirs = hf or dcp or os.environ.get("LAYOUT") == "dirs"
ext = ".safetensors" if os.environ.get("WEIGHTS") == "safetensors" and not dirs else ".pt"

def encode(state, path):  # the bytes a save writes
    if not path.endswith(".safetensors"):
        buf = io.BytesIO()
        torch.save(state, buf)
        return buf.getvalue()
    data = state["w"].numpy().tobytes()
    head = json.dumps({"w": {"dtype": "F32", "shape": [len(state["w"])], "data_offsets": [0, len(data)]}}).encode()
    return len(head).to_bytes(8, "little") + head + data

def load(path):
    if not path.endswith(".safetensors"):
        return torch.load(path)
    b = open(path, "rb").read()
    n = int.from_bytes(b[:8], "little")
    end = json.loads(b[8:8 + n])["w"]["data_offsets"][1]
    if len(b) < 8 + n + end:
        raise ValueError("Error while deserializing header: MetadataIncompleteBuffer")
    return {"w": torch.frombuffer(bytearray(b[8 + n:8 + n + end]), dtype=torch.float32)}

die_at = int(os.environ.get("DIE_AT", "-1"))
os.makedirs("ckpt", exist_ok=True)
open("ckpt/latest", "a").close()  # an empty marker beside them, as some trainers leave
done = sorted(int(re.sub(r"\D", "", n)) for n in os.listdir("ckpt") if re.search(r"\d", n))
state, start = {"w": torch.zeros(int(os.environ.get("SIZE", "100000")))}, 0
if done:
    start = done[-1]
    where = "ckpt/checkpoint-%d/model.pt" % start if dirs else "ckpt/epoch_%d%s" % (start, ext)
    if dcp:  # without its .metadata it cannot load
        open("ckpt/checkpoint-%d/.metadata" % start).close()
        where = "ckpt/checkpoint-%d/__0_0.distcp" % start
    state = load(where)  # a checkpoint cut short fails here
    if dirs and not dcp:
        torch.load("ckpt/checkpoint-%d/optimizer.pt" % start)
    if hf:  # a checkpoint stopped before its last file fails here
        start = json.load(open("ckpt/checkpoint-%d/trainer_state.json" % start))["epoch"]
    print("resuming after epoch", start, flush=True)
for e in range(start + 1, epochs + 1):
    time.sleep(float(os.environ.get("EPOCH_SEC", "0")))
    state["w"] += 1
    with open("ledger", "a") as f:
        f.write("epoch %d\n" % e)
    files = ["ckpt/checkpoint-%d/model.pt" % e, "ckpt/checkpoint-%d/optimizer.pt" % e] if dirs else ["ckpt/epoch_%d%s" % (e, ext)]
    if hf and os.environ.get("ARGS_FILE"):  # the Trainer's own file, right after the weights
        files.insert(1, "ckpt/checkpoint-%d/training_args.bin" % e)
    if hf:
        files.append("ckpt/checkpoint-%d/trainer_state.json" % e)
    if dcp:
        files = ["ckpt/checkpoint-%d/__0_0.distcp" % e, "ckpt/checkpoint-%d/.metadata" % e]
    for path in files:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        # what a trainer does between two files (its rng state, a log line); the Trainer writes
        # training_args.bin right after the weights, in the same call
        if path != files[0] and not path.endswith("/training_args.bin"):
            time.sleep(float(os.environ.get("BETWEEN_SEC", "0")))
        if path.endswith(".json") or path.endswith("/.metadata"):
            if e == die_at and not os.path.exists("died"):  # stopped between two files, or in this one
                open("died", "w").close()
                if os.environ.get("CUT_JSON"):
                    with open(path, "w") as f:
                        f.write(json.dumps({"epoch": e, "log_history": []}, indent=2)[:20])
                os.kill(os.getpid(), signal.SIGKILL)
            json.dump({"epoch": e}, open(path, "w"))
            continue
        if e == die_at and path == files[-1] and not os.path.exists("died"):
            open("died", "w").close()
            blob = encode(state, path)
            with open(path, "wb") as f:
                f.write(blob[: len(blob) // 2])
                f.flush()
                os.kill(os.getpid(), signal.SIGKILL)
        with open(path, "wb") as f:
            f.write(encode(state, path))
torch.save(state["w"][:4], "model.pt")
'''


class CutCheckpointInAFolder(KilnTestCase):
    def cut_then_continued(self, layout, die_at=3, env=""):
        if NO_TORCH:
            self.skipTest(NO_TORCH)
        self.ws.write("train.py", FOLDER_TRAINER)
        self.ws.write("kiln.lua", """
task { name = "train", inputs = {"train.py"}, outputs = {"model.pt"}, resume = {"ckpt"}, retries = 1,
       env = { LAYOUT = "%s", DIE_AT = "%d"%s }, run = {"%s", "train.py", "5"} }
""" % (layout, die_at, env, PYTHON))
        r = self.ws.kiln("run")
        self.assertEqual(r.rc, 0, r)
        if die_at > 1:
            self.assertIn("resuming after epoch %d" % (die_at - 1), self.ws.read(".kiln/logs/train@2.log"))
        else:
            self.assertNotIn("resuming", self.ws.read(".kiln/logs/train@2.log"))
        self.assertEqual(self.ws.read("ledger").split("\n")[:-1],
                         ["epoch %d" % e for e in list(range(1, die_at + 1)) + list(range(die_at, 6))],
                         "only the epoch in flight ran again")
        self.assertTrue(self.ws.exists("ckpt/latest"), "an empty file not named as a checkpoint is left alone")
        self.assertEqual(self.ws.kiln("run").ran, set(), "the next run is a no-op")
        return r.out

    def test_a_cut_checkpoint_file_in_a_resume_folder_is_removed(self):
        out = self.cut_then_continued("files")
        self.assertIn("train: ckpt/epoch_3.pt was cut short (an attempt was stopped while writing it): it is removed, "
                      "so this attempt continues from the whole checkpoints beside it", out)

    def test_a_cut_safetensors_file_in_a_resume_folder_is_removed(self):
        out = self.cut_then_continued("files", env=', WEIGHTS = "safetensors"')
        self.assertIn("train: ckpt/epoch_3.safetensors was cut short (an attempt was stopped while writing it): it is "
                      "removed", out)

    def test_a_checkpoint_folder_holding_a_cut_file_is_removed(self):
        out = self.cut_then_continued("dirs")
        self.assertIn("train: ckpt/checkpoint-3/optimizer.pt was cut short (an attempt was stopped while writing it): "
                      "ckpt/checkpoint-3 removed, so this attempt continues from the whole checkpoints beside it", out)

    def test_a_checkpoint_folder_stopped_between_its_files_is_removed(self):
        out = self.cut_then_continued("hf")
        self.assertIn("train: ckpt/checkpoint-3 lacks trainer_state.json, which every checkpoint before it holds (an "
                      "attempt was stopped between its files): removed, so this attempt continues from the whole "
                      "checkpoints beside it", out)

    def test_a_checkpoint_folder_whose_json_was_cut_is_removed(self):
        out = self.cut_then_continued("hf", env=', CUT_JSON = "1"')
        self.assertIn("train: ckpt/checkpoint-3/trainer_state.json was cut short (an attempt was stopped while writing "
                      "it): ckpt/checkpoint-3 removed", out)

    def test_the_first_distributed_checkpoint_stopped_before_its_metadata_is_removed(self):
        out = self.cut_then_continued("dcp", die_at=1)
        self.assertIn("train: ckpt/checkpoint-1 holds .distcp files but no .metadata, which torch.distributed.checkpoint "
                      "writes last (an attempt was stopped between its files): removed", out)

    def test_the_first_hugging_face_checkpoint_stopped_between_its_files_is_removed(self):
        # no checkpoint before it to compare with: the Trainer's names tell (before, the retry
        # found checkpoint-1 without trainer_state.json and failed on it, as did every retry)
        out = self.cut_then_continued("hf", die_at=1, env=', ARGS_FILE = "1"')
        self.assertIn("train: ckpt/checkpoint-1 holds training_args.bin but no trainer_state.json, which the Hugging "
                      "Face Trainer writes last (an attempt was stopped between its files): removed, so this attempt "
                      "continues from the whole checkpoints beside it, or starts afresh", out)


class Logs(KilnTestCase):
    def run_and_follow(self, task_t):
        """Starts `kiln run` of a recipe of the one task t, and `kiln log -f t` once its
        first log is there: (the run, the follower)."""
        self.ws.write("kiln.lua", task_t)
        p = self.ws.spawn("run")
        self.assertTrue(wait_for(lambda: self.ws.exists(".kiln/logs/t@1.log"), timeout=30))
        return p, self.ws.spawn("log", "--follow", "t")

    def test_follow_prints_as_written_and_goes_on_to_a_retry(self):
        p, follower = self.run_and_follow('task { name = "t", outputs = {"t.txt"}, retries = 1, run = "for i in 1 2 3; '
                                          'do echo line $i of $KILN_ATTEMPT; sleep 0.5; done; '
                                          '[ $KILN_ATTEMPT = 2 ] && echo > t.txt" }\n')
        # the log is there before the attempt's start is committed (a few ms, more on a loaded
        # machine): until then the state shows no attempt
        seen = []
        self.assertTrue(wait_for(lambda: seen.append(self.ws.kiln("status").out) or "running   t: attempt" in seen[-1],
                                 timeout=10), seen[-1:])
        self.assertRegex(seen[-1], r"running   t: attempt [12] \(local/")
        self.assertIn("under the kiln at work here now (pid %d)" % p.pid, seen[-1])
        # its running line says it all: no "run t: no successful run recorded" beside it
        self.assertNotIn("run       t", seen[-1])
        self.assertIn("kiln: 1 task at work under the kiln running here now", seen[-1])
        self.assertEqual(p.wait(timeout=60), 0)
        run_ended = time.time()
        out, _ = follower.communicate(timeout=60)
        self.assertEqual(follower.returncode, 0)
        self.assertLess(time.time() - run_ended, 2.5, "a success ends the following at once, not after a retry wait")
        self.assertEqual(re.findall(r"^line \d of \d$", out, re.M),
                         ["line %d of %d" % (i, a) for a in (1, 2) for i in (1, 2, 3)])
        self.assertIn("# kiln: attempt 1 failed: exit status 1 [error]\n\n==> .kiln/logs/t@2.log <==\n", out)

    def test_follow_waits_for_a_task_the_kiln_at_work_has_not_started_yet(self):
        self.ws.write("kiln.lua", 'task { name = "first", outputs = {"f.txt"}, run = "sleep 1.5; echo > f.txt" }\n'
                      'task { name = "second", inputs = {"f.txt"}, outputs = {"s.txt"}, '
                      'run = "echo second here; echo > s.txt" }\n')
        p = self.ws.spawn("run")
        self.assertTrue(wait_for(lambda: self.ws.exists(".kiln/logs/first@1.log"), timeout=30))
        r = self.ws.kiln("log", "-f", "second", timeout=60)
        self.assertEqual(p.wait(timeout=60), 0)
        self.assertEqual(r.rc, 0, r)
        self.assertIn("second has no attempt yet; waiting while the kiln at work here (pid %d)" % p.pid, r.err)
        self.assertIn("\nsecond here\n", r.out)
        self.assertEqual(self.ws.kiln("log", "-f", "third").rc, 2, "with no kiln at work, no waiting")

    def test_follow_outlives_a_killed_kiln_until_the_task_ends(self):
        p, follower = self.run_and_follow('task { name = "t", outputs = {"t.txt"}, run = "for i in 1 2 3 4 5; do '
                                          'echo line $i; sleep 0.4; done; echo > t.txt" }\n')
        time.sleep(0.5)
        p.kill()
        p.wait()
        out, _ = follower.communicate(timeout=60)
        self.assertEqual(follower.returncode, 0)
        self.assertEqual(re.findall(r"^line \d$", out, re.M), ["line %d" % i for i in range(1, 6)],
                         "to the end the keeper wrote, with no kiln recording it")
        self.assertEqual(self.ws.kiln("log", "t", "1", "-f").rc, 2, "an attempt number is not followed")
        self.assertEqual(self.ws.kiln("log", "-f", "t").out.count("line 5"), 1, "an ended attempt: printed, done")
        r = self.ws.kiln("run", "-f")
        self.assertEqual(r.rc, 2, "-f is log's alone")
        self.assertIn("--force TASK", r.err)

    def test_a_failed_attempts_log_survives_later_runs(self):
        self.ws.write("kiln.lua", 'task { name = "t", outputs = {"t.txt"}, '
                      'run = "if [ -e fixed ]; then echo fine > t.txt; else echo Traceback: boom; exit 3; fi" }\n')
        r = self.ws.kiln("run")
        self.assertEqual(r.rc, 1, r)
        failed = self.ws.read(".kiln/logs/t@1.log")
        self.assertIn("Traceback: boom", failed)
        r = self.ws.kiln("run")  # fails again: a log of its own
        self.assertEqual(r.rc, 1, r)
        self.assertIn(".kiln/logs/t@2.log", r.out)
        self.ws.write("fixed", "")
        r = self.ws.kiln("run")
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(self.ws.read(".kiln/logs/t@1.log"), failed, "unchanged by later runs")
        self.assertTrue(self.ws.exists(".kiln/logs/t@3.log"))
        self.assertIn("attempt 3 (try 1 of 1 in this run)", self.ws.kiln("log", "t").out)
        self.assertEqual(self.ws.kiln("log", "t", "1").out, failed)
        every = self.ws.kiln("log", "t", "--all").out
        self.assertEqual(re.findall(r"==> attempt (\d+) \(run \d+, ([^)]*)\)", every),
                         [("1", "exit status 3 [error]"), ("2", "exit status 3 [error]"), ("3", "ok")])
        r = self.ws.kiln("log", "t", "7")
        self.assertEqual(r.rc, 2)
        self.assertIn("has no attempt 7", r.err)

    def test_gc_keeps_the_recent_logs_and_the_last_success(self):
        self.ws.write("kiln.lua", 'task { name = "t", outputs = {"t.txt"}, run = "echo run >> count; '
                      'test $(wc -l < count) -eq 1 && echo ok > t.txt" }\n')
        self.assertEqual(self.ws.kiln("run").rc, 0)  # attempt 1: the success
        for _ in range(7):  # attempts 2..8 fail
            self.assertEqual(self.ws.kiln("run", "--force", "t").rc, 1)
        self.ws.write(".kiln/logs/stray@1.log", "a log no attempt names\n")
        # torchrun folders a killed kiln left (it removes an attempt's when it ends): of an
        # ended attempt whose log stays, and of one whose log goes
        for n in (1, 2):
            self.ws.write(".kiln/logs/t@%d.log.torchrun/kiln_x/attempt_0/0/error.json" % n, "{}")
        r = self.ws.kiln("gc")
        self.assertEqual(r.rc, 0, r)
        kept = sorted(n for n in os.listdir(self.ws.path(".kiln/logs")) if n.endswith(".log"))
        # the 5 latest (4..8), the latest success (1); 2 and 3 and the stray one go
        self.assertEqual(kept, ["t@1.log", "t@4.log", "t@5.log", "t@6.log", "t@7.log", "t@8.log"])
        self.assertIn("and 3 old attempt logs", r.out)
        self.assertEqual([n for n in os.listdir(self.ws.path(".kiln/logs")) if "torchrun" in n], [])
        self.assertIn("was removed by kiln gc", self.ws.kiln("log", "t", "2").out)

    def test_gc_leaves_a_running_attempts_torchrun_folder(self):
        # kiln killed, its attempt running on: its workers would write their errors there
        self.ws.write("kiln.lua", 'task { name = "slow", outputs = {"s.txt"}, run = "sleep 3; echo > s.txt" }\n')
        p = self.ws.spawn("run")
        self.assertTrue(wait_for(lambda: (self.ws.query("SELECT count(*) FROM attempts WHERE ended IS NULL") or [(0,)])[0][0] == 1,
                                 timeout=30), "the attempt started")
        p.kill()
        p.communicate()
        self.ws.write(".kiln/logs/slow@1.log.torchrun/kiln_x/attempt_0/0/.keep", "")
        self.assertEqual(self.ws.kiln("gc").rc, 0)
        self.assertTrue(self.ws.exists(".kiln/logs/slow@1.log.torchrun/kiln_x/attempt_0/0"))
        r = self.ws.kiln("run")
        self.assertIn("slow: attached to local job", r.out)
        self.assertEqual(self.ws.kiln("gc").rc, 0)
        self.assertFalse(self.ws.exists(".kiln/logs/slow@1.log.torchrun"), "once it has ended, it goes")


if __name__ == "__main__":
    main()
