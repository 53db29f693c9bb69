"""End-to-end: the holes a fault and hostile-input campaign found in the fence around a
workspace — a recipe that writes outside it while loading, an input edited while its task
runs, a clean racing a run, crashes on hostile values, a file-size limit, a write-ahead log
that loses records in silence, a success whose outputs never reached the store, errors that
name no line, and a recipe load that never ends."""
import os
import resource
import shutil
import signal
import sqlite3
import subprocess
import time

from kilntest import KILN, KilnTestCase, Result, main, wait_for

FAST = "\n".join('task { name = "t%02d", outputs = {"o/%d.txt"}, run = "echo %d > o/%d.txt" }' % (i, i, i, i)
                 for i in range(30))


class LoadingSandbox(KilnTestCase):
    def setUp(self):
        super().setUp()
        self.canary = self.ws.dir + "-canary"  # a directory outside the workspace
        os.makedirs(self.canary)

    def tearDown(self):
        shutil.rmtree(self.canary, ignore_errors=True)
        super().tearDown()

    def refused(self, recipe, *needles, verbs=(("run", "-n"), ("list",), ("status",))):
        self.ws.write("kiln.lua", recipe)
        for verb in verbs:
            r = self.ws.kiln(*verb)
            self.assertEqual(r.rc, 2, (verb, r))
            for n in needles:
                self.assertIn(n, r.err, (verb, r))
        self.assertEqual(os.listdir(self.canary), [], "a recipe wrote outside the workspace")

    def test_io_open_guard_does_not_call_what_a_recipe_can_redefine(self):
        target = os.path.join(self.canary, "x")
        for prelude in ['string.sub = function() return "r" end\nstring.find = function() return nil end',
                        'local s = getmetatable("").__index\ns.sub = function() return "r" end\n'
                        's.find = function() end',
                        'getmetatable("").__index = function() return function() return "r" end end',
                        'tostring = nil; type = function() return "string" end']:
            for mode in ["w", "a", "r+", "wb", "w+"]:
                self.refused('%s\nlocal f = io.open("%s", "%s")\nf:write("escaped")\n' % (prelude, target, mode),
                             "would write", "kiln.lua:")
        # reading still works, and a non-string mode is the recipe's error, on its line
        self.ws.write("kiln.lua", 'local f = assert(io.open("kiln.lua", "rb"))\nassert(f:read(5) == "local")\n')
        self.assertEqual(self.ws.kiln("list").rc, 0)
        self.refused('local x = 1\nio.open("kiln.lua", {})\n', "kiln.lua:2:", "bad argument #2")
        self.refused('local x = 1\nio.open("kiln.lua", 5)\n', "kiln.lua:2:")

    def test_task_value_metamethods_check_what_they_are_given(self):
        self.ws.write("kiln.lua", 'local t = task { name = "a", run = "true" }\n'
                      'local ok, err = pcall(getmetatable(t).__tostring, {})\n'
                      'assert(not ok and err:find("kiln.task expected"), err)\n'
                      'ok, err = pcall(getmetatable(t).__index, 5, "name")\n'
                      'assert(not ok, "indexing a number as a task")\n'
                      'assert(tostring(t) == "task a" and t.name == "a")\n')
        r = self.ws.kiln("list")
        self.assertEqual(r.rc, 0, r)
        self.refused('local t = task { name = "a", run = "true" }\ngetmetatable(t).__tostring(nil)\n', "kiln.lua:2:")

    def test_a_glob_pattern_deeper_than_any_tree_is_an_error_not_a_crash(self):
        self.refused('local x = 1\nglob(string.rep("*/", 3000))\n', "kiln.lua:2:", "glob: pattern")
        self.refused('local x = 1\nglob(string.rep("*/", 200) .. "x")\n', "kiln.lua:2:", "wildcards")
        self.refused('task { name = "a", run = "true", inputs = { string.rep("?/", 3000) } }\n', "kiln.lua:1:",
                     "inputs pattern")
        self.refused('local x = 1\nglob(string.rep("/", 4000))\n', "kiln.lua:2:", "path components")  # fuzzer's
        os.makedirs(self.ws.path("d/e"))
        self.ws.write("d/e/f.txt", "x")
        self.ws.write("kiln.lua", 'assert(#glob("*/*/*.txt") == 1)\n')
        self.assertEqual(self.ws.kiln("list").rc, 0)

    def test_map_declares_through_kilns_task_whatever_the_global_is(self):
        self.ws.write("kiln.lua", 'task = function() return 1 end\n'
                      'map { name = "m", items = {"a", "b"}, output = "o/{item}", run = "true" }\n')
        r = self.ws.kiln("list")
        self.assertEqual(r.rc, 0, r)
        self.assertIn("m/a", r.out)

    def test_errors_name_the_recipe_line(self):
        # parser nesting past Lua's C stack: a line of the recipe, or of a module it requires
        self.refused("local a = 1\nlocal b = 2\nlocal x = " + "{" * 1000 + "}" * 1000 + "\n", "kiln.lua:3:",
                     "nesting too deep")
        self.ws.write("deep.lua", "local a = 1\nreturn " + "(" * 1000 + "1" + ")" * 1000 + "\n")
        self.refused('require "deep"\n', "deep.lua:2:", "nesting too deep")
        # runtime recursion through a metamethod, and a __len of 2^40 given as a list
        self.refused('local x = 1\nlocal t = setmetatable({}, {__tostring = function(t) return tostring(t) end})\n'
                     'print(t)\n', "kiln.lua:2:", "stack overflow")
        self.ws.write("kiln.lua", 'local t = setmetatable({}, {__len = function() return 2^40 end})\n'
                      'task { name = "a", run = "true", inputs = t }\n')
        r = self.ws.kiln("list")
        self.assertEqual(r.rc, 0, r)  # a list is read raw: its length is what it holds
        self.assertNotIn("out of memory", r.err)
        self.refused('local x = 1\ndofile()\n', "kiln.lua:2:", "dofile: expected a file name")

    def test_a_load_that_never_ends_is_stopped_and_says_where(self):
        for body in ["while true do end", "while true do pcall(function() while true do end end) end",
                     "local function f() return f() end f()"]:
            self.ws.write("kiln.lua", "local x = 1\n" + body + "\n")
            start = time.time()
            r = self.ws.kiln("run", "-n", "--load-timeout", "1", timeout=60)
            self.assertEqual(r.rc, 2, r)
            self.assertLess(time.time() - start, 30)
            self.assertIn("kiln.lua:2: the recipe has not finished loading after 1 s", r.err)
            self.assertIn("--load-timeout", r.err)
        r = self.ws.kiln("list", "--load-timeout", "1", timeout=60)
        self.assertEqual(r.rc, 2, r)
        # stuck inside one library call (a backtracking pattern): no next instruction to stop at
        self.ws.write("kiln.lua", 'local s = string.rep("a", 40)\nprint(s:find(string.rep("a*", 40) .. "b"))\n')
        start = time.time()
        r = self.ws.kiln("run", "-n", "--load-timeout", "1", timeout=60)
        self.assertEqual(r.rc, 2, r)
        self.assertLess(time.time() - start, 30)
        self.assertIn("stuck inside one library call", r.err)

    def test_ctrl_c_stops_a_load(self):
        self.ws.write("kiln.lua", "local x = 1\nwhile true do end\n")
        p = self.ws.spawn("run")
        time.sleep(0.5)
        p.send_signal(signal.SIGINT)
        try:
            out, err = p.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            p.kill()
            self.fail("Ctrl-C did not stop the load")
        self.assertEqual(p.returncode, 130, err)
        self.assertIn("kiln.lua:2: stopped while the recipe was loading", err)
        self.assertFalse(os.path.exists(self.ws.path(".kiln/logs")), "nothing ran")


