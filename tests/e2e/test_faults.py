"""End-to-end fault campaigns: kill -9 of kiln at random points (right after spawns
too) and Ctrl-C with workers that trap SIGTERM. After each, no recorded success may
have a wrong output, no earlier success may be lost, and no task process may live on."""
import os
import random
import signal
import sqlite3
import time

from kilntest import KilnTestCase, main, marked_processes, wait_for

LAYERS, WIDTH = 10, 10  # 100 tasks

# Each task writes its output in three steps with pauses, so a kill lands mid-write and an
# orphan of a killed kiln would still be writing when the next kiln starts the task; its
# first line is "<name> <salt>", then the first line of every input, then "end".
RECIPE = """
local P = params { salt = "0" }
for l = 0, %d do
  for i = 0, %d do
    local name = "t" .. l .. "_" .. i
    local inputs = {}
    if l > 0 then inputs = { "out/t" .. (l - 1) .. "_" .. i .. ".txt", "out/t" .. (l - 1) .. "_" .. ((i + 1) %% %d) .. ".txt" } end
    local body = "touch started/" .. name .. "." .. P.salt .. "; echo " .. name .. " " .. P.salt .. " > {out}; sleep 0.4; "
    for _, f in ipairs(inputs) do body = body .. "head -n 1 " .. f .. " >> {out}; " end
    body = body .. "sleep 0.05; echo end >> {out}"
    task { name = name, inputs = inputs, outputs = { "out/" .. name .. ".txt" }, run = body }
  end
end
""" % (LAYERS - 1, WIDTH - 1, WIDTH)


def expected(name, salt):
    l, i = map(int, name[1:].split("_"))
    lines = ["%s %s" % (name, salt)]
    if l > 0:
        lines += ["t%d_%d %s" % (l - 1, i, salt), "t%d_%d %s" % (l - 1, (i + 1) % WIDTH, salt)]
    return "\n".join(lines + ["end"]) + "\n"


NAMES = ["t%d_%d" % (l, i) for l in range(LAYERS) for i in range(WIDTH)]


