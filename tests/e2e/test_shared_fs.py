"""End-to-end: one workspace, two hosts (an NFS home seen from two GPU servers, a cluster's
login nodes). The second host is this machine in namespaces of its own (another hostname,
another pid space: the first host's processes are not there), over the same files.

A kiln on the second host while one runs on the first: `kiln run` is refused naming the
host, and so is `kiln status` (SQLite's write-ahead log cannot be read from two hosts while
one writes); `kiln log TASK` reads the log's file. After the first host's kiln was killed with its attempt still running there: the
second host's kiln neither starts that task again beside it nor runs what depends on it,
says where it runs, runs the rest, and takes up how it ended once it has (no epoch twice);
`kiln clean` of it refuses;
`--force` runs it here when the first host is gone."""
import os
import shutil
import signal
import subprocess
import sys

from kilntest import KILN, KilnTestCase, Result, main, marked_processes, wait_for
from test_resume import TRAINER

OTHER = "kiln-other-host"


def on_other_host_cmd(*args):
    """args run on the second host: this machine with another hostname and pid space."""
    return ["unshare", "-u", "-p", "-f", "--mount-proc", "sh", "-c", 'hostname %s && exec "$@"' % OTHER, "sh",
            *map(str, args)]


def namespaces_work():
    try:
        r = subprocess.run(on_other_host_cmd("true"), capture_output=True, timeout=20)
        return r.returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def keeper_of(pid):
    """The attempt keeper that is pid's parent, or None."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        with open("/proc/%d/cmdline" % ppid, "rb") as f:
            return ppid if f.read().split(b"\0")[0] == b"attempt-keeper" else None
    except (OSError, ValueError, IndexError):
        return None


RECIPE = """
task { name = "train", inputs = {"train.py"}, outputs = {"model.txt"}, resume = {"ckpt/snapshot.json"},
       run = {"python3", "train.py", "12", "{resume}"} }