class InputsDuringARun(KilnTestCase):
    def test_an_input_edited_while_its_task_runs_is_not_recorded_under_the_old_key(self):
        self.ws.write("in.txt", "v1\n")
        self.ws.write("kiln.lua", 'task { name = "t", inputs = {"in.txt"}, outputs = {"out.txt"}, '
                      'run = "touch started; sleep 1.5; cat in.txt > out.txt" }\n')
        p = self.ws.spawn("run")
        self.assertTrue(wait_for(lambda: self.ws.exists("started")))
        time.sleep(0.3)
        self.ws.write("in.txt", "v2\n")
        out, err = p.communicate(timeout=60)
        self.assertEqual(p.returncode, 1, out + err)
        self.assertIn("input in.txt changed", out)
        self.assertIn("[input-changed]", out)
        # back to v1: the task runs on v1 (nothing was recorded for either content)
        self.ws.write("in.txt", "v1\n")
        r = self.ws.kiln("run")
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(r.ran, {"t"})
        self.assertEqual(self.ws.read("out.txt"), "v1\n")
        self.ws.write("in.txt", "v2\n")
        r = self.ws.kiln("run")
        self.assertEqual(r.ran, {"t"})
        self.assertEqual(self.ws.read("out.txt"), "v2\n")
        self.ws.write("in.txt", "v1\n")
        r = self.ws.kiln("run")
        self.assertEqual(r.restored, {"t"})
        self.assertEqual(self.ws.read("out.txt"), "v1\n", "the store gives back v1's output for v1")

    def test_input_changed_is_not_spent_on_retries(self):
        self.ws.write("in.txt", "v1\n")
        self.ws.write("kiln.lua", 'task { name = "t", inputs = {"in.txt"}, outputs = {"out.txt"}, retries = 3, '
                      'run = "echo x >> in.txt; cat in.txt > out.txt" }\n')
        r = self.ws.kiln("run")
        self.assertEqual(r.rc, 1, r)
        self.assertIn("[input-changed]", r.out)
        self.assertEqual(self.ws.read("in.txt"), "v1\nx\n", "one attempt, no retry")


