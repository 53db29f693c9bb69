"""sshhosts.py — real OpenSSH servers for the ssh executor's tests: one sshd per host on a
loopback port of its own, each with a home of its own (so a separate root for the
workspace copy there), a PATH led by its own bin/ with a fake nvidia-smi that prints the
readings in that home's gpus.csv, and an ssh_config naming them. Needs root (sshd's
privilege separation) and Debian's openssh-server; skip() says why when either is missing."""
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

SSHD = "/usr/sbin/sshd"

FAKE_NVIDIA_SMI = """#!/bin/sh
# the readings of this host's devices (index, memory.total, memory.used, utilization.gpu)
cat "$HOME/gpus.csv"
"""


def skip_reason():
    if not os.path.exists(SSHD):
        return "needs sshd (Debian: openssh-server)"
    if os.geteuid() != 0:
        return "needs root to start sshd instances"
    for tool in ("ssh", "ssh-keygen", "rsync"):
        if not shutil.which(tool):
            return "needs %s" % tool
    return None


def zombie(pid):
    """Whether pid has ended (or is gone): a zombie waits only for its parent."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class SilentHost:
    """A host's address that accepts TCP connections and never answers (a hung server, or a
    network that drops packets: ssh waits its ConnectTimeout each try). windows: (opened,
    closed) of each connection ssh made to it, on time.time()'s clock (closed None while open)."""

    def __init__(self, port=0):
        self.srv = socket.socket()
        self.srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a stopped sshd's port
        self.srv.bind(("127.0.0.1", port))
        self.srv.listen(64)
        self.port = self.srv.getsockname()[1]
        self.windows = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.srv.accept()
            except OSError:
                return
            window = [time.time(), None]
            self.windows.append(window)
            threading.Thread(target=self._hold, args=(conn, window), daemon=True).start()

    @staticmethod
    def _hold(conn, window):
        try:
            while conn.recv(4096):  # ssh's banner, then nothing until it gives up
                pass
        except OSError:
            pass
        window[1] = time.time()
        conn.close()

    def hosts_entry(self, name, lab):
        """Its line for a hosts{} block (the lab's key, so only the silence stops ssh)."""
        return ('  %s = { address = "root@127.0.0.1", workdir = "kiln-work", jobs = 2, ssh = {"-p", "%d", "-o", '
                '"StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-i", "%s"} },\n'
                % (name, self.port, lab.userkey))

    def close(self):
        self.srv.shutdown(socket.SHUT_RDWR)
        self.srv.close()


# A host's PID 1 that is no init (a container's): orphans of the processes below it come to it
# (a subreaper) and it never reaps them, so each stays a zombie, its pid still answering kill -0
NO_REAP_INIT = """
import ctypes, os, sys
ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
pid = os.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])
os.waitpid(pid, 0)  # sshd's end only
"""


class Host:
    # False: sshd runs under NO_REAP_INIT (set it before start())
    reaps = True

    def __init__(self, lab, name, gpus):
        self.lab, self.name = lab, name
        self.home = os.path.join(lab.dir, name)
        self.bin = os.path.join(self.home, "bin")
        os.makedirs(self.bin)
        self.port = free_port()
        self.set_gpus(gpus)
        smi = os.path.join(self.bin, "nvidia-smi")
        with open(smi, "w") as f:
            f.write(FAKE_NVIDIA_SMI)
        os.chmod(smi, 0o755)
        self.config = os.path.join(lab.dir, "sshd_%s.conf" % name)
        with open(self.config, "w") as f:
            f.write("Port %d\nListenAddress 127.0.0.1\nHostKey %s\nAuthorizedKeysFile %s\n"
                    "StrictModes no\nUsePAM no\nPidFile %s/sshd.pid\nLogLevel ERROR\n"
                    "PermitRootLogin prohibit-password\nMaxSessions 100\nMaxStartups 100\n"
                    "SetEnv HOME=%s PATH=%s:/usr/local/bin:/usr/bin:/bin KILN_TEST_HOST=%s\n"
                    % (self.port, lab.hostkey, lab.authorized, self.home, self.home, self.bin, name))
        self.proc = None

    def set_gpus(self, gpus):
        """gpus: list of (index, total MiB, used MiB, util %)."""
        with open(os.path.join(self.home, "gpus.csv"), "w") as f:
            for g in gpus:
                f.write("%d, %d, %d, %d\n" % g)

    def start(self):
        if getattr(self, "silent", None):
            self.silent.close()
            self.silent = None
        # -D: in the foreground, so the test owns the process and stops it for sure
        init = [] if self.reaps else [sys.executable, "-c", NO_REAP_INIT]
        self.proc = subprocess.Popen(init + [SSHD, "-D", "-f", self.config, "-E", os.path.join(self.home, "sshd.log")])
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("sshd for %s did not start: %s" % (self.name, self.log()))

    def descendants(self):
        """Every process under this server: its connections and what they run."""
        children = {}
        for pid in os.listdir("/proc"):
            if pid.isdigit():
                try:
                    with open("/proc/%s/stat" % pid) as f:
                        stat = f.read()
                    ppid = int(stat[stat.rindex(")") + 2:].split()[1])
                    children.setdefault(ppid, []).append(int(pid))
                except (OSError, ValueError):
                    pass
        out, todo = [], [self.proc.pid] if self.proc else []
        while todo:
            pid = todo.pop()
            for c in children.get(pid, []):
                out.append(c)
                todo.append(c)
        return out

    def stop(self, keep_jobs=False):
        """Stops the server with its connections and their processes (a host that goes away);
        keep_jobs: but not the jobs they started (a network that drops while the host works on)."""
        if not self.proc:
            return
        jobs = set(self.lab.jobs_running()) if keep_jobs else set()
        # the server and its connections first, at once: a host that still answered while its
        # jobs died would be seen with them dead, which no reboot shows
        under = [pid for pid in self.descendants() if pid not in jobs]
        self.proc.kill()
        for pid in under:
            try:
                os.kill(pid, 9)
            except OSError:
                pass
        self.proc.wait()
        # a reboot: its jobs die with it, the re-parented ones (setsid'd by an agent) too, and
        # what they fork meanwhile (a `sleep` of a shell loop would otherwise outlive it, and
        # its process group read as a job that ran on)
        for _ in range(0 if keep_jobs else 20):
            left = [pid for pid in under + self.lab.jobs_running(self) if not zombie(pid)]
            for pid in left:
                try:
                    os.kill(pid, 9)
                except OSError:
                    pass
            if not left:
                break
            time.sleep(0.01)
        self.proc = None

    def partition(self):
        self.stop(keep_jobs=True)

    def go_silent(self):
        """A partition whose packets go nowhere: the jobs work on, and ssh to its port waits
        for an answer that never comes (start() ends it)."""
        self.partition()
        self.silent = SilentHost(self.port)
        return self.silent

    def log(self):
        p = os.path.join(self.home, "sshd.log")
        if not os.path.exists(p):
            return ""
        with open(p) as f:
            return f.read()

    def workdir(self):
        return os.path.join(self.home, "kiln-work")


