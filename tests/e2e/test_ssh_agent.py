"""test_ssh_agent.py — the ssh executor's per-host agent (runner/exec/ssh/ssh_agent.c) over
real sshd servers (tests/e2e/sshhosts.py; needs root and openssh-server): short tasks start
and end through one connection per host, not one ssh command each; their logs, statuses and
outputs come back whole; a long task is handed to a follow command of its own, so its log is
live; an agent whose connection dies loses nothing (its jobs are followed one by one, none
runs twice)."""
import os
import signal
import time
import unittest

import sshhosts
from kilntest import KilnTestCase, main, wait_for

SKIP = sshhosts.skip_reason()


def slurp(path, mode="r"):
    with open(path, mode) as f:
        return f.read()


@unittest.skipIf(SKIP, SKIP or "")
class SshAgent(sshhosts.LabCase, KilnTestCase):
    HOSTS = {"v800": [], "v801": []}

    def setUp(self):
        super().setUp()
        self.ws.write("hosts.lua", self.lab.hosts_lua({n: "jobs = 6, cpus = 6" for n in self.lab.hosts}))
        # every ssh kiln starts goes through this wrapper, which counts it
        for tool in ("ssh", "rsync"):
            self.ws.write("bin/" + tool, "#!/bin/sh\necho call >> %s\nexec /usr/bin/%s \"$@\"\n"
                          % (self.ws.path(tool + "-calls.txt"), tool))
            os.chmod(self.ws.path("bin/" + tool), 0o755)
        self.env = {"PATH": self.ws.path("bin") + ":" + os.environ["PATH"]}

    def kiln(self, *args, **kw):
        return self.ws.kiln("run", "-k", "--executor", "ssh", "--hosts", "hosts.lua", *args, env=self.env, **kw)

    def calls(self, tool="ssh"):
        path = self.ws.path(tool + "-calls.txt")
        return len(slurp(path).splitlines()) if os.path.exists(path) else 0

    def starts(self):
        out = []
        for h in self.lab.hosts.values():
            p = os.path.join(h.home, "trace.txt")
            if os.path.exists(p):
                out += [line.split()[1] for line in slurp(p).splitlines() if line.startswith("start ")]
        return out

    def test_short_tasks_start_and_end_through_one_connection_per_host(self):
        self.ws.write("kiln.lua", """
for i = 1, 40 do
  task { name = "t" .. i, outputs = {"out/" .. i .. ".txt", "deep/" .. i .. "/a/b.txt"},
         run = "echo start $KILN_TASK >> $HOME/trace.txt; echo hello " .. i .. "; echo 'to stderr' >&2; "
               .. "mkdir -p deep/" .. i .. "/a && echo " .. i .. " > deep/" .. i .. "/a/b.txt; "
               .. "printf 'v%d\\\\n' " .. i .. " > out/" .. i .. ".txt" .. (i == 7 and "; exit 3" or "") }
end
""")
        r = self.kiln()
        self.assertEqual(r.rc, 1, r)
        self.assertIn("FAILED t7: exit status 3", r.out)
        self.assertIn("39 ran", r.out)
        calls = self.calls()
        self.assertLess(calls, 20, "40 attempts over 2 hosts, no ssh command of their own: %d" % calls)
        for i in range(1, 41):
            if i == 7:
                continue
            self.assertEqual(self.ws.read("out/%d.txt" % i), "v%d\n" % i)
            self.assertEqual(self.ws.read("deep/%d/a/b.txt" % i), "%d\n" % i)
            log = self.ws.read(".kiln/logs/t%d@1.log" % i)
            self.assertIn("\nhello %d\nto stderr\n" % i, log, "the whole log, once")
            self.assertEqual(log.splitlines().count("hello %d" % i), 1, log)
        self.assertIn("exit status 3", self.ws.read(".kiln/logs/t7@1.log"))
        self.assertIn("hello 7", self.ws.read(".kiln/logs/t7@1.log"))
        self.assertEqual(sorted(self.starts()), sorted("t%d" % i for i in range(1, 41)))
        # a no-op starts nothing; the failed one runs again: per host a check of its connection
        # and one first contact (with the sweep of jobs a killed kiln left), then the agent and
        # the clean-up on the host it ran on; kiln's tools, there since the first run, are not
        # copied again
        before, rsyncs = self.calls(), self.calls("rsync")
        self.assertGreater(rsyncs, 0, "the first run copied kiln's tools")
        r = self.kiln()
        self.assertIn("39 up to date", r.out)
        self.assertEqual(len(self.starts()), 41)
        self.assertLessEqual(self.calls() - before, 6, "2 x (check, first contact) + agent + clean-up")
        self.assertEqual(self.calls("rsync"), rsyncs, "kiln's tools are there already")

    def test_a_chain_on_one_host_copies_nothing_back_to_it(self):
        # each step reads the one before: made there, it is there; no copy, no command of its
        # own. A task on the other host gets its input copied, as it is here
        self.ws.write("kiln.lua", """
task { name = "s1", host = "v800", outputs = {"c/1.txt"}, run = "echo 1 > c/1.txt" }
for i = 2, 10 do
  task { name = "s" .. i, host = "v800", inputs = {"c/" .. (i - 1) .. ".txt"}, outputs = {"c/" .. i .. ".txt"},
         run = "cat c/" .. (i - 1) .. ".txt > c/" .. i .. ".txt; echo " .. i .. " >> c/" .. i .. ".txt" }
end
task { name = "far", host = "v801", inputs = {"c/10.txt"}, outputs = {"far.txt"}, run = "wc -l < c/10.txt > far.txt" }
""")
        r = self.kiln()
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(self.ws.read("c/10.txt"), "".join("%d\n" % i for i in range(1, 11)))
        for i in range(2, 11):
            self.assertNotIn("# kiln: copied", self.ws.read(".kiln/logs/s%d@1.log" % i))
        self.assertIn("# kiln: copied c/10.txt to v801", self.ws.read(".kiln/logs/far@1.log"))
        self.assertEqual(self.ws.read("far.txt"), "10\n")
        self.assertLessEqual(self.calls("rsync"), 3, "kiln's tools to each host, c/10.txt to v801")
        self.assertLess(self.calls(), 20, "per host its checks, agent and clean-up; the copy: not 2 per step")

    def test_a_long_task_streams_its_log(self):
        self.ws.write("kiln.lua", 'task { name = "long", outputs = {"long.txt"}, run = "echo start $KILN_TASK >> '
                      '$HOME/trace.txt; echo first; sleep 10; echo second; echo done > long.txt" }\n')
        p = self.ws.spawn("run", "--executor", "ssh", "--hosts", "hosts.lua", env=self.env)
        # past a few seconds the job is followed by a command of its own: its first line is here while it runs
        log = self.ws.path(".kiln/logs/long@1.log")
        self.assertTrue(wait_for(lambda: os.path.exists(log) and "first" in slurp(log).splitlines(), timeout=15))
        self.assertNotIn("second", slurp(log).splitlines())
        self.assertIsNone(p.poll())
        out, err = p.communicate(timeout=60)
        self.assertEqual(p.returncode, 0, out + err)
        lines = self.ws.read(".kiln/logs/long@1.log").splitlines()
        self.assertEqual((lines.count("first"), lines.count("second")), (1, 1))
        self.assertEqual(self.ws.read("long.txt"), "done\n")
        self.assertEqual(self.starts(), ["long"])

    def test_a_long_task_ends_with_its_job_on_a_host_whose_init_never_reaps(self):
        # a container whose PID 1 is no init: a job left to it stays a zombie after its end,
        # its pid alive to kill -0, and the follow command of a long job waited on it for ever
        host = self.lab.hosts["v800"]

        def restore():  # the next test's reset starts it again
            host.stop()
            host.reaps = True
        host.stop()
        host.reaps = False
        host.start()
        self.addCleanup(restore)
        self.ws.write("kiln.lua", 'task { name = "long", host = "v800", outputs = {"long.txt"}, '
                      'run = "echo first; sleep 4; echo done > long.txt" }\n')
        r = self.kiln(timeout=60)
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(self.ws.read("long.txt"), "done\n")
        self.assertEqual(self.ws.read(".kiln/logs/long@1.log").splitlines().count("first"), 1)

    def test_a_dead_agent_loses_nothing(self):
        self.ws.write("kiln.lua", """
for i = 1, 8 do
  task { name = "s" .. i, outputs = {"s/" .. i .. ".txt"},
         run = "echo start $KILN_TASK >> $HOME/trace.txt; echo begun; sleep 4; echo " .. i .. " > s/" .. i .. ".txt" }
end
""")
        p = self.ws.spawn("run", "--executor", "ssh", "--hosts", "hosts.lua", env=self.env)
        self.assertTrue(wait_for(lambda: len(self.starts()) == 8, timeout=30))
        # the agents' connections die while the jobs run (their local ssh is killed)
        agents = [pid for pid in os.listdir("/proc") if pid.isdigit() and self._is_agent(pid, p.pid)]
        self.assertEqual(len(agents), 2, "one agent per host")
        for pid in agents:
            os.kill(int(pid), signal.SIGKILL)
        out, err = p.communicate(timeout=120)
        self.assertEqual(p.returncode, 0, out + err)
        self.assertEqual(sorted(self.starts()), ["s%d" % i for i in range(1, 9)], "nothing ran twice")
        self.assertNotIn("lost", out)
        for i in range(1, 9):
            self.assertEqual(self.ws.read("s/%d.txt" % i), "%d\n" % i)
            text = self.ws.read(".kiln/logs/s%d@1.log" % i)
            self.assertEqual(text.splitlines().count("begun"), 1, text)
            self.assertIn("dropped; following the job there again", text, "followed on its own")
        self.assertTrue(wait_for(lambda: not self.lab.jobs_running(), timeout=10), "nothing left running there")

    def test_an_agent_shell_killed_there_leaves_nothing_running(self):
        # the agent's shell on each host dies at once (as a dropped connection's end kills it,
        # before it can tell its reporter to end): its jobs run on and are reported, and the
        # reporter ends with them, not orphaned there for good
        self.ws.write("kiln.lua", """
for i = 1, 4 do
  task { name = "s" .. i, outputs = {"s/" .. i .. ".txt"},
         run = "echo start $KILN_TASK >> $HOME/trace.txt; sleep 4; echo " .. i .. " > s/" .. i .. ".txt" }
end
""")
        p = self.ws.spawn("run", "--executor", "ssh", "--hosts", "hosts.lua", env=self.env)
        self.assertTrue(wait_for(lambda: len(self.starts()) == 4, timeout=30))
        shells = []
        for h in self.lab.hosts.values():
            agents = os.path.join(h.workdir(), ".kiln/agents")
            for a in os.listdir(agents) if os.path.isdir(agents) else []:
                if os.path.exists(os.path.join(agents, a, "pid")):
                    shells.append(int(slurp(os.path.join(agents, a, "pid"))))
        self.assertEqual(len(shells), 2, "one agent per host")
        for pid in shells:
            os.kill(pid, signal.SIGKILL)
        out, err = p.communicate(timeout=120)
        self.assertEqual(p.returncode, 0, out + err)
        self.assertEqual(sorted(self.starts()), ["s%d" % i for i in range(1, 5)], "nothing ran twice")
        for i in range(1, 5):
            self.assertEqual(self.ws.read("s/%d.txt" % i), "%d\n" % i)
        self.assertTrue(wait_for(lambda: not self.lab.jobs_running(), timeout=10),
                        "nothing left running there: %s" % self.lab.jobs_running())

    def test_a_start_the_agent_is_slow_to_run_is_waited_for(self):
        # a loaded host: the agent takes longer to get to a batch than a short job is given
        # before its own follow command takes it over (the batch stalls once its job folders are made)
        h = self.lab.hosts["v800"]
        with open(os.path.join(h.home, "slow-once"), "w"):
            pass
        self._host_tool(h, "mkdir", '#!/bin/sh\n/bin/mkdir "$@" || exit\n'
                        'case "$*" in *.kiln/jobs/*) rm "$HOME/slow-once" 2>/dev/null && sleep 6;; esac; true\n')
        self._one_host()
        self.ws.write("kiln.lua", 'task { name = "t", outputs = {"t.txt"}, run = "echo start $KILN_TASK >> '
                      '$HOME/trace.txt; echo ran; echo done > t.txt" }\n')
        r = self.kiln()
        self.assertEqual(r.rc, 0, r)
        self.assertFalse(os.path.exists(os.path.join(h.home, "slow-once")), "the batch was slow")
        self.assertEqual(self.starts(), ["t"])
        self.assertNotIn("lost", r.out, "the start on its way is not taken for a lost job")
        self.assertFalse(os.path.exists(self.ws.path(".kiln/logs/t@2.log")), "one attempt")
        self.assertEqual(self.ws.read("t.txt"), "done\n")
        self.assertEqual(self.ws.read(".kiln/logs/t@1.log").splitlines().count("ran"), 1)

    def test_a_start_slow_after_its_claim_runs_once(self):
        # the start has claimed its job but takes longer than a follow command waits for a pid
        # (a stalled home file system, a loaded host) to become the job: the follower neither
        # takes it for lost (a retry would run beside it) nor lets it start late
        h = self._slow_setsid_once(8)
        self.ws.write("kiln.lua", 'task { name = "t", outputs = {"t.txt"}, retries = 1, run = "echo start $KILN_TASK >> '
                      '$HOME/trace.txt; echo ran; echo done > t.txt" }\n')
        r = self.kiln()
        self.assertEqual(r.rc, 0, r)
        self.assertFalse(os.path.exists(os.path.join(h.home, "slow-once")), "the start was slow")
        self.assertNotIn("lost", r.out)
        time.sleep(2)  # a start let go late would be there by now
        self.assertEqual(self.starts(), ["t"], r.out)
        self.assertFalse(os.path.exists(self.ws.path(".kiln/logs/t@2.log")), "one attempt")
        self.assertEqual(self.ws.read("t.txt"), "done\n")
        self.assertEqual(self.ws.read(".kiln/logs/t@1.log").splitlines().count("ran"), 1)

    def test_a_start_stalled_before_it_begins_is_stopped_and_runs_again_once(self):
        # the start stalls after its claim, before the job (the batch made the job's folder but
        # not its output's, and the start's own mkdir hangs): stopped before it begins, the
        # attempt runs again, and the stalled start, going on later, starts nothing
        h = self.lab.hosts["v800"]
        self._stall_the_starts_mkdir(h)
        self.ws.write("kiln.lua", 'task { name = "t", outputs = {"o/t.txt"}, run = "echo start $KILN_TASK >> '
                      '$HOME/trace.txt; echo ran; echo done > o/t.txt" }\n')
        r = self.kiln()
        self.assertEqual(r.rc, 0, r)
        self.assertGreaterEqual(len(slurp(os.path.join(h.home, "mkdirs")).splitlines()), 2, "the start's mkdir stalled")
        self.assertIn("t: its start on host v800 was too slow to begin and was stopped before it did; it runs again\n",
                      r.out)
        time.sleep(8)  # the stalled start goes on
        self.assertEqual(self.starts(), ["t"], r.out)
        self.assertEqual(self.ws.read("o/t.txt"), "done\n")
        self.assertIn("was too slow to begin and was stopped before it did", self.ws.read(".kiln/logs/t@1.log"))
        self.assertEqual(self.ws.read(".kiln/logs/t@2.log").splitlines().count("ran"), 1)
        # the stopped start's folder holds up no later run's first contact
        sleeps = self._count_sleeps(h)
        self.ws.write("kiln.lua", 'task { name = "u", outputs = {"u.txt"}, run = "echo done > u.txt" }\n')
        r = self.kiln()
        self.assertEqual(r.rc, 0, r)
        self.assertFalse(os.path.exists(sleeps) and slurp(sleeps), "the host's first contact waited on a stop")

    def test_ctrl_c_before_a_stalled_start_begins_stops_it_there(self):
        # Ctrl-C while the start stalls before the job (shorter than a job is left to its
        # agent): it is stopped before it begins, and said so (stopped, not lost with its host)
        h = self.lab.hosts["v800"]
        self._stall_the_starts_mkdir(h, 2)
        self.ws.write("kiln.lua", 'task { name = "t", outputs = {"o/t.txt"}, run = "echo start $KILN_TASK >> '
                      '$HOME/trace.txt; sleep 30; echo done > o/t.txt" }\n')
        p = self.ws.spawn("run", "--executor", "ssh", "--hosts", "hosts.lua", env=self.env)
        mkdirs = os.path.join(h.home, "mkdirs")
        self.assertTrue(wait_for(lambda: os.path.exists(mkdirs) and len(slurp(mkdirs).splitlines()) >= 2, timeout=20))
        time.sleep(0.5)
        out = self.ctrl_c(p)
        self.assertIn("host v800: 0 done, 0 failed, 1 stopped", out)
        self.assertNotIn("lost", out)
        time.sleep(2)
        self.assertEqual(self.starts(), [])
        self.assertFalse(self.lab.jobs_running())

    def test_ctrl_c_during_a_slow_start_leaves_nothing_running(self):
        # Ctrl-C while a start is on its way to becoming the job: the job does not run on
        # there after kiln has gone (no GPU held by nobody)
        h = self._slow_setsid_once(11)
        self.ws.write("kiln.lua", 'task { name = "t", outputs = {"t.txt"}, run = "echo start $KILN_TASK >> '
                      '$HOME/trace.txt; sleep 30; echo done > t.txt" }\n')
        p = self.ws.spawn("run", "--executor", "ssh", "--hosts", "hosts.lua", env=self.env)
        self.assertTrue(wait_for(lambda: not os.path.exists(os.path.join(h.home, "slow-once")), timeout=20))
        time.sleep(1)
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=60)
        self.assertEqual(p.returncode, 130, out + err)
        time.sleep(3)  # a start let go late would be there by now
        self.assertFalse(self.lab.jobs_running(), "nothing runs on there: " + out + err)
        self.assertFalse(os.path.exists(os.path.join(h.workdir(), "t.txt")))

    def test_ctrl_c_during_a_slow_start_without_the_agent_stops_the_job(self):
        # the same, each start a command of its own: its stop reads a pid whose group is
        # there (before setsid had made it, a stop found none and the job ran to its end)
        h = self._slow_setsid_once(4)
        self.ws.write("kiln.lua", 'task { name = "t", outputs = {"t.txt"}, run = "echo start $KILN_TASK >> '
                      '$HOME/trace.txt; sleep 20; echo done > t.txt" }\n')
        p = self.ws.spawn("run", "--executor", "ssh", "--hosts", "hosts.lua", env=dict(self.env, KILN_SSH_AGENT="0"))
        self.assertTrue(wait_for(lambda: not os.path.exists(os.path.join(h.home, "slow-once")), timeout=20))
        time.sleep(1)
        t0 = time.time()
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=60)
        self.assertEqual(p.returncode, 130, out + err)
        self.assertLess(time.time() - t0, 15, "stopped, not waited for to its end")
        self.assertIn("1 stopped", out)
        time.sleep(1)
        self.assertFalse(self.lab.jobs_running(), "nothing runs on there (no job, no stop waiting): " + out + err)
        self.assertFalse(os.path.exists(os.path.join(h.workdir(), "t.txt")))

    def _host_tool(self, h, name, text):
        """An executable named name first on host h's PATH, for this test only."""
        path = os.path.join(h.bin, name)
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, 0o755)
        self.addCleanup(os.remove, path)

    def _stall_the_starts_mkdir(self, h, seconds=8):
        """v800 alone, where the first batch makes its job's folder but not the folder o of
        its output, so the start makes it itself, and that mkdir stalls first."""
        if os.path.exists(os.path.join(h.home, "mkdirs")):
            os.remove(os.path.join(h.home, "mkdirs"))
        self._host_tool(h, "mkdir", '#!/bin/sh\ncase "$*" in *.kiln/jobs/*" o") ;; *) exec /bin/mkdir "$@";; esac\n'
                        'echo . >> "$HOME/mkdirs"\n'
                        'case "$(wc -l < "$HOME/mkdirs")" in\n'
                        '  1) for d in "$@"; do [ "$d" = o ] || /bin/mkdir "$d"; done;;\n'
                        '  2) sleep %d; exec /bin/mkdir "$@";;\n'
                        '  *) exec /bin/mkdir "$@";;\nesac\n' % seconds)
        self._one_host()

    def _one_host(self):
        self.ws.write("hosts.lua", "\n".join(line for line in self.lab.hosts_lua().splitlines() if "v801" not in line))

    def _slow_setsid_once(self, seconds):
        """v800 alone, where the first start to become its job stalls this long first."""
        h = self.lab.hosts["v800"]
        with open(os.path.join(h.home, "slow-once"), "w"):
            pass
        self._host_tool(h, "setsid", '#!/bin/sh\nrm "$HOME/slow-once" 2>/dev/null && sleep %d\nexec /usr/bin/setsid "$@"\n'
                        % seconds)
        self._one_host()
        return h

    def _count_sleeps(self, h):
        """Every sleep host h's scripts run from now on, a line each in the file returned (a
        wait for a pid polls with them)."""
        path = os.path.join(h.home, "sleeps.txt")
        if os.path.exists(path):
            os.remove(path)
        self._host_tool(h, "sleep", '#!/bin/sh\necho "$*" >> "$HOME/sleeps.txt"\nexec /bin/sleep "$@"\n')
        return path

    def _slow_agent_ssh(self, seconds):
        """The agent's ssh takes this long to start (a loaded machine, a slow login)."""
        self.ws.write("bin/ssh", '#!/bin/sh\ncase "$*" in *KILN-ENDS*) sleep %d;; esac\nexec /usr/bin/ssh "$@"\n' % seconds)
        os.chmod(self.ws.path("bin/ssh"), 0o755)
        self._one_host()
        self.ws.write("kiln.lua", 'task { name = "t", outputs = {"t.txt"}, run = "echo start $KILN_TASK >> '
                      '$HOME/trace.txt; echo ran; echo done > t.txt" }\n')

    def test_an_agent_slow_to_come_up_loses_nothing(self):
        # its job waits for it past the time a short job is given: no follow command asks
        # after a start that is not there yet
        self._slow_agent_ssh(5)
        r = self.kiln()
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(self.starts(), ["t"])
        self.assertNotIn("lost", r.out)
        self.assertFalse(os.path.exists(self.ws.path(".kiln/logs/t@2.log")), "one attempt")
        self.assertEqual(self.ws.read("t.txt"), "done\n")

    def test_a_start_a_killed_kiln_never_sent_there_runs_again_at_once(self):
        self._slow_agent_ssh(60)
        p = self.ws.spawn("run", "--executor", "ssh", "--hosts", "hosts.lua", env=self.env)
        # the attempt is recorded and its start waits in the agent's pipe; kiln and the agent's
        # ssh are killed before it gets there
        self.assertTrue(wait_for(lambda: os.path.exists(self.ws.path(".kiln/logs/t@1.log")), timeout=20))
        time.sleep(4)
        agents = [int(pid) for pid in os.listdir("/proc") if pid.isdigit() and self._is_agent(pid, p.pid, "/bin/sh")]
        self.assertEqual(len(agents), 1, "the agent's ssh, still starting")
        p.kill()
        p.communicate()
        os.killpg(agents[0], signal.SIGKILL)
        self.assertEqual(self.starts(), [])
        self._slow_agent_ssh(0)
        r = self.kiln()
        self.assertEqual(r.rc, 0, r)
        self.assertIn("t: its start never got to host v800 (kiln was stopped first); it runs again\n", r.out)
        self.assertNotIn("lost", r.out, "no job was lost there")
        self.assertEqual(self.starts(), ["t"])
        self.assertEqual(self.ws.read("t.txt"), "done\n")

    def test_a_start_stopped_on_its_way_holds_up_no_later_run_and_goes_in_time(self):
        # a killed kiln's start that never got there: the next run claims its folder (so a
        # late start starts nothing), and that claim is a stop no later run waits on
        self.test_a_start_a_killed_kiln_never_sent_there_runs_again_at_once()
        h = self.lab.hosts["v800"]
        jobs = os.path.join(h.workdir(), ".kiln/jobs")
        stopped = [d for d in os.listdir(jobs) if os.path.exists(os.path.join(jobs, d, "claim"))
                   and not os.path.exists(os.path.join(jobs, d, "pid"))]
        self.assertEqual(len(stopped), 1, os.listdir(jobs))
        sleeps = self._count_sleeps(h)
        self.ws.write("kiln.lua", 'task { name = "u", outputs = {"u.txt"}, run = "echo done > u.txt" }\n')
        r = self.kiln()
        self.assertEqual(r.rc, 0, r)
        self.assertFalse(os.path.exists(sleeps) and slurp(sleeps), "the host's first contact waited on a stop")
        self.assertTrue(os.path.isdir(os.path.join(jobs, stopped[0])), "kept while a late start could come")
        # an hour on, no start is on its way any more: the folder goes
        os.utime(os.path.join(jobs, stopped[0], "claim"), (time.time() - 7200, time.time() - 7200))
        self.ws.write("kiln.lua", 'task { name = "v", outputs = {"v.txt"}, run = "echo done > v.txt" }\n')
        r = self.kiln()
        self.assertEqual(r.rc, 0, r)
        self.assertFalse(os.path.exists(os.path.join(jobs, stopped[0])))

    def test_without_ssh_on_path_the_run_says_what_to_install(self):
        self.ws.write("kiln.lua", 'task { name = "t", outputs = {"t.txt"}, run = "echo > t.txt" }\n')
        os.makedirs(self.ws.path("nothing"), exist_ok=True)
        r = self.ws.kiln("run", "--executor", "ssh", "--hosts", "hosts.lua", env={"PATH": self.ws.path("nothing")})
        self.assertNotEqual(r.rc, 0, r)
        self.assertIn("needs ssh and rsync on PATH (Debian: openssh-client rsync)", r.out + r.err)

    @staticmethod
    def _is_agent(pid, kiln_pid, program="/usr/bin/ssh"):
        """Whether pid is a local ssh that kiln started for an agent (its script reads KILN-ENDS)
        (program: what runs it now, /bin/sh while a wrapper holds it back)."""
        try:
            cmd = slurp("/proc/%s/cmdline" % pid, "rb")
            ppid = int(slurp("/proc/%s/stat" % pid).rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError):
            return False
        return ppid == kiln_pid and b"KILN-ENDS" in cmd and program.encode() in cmd.split(b"\0")[0]


if __name__ == "__main__":
    main()
