"""End-to-end: hostile input and damaged state. Paths that would run commands or touch
files outside the workspace, out-of-range fields, sandbox escapes, damaged objects in the
store, a damaged state.db, a full disk under .kiln, symlink cycles, huge plot{} specs and
.npy shapes whose size overflows."""
import os
import resource
import signal
import sqlite3
import struct
import subprocess
import unittest

from kilntest import KilnTestCase, lua_str, main

KILN_KERNELS = os.environ.get("KILN_KERNELS") or os.path.join(os.path.dirname(__file__), "../../build/kiln-kernels")


class RecipeErrors(KilnTestCase):
    def refuse(self, recipe, *needles):
        self.ws.write("kiln.lua", recipe)
        r = self.ws.kiln("run")
        self.assertEqual(r.rc, 2, r)
        self.assertIn("kiln.lua:", r.err, r)
        for n in needles:
            self.assertIn(n, r.err, r)
        return r

    def test_outputs_outside_the_workspace_are_refused_and_nothing_is_deleted(self):
        outside = self.ws.path("../kiln-outside-%d" % os.getpid())
        with open(outside, "w") as f:
            f.write("precious\n")
        try:
            for out in [outside, "../kiln-outside-%d" % os.getpid(), "kiln.lua", ".kiln/state.db", "."]:
                self.refuse('task { name = "a", outputs = { %s }, run = "true" }' % lua_str(out), 'outputs "')
            self.assertEqual(open(outside).read(), "precious\n")
            # resume state is deleted when an attempt starts afresh: the same bound, said so
            self.refuse('task { name = "a", outputs = { "x" }, resume = { %s }, run = "true" }' % lua_str(outside),
                        "kiln deletes resume state when an attempt starts afresh")
            os.symlink(os.path.dirname(outside), self.ws.path("up"))
            self.refuse('task { name = "a", outputs = { "up/x" }, run = "true" }', "symbolic link")
            # after outputs in directories found inside ("u", "up2"): each directory on its own
            os.mkdir(self.ws.path("u"))
            self.refuse('task { name = "a", outputs = { "u/x" }, run = "true" }\n'
                        'task { name = "b", outputs = { "up/x" }, run = "true" }', "symbolic link")
            self.refuse('task { name = "a", outputs = { "up2/x", "up2/y" }, run = "true" }\n'
                        'task { name = "b", outputs = { "up/y" }, run = "true" }', "symbolic link")
            r = self.ws.kiln("clean", "--all")  # the recipe refused: nothing cleaned
            self.assertEqual(r.rc, 2, r)
            self.assertIn("resolves outside the workspace through a symbolic link", r.err)
            self.assertEqual(open(outside).read(), "precious\n")
        finally:
            os.unlink(outside)

    def test_nested_outputs_are_refused(self):
        r = self.refuse('task { name = "dir", outputs = {"data"}, run = "mkdir -p data" }\n'
                        'task { name = "file", outputs = {"data/x.txt"}, run = "echo > {out}" }', "may not nest",
                        'inside output "data" of task "dir"')
        self.assertIn("kiln.lua:2:", r.err)

    def test_inputs_outside_need_external(self):
        self.refuse('task { name = "a", inputs = { "/etc/hostname" }, run = "true" }', "external {")
        self.ws.write("kiln.lua", 'external { "/etc" }\ntask { name = "a", inputs = { "/etc/hostname" }, run = "true" }')
        r = self.ws.kiln("run")
        self.assertEqual(r.rc, 0, r)

    def test_numeric_fields_are_range_checked(self):
        for field, needle in [("cpus = 2^32", "cpus must be at most"), ("gpus = 2^32", "gpus must be at most"),
                              ("retries = 2^32 + 1", "retries must be at most"), ("cpus = 1.5", "fraction"),
                              ("timeout = 0/0", "timeout must be"), ('timeout = "nan"', "timeout must be"),
                              ('mem = "99999999999T"', "mem must be")]:
            self.refuse('task { name = "a", run = "true", %s }' % field, needle)

    def test_env_keys_and_nul_bytes(self):
        self.refuse('task { name = "a", run = "true", env = { ["A=B"] = "x" } }', 'env key "A=B"')
        self.refuse('task { name = "a\\0b", run = "true" }', "NUL")
        self.refuse('task { name = "a", run = { "echo", "x\\0y" } }', "NUL")

    def test_sandbox_is_closed(self):
        self.refuse('local up = debug.getupvalue(io.open, 1)', "nil")
        self.refuse('package.loadlib("libc.so.6", "system")', "nil")
        self.refuse('assert(load(string.dump(function() end)))()', "binary")
        self.ws.write("bin.lua", "")
        with open(self.ws.path("bin.luac"), "wb") as f:
            f.write(b"\x1bLua\x54\x00garbage")
        self.refuse('dofile("bin.luac")', "binary")
        self.refuse('io.tmpfile()', "not available")

    def test_non_string_errors_and_require_cycles_name_file_line(self):
        r = self.refuse('local x = 1\nerror({})', "kiln.lua:2:", "table value")
        self.ws.write("a.lua", 'require "b"\n')
        self.ws.write("b.lua", 'require "a"\n')
        self.ws.write("kiln.lua", 'require "a"')
        r = self.ws.kiln("run")
        self.assertEqual(r.rc, 2, r)
        self.assertIn("b.lua:1: require cycle: a -> b -> a", r.err, r)

    def test_plot_with_a_hundred_from_patterns(self):
        lines = ['task { name = "e%d", outputs = {"e%d.json"}, run = "echo {\\"v\\": %d} > {out}", metrics = "{out}", '
                 'tags = { k = "%d" } }' % (i, i, i, i) for i in range(100)]
        froms = ", ".join('"e%d"' % i for i in range(100))
        lines.append('plot { name = "p", type = "bars", from = { %s }, x = "k", y = "v", title = "t", xlabel = "x", '
                     'ylabel = "y", unit = "u", series = "k" }' % froms)
        self.ws.write("kiln.lua", "\n".join(lines))
        r = self.ws.kiln("list")
        self.assertEqual(r.rc, 0, r)
        r = self.ws.kiln("graph")
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(r.out.count('-> "plot/p"'), 100, r.out[:2000])


