"""kilntest.py — helpers for end-to-end tests: a temp workspace, running the real kiln
binary, and reading what ran from its output and from trace files tasks append to."""
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

KILN = os.environ.get("KILN") or os.path.join(os.path.dirname(__file__), "../../build/kiln")


class Result:
    def __init__(self, proc):
        self.rc = proc.returncode
        self.out = proc.stdout
        self.err = proc.stderr

    def tasks(self, kind="ok"):
        """Names of tasks on lines like 'ok       [3/6] name (0.2s)'."""
        pat = re.compile(r"^%s\s+\[\d+/\d+\] (\S+)" % re.escape(kind), re.M)
        return set(pat.findall(self.out))

    @property
    def ran(self):
        return self.tasks("ok")

    @property
    def restored(self):
        return self.tasks("restored")

    def __repr__(self):
        return "rc=%s\n--- stdout\n%s--- stderr\n%s" % (self.rc, self.out, self.err)


def text_now(path):
    """The file's text, or "" while it is not there."""
    try:
        with open(path) as f:
            return f.read()
    except FileNotFoundError:
        return ""


class Workspace:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="kiln-e2e-")

    def path(self, rel):
        return os.path.join(self.dir, rel)

    def write(self, rel, text):
        p = self.path(rel)
        os.makedirs(os.path.dirname(p) or ".", exist_ok=True)
        with open(p, "w") as f:
            f.write(text)

    def read(self, rel):
        with open(self.path(rel)) as f:
            return f.read()

    def exists(self, rel):
        return os.path.exists(self.path(rel))

    def read_now(self, rel):
        """The file's text, or "" while it is not there (kiln may remove it between a look
        and the read: an output cleared before an attempt)."""
        return text_now(self.path(rel))

    def query(self, sql):
        """The rows of sql over the state database, read-only; [] while it cannot be read (not
        made yet, or its schema not committed)."""
        import sqlite3
        try:
            db = sqlite3.connect("file:%s?mode=ro" % self.path(".kiln/state.db"), uri=True, timeout=5)
            try:
                return db.execute(sql).fetchall()
            finally:
                db.close()
        except sqlite3.OperationalError:
            return []

    def env(self, extra=None):
        env = dict(os.environ)
        env.pop("KILN_GPU_INFO", None)
        env.pop("PYTHONUNBUFFERED", None)  # as a researcher's shell has it: kiln must not need it
        env["NO_COLOR"] = "1"
        if extra:
            env.update(extra)
        return env

    def kiln(self, *args, env=None, timeout=120):
        proc = subprocess.run([KILN, *map(str, args)], cwd=self.dir, env=self.env(env), text=True,
                              capture_output=True, timeout=timeout)
        return Result(proc)

    def spawn(self, *args, env=None):
        return subprocess.Popen([KILN, *map(str, args)], cwd=self.dir, env=self.env(env), text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def trace(self, rel="trace"):
        """Lines 'name event time [extra]' appended by tasks: returns a list of tuples."""
        if not self.exists(rel):
            return []
        rows = []
        for line in self.read(rel).splitlines():
            parts = line.split()
            if len(parts) >= 3:
                rows.append((parts[0], parts[1], float(parts[2]), parts[3:]))
        return rows

    def cleanup(self):
        if os.environ.get("KILN_TEST_KEEP"):  # to look at a failed test's workspace
            print("kept", self.dir)
            return
        shutil.rmtree(self.dir, ignore_errors=True)


# A shell fragment for tasks: appends "<task> <event> <time>" to the trace file.
def traced(cmd, trace="trace"):
    return ("echo \"$KILN_TASK start $(date +%%s.%%N) $CUDA_VISIBLE_DEVICES\" >> %s; %s; "
            "echo \"$KILN_TASK end $(date +%%s.%%N) $CUDA_VISIBLE_DEVICES\" >> %s" % (trace, cmd, trace))


def lua_str(s):
    """s as a Lua string literal (control characters escaped)."""
    out = s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
    return '"' + out + '"'


def processes_matching(text, cwd=None):
    """PIDs of live (non-zombie) processes whose command line contains text (and, given cwd,
    that run in that folder: a test's own ssh masters, not a test's beside it)."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
            with open("/proc/%s/stat" % pid) as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
            if cwd and os.readlink("/proc/%s/cwd" % pid) != os.path.realpath(cwd):
                continue
        except OSError:
            continue
        if text in cmd and state != "Z":
            found.append(int(pid))
    return found


def marked_processes(workspace):
    """PIDs of live processes carrying kiln's marker for workspace in their environment."""
    want = ("KILN_WORKSPACE=" + os.path.realpath(workspace)).encode()
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            with open("/proc/%s/stat" % pid) as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
            with open("/proc/%s/environ" % pid, "rb") as f:
                env = f.read().split(b"\0")
        except OSError:
            continue
        if state not in ("Z", "X") and want in env:
            found.append(int(pid))
    return found


def wait_for(cond, timeout=20.0, step=0.05):
    end = time.time() + timeout
    while time.time() < end:
        if cond():
            return True
        time.sleep(step)
    return False


class KilnTestCase(unittest.TestCase):
    def setUp(self):
        self.ws = Workspace()

    def ctrl_c(self, p, timeout=60):
        """Sends the kiln p runs a Ctrl-C and waits for it to end: its output, once checked
        that it ended as a stopped run does (exit status 130)."""
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=timeout)
        self.assertEqual(p.returncode, 130, out + (err or ""))  # err: None where it goes to out
        return out

    def tearDown(self):
        # unittest records a failed part in _outcome.success before tearDown runs
        outcome = getattr(self, "_outcome", None)
        if outcome is None or getattr(outcome, "success", True):
            self.ws.cleanup()
        else:
            sys.stderr.write("kept the failed test's workspace: %s\n" % self.ws.dir)


class TimedResult(unittest.TextTestResult):
    """Each test's seconds appended to the file KILN_TEST_DURATIONS names (where the suite's
    time goes: `sort -k2 -n` it)."""

    def startTest(self, test):
        self._started = time.monotonic()
        super().startTest(test)

    def stopTest(self, test):
        super().stopTest(test)
        path = os.environ.get("KILN_TEST_DURATIONS")
        if path:
            with open(path, "a") as f:
                f.write("%s %.2f\n" % (test.id(), time.monotonic() - self._started))


def main():
    unittest.main(verbosity=2, testRunner=unittest.TextTestRunner(resultclass=TimedResult, verbosity=2))