class Lab:
    """Hosts named in `hosts` (name -> GPU readings), started."""

    def __init__(self, hosts):
        self.dir = tempfile.mkdtemp(prefix="kiln-ssh-")
        self.hostkey = os.path.join(self.dir, "hostkey")
        self.userkey = os.path.join(self.dir, "userkey")
        for key in (self.hostkey, self.userkey):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key], check=True)
        self.authorized = os.path.join(self.dir, "authorized_keys")
        shutil.copy(self.userkey + ".pub", self.authorized)
        os.makedirs("/run/sshd", exist_ok=True)  # sshd's privilege separation directory
        self.hosts = {name: Host(self, name, gpus) for name, gpus in hosts.items()}
        self.ssh_config = os.path.join(self.dir, "ssh_config")
        with open(self.ssh_config, "w") as f:
            for h in self.hosts.values():
                f.write("Host %s\n  HostName 127.0.0.1\n  Port %d\n  User root\n  IdentityFile %s\n"
                        "  IdentitiesOnly yes\n  StrictHostKeyChecking no\n  UserKnownHostsFile %s/known_hosts\n"
                        "  LogLevel ERROR\n" % (h.name, h.port, self.userkey, self.dir))
        for h in self.hosts.values():
            h.start()

    def hosts_lua(self, extra=None):
        """A hosts{} block for these hosts; extra: name -> further Lua fields."""
        lines = ["hosts {"]
        for h in self.hosts.values():
            more = (extra or {}).get(h.name, "")
            lines.append('  %s = { address = "%s", workdir = "%s", ssh = {"-F", "%s"}%s },'
                         % (h.name, h.name, h.workdir(), self.ssh_config, ", " + more if more else ""))
        lines.append("}")
        return "\n".join(lines) + "\n"

    def reset(self):
        """Every host up, with an empty workdir and no trace file: a test's fresh start."""
        for h in self.hosts.values():
            if not h.proc:
                h.start()
            if os.path.exists(os.path.join(h.home, "trace.txt")):
                os.remove(os.path.join(h.home, "trace.txt"))
            shutil.rmtree(h.workdir(), ignore_errors=True)

    def jobs_running(self, host=None):
        """PIDs of live processes working in a host's workdir (host's, or any): jobs (and their
        children) still there, whatever their command line says."""
        found = []
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                cwd = os.readlink("/proc/%s/cwd" % pid)
                with open("/proc/%s/stat" % pid) as f:
                    state = f.read().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            if state != "Z" and any(cwd.startswith(h.workdir()) for h in ([host] if host else self.hosts.values())):
                found.append(int(pid))
        return found

    def close(self):
        for h in self.hosts.values():
            h.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class LabCase:
    """A test class's lab, as a mixin before KilnTestCase: HOSTS (name -> GPU readings) are
    started once for the class, and each test starts with every host up and empty."""
    HOSTS = {}

    @classmethod
    def setUpClass(cls):
        cls.lab = Lab(cls.HOSTS)

    @classmethod
    def tearDownClass(cls):
        cls.lab.close()

    def setUp(self):
        super().setUp()
        self.lab.reset()


def gpus(n, busy=()):
    """Readings of n devices for a host's gpus.csv: 80 GiB each, those in busy 85 % full and 95 %
    utilised, the others idle."""
    return [(i, 81920, 70000 if i in busy else 200, 95 if i in busy else 0) for i in range(n)]


class SshCase(LabCase):
    """LabCase for the ssh executor's tests (before KilnTestCase): hosts.lua names the lab's
    hosts, kiln() runs over them, starts() reads their trace files."""

    def setUp(self):
        super().setUp()
        self.ws.write("hosts.lua", self.lab.hosts_lua())

    def kiln(self, *args, **kw):
        return self.ws.kiln("run", "--executor", "ssh", "--hosts", "hosts.lua", *args, **kw)

    def starts(self):
        """(host, task) of every attempt started on the hosts, from their own trace files."""
        out = []
        for name, h in self.lab.hosts.items():
            p = os.path.join(h.home, "trace.txt")
            if os.path.exists(p):
                with open(p) as f:
                    out += [(name, line.split()[1]) for line in f.read().splitlines() if line.startswith("start ")]
        return out

    # a task body that notes its start in the host's own trace, then works
    START = 'echo start $KILN_TASK >> $HOME/trace.txt; '
