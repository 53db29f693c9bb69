"""End-to-end: a host of hosts{} that never answers (it takes TCP connections and says
nothing, as a hung server or a network dropping packets does: ssh waits its 5 s
ConnectTimeout each try) holds up no start on the others — not the run's first contacts,
not the retries kiln keeps making while it is down, not the question whether it still
answers after a job's stream dropped, not the question whether a job a killed kiln left there
runs on — and is named down at the end; a job under which its host went silent is taken up
once it answers again."""
import os
import time
import unittest

from kilntest import KilnTestCase, main, wait_for
import sshhosts

SKIP = sshhosts.skip_reason()


@unittest.skipIf(SKIP, SKIP or "")
class SilentHost(sshhosts.SshCase, KilnTestCase):
    HOSTS = {"v800": [], "v801": []}

    def test_a_host_that_never_answers_holds_up_no_start_on_the_others(self):
        silent = sshhosts.SilentHost()
        try:
            live = self.lab.hosts_lua({"v800": "jobs = 2", "v801": "jobs = 2"})
            self.ws.write("hosts.lua", live.rstrip().rstrip("}") + silent.hosts_entry("vquiet", self.lab) + "}\n")
            # a chain: each task starts only once kiln has seen the one before it end (long
            # enough to outlast two of ssh's tries at the silent host: its 5 s, 2 s, 5 s)
            recipe = ""
            for i in range(45):
                dep = ', inputs = {"c/%d.txt"}' % (i - 1) if i else ""
                recipe += ('task { name = "c%d"%s, outputs = {"c/%d.txt"}, run = "date +%%s.%%N > c/%d.txt; sleep 0.3" }\n'
                           % (i, dep, i, i))
            self.ws.write("kiln.lua", recipe)
            r = self.kiln(timeout=300)
        finally:
            silent.close()
        self.assertEqual(r.rc, 0, r)
        self.assertRegex(r.out, r"host vquiet: .*DOWN")
        # every try ssh gave up on (the first contact, then the retries every 2, 4, 8 ... s)
        self.assert_starts_during_tries(silent.windows, 45, 2, "vquiet")

    def assert_starts_during_tries(self, windows, chain, least, host):
        """At least `least` of ssh's tries at host (windows: SilentHost's) ended while the chain
        of `chain` tasks still had work left, and tasks of it started during each."""
        starts = sorted(float(self.ws.read("c/%d.txt" % i)) for i in range(chain))
        tries = [(o, c) for o, c in windows if c and c < starts[-1]]
        self.assertGreaterEqual(len(tries), least, (windows, starts))
        for opened, closed in tries:
            self.assertTrue(any(opened < s < closed for s in starts),
                            "no task started while ssh waited for %s (%.2f..%.2f): %s" % (host, opened, closed, starts))

    def test_a_host_gone_silent_under_a_running_job_holds_up_nothing_and_its_job_is_taken_up(self):
        # v800's network goes silent under eval (its stream ends, and every try to reach it
        # waits ssh's 5 s for nothing): the chain on v801 goes on meanwhile, and once v800
        # answers again eval is taken up there, no step twice
        self.eval_and_chain_through_silence(kill_first=False)

    def test_a_host_gone_silent_holding_a_job_a_killed_kiln_left_holds_up_nothing(self):
        # kiln is killed under eval, then v800 goes silent: the next kiln asks v800 after eval's
        # job in the background (ssh waits 5 s each try) while the chain goes on, and takes the
        # job up once v800 answers. (The chain runs here: a kill -9 that strikes a short job's
        # start on a host can leave a job whose re-attach waits 10 s for its pid, which would
        # read as a stall of this run.)
        self.eval_and_chain_through_silence(kill_first=True, chain_on='executor = "local"')

    def eval_and_chain_through_silence(self, kill_first, chain_on='host = "v801"'):
        """eval (40 steps of 0.3 s on v800) beside a chain of 60 short tasks (chain_on: where);
        once eval has made 5 steps v800 goes silent for 8 s (after a kill -9 of kiln and a new
        kiln's start, with kill_first): eval must run once and be taken up, and tasks of the
        chain must start during every try ssh made at v800 meanwhile."""
        for h in self.lab.hosts.values():
            if os.path.exists(os.path.join(h.home, "ledger")):
                os.remove(os.path.join(h.home, "ledger"))
        self.ws.write("hosts.lua", self.lab.hosts_lua({"v800": "jobs = 1", "v801": "jobs = 1"}))
        recipe = ('task { name = "eval", host = "v800", outputs = {"e.txt"}, run = "for i in $(seq 40); do '
                  'echo $i >> $HOME/ledger; sleep 0.3; done; echo done > e.txt" }\n')
        for i in range(60):
            dep = ', inputs = {"c/%d.txt"}' % (i - 1) if i else ""
            recipe += ('task { name = "c%d", %s%s, outputs = {"c/%d.txt"}, run = "date +%%s.%%N > c/%d.txt; '
                       'sleep 0.1" }\n' % (i, chain_on, dep, i, i))
        self.ws.write("kiln.lua", recipe)
        v800 = self.lab.hosts["v800"]
        run = self.ws.spawn("run", "--executor", "ssh", "--hosts", "hosts.lua")
        try:
            self.assertTrue(wait_for(lambda: os.path.exists(os.path.join(v800.home, "ledger")) and
                                     len(open(os.path.join(v800.home, "ledger")).read().split()) >= 5, timeout=60))
            if kill_first:
                run.kill()
                run.communicate()
            silent = v800.go_silent()
            if kill_first:
                run = self.ws.spawn("run", "--executor", "ssh", "--hosts", "hosts.lua")
            time.sleep(8)
            windows = list(silent.windows)
            v800.start()
            out, err = run.communicate(timeout=180)
        finally:
            if run.poll() is None:
                run.kill()
        self.assertEqual(run.returncode, 0, out + err)
        with open(os.path.join(v800.home, "ledger")) as f:
            self.assertEqual(f.read().split(), [str(i) for i in range(1, 41)], "eval ran once, taken up")
        self.assertIn("eval: attached to ssh job", out)
        self.assert_starts_during_tries(windows, 60, 1, "v800")


if __name__ == "__main__":
    main()