class WorkspaceLock(KilnTestCase):
    def test_clean_all_refuses_while_a_run_writes(self):
        self.ws.write("kiln.lua", 'task { name = "part1", outputs = {"p1"}, run = "touch started; sleep 2; echo 1 > p1" }\n'
                      'task { name = "part2", inputs = {"p1"}, outputs = {"p2"}, run = "echo 2 > p2" }\n')
        p = self.ws.spawn("run")
        self.assertTrue(wait_for(lambda: self.ws.exists("started")))
        r = self.ws.kiln("clean", "--all")
        self.assertEqual(r.rc, 2, r)
        self.assertIn("another kiln (pid %d) is running" % p.pid, r.err)
        self.assertTrue(self.ws.exists(".kiln/state.db"))
        out, err = p.communicate(timeout=60)
        self.assertEqual(p.returncode, 0, out + err)
        self.assertEqual(self.ws.kiln("run").ran, set())
        # once the run is over, clean --all removes everything, and the next run starts afresh
        r = self.ws.kiln("clean", "--all")
        self.assertEqual(r.rc, 0, r)
        self.assertIn("2 tasks will run again", r.out)
        self.assertFalse(self.ws.exists(".kiln"))
        self.assertEqual(self.ws.kiln("run").ran, {"part1", "part2"})

    def test_a_refused_kiln_leaves_the_holders_word_in_the_lock(self):
        # the lock file names the kiln at work (pid and host) for `kiln status`, `kiln log -f`
        # and, after a kill -9, the next kiln's orphan search: a second kiln sent away must
        # not empty it on its way out, as it did
        self.ws.write("kiln.lua", 'task { name = "slow", outputs = {"o"}, run = "touch started; sleep 2; echo 1 > o" }\n')
        p = self.ws.spawn("run")
        self.assertTrue(wait_for(lambda: self.ws.exists("started")))
        for verb in (("run",), ("clean", "--all"), ("accept", "slow")):
            r = self.ws.kiln(*verb)
            self.assertEqual(r.rc, 2, r)
            self.assertIn("another kiln (pid %d) is running" % p.pid, r.err)
        self.assertEqual(self.ws.read(".kiln/lock").split()[0], str(p.pid))
        st = self.ws.kiln("status")
        self.assertIn("under the kiln at work here now (pid %d)" % p.pid, st.out)
        out, err = p.communicate(timeout=60)
        self.assertEqual(p.returncode, 0, out + err)
        self.assertEqual(self.ws.read(".kiln/lock"), "", "emptied by its holder's clean exit")

    def test_a_file_system_without_flock_is_named_as_the_cause(self):
        # Lustre mounted without -o flock, NFS without its lock daemon: flock(2) fails with
        # ENOSYS or ENOLCK; kiln said "another kiln is starting" after half a second, forever
        cc = shutil.which("cc") or shutil.which("gcc")
        if not cc:
            self.skipTest("no C compiler for the flock-less shim")
        src, lib = self.ws.path("noflock.c"), self.ws.path("noflock.so")
        self.ws.write("noflock.c", "#include <errno.h>\nint flock(int fd, int op) { (void)fd; (void)op; "
                      "errno = ENOSYS; return -1; }\n")
        subprocess.run([cc, "-shared", "-fPIC", "-o", lib, src], check=True)
        self.ws.write("kiln.lua", FAST)
        asan = (os.environ.get("ASAN_OPTIONS", "") + ":verify_asan_link_order=0").lstrip(":")  # the sanitizer build
        r = self.ws.kiln("run", env={"LD_PRELOAD": lib, "ASAN_OPTIONS": asan})
        self.assertEqual(r.rc, 2, r)
        self.assertIn("cannot lock .kiln/lock: Function not implemented; kiln keeps one writer per workspace by "
                      "flock(2), which this file system does not give (Lustre: mount it with -o flock)", r.err)
        self.assertFalse(self.ws.exists("o/0.txt"), "nothing ran")

    def test_a_run_started_while_clean_all_removes_takes_a_lock_of_its_own(self):
        self.ws.write("kiln.lua", FAST)
        for _ in range(5):
            self.assertEqual(self.ws.kiln("run").rc, 0)
            cleaner = self.ws.spawn("clean", "--all")
            runner = self.ws.spawn("run")
            cleaner.communicate(timeout=60)
            out, err = runner.communicate(timeout=60)
            if runner.returncode == 0:  # it ran beside or after the clean: its record is whole
                again = self.ws.kiln("run")
                self.assertEqual(again.rc, 0, again)
                for i in range(30):
                    self.assertEqual(self.ws.read("o/%d.txt" % i), "%d\n" % i)
            else:
                self.assertIn("another kiln", err)


