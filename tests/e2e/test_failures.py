"""End-to-end: failed attempts are classified from how they ended and their log's tail (oom,
comm, port, preempted, missing-input, timeout, error), recorded with the attempt, noted in the
log on a line of its own, and retried per retry_on (by default not an oom); the run's summary
shows a big log's last lines as a terminal would (a progress bar's last state, a long line's
end); `kiln status` tells a task whose latest attempt failed from one never run; a task's
kill_grace gives a command that saves its state on SIGTERM the time to finish."""
import gzip
import os
import signal
import sqlite3
import subprocess
import sys
import time
import unittest

from kilntest import KilnTestCase, lua_str, main, processes_matching, wait_for
from test_torchrun import PYTHON as TORCH_PYTHON, SKIP as NO_TORCH


def attempts(ws, task):
    db = sqlite3.connect(ws.path(".kiln/state.db"))
    rows = db.execute("SELECT attempt, outcome, failure FROM attempts WHERE task = ? ORDER BY id", (task,)).fetchall()
    db.close()
    return rows


# the first attempt after the flag file is gone runs out of memory
OOM_ONCE = ("if [ ! -e oomed ]; then touch oomed; echo 'RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB "
            "(GPU 0; 79.35 GiB total capacity)' >&2; exit 1; fi; echo ok > {out}")


class FailureClasses(KilnTestCase):
    def test_oom_is_classified_and_retried_only_when_retry_on_names_it(self):
        self.ws.write("kiln.lua", 'task { name = "t", outputs = {"o.txt"}, retry_on = { "oom" }, run = %s }\n'
                      % lua_str(OOM_ONCE))
        r = self.ws.kiln("run")
        self.assertEqual(r.rc, 0, r)
        self.assertIn("[oom]", r.out)
        self.assertEqual([a[2] for a in attempts(self.ws, "t")], ["oom", None], "recorded with the attempt")
        self.assertIn("# kiln: attempt 1 failed: exit status 1 [oom]", self.ws.read(".kiln/logs/t@1.log"))
        # by default a retry is not spent on an OOM: the same attempt would run out again
        self.ws.write("kiln.lua", 'task { name = "t", outputs = {"o.txt"}, retries = 2, run = %s }\n'
                      % lua_str(OOM_ONCE + " # again"))
        os.remove(self.ws.path("oomed"))
        r = self.ws.kiln("run")
        self.assertEqual(r.rc, 1, r)
        self.assertIn("not retried", r.out)
        self.assertIn('retry_on = { "oom" }', r.out)
        log = self.ws.kiln("log", "t")
        self.assertIn("[oom]", log.out, "kiln log shows the class")

    def test_each_class_from_its_symptom(self):
        cases = {
            "port": "echo 'RuntimeError: The server socket has failed to listen on any local network address. "
                    "The server socket has failed to bind to [::]:29500 (errno: 98 - Address already in use).' >&2; exit 1",
            "comm": "echo 'RuntimeError: [/build/gloo/transport/tcp/pair.cc:598] Connection refused' >&2; exit 1",
            "preempted": "kill -9 $$",
            "missing-input": "cat does-not-exist.txt",
            "timeout": "sleep 5",
            "error": "echo 'ValueError: bad value' >&2; exit 3",
        }
        tasks = []
        for cls, cmd in cases.items():
            extra = ', timeout = "1s"' if cls == "timeout" else ""
            tasks.append('task { name = "c/%s", run = %s%s }' % (cls, lua_str(cmd), extra))
        tasks.append('task { name = "c/noprogram", run = {"no-such-program-kiln"} }')
        self.ws.write("kiln.lua", "\n".join(tasks))
        r = self.ws.kiln("run", "-k", "--kill-grace", "0.5")
        self.assertEqual(r.rc, 1, r)
        for cls in cases:
            self.assertEqual(attempts(self.ws, "c/" + cls)[-1][2], cls, r.out)
        self.assertEqual(attempts(self.ws, "c/noprogram")[-1][2], "missing-input")

    def test_port_clash_is_retried_by_default(self):
        self.ws.write("kiln.lua", 'task { name = "t", outputs = {"o.txt"}, retries = 1, run = %s }\n' % lua_str(
            "if [ \"$KILN_ATTEMPT\" = 1 ]; then echo 'bind: Address already in use' >&2; exit 1; fi; echo ok > {out}"))
        r = self.ws.kiln("run")
        self.assertEqual(r.rc, 0, r)
        self.assertEqual([a[2] for a in attempts(self.ws, "t")], ["port", None])