class ShellQuoting(KilnTestCase):
    def test_placeholders_are_quoted_for_every_character(self):
        canary = self.ws.path("canary")
        names = ["a b", "new\nline", "tab\there", "~tilde", "#hash", "semi;touch canary", "$(touch canary)",
                 "quote'd", "back`touch canary`", "x;touch canary #"]
        tasks = []
        for i, n in enumerate(names):
            tasks.append('task { name = "t%d", outputs = { %s }, run = "printf ok > {out}" }' % (i, lua_str("out/" + n)))
        self.ws.write("kiln.lua", "\n".join(tasks))
        r = self.ws.kiln("run")
        self.assertEqual(r.rc, 0, r)
        self.assertFalse(os.path.exists(canary), "a placeholder ran a command")
        for n in names:
            self.assertEqual(self.ws.read("out/" + n), "ok")
        self.assertFalse(os.path.exists(os.path.expanduser("~/out")))
        self.assertEqual(sorted(os.listdir(self.ws.path("out"))), sorted(names))

    def test_glob_file_names_with_shell_characters(self):
        self.ws.write("in/x\n#y", "data")
        self.ws.write("kiln.lua", 'task { name = "t", inputs = { "in/*" }, outputs = {"o"}, run = "cat {in} > {out}" }')
        r = self.ws.kiln("run")
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(self.ws.read("o"), "data")


