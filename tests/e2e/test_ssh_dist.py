"""End-to-end: distributed work and map{} over ssh hosts (sshhosts.py: three real sshd
servers). torchrun on one host meets at the port kiln reserved; over two hosts its nodes
all-reduce with gloo, stop together, and are re-attached after kill -9, as ranks are, each
started by the kiln copied there; a map's two shards on two hosts survive kill -9 and Ctrl-C
item by item (a finished item kept, with atomic_outputs), and a shard lost with its host
keeps the items harvested from it."""
import collections
import glob
import os
import re
import signal
import sqlite3
import shutil
import time
import unittest

from kilntest import KilnTestCase, main, wait_for
import sshhosts
from test_torchrun import PYTHON, SKIP as NO_TORCH

SKIP = sshhosts.skip_reason()
gpus = sshhosts.gpus


def gloo_sum_worker(out):
    """A torch worker whose ranks all-reduce rank + 1 over gloo; rank 0 writes 'WORLD SUM' to out."""
    return ("import torch, torch.distributed as dist\n"
            "dist.init_process_group('gloo')\n"
            "t = torch.ones(1) * (dist.get_rank() + 1)\n"
            "dist.all_reduce(t)\n"
            "if dist.get_rank() == 0: open(%r, 'w').write('%%d %%d' %% (dist.get_world_size(), int(t.item())))\n" % out)