class Summary(KilnTestCase):
    def test_the_summary_shows_a_big_logs_tail_as_a_terminal_would(self):
        # 30 MB of output, a progress bar redrawn with carriage returns, a 5,000-character
        # line, and no newline before the end: the summary shows the bar's last state and
        # the long line's end, and kiln's note in the log starts a line of its own
        script = ("import sys\n"
                  "for i in range(300000): sys.stdout.write('x' * 99 + '\\n')\n"
                  "for i in range(101): sys.stdout.write('\\rtraining %3d%%' % i)\n"
                  "sys.stdout.write('\\n' + 'y' * 4999 + 'Z\\nTraceback: no newline after this')\n"
                  "sys.exit(1)\n")
        self.ws.write("bar.py", script)
        self.ws.write("kiln.lua", 'task { name = "t", outputs = {"o.txt"}, run = {"/usr/bin/python3", "bar.py"} }\n')
        r = self.ws.kiln("run")
        self.assertEqual(r.rc, 1, r)
        tail = [line for line in r.out.splitlines() if line.startswith("    | ")]
        self.assertIn("    | training 100%", tail)
        self.assertFalse([line for line in tail if "training  99%" in line], "only the bar's last state")
        self.assertIn("    | ..." + "y" * 399 + "Z", tail)
        self.assertIn("    | Traceback: no newline after this", tail)
        self.assertIn("    | # kiln: attempt 1 failed: exit status 1 [error]", tail)
        self.assertLess(len(r.out), 8000, "ten lines, not the log")
        log = self.ws.read(".kiln/logs/t@1.log")
        self.assertTrue(log.endswith("Traceback: no newline after this\n# kiln: attempt 1 failed: exit status 1 [error]\n"))

    def test_status_tells_a_task_that_failed_from_one_never_run(self):
        bad = ('task { name = "bad", outputs = {"b.txt"}, run = "exit 4" }\n'
               'task { name = "good", outputs = {"g.txt"}, run = "echo > {out}" }\n')
        self.ws.write("kiln.lua", bad)
        self.assertEqual(self.ws.kiln("run", "-k").rc, 1)
        self.ws.write("kiln.lua", bad + 'task { name = "new", outputs = {"n.txt"}, run = "echo > {out}" }\n')
        r = self.ws.kiln("status")
        self.assertIn("run       bad: no successful run recorded; its latest attempt: exit status 4 [error] "
                      "(kiln log bad)\n", r.out)
        self.assertIn("run       new: no successful run recorded\n", r.out)
        self.assertIn("kiln: no estimate: none of these tasks, nor one with the same tag names, has a recorded duration",
                      r.out, "a duration is recorded (good's), none of these tasks'")


class KillGrace(KilnTestCase):
    # a trainer that saves on SIGTERM (a preemption-safe one) takes 1.5 s to do it
    SAVER = "trap 'sleep 1.5; echo saved > {out}; exit 143' TERM; echo started > {out}; sleep 30 & wait"

    def test_a_tasks_kill_grace_lets_it_finish_its_save_where_the_runs_would_not(self):
        self.ws.write("kiln.lua", """
task { name = "saver", outputs = {"saver.txt"}, timeout = 1, kill_grace = "5s", run = %s }
task { name = "plain", outputs = {"plain.txt"}, timeout = 1, run = %s }
""" % (lua_str(self.SAVER), lua_str(self.SAVER)))
        r = self.ws.kiln("run", "-k", "--kill-grace", "0.3")
        self.assertEqual(r.rc, 1, r)
        self.assertEqual(self.ws.read("saver.txt"), "saved\n", "its save had its 5 s")
        self.assertEqual(self.ws.read("plain.txt"), "started\n", "SIGKILL after --kill-grace's 0.3 s")
        self.assertIn("timed out after 1.0s", r.out)
        # a Ctrl-C gives it the same time; the line says the graces that apply
        p = self.ws.spawn("run", "-k", "--kill-grace", "0.3", "--force", "saver")
        self.assertTrue(wait_for(lambda: "started" in self.ws.read_now("saver.txt")))
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=30)
        self.assertEqual(p.returncode, 130, out + err)
        self.assertIn("SIGKILL after 0.3 to 5 s (each task's kill_grace) or at a second Ctrl-C", out,
                      "plain failed in the run before: both run, each with its own grace")
        self.assertEqual(self.ws.read("saver.txt"), "saved\n")


