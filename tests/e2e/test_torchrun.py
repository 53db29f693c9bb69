"""End-to-end with real PyTorch (gloo, CPU): torchrun tasks get a rendezvous port of their
own and their process count. They skip (with the reason) where Debian's python3-torch is
not installed."""
import os
import re
import shutil
import signal
import subprocess
import tempfile
import unittest

from kilntest import KilnTestCase, main, wait_for

PYTHON = "/usr/bin/python3"


def torch_missing():
    try:
        p = subprocess.run([PYTHON, "-c", "import torch, torchvision"], capture_output=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as e:
        return str(e)
    return None if p.returncode == 0 else "python3-torch / python3-torchvision are not installed (scripts/install-deps.sh)"


SKIP = torch_missing()

# joins the group torchrun formed and records what it saw; with argv[2] = N it also waits
# (at most 120 s) until N tasks are inside their groups at once, which only happens when
# kiln runs them at the same time; rank 0 writes one line per task
WORKER = r"""
import os, sys, time, torch.distributed as dist
out, together = sys.argv[1], int(sys.argv[2])
dist.init_process_group("gloo")
rank, world = dist.get_rank(), dist.get_world_size()
os.makedirs("arrived", exist_ok=True)
with open(out + ".trace", "a") as f:
    f.write("%s start %.6f\n" % (os.environ["KILN_TASK"], time.time()))
if rank == 0:
    open("arrived/" + os.environ["KILN_TASK"].replace("/", "_"), "w").close()
deadline = time.time() + 120
while len(os.listdir("arrived")) < together and time.time() < deadline:
    time.sleep(0.05)
met = len(os.listdir("arrived")) >= together
time.sleep(0.5)
dist.barrier()
with open(out + ".trace", "a") as f:
    f.write("%s end %.6f\n" % (os.environ["KILN_TASK"], time.time()))
dist.destroy_process_group()
if rank == 0:
    open(out, "w").write("%d %s %s %s\n" % (world, os.environ["KILN_PORT"], os.environ["LOCAL_WORLD_SIZE"], met))
    open(out + ".errfile", "w").write(os.environ["TORCHELASTIC_ERROR_FILE"])
"""


# A DDP trainer written the way the well-known tutorial's is: it loads snapshot.pt at start
# when there is one ("Resuming training from snapshot at Epoch N"), saves it after every
# epoch from rank 0, and knows nothing of kiln. Rank 0 appends each epoch to the ledger.
SNAPSHOT_TRAINER = r"""
import os, sys, time, torch, torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader, TensorDataset
from torch.utils.data.distributed import DistributedSampler
total = int(sys.argv[1])
dist.init_process_group("gloo")
rank = dist.get_rank()
torch.manual_seed(0)
data = TensorDataset(torch.randn(256, 20), torch.randn(256, 1))
loader = DataLoader(data, batch_size=32, sampler=DistributedSampler(data))
model = torch.nn.Linear(20, 1)
epochs_run = 0
if os.path.exists("snapshot.pt"):
    snap = torch.load("snapshot.pt")
    model.load_state_dict(snap["MODEL_STATE"])
    epochs_run = snap["EPOCHS_RUN"]
    print(f"Resuming training from snapshot at Epoch {epochs_run}", flush=True)
model = DDP(model)
opt = torch.optim.SGD(model.parameters(), lr=0.01)
for epoch in range(epochs_run, total):
    loader.sampler.set_epoch(epoch)
    for x, y in loader:
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        opt.step()
    time.sleep(0.4)
    if rank == 0:
        with open("ledger", "a") as f:
            f.write("epoch %d\n" % epoch)
        torch.save({"MODEL_STATE": model.module.state_dict(), "EPOCHS_RUN": epoch + 1}, "snapshot.pt.tmp")
        os.replace("snapshot.pt.tmp", "snapshot.pt")
        print(f"Epoch {epoch} | Training snapshot saved at snapshot.pt", flush=True)
dist.destroy_process_group()
"""


# a script with its own rank arguments (as ImageNet-style trainers take them): all-reduces
# rank + 1 over gloo; --fail R makes rank R give up after joining the group
# a DDP trainer written by hand that saves only when interrupted (Ctrl-C: KeyboardInterrupt
# in each worker), rank 0 taking a while over it; one ledger line per step, resumed from its save
INTERRUPT_TRAINER = r"""
import os, sys, time, torch, torch.distributed as dist
dist.init_process_group("gloo")
rank = dist.get_rank()
model = torch.nn.Linear(8, 1)
ddp = torch.nn.parallel.DistributedDataParallel(model)
opt = torch.optim.SGD(ddp.parameters(), lr=0.01)
step = 0
if os.path.exists("ckpt.pt"):
    saved = torch.load("ckpt.pt")
    model.load_state_dict(saved["model"])
    step = saved["step"]
    print("rank %d resumed from step %d" % (rank, step), flush=True)  # one write: ranks print at once
try:
    while step < 30:
        loss = ddp(torch.randn(16, 8)).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if rank == 0:
            with open("ledger", "a") as f:
                f.write("step %d\n" % (step + 1))
        step += 1  # (a Ctrl-C between the two: the step is done again, not skipped)
        time.sleep(0.1)
except KeyboardInterrupt:
    if rank == 0:
        print("interrupted: saving at step %d" % step, flush=True)
        time.sleep(0.5)  # a big model's save
        torch.save({"model": model.state_dict(), "step": step}, "ckpt.tmp")
        os.replace("ckpt.tmp", "ckpt.pt")
        print("saved", flush=True)
    sys.exit(0)
if rank == 0:
    torch.save(model.state_dict(), "model.pt")
"""

AR_SCRIPT = r"""
import argparse, os, sys, torch, torch.distributed as dist
p = argparse.ArgumentParser()
p.add_argument("--rank", type=int); p.add_argument("--world-size", type=int); p.add_argument("--dist-url")
p.add_argument("--fail", type=int, default=-1)
a = p.parse_args()
dist.init_process_group("gloo", init_method=a.dist_url, rank=a.rank, world_size=a.world_size)
if a.rank == a.fail:
    print("rank", a.rank, "gives up", flush=True); sys.exit(3)
t = torch.tensor([float(a.rank + 1)])
dist.all_reduce(t)
print("sum", t.item(), "env rank", os.environ["RANK"], flush=True)
if a.rank == 0:
    open("sum.txt", "w").write("%g\n" % t.item())
dist.barrier()
"""


@unittest.skipIf(SKIP, SKIP)
class Torchrun(KilnTestCase):
    def workers(self, n, together):
        """n torchrun tasks of 2 processes each running WORKER, which waits for `together`."""
        self.ws.write("worker.py", WORKER)
        self.ws.write("kiln.lua", "\n".join(
            'task { name = "ddp/%d", outputs = {"o%d.txt"}, torchrun = { nproc = 2 }, '
            'run = { "%s", "worker.py", "{out}", "%d" } }' % (i, i, PYTHON, together) for i in range(n)))

    def test_three_at_once_on_distinct_ports_each_of_world_size_two(self):
        self.workers(3, 3)
        r = self.ws.kiln("run", "-j3", "--cpus", "6", timeout=300)
        self.assertEqual(r.rc, 0, r)
        ports = set()
        for i in range(3):
            world, port, local, met = self.ws.read("o%d.txt" % i).split()
            self.assertEqual((world, local), ("2", "2"), "two processes, one node")
            self.assertEqual(met, "True", "the three were in their process groups at the same time")
            log = self.ws.read(".kiln/logs/ddp/%d@1.log" % i)
            self.assertIn("KILN_PORT=%s" % port, log, "the rendezvous port is the one kiln reserved")
            self.assertIn("--nproc_per_node=2", log)
            ports.add(port)
        self.assertEqual(len(ports), 3, "three runs at once, three rendezvous ports")
        self.assertEqual(self.ws.kiln("run").ran, set(), "the port is not part of the key")

    def test_nproc_holds_that_many_cpus(self):
        self.workers(2, 1)
        r = self.ws.kiln("run", "-j2", "--cpus", "2", timeout=300)
        self.assertEqual(r.rc, 0, r)
        spans = {}
        for i in range(2):
            for line in self.ws.read("o%d.txt.trace" % i).splitlines():
                name, event, t = line.split()
                spans.setdefault(name, {}).setdefault(event, []).append(float(t))
        (a, b) = sorted(spans.values(), key=lambda s: min(s["start"]))
        self.assertLessEqual(max(a["end"]), min(b["start"]), "2 CPUs: one 2-process run at a time")

    def test_each_process_uses_its_share_of_the_cpus_the_task_declares(self):
        # PyTorch's own thread count (a plain run's here: the machine's cores, or fewer): the
        # cpus a task declares, and under torchrun their share per process
        probe = "import os, torch; open('%s', 'w').write('%d' % torch.get_num_threads())"
        self.ws.write("kiln.lua",
                      'task { name = "one", cpus = 3, outputs = {"one.txt"}, run = { "%s", "-c", "%s" } }\n'
                      'task { name = "two", cpus = 4, torchrun = { nproc = 2 }, outputs = {"t0.txt"}, '
                      'run = { "%s", "-c", "%s" } }\n'
                      % (PYTHON, probe.replace("%s", "one.txt"), PYTHON, probe.replace("%s", "t' + os.environ['RANK'] + '.txt")))
        r = self.ws.kiln("run", "--cpus", "4", timeout=300)
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(self.ws.read("one.txt"), "3")
        self.assertEqual((self.ws.read("t0.txt"), self.ws.read("t1.txt")), ("2", "2"))

    def test_shell_command_under_torchrun(self):
        self.ws.write("worker.py", WORKER)
        self.ws.write("kiln.lua", 'task { name = "sh", outputs = {"o.txt"}, torchrun = { nproc = 2 }, '
                      'run = "%s worker.py {out} 1" }' % PYTHON)
        tmp = tempfile.mkdtemp(prefix="kiln-e2e-tmpdir-")
        self.addCleanup(shutil.rmtree, tmp, True)
        r = self.ws.kiln("run", env={"TMPDIR": tmp}, timeout=300)
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(self.ws.read("o.txt").split()[0], "2")
        # torchrun's folder for the run (its workers' error files) is the attempt's, beside
        # its log, and goes when the attempt ends: none is left in /tmp (TMPDIR) per run
        self.assertTrue(self.ws.read("o.txt.errfile").startswith(
            os.path.join(self.ws.dir, ".kiln/logs/sh@1.log.torchrun/")), self.ws.read("o.txt.errfile"))
        self.assertFalse(self.ws.exists(".kiln/logs/sh@1.log.torchrun"))
        self.assertEqual(os.listdir(tmp), [], "torchrun made nothing outside the workspace")
        # torchrun looks at its workers every half second, not 1.13's 5 s (a finished run
        # waited for that look, and a stop then threw its work away); a task's own torchrun
        # line gets it too, and the keys stay as they were (the environment, not the argv)
        self.assertIn("PET_MONITOR_INTERVAL=0.5", self.ws.read(".kiln/logs/sh@1.log"))
        self.ws.write("bin/torchrun", '#!/bin/sh\necho "$PET_MONITOR_INTERVAL" > pet.txt\n')
        os.chmod(self.ws.path("bin/torchrun"), 0o755)
        self.ws.write("kiln.lua", 'task { name = "own", outputs = {"pet.txt"}, run = {"bin/torchrun", "train.py"} }\n')
        r = self.ws.kiln("run")
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(self.ws.read("pet.txt"), "0.5\n")

    def test_a_snapshot_trainer_resumes_after_ctrl_c_and_is_reattached_after_kill_9(self):
        self.ws.write("train.py", SNAPSHOT_TRAINER)
        def recipe(epochs):
            self.ws.write("kiln.lua", 'task { name = "ddp", inputs = {"train.py"}, outputs = {"snapshot.pt"}, '
                          'resume = {"snapshot.pt"}, torchrun = { nproc = 2 }, '
                          'run = { "%s", "train.py", "%d" } }\n' % (PYTHON, epochs))
        def epochs():
            return [int(l.split()[1]) for l in self.ws.read("ledger").splitlines()] if self.ws.exists("ledger") else []
        def interrupt(sig, at_least):
            p = self.ws.spawn("run", "--cpus", "2")
            self.assertTrue(wait_for(lambda: len(epochs()) >= at_least, timeout=120), "training got going")
            p.send_signal(sig)
            p.communicate(timeout=120)
        recipe(8)
        interrupt(signal.SIGINT, 2)
        self.assertLess(len(epochs()), 8)
        r = self.ws.kiln("run", "--cpus", "2", timeout=300)
        self.assertEqual(r.rc, 0, r)
        log = self.ws.read(".kiln/logs/ddp@2.log")
        self.assertIn("Resuming training from snapshot at Epoch", log)
        self.assertEqual(sorted(set(epochs())), list(range(8)))
        self.assertLessEqual(len(epochs()), 9, "at most the epoch in flight ran twice: %s" % epochs())
        self.assertEqual(self.ws.kiln("run").ran, set(), "recorded: the next run is a no-op")
        # a new configuration: starts from epoch 0, not from the other's snapshot; then kill -9
        os.remove(self.ws.path("ledger"))
        recipe(10)
        interrupt(signal.SIGKILL, 2)
        r = self.ws.kiln("run", "--cpus", "2", timeout=300)
        self.assertEqual(r.rc, 0, r)
        self.assertIn("ddp: attached to local job", r.out)
        self.assertEqual(epochs(), list(range(10)), "no epoch ran twice, none was skipped")
        self.assertNotIn("Resuming", self.ws.read(".kiln/logs/ddp@3.log"))
        self.assertEqual(self.ws.kiln("run").ran, set())
        self.assertEqual([f for f in os.listdir(self.ws.path(".kiln/logs")) if "torchrun" in f], [],
                         "the re-attached attempt's torchrun folder went when it ended, as the others'")

    def ctrl_c_saves_once_and_the_next_run_continues(self, recipe):
        """Runs recipe (task ddp: INTERRUPT_TRAINER under an elastic agent, stop_signal INT),
        Ctrl-Cs it once training got going, and checks rank 0 saved once, uncut (no worker
        interrupted twice), and the next run continued from the save: none skipped, at most
        the step in flight run twice."""
        self.ws.write("train.py", INTERRUPT_TRAINER)
        self.ws.write("kiln.lua", recipe)
        def steps():
            return [int(l.split()[1]) for l in self.ws.read("ledger").splitlines()] if self.ws.exists("ledger") else []
        p = self.ws.spawn("run", "--cpus", "2")
        self.assertTrue(wait_for(lambda: len(steps()) >= 4, timeout=120), "training got going")
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=120)
        self.assertEqual(p.returncode, 130, out + err)
        log = self.ws.read(".kiln/logs/ddp@1.log")
        self.assertIn("interrupted: saving at step", log)
        self.assertIn("saved\n", log, "the save was not cut short")
        self.assertEqual(log.count("KeyboardInterrupt"), 0, "no worker was interrupted twice")
        saved = int(re.search(r"interrupted: saving at step (\d+)", log).group(1))  # lines may interleave
        r = self.ws.kiln("run", "--cpus", "2", timeout=300)
        self.assertEqual(r.rc, 0, r)
        self.assertIn("rank 0 resumed from step %d" % saved, self.ws.read(".kiln/logs/ddp@2.log"))
        self.assertEqual(sorted(set(steps())), list(range(1, 31)), "none was skipped")
        self.assertLessEqual(len(steps()), 31, "at most the step in flight ran twice: %s" % steps())

    def test_a_ctrl_c_reaches_each_worker_once_through_torchrun_and_its_save_lands(self):
        # stop_signal = "INT": kiln tells torchrun, which tells its workers; not the workers
        # too, or their second KeyboardInterrupt cuts short the save the first began
        self.ctrl_c_saves_once_and_the_next_run_continues(
            'task { name = "ddp", inputs = {"train.py"}, outputs = {"model.pt"}, resume = {"ckpt.pt"}, '
            'stop_signal = "INT", torchrun = { nproc = 2 }, run = { "%s", "train.py" } }\n' % PYTHON)

    def test_a_launcher_running_torchs_elastic_agent_in_process_tells_its_workers_alone(self):
        # `accelerate launch` (and other launchers) run torch.distributed.run's elastic agent
        # inside their own python: no torchrun on its command line, so the workers were
        # told by kiln and again by the agent, their save cut by the second KeyboardInterrupt.
        # The workers say what they are (TORCHELASTIC_RUN_ID in their environment, which the
        # agent sets): left to it
        # (--redirects and --tee as maps: torch 1.13's defaults fail on Python 3.11, torchrun.c)
        self.ws.write("launch.py", "from torch.distributed.run import parse_args, run\n"
                      "run(parse_args(['--standalone', '--nproc_per_node', '2', '--redirects=9:0', '--tee=9:0', "
                      "'train.py']))\n")
        self.ctrl_c_saves_once_and_the_next_run_continues(
            'task { name = "ddp", inputs = {"train.py", "launch.py"}, outputs = {"model.pt"}, resume = {"ckpt.pt"}, '
            'stop_signal = "INT", cpus = 2, run = { "%s", "launch.py" } }\n' % PYTHON)

    def test_ranks_all_reduce_through_gloo_and_a_failing_rank_stops_the_others(self):
        self.ws.write("ar.py", AR_SCRIPT)
        self.ws.write("kiln.lua", """
task { name = "ar", ranks = 2, cwd = "runs/{name}", inputs = {"ar.py"}, outputs = {"runs/ar/sum.txt"},
       run = {"%s", "{in}", "--rank", "{rank}", "--world-size", "{world_size}", "--dist-url", "tcp://{master_addr}:{master_port}"} }
task { name = "bad", ranks = 3, inputs = {"ar.py"},
       run = {"%s", "{in}", "--rank", "{rank}", "--world-size", "{world_size}", "--dist-url", "tcp://{master_addr}:{master_port}", "--fail", "1"} }
""" % (PYTHON, PYTHON))
        r = self.ws.kiln("run", "-k", timeout=300)
        self.assertEqual(r.rc, 1, r)
        self.assertEqual(self.ws.read("runs/ar/sum.txt"), "3\n", "1 + 2 over two ranks")
        log = self.ws.read(".kiln/logs/ar@1.log")
        self.assertIn("[rank 0] sum 3.0 env rank 0", log)
        self.assertIn("[rank 1] sum 3.0 env rank 1", log)
        bad = self.ws.read(".kiln/logs/bad@1.log")
        self.assertIn("[rank 1] rank 1 gives up", bad)
        self.assertIn("[kiln launch] rank 1 of 3 failed (exit status 3)", bad)
        self.assertIn("bad: exit status 3 [error]", r.out, "classified by the failed rank, not its peers' lost links")

    def test_recipe_errors_name_the_line(self):
        cases = [('torchrun = { nproc = "gpus" }', 'has nproc = "gpus" but the task leases none'),
                 ('torchrun = { nproc = 0 }', "must be at least 1"),
                 ('torchrun = { nproc = 2, nodes = 2 }', "unknown field 'nodes'"),
                 ('torchrun = 2', "must be a table"),
                 ('torchrun = { nnodes = 2 }', "needs nproc"),
                 ('retry_on = { "oops" }', 'unknown failure class "oops"')]
        for field, message in cases:
            self.ws.write("kiln.lua", '\ntask { name = "t", run = {"python3", "x.py"}, %s }\n' % field)
            r = self.ws.kiln("run")
            self.assertEqual(r.rc, 2, (field, r))
            self.assertIn("kiln.lua:2:", r.err, field)
            self.assertIn(message, r.err, field)
        self.ws.write("kiln.lua", 'task { name = "t", run = {"python3", "x.py"}, torchrun = { nproc = 2, nnodes = 2 } }\n')
        r = self.ws.kiln("run")
        self.assertEqual(r.rc, 2, r)
        self.assertIn("asks torchrun for 2 nodes, but it runs on this machine only", r.err)


if __name__ == "__main__":
    main()