class Faults(KilnTestCase):
    def setUp(self):
        super().setUp()
        self.ws.write("kiln.lua", RECIPE)
        os.makedirs(self.ws.path("started"), exist_ok=True)

    def successes(self):
        """(task, key) of every recorded success, read straight from state.db."""
        path = self.ws.path(".kiln/state.db")
        if not os.path.exists(path):
            return set()
        db = sqlite3.connect("file:%s?mode=ro" % path, uri=True)
        try:
            return set(db.execute("SELECT task, hex(key) FROM successes"))
        except sqlite3.OperationalError:  # killed before its schema was committed
            return set()
        finally:
            db.close()

    def check_done_tasks_are_right(self, salt, note):
        """Every task kiln would not run is done: its output must be exactly right."""
        r = self.ws.kiln("run", "-n", "salt=%s" % salt)
        self.assertEqual(r.rc, 0, r)
        will_run = {line.split()[1].rstrip(":") for line in r.out.splitlines()
                    if line.startswith(("run ", "restore "))}
        for name in NAMES:
            if name in will_run:
                continue
            with open(self.ws.path("out/%s.txt" % name)) as f:
                self.assertEqual(f.read(), expected(name, salt), "%s: %s is recorded as done but wrong" % (note, name))

    def assert_no_task_processes(self, note):
        left = marked_processes(self.ws.dir)
        self.assertEqual(left, [], "%s: task processes still alive: %s" % (note, left))

    def test_kill9_campaign(self):
        rng = random.Random(int(os.environ.get("KILN_FAULT_SEED", "1")))
        trials = int(os.environ.get("KILN_FAULT_TRIALS", "30"))  # scripts/fault-campaign.sh runs hundreds
        print("seed %s, %d trials" % (os.environ.get("KILN_FAULT_SEED", "1"), trials))
        salt = 0
        recorded = self.successes()
        for trial in range(trials):
            if trial % 10 == 0:
                salt += 1  # a new configuration: every task runs again
            note = "trial %d (salt %d)" % (trial, salt)
            p = self.ws.spawn("run", "-j", "16", "salt=%d" % salt)
            if trial % 2:
                # right after a spawn: the moment a task's first command runs
                before = set(os.listdir(self.ws.path("started")))
                wait_for(lambda: set(os.listdir(self.ws.path("started"))) - before or p.poll() is not None,
                         timeout=10, step=0.001)
            else:
                time.sleep(rng.uniform(0.0, 1.2))
            p.send_signal(signal.SIGKILL)
            p.communicate()
            now = self.successes()
            self.assertTrue(recorded <= now, "%s: recorded successes were lost: %s" % (note, recorded - now))
            recorded = now
            self.check_done_tasks_are_right(salt, note)
            if trial % 10 == 9:  # let a run finish, then everything must be right and nothing left over
                r = self.ws.kiln("run", "-j", "16", "salt=%d" % salt, timeout=300)
                self.assertEqual(r.rc, 0, "%s: %s" % (note, r))
                self.assert_no_task_processes(note)
                for name in NAMES:
                    self.assertEqual(self.ws.read("out/%s.txt" % name), expected(name, salt), note)
        r = self.ws.kiln("run", "-j", "16", "salt=%d" % salt, timeout=300)
        self.assertEqual(r.rc, 0, r)
        self.assert_no_task_processes("the end")
        self.check_done_tasks_are_right(salt, "the end")

    def test_sigint_with_term_trapping_workers(self):
        # Each task's shell traps TERM slowly, and a background process of its group
        # ignores TERM and appends to the output later: kiln must wait for the whole group
        # (SIGKILL after the grace period) before it reports the attempt interrupted.
        self.ws.write("kiln.lua", """
local P = params { salt = "0" }
for i = 1, 12 do
  task { name = "w" .. i, outputs = { "out/w" .. i .. ".txt" }, run =
    "trap 'sleep 0.2; echo trapped >> {out}; exit 143' TERM; " ..
    "(trap '' TERM; sleep 0.6; echo straggler >> {out}) & " ..
    "echo w" .. i .. " " .. P.salt .. " > {out}; sleep 0.3; echo end >> {out}; wait" }
end
""")
        for trial in range(int(os.environ.get("KILN_SIGINT_TRIALS", "6"))):
            salt = trial
            p = self.ws.spawn("run", "-j", "4", "--kill-grace", "0.3", "salt=%d" % salt)
            time.sleep(0.15 + 0.1 * (trial % 6))
            p.send_signal(signal.SIGINT)
            out, err = p.communicate(timeout=60)
            self.assertEqual(p.returncode, 128 + signal.SIGINT, out + err)
            self.assert_no_task_processes("trial %d, right after kiln exited" % trial)
            r = self.ws.kiln("run", "-j", "4", "salt=%d" % salt, timeout=120)
            self.assertEqual(r.rc, 0, r)
            time.sleep(0.1)
            for i in range(1, 13):
                text = self.ws.read("out/w%d.txt" % i)
                self.assertEqual(text, "w%d %d\nend\nstraggler\n" % (i, salt), "trial %d, w%d" % (trial, i))

    def test_workers_that_quit_with_exit_0_on_sigterm_are_not_recorded(self):
        # a graceful-shutdown handler (trap ... TERM; exit 0, or Python's
        # signal.signal(SIGTERM, ...) then sys.exit(0)) leaves half its work and says 0:
        # after a Ctrl-C or a timeout that is no success, whatever its status
        self.ws.write("kiln.lua", """
for i = 1, 3 do
  task { name = "w" .. i, outputs = { "out/w" .. i .. ".txt" },
         run = "trap 'echo quit early >> {out}; exit 0' TERM; echo start > {out}; sleep ${NAP:-30} & wait; echo end >> {out}" }
end
task { name = "slow", outputs = { "out/slow.txt" }, timeout = 1,
       run = "trap 'echo quit early > {out}; exit 0' TERM; sleep ${NAP:-30} & wait; echo end > {out}" }
local items = {}
for i = 1, 40 do items[#items + 1] = string.format("i%02d", i) end
map { name = "m", items = items, shards = 1, output = "mo/{item}.txt",
      run = "trap 'echo half > mo/$it.txt; exit 0' TERM; while read it; do echo made > mo/$it.txt; sleep 0.1; done < {items}" }
""")
        p = self.ws.spawn("run", "-j", "8", "-k")
        self.assertTrue(wait_for(lambda: self.ws.exists("mo/i12.txt") and self.ws.exists("out/w3.txt"), timeout=30),
                        "the work got going")
        time.sleep(1.2)  # slow's timeout strikes first
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=60)
        self.assertEqual(p.returncode, 128 + signal.SIGINT, out + err)
        self.assertNotIn("ok       ", out, "nothing stopped is called done")
        for i in range(1, 4):
            self.assertEqual(self.ws.read("out/w%d.txt" % i), "start\nquit early\n")
        recorded = {t for t, _ in self.successes()}
        self.assertFalse(recorded & {"w1", "w2", "w3", "slow"}, recorded)
        self.assertIn("timed out after 1.0s", self.ws.read(".kiln/logs/slow@1.log"))
        items = sorted(t for t in recorded if t.startswith("m/"))
        self.assertGreaterEqual(len(items), 10, recorded)  # those before the last one made
        made = sorted("m/" + f[:-4] for f in os.listdir(self.ws.path("mo")))
        self.assertEqual(items, made[:len(items)], "only items the shard had moved on from")
        self.assertLess(len(items), len(made), "the item it quit on is not among them")
        r = self.ws.kiln("run", "-j", "8", env={"NAP": "0"})  # what a rerun made of it all
        self.assertEqual(r.rc, 0, r)
        self.assertTrue({"w1", "w2", "w3", "slow"} <= set(r.ran), r)
        for i in range(1, 4):
            self.assertEqual(self.ws.read("out/w%d.txt" % i), "start\nend\n")
        for it in range(1, 41):
            self.assertEqual(self.ws.read("mo/i%02d.txt" % it), "made\n")


if __name__ == "__main__":
    main()