class FileSizeLimit(KilnTestCase):
    def test_a_file_size_limit_is_reported_as_a_full_disk_is(self):
        self.ws.write("kiln.lua", "\n".join('task { name = "t%03d", outputs = {"o/%d.txt"}, run = {"sh", "-c", '
                                            '"echo %d > o/%d.txt"} }' % (i, i, i, i) for i in range(300)))
        os.makedirs(self.ws.path("o"))

        def limit():  # as a batch system sets it: the signal keeps its default action
            resource.setrlimit(resource.RLIMIT_FSIZE, (96 * 1024, 96 * 1024))
            signal.signal(signal.SIGXFSZ, signal.SIG_DFL)

        proc = subprocess.run([KILN, "run", "-j", "2"], cwd=self.ws.dir, env=self.ws.env(), text=True,
                              capture_output=True, timeout=120, preexec_fn=limit)
        r = Result(proc)
        self.assertNotEqual(r.rc, -signal.SIGXFSZ, "killed by SIGXFSZ")
        self.assertEqual(r.rc, 1, r)
        self.assertIn("cannot record results in .kiln/state.db", r.out + r.err)
        done = self.ws.kiln("run")
        self.assertEqual(done.rc, 0, done)
        self.assertEqual(self.ws.kiln("run").ran, set())