class DamagedState(KilnTestCase):
    RECIPE = "\n".join('task { name = "t%d", outputs = {"o/%d.txt"}, run = "echo %d > {out}" }' % (i, i, i)
                       for i in range(40))

    def test_damaged_store_object_is_not_restored(self):
        self.ws.write("kiln.lua", 'local P = params { v = "1" }\n'
                      'task { name = "t", outputs = {"o.txt"}, run = "echo v" .. P.v .. " > {out}" }')
        self.assertEqual(self.ws.kiln("run").rc, 0)
        self.assertEqual(self.ws.kiln("run", "v=2").rc, 0)
        # damage every stored copy of v1 (packed rows and loose files alike)
        db = sqlite3.connect(self.ws.path(".kiln/objects/pack.db"))
        db.execute("UPDATE objects SET data = CAST('v666\n' AS BLOB) WHERE data = CAST('v1\n' AS BLOB)")
        db.commit()
        db.close()
        r = self.ws.kiln("run", "v=1")
        self.assertEqual(r.rc, 0, r)
        self.assertIn("t", r.ran, "the task runs instead of accepting a damaged copy")
        self.assertEqual(self.ws.read("o.txt"), "v1\n")
        db = sqlite3.connect(self.ws.path(".kiln/objects/pack.db"))
        left = db.execute("SELECT count(*) FROM objects WHERE data = CAST('v666\n' AS BLOB)").fetchone()[0]
        db.close()
        self.assertEqual(left, 0, "the damaged object is dropped from the store (and stored afresh)")

    def test_damaged_state_db_is_moved_aside(self):
        self.ws.write("kiln.lua", self.RECIPE)
        self.assertEqual(self.ws.kiln("run").rc, 0)
        db = sqlite3.connect(self.ws.path(".kiln/state.db"))
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        db.close()
        size = os.path.getsize(self.ws.path(".kiln/state.db"))
        with open(self.ws.path(".kiln/state.db"), "r+b") as f:  # every page after the first
            f.seek(4096)
            f.write(b"\xa5" * (size - 4096))
        r = self.ws.kiln("status")
        self.assertNotEqual(r.rc, 0, r)
        self.assertIn("damaged", r.err, r)
        self.assertIn("kiln run", r.err, r)
        r = self.ws.kiln("run")
        self.assertEqual(r.rc, 0, r)
        self.assertIn("is damaged", r.err, r)
        self.assertIn("state.db.damaged-", r.err, r)
        self.assertTrue(any(n.startswith("state.db.damaged-") for n in os.listdir(self.ws.path(".kiln"))))
        self.assertEqual(len(r.ran), 40)
        self.assertEqual(self.ws.kiln("run").ran, set())

    def test_not_a_database(self):
        self.ws.write("kiln.lua", self.RECIPE)
        self.ws.write(".kiln/state.db", "this is not SQLite\n" * 100)
        r = self.ws.kiln("run")
        self.assertEqual(r.rc, 0, r)
        self.assertIn("is damaged", r.err)

    def test_migration_runs_in_one_transaction(self):
        # a v3 database (no outputs beside each last success) whose migration to v5 fails
        # at its last step (that column is already there): nothing of it may stay
        self.ws.write("kiln.lua", self.RECIPE)
        self.assertEqual(self.ws.kiln("run").rc, 0)
        db = sqlite3.connect(self.ws.path(".kiln/state.db"))
        db.execute("ALTER TABLE last_success DROP COLUMN outputs")
        db.execute("PRAGMA user_version = 3")
        db.commit()
        db.close()
        r = self.ws.kiln("run")
        self.assertNotEqual(r.rc, 0, r)
        self.assertIn("duplicate column", r.err)
        db = sqlite3.connect(self.ws.path(".kiln/state.db"))
        self.assertEqual(db.execute("PRAGMA user_version").fetchone()[0], 3)
        columns = [row[1] for row in db.execute("PRAGMA table_info(last_success)")]
        db.close()
        self.assertNotIn("outputs", columns, "the first steps of a failed migration were rolled back")


def limited_file_size(limit):
    def apply():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes fail with EFBIG instead
    return apply


