"""End-to-end: a job lost with its ssh host whose work went elsewhere (sshhosts.py;
runner/exec/ssh/ssh_stale.c). When its host answers again it is stopped there, its log's
rest fetched into the lost attempt's; one that finished there meanwhile is taken up and the
attempt that replaced it stopped; one still running is taken back only when its progress
(KILN_PROGRESS, or log_progress over both logs) shows it further along than that attempt."""
import os
import unittest

from kilntest import main, wait_for
import sshhosts
from sshwork import HostWork

SKIP = sshhosts.skip_reason()
gpus = sshhosts.gpus


@unittest.skipIf(SKIP, SKIP or "")
class SshStale(HostWork):
    def test_a_job_lost_with_its_host_whose_work_went_elsewhere_is_stopped_there(self):
        # no resume state, and its host silent for longer than --host-wait: the lost job runs
        # again elsewhere; the copy that ran on on its partitioned host (slowed there) is
        # stopped when kiln reaches the host again, at the latest at the run's end, not left
        # to hold its GPU for nothing
        self.two_hosts_one_job_each()
        self.ws.write("kiln.lua", 'task { name = "work", hosts = {"v800", "v801"}, outputs = {"w.txt"}, run = "for i in '
                      '$(seq 12); do echo line $i; echo $i >> $HOME/ledger; sleep 0.3; [ -e $HOME/died ] && sleep 1; '
                      'done; echo $KILN_HOST > w.txt" }\n')
        home, out, rc = self.drop_the_working_host(  # away past the wait and the try at its end
            "partition", 3, lambda home: open(os.path.join(self.lab.hosts[home].home, "died"), "w").close(),
            host_wait="0.5s")
        # no log is lost: what it wrote there after the drop follows in attempt 1's log, once
        # each line, and its directory there is gone
        log = self.first_log_with("work", "line 1\n")
        self.assertIn("answered again: the job's log there from where the copy above ends, to the job's end "
                      "there (no later attempt took it up)", log, out)
        ran_there = self.ledger_of(home)
        self.assertGreater(len(ran_there), 2, "it ran on there")
        for i in ran_there:
            self.assertEqual(log.count("line %s\n" % i), 1, log)
        jobs = os.listdir(os.path.join(self.lab.hosts[home].workdir(), ".kiln/jobs"))
        self.assertEqual([d for d in jobs if not d.startswith("task-")], [], "its job's directory went")
        self.assertEqual(rc, 0, out)
        self.assertEqual(self.ws.read("w.txt"), ("v801" if home == "v800" else "v800") + "\n")
        self.assertTrue(wait_for(lambda: not self.lab.jobs_running(), timeout=3),
                        "the lost copy on %s was stopped: %s" % (home, self.lab.jobs_running()))
        self.assertLess(len(self.ledger_of(home)), 12, "it did not run to its end there")

    def test_a_lost_job_that_finished_while_its_host_was_cut_off_is_taken_up_and_its_retry_stopped(self):
        # its host is cut off past the wait: attempt 2 starts afresh on the other host (slow
        # there), while attempt 1 runs on through the partition and finishes. When the host
        # answers again, attempt 1's finished work is taken up (its output fetched) and attempt
        # 2 stopped, not run to its end for a result kiln already had
        self.two_hosts_one_job_each()
        self.ws.write("kiln.lua", 'task { name = "work", hosts = {"v800", "v801"}, outputs = {"w.txt"}, run = "for i in '
                      '$(seq 12); do echo line $i; echo $i >> $HOME/ledger; sleep 0.3; [ -e $HOME/slow ] && sleep 1; '
                      'done; echo $KILN_HOST > w.txt" }\n')

        def slow_elsewhere(home):
            other = "v801" if home == "v800" else "v800"
            open(os.path.join(self.lab.hosts[other].home, "slow"), "w").close()
        home, out, rc = self.drop_the_working_host("partition", 5, slow_elsewhere, host_wait="0.5s", after=4)
        other = "v801" if home == "v800" else "v800"
        self.assertEqual(rc, 0, out)
        self.assertEqual(self.ws.read("w.txt"), home + "\n", "attempt 1's output")
        self.assertEqual(self.ledger_of(home), [str(i) for i in range(1, 13)], "attempt 1 ran once, to its end")
        self.assertGreater(len(self.ledger_of(other)), 0, "attempt 2 started: " + out)
        self.assertLess(len(self.ledger_of(other)), 12, "attempt 2 was stopped: %s" % self.ledger_of(other))
        self.assertTrue(wait_for(lambda: not self.lab.jobs_running(), timeout=5), self.lab.jobs_running())
        self.assertIn("stopped: host %s answered again, where the task's job of attempt 1 had finished: that job "
                      "is taken up" % home, out)
        rows = self.ws.query("SELECT attempt, host, failure FROM attempts WHERE task = 'work' ORDER BY id")
        self.assertEqual([r[0] for r in rows], [1, 2, 3], rows)
        self.assertEqual(rows[1][1:], (other, "superseded"), rows)
        self.assertEqual(rows[2][1:], (home, None), rows)
        # no log is lost: attempt 3 holds the job's whole log, each line once
        log3 = self.attempt_logs("work")[2]
        self.assertEqual([line for line in log3.splitlines() if line.startswith("line ")],
                         ["line %d" % i for i in range(1, 13)], log3)
        self.assertIn(" 0 ran,", self.ws.kiln("run", "--executor", "ssh", "--hosts", "hosts.lua").out)

    def progress_through_a_long_partition(self, marker, on, steps=30, printed=False, stall=1, back_when=None):
        """Task work (steps of 0.3 s, each written to KILN_PROGRESS, or with printed only printed
        as `step i/N`, read by log_progress; stall s more a step on a host whose home holds
        marker) on v800 or v801; marker is put on its host (on "home") or the other (on "other")
        4 steps in, and its host is cut off for 4 s (and until back_when(home), when given;
        --host-wait 0.5s): the lost job runs on there while attempt 2 runs on the other host.
        (home, other, output)"""
        self.two_hosts_one_job_each()
        report = "echo step $i/%d" % steps if printed else "echo $i/%d >> $KILN_PROGRESS" % steps
        self.ws.write("kiln.lua", 'task { name = "work", hosts = {"v800", "v801"}, outputs = {"w.txt"}, %srun = "for i in '
                      '$(seq %d); do echo line $i; echo $i >> $HOME/ledger; %s; sleep 0.3; '
                      '[ -e $HOME/%s ] && sleep %d; done; echo $KILN_HOST > w.txt" }\n'
                      % ('log_progress = "step (%d+)/(%d+)", ' if printed else "", steps, report, marker, stall))

        def mark(home):
            name = home if on == "home" else ("v801" if home == "v800" else "v800")
            open(os.path.join(self.lab.hosts[name].home, marker), "w").close()
        home, out, rc = self.drop_the_working_host("partition", 4, mark, host_wait="0.5s", after=4, back_when=back_when)
        self.assertEqual(rc, 0, out)
        self.assertTrue(wait_for(lambda: not self.lab.jobs_running(), timeout=5), self.lab.jobs_running())
        return home, "v801" if home == "v800" else "v800", out

    def test_a_lost_job_that_ran_on_further_than_its_retry_is_taken_back_when_its_host_answers(self):
        # the job kiln lost ran on through the partition; the retry elsewhere is slow: when
        # the host answers, the lost job's progress is ahead of the retry's, so the retry is
        # stopped and the lost job followed to its end, not thrown away (60 steps: it still
        # runs when a loaded machine's back-off reaches its host)
        home, other, out = self.progress_through_a_long_partition("slow", "other", steps=60)
        self.assertRegex(out, r"stopped: host %s answered again, where the task's job of attempt 1 ran on and is "
                         r"further along \(\d+/60 against \d+ here\): that job is taken up" % home)
        self.assertEqual(self.ws.read("w.txt"), home + "\n")
        self.assertEqual(self.ledger_of(home), [str(i) for i in range(1, 61)], "attempt 1 ran once, to its end")
        self.assertLess(len(self.ledger_of(other)), 30, "attempt 2 was stopped")
        rows = self.ws.query("SELECT host, failure FROM attempts WHERE task = 'work' ORDER BY id")
        self.assertEqual(rows, [(home, "host-lost"), (other, "superseded"), (home, None)], rows)
        log3 = self.attempt_logs("work")[2]
        self.assertEqual([line for line in log3.splitlines() if line.startswith("line ")],
                         ["line %d" % i for i in range(1, 61)], "its whole log, each line once: " + log3)

    def test_a_lost_job_that_only_prints_its_progress_is_taken_back_by_its_log(self):
        # the same with a script that writes no KILN_PROGRESS and prints `step i/60`: the task's
        # log_progress reads both logs' ends, the lost job's there and the retry's here
        home, other, out = self.progress_through_a_long_partition("slow", "other", steps=60, printed=True)
        self.assertRegex(out, r"stopped: host %s answered again, where the task's job of attempt 1 ran on and is "
                         r"further along \(\d+/60 against \d+ here\): that job is taken up" % home)
        self.assertEqual(self.ws.read("w.txt"), home + "\n")
        self.assertEqual(self.ledger_of(home), [str(i) for i in range(1, 61)], "attempt 1 ran once, to its end")
        self.assertLess(len(self.ledger_of(other)), 30, "attempt 2 was stopped")
        log3 = self.attempt_logs("work")[2]
        self.assertEqual([line for line in log3.splitlines() if line.startswith("step ")],
                         ["step %d/60" % i for i in range(1, 61)], "its whole log, each line once: " + log3)

    def test_a_lost_job_behind_its_retry_is_stopped_when_its_host_answers(self):
        # the cut-off host slowed its job down: its progress is behind the retry's, which goes
        # on; the lost job is stopped there (the host answers once the retry is 12 steps in:
        # on a loaded machine the retry may start late, and the lost job is then the further)
        home, other, out = self.progress_through_a_long_partition(
            "died", "home", stall=5, back_when=lambda home: len(self.ledger_of("v801" if home == "v800" else "v800")) >= 12)
        self.assertNotIn("further along", out)
        self.assertEqual(self.ws.read("w.txt"), other + "\n")
        self.assertEqual(self.ledger_of(other), [str(i) for i in range(1, 31)])
        self.assertLess(len(self.ledger_of(home)), 30, "stopped there")


if __name__ == "__main__":
    main()
