"""End-to-end against a real one-node Slurm cluster (tests/slurm/cluster.sh), at the scale
labs use it: a grid goes out as job arrays (sbatch calls counted by a wrapper first on
PATH), a failed element is retried alone, a killed kiln re-attaches to an array without
submitting anything twice, the controller refusing submissions for a while fails nothing,
a job that can never start fails within a minute with Slurm's reason, {port} is found on
the node, and a map{} runs its shards as Slurm jobs, re-attached after kill -9 with no item
run twice, keeping the item a job had finished when Ctrl-C cancelled it (atomic_outputs),
and a requeued shard job making only the items it had not made; a job whose node fails
under it runs again from its checkpoint in the same run, spending no retry."""
import os
import shutil
import signal
import sqlite3
import subprocess
import time

from kilntest import KilnTestCase, main, wait_for
from test_slurm import STATE, setUpModule, tearDownModule  # noqa: F401 (the cluster, shared per module)

HERE = os.path.dirname(os.path.abspath(__file__))
KILN = os.environ.get("KILN") or os.path.join(HERE, "../../build/kiln")

# counts every sbatch call, then lets the real one (or, the first $FAIL_FIRST times, a
# controller that times out) answer
SBATCH = """#!/bin/sh
[ "$1" = --version ] && exec "$REAL_SBATCH" "$@"
echo "call $*" >> "$SBATCH_LOG"
n=$(wc -l < "$SBATCH_LOG")
if [ "$n" -le "${FAIL_FIRST:-0}" ]; then
  echo "sbatch: error: Batch job submission failed: Socket timed out on send/recv operation" >&2
  exit 1
fi
exec "$REAL_SBATCH" "$@"
"""


