"""End-to-end: the ssh executor against three real sshd servers (sshhosts.py), each with
its own home, workdir and fake nvidia-smi. A grid runs across them with GPUs leased per
host (a busy device is left alone); inputs are copied only where a task needs them, and a
copy deleted there is copied again; stopping one server mid-run moves its tasks elsewhere;
kill -9 of kiln then a re-run re-attaches without running anything again; Ctrl-C stops the
remote process groups (a map shard's finished item kept, with atomic_outputs); a no-op re-run
starts nothing on any host; a full workdir there is said in words; recipe mistakes about
hosts are errors with file:line. torchrun, ranks and map{} shards over the hosts:
test_ssh_dist.py; checkpoints on a host and hosts that drop under running work:
test_ssh_resume.py, test_ssh_lost.py, test_ssh_stale.py."""
import hashlib
import os
import re
import signal
import shutil
import sys
import time
import unittest

from kilntest import KilnTestCase, lua_str, main, processes_matching, wait_for
import sshhosts

SKIP = sshhosts.skip_reason()
FREE = (0, 81920, 200, 0)
gpus = sshhosts.gpus


@unittest.skipIf(SKIP, SKIP or "")
class SshHosts(sshhosts.SshCase, KilnTestCase):
    HOSTS = {"v800": gpus(2), "v801": gpus(2, busy=(1,)), "v802": gpus(1)}

    def test_grid_leases_gpus_per_host_and_leaves_a_busy_one_alone(self):
        self.ws.write("kiln.lua", """
for d = 1, 4 do
  for m = 1, 2 do
    task { name = "eval/d" .. d .. "_m" .. m, gpus = 1, outputs = {"res/d" .. d .. "_m" .. m .. ".txt"},
           tags = { dataset = "d" .. d, model = "m" .. m },
           run = "%sa=$(date +%%s.%%N); sleep 0.4; echo $KILN_TEST_HOST $CUDA_VISIBLE_DEVICES $a $(date +%%s.%%N) > {out}" }
  end
end
""" % self.START)
        r = self.kiln()
        self.assertEqual(r.rc, 0, r)
        rows = []
        for name in os.listdir(self.ws.path("res")):
            host, gpu, a, b = self.ws.read("res/" + name).split()
            rows.append((host, gpu, float(a), float(b)))
        self.assertEqual(len(rows), 8)
        self.assertNotIn(("v801", "1"), [(h, g) for h, g, _, _ in rows], "v801's device 1 is 95 % busy")
        for host, gpu, _, _ in rows:
            self.assertIn((host, gpu), [("v800", "0"), ("v800", "1"), ("v801", "0"), ("v802", "0")])
        for i, x in enumerate(rows):  # one task per device at a time
            for y in rows[i + 1:]:
                if x[:2] == y[:2]:
                    self.assertTrue(x[3] <= y[2] or y[3] <= x[2], "%s and %s overlap on one GPU" % (x, y))
        self.assertGreaterEqual(len({h for h, _, _, _ in rows}), 2, "the grid spread over the hosts")
        self.assertRegex(r.out, r"host v800: \d+ done, 0 failed")
        # one GPU-time figure: the run's summary and kiln status count from the same records
        summary = dict(re.findall(r"kiln: host (v80\d): [^\n]*?GPU time ([^,\n]+),", r.out))
        st = self.ws.kiln("status", "--hosts", "hosts.lua")
        status = dict(re.findall(r"kiln: host (v80\d) \(last run there\): [^\n]*?GPU time ([^;\n]+);", st.out))
        self.assertTrue(summary, r.out)
        self.assertEqual(summary, {h: t for h, t in status.items() if h in summary}, st.out)
        # the same cache as locally: a no-op re-run starts nothing anywhere and opens no job there
        before = self.starts()
        jobs = {n: sorted(os.listdir(os.path.join(h.workdir(), ".kiln/jobs"))) for n, h in self.lab.hosts.items()}
        self.assertEqual(jobs, {n: [] for n in self.lab.hosts}, "every job's directory and task pointer cleared")
        r = self.kiln()
        self.assertEqual(r.rc, 0, r)
        self.assertIn("8 up to date", r.out)
        self.assertEqual(self.starts(), before)
        self.assertEqual({n: sorted(os.listdir(os.path.join(h.workdir(), ".kiln/jobs"))) for n, h in self.lab.hosts.items()}, jobs)
        # the plan's ETA counts the hosts' slots and GPUs, not this machine's
        self.ws.write("kiln.lua", self.ws.read("kiln.lua").replace("sleep 0.4", "sleep 0.5"))
        plan = self.kiln("-n")
        self.assertIn("8 from their last run", plan.out)
        self.assertIn("over 3 hosts (their capacity is learned when kiln connects)", plan.out)
        self.assertNotIn(" CPU", plan.out.splitlines()[-2], "nothing runs here: " + plan.out)
        self.ws.write("declared.lua", self.lab.hosts_lua({n: 'gpus = "0", jobs = 2' for n in self.lab.hosts}))
        plan = self.ws.kiln("run", "-n", "--executor", "ssh", "--hosts", "declared.lua")
        self.assertRegex(plan.out, r"ETA about \S+ over 3 hosts' 6 slots, 3 GPUs")

    def test_a_busy_device_there_is_waited_for_and_read_through_one_shell(self):
        # v802's one device is someone else's (95 % utilised): the task waits, and runs there
        # once the readings, asked every second, show it calm; every reading after the first
        # contact's goes to the one shell kept there (one session), not an ssh command each
        h = self.lab.hosts["v802"]
        with open(os.path.join(h.bin, "nvidia-smi"), "w") as f:
            f.write('#!/bin/sh\ncut -d" " -f6 /proc/$$/stat >> "$HOME/smi-sessions"\ncat "$HOME/gpus.csv"\n')
        h.set_gpus([(0, 81920, 200, 95)])
        self.ws.write("kiln.lua", 'task { name = "eval", host = "v802", gpus = 1, outputs = {"res.txt"}, '
                      'run = "echo $KILN_TEST_HOST $CUDA_VISIBLE_DEVICES > {out}" }\n')
        run = self.ws.spawn("run", "--executor", "ssh", "--hosts", "hosts.lua")
        sessions = os.path.join(h.home, "smi-sessions")

        def readings():
            with open(sessions) as f:
                return f.read().split()
        try:
            self.assertTrue(wait_for(lambda: os.path.exists(sessions) and len(readings()) >= 4, timeout=30))
            self.assertFalse(self.ws.exists("res.txt"), "the busy device is left alone")
            h.set_gpus([FREE])
        finally:
            out, err = run.communicate(timeout=60)
        self.assertEqual(run.returncode, 0, out + err)
        self.assertEqual(self.ws.read("res.txt").split(), ["v802", "0"])
        self.assertRegex(out, r"queue +\[v802 0/1 GPUs", "it waited for the device")
        seen = readings()
        self.assertGreaterEqual(len(seen), 5, seen)
        self.assertLessEqual(len(set(seen)), 2, "the first contact's session, then the reading shell's: %s" % seen)
        mark = "KILN-ANSWER-%d-" % run.pid  # this kiln's reading shells, here and there
        self.assertTrue(wait_for(lambda: not processes_matching(mark), timeout=10), "they end with the run")

    def test_a_busy_device_there_is_waited_for_as_long_as_gpu_wait_says(self):
        # v801's device 1 is someone else's all along: a task of two devices there waits 2 s,
        # saying why, then takes the least busy two; gpu_wait_then = "fail" fails it instead
        for then, rc in (("run", 0), ("fail", 1)):
            self.ws.write("kiln.lua", 'task { name = "train", host = "v801", gpus = 2, gpu_wait = "2s", gpu_wait_then = '
                          '"%s", outputs = {"res.txt"}, run = "echo %s $CUDA_VISIBLE_DEVICES > {out}" }\n' % (then, then))
            r = self.kiln(timeout=40)
            self.assertEqual(r.rc, rc, r)
            self.assertIn("train waits for GPUs: v801: GPU 0 free, GPU 1 busy 85 % memory", r.out)
            if then == "run":
                self.assertEqual(self.ws.read("res.txt").split(), ["run", "0,1"])
                self.assertIn("train: waited 2 s for a free GPU; taking the least busy", r.out)
            else:
                self.assertIn("no GPU became free within gpu_wait = 2 s [gpu-busy]", r.out)
                self.assertEqual(self.ws.query("SELECT failure FROM attempts WHERE task = 'train' ORDER BY id DESC LIMIT 1"),
                                 [("gpu-busy",)])
                self.assertEqual(self.ws.read("res.txt").split(), ["run", "0,1"])  # the run before's: none started

    def test_inputs_go_only_where_needed_and_a_deleted_copy_comes_back(self):
        os.makedirs(self.ws.path("data/cifar"))
        for i in range(3):
            self.ws.write("data/cifar/part%d.bin" % i, "x" * (1000 + i))
        self.ws.write("ckpt.pt", "weights")
        self.ws.write("kiln.lua", """
task { name = "a", host = "v800", inputs = {"data/cifar", "ckpt.pt"}, outputs = {"a.txt"},
       run = "%sls data/cifar | wc -l > a.txt; cat ckpt.pt >> a.txt" }
task { name = "b", host = "v802", inputs = {"ckpt.pt"}, outputs = {"b.txt"}, run = "cat ckpt.pt > b.txt" }
""" % self.START)
        r = self.kiln()
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(self.ws.read("a.txt").split(), ["3", "weights"])
        w = {n: h.workdir() for n, h in self.lab.hosts.items()}
        self.assertTrue(os.path.exists(os.path.join(w["v800"], "data/cifar/part2.bin")))
        self.assertFalse(os.path.exists(os.path.join(w["v802"], "data")), "v802's task does not read the dataset")
        self.assertFalse(os.path.exists(os.path.join(w["v801"], "ckpt.pt")), "nothing ran on v801")
        self.assertIn("copied data/cifar to v800", self.ws.read(".kiln/logs/a@1.log"))
        # run a again: the copy there is as recorded, so nothing is copied
        r = self.kiln("--force", "a")
        self.assertEqual(r.rc, 0, r)
        log = self.ws.read(".kiln/logs/a@2.log")  # attempt numbers go on across runs
        self.assertNotIn("copied", log)
        # someone deletes the dataset on v800: the next run that needs it copies it again
        shutil.rmtree(os.path.join(w["v800"], "data/cifar"))
        r = self.kiln("--force", "a")
        self.assertEqual(r.rc, 0, r)
        self.assertIn("copied data/cifar to v800", self.ws.read(".kiln/logs/a@3.log"))
        self.assertEqual(self.ws.read("a.txt").split(), ["3", "weights"])
        # a changed input here is copied again (and the task runs again for it)
        self.ws.write("data/cifar/part0.bin", "changed")
        r = self.kiln()
        self.assertEqual(r.rc, 0, r)
        with open(os.path.join(w["v800"], "data/cifar/part0.bin")) as f:
            self.assertEqual(f.read(), "changed")
        self.assertIn("1 ran", r.out)

    def test_a_host_that_goes_away_loses_its_tasks_to_the_others(self):
        self.ws.write("kiln.lua", """
for i = 1, 12 do
  task { name = "w" .. i, outputs = {"w/" .. i .. ".txt"}, run = "%ssleep 1.2; echo $KILN_TEST_HOST > {out}" }
end
""" % self.START)
        p = self.ws.spawn("run", "--executor", "ssh", "--hosts", "hosts.lua", "-j", "12")
        self.assertTrue(wait_for(lambda: any(h == "v801" for h, _ in self.starts()), timeout=30))
        self.lab.hosts["v801"].stop()
        out, err = p.communicate(timeout=120)
        self.assertEqual(p.returncode, 0, out + err)
        hosts = [self.ws.read("w/%d.txt" % i).strip() for i in range(1, 13)]
        self.assertNotIn("v801", hosts, "v801's tasks ran again elsewhere")
        self.assertRegex(out, r"host v801: 0 done, 0 failed, \d+ lost with it and run again.*DOWN")
        self.assertIn("it runs again, taking up its job there if the host answers soon (it may run on), else elsewhere", out)
        self.assertIn("12 ran", out)
        # it comes back: it is used again
        self.lab.hosts["v801"].start()
        self.ws.write("kiln.lua", 'task { name = "back", host = "v801", outputs = {"b.txt"}, run = "echo $KILN_TEST_HOST > b.txt" }\n')
        r = self.kiln()
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(self.ws.read("b.txt").strip(), "v801")

    def test_a_task_whose_only_host_is_down_fails_as_host_down(self):
        self.ws.write("kiln.lua", 'task { name = "pinned", host = "v802", outputs = {"p.txt"}, run = "echo hi > p.txt" }\n'
                      'task { name = "free", outputs = {"f.txt"}, run = "echo hi > f.txt" }\n')
        self.lab.hosts["v802"].stop()
        try:
            r = self.kiln("-k", "--host-wait", "2s")
        finally:
            self.lab.hosts["v802"].start()
        self.assertEqual(r.rc, 1, r)
        self.assertIn("FAILED pinned: no host can take it: v802 down", r.out)
        self.assertIn("[host-down]", r.out)
        self.assertNotIn("missing-input", r.out)
        self.assertRegex(r.out, r"host v802: 0 done, 0 failed, 1 failed waiting for it \(host-down\).*DOWN")
        self.assertEqual(self.ws.read("f.txt"), "hi\n", "the other task ran elsewhere")
        # the host is back: the task runs there
        r = self.kiln()
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(r.ran, {"pinned"})

    def test_kill_9_then_rerun_reattaches_and_ctrl_c_stops_remote_groups(self):
        self.ws.write("kiln.lua", """
for i = 1, 3 do
  task { name = "slow" .. i, outputs = {"s/" .. i .. ".txt"},
         run = "%secho first; sleep 2\\necho second; echo ok > {out}" }
end
""" % self.START)
        p = self.ws.spawn("run", "--executor", "ssh", "--hosts", "hosts.lua")
        self.assertTrue(wait_for(lambda: len(self.starts()) == 3, timeout=30))
        time.sleep(0.3)
        p.kill()
        p.communicate()
        # clean cannot stop them from here: it refuses, naming them, and changes nothing
        r = self.ws.kiln("clean", "slow2")
        self.assertEqual(r.rc, 2, r)
        self.assertIn("slow2: ssh job", r.err)
        self.assertNotIn("slow1", r.err)
        self.assertIn("`kiln run` re-attaches them", r.err)
        r = self.kiln()
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(len(re.findall(r"attached to ssh job", r.out)), 3, r)
        self.assertEqual(sorted(t for _, t in self.starts()), ["slow1", "slow2", "slow3"], "nothing ran twice")
        log = self.ws.read(".kiln/logs/slow1@1.log")
        lines = log.splitlines()
        self.assertEqual((lines.count("first"), lines.count("second")), (1, 1), log)
        # Ctrl-C: the remote groups are stopped, nothing recorded
        self.ws.write("kiln.lua", self.ws.read("kiln.lua").replace("s/", "t/"))
        p = self.ws.spawn("run", "--executor", "ssh", "--hosts", "hosts.lua")
        self.assertTrue(wait_for(lambda: len(self.starts()) == 6, timeout=30))
        time.sleep(0.3)
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=60)
        self.assertEqual(p.returncode, 130, out + err)
        self.assertTrue(wait_for(lambda: not self.lab.jobs_running(), timeout=10),
                        "the remote tasks were stopped")
        self.assertFalse(os.path.exists(self.ws.path("t/1.txt")))
        self.assertEqual(sum(int(n) for n in re.findall(r"(\d+) stopped", out)), 3, out)

    def test_a_stale_job_under_timeout_is_stopped_whole(self):
        # kill -9 of kiln, then the task's command changes: its job there is stale and is
        # stopped, with what `timeout` runs in a process group of its own (the job's group
        # alone was stopped: the old command ran on beside the new attempt)
        run = self.START + "timeout 600 sh -c 'sleep 60; echo late >> late.txt'; echo %s > o.txt"
        self.ws.write("kiln.lua", 'task { name = "t", host = "v800", outputs = {"o.txt"}, run = %s }\n' % lua_str(run % "a"))
        p = self.ws.spawn("run", "--executor", "ssh", "--hosts", "hosts.lua")
        self.assertTrue(wait_for(lambda: len(self.starts()) == 1, timeout=30))
        time.sleep(0.5)
        p.kill()
        p.communicate()
        self.assertTrue(self.lab.jobs_running(), "the job runs on after the kill")
        self.ws.write("kiln.lua", self.ws.read("kiln.lua").replace("sleep 60", "sleep 1").replace("echo a", "echo b"))
        r = self.kiln()
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(len(self.starts()), 2, r)
        self.assertTrue(wait_for(lambda: not self.lab.jobs_running(), timeout=10),
                        "the stale job's timeout and sleep were stopped: %s" % self.lab.jobs_running())

    def test_a_command_that_quits_with_exit_0_when_stopped_is_not_recorded(self):
        # a graceful-shutdown handler (trap ... TERM; exit 0) after a Ctrl-C: its half-made
        # output is no success, on the copying first attempt and on the agent's next one,
        # for a shell string (run in a subshell there) and argv words alike
        self.ws.write("in.txt", "x\n")
        handler = "trap 'echo half > out.txt; exit 0' TERM; echo start t >> $HOME/trace.txt; sleep 30 & wait"
        for run in (lua_str(handler), '{"sh", "-c", %s}' % lua_str(handler)):
            self.ws.write("kiln.lua", 'task { name = "t", host = "v800", inputs = {"in.txt"}, outputs = {"out.txt"}, '
                          'run = %s }\n' % run)
            for _ in range(2):
                before = len(self.starts())
                p = self.ws.spawn("run", "--executor", "ssh", "--hosts", "hosts.lua")
                self.assertTrue(wait_for(lambda: len(self.starts()) > before, timeout=30), "it started")
                p.send_signal(signal.SIGINT)
                out, err = p.communicate(timeout=60)
                self.assertEqual(p.returncode, 130, out + err)
                self.assertNotIn("ok ", out)
                self.assertIn("1 not run", out)
        r = self.kiln("-n")
        self.assertIn("1 task would run", r.out + r.err, r)

    def test_an_output_that_stays_on_its_host_is_relayed_only_where_needed(self):
        self.ws.write("kiln.lua", """
task { name = "train", host = "v800", outputs = {"ckpt/big.pt"}, stay = true,
       run = "mkdir -p ckpt; head -c 200000 /dev/urandom > ckpt/big.pt" }
task { name = "eval_a", host = "v800", inputs = {"ckpt/big.pt"}, outputs = {"a.txt"}, run = "sha256sum ckpt/big.pt > a.txt" }
task { name = "eval_b", host = "v801", inputs = {"ckpt/big.pt"}, outputs = {"b.txt"}, run = "sha256sum ckpt/big.pt > b.txt" }
""")
        r = self.kiln()
        self.assertEqual(r.rc, 0, r)
        pointer = self.ws.read("ckpt/big.pt")
        self.assertIn("host v800", pointer)
        self.assertLess(len(pointer), 400, "only a pointer came back")
        w = {n: h.workdir() for n, h in self.lab.hosts.items()}
        self.assertEqual(self.ws.read("a.txt").split()[0], self.ws.read("b.txt").split()[0], "v801 got v800's bytes")
        self.assertFalse(os.path.exists(os.path.join(w["v802"], "ckpt")))
        self.assertIn("copied ckpt/big.pt from v800 to v801", self.ws.read(".kiln/logs/eval_b@1.log"))
        self.assertNotIn("copied", self.ws.read(".kiln/logs/eval_a@1.log"))
        r = self.kiln()
        self.assertIn("3 up to date", r.out)
        # the per-host view of the last run, and what is pending for a host
        self.ws.write("kiln.lua", self.ws.read("kiln.lua").replace("sha256sum ckpt/big.pt > b.txt", "sha256sum ckpt/big.pt > b.txt; true"))
        st = self.ws.kiln("status", "--hosts", "hosts.lua")
        self.assertEqual(st.rc, 0, st)
        self.assertRegex(st.out, r"host v800 \(last run there\): 2 done, 0 failed.*holds \d+ path")
        self.assertRegex(st.out, r"host v801 \(last run there\): 1 done.*1 pending that name it")
        self.ws.write("kiln.lua", self.ws.read("kiln.lua").replace("b.txt; true", "b.txt"))
        # the copy on v800 is deleted: a task that needs it there says what to do
        os.remove(os.path.join(w["v800"], "ckpt/big.pt"))
        r = self.kiln("--force", "eval_a")
        self.assertEqual(r.rc, 1, r)
        self.assertIn("no longer holds it", r.out)

    # this machine's ssh, counting the bytes that come out of it (a relay's pass there; a
    # direct copy's do not); the master connections and rsync's own run as they are
    COUNTING_SSH = """#!/bin/bash
case " $* " in *ControlMaster=yes*|*" -O "*|*"rsync --server"*) exec /usr/bin/ssh "$@";; esac
set -o pipefail
/usr/bin/ssh "$@" | { n=$(tee -a /dev/fd/3 | wc -c); echo "$n" >> "$KILN_TEST_SSH_BYTES"; } 3>&1
"""

    # rsync at ~4 MB/s, as a big shard over a slow link, noting the bytes it sent
    SLOW_RSYNC = """#!/bin/sh
exec /usr/bin/rsync --bwlimit=4000 --stats "$@" >> "$KILN_TEST_RSYNC_STATS"
"""

    def test_a_copy_cut_short_keeps_what_came_and_sends_only_the_rest(self):
        self.ws.write("bin/rsync", self.SLOW_RSYNC)
        os.chmod(self.ws.path("bin/rsync"), 0o755)
        stats = self.ws.path("rsync-stats")
        env = {"PATH": self.ws.path("bin") + ":" + os.environ["PATH"], "KILN_TEST_RSYNC_STATS": stats}
        size = 12000000
        os.makedirs(self.ws.path("data"))
        with open(self.ws.path("data/shard.tar"), "wb") as f:
            f.write(os.urandom(size))
        self.ws.write("kiln.lua", 'task { name = "eval", host = "v800", inputs = {"data/shard.tar"}, outputs = {"e.txt"}, '
                      'run = "sha256sum data/shard.tar > e.txt" }\n')
        data = os.path.join(self.lab.hosts["v800"].workdir(), "data")

        def landed():
            names = os.listdir(data) if os.path.isdir(data) else []
            return sum(os.path.getsize(os.path.join(data, n)) for n in names if n.startswith(".shard.tar."))
        p = self.ws.spawn("run", "--executor", "ssh", "--hosts", "hosts.lua", env=env)
        self.assertTrue(wait_for(lambda: landed() > 3000000, 60))
        self.ctrl_c(p)
        kept = os.path.join(data, ".kiln-partial", "shard.tar")
        self.assertGreater(os.path.getsize(kept), 3000000, "what came before the Ctrl-C was kept there")
        os.remove(stats)
        r = self.kiln(env=env)
        self.assertEqual(r.rc, 0, r)
        with open(stats) as f:
            sent = sum(int(n.replace(",", "")) for n in re.findall(r"Literal data: ([\d,]+) bytes", f.read()))
        self.assertLess(sent, size - 3000000, "only the rest was sent")
        self.assertFalse(os.path.exists(os.path.dirname(kept)), "gone once the file was whole")
        with open(self.ws.path("data/shard.tar"), "rb") as f:
            self.assertEqual(self.ws.read("e.txt").split()[0], hashlib.sha256(f.read()).hexdigest())

    # this machine's ssh, its commands' output slowed to ~1.3 MB/s (outputs coming back over
    # a slow link); the master connections and rsync's own run as they are
    THROTTLED_SSH = """#!/bin/bash
case " $* " in *ControlMaster=yes*|*" -O "*|*"rsync --server"*) exec /usr/bin/ssh "$@";; esac
set -o pipefail
/usr/bin/ssh "$@" | %s -c '
import sys, time
while True:
    b = sys.stdin.buffer.read1(65536)
    if not b:
        break
    sys.stdout.buffer.write(b)
    sys.stdout.buffer.flush()
    if len(b) > 4096:
        time.sleep(0.05)
'
""" % sys.executable

    def test_a_ctrl_c_while_a_finished_jobs_outputs_come_back_keeps_its_success(self):
        # the job ended there (exit 0) and its 4 MB output is on its way when the Ctrl-C
        # comes: kiln waits for it, records the task done (not run again next time), and
        # the host's line counts it done, not stopped
        self.ws.write("bin/ssh", self.THROTTLED_SSH)
        os.chmod(self.ws.path("bin/ssh"), 0o755)
        env = {"PATH": self.ws.path("bin") + ":" + os.environ["PATH"]}
        self.ws.write("kiln.lua", 'task { name = "train", host = "v800", outputs = {"big.bin"}, run = "echo ran >> '
                      '$HOME/ledger; head -c 4000000 /dev/urandom > big.bin" }\n')
        ledger = os.path.join(self.lab.hosts["v800"].home, "ledger")
        if os.path.exists(ledger):
            os.remove(ledger)
        jobs = os.path.join(self.lab.hosts["v800"].workdir(), ".kiln/jobs")
        p = self.ws.spawn("run", "--executor", "ssh", "--hosts", "hosts.lua", env=env)
        self.assertTrue(wait_for(lambda: os.path.isdir(jobs) and any(
            os.path.exists(os.path.join(jobs, j, "exit")) for j in os.listdir(jobs)), 60))
        time.sleep(0.3)
        out = self.ctrl_c(p)
        self.assertIn("ok       [1/1] train", out)
        self.assertIn("host v800: 1 done,", out)
        self.assertIn("kiln: stopped by Ctrl-C (SIGINT); no running task was cut short", out)
        self.assertEqual(os.path.getsize(self.ws.path("big.bin")), 4000000)
        r = self.kiln(env=env)
        self.assertEqual(r.rc, 0, r)
        self.assertIn("0 ran, 1 up to date", r.out)
        with open(ledger) as f:
            self.assertEqual(f.read(), "ran\n", "it ran once")

    def test_a_host_that_reaches_another_copies_to_it_directly(self):
        self.ws.write("hosts.lua", self.lab.hosts_lua({"v800": 'reach = {"v801"}'}))
        self.ws.write("bin/ssh", self.COUNTING_SSH)
        os.chmod(self.ws.path("bin/ssh"), 0o755)
        counted = self.ws.path("ssh-bytes")
        env = {"PATH": self.ws.path("bin") + ":" + os.environ["PATH"], "KILN_TEST_SSH_BYTES": counted}

        def bytes_through_here():
            with open(counted) as f:
                n = sum(int(x) for x in f.read().split())
            os.remove(counted)
            return n
        recipe = """
task { name = "train", host = "v800", outputs = {"ckpt/big.pt"}, stay = true,
       run = "mkdir -p ckpt; head -c 2000000 /dev/urandom > ckpt/big.pt" }
task { name = "eval_b", host = "v801", inputs = {"ckpt/big.pt"}, outputs = {"b.txt"}, run = "sha256sum ckpt/big.pt > b.txt" }
"""
        self.ws.write("kiln.lua", recipe)
        r = self.kiln(env=env)
        self.assertEqual(r.rc, 0, r)
        self.assertIn("copied ckpt/big.pt from v800 to v801 directly", self.ws.read(".kiln/logs/eval_b@1.log"))
        self.assertLess(bytes_through_here(), 200000, "none of the 2 MB came through this machine")
        w = {n: h.workdir() for n, h in self.lab.hosts.items()}
        self.assertEqual(os.path.getsize(os.path.join(w["v801"], "ckpt/big.pt")), 2000000)
        # v800 does not reach v802: the bytes are relayed through here (the count sees them)
        self.ws.write("kiln.lua", recipe + 'task { name = "eval_c", host = "v802", inputs = {"ckpt/big.pt"}, '
                      'outputs = {"c.txt"}, run = "sha256sum ckpt/big.pt > c.txt" }\n')
        r = self.kiln(env=env)
        self.assertEqual(r.rc, 0, r)
        self.assertIn("from v800 to v802 through this machine", self.ws.read(".kiln/logs/eval_c@1.log"))
        self.assertGreater(bytes_through_here(), 2000000)
        self.assertEqual(self.ws.read("b.txt").split()[0], self.ws.read("c.txt").split()[0])
        # a reach list naming no host of the block is a recipe error where it is written
        self.ws.write("hosts.lua", self.lab.hosts_lua({"v800": 'reach = {"v899"}'}))
        r = self.kiln()
        self.assertEqual(r.rc, 2, r)
        self.assertRegex(r.err, r"hosts.lua:\d+: hosts\{\}: v800.reach names \"v899\"")

    def test_zeroshot_recipe_over_the_hosts_gives_the_local_results(self):
        recipe = os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../recipes/zeroshot.lua")
        args = ["datasets=cifar-10,dtd", "models=team,large", "samples=200", "dim=64"]
        local = self.ws.kiln("-C", "local", "run", recipe, *args)
        self.assertEqual(local.rc, 0, local)
        os.makedirs(self.ws.path("lab"))
        shutil.copy(self.ws.path("hosts.lua"), self.ws.path("lab/hosts.lua"))
        r = self.ws.kiln("-C", "lab", "run", recipe, "--executor", "ssh", "--hosts", "hosts.lua", "gpus=1",
                         "data_host=v802", "ckpt_host=v800", *args, timeout=300)
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(self.ws.read("lab/results/top1_table.md"), self.ws.read("local/results/top1_table.md"))
        self.assertRegex(r.out, r"host v802: \d+ done")
        sys.stderr.write("\n" + "\n".join(l for l in r.out.splitlines() if l.startswith("kiln:")) + "\n")
        self.assertEqual(len(re.findall(r"^ok .*eval/", r.out, re.M)), 4)
        logs = self.ws.path("lab/.kiln/logs/eval")
        where = set()
        for dataset in os.listdir(logs):
            for log in os.listdir(os.path.join(logs, dataset)):
                with open(os.path.join(logs, dataset, log)) as f:
                    where |= set(re.findall(r"# kiln: on host (\S+)", f.read()))
        self.assertGreaterEqual(len(where), 2, "the evals spread over the hosts: %s" % where)

    def test_detach_leaves_remote_jobs_running_for_the_next_run(self):
        self.ws.write("kiln.lua", 'task { name = "long", outputs = {"l.txt"}, '
                      'run = "%secho before; sleep 3\\necho after the detach; echo done > l.txt" }\n' % self.START)
        p = self.ws.spawn("run", "--executor", "ssh", "--hosts", "hosts.lua", "--detach")
        self.assertTrue(wait_for(lambda: len(self.starts()) == 1, timeout=30))
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=60)
        self.assertEqual(p.returncode, 130, out + err)
        self.assertIn("left running as ssh job", out)
        self.assertTrue(self.lab.jobs_running(), "the job runs on there")
        # with no kiln at work, -f follows the log on the host (its hosts{} named as for run)
        # from where the local copy ends, to the job's end
        f = self.ws.kiln("log", "-f", "long", timeout=30)
        self.assertEqual(f.rc, 0, f)
        self.assertRegex(f.err, r"long runs on v80\d and no kiln is at work here: following its log there")
        self.assertIn("declares no host", f.err)
        self.assertIn("`kiln run` re-attaches to it and brings the rest", f.err)
        f = self.ws.kiln("log", "-f", "long", "--hosts", "hosts.lua", timeout=30)
        self.assertEqual(f.rc, 0, f)
        self.assertEqual(f.out.count("before\n"), 1, f)
        self.assertIn("after the detach\n", f.out)
        self.assertIn("its job there has ended", f.err)
        r = self.kiln()
        self.assertEqual(r.rc, 0, r)
        self.assertIn("attached to ssh job", r.out)
        self.assertEqual(self.ws.read("l.txt"), "done\n")
        self.assertEqual([t for _, t in self.starts()], ["long"], "it ran once")

    def test_a_dropped_connection_to_a_host_that_still_answers_loses_nothing(self):
        self.ws.write("kiln.lua", """
for i = 1, 4 do
  task { name = "d" .. i, ports = 1, gpus = 1, outputs = {"d/" .. i .. ".txt"},
         run = "%ssleep 1.5; echo port={port} gpus={gpus} dev=$CUDA_VISIBLE_DEVICES > {out}" }
end
""" % self.START)
        p = self.ws.spawn("run", "--executor", "ssh", "--hosts", "hosts.lua")
        self.assertTrue(wait_for(lambda: len(self.starts()) == 4, timeout=30))
        # the master connections die (a network blip): every follower's connection drops
        masters = processes_matching("ControlMaster=yes", cwd=self.ws.dir)  # this run's
        self.assertTrue(masters)
        for pid in masters:
            os.kill(pid, signal.SIGKILL)
        out, err = p.communicate(timeout=60)
        self.assertEqual(p.returncode, 0, out + err)
        self.assertEqual(sorted(t for _, t in self.starts()), ["d1", "d2", "d3", "d4"], "nothing ran twice")
        self.assertNotIn("lost", out)
        for i in range(1, 5):
            log = self.ws.read(".kiln/logs/d%d@1.log" % i)
            self.assertIn("dropped; following the job there again", log)
            text = self.ws.read("d/%d.txt" % i).split()
            self.assertRegex(text[0], r"^port=\d+$")
            self.assertEqual(text[1], "gpus=1")
            self.assertRegex(text[2], r"^dev=\d$")

    def test_cwd_and_optional_outputs_on_a_host(self):
        self.ws.write("data/in.txt", "D\n")
        self.ws.write("kiln.lua", 'task { name = "t", host = "v800", cwd = "runs/{name}", inputs = {"data/in.txt"}, '
                      'outputs = {"runs/t/o.txt"}, optional_outputs = {"runs/t/best.txt", "runs/t/never.txt"}, '
                      'run = "pwd > where.txt; cat {in} > o.txt; echo best > best.txt" }\n')
        r = self.kiln()
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(self.ws.read("runs/t/o.txt"), "D\n", "made in its folder there, fetched here")
        self.assertEqual(self.ws.read("runs/t/best.txt"), "best\n", "an optional output made there comes back")
        self.assertFalse(self.ws.exists("runs/t/never.txt"))
        self.assertEqual(self.kiln().ran, set(), "one not made is recorded as absent")
        where = os.path.join(self.lab.hosts["v800"].workdir(), "runs/t/where.txt")
        with open(where) as f:
            self.assertEqual(f.read().strip(), os.path.realpath(os.path.join(self.lab.hosts["v800"].workdir(), "runs/t")))

    def test_a_bash_line_runs_there_under_shell_bash_and_a_save_at_a_stop_lands(self):
        from test_scripts import write_bash_pair
        write_bash_pair(self.ws, fields='host = "v800",')
        there = self.lab.hosts["v800"].workdir()
        p = self.ws.spawn("run", "--executor", "ssh", "--hosts", "hosts.lua")
        self.assertTrue(wait_for(lambda: self.ws.exists("b.txt") and os.path.exists(os.path.join(there, "started")),
                                 timeout=60))
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=60)
        self.assertEqual(p.returncode, 130, out + err)
        self.assertEqual(self.ws.read("b.txt"), "hello 1 2 3\n")
        with open(os.path.join(there, "saved.txt")) as f:
            self.assertEqual(f.read(), "saved\n", "kiln ended after the save there")

    def test_progress_written_on_a_host_shows_here(self):
        # KILN_PROGRESS is a file there: its "done/total" lines are read back every few
        # seconds and show as a local task's do (a task in its own folder too, and one
        # whose command changes directory: the path is a full one there)
        self.ws.write("kiln.lua", 'task { name = "train", host = "v800", run = "mkdir -p w && cd w && for i in $(seq 14); do '
                      'echo $i/14 >> $KILN_PROGRESS; sleep 0.5; done" }\n'
                      'task { name = "eval", host = "v801", cwd = "runs/{name}", run = "for i in $(seq 14); do '
                      'echo $((i * 10))/140 >> $KILN_PROGRESS; sleep 0.5; done" }\n')
        run = self.ws.spawn("run", "--executor", "ssh", "--hosts", "hosts.lua")
        seen = {}

        def reading(task, total):  # the last "done/total" line of the attempt's local copy
            try:
                text = self.ws.read(".kiln/logs/%s@1.log.progress" % task)
            except OSError:
                return None
            found = re.findall(r"^(\d+)/%d$" % total, text, re.M)
            if found:
                seen.setdefault(task, []).append(int(found[-1]))
            return found
        try:
            self.assertTrue(wait_for(lambda: reading("train", 14) and reading("eval", 140), timeout=30),
                            "both read back while they run")
            self.assertTrue(wait_for(lambda: reading("train", 14) and seen["train"][-1] > seen["train"][0], timeout=10),
                            "and read again: %s" % seen)
        finally:
            out, err = run.communicate(timeout=60)
        self.assertEqual(run.returncode, 0, out + err)
        self.assertRegex(out, r"(?m)^progress +(train \d+/14|eval \d+/140)", out)
        self.assertEqual([f for f in os.listdir(self.ws.path(".kiln/logs")) if "progress" in f], [],
                         "the local copies go with their attempts")

    def test_a_full_workdir_on_a_host_is_said_in_words(self):
        import subprocess
        wd = self.lab.hosts["v802"].workdir()
        os.makedirs(wd, exist_ok=True)
        if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", wd], capture_output=True).returncode:
            self.skipTest("mounting a tmpfs is not allowed here (needs root outside a container)")
        try:
            subprocess.run(["dd", "if=/dev/zero", "of=" + os.path.join(wd, "fill"), "bs=4k", "count=1000"],
                           capture_output=True)
            self.ws.write("in.txt", "data\n")
            # the third: rsync's own complaint lost (its receiver died of the full disk before
            # it said so, as on a loaded machine): kiln asks the workdir itself
            self.ws.write("bin/rsync", '#!/bin/sh\nexec /usr/bin/rsync "$@" 2>/dev/null\n')
            os.chmod(self.ws.path("bin/rsync"), 0o755)
            silent = {"PATH": self.ws.path("bin") + ":" + os.environ["PATH"]}
            for body, env in [('outputs = {"o.txt"}, run = "echo hi > o.txt"', None),  # the job's own files
                              ('inputs = {"in.txt"}, outputs = {"o.txt"}, run = "cat in.txt > o.txt"', None),  # a copy
                              ('inputs = {"in.txt"}, outputs = {"o.txt"}, run = "cat in.txt > o.txt"', silent)]:
                self.ws.write("kiln.lua", 'task { name = "t", host = "v802", %s }\n' % body)
                r = self.kiln("--host-wait", "3s", env=env)
                self.assertEqual(r.rc, 1, r)
                self.assertIn("v802: cannot", r.out)
                self.assertIn("its workdir %s is full (No space left on device)" % wd, r.out)
                self.assertNotIn("lost with host", r.out)
                self.assertNotIn("missing-input", r.out)
                self.assertEqual(r.out.count("FAILED   [1/1] t:"), 1, "one attempt, said once")
        finally:
            subprocess.run(["umount", "-l", wd])

    def test_recipe_mistakes_about_hosts_say_where(self):
        self.ws.write("kiln.lua", 'task { name = "a", host = "v999", run = "true" }\n')
        r = self.kiln()
        self.assertEqual(r.rc, 2, r)
        self.assertIn('kiln.lua:1: task "a" names host "v999"', r.err)
        self.ws.write("bad.lua", 'hosts { v800 = { adress = "x" } }\n')
        self.ws.write("kiln.lua", 'task { name = "a", run = "true" }\n')
        r = self.ws.kiln("run", "--executor", "ssh", "--hosts", "bad.lua")
        self.assertEqual(r.rc, 2, r)
        self.assertRegex(r.err, r"bad.lua:1: .*adress")
        self.ws.write("kiln.lua", 'task { name = "a", gpus = 4, run = "true" }\n')
        r = self.kiln()
        self.assertEqual(r.rc, 1, r)
        self.assertIn("no host can take it", r.out)

    def test_kiln_kernels_found_behind_wrappers_and_a_prelude_runs_first(self):
        # the tools are on every job's PATH there, whatever word names them; the prelude
        # (the block's, and one host's own) runs before every job on its host
        lua = self.lab.hosts_lua({"v802": 'prelude = "source ./env802.sh"'})
        lua = lua.replace("hosts {", 'hosts {\n  prelude = "export LAB_ENV=default",', 1)
        self.ws.write("hosts.lua", lua)
        for h in self.lab.hosts.values():
            os.makedirs(h.workdir(), exist_ok=True)
            with open(os.path.join(h.workdir(), "env802.sh"), "w") as f:
                f.write("LAB_ENV=training; export LAB_ENV\n")
        self.ws.write("kiln.lua", """
local synth = {"kiln-kernels", "synth", "--classes", "2", "--dim", "4", "--samples", "4", "--seed", "1", "--quality", "0.9", "--out"}
local function wrapped(words, out) local w = {} for _, x in ipairs(words) do w[#w + 1] = x end
  for _, x in ipairs(synth) do w[#w + 1] = x end w[#w + 1] = out return w end
task { name = "k/env", host = "v800", outputs = {"s1"}, run = wrapped({"env", "OMP_NUM_THREADS=1"}, "s1") }
task { name = "k/nice", host = "v801", outputs = {"s2"}, run = wrapped({"nice", "-n", "5"}, "s2") }
task { name = "k/sh", host = "v802", outputs = {"s3"}, run = {"sh", "-c", table.concat(synth, " ") .. " s3"} }
task { name = "k/envs", hosts = {"v800", "v802"}, outputs = {"envs.txt"}, run = "echo $LAB_ENV > {out}" }
""")
        r = self.kiln()
        self.assertEqual(r.rc, 0, r)
        for name in ("s1", "s2", "s3"):
            self.assertTrue(os.listdir(self.ws.path(name)), name)
        self.assertIn(self.ws.read("envs.txt").strip(), ("default", "training"))
        log = self.ws.read(".kiln/logs/k/envs@1.log")
        host = re.search(r"on host (v80\d)", log).group(1)
        self.assertEqual(self.ws.read("envs.txt").strip(), "training" if host == "v802" else "default")
        self.assertIn("runs as ( eval COMMAND ) in the job script's sh", log, "the header says how a shell string ran there")
        self.assertNotIn("( eval", self.ws.read(".kiln/logs/k/sh@1.log"), "an argv task ran as its words")

    def test_hosts_file_is_named_from_where_kiln_started(self):
        self.ws.write("kiln.lua", 'task { name = "c/a", outputs = {"a.txt"}, run = "echo a > {out}" }\n')
        os.makedirs(self.ws.path("sub"))
        shutil.copy(self.ws.path("kiln.lua"), self.ws.path("sub/kiln.lua"))
        r = self.ws.kiln("-C", "sub", "run", "--executor", "ssh", "--hosts", "hosts.lua")
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(self.ws.read("sub/a.txt"), "a\n")
        r = self.ws.kiln("run", "--executor", "ssh", "--hosts", "nowhere.lua")
        self.assertEqual(r.rc, 2, r)
        self.assertIn("--hosts nowhere.lua: No such file or directory (a Lua file with a hosts{} block", r.err)


if __name__ == "__main__":
    main()