class StopUnderAShell(KilnTestCase):
    # a hand-written trainer that saves on SIGTERM, printing as it does, run the way scripts
    # run it: under sh (not its last command) and into `| tee`. A stop tells it once (the
    # sh gone at the signal, its leftovers were told again: the handler ran inside itself),
    # and the tee lives until the trainer has saved (stopped first, the save's print hit a
    # closed pipe: BrokenPipeError, no checkpoint, and run.log lost its last lines)
    TRAINER = """
import os, signal, sys, time
step = int(open("ckpt").read()) if os.path.exists("ckpt") else 0
def save(*_):
    print("saving at step", step, flush=True)
    time.sleep(0.5)  # a big model's save
    open("ckpt.tmp", "w").write(str(step))
    os.replace("ckpt.tmp", "ckpt")
    print("saved at step", step, flush=True)
    sys.exit(143)
signal.signal(signal.SIGTERM, save)
while step < 40:
    step += 1
    print("step", step, flush=True)
    with open("ledger", "a") as f:
        f.write("%d\\n" % step)
    time.sleep(0.1)
open("model.txt", "w").write("trained\\n")
"""

    def test_a_trainer_piped_into_tee_is_told_once_and_its_save_reaches_the_log(self):
        log = self.ctrl_c_the_trainer_run_as("%s train.py 2>&1 | tee run.log; echo after" % sys.executable)
        self.assertEqual(log.count("saving at step"), 1, "told once: " + log)
        self.assertIn("saved at step", self.ws.read("run.log"), "tee outlived the stop")
        self.assertIn("saved at step", log)
        self.assertNotIn("BrokenPipeError", log)
        self.run_again_continues_from_the_save()
        self.assertIn("step 40", self.ws.read("run.log"))

    def test_filters_the_trainer_prints_through_outlive_the_stop(self):
        # grep and gzip, not kiln's tee: told to stop with the trainer they ended at once,
        # the save's first print hit a closed pipe (no save) and the log was cut short. A
        # pipe's filter is left to end with its input.
        self.ctrl_c_the_trainer_run_as("%s train.py 2>&1 | grep --line-buffered -v DEBUG | gzip > run.log.gz; "
                                       "echo after" % sys.executable)
        with gzip.open(os.path.join(self.ws.dir, "run.log.gz"), "rt") as f:
            log = f.read()  # a whole gzip stream: gzip ended at its input's end
        self.assertEqual(log.count("saving at step"), 1, log)
        self.assertIn("saved at step", log)
        self.assertNotIn("BrokenPipeError", log)
        self.run_again_continues_from_the_save()
        with gzip.open(os.path.join(self.ws.dir, "run.log.gz"), "rt") as f:
            self.assertIn("step 40", f.read())

    def test_a_trainer_under_timeout_is_told_and_its_save_lands(self):
        # GNU timeout moves itself and its command to a process group of their own: a stop
        # sent to the attempt's group reached the shell alone, the trainer trained on
        # untold (kiln waited out the grace for tee, then killed it: the trainer's next
        # print a BrokenPipeError, no save). The attempt is its session.
        log = self.ctrl_c_the_trainer_run_as("timeout 600 %s train.py 2>&1 | tee run.log; echo after" % sys.executable)
        self.assertEqual(log.count("saving at step"), 1, "told once: " + log)
        self.assertIn("saved at step", log)
        self.assertTrue(self.ws.exists("ckpt"))
        self.assertEqual(processes_matching("train.py", cwd=self.ws.dir), [], "nothing trains on")
        self.run_again_continues_from_the_save()

    def test_the_grace_s_sigkill_reaches_what_timeout_runs(self):
        # a command under timeout that ignores the stop: the SIGKILL at the grace's end went
        # to the attempt's group (the shell's), and the command ran on after kiln had ended
        self.ws.write("deaf.py", "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
                      "open('started', 'w').close()\ntime.sleep(4)\nopen('late', 'w').close()\n")
        self.ws.write("kiln.lua", 'task { name = "deaf", outputs = {"late"}, kill_grace = 1, run = %s }\n'
                      % lua_str("timeout 600 %s deaf.py; echo after" % sys.executable))
        p = self.ws.spawn("run")
        self.assertTrue(wait_for(lambda: self.ws.exists("started"), 60))
        self.ctrl_c(p)
        self.assertEqual(processes_matching("deaf.py", cwd=self.ws.dir), [], "killed with its attempt")
        time.sleep(4.5)
        self.assertFalse(self.ws.exists("late"), "it ran on after kiln had ended")

    def ctrl_c_the_trainer_run_as(self, run):
        """TRAINER as task train, its command the shell string run, Ctrl-C'd once it has
        made 4 steps: its first attempt's log."""
        self.ws.write("train.py", self.TRAINER)
        self.ws.write("kiln.lua", 'task { name = "train", inputs = {"train.py"}, outputs = {"model.txt"}, '
                      'resume = {"ckpt"}, kill_grace = 10, run = %s }\n' % lua_str(run))
        p = self.ws.spawn("run")
        self.assertTrue(wait_for(lambda: self.ws.exists("ledger") and len(self.ws.read("ledger").split()) >= 4, 60))
        self.ctrl_c(p)
        return self.ws.read(".kiln/logs/train@1.log")

    def run_again_continues_from_the_save(self):
        """Runs the recipe again: it ends well, each of the 40 steps ran once (the one in
        flight at the stop at most twice)."""
        saved = int(self.ws.read("ckpt"))
        r = self.ws.kiln("run")
        self.assertEqual(r.rc, 0, r)
        steps = [int(x) for x in self.ws.read("ledger").split()]
        self.assertEqual(sorted(set(steps)), list(range(1, 41)))
        self.assertLessEqual(len(steps), 41, "continued from step %d: %s" % (saved, steps))

    def start_trainer(self, resume):
        self.ws.write("train.py", self.TRAINER)
        self.ws.write("kiln.lua", 'task { name = "train", inputs = {"train.py"}, outputs = {"model.txt"}, '
                      '%skill_grace = 10, run = {"%s", "train.py"} }\n'
                      % ('resume = {"ckpt"}, ' if resume else "", sys.executable))
        p = self.ws.spawn("run")
        self.assertTrue(wait_for(lambda: self.ws.exists("ledger") and len(self.ws.read("ledger").split()) >= 4, 60))
        keepers = [int(x) for x in subprocess.run(["pgrep", "-P", str(p.pid), "-x", "attempt-keeper"],
                                                   capture_output=True, text=True).stdout.split()]
        self.assertEqual(len(keepers), 1, "kiln's keeper goes by attempt-keeper")
        return p, keepers[0]

    def test_pkill_kiln_stops_it_as_a_ctrl_c_would_and_the_save_lands(self):
        # `pkill kiln` is a SIGTERM to kiln; one that reaches the keeper too (`kill`, a
        # pattern that names it) leaves it on (gone, it took the attempt's end with it, and
        # kiln SIGKILLed the saving trainer)
        p, keeper = self.start_trainer(resume=True)
        os.kill(keeper, signal.SIGTERM)  # the keeper first
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=30)
        self.assertEqual(p.returncode, 143, out + err)
        self.assertIn("1 running task stopped, not recorded as done", out)
        self.assertIn("saved at step", self.ws.read(".kiln/logs/train@1.log"), "the save landed")
        self.run_again_continues_from_the_save()


    def test_pkill_9_kiln_kills_kiln_alone_and_the_finished_training_is_not_run_again(self):
        # `pkill -9 kiln` and `pkill -9 -f kiln` match kiln but not its keeper (named
        # attempt-keeper): the trainer runs on to its end, the keeper writes how it ended, the
        # next run records it done. Before, the keeper died with kiln and the finished,
        # unresumable trainer ran again in full
        p, keeper = self.start_trainer(resume=False)

        def pgrep(*args):
            return {int(x) for x in subprocess.run(["pgrep"] + list(args), capture_output=True,
                                                   text=True).stdout.split()}
        self.assertIn(p.pid, pgrep("kiln"))
        self.assertNotIn(keeper, pgrep("kiln") | pgrep("-f", "kiln"))
        p.kill()  # what `pkill -9 kiln` does to this run: nothing else of it matches
        p.wait()
        self.assertTrue(wait_for(lambda: self.ws.exists("model.txt"), 60), "the trainer ran on to its end")
        r = self.ws.kiln("run")
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(self.ws.read("ledger").split(), [str(i) for i in range(1, 41)], "each step once")
        self.assertEqual(self.ws.kiln("run").ran, set())

    def test_a_keeper_killed_alone_leaves_the_training_running_and_kiln_records_its_end(self):
        # kill -9 of the keeper (or the OOM killer choosing it): its attempts came to kiln,
        # the subreaper, and kiln used to SIGKILL them all as "[preempted]", every running
        # trainer's work thrown away. kiln keeps them itself now: the trainer runs to its end
        # once, recorded done in this run
        p, keeper = self.start_trainer(resume=False)
        os.kill(keeper, signal.SIGKILL)
        out, err = p.communicate(timeout=90)
        self.assertEqual(p.returncode, 0, out + err)
        self.assertIn("keeper of this run's attempts (pid %d) was killed; its 1 running attempt runs on" % keeper, err)
        self.assertEqual(self.ws.read("ledger").split(), [str(i) for i in range(1, 41)], "each step once")
        self.assertIn("this attempt runs on, kept by kiln", self.ws.read(".kiln/logs/train@1.log"))
        self.assertEqual([f for f in os.listdir(self.ws.path(".kiln/logs")) if f.endswith(".exit")], [],
                         "its exit file is removed once its end is recorded")
        self.assertEqual(self.ws.kiln("run").ran, set())

    def test_a_ctrl_c_after_the_keeper_was_killed_still_lets_the_save_land(self):
        # kiln kept the attempt: a Ctrl-C tells it once, waits for its save, and records it
        # stopped, not done; the next run continues from the save
        p, keeper = self.start_trainer(resume=True)
        os.kill(keeper, signal.SIGKILL)
        self.assertTrue(wait_for(lambda: "kept by kiln" in self.ws.read(".kiln/logs/train@1.log"), 30))
        self.ctrl_c(p)
        log = self.ws.read(".kiln/logs/train@1.log")
        self.assertEqual(log.count("saving at step"), 1, log)
        self.assertIn("saved at step", log)
        self.run_again_continues_from_the_save()


