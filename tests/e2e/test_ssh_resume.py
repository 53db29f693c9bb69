"""End-to-end: interrupted work on ssh hosts, against three real sshd servers (sshhosts.py).
A checkpoint cut short on a host is put back from the copy taken there, and a checkpoint
folder cut short or stopped between its files is removed before the retry; the next attempt
of a task continuing from resume state a host holds goes back to that host (waiting for
room there; each node of a multi-node job to its own), waits for it when it does not answer
(a reboot: as long as the work kept there took, at least --host-wait) and only then starts
afresh elsewhere, saying so; a job that ran on
through a dropped network is re-attached, not restarted (one without resume state and a
map{} shard too: their retries wait for the host as long as the job had run), as is one a
killed kiln left whose devices read busy or whose host answers late, or that it had recorded
lost with its host (its log's rest fetched when not taken up; not waited for when the
recipe changed); a lost job whose work went elsewhere is stopped there. Of two jobs a killed
kiln left for one task (the lost one, the retry it started elsewhere), one runs on (the one
that has run longer, or the one whose host answers) and the other is stopped, its log kept;
a lost job whose task a later attempt finished is stopped as soon as its host answers."""
import os
import time
import unittest

from kilntest import KilnTestCase, main, wait_for
import sshhosts
from test_torchrun import PYTHON, SKIP as NO_TORCH

SKIP = sshhosts.skip_reason()
gpus = sshhosts.gpus


