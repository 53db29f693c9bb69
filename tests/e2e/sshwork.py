"""The ssh tests' lab work (test_ssh_resume, test_ssh_lost, test_ssh_stale): a base class over
sshhosts.SshCase with three hosts, and what those tests share: each attempt's log, each
host's ledger (the steps a task made there), a host dropped under running work and brought
back, a task without resume state."""
import os
import time

from kilntest import KilnTestCase, wait_for
import sshhosts

gpus = sshhosts.gpus


class HostWork(sshhosts.SshCase, KilnTestCase):
    """Three hosts (v801's second device busy); no tests of its own."""
    HOSTS = {"v800": gpus(2), "v801": gpus(2, busy=(1,)), "v802": gpus(1)}

    def attempt_logs(self, task):
        """Each attempt's log of task, in attempt order."""
        names = [f for f in os.listdir(self.ws.path(".kiln/logs")) if f.startswith(task + "@") and f.endswith(".log")]
        return [self.ws.read(".kiln/logs/" + f) for f in sorted(names, key=lambda f: int(f[len(task) + 1:-4]))]

    # Logs are found by what they say, never by their number: a start that never got to its
    # host (a slow sshd on a loaded machine) is an attempt of its own, so numbers shift.
    def last_log(self, task):
        """The log of task's latest attempt."""
        return self.attempt_logs(task)[-1]

    def first_log_with(self, task, text):
        """The log of task's first attempt whose log holds text (the first that ran)."""
        logs = [log for log in self.attempt_logs(task) if text in log]
        self.assertTrue(logs, "no log of %s holds %r: %s" % (task, text, self.attempt_logs(task)))
        return logs[0]

    def ledger_of(self, host):
        p = os.path.join(self.lab.hosts[host].home, "ledger")
        if not os.path.exists(p):
            return []
        with open(p) as f:
            return f.read().split()

    def two_hosts_one_job_each(self):
        """Empty ledgers, and hosts.lua with v800 and v801 taking one job each."""
        self.clear_ledgers()
        self.ws.write("hosts.lua", self.lab.hosts_lua({"v800": "jobs = 1", "v801": "jobs = 1"}))

    def clear_ledgers(self):
        for h in self.lab.hosts.values():  # the homes outlive the lab's reset
            for name in ("ledger", "died", "slow"):
                if os.path.exists(os.path.join(h.home, name)):
                    os.remove(os.path.join(h.home, name))

    def drop_the_working_host(self, drop, seconds, before, host_wait="60s", after=2, back_when=None):
        """Runs the recipe over v800 and v801 and, once `after` lines are in a host's ledger,
        calls before(that host), drops it (drop: "stop", a reboot, or "partition", the network)
        for seconds (and until back_when(that host) holds, when given), then waits for kiln's
        end: (the host, kiln's output, kiln's exit status)."""
        run = self.ws.spawn("run", "--executor", "ssh", "--hosts", "hosts.lua", "--host-wait", host_wait)
        try:
            if not wait_for(lambda: len(self.ledger_of("v800") + self.ledger_of("v801")) >= after, timeout=60):
                run.kill()
                said = run.communicate()
                servers = "".join("\n%s's sshd.log ends:\n%s" % (n, self.lab.hosts[n].log()[-1500:]) for n in ("v800", "v801"))
                self.fail("no %d steps made in 60 s; kiln said: %s %s%s" % ((after,) + said + (servers,)))
            home = "v800" if self.ledger_of("v800") else "v801"
            before(home)
            getattr(self.lab.hosts[home], drop)()
        except BaseException:
            run.kill()
            raise
        out, err = self.host_back_after(run, home, seconds, back_when and (lambda: back_when(home)))
        return home, out + err, run.returncode

    def host_back_after(self, run, home, seconds, back_when=None):
        """Brings host home back seconds from now (and once back_when() holds, when given) and
        waits for run (a spawned kiln) to end: (its stdout, its stderr); a kiln still running
        then is killed."""
        try:
            time.sleep(seconds)
            if back_when:
                self.assertTrue(wait_for(back_when, timeout=60))
            self.lab.hosts[home].start()
            return run.communicate(timeout=120)
        finally:
            if run.poll() is None:
                run.kill()

    def eval_without_checkpoint(self, steps=20):
        """Task eval on v800 or v801 (one job each): 20 steps (or steps) of 0.3 s (1.3 s on a host
        whose home holds "slow"), each in its host's ledger and printed, then its host's name in
        e.txt; no resume state."""
        self.two_hosts_one_job_each()
        self.ws.write("kiln.lua", 'task { name = "eval", hosts = {"v800", "v801"}, outputs = {"e.txt"}, run = "for i in '
                      '$(seq %d); do echo $i >> $HOME/ledger; echo step $i; sleep 0.3; [ -e $HOME/slow ] && sleep 1; done; '
                      'echo $KILN_HOST > e.txt" }\n'
                      % steps)

    def assert_eval_ran_once_on(self, home):
        self.assertEqual(self.ledger_of(home), [str(i) for i in range(1, 21)], "no step twice, none restarted")
        self.assertEqual(self.ledger_of("v801" if home == "v800" else "v800"), [], "not started afresh elsewhere")
        self.assertEqual(self.ws.read("e.txt"), home + "\n")