@unittest.skipIf(NO_TORCH, NO_TORCH or "")
class DataLoaderWorkers(KilnTestCase):
    # a PyTorch trainer as people write it: DataLoader workers (forked: python, the trainer's
    # own command line) and a SIGTERM handler that saves. kiln's stop told the workers too;
    # one died of it and PyTorch raised that death inside the trainer's handler
    # ("RuntimeError: DataLoader worker (pid N) is killed by signal: Terminated"), the save
    # cut and the work since the last one thrown away. They are left to the trainer now
    TRAINER = """
import os, signal, sys, time
import torch
from torch.utils.data import DataLoader, TensorDataset
model = torch.nn.Linear(8, 2)
step = 0
if os.path.exists("ckpt.pt"):
    state = torch.load("ckpt.pt")
    model.load_state_dict(state["model"])
    step = state["step"]
def save(*_):
    print("saving at step", step, flush=True)
    time.sleep(1.0)  # a big model's save
    torch.save({"model": model.state_dict(), "step": step}, "ckpt.tmp")
    os.replace("ckpt.tmp", "ckpt.pt")
    print("saved at step", step, flush=True)
    sys.exit(143)
signal.signal(signal.SIGTERM, save)
data = DataLoader(TensorDataset(torch.randn(4096, 8), torch.randint(0, 2, (4096,))), batch_size=16, num_workers=2)
opt = torch.optim.SGD(model.parameters(), lr=0.1)
while step < 120:
    for x, y in data:
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        with open("ledger", "a") as f:  # before the count: a stop between the two redoes the step
            f.write("%d\\n" % (step + 1))
        step += 1
        time.sleep(0.03)
        if step == 120:
            break
torch.save(model.state_dict(), "model.pt")
"""

    def test_a_ctrl_c_leaves_the_workers_to_the_trainer_and_its_save_lands(self):
        self.ws.write("train.py", self.TRAINER)
        self.ws.write("kiln.lua", 'task { name = "train", inputs = {"train.py"}, outputs = {"model.pt"}, '
                      'resume = {"ckpt.pt"}, run = {"%s", "train.py"} }\n' % TORCH_PYTHON)
        p = self.ws.spawn("run")
        self.assertTrue(wait_for(lambda: self.ws.exists("ledger") and len(self.ws.read("ledger").split()) >= 10, 90))
        workers = processes_matching("train.py", cwd=self.ws.dir)
        self.assertGreaterEqual(len(workers), 3, "the trainer and its two DataLoader workers")
        self.ctrl_c(p)
        log = self.ws.read(".kiln/logs/train@1.log")
        self.assertNotIn("killed by signal", log)
        self.assertIn("saved at step", log)
        self.assertEqual(processes_matching("train.py", cwd=self.ws.dir), [], "the workers ended with the trainer")
        r = self.ws.kiln("run")
        self.assertEqual(r.rc, 0, r)
        steps = [int(x) for x in self.ws.read("ledger").split()]
        self.assertEqual(sorted(set(steps)), list(range(1, 121)))
        self.assertLessEqual(len(steps), 121, "continued from the save: %s" % steps)


    SPAWNED = """
import os, sys, time
import torch.multiprocessing as mp
def work(rank):
    step = int(open("ckpt%d" % rank).read()) if os.path.exists("ckpt%d" % rank) else 0
    try:
        while step < 200:
            step += 1
            with open("ledger%d" % rank, "a") as f:
                f.write("%d\\n" % step)
            time.sleep(0.03)
    except KeyboardInterrupt:
        print("rank", rank, "saving at step", step, flush=True)
        time.sleep(0.5)
        open("ckpt%d" % rank, "w").write(str(step))
        print("rank", rank, "saved at step", step, flush=True)
        sys.exit(130)
    open("model%d" % rank, "w").write("trained\\n")
if __name__ == "__main__":
    mp.spawn(work, nprocs=2)
"""

    def test_stop_signal_int_reaches_each_worker_torch_multiprocessing_spawned(self):
        # the workers (spawned: python -c "from multiprocessing.spawn ...") are the trainers,
        # their parent only waits, with Python's own SIGINT handler: SIGINT goes to each, as
        # a terminal's Ctrl-C does (left to the parent, none would have saved)
        self.ws.write("train.py", self.SPAWNED)
        self.ws.write("kiln.lua", 'task { name = "train", inputs = {"train.py"}, outputs = {"model0", "model1"}, '
                      'resume = {"ckpt0", "ckpt1"}, stop_signal = "INT", run = {"%s", "train.py"} }\n'
                      % TORCH_PYTHON)
        p = self.ws.spawn("run")
        self.assertTrue(wait_for(lambda: all(self.ws.exists("ledger%d" % r) and len(self.ws.read("ledger%d" % r).split())
                                                 >= 10 for r in (0, 1)), 90))
        self.ctrl_c(p)
        # each saved (the log's lines interleave: the parent's traceback, the ranks' prints)
        for rank in (0, 1):
            self.assertTrue(self.ws.exists("ckpt%d" % rank), self.ws.read(".kiln/logs/train@1.log"))
        self.assertEqual(processes_matching("train.py", cwd=self.ws.dir), [])
        r = self.ws.kiln("run")
        self.assertEqual(r.rc, 0, r)
        for rank in (0, 1):
            steps = [int(x) for x in self.ws.read("ledger%d" % rank).split()]
            self.assertEqual(sorted(set(steps)), list(range(1, 201)))
            self.assertLessEqual(len(steps), 201, "continued from the save: %s" % steps)


