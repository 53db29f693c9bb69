"""End-to-end against a real one-node Slurm cluster (Debian's slurmctld + slurmd, started
here in a temp dir by tests/slurm/cluster.sh, with two fake GPUs through gres): dependency
order, GPUs from Slurm, exit codes, timeouts, retries, scancel from outside, re-attaching
after kiln is killed (a job whose task changed since is cancelled, with a note), no-op
re-runs, one cache for both executors, torchrun on one node for real, a job Slurm requeues
mid-save continuing from kiln's last whole copy of its checkpoint. Skipped (with the reason) where Slurm cannot start. The job kiln writes for a
multi-node torchrun task (which a one-node cluster cannot run) is checked against stand-in
Slurm tools that record what they were given."""
import os
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import time
import unittest

from kilntest import KilnTestCase, Workspace, lua_str, main, traced, wait_for
from test_torchrun import PYTHON, SKIP as NO_TORCH

HERE = os.path.dirname(os.path.abspath(__file__))
CLUSTER = os.path.join(HERE, "..", "slurm", "cluster.sh")
STATE = {}


def setUpModule():
    d = tempfile.mkdtemp(prefix="kiln-slurm-")
    p = subprocess.run(["sh", CLUSTER, "start", d], capture_output=True, text=True, timeout=120)
    STATE["dir"] = d
    if p.returncode != 0:
        STATE["skip"] = (p.stdout + p.stderr).strip() or "Slurm did not start"
    else:
        STATE["conf"] = p.stdout.strip().splitlines()[-1]


def tearDownModule():
    if "dir" in STATE:
        subprocess.run(["sh", CLUSTER, "stop", STATE["dir"]], capture_output=True, timeout=60)
        if os.environ.get("KILN_TEST_KEEP"):  # its daemons' logs, to look at a failed test
            print("kept", STATE["dir"])
        else:
            shutil.rmtree(STATE["dir"], ignore_errors=True)


def jobs_named(prefix):
    """Names of every job the cluster knows, an array's elements one each (finished ones are
    kept for an hour)."""
    out = subprocess.run(["squeue", "-h", "-r", "-t", "all", "-o", "%j"], capture_output=True, text=True,
                         env=dict(os.environ, SLURM_CONF=STATE["conf"])).stdout.split()
    return [n for n in out if prefix in n]


