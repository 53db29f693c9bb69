"""End-to-end: shared lab GPUs through a fake KILN_GPU_INFO file that changes while kiln
runs — utilisation above the threshold blocks a device, gpu_wait then "run" or "fail",
the waiting text on plain output, --gpus keeping the busy test, 4 GPUs on a 2-CPU host
all in use, two kilns (two workspaces) on one machine never leasing one device at once —
and forcing and cleaning: --force, kiln clean of only the named task (and
--deps), directory outputs deleted before an attempt."""
import os
import shutil
import subprocess
import tempfile
import threading
import time

from kilntest import KILN, KilnTestCase, lua_str, main, traced, wait_for


class SharedGpus(KilnTestCase):
    def info(self, text):
        self.ws.write("gpus.csv", text)
        return {"KILN_GPU_INFO": self.ws.path("gpus.csv")}

    def test_utilisation_blocks_a_device_until_it_calms_down(self):
        env = self.info("0, 80000, 1000, 95\n")
        self.ws.write("kiln.lua", 'task { name = "t", gpus = 1, outputs = {"o.txt"}, run = "echo $CUDA_VISIBLE_DEVICES > {out}" }\n')

        def calm():  # the other user's job ends after ~2.5 s (more than the averaging window's memory)
            time.sleep(2.5)
            self.ws.write("gpus.csv", "0, 80000, 1000, 3\n")
        threading.Thread(target=calm).start()
        start = time.time()
        r = self.ws.kiln("run", env=env)
        took = time.time() - start
        self.assertEqual(r.rc, 0, r)
        self.assertGreater(took, 2.5, "it waited while the device was 95 % busy")
        self.assertIn("t waits for a GPU: GPU 0 busy 95 % util", r.out)
        self.assertRegex(r.out, r"kiln: 1 task waited for GPUs, \S+ in all, the longest \S+\n")
        self.assertEqual(self.ws.read("o.txt").strip(), "0")

    def test_gpu_wait_then_run_takes_the_least_busy_and_then_fail_fails(self):
        env = self.info("0, 80000, 1000, 95\n1, 80000, 1000, 80\n")
        self.ws.write("kiln.lua", """
task { name = "run", gpus = 1, gpu_wait = "1s", outputs = {"r.txt"}, run = "echo $CUDA_VISIBLE_DEVICES > {out}" }
task { name = "fail", gpus = 1, gpu_wait = "1s", gpu_wait_then = "fail", deps = {"run"}, run = "true" }
""")
        r = self.ws.kiln("run", "-k", env=env)
        self.assertEqual(r.rc, 1, r)
        self.assertEqual(self.ws.read("r.txt").strip(), "1", "after the wait: the least busy device (80 % < 95 %)")
        self.assertIn("run: waited 1 s for a free GPU; taking the least busy", r.out)
        self.assertIn("FAILED fail: no GPU became free within gpu_wait = 1 s [gpu-busy]", r.out)

    def test_command_line_wait_bound_and_thresholds(self):
        env = self.info("0, 80000, 1000, 60\n")
        self.ws.write("kiln.lua", 'task { name = "t", gpus = 1, gpu_wait_then = "fail", run = "true" }\n')
        self.assertEqual(self.ws.kiln("run", env=env).rc, 0, "60 % is under the 70 % default")
        r = self.ws.kiln("run", "--gpu-busy-util", "0.5", "--gpu-wait", "1s", env=env)
        self.assertEqual(r.rc, 0, "up to date: nothing to wait for")
        self.ws.write("kiln.lua", 'task { name = "t", gpus = 1, gpu_wait_then = "fail", run = "echo again" }\n')
        r = self.ws.kiln("run", "--gpu-busy-util", "0.5", "--gpu-wait", "1s", env=env)
        self.assertEqual(r.rc, 1, r)
        self.assertIn("[gpu-busy]", r.out)
        bad = self.ws.kiln("run", "--gpu-busy-util", "2", env=env)
        self.assertEqual(bad.rc, 2)
        self.assertIn("--gpu-busy-util takes a fraction", bad.err)

    def test_gpus_list_keeps_the_busy_test(self):
        env = self.info("0, 80000, 1000, 99\n1, 80000, 79000, 0\n2, 80000, 1000, 0\n")
        self.ws.write("kiln.lua", 'task { name = "t", gpus = 1, gpu_wait = "1s", gpu_wait_then = "fail", '
                      'outputs = {"o.txt"}, run = "echo $CUDA_VISIBLE_DEVICES > {out}" }\n')
        r = self.ws.kiln("run", "--gpus", "0,1", env=env)
        self.assertEqual(r.rc, 1, "device 0 is busy by compute, 1 by memory; 2 is not on the list")
        self.assertIn("t waits for a GPU: GPU 0 busy 99 % util, GPU 1 busy 99 % memory", r.out)
        r = self.ws.kiln("run", "--gpus", "2", env=env)
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(self.ws.read("o.txt").strip(), "2")
        r = self.ws.kiln("run", "--gpus", "5", env=env)
        self.assertEqual(r.rc, 2)
        self.assertIn("--gpus names device 5", r.err)

    def test_four_gpus_on_two_cpus_all_get_work(self):
        env = self.info("".join("%d, 80000, 1000, 0\n" % i for i in range(4)))
        self.ws.write("kiln.lua", "\n".join(
            'task { name = "g%d", gpus = 1, run = %s }' % (i, lua_str(traced("sleep 1.5"))) for i in range(4)))
        r = self.ws.kiln("run", "--cpus", "2", env=env)
        self.assertEqual(r.rc, 0, r)
        spans = {}
        for name, event, t, extra in self.ws.trace():
            spans.setdefault(name, {})[event] = (t, extra)
        self.assertEqual(len(spans), 4)
        self.assertLess(max(s["start"][0] for s in spans.values()), min(s["end"][0] for s in spans.values()),
                        "all four ran at once")
        self.assertEqual(sorted(s["start"][1][0] for s in spans.values()), ["0", "1", "2", "3"])


    def test_two_kilns_on_one_machine_do_not_share_a_device(self):
        # a second workspace's kiln on the same machine: the first's task has its device but
        # does not use it yet (loading a model: no memory, no compute to see), and the second's
        # waits for it rather than starting beside it, then takes it
        first, second, _ = self.two_workspaces_one_machine()
        out, err = first.communicate(timeout=60)
        self.assertEqual(first.returncode, 0, out + err)
        self.assert_one_at_a_time(second)

    def test_a_killed_kilns_running_attempt_keeps_its_devices_from_another_kiln(self):
        # kill -9 of the first kiln: its attempt runs on under its keeper, which holds the
        # devices' claims until it ends; back in the first workspace, kiln re-attaches to it
        first, second, env = self.two_workspaces_one_machine(kill_first=True)
        self.assert_one_at_a_time(second)
        r = self.ws.kiln("run", env=env)
        self.assertEqual(r.rc, 0, r)
        self.assertIn("first: attached to local job", r.out)

    def two_workspaces_one_machine(self, kill_first=False):
        env = self.info("0, 80000, 0, 0\n1, 80000, 0, 0\n")
        other = tempfile.mkdtemp(prefix="kiln-e2e-other-")
        self.addCleanup(shutil.rmtree, other, ignore_errors=True)
        trace = self.ws.path("trace")
        for ws in (self.ws.dir, other):
            with open(os.path.join(ws, "kiln.lua"), "w") as f:
                f.write('task { name = "%s", gpus = 2, run = %s }\n'
                        % ("first" if ws == self.ws.dir else "second", lua_str(traced("sleep 2", trace))))
        first = self.ws.spawn("run", env=env)
        self.assertTrue(wait_for(lambda: "first start" in self.ws.read_now("trace")))
        if kill_first:
            first.kill()
            first.communicate(timeout=30)
        second = subprocess.run([KILN, "run"], cwd=other, env=self.ws.env(env), text=True, capture_output=True,
                                timeout=60)
        return first, second, env

    def assert_one_at_a_time(self, second):
        self.assertEqual(second.returncode, 0, second.stdout + second.stderr)
        self.assertIn("second waits for GPUs: GPU 0 leased by another kiln on this machine, GPU 1 leased by another "
                      "kiln on this machine", second.stdout)
        spans = {name: t for name, event, t, _ in self.ws.trace() if event in ("start", "end")
                 for name in [name + " " + event]}
        self.assertGreaterEqual(spans["second start"], spans["first end"], "one device, one task at a time")
        self.assertIn("1 task waited for GPUs", second.stdout)