class StopSignal(KilnTestCase):
    # a hand-written trainer that saves on Ctrl-C (KeyboardInterrupt) and knows no SIGTERM:
    # run under kiln unmodified, with stop_signal = "INT" a Ctrl-C of kiln's or a timeout
    # lets it save (SIGTERM, the default, ends Python at once, no except or finally run)
    TRAINER = """
import os, sys, time
step = int(open("ckpt").read()) if os.path.exists("ckpt") else 0
with open("ledger", "a") as f:
    f.write("start %d\\n" % step)
try:
    while step < 40:
        step += 1
        with open("ledger", "a") as f:
            f.write("step %d\\n" % step)
        time.sleep(0.05 if os.path.exists("ckpt") else 0.2)
except KeyboardInterrupt:
    open("ckpt.tmp", "w").write(str(step))
    os.replace("ckpt.tmp", "ckpt")
    print("saved at step", step)
    sys.exit(0)  # a clean exit: stopped all the same, not done
open("model.txt", "w").write("trained\\n")
"""

    def steps(self):
        return [int(line.split()[1]) for line in self.ws.read("ledger").splitlines() if line.startswith("step")]

    def test_a_script_that_saves_on_keyboard_interrupt_gets_sigint(self):
        self.ws.write("train.py", self.TRAINER)
        self.ws.write("kiln.lua", 'task { name = "train", inputs = {"train.py"}, outputs = {"model.txt"}, '
                      'resume = {"ckpt"}, stop_signal = "INT", run = {"%s", "train.py"} }\n' % sys.executable)
        p = self.ws.spawn("run")
        self.assertTrue(wait_for(lambda: self.ws.exists("ledger") and len(self.steps()) >= 3, 60))
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=30)
        self.assertEqual(p.returncode, 130, out + err)
        self.assertIn("SIGTERM (another signal where a task's stop_signal says) now", out)
        self.assertIn("saved at step", self.ws.read(".kiln/logs/train@1.log"))
        saved = int(self.ws.read("ckpt"))
        self.assertEqual(saved, self.steps()[-1], "it saved the step it had done")
        r = self.ws.kiln("run")
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(r.ran, {"train"}, "its exit 0 after the Ctrl-C was not recorded as done")
        self.assertEqual(self.steps(), list(range(1, 41)), "no step ran twice")

    RANKS_TRAINER = """
import os, sys, time
rank = int(sys.argv[1])
step = int(open("ckpt").read()) if os.path.exists("ckpt") else 0
try:
    while step < 40:
        step += 1
        if rank == 0:
            with open("ledger", "a") as f:
                f.write("step %d\\n" % step)
        time.sleep(0.1)
except KeyboardInterrupt:
    print("rank", rank, "interrupted: saving at step", step, flush=True)
    time.sleep(0.5)  # a big model's save
    if rank == 0:
        open("ckpt.tmp", "w").write(str(step))
        os.replace("ckpt.tmp", "ckpt")
    print("rank", rank, "saved", flush=True)
    sys.exit(0)
if rank == 0:
    open("model.txt", "w").write("trained\\n")
"""

    def test_ranks_save_through_their_launcher_on_a_ctrl_c(self):
        # ranks = 2: kiln's launcher is signalled with its ranks; it lives on, relaying what
        # they print while they save (gone, it left them printing into a closed pipe: no save)
        self.ws.write("train.py", self.RANKS_TRAINER)
        self.ws.write("kiln.lua", 'task { name = "train", ranks = 2, inputs = {"train.py"}, outputs = {"model.txt"}, '
                      'resume = {"ckpt"}, stop_signal = "INT", run = {"%s", "train.py", "{rank}"} }\n' % sys.executable)
        p = self.ws.spawn("run")
        self.assertTrue(wait_for(lambda: self.ws.exists("ledger") and len(self.steps()) >= 6, 60))
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=30)
        self.assertEqual(p.returncode, 130, out + err)
        log = self.ws.read(".kiln/logs/train@1.log")
        self.assertIn("[kiln launch] Interrupt: the ranks were told too; waiting for them to end", log)
        self.assertIn("[rank 0] rank 0 saved\n", log)
        self.assertIn("[rank 1] rank 1 saved\n", log)
        saved = int(self.ws.read("ckpt"))
        r = self.ws.kiln("run")
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(sorted(set(self.steps())), list(range(1, 41)), "none skipped")
        self.assertLessEqual(len(self.steps()), 41, "the retry continued from step %d: %s" % (saved, self.steps()))

    def test_a_timeout_sends_it_too_and_a_bad_name_is_a_recipe_error(self):
        self.ws.write("train.py", self.TRAINER)
        self.ws.write("kiln.lua", 'task { name = "train", outputs = {"model.txt"}, timeout = 3, stop_signal = "SIGINT", '
                      'run = {"%s", "train.py"} }\n' % sys.executable)
        r = self.ws.kiln("run")  # 3 s: Python well started under load (see test_ssh_resume)
        self.assertEqual(r.rc, 1, r)
        self.assertIn("timed out after 3.0s", r.out)
        self.assertIn("saved at step", self.ws.read(".kiln/logs/train@1.log"))
        self.ws.write("kiln.lua", 'local x = 1\ntask { name = "t", run = "true", stop_signal = "KILL" }\n')
        r = self.ws.kiln("run")
        self.assertEqual(r.rc, 2, r)
        self.assertIn("kiln.lua:2:", r.err)
        self.assertIn('stop_signal must be one of "TERM" (the default), "INT"', r.err)


if __name__ == "__main__":
    main()