class FullDisk(KilnTestCase):
    RECIPE = "\n".join('task { name = "t%03d", outputs = {"o/%d.txt"}, run = {"sh", "-c", "echo %d > o/%d.txt"} }'
                       % (i, i, i, i) for i in range(300))

    def recorded(self):
        db = sqlite3.connect("file:%s?mode=ro" % self.ws.path(".kiln/state.db"), uri=True)
        try:
            return {t for (t,) in db.execute("SELECT task FROM last_success")}
        finally:
            db.close()

    def check_nothing_unrecorded_reported(self, r):
        self.assertNotEqual(r.rc, 0, r)
        self.assertIn("state.db", r.out + r.err, r)
        self.assertIn("run again", r.out + r.err, r)
        self.assertTrue(r.ran <= self.recorded(), "reported ok but not recorded: %s" % sorted(r.ran - self.recorded())[:5])

    def test_small_tmpfs_under_kiln(self):
        mnt = self.ws.path(".kiln")
        os.makedirs(mnt)
        if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=160k", "tmpfs", mnt], capture_output=True).returncode:
            raise unittest.SkipTest("mounting a tmpfs is not allowed here (needs root outside a container)")
        try:
            self.ws.write("kiln.lua", self.RECIPE)
            r = self.ws.kiln("run", "-j", "2")
            self.check_nothing_unrecorded_reported(r)
            again = self.ws.kiln("run")
            self.assertNotEqual(again.rc, 0, again)
            subprocess.run(["mount", "-o", "remount,size=64m", mnt], check=True)
            done = self.ws.kiln("run")
            self.assertEqual(done.rc, 0, done)
            self.assertEqual(self.ws.kiln("run").ran, set())
            for i in range(300):
                self.assertEqual(self.ws.read("o/%d.txt" % i), "%d\n" % i)
        finally:
            subprocess.run(["umount", "-l", mnt])

    def test_file_size_limit_on_state_writes(self):
        # works without mount: the state's files may not grow past 96 KiB (EFBIG)
        self.ws.write("kiln.lua", self.RECIPE)
        os.makedirs(self.ws.path("o"))
        proc = subprocess.run([os.environ.get("KILN", "kiln"), "run", "-j", "2"], cwd=self.ws.dir,
                              env=self.ws.env(), text=True, capture_output=True, timeout=120,
                              preexec_fn=limited_file_size(96 * 1024))
        from kilntest import Result
        r = Result(proc)
        self.assertNotEqual(r.rc, 0, r)
        self.assertTrue(r.ran <= self.recorded(), "reported ok but not recorded")
        self.assertIn("cannot record results in .kiln/state.db", r.out + r.err, r)
        done = self.ws.kiln("run")
        self.assertEqual(done.rc, 0, done)
        for i in range(300):
            self.assertEqual(self.ws.read("o/%d.txt" % i), "%d\n" % i)


class Walks(KilnTestCase):
    def test_symlink_cycles_in_a_directory_input(self):
        os.makedirs(self.ws.path("d/sub"))
        self.ws.write("d/f", "x")
        os.symlink("..", self.ws.path("d/sub/up"))
        os.symlink("../../d", self.ws.path("d/sub/loop"))
        self.ws.write("kiln.lua", 'task { name = "t", inputs = {"d"}, outputs = {"o"}, run = "echo 1 > {out}" }')
        r = self.ws.kiln("run", timeout=20)
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(self.ws.kiln("run", timeout=20).ran, set())
        os.unlink(self.ws.path("d/sub/up"))
        os.symlink("../..", self.ws.path("d/sub/up"))  # a changed link target is a changed input
        self.assertEqual(self.ws.kiln("run", timeout=20).ran, {"t"})


def npy(shape, descr="<f4", data=b""):
    hdr = ("{'descr': '%s', 'fortran_order': False, 'shape': (%s), }" % (descr, ", ".join(map(str, shape)) + ",")).encode()
    hdr += b" " * ((64 - (10 + len(hdr) + 1) % 64) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(hdr)) + hdr + data


class NpyShapes(KilnTestCase):
    def test_overflowing_shapes_are_refused(self):
        good_text = npy((2, 2), data=struct.pack("<4f", 1, 0, 0, 1))
        labels = npy((2,), "<i4", struct.pack("<2i", 0, 1))
        images = npy((2, 2), data=struct.pack("<4f", 1, 0, 0, 1))
        cases = {"images": [npy((2 ** 62, 8)), npy((2 ** 33, 2 ** 33)), npy((0, 2 ** 62)),
                            npy((99999999999999999999, 2))],
                 "text": [npy((2 ** 62, 2)), npy((1, 2 ** 61))]}
        for which, bad in cases.items():
            for k, data in enumerate(bad):
                files = {"images": images, "text": good_text, "labels": labels}
                files[which] = data
                for name, blob in files.items():
                    with open(self.ws.path(name + ".npy"), "wb") as f:
                        f.write(blob)
                p = subprocess.run([KILN_KERNELS, "zeroshot", "--device", "cpu", "--images", "images.npy",
                                    "--text", "text.npy", "--labels", "labels.npy", "--out", "r.json"],
                                   cwd=self.ws.dir, capture_output=True, text=True, timeout=30)
                self.assertNotEqual(p.returncode, 0, "%s case %d: %s" % (which, k, p.stderr))
                self.assertLess(p.returncode, 128, "%s case %d crashed: %s" % (which, k, p.stderr))
                self.assertTrue("shape" in p.stderr or "truncated" in p.stderr or "mismatch" in p.stderr,
                                "%s case %d: %s" % (which, k, p.stderr))


if __name__ == "__main__":
    main()
