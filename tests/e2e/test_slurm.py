"""End-to-end against a real one-node Slurm cluster (Debian's slurmctld + slurmd, started
here in a temp dir by tests/slurm/cluster.sh, with two fake GPUs through gres): dependency
order, GPUs from Slurm, exit codes, timeouts, retries, scancel from outside, re-attaching
after kiln is killed, no-op re-runs, one cache for both executors. Skipped (with the
reason) where Slurm cannot start."""
import os
import signal
import subprocess
import tempfile
import time
import unittest

from kilntest import KilnTestCase, Workspace, lua_str, main, traced, wait_for

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


def jobs_named(prefix):
    """Names of every job the cluster knows (finished ones are kept for an hour)."""
    out = subprocess.run(["squeue", "-h", "-t", "all", "-o", "%j"], capture_output=True, text=True,
                         env=dict(os.environ, SLURM_CONF=STATE["conf"])).stdout.split()
    return [n for n in out if prefix in n]


class Slurm(KilnTestCase):
    def setUp(self):
        if "skip" in STATE:
            self.skipTest(STATE["skip"])
        super().setUp()

    def kiln(self, *args, **kw):
        env = dict(kw.pop("env", {}), SLURM_CONF=STATE["conf"])
        return self.ws.kiln(*args, env=env, **kw)

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
        subprocess.run(["scancel", "--name", jobs_named("ret/cancelled")[0]], env=dict(os.environ, SLURM_CONF=STATE["conf"]))
        out, err = p.communicate(timeout=60)
        self.assertEqual(p.returncode, 1, out + err)
        self.assertIn("FAILED ret/fails: exit status 3", out)
        self.assertIn("ended CANCELLED", out)
        self.assertIn("retry", out)
        self.assertIn("ret/flaky", [l.split()[2] for l in out.splitlines() if l.startswith("ok ")])
        self.assertIn("failing", self.ws.read(".kiln/logs/ret/fails@1.log"))

    def test_timeout_is_reported(self):
        self.ws.write("kiln.lua", 'task { name = "tmo/slow", timeout = "1m", run = "sleep 600" }\n')
        r = self.kiln("run", "--executor", "slurm", timeout=300)
        self.assertEqual(r.rc, 1, r)
        self.assertIn("ended TIMEOUT", r.out)

    def test_killed_kiln_reattaches_without_resubmitting(self):
        self.ws.write("kiln.lua", """
for i = 1, 3 do
  task { name = "att/t" .. i, outputs = {"t" .. i .. ".txt"}, run = "sleep 2; echo done > {out}" }
end
""")
        env = dict(self.ws.env(), SLURM_CONF=STATE["conf"])
        kiln = os.environ.get("KILN") or os.path.join(HERE, "../../build/kiln")
        p = subprocess.Popen([kiln, "run", "--executor", "slurm"], cwd=self.ws.dir, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.assertTrue(wait_for(lambda: len(jobs_named("att/")) == 3, 30))
        time.sleep(0.5)
        p.send_signal(signal.SIGKILL)
        p.wait()
        r = self.kiln("run", "--executor", "slurm")
        self.assertEqual(r.rc, 0, r)
        self.assertIn("attached to Slurm job", r.out)
        self.assertEqual(len(jobs_named("att/")), 3, "no job was submitted twice")
        for i in (1, 2, 3):
            self.assertEqual(self.ws.read("t%d.txt" % i), "done\n")
        self.assertEqual(self.kiln("run", "--executor", "slurm").ran, set())

    def test_ctrl_c_cancels_jobs_and_detach_leaves_them(self):
        self.ws.write("kiln.lua", 'task { name = "int/long", run = "touch started; sleep 300" }\n')
        env = dict(self.ws.env(), SLURM_CONF=STATE["conf"])
        kiln = os.environ.get("KILN") or os.path.join(HERE, "../../build/kiln")
        p = subprocess.Popen([kiln, "run", "--executor", "slurm"], cwd=self.ws.dir, env=env, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.assertTrue(wait_for(lambda: self.ws.exists("started"), 30))
        p.send_signal(signal.SIGINT)
        p.communicate(timeout=60)
        self.assertEqual(p.returncode, 130)
        def state(run=1):  # job names carry the run id: kiln-<run>-<task>
            return subprocess.run(["squeue", "-h", "-t", "all", "-o", "%T", "--name", "kiln-%d-int/long" % run],
                                  capture_output=True, text=True, env=env).stdout.split()
        self.assertTrue(wait_for(lambda: state() == ["CANCELLED"], 20), state())
        os.remove(self.ws.path("started"))
        p = subprocess.Popen([kiln, "run", "--executor", "slurm", "--detach"], cwd=self.ws.dir, env=env, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.assertTrue(wait_for(lambda: self.ws.exists("started"), 30))
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=60)
        self.assertIn("left running as Slurm job", out)
        self.assertEqual(state(2), ["RUNNING"])
        subprocess.run(["scancel", "--name", "kiln-2-int/long"], env=env)

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


if __name__ == "__main__":
    main()