class Slurm(KilnTestCase):
    @classmethod
    def setUpClass(cls):
        # Slurm's time limits are whole minutes, checked every 30 s: the job of the test of
        # that limit (the backstop of a timeout when no kiln watches: this one is killed once
        # it submitted) starts with this class, in a workspace of its own, and goes on beside
        # its other tests (one of the cluster's 8 CPUs, no GPU), so that test finds it ended
        # instead of waiting 60-90 s. (Here, not in setUpModule: test_slurm_scale shares that,
        # and its jobs of 8 CPUs would wait for this one.)
        cls.timeout_ws = None
        if "skip" not in STATE:
            ws = cls.timeout_ws = Workspace()
            ws.write("kiln.lua", 'task { name = "tmo/slow", timeout = "1m", run = "sleep 600" }\n')
            p = ws.spawn("run", "--executor", "slurm", env={"SLURM_CONF": STATE["conf"]})
            wait_for(lambda: (ws.query("SELECT count(*) FROM attempts WHERE job_id IS NOT NULL") or [(0,)])[0][0] > 0,
                     30, step=0.05)
            p.send_signal(signal.SIGKILL)
            p.communicate()

    @classmethod
    def tearDownClass(cls):
        if cls.timeout_ws:
            cls.timeout_ws.cleanup()

    def setUp(self):
        if "skip" in STATE:
            self.skipTest(STATE["skip"])
        super().setUp()

    def kiln(self, *args, **kw):
        env = dict(kw.pop("env", {}), SLURM_CONF=STATE["conf"])
        return self.ws.kiln(*args, env=env, **kw)

    def slurm_run(self, *args):
        """`kiln run --executor slurm` started (stdout and stderr together), to stop or kill."""
        kiln = os.environ.get("KILN") or os.path.join(HERE, "../../build/kiln")
        return subprocess.Popen([kiln, "run", "--executor", "slurm", *args], cwd=self.ws.dir, text=True,
                                env=dict(self.ws.env(), SLURM_CONF=STATE["conf"]), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT)

    def test_grid_in_dependency_order_with_gpus_from_slurm(self):
        self.ws.write("kiln.lua", """
for _, m in ipairs({"m1", "m2", "m3"}) do
  task { name = "ord/train/" .. m, outputs = {m .. ".txt"}, gpus = 1, run = %s }
  task { name = "ord/eval/" .. m, inputs = {m .. ".txt"}, outputs = {m .. ".eval"}, run = %s }
end
task { name = "ord/report", inputs = {"m1.eval", "m2.eval", "m3.eval"}, outputs = {"r.txt"}, run = "cat {inputs} > {out}" }
""" % (lua_str(traced("sleep 0.3; echo $KILN_TASK > {out}")), lua_str(traced("cat {in} > {out}"))))
        r = self.kiln("run", "--executor", "slurm")
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(len(r.ran), 7)
        spans = {}
        for name, event, t, extra in self.ws.trace():
            spans.setdefault(name, {})[event] = (t, extra)
        for m in ("m1", "m2", "m3"):
            self.assertLessEqual(spans["ord/train/" + m]["end"][0], spans["ord/eval/" + m]["start"][0])
            self.assertIn(spans["ord/train/" + m]["start"][1], (["0"], ["1"]), "CUDA_VISIBLE_DEVICES from Slurm")
            self.assertEqual(spans["ord/eval/" + m]["start"][1], [], "no GPU asked, none given")
        self.assertEqual(self.ws.read("r.txt").split(), ["ord/train/m1", "ord/train/m2", "ord/train/m3"])
        self.assertEqual(len(jobs_named("ord/")), 7)
        # no-op: nothing is submitted again
        again = self.kiln("run", "--executor", "slurm")
        self.assertEqual(again.ran, set(), again)
        self.assertEqual(len(jobs_named("ord/")), 7)

    def test_exit_code_retries_and_external_scancel(self):
        self.ws.write("kiln.lua", """
task { name = "ret/fails", run = "echo failing; exit 3" }
task { name = "ret/flaky", retries = 1, outputs = {"ok.txt"},
       run = "if [ -e tried ]; then echo ok > ok.txt; else touch tried; exit 1; fi" }
task { name = "ret/cancelled", run = "touch started; sleep 120" }
""")
        p = subprocess.Popen(
            [os.environ.get("KILN") or os.path.join(HERE, "../../build/kiln"), "run", "--executor", "slurm", "-k"],
            cwd=self.ws.dir, env=dict(self.ws.env(), SLURM_CONF=STATE["conf"]), text=True,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.assertTrue(wait_for(lambda: self.ws.exists("started"), 30))
        # the three went out as one job array: cancel the element, by the job id kiln recorded
        def job_id():
            db = sqlite3.connect(self.ws.path(".kiln/state.db"))
            try:
                row = db.execute("SELECT job_id FROM attempts WHERE task = 'ret/cancelled'").fetchone()
            finally:
                db.close()
            return row[0] if row and row[0] else None
        self.assertTrue(wait_for(job_id, 30))
        subprocess.run(["scancel", job_id()], env=dict(os.environ, SLURM_CONF=STATE["conf"]))
        out, err = p.communicate(timeout=60)
        self.assertEqual(p.returncode, 1, out + err)
        self.assertIn("FAILED ret/fails: exit status 3", out)
        self.assertIn("ended CANCELLED", out)
        self.assertIn("retry", out)
        self.assertIn("ret/flaky", [l.split()[2] for l in out.splitlines() if l.startswith("ok ")])
        self.assertIn("failing", self.ws.read(".kiln/logs/ret/fails@1.log"))
        # run as the header says, /bin/sh -c (in a session of its own, its script passing
        # stops on), not in a subshell of the script
        self.assertNotIn("( eval COMMAND )", self.ws.read(".kiln/logs/ret/fails@1.log"))

    def test_cwd_and_optional_outputs_on_slurm(self):
        self.ws.write("data/in.txt", "D\n")
        self.ws.write("kiln.lua", 'task { name = "cwd/t", cwd = "runs/{name}", inputs = {"data/in.txt"}, '
                      'outputs = {"runs/cwd/t/o.txt"}, optional_outputs = {"runs/cwd/t/best.txt"}, '
                      'run = "pwd > where.txt; cat {in} > o.txt" }\n')
        r = self.kiln("run", "--executor", "slurm")
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(self.ws.read("runs/cwd/t/o.txt"), "D\n")
        self.assertEqual(self.ws.read("runs/cwd/t/where.txt").strip(), os.path.realpath(self.ws.path("runs/cwd/t")))
        self.assertEqual(self.kiln("run", "--executor", "slurm").ran, set())

    def test_ranks_on_a_slurm_node(self):
        self.ws.write("kiln.lua", 'task { name = "rk/t", ranks = 2, outputs = {"ranks.txt"}, '
                      'run = "echo $RANK/$WORLD_SIZE {master_addr}:{master_port} $MASTER_ADDR:$MASTER_PORT >> ranks.txt" }\n')
        r = self.kiln("run", "--executor", "slurm")
        self.assertEqual(r.rc, 0, r)
        lines = sorted(self.ws.read("ranks.txt").splitlines())
        self.assertEqual([l.split()[0] for l in lines], ["0/2", "1/2"])
        addr = lines[0].split()[1]
        self.assertRegex(addr, r"^[^:\s]+:\d+$", "the rendezvous on the job's first node, a port found free there")
        self.assertEqual(lines[0].split()[2], addr)
        self.assertIn("# kiln: ranks meet at " + addr, self.ws.read(".kiln/logs/rk/t@1.log"))

    def test_a_timeout_counts_from_the_jobs_start_to_the_second(self):
        # kiln's clock, from when it sees the job running (Slurm's --time, whole minutes
        # checked every 30 s, would let this one run a minute or more)
        self.ws.write("kiln.lua", 'task { name = "tmo/quick", timeout = 2, run = "echo started; sleep 600" }\n')
        r = self.kiln("run", "--executor", "slurm")
        self.assertEqual(r.rc, 1, r)
        self.assertRegex(r.out, r"timed out after 2\.0s \(Slurm job \S+ stopped\) \[timeout\]")
        self.assertIn("started", self.ws.read(".kiln/logs/tmo/quick@1.log"))

    def test_slurms_time_limit_stops_a_job_no_kiln_watches(self):
        ws = self.timeout_ws  # its kiln killed once it had submitted (setUpClass)
        env = dict(os.environ, SLURM_CONF=STATE["conf"])
        self.assertTrue(wait_for(lambda: "TIMEOUT" in subprocess.run(
            ["squeue", "-h", "-t", "all", "-o", "%T", "--name", "kiln-1-tmo/slow"], capture_output=True, text=True,
            env=env).stdout, 200))
        r = ws.kiln("run", "--executor", "slurm", env={"SLURM_CONF": STATE["conf"]})
        self.assertEqual(r.rc, 1, r)
        self.assertIn("ended TIMEOUT [timeout]", r.out)

    def kill_kiln_once_submitted(self, prefix, jobs):
        """Starts `kiln run --executor slurm`, and kill -9s it once the cluster knows `jobs`
        jobs whose names hold prefix."""
        env = dict(self.ws.env(), SLURM_CONF=STATE["conf"])
        kiln = os.environ.get("KILN") or os.path.join(HERE, "../../build/kiln")
        p = subprocess.Popen([kiln, "run", "--executor", "slurm"], cwd=self.ws.dir, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.assertTrue(wait_for(lambda: len(jobs_named(prefix)) == jobs, 30))
        time.sleep(0.5)
        p.send_signal(signal.SIGKILL)
        p.wait()

    def test_killed_kiln_reattaches_without_resubmitting(self):
        self.ws.write("kiln.lua", """
for i = 1, 3 do
  task { name = "att/t" .. i, outputs = {"t" .. i .. ".txt"}, run = "sleep 2; echo done > {out}; echo finished" }
end
""")
        self.kill_kiln_once_submitted("att/", 3)
        # with no kiln at work, -f follows the job's log until its script leaves its exit file
        f = self.kiln("log", "-f", "att/t1", timeout=60)
        self.assertEqual(f.rc, 0, f)
        self.assertIn("finished", f.out)
        r = self.kiln("run", "--executor", "slurm")
        self.assertEqual(r.rc, 0, r)
        self.assertIn("attached to Slurm job", r.out)
        self.assertEqual(len(jobs_named("att/")), 3, "no job was submitted twice")
        for i in (1, 2, 3):
            self.assertEqual(self.ws.read("t%d.txt" % i), "done\n")
        self.assertEqual(self.kiln("run", "--executor", "slurm").ran, set())

    def test_a_kiln_on_another_login_node_reattaches_a_killed_kilns_jobs(self):
        # a cluster's login nodes share the workspace: kiln killed on one, run on the other
        # (this machine in namespaces of its own: test_shared_fs), takes up its Slurm jobs
        import test_shared_fs
        if not test_shared_fs.namespaces_work():
            self.skipTest("no namespaces to play a second login node in")
        self.ws.write("kiln.lua", 'for i = 1, 2 do task { name = "login/t" .. i, outputs = {"l" .. i .. ".txt"}, '
                      'run = "sleep 2; echo done > {out}" } end\n')
        self.kill_kiln_once_submitted("login/", 2)
        kiln = os.environ.get("KILN") or os.path.join(HERE, "../../build/kiln")
        r = subprocess.run(test_shared_fs.on_other_host_cmd(kiln, "run", "--executor", "slurm"), cwd=self.ws.dir,
                           env=dict(self.ws.env(), SLURM_CONF=STATE["conf"]), text=True, capture_output=True,
                           timeout=120)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(r.stdout.count("attached to Slurm job"), 2, r.stdout)
        self.assertEqual(len(jobs_named("login/")), 2, "none submitted again")
        self.assertEqual(self.ws.read("l1.txt") + self.ws.read("l2.txt"), "done\ndone\n")

    def test_log_f_with_no_kiln_follows_a_requeued_job_through_its_second_run(self):
        # preempted with requeue while no kiln is at work: the stopped run's job script left its
        # exit file ("143 stopped"), yet Slurm holds the job to run again under its id, appending
        # to the same log; -f waits for that run's end, and the next kiln takes its success
        self.ws.write("kiln.lua", 'task { name = "rqf/t", outputs = {"done.txt"}, run = "echo run ${SLURM_RESTART_COUNT:-0}; '
                      'if [ -n \\"$SLURM_RESTART_COUNT\\" ]; then echo finished > done.txt; echo finished; exit 0; fi; '
                      'touch started; sleep 600" }\n')
        p = self.slurm_run()
        self.assertTrue(wait_for(lambda: self.ws.exists("started"), 60))
        p.kill()
        p.communicate()
        env = dict(self.ws.env(), SLURM_CONF=STATE["conf"])
        job = self.ws.query("SELECT job_id FROM attempts WHERE task = 'rqf/t'")[0][0]
        subprocess.run(["scontrol", "requeue", job], check=True, env=env)
        # (marked " stopped" when the signal reached the job's script before its command's end
        # did; on a loaded machine Slurm may signal the script after: "143" alone)
        self.assertTrue(wait_for(lambda: self.ws.exists(".kiln/slurm/rqf/t@1.exit"), 30), "the stopped run's exit file")
        kiln = os.environ.get("KILN") or os.path.join(HERE, "../../build/kiln")
        f = subprocess.Popen([kiln, "log", "-f", "rqf/t"], cwd=self.ws.dir, env=env, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        time.sleep(5)  # (Slurm holds a requeued job back a while: see the test below)
        self.assertIsNone(f.poll(), "-f went on following the requeued job")
        subprocess.run(["scontrol", "update", "jobid=" + job, "StartTime=now"], check=True, env=env)
        out, _ = f.communicate(timeout=90)
        self.assertEqual(f.returncode, 0, out)
        self.assertIn("run 0\n", out)
        self.assertIn("run 1\nfinished\n", out)
        r = self.kiln("run", "--executor", "slurm")
        self.assertEqual(r.rc, 0, r)
        self.assertIn("attached to Slurm job", r.out)
        self.assertEqual(self.ws.read(".kiln/logs/rqf/t@1.log").count("\nfinished\n"), 1, "ran to its end once")

    def test_a_job_submitted_right_before_a_kill_9_never_runs_beside_the_next_attempt(self):
        # killed the moment the cluster has the job, before its id was committed: no kiln
        # knows that job, so it must not run; the next kiln submits the task again
        self.ws.write("kiln.lua", 'task { name = "race/t", outputs = {"o.txt"}, '
                      'run = "echo start >> ledger; sleep 2; echo done > o.txt" }\n')
        env = dict(self.ws.env(), SLURM_CONF=STATE["conf"])
        kiln = os.environ.get("KILN") or os.path.join(HERE, "../../build/kiln")
        p = subprocess.Popen([kiln, "run", "--executor", "slurm"], cwd=self.ws.dir, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.assertTrue(wait_for(lambda: jobs_named("race/t"), 30, step=0.001))
        p.send_signal(signal.SIGKILL)
        p.wait()
        unknown = self.ws.query("SELECT count(*) FROM attempts WHERE task = 'race/t' AND job_id IS NULL")
        r = self.kiln("run", "--executor", "slurm")
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(self.ws.read("o.txt"), "done\n")
        time.sleep(1)  # the unknown job, if the cluster started it, has had the time to begin
        self.assertEqual(self.ws.read("ledger"), "start\n", "ran once: %s jobs were not recorded" % unknown)
        for name in set(jobs_named("race/t")):  # the unknown one waits two minutes for a go
            subprocess.run(["scancel", "--name=" + name], env=env)

    @unittest.skipIf(NO_TORCH, NO_TORCH or "")
    def test_a_job_slurm_requeues_mid_save_continues_from_kilns_copy(self):
        import test_resume  # its trainer saves in place with a plain torch.save; here it stalls mid-save once
        self.ws.write("train.py", test_resume.TORCH_TRAINER)
        self.ws.write("kiln.lua", 'task { name = "rq/train", executor = "slurm", inputs = {"train.py"}, '
                      'outputs = {"model.pt"}, resume = {"ckpt.pt"}, env = { DIE_AT = "4", HOW = "hang" }, '
                      'run = {"%s", "train.py", "{resume}", "5"} }\n' % PYTHON)
        env = dict(self.ws.env(), SLURM_CONF=STATE["conf"])
        kiln = os.environ.get("KILN") or os.path.join(HERE, "../../build/kiln")
        p = subprocess.Popen([kiln, "run"], cwd=self.ws.dir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True)
        self.assertTrue(wait_for(lambda: self.ws.exists("saving"), 120), "the save got going")
        job = [line.split()[0] for line in subprocess.run(
            ["squeue", "-h", "-o", "%i %j %T"], capture_output=True, text=True, env=env).stdout.splitlines()
            if "rq/train" in line and "RUNNING" in line][0]
        # preempted with requeue, as a cluster's scavenger partition does; started again at once
        subprocess.run(["scontrol", "requeue", job], check=True, env=env)
        self.assertTrue(wait_for(lambda: "PENDING" in subprocess.run(
            ["squeue", "-h", "-j", job, "-o", "%T"], capture_output=True, text=True, env=env).stdout, 30))
        # (Slurm holds a requeued job back a while: started at once, it can find its old
        # credential still revoked on the node and fail, so a few seconds first); kiln status
        # says why it waits in words
        status = self.kiln("status", "--executor", "slurm")
        self.assertIn("pending: BeginTime (requeued or deferred: Slurm starts it after its begin time)", status.out)
        time.sleep(5)
        subprocess.run(["scontrol", "update", "jobid=" + job, "StartTime=now"], check=True, env=env)
        out, _ = p.communicate(timeout=180)
        self.assertEqual(p.returncode, 0, out)
        log = self.ws.read(".kiln/logs/rq/train@1.log")
        self.assertIn("DUE TO JOB REQUEUE", log)
        self.assertIn("ckpt.pt was cut short (an attempt was stopped while writing it): put back its last whole copy",
                      log)
        self.assertIn("resuming after epoch 3", log)
        self.assertEqual([int(line.split()[1]) for line in self.ws.read("ledger").splitlines()], [1, 2, 3, 4, 4, 5])

    def test_killed_kiln_then_a_changed_task_cancels_the_stale_job(self):
        self.ws.write("kiln.lua", 'task { name = "stale/t", outputs = {"t.txt"}, run = "sleep 60; echo old > {out}" }\n')
        self.kill_kiln_once_submitted("stale/", 1)
        self.ws.write("kiln.lua", 'task { name = "stale/t", outputs = {"t.txt"}, run = "echo new > {out}" }\n')
        r = self.kiln("run", "--executor", "slurm")
        self.assertEqual(r.rc, 0, r)
        self.assertIn("stale/t: stopped the attempt an earlier kiln left running: the task changed", r.out)
        self.assertEqual(self.ws.read("t.txt"), "new\n")
        live = subprocess.run(["squeue", "-h", "-t", "PENDING,RUNNING,COMPLETING", "-o", "%j"], capture_output=True,
                              text=True, env=dict(os.environ, SLURM_CONF=STATE["conf"])).stdout.split()
        self.assertFalse([n for n in live if "stale/" in n], "the old job was cancelled")

    def test_ctrl_c_cancels_jobs_and_detach_leaves_them(self):
        self.ws.write("kiln.lua", 'task { name = "int/long", run = "touch started; sleep 300" }\n')
        env = dict(self.ws.env(), SLURM_CONF=STATE["conf"])
        kiln = os.environ.get("KILN") or os.path.join(HERE, "../../build/kiln")
        p = subprocess.Popen([kiln, "run", "--executor", "slurm"], cwd=self.ws.dir, env=env, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.assertTrue(wait_for(lambda: self.ws.exists("started"), 30))
        p.send_signal(signal.SIGINT)
        out, _ = p.communicate(timeout=60)
        self.assertEqual(p.returncode, 130)
        self.assertIn("(on Slurm, SIGKILL is a scancel's, after the cluster's KillWait)", out)
        def state(run=1):  # job names carry the run id: kiln-<run>-<task>
            return subprocess.run(["squeue", "-h", "-t", "all", "-o", "%T", "--name", "kiln-%d-int/long" % run],
                                  capture_output=True, text=True, env=env).stdout.split()
        # its script was told (scancel --batch), told the command and ended as it did
        self.assertTrue(wait_for(lambda: state() == ["FAILED"], 20), state())
        os.remove(self.ws.path("started"))
        p = subprocess.Popen([kiln, "run", "--executor", "slurm", "--detach"], cwd=self.ws.dir, env=env, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.assertTrue(wait_for(lambda: self.ws.exists("started"), 30))
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=60)
        self.assertIn("left running as Slurm job", out)
        self.assertEqual(state(2), ["RUNNING"])
        subprocess.run(["scancel", "--name", "kiln-2-int/long"], env=env)

    def test_ctrl_c_waits_while_a_cancelled_jobs_command_saves(self):
        # Slurm calls a cancelled job CANCELLED at once, while its processes have KillWait
        # (2 s on this cluster) to quit: kiln exits only once the command's save has landed,
        # records its exit 0 as stopped (not done), and the next run continues from the save
        self.ws.write("train.py", """
import os, signal, sys, time
step = int(open("ckpt").read()) if os.path.exists("ckpt") else 0
open("ledger", "a").write("start %d\\n" % step)
if step:
    open("model.txt", "w").write("trained from %d\\n" % step)
    sys.exit(0)
def save(*_):
    time.sleep(1.2)  # a save that takes a while
    open("ckpt.tmp", "w").write(str(step))
    os.replace("ckpt.tmp", "ckpt")
    open("ledger", "a").write("saved %d\\n" % step)
    sys.exit(0)
signal.signal(signal.SIGTERM, save)
while True:
    step += 1
    open("running", "w").close()
    time.sleep(0.1)
""")
        self.ws.write("kiln.lua", 'task { name = "save/train", inputs = {"train.py"}, outputs = {"model.txt"}, '
                      'resume = {"ckpt"}, run = "python3 train.py" }\n')
        p = self.slurm_run()
        self.assertTrue(wait_for(lambda: self.ws.exists("running"), 60))
        time.sleep(0.5)
        p.send_signal(signal.SIGINT)
        out, _ = p.communicate(timeout=60)
        ledger = self.ws.read("ledger").split("\n")
        self.assertEqual(p.returncode, 130, out)
        self.assertTrue(ledger[1].startswith("saved "), "kiln exited before the save landed: %s\n%s" % (ledger, out))
        self.assertNotIn("ok save/train", out)
        r = self.kiln("run", "--executor", "slurm")
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(r.ran, {"save/train"})
        saved = ledger[1].split()[1]
        self.assertEqual(self.ws.read("model.txt"), "trained from %s\n" % saved)
        self.assertEqual(self.ws.read("ledger").split("\n")[2], "start " + saved)

    def test_stop_signal_int_reaches_a_slurm_jobs_command(self):
        # stop_signal = "INT": scancel --signal=INT --full, the job runs on until the
        # hand-written trainer of test_failures.StopSignal has saved on its KeyboardInterrupt;
        # its exit 0 is stopped, not done, and the next run continues from the save
        import test_failures
        self.ws.write("train.py", test_failures.StopSignal.TRAINER)
        self.ws.write("kiln.lua", 'task { name = "int/train", inputs = {"train.py"}, outputs = {"model.txt"}, '
                      'resume = {"ckpt"}, stop_signal = "INT", run = {"python3", "train.py"} }\n')
        p = self.slurm_run()
        steps = lambda: [line for line in self.ws.read("ledger").splitlines() if line.startswith("step")]
        self.assertTrue(wait_for(lambda: self.ws.exists("ledger") and len(steps()) >= 5, 60))
        p.send_signal(signal.SIGINT)
        out, _ = p.communicate(timeout=60)
        self.assertEqual(p.returncode, 130, out)
        self.assertIn("saved at step", self.ws.read(".kiln/logs/int/train@1.log"))
        saved = self.ws.read("ckpt")
        r = self.kiln("run", "--executor", "slurm")
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(r.ran, {"int/train"})
        self.assertIn("start %s\n" % saved, self.ws.read("ledger"))
        numbers = [int(line.split()[1]) for line in steps()]
        self.assertEqual(numbers, list(range(1, 41)), "no step ran twice")

    def test_a_bash_line_runs_under_shell_bash_and_a_save_at_a_stop_lands(self):
        from test_scripts import write_bash_pair
        write_bash_pair(self.ws, prefix="bash/")
        p = self.slurm_run()
        self.assertTrue(wait_for(lambda: self.ws.exists("b.txt") and self.ws.exists("started"), 60))
        p.send_signal(signal.SIGINT)
        out, _ = p.communicate(timeout=60)
        self.assertEqual(p.returncode, 130, out)
        self.assertEqual(self.ws.read("b.txt"), "hello 1 2 3\n")
        self.assertEqual(self.ws.read("saved.txt"), "saved\n", "kiln ended after the save")

    def test_a_trainer_piped_into_tee_saves_through_it_on_slurm(self):
        # scancel --full signals every process of the job, tee too: kiln's tee (first on the
        # job's PATH) ignores it and ends with its input, so test_failures.StopUnderAShell's
        # trainer, `| tee run.log` under sh, saves with its prints in run.log and the log
        import test_failures
        self.ws.write("train.py", test_failures.StopUnderAShell.TRAINER)
        self.ws.write("kiln.lua", 'task { name = "tee/train", inputs = {"train.py"}, outputs = {"model.txt"}, '
                      'resume = {"ckpt"}, run = "python3 train.py 2>&1 | tee run.log; echo after" }\n')
        p = self.slurm_run()
        self.assertTrue(wait_for(lambda: self.ws.exists("ledger") and len(self.ws.read("ledger").split()) >= 4, 60))
        self.ctrl_c(p)
        log = self.ws.read(".kiln/logs/tee/train@1.log")
        self.assertEqual(log.count("saving at step"), 1, log)
        self.assertIn("saved at step", log)
        self.assertIn("saved at step", self.ws.read("run.log"), "tee outlived scancel's signal")
        r = self.kiln("run", "--executor", "slurm")
        self.assertEqual(r.rc, 0, r)
        steps = [int(x) for x in self.ws.read("ledger").split()]
        self.assertEqual(sorted(set(steps)), list(range(1, 41)))
        self.assertLessEqual(len(steps), 41, "continued from the save: %s" % steps)

    @unittest.skipIf(NO_TORCH, NO_TORCH or "")
    def test_a_pytorch_trainer_keeps_its_dataloader_workers_through_a_stop_on_slurm(self):
        # a stop was a plain scancel: every process of the job got SIGTERM, a DataLoader
        # worker died of it and PyTorch raised that inside the trainer's save handler (the
        # checkpoint lost). The job script now gets it alone (scancel --batch) and tells the
        # command's processes as a local stop does, the workers left to the trainer
        import test_failures
        self.ws.write("train.py", test_failures.DataLoaderWorkers.TRAINER)
        self.ws.write("kiln.lua", 'task { name = "dl/train", inputs = {"train.py"}, outputs = {"model.pt"}, '
                      'resume = {"ckpt.pt"}, run = {"%s", "train.py"} }\n' % PYTHON)
        p = self.slurm_run()
        self.assertTrue(wait_for(lambda: self.ws.exists("ledger") and len(self.ws.read("ledger").split()) >= 10, 90))
        self.ctrl_c(p)
        log = self.ws.read(".kiln/logs/dl/train@1.log")
        self.assertNotIn("killed by signal", log)
        self.assertIn("saved at step", log)
        r = self.kiln("run", "--executor", "slurm")
        self.assertEqual(r.rc, 0, r)
        steps = [int(x) for x in self.ws.read("ledger").split()]
        self.assertEqual(sorted(set(steps)), list(range(1, 121)))
        self.assertLessEqual(len(steps), 121, "continued from the save: %s" % steps)

    def test_max_jobs_caps_the_queue(self):
        self.ws.write("kiln.lua", "\n".join(
            'task { name = "cap/t%d", run = %s }' % (i, lua_str(traced("sleep 0.4"))) for i in range(4)))
        r = self.kiln("run", "--executor", "slurm", "--max-jobs", "1")
        self.assertEqual(r.rc, 0, r)
        spans = {}
        for name, event, t, _ in self.ws.trace():
            spans.setdefault(name, {})[event] = t
        ordered = sorted((v["start"], v["end"]) for v in spans.values())
        self.assertEqual(len(ordered), 4)
        for (s1, e1), (s2, e2) in zip(ordered, ordered[1:]):
            self.assertLessEqual(e1, s2, "with --max-jobs 1 one job at a time")

    def test_one_cache_for_both_executors(self):
        self.ws.write("kiln.lua", """
task { name = "one/a", outputs = {"a.txt"}, run = "echo a > a.txt" }
task { name = "one/b", inputs = {"a.txt"}, outputs = {"b.txt"}, run = "cat a.txt a.txt > b.txt" }
""")
        local = self.kiln("run")
        self.assertEqual(local.ran, {"one/a", "one/b"}, local)
        r = self.kiln("run", "--executor", "slurm")
        self.assertEqual(r.ran, set(), r)
        self.assertEqual(jobs_named("one/"), [])
        self.ws.write("kiln.lua", """
task { name = "one/a", outputs = {"a.txt"}, run = "echo A > a.txt" }
task { name = "one/b", inputs = {"a.txt"}, outputs = {"b.txt"}, run = "cat a.txt a.txt > b.txt" }
""")
        r = self.kiln("run", "--executor", "slurm")
        self.assertEqual(r.ran, {"one/a", "one/b"}, r)
        self.assertEqual(self.kiln("run").ran, set(), "done on Slurm counts locally too")

    @unittest.skipIf(NO_TORCH, NO_TORCH)
    def test_torchrun_on_one_node_for_real(self):
        self.ws.write("worker.py", "import os, torch.distributed as dist\n"
                      "dist.init_process_group('gloo')\n"
                      "w = dist.get_world_size()\n"
                      "dist.barrier()\n"
                      "if dist.get_rank() == 0: open('o.txt', 'w').write('%d %s %s' % (w, os.environ['SLURM_JOB_ID'], "
                      "os.environ['TORCHELASTIC_ERROR_FILE']))\n")
        self.ws.write("kiln.lua", 'task { name = "tr/one", outputs = {"o.txt"}, cpus = 2, torchrun = { nproc = 2 }, '
                      'run = { "%s", "worker.py" } }\n' % PYTHON)
        r = self.kiln("run", "--executor", "slurm", timeout=300)
        self.assertEqual(r.rc, 0, (r, self.ws.read(".kiln/logs/tr/one@1.log") if self.ws.exists(".kiln/logs/tr/one@1.log") else ""))
        world, job, errfile = self.ws.read("o.txt").split()
        self.assertEqual(world, "2")
        self.assertEqual(len(jobs_named("tr/one")), 1, "one job")
        # torchrun's folder for the run is the attempt's, not one more in the node's /tmp
        self.assertTrue(errfile.startswith(self.ws.path(".kiln/logs/tr/one@1.log.torchrun/")), errfile)
        self.assertFalse(self.ws.exists(".kiln/logs/tr/one@1.log.torchrun"), "removed when the attempt ended")
        log = self.ws.read(".kiln/logs/tr/one@1.log")
        self.assertRegex(log, r"# kiln: torchrun rendezvous at [^:\s]+:\d+")


FAKE_SBATCH = """#!/bin/sh
[ "$1" = --version ] && { echo "slurm 22.05 (stand-in)"; exit 0; }
for a in "$@"; do printf '%s\\n' "$a"; done > "$RECORD"
echo "sbatch (stand-in): recorded, not submitted" >&2
exit 1
"""


class MultiNodeJob(KilnTestCase):
    def submitted(self, recipe):
        """Runs recipe against stand-ins for Slurm's tools; returns what sbatch was given
        (its last argument: the job script). The stand-in refuses, so the run fails."""
        tools = self.fake_slurm()
        self.ws.write("kiln.lua", recipe)
        r = self.ws.kiln("run", "--executor", "slurm",
                         env={"PATH": tools + ":" + os.environ["PATH"], "RECORD": self.ws.path("sbatch-args")})
        self.assertEqual(r.rc, 1, r)
        return self.ws.read("sbatch-args").splitlines()

    def fake_slurm(self):
        """A folder of stand-ins: sbatch records its arguments (and the job script) in $RECORD."""
        tools = self.ws.path("fake-slurm")
        os.makedirs(tools)
        for name, body in (("sbatch", FAKE_SBATCH), ("squeue", "#!/bin/sh\nexit 0\n"), ("scancel", "#!/bin/sh\nexit 0\n")):
            with open(os.path.join(tools, name), "w") as f:
                f.write(body)
            os.chmod(os.path.join(tools, name), 0o755)
        return tools

    def test_two_node_torchrun_job(self):
        args = self.submitted('task { name = "big", gpus = 4, cpus = 16, torchrun = { nproc = "gpus", nnodes = 2 }, '
                              'outputs = {"o.txt"}, run = { "python3", "train.py", "--out", "{out}" } }\n')
        for flag in ("--nodes=2", "--ntasks-per-node=1", "--gres=gpu:4", "--cpus-per-task=16"):
            self.assertIn(flag, args)
        script = self.ws.read(args[-1])
        lines = script.splitlines()
        launch = [l for l in lines if l.startswith("srun ")]
        self.assertEqual(len(launch), 1, script)
        launch = launch[0]
        self.assertIn("srun --nodes=2 --ntasks=2 --ntasks-per-node=1", launch, "one launcher per node")
        for word in ("python3 -m torch.distributed.run --nnodes=2 --nproc_per_node=4 --rdzv_backend=static",
                     '--rdzv_endpoint="$KILN_RDZV"', "--no_python python3 train.py --out o.txt"):
            self.assertIn(word, launch)
        # each launcher's --node_rank is its node's (static rendezvous: rank 0 on the first node)
        wrapper = launch[len("srun --nodes=2 --ntasks=2 --ntasks-per-node=1 --kill-on-bad-exit=1 "):launch.index(" python3 -m")]
        ran = subprocess.run(["sh", "-c", wrapper + " env"], env={"SLURM_NODEID": "1", "PATH": os.environ["PATH"]},
                             capture_output=True, text=True)
        self.assertIn("PET_NODE_RANK=1\n", ran.stdout, wrapper)
        self.assertIn('KILN_HEAD=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)', script,
                      "the rendezvous is on the first node")
        self.assertIn("KILN_RDZV=$KILN_HEAD:$KILN_PORT", script)
        self.assertIn("KILN_PORT=$(python3 -c 'import socket", script, "its port is found free on that node")
        # the script is valid shell
        self.assertEqual(subprocess.run(["sh", "-n", self.ws.path(args[-1])]).returncode, 0)

    def test_ranks_over_two_nodes(self):
        args = self.submitted('task { name = "big", ranks = 2, nnodes = 2, outputs = {"o.txt"}, run = "echo $RANK/$WORLD_SIZE '
                              'local=$LOCAL_RANK/$LOCAL_WORLD_SIZE {rank} at $MASTER_ADDR >> o.txt; echo hi" }\n')
        self.assertIn("--nodes=2", args)
        self.assertIn("--ntasks-per-node=1", args)
        script = self.ws.read(args[-1])
        self.assertIn("launch --free-port", script, "the ranks' port is found free on the first node")
        launch = [l for l in script.splitlines() if l.startswith("srun ")]
        self.assertEqual(len(launch), 1, script)
        self.assertIn("srun --nodes=2 --ntasks=2 --ntasks-per-node=1", launch[0], "one launcher per node")
        self.assertIn('--master-port "$KILN_PORT"', launch[0])
        self.assertIn("--nnodes 2", launch[0])
        self.assertEqual(subprocess.run(["sh", "-n", self.ws.path(args[-1])]).returncode, 0)
        # what srun starts on each node, run here as nodes 0 and 1: four ranks of one world
        line = launch[0].split(" ", 5)[5]
        env = dict(os.environ, KILN_HEAD="127.0.0.1", KILN_PORT="12345")
        procs = [subprocess.Popen(["sh", "-c", line], cwd=self.ws.dir, env=dict(env, SLURM_NODEID=str(k)),
                                  stdout=subprocess.PIPE, text=True) for k in (0, 1)]
        outs = [p.communicate(timeout=60)[0] for p in procs]
        self.assertEqual([p.returncode for p in procs], [0, 0], outs)
        self.assertEqual(sorted(self.ws.read("o.txt").splitlines()),
                         ["%d/4 local=%d/2 %d at 127.0.0.1" % (r, r % 2, r) for r in range(4)])
        self.assertIn("[rank 3] hi", "".join(outs), "lines prefixed with the global rank")


if __name__ == "__main__":
    main()
