"""End-to-end: resume state and running work on ssh hosts that drop, against three real sshd
servers (sshhosts.py). A checkpoint cut short on a host is put back from the copy taken
there, and a checkpoint folder cut short or stopped between its files is removed before the
retry; the next attempt of a task continuing from resume state a host holds goes back to
that host (waiting for room there; each node of a multi-node job to its own), waits for it
when it does not answer (a reboot: as long as the work kept there took, at least
--host-wait) and only then starts afresh elsewhere, saying so; a job that ran on through a
dropped network is re-attached, not restarted (one without resume state and a map{} shard
too: their retries wait for the host as long as the job had run), as is one a killed kiln
left whose devices read busy or whose host answers late. test_ssh_lost.py: what a killed
kiln left; test_ssh_stale.py: lost jobs whose work went elsewhere."""
import os
import signal
import time
import unittest

from kilntest import lua_str, main, processes_matching, text_now, wait_for
import sshhosts
from sshwork import HostWork
from test_torchrun import PYTHON, SKIP as NO_TORCH

SKIP = sshhosts.skip_reason()
gpus = sshhosts.gpus


@unittest.skipIf(SKIP, SKIP or "")
class SshResume(HostWork):
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

    def ledger_on_v800(self):
        with open(os.path.join(self.lab.hosts["v800"].workdir(), "ledger")) as f:
            return [int(line.split()[1]) for line in f]

    def timed_out_twice_there(self, trainer, fields, run):
        """Runs trainer (one of test_failures', 400 steps) as task t on v800 with its
        fields, a 5 s timeout and one retry on it: both attempts' logs, each of a save.
        The timeout leaves Python time to start over ssh on a loaded machine: a signal before
        the script's handler is set is Python's default end, no save (a real trainer's
        import of torch takes longer still); 400 steps keep the faster retry from finishing."""
        self.ws.write("train.py", trainer.replace("step < 40", "step < 400"))
        self.ws.write("kiln.lua", 'task { name = "t", host = "v800", inputs = {"train.py"}, outputs = {"model.txt"}, '
                      'resume = {"ckpt"}, timeout = 5, retries = 1, retry_on = {"timeout"}, %s, run = %s }\n'
                      % (fields, lua_str(run)))
        r = self.kiln()
        self.assertEqual(r.rc, 1, r)
        logs = self.attempt_logs("t")
        self.assertEqual(len(logs), 2, logs)
        for log in logs:
            self.assertIn("saved at step", log)
            self.assertIn("timed out after 5.0s", log)
        return logs

    def test_a_command_that_saves_when_told_to_stop_finishes_its_save_there(self):
        # a preemption-safe trainer: on SIGTERM it says so, saves (a second), says so. The
        # first attempt copies its input (a job whose log tee streams), the retry goes to
        # the same host, where its input is, through the host's agent; a shell string runs
        # in a subshell there. Each must be waited for until its save is done, with its lines
        # in the log (tee stopped with the rest, the first print failed and the save with it;
        # the subshell stopped at once, the job looked ended while it still saved)
        self.ws.write("in.txt", "data\n")
        self.ws.write("kiln.lua", """
task { name = "t", host = "v800", inputs = {"in.txt"}, outputs = {"out.txt"}, resume = {"ckpt.txt"}, timeout = 3,
       kill_grace = 10, retries = 1, retry_on = {"timeout"},
       run = "[ -e ckpt.txt ] && echo resumed from $(cat ckpt.txt); trap 'echo saving; sleep 1; echo saved-$KILN_ATTEMPT > ckpt.txt; echo saved; exit 0' TERM; echo working; sleep 30 & wait" }
""")
        r = self.kiln()
        self.assertEqual(r.rc, 1, r)
        logs = self.attempt_logs("t")
        self.assertEqual(len(logs), 2, logs)
        for log in logs:
            self.assertIn("working\nsaving\nsaved\n", log)
            self.assertIn("timed out after 3.0s", log)  # 3 s: the trap set over ssh under load
        self.assertIn("resumed from saved-1", logs[1])
        with open(os.path.join(self.lab.hosts["v800"].workdir(), "ckpt.txt")) as f:
            self.assertEqual(f.read(), "saved-2\n")

    def test_a_script_that_saves_on_keyboard_interrupt_gets_sigint_there(self):
        # stop_signal = "INT": the hand-written trainer of test_failures.StopSignal, on a host,
        # stopped by its timeout twice, saves at each (the first attempt's job streams its log
        # through tee, the retry's goes through the host's agent), and the retry continues
        import test_failures
        self.timed_out_twice_there(test_failures.StopSignal.TRAINER, 'stop_signal = "INT"', "%s train.py" % PYTHON)
        with open(os.path.join(self.lab.hosts["v800"].workdir(), "ledger")) as f:
            starts = [line for line in f if line.startswith("start")]
        self.assertEqual(len(starts), 2)
        self.assertNotEqual(starts[1], "start 0\n", "the retry continued from the first save")
        # nothing left there: the checkpoint watcher, started in the background (where SIGINT
        # is ignored), ends with the shell that ran the command
        self.assertTrue(wait_for(lambda: not self.lab.jobs_running(), timeout=3), self.lab.jobs_running())

    def test_a_trainer_piped_into_tee_there_saves_through_it(self):
        # test_failures.StopUnderAShell's trainer, `| tee run.log` under sh on a host, stopped
        # by its timeout: kiln's tee there (first on the job's PATH) outlives the signal, so
        # the save's prints reach run.log and the log, told once; the retry continues
        steps = self.saver_told_once_each_time("%s train.py 2>&1 | tee -a run.log; echo after" % PYTHON)
        with open(os.path.join(self.lab.hosts["v800"].workdir(), "run.log")) as f:
            self.assertEqual(f.read().count("saved at step"), 2, "tee outlived each stop")
        self.assertEqual(sorted(set(steps)), list(range(1, max(steps) + 1)))

    def test_a_trainer_under_timeout_through_grep_there_is_told_and_saves(self):
        # GNU timeout moves itself and the trainer to a process group of their own: the
        # stop went to the job's group (its shells, grep and tee), the trainer trained on
        # untold and the grace's SIGKILL missed it; and grep, no shim of kiln's, ended at
        # once, so a told trainer's first save print hit a closed pipe. kiln_kill tells the
        # job's session, and leaves a filter reading a pipe to end with its input.
        self.saver_told_once_each_time("timeout 600 %s train.py 2>&1 | grep --line-buffered -v DEBUG | "
                                       "tee -a run.log; echo after" % PYTHON)
        self.assertTrue(wait_for(lambda: not self.lab.jobs_running(), timeout=3), self.lab.jobs_running())

    @unittest.skipIf(NO_TORCH, NO_TORCH or "")
    def test_a_pytorch_trainer_leaves_its_dataloader_workers_to_itself_there_and_saves(self):
        # test_failures.DataLoaderWorkers on a host: kiln_kill told the DataLoader workers
        # too, one died of it and PyTorch raised that inside the trainer's save handler
        import test_failures
        self.ws.write("train.py", test_failures.DataLoaderWorkers.TRAINER)
        self.ws.write("kiln.lua", 'task { name = "train", host = "v800", inputs = {"train.py"}, outputs = {"model.pt"}, '
                      'resume = {"ckpt.pt"}, run = {"%s", "train.py"} }\n' % PYTHON)
        ledger = os.path.join(self.lab.hosts["v800"].workdir(), "ledger")
        p = self.ws.spawn("run", "--executor", "ssh", "--hosts", "hosts.lua")
        self.assertTrue(wait_for(lambda: os.path.exists(ledger) and len(open(ledger).read().split()) >= 10, 90))
        self.ctrl_c(p)
        log = self.attempt_logs("train")[0]
        self.assertNotIn("killed by signal", log)
        self.assertIn("saved at step", log)
        self.assertTrue(wait_for(lambda: not self.lab.jobs_running(), timeout=10), self.lab.jobs_running())
        r = self.kiln()
        self.assertEqual(r.rc, 0, r)
        with open(ledger) as f:
            steps = [int(x) for x in f.read().split()]
        self.assertEqual(sorted(set(steps)), list(range(1, 121)))
        self.assertLessEqual(len(steps), 121, "continued from the save: %s" % steps)

    def saver_told_once_each_time(self, run):
        """test_failures.StopUnderAShell's trainer run by the shell string run, timed out
        twice there: each attempt's save was told once and printed whole, and the retry
        continued from the first's save. The steps made, from the ledger there."""
        import test_failures
        for log in self.timed_out_twice_there(test_failures.StopUnderAShell.TRAINER, "kill_grace = 10", run):
            self.assertEqual(log.count("saving at step"), 1, log)
            self.assertNotIn("BrokenPipeError", log)
        with open(os.path.join(self.lab.hosts["v800"].workdir(), "ledger")) as f:
            steps = [int(x) for x in f.read().split()]
        self.assertLessEqual(len(steps), max(steps) + 1, "the retry continued from the save")
        return steps

    def saver_on_v800(self, fields, save_s):
        """test_failures.StopUnderAShell's trainer (400 steps, a save of save_s seconds) as
        task t on v800 with fields, `| tee -a run.log` under sh, started: (kiln, its workdir
        there) once it steps."""
        import test_failures
        self.ws.write("train.py", test_failures.StopUnderAShell.TRAINER.replace("step < 40", "step < 400")
                      .replace("time.sleep(0.5)", "time.sleep(%s)" % save_s))
        self.ws.write("kiln.lua", 'task { name = "t", host = "v800", inputs = {"train.py"}, outputs = {"model.txt"}, '
                      'resume = {"ckpt"}, kill_grace = 10, %s run = %s }\n'
                      % (fields, lua_str("%s train.py 2>&1 | tee -a run.log; echo after" % PYTHON)))
        p = self.ws.spawn("run", "--executor", "ssh", "--hosts", "hosts.lua")
        there = self.lab.hosts["v800"].workdir()
        self.assertTrue(wait_for(lambda: os.path.exists(os.path.join(there, "ledger")), 30))
        return p, there

    def drop_connections_then_the_save_lands(self, p, there, rc):
        """Kills this run's ssh masters (every stream drops; the host answers): kiln ends with
        rc once the save there has, its lines in the log after a follow taken up again.
        The log."""
        masters = processes_matching("ControlMaster=yes", cwd=self.ws.dir)
        self.assertTrue(masters)
        for pid in masters:
            os.kill(pid, signal.SIGKILL)
        out, err = p.communicate(timeout=90)
        self.assertEqual(p.returncode, rc, out + err)
        self.assertTrue(os.path.exists(os.path.join(there, "ckpt")), "kiln ended once the save had")
        self.assertEqual(self.lab.jobs_running(self.lab.hosts["v800"]), [])
        self.assertNotIn("DOWN", out)
        log = self.ws.read(".kiln/logs/t@1.log")
        self.assertIn("dropped; following the job there again", log)
        self.assertEqual(log.count("saving at step"), 1, log)
        self.assertIn("saved at step", log)
        return log

    def test_a_trainer_whose_connection_dropped_is_waited_for_through_its_save(self):
        # the connection drops mid-run (the master dies: a network blip), kiln follows the job
        # again, then its timeout stops it: the attempt ends when the trainer has saved, with
        # the save's lines in the log. Before, the job's shell said "Terminated" on the
        # connection that had dropped, died of SIGPIPE, and the attempt was recorded ended
        # mid-save, its last lines lost (a retry would have started beside the saving trainer)
        p, there = self.saver_on_v800("timeout = 6,", 0.5)
        log = self.drop_connections_then_the_save_lands(p, there, 1)
        self.assertIn("timed out after 6.0s", log)

    def test_a_trainer_saving_at_a_ctrl_c_when_the_connection_drops_is_waited_for(self):
        # Ctrl-C: the trainer there starts its save (two seconds), then kiln's connections
        # drop. Before, a job told to stop whose stream dropped was given up as lost with its
        # host: kiln ended beside the saving trainer and called a host that answered down
        p, there = self.saver_on_v800("", 2)
        p.send_signal(signal.SIGINT)
        # (run.log is tee's: on a loaded machine it may not have opened it yet)
        self.assertTrue(wait_for(lambda: "saving at step" in text_now(os.path.join(there, "run.log")), 30))
        self.drop_connections_then_the_save_lands(p, there, 130)

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