@unittest.skipIf(SKIP, SKIP or "")
class SshResume(sshhosts.SshCase, KilnTestCase):
    HOSTS = {"v800": gpus(2), "v801": gpus(2, busy=(1,)), "v802": gpus(1)}

    def train_on_v800_killed_mid_save(self, trainer, resume, env, argv):
        """Runs task train (trainer, killed mid-save at epoch 3 once) on v800 with retries = 1:
        the second attempt's log, after checking it continued after epoch 2."""
        self.ws.write("train.py", trainer)
        self.ws.write("kiln.lua", 'task { name = "train", host = "v800", inputs = {"train.py"}, outputs = {"model.pt"}, '
                      'resume = {"%s"}, retries = 1, env = { DIE_AT = "3"%s }, run = {"%s", "train.py", %s} }\n'
                      % (resume, env, PYTHON, argv))
        r = self.kiln()
        self.assertEqual(r.rc, 0, r)
        # the retry's log, found by what it says rather than its number: a start that never got
        # to its host (a slow sshd on a loaded machine) is an attempt too, not a try
        retries = [log for log in self.attempt_logs("train") if "(try 2 of 2 in this run)" in log]
        self.assertEqual(len(retries), 1, self.attempt_logs("train"))
        self.assertIn("resuming after epoch 2", retries[0])
        return retries[0]

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

    def ledger_on_v800(self):
        with open(os.path.join(self.lab.hosts["v800"].workdir(), "ledger")) as f:
            return [int(line.split()[1]) for line in f]

    @unittest.skipIf(NO_TORCH, NO_TORCH or "")
    def test_a_checkpoint_cut_short_on_a_host_is_put_back_from_its_copy_there(self):
        import test_resume  # its trainer saves in place with a plain torch.save, killed mid-save once
        log2 = self.train_on_v800_killed_mid_save(test_resume.TORCH_TRAINER, "ckpt.pt", "", '"{resume}", "5"')
        self.assertIn("ckpt.pt was cut short (an attempt was stopped while writing it): put back its last whole "
                      "copy, saved at ", log2)
        self.assertEqual(self.ledger_on_v800(), [1, 2, 3, 3, 4, 5])
        # a stop mid-save with no copy there yet: removed, and the retry starts afresh
        self.ws.write("kiln.lua", self.ws.read("kiln.lua").replace('DIE_AT = "3"', 'DIE_AT = "1"'))
        os.remove(os.path.join(self.lab.hosts["v800"].workdir(), "died"))
        r = self.kiln()
        self.assertEqual(r.rc, 0, r)
        log = self.attempt_logs("train")[-1]  # this run's retry
        self.assertIn("kiln holds no whole copy of it: removed, so this attempt starts it afresh", log)
        self.assertNotIn("resuming", log)

    def folder_trainer_on_v800(self, layout, said, env=""):
        """A trainer keeping a checkpoint folder per epoch (test_resume's, in layout, with env),
        killed in epoch 3's save once: the retry's log says said, and only epoch 3 ran twice."""
        import test_resume
        log2 = self.train_on_v800_killed_mid_save(test_resume.FOLDER_TRAINER, "ckpt",
                                                  ', LAYOUT = "%s"%s' % (layout, env), '"5"')
        self.assertIn(said, log2)
        self.assertEqual(self.ledger_on_v800(), [1, 2, 3, 3, 4, 5])

    @unittest.skipIf(NO_TORCH, NO_TORCH or "")
    def test_a_cut_checkpoint_folder_on_a_host_is_removed_before_the_retry(self):
        # Hugging Face's layout, killed while writing checkpoint-3/optimizer.pt
        self.folder_trainer_on_v800("dirs", 'kiln: "ckpt/checkpoint-3/optimizer.pt" was cut short (an attempt was '
                                    'stopped while writing it): "ckpt/checkpoint-3" removed, so this attempt continues '
                                    'from the whole checkpoints beside it')

    @unittest.skipIf(NO_TORCH, NO_TORCH or "")
    def test_a_cut_safetensors_file_on_a_host_is_removed_before_the_retry(self):
        # not a zip: the job script reads its header for the size it should have
        import test_resume
        log2 = self.train_on_v800_killed_mid_save(test_resume.FOLDER_TRAINER, "ckpt",
                                                  ', LAYOUT = "files", WEIGHTS = "safetensors"', '"5"')
        self.assertIn('kiln: "ckpt/epoch_3.safetensors" was cut short (an attempt was stopped while writing it): '
                      '"ckpt/epoch_3.safetensors" removed', log2)
        self.assertEqual(self.ledger_on_v800(), [1, 2, 3, 3, 4, 5])

    @unittest.skipIf(NO_TORCH, NO_TORCH or "")
    def test_a_checkpoint_folder_whose_json_was_cut_on_a_host_is_removed(self):
        self.folder_trainer_on_v800("hf", 'kiln: "ckpt/checkpoint-3/trainer_state.json" was cut short (an attempt was '
                                    'stopped while writing it): "ckpt/checkpoint-3" removed', ', CUT_JSON = "1"')

    @unittest.skipIf(NO_TORCH, NO_TORCH or "")
    def test_a_checkpoint_folder_stopped_between_its_files_on_a_host_is_removed(self):
        # killed after checkpoint-3's weights, before its trainer_state.json
        self.folder_trainer_on_v800("hf", 'kiln: "ckpt/checkpoint-3" lacks "trainer_state.json", which every checkpoint '
                                    'before it holds (an attempt was stopped between its files): removed, so this '
                                    'attempt continues from the whole checkpoints beside it')
        # the first checkpoint of a run, as the Hugging Face Trainer writes it, stopped before its
        # trainer_state.json: no checkpoint before it to compare with, its names tell
        # (and torch.distributed.checkpoint's, stopped before its .metadata)
        recipe = self.ws.read("kiln.lua")
        for env, said in (
                ('LAYOUT = "hf", DIE_AT = "1", ARGS_FILE = "1"',
                 '"ckpt/checkpoint-1" holds "training_args.bin" but no "trainer_state.json", which the Hugging Face '
                 'Trainer writes last'),
                ('LAYOUT = "dcp", DIE_AT = "1"',
                 '"ckpt/checkpoint-1" holds ".distcp" files but no ".metadata", which torch.distributed.checkpoint '
                 'writes last')):
            self.ws.write("kiln.lua", recipe.replace('DIE_AT = "3", LAYOUT = "hf"', env))
            for name in ("died", "ledger"):
                os.remove(os.path.join(self.lab.hosts["v800"].workdir(), name))
            r = self.kiln()
            self.assertEqual(r.rc, 0, r)
            log = [log for log in self.attempt_logs("train") if "(try 2 of 2 in this run)" in log][-1]
            self.assertIn("kiln: %s (an attempt was stopped between its files): removed" % said, log)
            self.assertNotIn("resuming", log)
            self.assertEqual(self.ledger_on_v800(), [1, 1, 2, 3, 4, 5])

    # continues from its ckpt/last, to epoch 5; exits 1 after epoch 3 the first time
    RESUMING = ('s=$(cat ckpt/last 2>/dev/null || echo 0); mkdir -p ckpt; for e in $(seq $((s + 1)) 5); do '
                'echo $e >> $HOME/ledger; echo $e > ckpt/last; '
                'if [ $e = 3 ] && [ ! -e $HOME/died ]; then touch $HOME/died; exit 1; fi; done; echo > model.txt')

    def resuming_task_failed_once(self):
        """Runs task train (RESUMING; v800 or v801, one job each) to its failure after epoch 3,
        after a local task go: the host it ran on, and the other one."""
        self.two_hosts_one_job_each()
        recipe = ('%stask { name = "go", executor = "local", outputs = {"go.txt"}, run = "%secho x > go.txt" }\n'
                  'task { name = "train", hosts = {"v800", "v801"}, inputs = {"go.txt"}, outputs = {"model.txt"}, '
                  'resume = {"ckpt"}, run = "%s" }\n')
        self.ws.write("kiln.lua", recipe % ("", "", self.RESUMING))
        self.assertEqual(self.kiln().rc, 1)
        ran = [n for n in ("v800", "v801") if os.path.exists(os.path.join(self.lab.hosts[n].home, "ledger"))]
        self.assertEqual(len(ran), 1, ran)
        return recipe, ran[0], "v801" if ran[0] == "v800" else "v800"

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

    def train_through_a_drop(self, drop, epochs, ngpus=0, host_wait="60s", after=2):
        """Runs train (a checkpointing loop of epochs, 0.4 s each, "epoch N" printed) on v800 or
        v801 and drops its host after epoch `after` for 1.5 s (drop: "stop", a reboot, or
        "partition", the network): (its host, kiln's output, kiln's exit status)."""
        self.two_hosts_one_job_each()
        slow = ('s=$(cat ckpt/last 2>/dev/null || echo 0); mkdir -p ckpt; for e in $(seq $((s + 1)) %d); do '
                'sleep 0.4; echo $e >> $HOME/ledger; echo epoch $e; echo $e > ckpt/last; done; echo > model.txt' % epochs)
        self.ws.write("kiln.lua", 'task { name = "train", hosts = {"v800", "v801"}, gpus = %d, outputs = {"model.txt"}, '
                      'resume = {"ckpt"}, run = "%s" }\n' % (ngpus, slow))

        def busy(home):  # its host's devices all read busy now, its own job's among them
            if ngpus:
                self.lab.hosts[home].set_gpus(gpus(2, busy=(0, 1)))
        try:
            return self.drop_the_working_host(drop, 1.5, busy, host_wait, after)
        finally:
            for name, h in self.lab.hosts.items():
                h.set_gpus(self.HOSTS[name])
            self.assertTrue(wait_for(lambda: not self.lab.jobs_running(), timeout=30))

    def drop_the_working_host(self, drop, seconds, before, host_wait="60s", after=2):
        """Runs the recipe over v800 and v801 and, once `after` lines are in a host's ledger,
        calls before(that host), drops it (drop: "stop", a reboot, or "partition", the network)
        for seconds, then waits for kiln's end: (the host, kiln's output, kiln's exit status)."""
        run = self.ws.spawn("run", "--executor", "ssh", "--hosts", "hosts.lua", "--host-wait", host_wait)
        try:
            self.assertTrue(wait_for(lambda: len(self.ledger_of("v800") + self.ledger_of("v801")) >= after, timeout=60))
            home = "v800" if self.ledger_of("v800") else "v801"
            before(home)
            getattr(self.lab.hosts[home], drop)()
        except BaseException:
            run.kill()
            raise
        out, err = self.host_back_after(run, home, seconds)
        return home, out + err, run.returncode

    def host_back_after(self, run, home, seconds):
        """Brings host home back seconds from now and waits for run (a spawned kiln) to end:
        (its stdout, its stderr); a kiln still running then is killed."""
        try:
            time.sleep(seconds)
            self.lab.hosts[home].start()
            return run.communicate(timeout=120)
        finally:
            if run.poll() is None:
                run.kill()

    def test_a_retry_goes_back_to_the_host_holding_its_resume_state(self):
        recipe, home, other = self.resuming_task_failed_once()
        status = self.ws.kiln("status", "--hosts", "hosts.lua")
        self.assertIn("it continues from its resume state (ckpt on host %s)" % home, status.out, status)
        # go runs again (its command changed, its output did not: train's key is the same), and
        # meanwhile a task pinned to train's host takes its only slot: train waits for it
        # rather than start afresh on the free host
        self.ws.write("kiln.lua", 'task { name = "hog", host = "%s", run = "sleep 4" }\n' % home +
                      recipe % ("", "sleep 1.5; ", self.RESUMING))
        r = self.kiln()
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(self.ledger_of(home), ["1", "2", "3", "4", "5"], "continued where it stopped")
        self.assertEqual(self.ledger_of(other), [], "not started afresh on the free host")
        self.assertIn("# kiln: on host %s" % home, self.last_log("train"))

    def test_a_multi_node_retry_puts_each_node_back_on_the_host_holding_its_part(self):
        # each node keeps its own checkpoint in its host's workdir (no shared disk); the retry
        # puts node 0 and node 1 back on their hosts, waiting for the task that holds node 1's
        # slot, instead of starting that node afresh on the free third host
        self.clear_ledgers()
        self.ws.write("hosts.lua", self.lab.hosts_lua({n: "jobs = 1" for n in ("v800", "v801", "v802")}))
        # node 0 fails in its epoch 3 once node 1 has made an epoch too (a loaded machine may start
        # node 1 late: the hosts' homes lie side by side here)
        lab = os.path.dirname(self.lab.hosts["v800"].home)
        each = ('s=$(cat ckpt/last 2>/dev/null || echo 0); mkdir -p ckpt; for e in $(seq $((s + 1)) 5); do '
                'echo {rank}:$e >> $HOME/ledger; echo $e > ckpt/last; sleep 0.2; '
                'if [ {rank} = 0 ] && [ $e = 3 ] && [ ! -e $HOME/died ]; then i=0; until grep -qs ^1: %s/*/ledger || '
                '[ $i -ge 300 ]; do sleep 0.05; i=$((i + 1)); done; touch $HOME/died; exit 1; fi; done; '
                '[ {rank} = 1 ] || echo > model.txt' % lab)
        recipe = ('%stask { name = "go", executor = "local", outputs = {"go.txt"}, run = "%secho x > go.txt" }\n'
                  'task { name = "train", ranks = 1, nnodes = 2, inputs = {"go.txt"}, outputs = {"model.txt"}, '
                  'resume = {"ckpt"}, run = "%s" }\n')
        self.ws.write("kiln.lua", recipe % ("", "", each))
        self.assertEqual(self.kiln().rc, 1)
        homes = {self.ledger_of(n)[0].split(":")[0]: n for n in self.lab.hosts if self.ledger_of(n)}
        self.assertEqual(sorted(homes), ["0", "1"], homes)
        free = ({"v800", "v801", "v802"} - set(homes.values())).pop()
        status = self.ws.kiln("status", "--hosts", "hosts.lua")
        self.assertIn("it continues from its resume state (ckpt on hosts %s, %s)" % (homes["0"], homes["1"]), status.out)
        self.ws.write("kiln.lua", 'task { name = "hog", host = "%s", run = "sleep 4" }\n' % homes["1"] +
                      recipe % ("", "sleep 1.5; ", each))
        r = self.kiln("--host-wait", "1s")  # a host that answers but is full is no host down
        self.assertEqual(r.rc, 0, r)
        for rank, host in homes.items():
            ledger = self.ledger_of(host)
            self.assertEqual(len(ledger), len(set(ledger)), "node %s continued on %s: %s" % (rank, host, ledger))
            self.assertIn("%s:5" % rank, ledger)
        self.assertEqual(self.ledger_of(free), [], "no node started afresh on %s" % free)
        log = self.last_log("train")
        self.assertIn("# kiln: on host %s" % homes["0"], log)
        self.assertIn("# kiln: node 1 on host %s" % homes["1"], log)

    def test_a_task_lost_with_its_host_continues_there_when_the_host_is_back(self):
        # the host drops mid-run (its processes die with it, as in a reboot) and comes back 1.5 s
        # later: the retry waits for it — longer than --host-wait (1 s) since the work kept
        # there took longer (6 epochs) — and continues there from the checkpoint
        home, out, rc = self.train_through_a_drop("stop", 10, host_wait="1s", after=6)
        self.assertEqual(rc, 0, out)
        ledger = self.ledger_of(home)
        self.assertEqual(sorted(set(ledger), key=int), [str(e) for e in range(1, 11)], ledger)
        self.assertLessEqual(len(ledger) - len(set(ledger)), 1, "at most the epoch in flight twice: %s" % ledger)
        self.assertEqual(self.ledger_of("v801" if home == "v800" else "v800"), [], "not started afresh elsewhere")
        self.assertIn("it runs again there once the host answers (its resume state is there)", out)
        self.assertIn("host %s: 1 done, 0 failed, 1 lost with it and run again" % home, out)
        log = self.first_log_with("train", "epoch 1\n")  # what it wrote before the reboot, once
        self.assertEqual([log.count("epoch %d\n" % e) for e in range(1, 6)], [1] * 5, log)

    def test_a_job_that_ran_on_while_its_host_did_not_answer_is_re_attached_not_restarted(self):
        # the network drops, the host works on: when it answers again the retry takes up the
        # job that kept running there (no epoch twice, its log whole) rather than stop it, though
        # every device there reads busy (its own job's among them)
        home, out, rc = self.train_through_a_drop("partition", 10, ngpus=1)
        self.assertEqual(rc, 0, out)
        self.assertEqual(self.ledger_of(home), [str(e) for e in range(1, 11)], "no epoch twice, none restarted")
        self.assertIn("train: attached to ssh job", out)
        self.assertIn("which ran on while its host did not answer", out)
        log = self.last_log("train")
        self.assertIn("re-attached on host %s to the job of attempt 1" % home, log)
        self.assertIn("epoch 1\n", log, "the job's whole log")
        self.assertIn("epoch 10\n", log)
        self.assertEqual(self.ws.read("model.txt"), "\n")
        self.assertEqual(self.ws.kiln("run", "--executor", "ssh", "--hosts", "hosts.lua").out.count("up to date"), 1)

    def test_after_kill_9_a_job_whose_devices_read_busy_is_re_attached_at_once(self):
        # a real nvidia-smi shows the job's own device busy: re-attaching needs no free one
        self.ws.write("kiln.lua", 'task { name = "train", host = "v802", gpus = 1, outputs = {"m.txt"}, '
                      'run = "%sfor e in 1 2 3 4 5 6; do echo epoch $e; sleep 0.5; done; echo > m.txt" }\n' % self.START)
        p = self.ws.spawn("run", "--executor", "ssh", "--hosts", "hosts.lua")
        try:
            self.assertTrue(wait_for(lambda: len(self.starts()) == 1, timeout=30))
            self.lab.hosts["v802"].set_gpus(gpus(1, busy=(0,)))
            p.kill()
            p.communicate()
            r = self.kiln(timeout=30)
        finally:
            self.lab.hosts["v802"].set_gpus(self.HOSTS["v802"])
        self.assertEqual(r.rc, 0, r)
        self.assertIn("train: attached to ssh job", r.out)
        self.assertEqual(len(self.starts()), 1, "it ran once")
        self.assertIn("epoch 6\n", self.last_log("train"))

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

    def eval_taken_up_after_a_partition(self, seconds):
        """eval (eval_without_checkpoint) through a partition of its host for seconds, 8 steps
        in: it ran once, there, its job taken up. (its host, kiln's output)"""
        self.eval_without_checkpoint()
        home, out, rc = self.drop_the_working_host("partition", seconds, lambda home: None, after=8)
        self.assertEqual(rc, 0, out)
        self.assert_eval_ran_once_on(home)
        self.assertIn("which ran on while its host did not answer", out)
        return home, out

    def test_a_job_without_resume_state_that_ran_on_through_a_partition_is_re_attached(self):
        # no checkpoint: starting afresh elsewhere would throw away all it had done, so its
        # retry waits for the host (as long as the job had run, at most --host-wait) and takes
        # up the job that ran on there
        home, out = self.eval_taken_up_after_a_partition(1.5)
        self.assertIn("taking up its job there if the host answers soon (it may run on), else elsewhere", out)
        self.assertIn("host %s: 1 done, 0 failed, 1 lost with it and taken up again (it ran on there)" % home, out)
        self.assertIn("step 20\n", self.last_log("eval"))

    def test_a_host_back_between_its_retries_is_tried_once_more_before_its_job_is_given_up(self):
        # the host answers again 2.5 s after the drop: after its first retry (2 s) and before
        # its next (6 s), but within the wait (as long as the job had run, at least 3 s): it is
        # tried once more as the wait ends, and the job that ran on there is taken up rather
        # than started afresh on the free host a moment after its own came back
        self.eval_taken_up_after_a_partition(2.5)

    def test_after_kill_9_a_job_whose_host_does_not_answer_is_waited_for_and_taken_up(self):
        # kiln is killed, then the job's host drops off the network: the next kiln waits for
        # it (as long as the job has run) rather than start it afresh on the free host
        self.eval_without_checkpoint()
        p = self.ws.spawn("run", "--executor", "ssh", "--hosts", "hosts.lua")
        try:
            self.assertTrue(wait_for(lambda: len(self.ledger_of("v800") + self.ledger_of("v801")) >= 8, timeout=60))
        finally:
            p.kill()
            p.communicate()
        home = "v800" if self.ledger_of("v800") else "v801"
        self.lab.hosts[home].partition()
        run = self.ws.spawn("run", "--executor", "ssh", "--hosts", "hosts.lua")
        out, err = self.host_back_after(run, home, 1.5)
        self.assertEqual(run.returncode, 0, out + err)
        self.assert_eval_ran_once_on(home)
        self.assertIn("eval: attached to ssh job", out)

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

    def test_a_map_shard_that_ran_on_through_a_partition_is_re_attached_and_no_item_runs_twice(self):
        # the items it made while kiln could not reach it are brought back and recorded, not
        # made again on the other host
        self.two_hosts_one_job_each()
        self.ws.write("kiln.lua", 'local items = {}\nfor i = 1, 30 do items[#items + 1] = "i" .. i end\n'
                      'map { name = "cap", items = items, shards = 1, hosts = {"v800", "v801"}, output = "out/{item}.txt", '
                      'run = "while read it; do sleep 0.2; echo $it >> $HOME/ledger; echo $it > out/$it.txt; done < {items}" }\n')
        home, out, rc = self.drop_the_working_host("partition", 1.5, lambda home: None, after=12)
        self.assertEqual(rc, 0, out)
        self.assertEqual(self.ledger_of(home), ["i%d" % i for i in range(1, 31)], "every item once, on its host")
        self.assertEqual(self.ledger_of("v801" if home == "v800" else "v800"), [], "none made again elsewhere")
        self.assertIn("which ran on while its host did not answer", out)
        for i in range(1, 31):
            self.assertEqual(self.ws.read("out/i%d.txt" % i), "i%d\n" % i)
        again = self.ws.kiln("run", "--executor", "ssh", "--hosts", "hosts.lua")
        self.assertIn(" 0 ran,", again.out, again)

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

    def progress_through_a_long_partition(self, marker, on, steps=30, printed=False):
        """Task work (steps of 0.3 s, each written to KILN_PROGRESS, or with printed only printed
        as `step i/N`, read by log_progress; 1.3 s a step on a host whose home holds marker) on
        v800 or v801; marker is put on its host (on "home") or the other (on "other") 4 steps in,
        and its host is cut off for 4 s (--host-wait 0.5s): the lost job runs on there while
        attempt 2 runs on the other host. (home, other, output)"""
        self.two_hosts_one_job_each()
        report = "echo step $i/%d" % steps if printed else "echo $i/%d >> $KILN_PROGRESS" % steps
        self.ws.write("kiln.lua", 'task { name = "work", hosts = {"v800", "v801"}, outputs = {"w.txt"}, %srun = "for i in '
                      '$(seq %d); do echo line $i; echo $i >> $HOME/ledger; %s; sleep 0.3; '
                      '[ -e $HOME/%s ] && sleep 1; done; echo $KILN_HOST > w.txt" }\n'
                      % ('log_progress = "step (%d+)/(%d+)", ' if printed else "", steps, report, marker))

        def mark(home):
            name = home if on == "home" else ("v801" if home == "v800" else "v800")
            open(os.path.join(self.lab.hosts[name].home, marker), "w").close()
        home, out, rc = self.drop_the_working_host("partition", 4, mark, host_wait="0.5s", after=4)
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
        # on; the lost job is stopped there
        home, other, out = self.progress_through_a_long_partition("died", "home")
        self.assertNotIn("further along", out)
        self.assertEqual(self.ws.read("w.txt"), other + "\n")
        self.assertEqual(self.ledger_of(other), [str(i) for i in range(1, 31)])
        self.assertLess(len(self.ledger_of(home)), 30, "stopped there")

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

    def test_a_retry_whose_resume_host_stays_down_starts_afresh_elsewhere_and_says_so(self):
        recipe, home, other = self.resuming_task_failed_once()
        open(os.path.join(self.lab.hosts[other].home, "died"), "w").close()  # it fails once only
        self.lab.hosts[home].stop()
        t0 = time.monotonic()
        r = self.kiln("--host-wait", "3s")
        self.assertEqual(r.rc, 0, r)
        self.assertGreaterEqual(time.monotonic() - t0, 3, "it waited for its host first")
        self.assertEqual(self.ledger_of(other), ["1", "2", "3", "4", "5"])
        self.assertIn("# kiln: its resume state is on host %s, which has not answered for 3.0s (--host-wait, or as "
                      "long as the work kept there took): it starts afresh here" % home, self.last_log("train"))

    def test_a_retry_waits_for_its_resume_host_to_come_back(self):
        # the host holding its checkpoint drops (a reboot): the retry waits for it rather than
        # throw its epochs away on the free host; the rest of the grid runs meanwhile
        recipe, home, other = self.resuming_task_failed_once()
        self.lab.hosts[home].stop()
        self.ws.write("kiln.lua", recipe % ('task { name = "meanwhile", outputs = {"m.txt"}, run = "echo m > m.txt" }\n',
                                            "", self.RESUMING))
        run = self.ws.spawn("run", "--executor", "ssh", "--hosts", "hosts.lua", "--host-wait", "60s")
        try:
            deadline = time.monotonic() + 30
            while not self.ws.exists("m.txt") and time.monotonic() < deadline:
                time.sleep(0.1)
            self.assertTrue(self.ws.exists("m.txt"), "the other task ran while train waited")
            time.sleep(2)
            self.assertEqual(self.ledger_of(home), ["1", "2", "3"], "train has not run again yet")
            self.assertEqual(self.ledger_of(other), [])
            self.lab.hosts[home].start()
            out, err = run.communicate(timeout=90)
        finally:
            if run.poll() is None:
                run.kill()
        self.assertEqual(run.returncode, 0, out + err)
        self.assertEqual(self.ledger_of(home), ["1", "2", "3", "4", "5"], "continued where it stopped")
        self.assertEqual(self.ledger_of(other), [], "not started afresh on the free host")
        self.assertIn("# kiln: on host %s" % home, self.last_log("train"))
        self.assertIn("%s down (train waits for it up to 1m00s: its resume state is there)" % home, out)

if __name__ == "__main__":
    main()
