"""End-to-end: jobs a killed kiln left on ssh hosts that did not answer (sshhosts.py). One it
had recorded lost with its host is waited for and taken up (its log's rest fetched when it
is not; not waited for when the recipe changed; taken back when it finished while cut off).
Of two jobs a killed kiln left for one task (the lost one, the retry it started elsewhere),
one runs on (the one that has run longer, or the one whose host answers) and the other is
stopped, its log kept; a lost job whose task a later attempt finished is stopped as soon as
its host answers; two kills in a row forget none of them."""
import os
import unittest

from kilntest import main, wait_for
import sshhosts
from sshwork import HostWork

SKIP = sshhosts.skip_reason()
gpus = sshhosts.gpus


@unittest.skipIf(SKIP, SKIP or "")
class SshLost(HostWork):
    def eval_recorded_lost_then_kiln_killed(self, *args, back_after=1.5, edit=None, steps=20):
        """Runs eval_without_checkpoint's task; after 8 steps cuts its host off the network,
        waits until kiln records the attempt lost, kills kiln, runs it again (with args; after
        edit(), when given) and lets the host answer back_after seconds later: (the host, that
        kiln's output)."""
        self.eval_without_checkpoint(steps)
        p = self.ws.spawn("run", "--executor", "ssh", "--hosts", "hosts.lua")
        try:
            self.assertTrue(wait_for(lambda: len(self.ledger_of("v800") + self.ledger_of("v801")) >= 8, timeout=60))
            home = "v800" if self.ledger_of("v800") else "v801"
            self.lab.hosts[home].partition()
            self.assertTrue(wait_for(lambda: self.ws.query("SELECT failure FROM attempts WHERE task = 'eval' "
                                                           "ORDER BY id DESC LIMIT 1") == [("host-lost",)], timeout=30))
        finally:
            p.kill()
            p.communicate()
        if edit:
            edit()
        run = self.ws.spawn("run", "--executor", "ssh", "--hosts", "hosts.lua", *args)
        out, err = self.host_back_after(run, home, back_after)
        self.assertEqual(run.returncode, 0, out + err)
        return home, out + err

    def test_a_job_recorded_lost_by_a_killed_kiln_is_waited_for_and_taken_up(self):
        # the job's host drops off the network, kiln records the attempt lost, and kiln is
        # killed while the host is still cut off: the next kiln waits for that host as the
        # first would have (as long as the job had run) and takes up the job that ran on
        status = []
        home, out = self.eval_recorded_lost_then_kiln_killed(
            edit=lambda: status.append(self.ws.kiln("status", "--hosts", "hosts.lua").out))
        self.assertRegex(status[0], r"lost      eval: attempt 1 \(job [^)]+\) lost with host v80[01] after [0-9.]+s, before a "
                         r"kill stopped that kiln; the job may run on there: `kiln run` waits for v80[01] ")
        self.assert_eval_ran_once_on(home)
        self.assertIn("eval: attached to ssh job", out)
        self.assertIn("host %s: 1 done, 0 failed, 1 lost with it before the last kiln was killed and taken up (it ran "
                      "on there)" % home, out)
        # the dead kiln's ssh followers are stopped in silence: no task of this machine was
        self.assertNotIn("task process group", out)
        log = self.last_log("eval")
        self.assertIn("re-attached on host %s to the job of attempt 1" % home, log)
        self.assertIn("step 20\n", log)

    def test_a_job_recorded_lost_by_a_killed_kiln_whose_recipe_changed_is_not_waited_for(self):
        # its command changed meanwhile: the job there is no longer the task's, so the next
        # kiln runs the task at once on the host that answers, and stops that job as soon as
        # its host answers again (not at the run's end: it may hold the host's GPUs for hours)
        status = []

        def edit():
            self.ws.write("kiln.lua", self.ws.read("kiln.lua").replace("sleep 0.3", "sleep 0.2"))
            status.append(self.ws.kiln("status", "--hosts", "hosts.lua").out)
        home, out = self.eval_recorded_lost_then_kiln_killed(back_after=3, steps=60, edit=edit)
        self.assertIn("but the task changed since, so `kiln run` runs it afresh and stops that job once %s answers" % home,
                      status[0])
        other = "v801" if home == "v800" else "v800"
        self.assertEqual(self.ws.read("e.txt"), other + "\n")
        self.assertNotIn("eval waits for it", out)
        self.assertNotIn("attached to ssh job", out)
        self.assertTrue(wait_for(lambda: not self.lab.jobs_running(), timeout=10), "nothing left running there")
        self.assertLess(len(self.ledger_of(home)), 45, "stopped once its host answered: %s" % self.ledger_of(home))
        self.assertEqual(len(self.ledger_of(other)), 60)

    def test_a_job_recorded_lost_by_a_killed_kiln_and_not_taken_up_keeps_its_whole_log(self):
        # the same, but the host answers only after the wait (--host-wait 1s): the task runs
        # elsewhere, the job there is stopped, and what it wrote after the drop comes back
        # into the lost attempt's log, no line twice
        home, out = self.eval_recorded_lost_then_kiln_killed("--host-wait", "1s", back_after=3, steps=40)
        other = "v801" if home == "v800" else "v800"
        self.assertEqual(self.ws.read("e.txt"), other + "\n")
        log = self.first_log_with("eval", "step 1\n")
        self.assertIn("to the job's end there (no later attempt took it up)", log, out)
        steps = [int(line.split()[1]) for line in log.splitlines() if line.startswith("step ")]
        self.assertEqual(steps, list(range(1, len(steps) + 1)), log)
        self.assertGreater(len(steps), len(self.ledger_of(home)) - 2, "the steps made after the drop: %s" % log)

    def test_a_job_recorded_lost_by_a_killed_kiln_that_finished_while_cut_off_is_taken_back(self):
        # the same, but the job finishes there before its host answers, while the next kiln's
        # attempt (slow on the other host) runs: the finished job's output is taken, the
        # attempt stopped (recorded superseded), and nothing of the task runs on
        def slow_elsewhere():
            for name, h in self.lab.hosts.items():
                if not self.ledger_of(name):
                    open(os.path.join(h.home, "slow"), "w").close()
        # (its host answers 5 s after the next kiln starts: a loaded machine's job there has
        # finished by then)
        home, out = self.eval_recorded_lost_then_kiln_killed("--host-wait", "1s", back_after=5, edit=slow_elsewhere)
        other = "v801" if home == "v800" else "v800"
        self.assertEqual(self.ws.read("e.txt"), home + "\n", out)
        self.assertEqual(self.ledger_of(home), [str(i) for i in range(1, 21)], "attempt 1 ran once, to its end")
        self.assertLess(len(self.ledger_of(other)), 15, "attempt 2 was stopped: %s" % self.ledger_of(other))
        self.assertTrue(wait_for(lambda: not self.lab.jobs_running(), timeout=5), self.lab.jobs_running())
        self.assertIn("stopped: host %s answered again, where the task's job of attempt 1 had finished" % home, out)
        rows = self.ws.query("SELECT attempt, host, failure FROM attempts WHERE task = 'eval' ORDER BY id")
        self.assertEqual([r[1:] for r in rows], [(home, "host-lost"), (other, "superseded"), (home, None)], rows)
        self.assertIn("step 20\n", self.last_log("eval"))

    def lost_then_retried_elsewhere_then_kiln_killed(self, steps=30):
        """Task work (steps of 0.3 s, no resume state) on v800 or v801: its host drops off the
        network 4 steps in, kiln gives it up (--host-wait 0.5s) and starts attempt 2 on the
        other host, and is killed 3 steps into that: (the first host, the other)."""
        self.two_hosts_one_job_each()
        self.ws.write("kiln.lua", 'task { name = "work", hosts = {"v800", "v801"}, outputs = {"w.txt"}, run = "for i in '
                      '$(seq %d); do echo line $i; echo $i >> $HOME/ledger; sleep 0.3; done; echo $KILN_HOST > w.txt" }\n'
                      % steps)
        return self.partition_the_working_host_then_kill_kiln(lambda home, other: len(self.ledger_of(other)) >= 3)

    def partition_the_working_host_then_kill_kiln(self, until):
        """Runs the recipe over v800 and v801 (--host-wait 0.5s), cuts the host working on it off
        the network 4 ledger lines in, and kills kiln once until(that host, the other) holds:
        (that host, the other)."""
        p = self.ws.spawn("run", "--executor", "ssh", "--hosts", "hosts.lua", "--host-wait", "0.5s")
        try:
            self.assertTrue(wait_for(lambda: len(self.ledger_of("v800") + self.ledger_of("v801")) >= 4, timeout=60))
            home = "v800" if self.ledger_of("v800") else "v801"
            other = "v801" if home == "v800" else "v800"
            self.lab.hosts[home].partition()
            self.assertTrue(wait_for(lambda: until(home, other), timeout=60))
        finally:
            p.kill()
            p.communicate()
        return home, other

    def test_of_two_jobs_a_killed_kiln_left_for_a_task_the_one_that_ran_longer_is_taken_up(self):
        # attempt 1 ran on through the partition, attempt 2 started elsewhere: both run when the
        # next kiln starts. One task runs once: attempt 1's job (further along) is taken up,
        # attempt 2's stopped at once, its log's rest fetched into its attempt's log
        home, other = self.lost_then_retried_elsewhere_then_kiln_killed()
        self.lab.hosts[home].start()
        r = self.ws.kiln("run", "--executor", "ssh", "--hosts", "hosts.lua", "--host-wait", "0.5s")
        self.assertEqual(r.rc, 0, r)
        self.assertIn("work: attached to ssh job", r.out)
        self.assertEqual(self.ledger_of(home), [str(i) for i in range(1, 31)], "attempt 1 ran to its end, once")
        self.assertLess(len(self.ledger_of(other)), 20, "attempt 2 was stopped: %s" % self.ledger_of(other))
        self.assertEqual(self.ws.read("w.txt"), home + "\n")
        self.assertTrue(wait_for(lambda: not self.lab.jobs_running(), timeout=5), self.lab.jobs_running())
        rows = self.ws.query("SELECT attempt, host, outcome FROM attempts WHERE task = 'work' ORDER BY attempt")
        self.assertEqual(rows[1][1:], (other, "stopped: the task's job of attempt 1 was taken up instead"), rows)
        log2 = self.attempt_logs("work")[1]
        self.assertIn("this job was stopped on host %s (another attempt of the task runs in its place)" % other, log2)
        steps = [int(line.split()[1]) for line in log2.splitlines() if line.startswith("line ")]
        self.assertEqual(steps, list(range(1, len(self.ledger_of(other)) + 1)), "its whole log, no line twice: " + log2)
        self.assertIn(" 0 ran,", self.ws.kiln("run", "--executor", "ssh", "--hosts", "hosts.lua").out)

    def test_a_later_job_a_killed_kiln_left_is_taken_up_while_the_earlier_ones_host_is_down(self):
        # the first host is still cut off when the next kiln starts: the retry that runs on the
        # other host is taken up at once (not waited for), and the job on the first host is
        # stopped as soon as that host answers (on its back-off: up to seconds), not left to run
        # to its end there
        home, other = self.lost_then_retried_elsewhere_then_kiln_killed(steps=60)
        run = self.ws.spawn("run", "--executor", "ssh", "--hosts", "hosts.lua", "--host-wait", "0.5s")
        out, err = self.host_back_after(run, home, 2)
        self.assertEqual(run.returncode, 0, out + err)
        self.assertIn("work: attached to ssh job", out)
        self.assertEqual(self.ledger_of(other), [str(i) for i in range(1, 61)], "attempt 2 ran to its end, once")
        self.assertEqual(self.ws.read("w.txt"), other + "\n")
        self.assertTrue(wait_for(lambda: not self.lab.jobs_running(), timeout=5), self.lab.jobs_running())
        self.assertLess(len(self.ledger_of(home)), 55, "attempt 1 was stopped once its host answered: %s"
                        % self.ledger_of(home))

    def test_a_lost_job_whose_work_a_later_attempt_finished_is_stopped_by_the_next_kiln(self):
        # attempt 2 finished the task elsewhere; kiln was killed (at work on another task)
        # before the lost job's host answered: the next kiln stops that job as soon as the
        # host answers, though the task itself is done and never starts again
        self.clear_ledgers()
        self.ws.write("hosts.lua", self.lab.hosts_lua({"v800": "jobs = 1", "v801": "jobs = 1", "v802": "jobs = 1"}))
        self.ws.write("kiln.lua", 'task { name = "work", hosts = {"v800", "v801"}, outputs = {"w.txt"}, run = "n=60; '
                      '[ $KILN_ATTEMPT = 1 ] || n=3; for i in $(seq $n); do echo $i >> $HOME/ledger; sleep 0.3; done; '
                      'echo $KILN_HOST > w.txt" }\n'
                      'task { name = "hold", host = "v802", inputs = {"w.txt"}, outputs = {"h.txt"}, '
                      'run = "sleep 6; echo > h.txt" }\n')
        home, other = self.partition_the_working_host_then_kill_kiln(lambda home, other: self.ws.query(
            "SELECT count(*) FROM attempts WHERE task = 'work' AND outcome = 'ok'") == [(1,)])
        self.assertEqual(self.ws.read("w.txt"), other + "\n")
        status = self.ws.kiln("status", "--hosts", "hosts.lua").out
        self.assertIn("a later attempt followed, so `kiln run` stops that job once %s answers" % home, status)
        self.lab.hosts[home].start()
        run = self.ws.spawn("run", "--executor", "ssh", "--hosts", "hosts.lua")
        try:  # well before hold (re-attached, 6 s) ends
            self.assertTrue(wait_for(lambda: not self.lab.jobs_running(self.lab.hosts[home]), timeout=4),
                            "the lost job on %s runs on: %s" % (home, self.ledger_of(home)))
            out, err = run.communicate(timeout=60)
        finally:
            if run.poll() is None:
                run.kill()
        self.assertEqual(run.returncode, 0, out + err)
        self.assertLess(len(self.ledger_of(home)), 50)
        self.assertEqual(self.ledger_of(other), ["1", "2", "3"])

    def test_after_kill_9_only_a_job_that_still_ran_is_said_stopped_when_its_task_changed(self):
        # kiln is killed while hold runs; prep's job had finished there (its directory not yet
        # cleared). Both commands change: hold's job, still running, is stopped and the run
        # says so; prep's, finished, is cleared without a word about stopping it
        self.clear_ledgers()
        self.ws.write("hosts.lua", self.lab.hosts_lua({"v802": "jobs = 2"}))
        recipe = ('task { name = "prep", host = "v802", outputs = {"p.txt"}, run = "echo p > p.txt%s" }\n'
                  'task { name = "hold", host = "v802", inputs = {"p.txt"}, outputs = {"h.txt"}, '
                  'run = "echo started >> $HOME/ledger; sleep %s; echo > h.txt" }\n')
        self.ws.write("kiln.lua", recipe % ("", 30))
        p = self.ws.spawn("run", "--executor", "ssh", "--hosts", "hosts.lua")
        try:
            self.assertTrue(wait_for(lambda: self.ledger_of("v802") == ["started"], timeout=30))
        finally:
            p.kill()
            p.communicate()
        self.ws.write("kiln.lua", recipe % (" # changed", 1))
        r = self.kiln()
        self.assertEqual(r.rc, 0, r)
        self.assertIn("hold: stopped the attempt an earlier kiln left running: the task changed", r.out)
        self.assertNotIn("prep: stopped", r.out)
        self.assertEqual(self.ledger_of("v802"), ["started", "started"])
        self.assertTrue(wait_for(lambda: not self.lab.jobs_running(), timeout=5), self.lab.jobs_running())

    def test_two_kills_while_a_host_is_cut_off_forget_none_of_the_jobs_left_there(self):
        # the first kill leaves the lost job and the retry; the next kiln takes up the retry and
        # is killed too before the first host answers; the third still knows the lost job there:
        # one of the two runs on, not both to their ends
        home, other = self.lost_then_retried_elsewhere_then_kiln_killed()
        p = self.ws.spawn("run", "--executor", "ssh", "--hosts", "hosts.lua", "--host-wait", "0.5s")
        try:
            self.assertTrue(wait_for(lambda: len(self.ledger_of(other)) >= 5, timeout=30))
        finally:
            p.kill()
            p.communicate()
        self.lab.hosts[home].start()
        r = self.ws.kiln("run", "--executor", "ssh", "--hosts", "hosts.lua", "--host-wait", "0.5s")
        self.assertEqual(r.rc, 0, r)
        self.assertTrue(wait_for(lambda: not self.lab.jobs_running(), timeout=5), self.lab.jobs_running())
        ran = sorted([len(self.ledger_of(home)), len(self.ledger_of(other))])
        self.assertEqual(ran[1], 30, "one ran to its end")
        self.assertLess(ran[0], 25, "the other was stopped: %s" % ran)


if __name__ == "__main__":
    main()