@unittest.skipIf(SKIP, SKIP or "")
class SshDist(sshhosts.SshCase, KilnTestCase):
    HOSTS = {"v800": gpus(2), "v801": gpus(2, busy=(1,)), "v802": gpus(1)}

    @unittest.skipIf(NO_TORCH, NO_TORCH)
    def test_torchrun_on_one_host_for_real(self):
        # torchrun's rendezvous on a host is the port kiln reserved, not a Slurm node's
        self.ws.write("worker.py", gloo_sum_worker("o.txt") +
                      "import os\nopen('errfile.txt', 'w').write(os.environ['TORCHELASTIC_ERROR_FILE'])\n")
        self.ws.write("kiln.lua", 'task { name = "tr/host", host = "v800", inputs = {"worker.py"}, outputs = {"o.txt", "errfile.txt"}, '
                      'cpus = 2, torchrun = { nproc = 2 }, run = { "%s", "worker.py" } }\n' % PYTHON)
        r = self.kiln(timeout=300)
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(self.ws.read("o.txt"), "2 3", "two ranks all-reduced 1 + 2")
        # torchrun's folder for the run is in the job's folder on the host, which goes with
        # it: none is left in the host's /tmp per run
        workdir = self.lab.hosts["v800"].workdir()
        self.assertTrue(self.ws.read("errfile.txt").startswith(os.path.join(workdir, ".kiln/jobs/")),
                        self.ws.read("errfile.txt"))
        self.assertTrue(wait_for(lambda: not os.path.exists(os.path.dirname(self.ws.read("errfile.txt"))), timeout=30),
                        "the job's folder went when kiln collected it")

    def ctrl_c_on_v800_saves_once(self, task, recipe):
        """Runs recipe (task: test_torchrun's INTERRUPT_TRAINER under an elastic agent on v800,
        stop_signal INT), Ctrl-Cs it once training got going; checks rank 0's save was not cut
        short (no worker interrupted twice) and the next run continued from it."""
        import test_torchrun
        self.ws.write("train.py", test_torchrun.INTERRUPT_TRAINER)
        self.ws.write("kiln.lua", recipe)
        ledger = os.path.join(self.lab.hosts["v800"].workdir(), "ledger")
        def steps():
            if not os.path.exists(ledger):
                return []
            with open(ledger) as f:
                return [int(line.split()[1]) for line in f]
        p = self.ws.spawn("run", "--executor", "ssh", "--hosts", "hosts.lua")
        if not wait_for(lambda: len(steps()) >= 4, timeout=120):
            p.kill()
            self.fail("training got going: %s %s" % p.communicate())
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=120)
        self.assertEqual(p.returncode, 130, out + err)
        log = self.ws.read(".kiln/logs/%s@1.log" % task)
        self.assertIn("saved\n", log, "the save was not cut short")
        self.assertNotIn("KeyboardInterrupt", log, "no worker was interrupted twice")
        saved = int(re.search(r"interrupted: saving at step (\d+)", log).group(1))  # lines may interleave
        r = self.kiln(timeout=300)
        self.assertEqual(r.rc, 0, r)
        self.assertIn("rank 0 resumed from step %d" % saved, self.ws.read(".kiln/logs/%s@2.log" % task))
        self.assertEqual(sorted(set(steps())), list(range(1, 31)), "none was skipped")
        self.assertLessEqual(len(steps()), 31, "at most the step in flight ran twice: %s" % steps())

    @unittest.skipIf(NO_TORCH, NO_TORCH)
    def test_a_ctrl_c_reaches_each_torchrun_worker_on_a_host_once(self):
        # as locally (test_torchrun): torchrun passes stop_signal's SIGINT on to its workers;
        # from the job's group too, the save of rank 0 would be cut short by a second one
        self.ctrl_c_on_v800_saves_once("tr/int", 'task { name = "tr/int", host = "v800", inputs = {"train.py"}, '
                                       'outputs = {"model.pt"}, resume = {"ckpt.pt"}, cpus = 2, stop_signal = "INT", '
                                       'torchrun = { nproc = 2 }, run = { "%s", "train.py" } }\n' % PYTHON)

    @unittest.skipIf(NO_TORCH, NO_TORCH)
    def test_an_elastic_agent_inside_another_launcher_tells_its_workers_alone_on_a_host(self):
        # kiln_kill there, as locally: an agent no command line names (accelerate launch runs
        # it in its own python) is known by its workers' TORCHELASTIC_RUN_ID
        self.ws.write("launch.py", "from torch.distributed.run import parse_args, run\n"
                      "run(parse_args(['--standalone', '--nproc_per_node', '2', '--redirects=9:0', '--tee=9:0', "
                      "'train.py']))\n")
        self.ctrl_c_on_v800_saves_once("tr/acc", 'task { name = "tr/acc", host = "v800", inputs = {"train.py", '
                                       '"launch.py"}, outputs = {"model.pt"}, resume = {"ckpt.pt"}, cpus = 2, '
                                       'stop_signal = "INT", run = { "%s", "launch.py" } }\n' % PYTHON)

    # a shard's worker: in list order, one item at a time, each noted in the host's ledger
    MAP_WORKER = ('while read it; do sleep $SLEEP; echo "$it $KILN_HOST" >> $HOME/ledger.txt; '
                  'tr a-z A-Z < in/$it.txt > out/$it.tmp && mv out/$it.tmp out/$it.txt; done < "$1"\n')

    def ledger(self):
        out = []
        for name, h in self.lab.hosts.items():
            p = os.path.join(h.home, "ledger.txt")
            if os.path.exists(p):
                with open(p) as f:
                    out += [(line.split()[0], name) for line in f.read().splitlines()]
        return out

    def recorded_items(self):
        db = sqlite3.connect(self.ws.path(".kiln/state.db"))
        n = db.execute("SELECT count(*) FROM last_success WHERE task LIKE 'cap/%'").fetchone()[0]
        db.close()
        return n

    def map_over_two_hosts(self, n, sleep):
        """A map of n items (in/iNN.txt upper-cased into out/) in two shards on v800 and v801,
        each item taking sleep seconds; the hosts' ledgers start empty. Returns the items."""
        for h in self.lab.hosts.values():
            if os.path.exists(os.path.join(h.home, "ledger.txt")):
                os.remove(os.path.join(h.home, "ledger.txt"))
        items = ["i%02d" % i for i in range(n)]
        for it in items:
            self.ws.write("in/%s.txt" % it, "text of %s\n" % it)
        self.ws.write("work.sh", self.MAP_WORKER)
        self.ws.write("kiln.lua", """
local items = {}
for i = 0, %d do items[#items + 1] = string.format("i%%02d", i) end
map { name = "cap", items = items, shards = 2, hosts = {"v800", "v801"}, env = { SLEEP = "%s" },
      inputs = {"work.sh"}, input = "in/{item}.txt", output = "out/{item}.txt", run = "sh work.sh {items}" }
""" % (n - 1, sleep))
        return items

    def test_map_over_two_hosts_survives_kill_9_and_ctrl_c_item_by_item(self):
        items = self.map_over_two_hosts(48, "0.15")
        p = self.ws.spawn("run", "--executor", "ssh", "--hosts", "hosts.lua")
        self.assertTrue(wait_for(lambda: len(self.ledger()) >= 12, timeout=60), "the shards got going")
        p.kill()
        p.communicate()
        r = self.kiln(timeout=120)
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(len(re.findall(r"attached to ssh job", r.out)), 2, r)
        ran = self.ledger()
        self.assertEqual(sorted(it for it, _ in ran), items, "every item ran once, over the kill -9")
        self.assertEqual({h for _, h in ran}, {"v800", "v801"}, "both hosts worked")
        for it in items:
            self.assertEqual(self.ws.read("out/%s.txt" % it), "TEXT OF %s\n" % it.upper())
        self.assertEqual(self.recorded_items(), 48)
        r = self.kiln()
        self.assertIn("up to date", r.out)
        self.assertEqual(len(self.ledger()), 48, "a no-op starts nothing")
        # an edited worker: every item again; Ctrl-C in the middle keeps what was made,
        # harvested while the shards ran or brought back as they stopped
        self.ws.write("work.sh", self.MAP_WORKER.replace("sleep $SLEEP;", "sleep $SLEEP; :;"))
        p = self.ws.spawn("run", "--executor", "ssh", "--hosts", "hosts.lua")
        if not wait_for(lambda: len(self.ledger()) >= 48 + 30, timeout=60):
            p.kill()
            self.fail("the shards got going: %s %s" % p.communicate())
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=60)
        self.assertEqual(p.returncode, 130, out + err)
        before = len(self.ledger())
        r = self.kiln(timeout=120)
        self.assertEqual(r.rc, 0, r)
        kept = int(re.search(r"(\d+) up to date", r.out).group(1))
        if kept < 26:  # what the shards' attempts said of their ends, for the failure's message
            logs = glob.glob(self.ws.path(".kiln/logs/**/cap*.log"), recursive=True)
            out += "".join("\n--- %s:\n%s" % (p, open(p).read()[-1500:]) for p in sorted(logs))
        self.assertGreaterEqual(kept, 26, "items made before the Ctrl-C were recorded (%s)" % out)
        again = self.ledger()[before:]
        self.assertLessEqual(len(again), 48 - kept + 2, "only the unrecorded items ran again (one in flight per shard)")
        self.assertEqual(self.recorded_items(), 48)
        runs = collections.Counter(it for it, _ in self.ledger())
        self.assertEqual(sorted(runs), items)
        self.assertTrue(all(n >= 2 for n in runs.values()), "every item ran again after the edit: %s" % runs)

    def test_ctrl_c_keeps_the_item_a_host_shard_finished_with_atomic_outputs(self):
        # the item it was on at the Ctrl-C comes back with the shard's outputs and, renamed
        # into place (atomic_outputs), is recorded rather than made again
        self.map_over_two_hosts(4, "0")
        self.ws.write("work.sh", self.MAP_WORKER.replace(
            "done", 'if [ $it = i01 ] && [ ! -e $HOME/paused ]; then touch $HOME/paused; sleep 60; fi; done'))
        self.ws.write("kiln.lua", self.ws.read("kiln.lua").replace('shards = 2, hosts = {"v800", "v801"}',
                                                                   'shards = 1, host = "v800", atomic_outputs = true'))
        paused = os.path.join(self.lab.hosts["v800"].home, "paused")
        if os.path.exists(paused):
            os.remove(paused)
        p = self.ws.spawn("run", "--executor", "ssh", "--hosts", "hosts.lua")
        if not wait_for(lambda: os.path.exists(paused), timeout=60):
            p.kill()
            self.fail("the shard got going: %s %s" % p.communicate())
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=60)
        self.assertEqual(p.returncode, 130, out + err)
        self.assertEqual(self.recorded_items(), 2, out + err)
        r = self.kiln(timeout=120)
        self.assertEqual(r.rc, 0, r)
        self.assertEqual([it for it, _ in self.ledger()], ["i00", "i01", "i02", "i03"], "nothing ran twice")

    def test_a_map_shard_lost_with_its_host_keeps_the_items_harvested_from_it(self):
        self.map_over_two_hosts(40, "0.4")  # 8 s a shard: a harvest or two before the loss
        p = self.ws.spawn("run", "--executor", "ssh", "--hosts", "hosts.lua")

        def recorded_from_v801():  # the state is read while kiln writes it (WAL: a reader never blocks it)
            try:
                db = sqlite3.connect("file:%s?mode=ro" % self.ws.path(".kiln/state.db"), uri=True, timeout=5)
                done = {r[0][len("cap/"):] for r in db.execute("SELECT task FROM last_success WHERE task LIKE 'cap/%'")}
                db.close()
            except sqlite3.Error:
                return set()
            return done & {it for it, h in self.ledger() if h == "v801"}
        # once a harvest has brought v801's first items back and they are recorded (the
        # harvests come every 3 s of the shard, however long its start took), v801 goes away
        self.assertTrue(wait_for(lambda: len(recorded_from_v801()) >= 3, timeout=60), "a harvest from v801")
        kept = recorded_from_v801()
        self.lab.hosts["v801"].stop()
        out, err = p.communicate(timeout=120)
        self.assertEqual(p.returncode, 0, out + err)
        self.assertIn("lost with host v801", out)
        ran = self.ledger()
        redone = {it for it, h in ran if h == "v800"} & kept
        self.assertEqual(sorted(set(it for it, _ in ran)), ["i%02d" % i for i in range(40)])
        self.assertEqual(redone, set(), "items harvested before the loss stay done: %s" % ran)
        for i in range(40):
            self.assertEqual(self.ws.read("out/i%02d.txt" % i), "TEXT OF I%02d\n" % i)

    TWO_NODES = ('task { name = "tr/nodes", hosts = {"v800", "v801"}, inputs = {"worker.py"}, outputs = {"o.txt"}, '
                 'cpus = 1, torchrun = { nnodes = 2, nproc = 1 }, run = { "%s", "worker.py" } }\n' % PYTHON)

    @unittest.skipIf(NO_TORCH, NO_TORCH or "")
    def test_torchrun_over_two_hosts_all_reduces_and_stops_together(self):
        # one launcher per host, the rendezvous on the first; rank 0's host brings o.txt back
        self.ws.write("worker.py", "import os, sys, torch, torch.distributed as dist\n"
                      "dist.init_process_group('gloo')\n"
                      "t = torch.ones(1) * (dist.get_rank() + 1)\n"
                      "dist.all_reduce(t)\n"
                      "hosts = [None] * dist.get_world_size()\n"
                      "dist.all_gather_object(hosts, os.environ['KILN_HOST'] + '/' + os.environ['KILN_NODE_RANK'])\n"
                      "print('rank', dist.get_rank(), 'on', os.environ['KILN_HOST'], flush=True)\n"
                      "if dist.get_rank() == 0: open('o.txt', 'w').write('%d %d %s' % (dist.get_world_size(), int(t.item()), ' '.join(sorted(hosts))))\n"
                      # both leave together: a rank whose peer closed its gloo pair first may
                      # abort on the way out (SIGABRT in gloo's thread), kiln or not
                      "dist.barrier()\ndist.destroy_process_group()\n")
        self.ws.write("kiln.lua", self.TWO_NODES)
        r = self.kiln(timeout=300)
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(self.ws.read("o.txt"), "2 3 v800/0 v801/1", "two ranks on two hosts all-reduced 1 + 2")
        log = self.ws.read(".kiln/logs/tr/nodes@1.log")
        self.assertIn("node 1 on host v801", log)
        self.assertIn("rank 1 on v801", log, "the second node's stream joins the log")
        self.assertIn("the nodes meet at ", log)
        # the second node's launcher dies (its whole group killed): the job fails at once and
        # the first node, whose rank would wait on, is stopped with it
        self.ws.write("worker.py", "import os, signal, time, torch.distributed as dist\n"
                      "dist.init_process_group('gloo')\n"
                      "if os.environ['KILN_NODE_RANK'] == '1': time.sleep(1); os.killpg(0, signal.SIGKILL)\n"
                      "time.sleep(120)  # kiln-ssh-test-nodes\n")
        started = time.time()
        r = self.kiln(timeout=300)
        self.assertEqual(r.rc, 1, r)
        self.assertIn("node 1 (v801)", r.out)
        self.assertLess(time.time() - started, 60, "the job ended with its node, not with the rank left waiting")
        self.assertTrue(wait_for(lambda: not self.lab.jobs_running(), timeout=30),
                        "the first node was stopped with the second")
        # a job that spans more hosts than it may use fails at once, in words
        self.ws.write("kiln.lua", self.TWO_NODES.replace('hosts = {"v800", "v801"}', 'host = "v802"'))
        r = self.kiln(timeout=120)
        self.assertEqual(r.rc, 1, r)
        self.assertIn("spans 2 nodes", r.out)
        self.assertIn("[unschedulable]", r.out)

    @unittest.skipIf(NO_TORCH, NO_TORCH or "")
    def test_torchrun_and_ranks_over_two_hosts_are_reattached_after_kill_9(self):
        ranks = self.TWO_NODES.replace("torchrun = { nnodes = 2, nproc = 1 }", "ranks = 1, nnodes = 2")
        for recipe in (self.TWO_NODES, ranks):
            for h in self.lab.hosts.values():
                if os.path.exists(os.path.join(h.home, "trace.txt")):
                    os.remove(os.path.join(h.home, "trace.txt"))
            shutil.rmtree(self.ws.path(".kiln"), ignore_errors=True)
            if self.ws.exists("o.txt"):
                os.remove(self.ws.path("o.txt"))
            self.ws.write("worker.py", "import os, time, torch, torch.distributed as dist\n"
                          "dist.init_process_group('gloo')\n"
                          "open(os.path.join(os.environ['HOME'], 'trace.txt'), 'a').write('start node%s\\n' % os.environ['KILN_NODE_RANK'])\n"
                          "time.sleep(4)\n"
                          "t = torch.ones(1)\n"
                          "dist.all_reduce(t)\n"
                          "if dist.get_rank() == 0: open('o.txt', 'w').write('%d' % int(t.item()))\n")
            self.ws.write("kiln.lua", recipe)
            p = self.ws.spawn("run", "--executor", "ssh", "--hosts", "hosts.lua")
            self.assertTrue(wait_for(lambda: len(self.starts()) == 2, timeout=60), "both nodes' ranks started")
            p.kill()
            p.communicate()
            r = self.kiln(timeout=300)
            self.assertEqual(r.rc, 0, r)
            self.assertEqual(len(re.findall(r"attached to ssh job", r.out)), 1, r)
            self.assertEqual(sorted(self.starts()), [("v800", "node0"), ("v801", "node1")], "no node started twice")
            self.assertEqual(self.ws.read("o.txt"), "2")
            log = self.ws.read(".kiln/logs/tr/nodes@1.log")
            self.assertIn("node 1's log", log)

    def test_ranks_on_a_host_and_over_two_hosts_are_started_by_the_kiln_copied_there(self):
        self.ws.write("kiln.lua", 'task { name = "ok", host = "v801", ranks = 2, outputs = {"seen"}, '
                      'run = "echo rank={rank} of {world_size} on $KILN_HOST >> seen" }\n')
        r = self.kiln()
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(sorted(self.ws.read("seen").splitlines()), ["rank=0 of 2 on v801", "rank=1 of 2 on v801"])
        self.assertTrue(os.path.exists(os.path.join(self.lab.hosts["v801"].workdir(), ".kiln/bin/kiln")))
        # ranks over two hosts: one kiln launch per host, ranks 0-1 on the first, 2-3 on the
        # second, all told the first host's address and a port found free there
        self.ws.write("kiln.lua", 'task { name = "two", ranks = 2, nnodes = 2, hosts = {"v800", "v802"}, '
                      'outputs = {"seen2"}, run = "echo rank={rank}/{world_size} local={local_rank} on $KILN_HOST '
                      'meets $MASTER_ADDR:$MASTER_PORT >> $HOME/ranks.txt; [ {rank} = 0 ] && echo done > seen2; true" }\n')
        r = self.kiln(timeout=120)
        self.assertEqual(r.rc, 0, r)
        seen = []
        for name in ("v800", "v802"):
            path = os.path.join(self.lab.hosts[name].home, "ranks.txt")
            if os.path.exists(path):
                with open(path) as f:
                    seen += f.read().splitlines()
                os.remove(path)
        ranks = sorted(line.split(" meets ")[0] for line in seen)
        self.assertEqual(ranks, ["rank=0/4 local=0 on v800", "rank=1/4 local=1 on v800", "rank=2/4 local=0 on v802",
                                 "rank=3/4 local=1 on v802"], seen)
        self.assertEqual(len({line.split(" meets ")[1] for line in seen}), 1, "one rendezvous for all: %s" % seen)
        self.assertEqual(self.ws.read("seen2"), "done\n", "the first node's output came back")

    @unittest.skipIf(NO_TORCH, NO_TORCH or "")
    def test_ranks_over_two_hosts_all_reduce_with_gloo(self):
        self.ws.write("worker.py", gloo_sum_worker("sum.txt"))
        self.ws.write("kiln.lua", 'task { name = "ar", ranks = 2, nnodes = 2, hosts = {"v800", "v801"}, inputs = {"worker.py"}, '
                      'outputs = {"sum.txt"}, run = { "%s", "worker.py" } }\n' % PYTHON)
        r = self.kiln(timeout=300)
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(self.ws.read("sum.txt"), "4 10", "four ranks on two hosts all-reduced 1 + 2 + 3 + 4")


if __name__ == "__main__":
    main()