task { name = "report", inputs = {"model.txt"}, outputs = {"report.txt"}, run = "cat model.txt > report.txt" }
task { name = "other", outputs = {"other.txt"}, run = "echo other > other.txt" }
"""


class SharedWorkspace(KilnTestCase):
    def setUp(self):
        super().setUp()
        if not shutil.which("unshare") or not namespaces_work():
            self.skipTest("no namespaces to play a second host in (unshare -u -p needs root)")
        self.ws.write("train.py", TRAINER)
        self.ws.write("kiln.lua", RECIPE)

    def tearDown(self):
        for pid in marked_processes(self.ws.dir):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        super().tearDown()

    def on_other_host(self, *args, env=None):
        return Result(subprocess.run(on_other_host_cmd(KILN, *args), cwd=self.ws.dir, env=self.ws.env(env), text=True, capture_output=True,
                                     timeout=120))

    def epochs(self, kind="epoch"):
        text = self.ws.read_now("ledger")
        return [line.split()[1] for line in text.splitlines() if line.startswith(kind + " ")]

    def start_then_kill_kiln(self):
        p = self.ws.spawn("run", "-j", "1", "train", env={"EPOCH_SEC": "0.4"})
        self.assertTrue(wait_for(lambda: len(self.epochs()) >= 2, timeout=60), "training got going")
        os.kill(p.pid, signal.SIGKILL)
        p.communicate(timeout=30)
        self.assertTrue(marked_processes(self.ws.dir), "the attempt runs on under its keeper")

    def test_a_kiln_at_work_on_another_host_is_named_and_its_state_left_alone(self):
        p = self.ws.spawn("run", "train", env={"EPOCH_SEC": "0.3"})
        self.assertTrue(wait_for(lambda: len(self.epochs()) >= 1, timeout=60))
        host = os.uname().nodename
        r = self.on_other_host("run")
        self.assertEqual(r.rc, 2, r)
        self.assertIn("another kiln (pid %d on %s) is running in this workspace" % (p.pid, host), r.err)
        st = self.on_other_host("status")
        self.assertEqual(st.rc, 2, st)
        self.assertIn("a kiln on %s (pid %d) is running in this workspace, and its state cannot be read from a "
                      "second host while it writes" % (host, p.pid), st.err)
        log = self.on_other_host("log", "train")  # a log is a file: read from it, not from the state
        self.assertEqual(log.rc, 0, log)
        self.assertIn("# kiln: task train, attempt 1", log.out)
        self.assertIn("kiln: a kiln on %s is at work in this workspace; .kiln/logs/train@1.log, read from its file"
                      % host, log.err)
        follow = self.on_other_host("log", "-f", "train")
        self.assertEqual(follow.rc, 2, follow)
        self.assertIn("follow or list logs there", follow.err)
        self.assertEqual(self.ws.read(".kiln/lock").split(), [str(p.pid), host], "the holder's word is intact")
        self.assertIn("under the kiln at work here now (pid %d)" % p.pid, self.ws.kiln("status").out)
        out, err = p.communicate(timeout=120)
        self.assertEqual(p.returncode, 0, out + err)
        self.assertEqual(self.on_other_host("run").ran, {"report", "other"})

    def test_an_attempt_running_on_another_host_is_not_started_again_and_is_taken_up_once_it_ended(self):
        self.start_then_kill_kiln()
        host = os.uname().nodename
        st = self.on_other_host("status")
        self.assertRegex(st.out, r"running   train: attempt 1 \(local/[\d/]+\), started [\d.]+s ago by an earlier "
                         r"kiln, on %s, where it may still run: a kiln there re-attaches to it" % host)
        r = self.on_other_host("run", "-k")
        self.assertEqual(r.rc, 1, r)
        self.assertIn("FAILED   [", r.out)
        self.assertIn("train: attempt 1, started", r.out)
        self.assertIn("on %s by a kiln there that stopped, may still run there: kiln here can neither watch nor stop "
                      "it. Run kiln on %s to take it back" % (host, host), r.out)
        self.assertEqual(r.ran, {"other"}, "the rest runs; report waits for train")
        self.assertEqual(len(self.epochs("start")), 1, "not started beside the running one")
        c = self.on_other_host("clean", "train")
        self.assertEqual(c.rc, 2, c)
        self.assertIn("only a kiln there re-attaches it", c.err, "its outputs are not taken from under it")
        # it ends there, unwatched; its keeper's exit file tells the second host how
        self.assertTrue(wait_for(lambda: self.ws.exists("model.txt") and not marked_processes(self.ws.dir),
                                 timeout=60))
        self.assertIn("ended on %s while no kiln watched: `kiln run` takes up how it ended" % host,
                      self.on_other_host("status").out)
        r = self.on_other_host("run")
        self.assertEqual(r.rc, 0, r)
        self.assertIn("train: attached to local job", r.out)
        self.assertEqual(r.ran, {"train", "report"})
        self.assertEqual(len(self.epochs("start")), 1, "one start in all")
        self.assertEqual(sorted(map(int, self.epochs())), list(range(12)), "each epoch once")
        self.assertEqual(self.ws.kiln("run").ran, set(), "and back on the first host, a no-op")

    def test_force_runs_it_on_this_host_when_the_other_is_gone(self):
        self.start_then_kill_kiln()
        # the first host goes down: its keeper first (no exit file is written), then the attempt
        attempt = marked_processes(self.ws.dir)
        keepers = {keeper_of(pid) for pid in attempt} - {None}
        self.assertTrue(keepers, "the attempt's keeper")
        for pid in list(keepers) + attempt:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.assertTrue(wait_for(lambda: not marked_processes(self.ws.dir)))
        self.assertEqual(self.on_other_host("run").rc, 1, "without a word, the attempt is taken to run there")
        r = self.on_other_host("run", "--force", "train")
        self.assertEqual(r.rc, 0, r)
        self.assertIn("gave up attempt 1 of train on %s" % os.uname().nodename, r.err)
        self.assertEqual(r.ran, {"train", "report", "other"})
        self.assertEqual(self.ws.read("model.txt"), "trained 12 epochs\n")
        self.assertNotIn("running   train", self.on_other_host("status").out, "its record is closed")
        self.assertEqual(self.on_other_host("run").ran, set())


if __name__ == "__main__":
    sys.exit(main())