class WriteAheadLog(KilnTestCase):
    def killed_mid_run(self):
        """A run killed with -9 once the fast tasks' successes are committed (in the log)."""
        self.ws.write("kiln.lua", FAST + '\ntask { name = "slow", run = "while [ ! -f go ]; do sleep 0.05; done" }\n')
        p = self.ws.spawn("run", "-j", "4")
        self.assertTrue(wait_for(lambda: all(self.ws.exists("o/%d.txt" % i) for i in range(30))))
        time.sleep(0.5)  # past the 50 ms commit batch
        p.kill()
        p.communicate()
        self.ws.write("go", "")
        self.assertGreater(os.path.getsize(self.ws.path(".kiln/state.db-wal")), 0)

    def test_a_clean_exit_leaves_every_record_in_the_database(self):
        self.ws.write("kiln.lua", FAST)
        self.assertEqual(self.ws.kiln("run").rc, 0)
        self.assertEqual(os.path.getsize(self.ws.path(".kiln/state.db-wal")), 0)
        os.unlink(self.ws.path(".kiln/state.db-wal"))
        r = self.ws.kiln("run")
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(r.ran, set(), "deleting the log after a clean exit forgets nothing")
        self.assertNotIn("missing", r.err)

    def test_a_no_op_run_writes_nothing(self):
        """A run with nothing to do leaves state.db and its log as they were, so the log does
        not grow with no-ops (every later command reads back and checksums what it holds)."""
        self.ws.write("kiln.lua", FAST)
        self.assertEqual(self.ws.kiln("run").rc, 0)
        time.sleep(0.1)
        for _ in range(2):  # files hashed within 50 ms of their writing are hashed again once
            self.assertEqual(self.ws.kiln("run").rc, 0)

        def files():
            with open(self.ws.path(".kiln/state.db"), "rb") as db, open(self.ws.path(".kiln/state.db-wal"), "rb") as log:
                return db.read(), log.read()
        before = files()
        for _ in range(3):
            r = self.ws.kiln("run")
            self.assertEqual((r.rc, r.ran), (0, set()), r)
        self.assertTrue(before == files(), "a no-op run wrote to state.db or its log")
        r = self.ws.kiln("run", "--force", "t03")  # a run that does something has its row
        self.assertEqual((r.rc, r.ran), (0, {"t03"}), r)
        with sqlite3.connect(self.ws.path(".kiln/state.db")) as db:
            runs = db.execute("SELECT count(*), count(ended) FROM runs").fetchall()
            last = db.execute("SELECT command FROM runs ORDER BY id DESC LIMIT 1").fetchone()[0]
        self.assertEqual(runs, [(2, 2)], "the first run and the one that re-ran t03, each ended")
        self.assertIn("--force t03", last)

    def test_a_damaged_log_is_said(self):
        self.killed_mid_run()
        with open(self.ws.path(".kiln/state.db-wal"), "r+b") as f:
            f.seek(32 + 24 + 200)
            f.write(b"\xa5" * 64)
        r = self.ws.kiln("run")
        self.assertEqual(r.rc, 0, r)
        self.assertIn("state.db-wal is damaged (frame 1 fails its checksum)", r.err)
        self.assertIn("run again", r.err)

    def test_a_log_deleted_after_a_kill_is_said(self):
        self.killed_mid_run()
        os.unlink(self.ws.path(".kiln/state.db-wal"))
        r = self.ws.kiln("run")
        self.assertEqual(r.rc, 0, r)
        self.assertIn("state.db-wal is missing, though the kiln before was killed", r.err)

    def test_an_emptied_database_is_said(self):
        self.ws.write("kiln.lua", FAST)
        self.assertEqual(self.ws.kiln("run").rc, 0)
        with open(self.ws.path(".kiln/state.db"), "w"):
            pass
        r = self.ws.kiln("run")
        self.assertEqual(r.rc, 0, r)
        self.assertIn("state.db is empty, though tasks have run in this workspace", r.err)
        self.assertEqual(len(r.ran), 30)
        r = self.ws.kiln("run")
        self.assertNotIn("empty", r.err)


class StoreAfterAKill(KilnTestCase):
    def test_outputs_of_a_success_recorded_just_before_a_kill_reach_the_store(self):
        self.ws.write("kiln.lua", 'task { name = "f", outputs = {"f.txt"}, run = "echo F > f.txt" }\n'
                      'task { name = "d", outputs = {"dir"}, run = "mkdir -p dir/s; echo D > dir/s/x" }\n')
        self.assertEqual(self.ws.kiln("run").rc, 0)
        # what a kill -9 between the record and the store's copy leaves: successes recorded,
        # the store without them, the lock naming a kiln that is gone
        shutil.rmtree(self.ws.path(".kiln/objects"))
        dead = subprocess.Popen(["true"])
        dead.wait()
        with open(self.ws.path(".kiln/lock"), "w") as f:
            f.write("%d\n" % dead.pid)
        r = self.ws.kiln("run")
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(r.ran, set(), "up to date: nothing runs")
        os.unlink(self.ws.path("f.txt"))
        shutil.rmtree(self.ws.path("dir"))
        r = self.ws.kiln("run")
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(r.restored, {"f", "d"}, "restored from the store, not run again")
        self.assertEqual(self.ws.read("f.txt"), "F\n")
        self.assertEqual(self.ws.read("dir/s/x"), "D\n")


if __name__ == "__main__":
    main()