class ForceAndClean(KilnTestCase):
    RECIPE = """
task { name = "data", outputs = {"out/data.txt"}, run = "echo data > {out}; echo x >> runs.log" }
task { name = "model", outputs = {"out/model.txt"}, run = "echo model > {out}" }
task { name = "eval", inputs = {"out/data.txt", "out/model.txt"}, outputs = {"out/eval.txt"},
       run = "cat {inputs} > {out}; echo e >> evals.log" }
"""

    def test_force_runs_the_named_task_and_dependents_only_on_change(self):
        self.ws.write("kiln.lua", self.RECIPE)
        self.assertEqual(len(self.ws.kiln("run").ran), 3)
        r = self.ws.kiln("run", "--force", "data")
        self.assertEqual(r.ran, {"data"}, "same output: eval stays up to date")
        self.assertIn("data: up to date, runs anyway (--force)", r.out)
        r = self.ws.kiln("run", "--force", "*a*")
        self.assertEqual(r.ran, {"data", "eval"}, "a glob")
        bad = self.ws.kiln("run", "--force", "nope")
        self.assertEqual(bad.rc, 2)
        self.assertIn("--force: no task or output matches \"nope\"", bad.err)

    def test_clean_removes_only_the_named_task_and_it_runs_again(self):
        self.ws.write("kiln.lua", self.RECIPE)
        self.assertEqual(len(self.ws.kiln("run").ran), 3)
        r = self.ws.kiln("clean", "eval")
        self.assertEqual(r.rc, 0, r)
        self.assertIn("cleaned   eval (1 output removed)", r.out)
        self.assertTrue(self.ws.exists("out/data.txt") and self.ws.exists("out/model.txt"), "upstream outputs stay")
        self.assertFalse(self.ws.exists("out/eval.txt"))
        r = self.ws.kiln("run")
        self.assertEqual(r.ran, {"eval"}, "it runs again instead of being restored from the store")
        self.assertEqual(self.ws.read("evals.log").split(), ["e", "e"])
        r = self.ws.kiln("clean", "eval", "--deps")
        self.assertIn("removed 3 outputs; 3 tasks will run again", r.out)
        self.assertEqual(len(self.ws.kiln("run").ran), 3)

    def test_directory_output_is_emptied_before_an_attempt(self):
        self.ws.write("kiln.lua", 'local P = params { v = 1 }\n'
                      'task { name = "d", outputs = {"out/d"}, run = "mkdir -p out/d && ls out/d > seen.txt && '
                      'touch out/d/f" .. P.v }\n')
        self.assertEqual(self.ws.kiln("run").rc, 0)
        self.assertEqual(self.ws.kiln("run", "v=2").rc, 0)
        self.assertEqual(self.ws.read("seen.txt").split(), [], "nothing of the previous attempt was left in it")
        self.assertEqual(sorted(os.listdir(self.ws.path("out/d"))), ["f2"])


if __name__ == "__main__":
    main()