class SlurmScale(KilnTestCase):
    def setUp(self):
        if "skip" in STATE:
            self.skipTest(STATE["skip"])
        super().setUp()
        tools = self.ws.path("tools")
        os.makedirs(tools)
        with open(os.path.join(tools, "sbatch"), "w") as f:
            f.write(SBATCH)
        os.chmod(os.path.join(tools, "sbatch"), 0o755)
        self.env = {"SLURM_CONF": STATE["conf"], "PATH": tools + ":" + os.environ["PATH"],
                    "REAL_SBATCH": shutil.which("sbatch"), "SBATCH_LOG": self.ws.path("sbatch.log")}

    def kiln(self, *args, env=None, **kw):
        return self.ws.kiln(*args, env=dict(self.env, **(env or {})), **kw)

    def sbatch_calls(self):
        return len(self.ws.read("sbatch.log").splitlines()) if self.ws.exists("sbatch.log") else 0

    def attempts(self, sql):
        db = sqlite3.connect(self.ws.path(".kiln/state.db"))
        try:
            return db.execute(sql).fetchall()
        finally:
            db.close()

    def test_a_grid_goes_out_as_arrays_and_a_failed_element_is_retried_alone(self):
        self.ws.write("kiln.lua", """
for i = 1, 200 do
  task { name = "grid/t" .. i, outputs = {"out/" .. i .. ".txt"}, retries = 1,
         run = i == 7 and "[ -f seven.once ] || { touch seven.once; exit 3; }; echo 7 > {out}"
                       or "echo " .. i .. " > {out}" }
end
slurm { array_max = 50 }
""")
        r = self.kiln("run", "--executor", "slurm", timeout=300)
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(len(r.ran), 200, r)
        self.assertLessEqual(self.sbatch_calls(), 5, "a 200-task grid in a handful of submissions")
        self.assertRegex(r.out, r"kiln: Slurm: \d submissions? \(1 job array\)")
        for i in (1, 7, 200):
            self.assertEqual(self.ws.read("out/%d.txt" % i), "%d\n" % i)
        rows = self.attempts("SELECT task, job_id FROM attempts WHERE executor = 'slurm' AND attempt > 0 ORDER BY id")
        ids = {}
        for task, job in rows:
            ids.setdefault(task, []).append(job)
        self.assertEqual(len(ids), 200, "every element recorded")
        self.assertTrue(all("_" in jobs[0] for jobs in ids.values()), "each an element of an array")
        self.assertEqual(len(ids["grid/t7"]), 2, "the failed element ran again")
        self.assertNotIn("_", ids["grid/t7"][1], "alone, not with a new array")
        before = self.sbatch_calls()
        self.assertEqual(self.kiln("run", "--executor", "slurm").ran, set())
        self.assertEqual(self.sbatch_calls(), before, "a no-op submits nothing")

    def test_a_killed_kiln_reattaches_to_its_array_and_submits_nothing_twice(self):
        self.ws.write("kiln.lua", """
for i = 1, 12 do
  task { name = "ka/t" .. i, outputs = {"o" .. i .. ".txt"},
         run = "echo ran >> ran" .. i .. ".log; sleep 2; echo " .. i .. " > {out}" }
end
slurm { array_max = 4 }
""")
        env = dict(self.ws.env(), **self.env)
        p = subprocess.Popen([KILN, "run", "--executor", "slurm"], cwd=self.ws.dir, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.assertTrue(wait_for(lambda: self.ws.exists("ran1.log"), 60))
        time.sleep(1)
        p.send_signal(signal.SIGKILL)
        p.wait()
        calls = self.sbatch_calls()
        r = self.kiln("run", "--executor", "slurm", timeout=300)
        self.assertEqual(r.rc, 0, r)
        self.assertIn("attached to Slurm job", r.out)
        self.assertEqual(self.sbatch_calls(), calls, "every element re-attached, none submitted again")
        for i in range(1, 13):
            self.assertEqual(self.ws.read("ran%d.log" % i), "ran\n", "task %d ran once" % i)
            self.assertEqual(self.ws.read("o%d.txt" % i), "%d\n" % i)

    def test_a_controller_that_times_out_for_a_while_fails_nothing(self):
        self.ws.write("kiln.lua", "\n".join(
            'task { name = "to/t%d", outputs = {"t%d.txt"}, run = "echo ok > {out}" }' % (i, i) for i in range(6)))
        r = self.kiln("run", "--executor", "slurm", env={"FAIL_FIRST": "2"}, timeout=300)
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(len(r.ran), 6)
        self.assertEqual(self.sbatch_calls(), 3, "refused twice (Socket timed out), then taken")

    def test_a_job_that_can_never_start_fails_within_a_minute_with_the_reason(self):
        self.ws.write("kiln.lua", 'task { name = "never/big", run = "true" }\n'
                      'slurm { extra = {"--nodes=2"} }\n')
        t = time.time()
        r = self.kiln("run", "--executor", "slurm", timeout=120)
        self.assertEqual(r.rc, 1, r)
        self.assertLess(time.time() - t, 60)
        self.assertIn("PartitionNodeLimit", r.out)
        self.assertIn("[unschedulable]", r.out)
        self.assertIn("more nodes than its partition", r.out)
        self.assertEqual(self.attempts("SELECT failure FROM attempts WHERE task = 'never/big'"), [("unschedulable",)])

    def test_a_task_s_own_partition_gpu_type_and_flags_over_the_recipe_s(self):
        # a lab's cluster grows partitions and GPU types: each task says where it goes
        self.ws.write("kiln.lua", """
slurm { partition = "nope", extra = {"--comment=recipe"} }
task { name = "own/ok", slurm = { partition = "debug" }, outputs = {"ok.txt"}, run = "echo ok > {out}" }
task { name = "own/block", run = "true" }
task { name = "own/typed", gpus = 1, slurm = { partition = "debug", gpu_type = "a100", extra = {"--comment=typed"} },
       run = "true" }
""")
        r = self.kiln("run", "--executor", "slurm", "-k", timeout=120)
        self.assertEqual(r.rc, 1, r)
        self.assertEqual(self.ws.read("ok.txt"), "ok\n", "its own partition replaced the recipe's")
        self.assertIn("Invalid partition name specified", self.ws.read(".kiln/logs/own/block@1.log"))
        self.assertIn("Requested node configuration is not available", self.ws.read(".kiln/logs/own/typed@1.log"))
        calls = self.ws.read("sbatch.log").splitlines()
        typed = [c for c in calls if "--gres=gpu:a100:1" in c]
        self.assertEqual(len(typed), 1, calls)
        self.assertIn("--partition=debug", typed[0])
        self.assertNotIn("--partition=nope", typed[0])
        self.assertRegex(typed[0], r"--comment=recipe .*--comment=typed", "its flags after the recipe's")
        self.assertEqual(self.attempts("SELECT failure FROM attempts WHERE task LIKE 'own/%' AND failure IS NOT NULL "
                                       "ORDER BY task"), [("unschedulable",), ("unschedulable",)])
        for field, said in (('slurm = { partiton = "x" }', "has an unknown field 'partiton'"),
                            ('slurm = { gpu_type = "a100" }', "give it gpus = N too"),
                            ('slurm = "gpu"', "must be a table like"),
                            ('slurm = { partition = "a b" }', "partition must be one word")):
            self.ws.write("kiln.lua", 'task { name = "t", run = "true",\n  %s }\n' % field)
            r = self.kiln("run", "--executor", "slurm")
            self.assertEqual(r.rc, 2, r)
            self.assertIn("kiln.lua:1:", r.err)
            self.assertIn(said, r.err)

    def test_pending_reasons_on_the_status_line_and_in_kiln_status(self):
        self.ws.write("kiln.lua", "\n".join(
            'task { name = "pr/t%d", cpus = 8, run = "touch started%d; sleep 60" }' % (i, i) for i in range(3)))
        env = dict(self.ws.env(), **self.env)
        p = subprocess.Popen([KILN, "run", "--executor", "slurm", "--detach"], cwd=self.ws.dir, env=env, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.assertTrue(wait_for(lambda: any(self.ws.exists("started%d" % i) for i in range(3)), 60))
        time.sleep(12)  # a plain-output status line comes every 10 s
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=60)
        self.assertIn("[2 pending: Resources]", out)
        r = self.kiln("status", "--executor", "slurm")
        self.assertIn("Slurm holds 3 of the 3 jobs an earlier run left: ", r.out)
        self.assertIn("1 running", r.out)
        self.assertIn("2 pending: Resources", r.out)
        db = sqlite3.connect(self.ws.path(".kiln/state.db"))
        ids = [row[0] for row in db.execute("SELECT job_id FROM attempts WHERE task LIKE 'pr/%'")]
        db.close()
        subprocess.run(["scancel"] + ids, env=env)

    def test_an_unconfigured_client_is_said_in_sbatchs_words(self):
        self.ws.write("empty.conf", "\n")
        self.ws.write("kiln.lua", 'task { name = "u/t", run = "true" }\n')
        r = self.kiln("run", "--executor", "slurm", env={"SLURM_CONF": self.ws.path("empty.conf")})
        self.assertEqual(r.rc, 2, r)
        self.assertIn("sbatch --version failed: sbatch: fatal: Unable to process configuration file", r.err)
        self.assertIn("SLURM_CONF", r.err)

    def test_port_is_found_on_the_node_and_recorded(self):
        self.ws.write("kiln.lua", 'task { name = "pt/serve", outputs = {"p.txt"}, ports = 2, '
                      'run = "echo {port} {port1} $KILN_PORT > {out}" }\n')
        r = self.kiln("run", "--executor", "slurm", timeout=120)
        self.assertEqual(r.rc, 0, r)
        first, second, env_port = self.ws.read("p.txt").split()
        self.assertTrue(first.isdigit() and second.isdigit() and first != second, (first, second))
        self.assertEqual(env_port, first)
        self.assertEqual(self.attempts("SELECT ports FROM attempts WHERE task = 'pt/serve' AND attempt > 0"),
                         [("%s,%s" % (first, second),)])
        self.assertIn("# kiln: {port} is %s,%s" % (first, second), self.ws.read(".kiln/logs/pt/serve@1.log"))

    def test_a_map_runs_its_shards_as_slurm_jobs_and_resumes_at_the_item(self):
        self.ws.write("cap.sh", "mkdir -p caps; while read item; do echo $item >> done.log; sleep 0.3; "
                                "echo cap-$item > caps/$item.tmp && mv caps/$item.tmp caps/$item.txt; done < $KILN_ITEMS\n")
        self.ws.write("kiln.lua", """
local items = {}
for i = 1, 40 do items[#items + 1] = "img" .. i end
map { name = "cap", items = items, shards = 2, executor = "slurm", output = "caps/{item}.txt",
      run = "sh cap.sh" }
""")
        env = dict(self.ws.env(), **self.env)
        p = subprocess.Popen([KILN, "run"], cwd=self.ws.dir, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.assertTrue(wait_for(lambda: self.ws.exists("done.log") and len(self.ws.read("done.log").split()) >= 10, 90))
        p.send_signal(signal.SIGKILL)  # its shard jobs run on in Slurm's queue
        p.wait()
        r = self.kiln("run", timeout=300)
        self.assertEqual(r.rc, 0, r)
        self.assertIn("attached to Slurm job", r.out)
        for i in range(1, 41):
            self.assertEqual(self.ws.read("caps/img%d.txt" % i), "cap-img%d\n" % i)
        started = self.ws.read("done.log").split()
        self.assertEqual(sorted(started), sorted(set(started)), "no item ran twice")
        self.assertEqual(len(started), 40)
        self.assertEqual(self.kiln("run").ran, set())

    def pausing_worker(self, folder, log, item, before_output, fails=None):
        """cap.sh: appends each listed item to log and renames its output into folder; pauses
        60 s once at item (marked by the file paused-$MAP), before or after its output, and
        stops there (a requeue's SIGTERM may end the sleep before the shell: it must not go
        on to make the item); makes no output for item fails the first time (marked by
        failed-$MAP), and goes on."""
        pause = "if [ $item = %s ] && [ ! -e paused-$MAP ]; then touch paused-$MAP; sleep 60; exit 1; fi; " % item
        make = "echo cap-$item > %s/$item.tmp && mv %s/$item.tmp %s/$item.txt; " % (folder, folder, folder)
        if fails:
            make = ("if [ $item = %s ] && [ ! -e failed-$MAP ]; then touch failed-$MAP; else %sfi; "
                    % (fails, make))
        self.ws.write("cap.sh", "mkdir -p %s; while read item; do echo $item >> %s; %sdone < $KILN_ITEMS\n"
                      % (folder, log, pause + make if before_output else make + pause))

    def test_a_slurm_shard_stopped_by_ctrl_c_keeps_the_item_it_finished(self):
        # atomic_outputs: the job cannot be looked into, so the promise decides: the output of
        # the item it was on when cancelled is whole if there, and kept
        self.pausing_worker("caps", "done.log", "img2", before_output=False)
        self.ws.write("kiln.lua", """
local items = {}
for i = 1, 4 do items[#items + 1] = "img" .. i end
map { name = "cap", items = items, shards = 1, executor = "slurm", output = "caps/{item}.txt",
      atomic_outputs = true, run = "sh cap.sh" }
""")
        env = dict(self.ws.env(), **self.env)
        p = subprocess.Popen([KILN, "run"], cwd=self.ws.dir, env=env, text=True, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        self.assertTrue(wait_for(lambda: self.ws.exists("paused-"), 90))
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=60)
        self.assertEqual(p.returncode, 130, out + err)
        r = self.kiln("run", timeout=120)
        self.assertEqual(r.rc, 0, r)
        self.assertIn("2 up to date", r.out, "img1 and img2 were recorded at the Ctrl-C")
        self.assertEqual(self.ws.read("done.log").split(), ["img1", "img2", "img3", "img4"], "nothing ran twice")

    def test_a_job_whose_node_fails_runs_again_at_once_spending_no_retry(self):
        # its node set down under it (NODE_FAIL; --no-requeue, so Slurm does not start it
        # again itself): no failure of the task's, so with retries = 0 it is submitted again
        # and continues from its checkpoint once the node is back, in the same run
        # (it saves as trainers do, whole or not at all, and quits with exit 0 at the SIGTERM
        # Slurm sends, as a preemption-safe handler may: stopped, not done)
        self.ws.write("kiln.lua", 'task { name = "nf/train", outputs = {"model.txt"}, resume = {"ckpt"}, '
                      'slurm = { extra = {"--no-requeue"} }, run = "trap \'exit 0\' TERM; '
                      's=$(cat ckpt 2>/dev/null || echo 0); for e in $(seq $((s + 1)) 6); do echo epoch $e; '
                      'echo $e >> ledger; echo $e > ckpt.tmp; mv ckpt.tmp ckpt; sleep 0.5; done; echo ok > model.txt" }\n')
        env = dict(self.ws.env(), **self.env)
        node = subprocess.run(["sinfo", "-N", "-h", "-o", "%N"], capture_output=True, text=True, env=env).stdout.split()[0]
        p = subprocess.Popen([KILN, "run", "--executor", "slurm"], cwd=self.ws.dir, env=env, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            self.assertTrue(wait_for(lambda: self.ws.exists("ledger") and len(self.ws.read("ledger").split()) >= 2, 90))
            subprocess.run(["scontrol", "update", "nodename=" + node, "state=down", "reason=kiln-test"], check=True,
                           env=env)
            self.assertTrue(wait_for(lambda: "NODE_FAIL" in subprocess.run(
                ["squeue", "-h", "-t", "all", "-o", "%T"], capture_output=True, text=True, env=env).stdout, 30))
            time.sleep(2)  # kiln sees it ended, and submits it again: it waits for the node
        finally:
            subprocess.run(["scontrol", "update", "nodename=" + node, "state=resume"], env=env, capture_output=True)
        out, _ = p.communicate(timeout=180)
        self.assertEqual(p.returncode, 0, out)
        self.assertRegex(out, r"nf/train: Slurm job \S+ ended NODE_FAIL \(its node failed\); it runs again, from its "
                              r"resume state, spending no retry")
        ledger = self.ws.read("ledger").split()
        self.assertEqual(sorted(set(ledger), key=int), [str(e) for e in range(1, 7)], ledger)
        self.assertLessEqual(len(ledger) - len(set(ledger)), 1, "at most the epoch in flight twice: %s" % ledger)
        self.assertEqual(self.attempts("SELECT failure FROM attempts ORDER BY id"), [("node-lost",), (None,)])
        self.assertEqual(self.kiln("report").rc, 0)
        report = self.ws.read("report.html")
        self.assertIn('<tr><td>lost</td><td class="n">1</td>', report, "given back, not failed")
        self.assertNotIn("<tr><td>failed</td>", report)

    def test_a_requeued_shard_job_makes_only_the_items_not_made(self):
        # both maps' jobs are requeued (a preemption) in item i4, after i1 and i3 were made
        # and i2 failed: the one with atomic_outputs makes i2 and i4 on, the other i3 again
        # too (its output removed: it may be half written), not i1 on, nor i2 on
        self.pausing_worker("caps/$MAP", "done-$MAP.log", "i4", before_output=True, fails="i2")
        self.ws.write("kiln.lua", """
local items = {}
for i = 1, 6 do items[#items + 1] = "i" .. i end
for _, m in ipairs({"a", "b"}) do
  map { name = "cap-" .. m, items = items, shards = 1, executor = "slurm", output = "caps/" .. m .. "/{item}.txt",
        atomic_outputs = m == "a", env = { MAP = m }, run = "sh cap.sh" }
end
""")
        env = dict(self.ws.env(), **self.env)
        p = subprocess.Popen([KILN, "run"], cwd=self.ws.dir, env=env, text=True, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT)
        self.assertTrue(wait_for(lambda: self.ws.exists("paused-a") and self.ws.exists("paused-b"), 90))
        jobs = [line.split()[0] for line in subprocess.run(["squeue", "-h", "-o", "%i %j %T"], capture_output=True,
                                                           text=True, env=env).stdout.splitlines()
                if "cap-" in line and "RUNNING" in line]
        self.assertEqual(len(jobs), 2, jobs)
        for job in jobs:
            subprocess.run(["scontrol", "requeue", job], check=True, env=env)
        time.sleep(5)  # Slurm holds a requeued job back a while (see test_slurm's requeue test)
        for job in jobs:
            subprocess.run(["scontrol", "update", "jobid=" + job, "StartTime=now"], check=True, env=env)
        out, _ = p.communicate(timeout=180)
        self.assertEqual(p.returncode, 0, out)
        self.assertEqual(self.ws.read("done-a.log").split(), ["i1", "i2", "i3", "i4", "i2", "i4", "i5", "i6"])
        self.assertEqual(self.ws.read("done-b.log").split(), ["i1", "i2", "i3", "i4", "i2", "i3", "i4", "i5", "i6"])
        self.assertIn("Slurm started this job again: 2 of the 6 items of its list were made before it stopped and "
                      "are kept; it makes the other 4", self.ws.read(".kiln/logs/cap-a:shard-1@1.log"))
        self.assertIn("Slurm started this job again: 1 of the 6 items of its list were made before it stopped and "
                      "are kept (item 3 of the list, the last made, is made again: its output may be half written); it makes "
                      "the other 5", self.ws.read(".kiln/logs/cap-b:shard-1@1.log"))
        for m in ("a", "b"):
            for i in range(1, 7):
                self.assertEqual(self.ws.read("caps/%s/i%d.txt" % (m, i)), "cap-i%d\n" % i)
        self.assertEqual(self.kiln("run").ran, set())


if __name__ == "__main__":
    main()
