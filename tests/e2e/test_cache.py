"""End-to-end: content-hash caching — no-op, touch, leaf edits, early cutoff, restore
from the store, deleted/edited outputs, crash safety, the workspace lock and `why`; `kiln
accept` records outputs as they are after an edit that changes no result, and refuses what it
cannot stand behind."""
import os
import shutil
import signal
import sqlite3
import struct
import time

from kilntest import KilnTestCase, lua_str, main, wait_for

CHAIN = """
local P = params { scale = 2 }
for _, n in ipairs({"a", "b", "c"}) do
  task { name = "leaf/" .. n, inputs = {"src/" .. n .. ".txt"}, outputs = {"out/" .. n .. ".txt"},
         run = "tr a-z A-Z < {in} > {out}" }
end
task { name = "mid/ab", inputs = {"out/a.txt", "out/b.txt"}, outputs = {"out/ab.txt"}, run = "cat {inputs} > {out}" }
task { name = "len/ab", inputs = {"out/ab.txt"}, outputs = {"out/len.txt"}, run = "wc -l < {in} > {out}" }
task { name = "final", inputs = {"out/len.txt", "out/c.txt"}, outputs = {"out/final.txt"},
       run = {"sh", "-c", "cat $1 $2 > $3; echo scale=$4 >> $3", "x", "out/len.txt", "out/c.txt", "{out}", P.scale} }
"""
ALL = {"leaf/a", "leaf/b", "leaf/c", "mid/ab", "len/ab", "final"}


class Cache(KilnTestCase):
    def setUp(self):
        super().setUp()
        for n in "abc":
            self.ws.write("src/%s.txt" % n, "line %s\n" % n)
        self.ws.write("kiln.lua", CHAIN)
        r = self.ws.kiln("run", "-j", "2")
        self.assertEqual(r.ran, ALL, r)

    def test_plan_over_a_state_whose_schema_never_committed(self):
        # a kill -9 during the very first run's schema leaves a database without one: a plan
        # reads it as nothing recorded, and a run makes the schema
        shutil.rmtree(self.ws.path(".kiln"))
        os.makedirs(self.ws.path(".kiln"))
        sqlite3.connect(self.ws.path(".kiln/state.db")).execute("CREATE TABLE half_made (x)").connection.close()
        plan = self.ws.kiln("run", "-n")
        self.assertEqual(plan.rc, 0, plan)
        self.assertIn("no successful run recorded", plan.out)
        self.assertEqual(self.ws.kiln("run").rc, 0)
        self.assertEqual(self.ws.kiln("run").ran, set())

    def test_noop_runs_nothing(self):
        r = self.ws.kiln("run")
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(r.ran | r.restored, set())
        self.assertIn("6 up to date", r.out)

    def test_size_hint_only_sizes(self):
        # .kiln/sizes says how big the loader's tables will be; right, wrong, absurd or torn,
        # what runs is the same, and a run that ends cleanly leaves it right
        right = self.ws.read(".kiln/sizes")
        memo, last = (int(x) for x in right.split()[1::2])
        self.assertEqual(last, len(ALL))
        self.assertGreaterEqual(memo, 3 + 6)  # the sources and the outputs at least
        for hint in ("memo 0 last 0\n", "memo 900000 last 900000\n", "memo 5 la", "nonsense"):
            self.ws.write(".kiln/sizes", hint)
            self.assertEqual(self.ws.kiln("run").ran, set(), hint)
            self.assertEqual(self.ws.read(".kiln/sizes"), right, hint)
        self.ws.write(".kiln/sizes", "memo 900000 last 900000\n")
        self.ws.write("src/b.txt", "line B changed\n")
        self.assertEqual(self.ws.kiln("run").ran, {"leaf/b", "mid/ab", "len/ab"})
        self.assertEqual(self.ws.kiln("run").ran, set())

    def test_touch_without_change_runs_nothing(self):
        time.sleep(0.01)
        os.utime(self.ws.path("src/a.txt"))
        r = self.ws.kiln("run")
        self.assertEqual(r.ran | r.restored, set(), r)

    def test_leaf_edit_reruns_task_and_dependents(self):
        self.ws.write("src/c.txt", "other c\n")
        r = self.ws.kiln("run")
        self.assertEqual(r.ran, {"leaf/c", "final"}, r)
        self.assertIn("OTHER C", self.ws.read("out/final.txt"))

    def test_early_cutoff(self):
        # a longer line keeps the line count of ab: len/ab re-runs, writes the same bytes, final stays
        self.ws.write("src/a.txt", "a much longer first line\n")
        r = self.ws.kiln("run")
        self.assertEqual(r.ran, {"leaf/a", "mid/ab", "len/ab"}, r)

    def test_param_changed_and_back_restores(self):
        r = self.ws.kiln("run", "scale=3")
        self.assertEqual(r.ran, {"final"}, r)
        self.assertIn("scale=3", self.ws.read("out/final.txt"))
        r = self.ws.kiln("run", "scale=2")
        self.assertEqual(r.ran, set(), r)
        self.assertEqual(r.restored, {"final"}, r)
        self.assertIn("scale=2", self.ws.read("out/final.txt"))
        self.assertEqual(self.ws.kiln("run", "scale=2").ran | self.ws.kiln("run").restored, set())

    def test_deleted_output_restored_from_store(self):
        os.remove(self.ws.path("out/ab.txt"))
        r = self.ws.kiln("run")
        self.assertEqual(r.ran, set(), r)
        self.assertEqual(r.restored, {"mid/ab"})
        self.assertIn("output out/ab.txt was deleted", r.out)
        self.assertEqual(self.ws.read("out/ab.txt"), "LINE A\nLINE B\n")

    def test_deleted_output_reruns_one_task_without_store(self):
        shutil.rmtree(self.ws.path(".kiln/objects"))
        os.remove(self.ws.path("out/ab.txt"))
        st = self.ws.kiln("status")
        self.assertIn("out/ab.txt was deleted, and the store does not hold", st.out)
        r = self.ws.kiln("run")
        self.assertEqual(r.ran, {"mid/ab"}, r)
        self.assertEqual(self.ws.read("out/ab.txt"), "LINE A\nLINE B\n")

    def test_hand_edited_output_is_put_back(self):
        self.ws.write("out/c.txt", "tampered\n")
        r = self.ws.kiln("run")
        self.assertEqual(r.restored, {"leaf/c"}, r)
        self.assertEqual(r.ran, set())
        self.assertEqual(self.ws.read("out/c.txt"), "LINE C\n")

    def test_store_limit_keeps_big_outputs_out(self):
        self.ws.kiln("clean", "--all")
        r = self.ws.kiln("run", "--store-max", "0")
        self.assertEqual(r.ran, ALL, r)
        self.assertFalse(os.path.exists(self.ws.path(".kiln/objects")) and os.listdir(self.ws.path(".kiln/objects")))

    def test_why_names_changed_input_and_argument(self):
        self.ws.write("src/c.txt", "changed\n")
        w = self.ws.kiln("why", "leaf/c")
        self.assertEqual(w.rc, 0, w)
        self.assertRegex(w.out, r"input src/c\.txt changed \([0-9a-f]{32} → [0-9a-f]{32}\)")
        w = self.ws.kiln("why", "final", "scale=5")
        self.assertIn("input out/c.txt will be rewritten by a task that runs first", w.out)
        self.assertIn("argument 7: 2 → 5", w.out)
        self.assertIn("param scale: 2 → 5", w.out)
        n = self.ws.kiln("run", "-n")
        self.assertIn("run       leaf/c: input src/c.txt changed", n.out)
        self.assertIn("run       final: dependency leaf/c will run", n.out)

    def test_a_change_deep_in_a_long_command_is_shown_where_it_is(self):
        cmd = "echo start >> trace.txt; a=$(date +%s.%N); sleep 0.4; echo $a > long.txt"
        self.ws.write("kiln.lua", 'task { name = "long", outputs = {"long.txt"}, run = %s }\n' % lua_str(cmd))
        self.assertEqual(self.ws.kiln("run").rc, 0)
        self.ws.write("kiln.lua", self.ws.read("kiln.lua").replace("sleep 0.4", "sleep 0.5"))
        st = self.ws.kiln("status")
        self.assertIn("sleep 0.4; echo $a > long.txt → …", st.out)
        self.assertIn("sleep 0.5; echo $a > long.txt", st.out)

    def test_moved_workspace_invalidates_nothing(self):
        moved = self.ws.dir + "-moved"
        shutil.move(self.ws.dir, moved)
        self.ws.dir = moved
        r = self.ws.kiln("run")
        self.assertEqual(r.ran | r.restored, set(), r)

    def test_second_kiln_exits_naming_the_holder(self):
        self.ws.write("kiln.lua", CHAIN + 'task { name = "slow", run = "sleep 3" }\n')
        p = self.ws.spawn("run", "slow")
        self.assertTrue(wait_for(lambda: self.ws.exists(".kiln/logs/slow@1.log")))
        r = self.ws.kiln("run")
        self.assertEqual(r.rc, 2, r)
        self.assertIn("another kiln (pid %d) is running in this workspace" % p.pid, r.err)
        p.send_signal(signal.SIGTERM)
        p.communicate(timeout=20)

    def test_gc_prunes_unreferenced_objects(self):
        objects = self.ws.path(".kiln/objects")
        junk = os.path.join(objects, "ab", "cdef" * 7 + "0123")
        os.makedirs(os.path.dirname(junk), exist_ok=True)
        open(junk, "w").write("junk")
        before = sum(len(f) for _, _, f in os.walk(objects))
        r = self.ws.kiln("gc")
        self.assertIn("removed 1 unreferenced object", r.out)
        self.assertEqual(sum(len(f) for _, _, f in os.walk(objects)), before - 1)
        os.remove(self.ws.path("out/a.txt"))
        self.assertEqual(self.ws.kiln("run").restored, {"leaf/a"}, "referenced objects survive gc")

    def test_old_schema_is_rebuilt_with_a_message(self):
        db = sqlite3.connect(self.ws.path(".kiln/state.db"))
        db.execute("PRAGMA user_version = 99")
        db.commit()
        db.close()
        r = self.ws.kiln("run")
        self.assertEqual(r.rc, 0, r)
        self.assertIn("schema version 99", r.err)
        self.assertEqual(r.ran, ALL, "a rebuilt state forgets earlier results")
        self.assertEqual(self.ws.kiln("run").ran, set())


    def test_damaged_recorded_outputs_are_never_trusted(self):
        # a last success whose outputs text does not parse never matches: the same key's
        # success record answers instead (nothing runs, the row is written again); with
        # that one damaged too, the task runs, and the others stay up to date either way
        def damage(table):
            db = sqlite3.connect(self.ws.path(".kiln/state.db"))
            n = db.execute("UPDATE %s SET outputs = 'zz not a hash' || char(10) WHERE task = 'leaf/a'" % table).rowcount
            db.commit()
            db.close()
            self.assertGreaterEqual(n, 1)
        damage("last_success")
        r = self.ws.kiln("run")
        self.assertEqual((r.rc, r.ran), (0, set()), r)
        self.assertEqual(self.ws.kiln("why", "leaf/a").rc, 0)
        damage("last_success")
        damage("successes")
        r = self.ws.kiln("run")
        self.assertEqual((r.rc, r.ran), (0, {"leaf/a"}), r)
        self.assertEqual(self.ws.kiln("run").ran, set())

    def test_schema_3_is_migrated_keeping_results(self):
        # the shape version 3 wrote: last_success without the outputs column
        db = sqlite3.connect(self.ws.path(".kiln/state.db"))
        as_version_10(db)
        db.executescript("CREATE TABLE old AS SELECT task, key FROM last_success; DROP TABLE last_success;"
                         "CREATE TABLE last_success (task TEXT PRIMARY KEY, key BLOB) WITHOUT ROWID;"
                         "INSERT INTO last_success SELECT * FROM old; DROP TABLE old;"
                         "ALTER TABLE ingests DROP COLUMN position; ALTER TABLE attempts DROP COLUMN failure;"
                         "ALTER TABLE attempts DROP COLUMN waited; ALTER TABLE attempts DROP COLUMN executor;"
                         "ALTER TABLE attempts DROP COLUMN ports;"
                         "PRAGMA user_version = 3;")
        db.close()
        r = self.ws.kiln("run")
        self.assertEqual(r.rc, 0, r)
        self.assertIn("from schema version 3 to 12", r.err)
        self.assertEqual(r.ran, set(), "migration keeps every success")
        os.remove(self.ws.path("out/a.txt"))
        self.assertEqual(self.ws.kiln("run").restored, {"leaf/a"}, "migrated outputs still restore")
        self.assertNotIn("migrating", self.ws.kiln("run").err, "migrated once")

    def test_schema_10s_memo_and_last_successes_are_packed_without_hashing_anything_again(self):
        time.sleep(0.1)
        self.assertEqual(self.ws.kiln("run").ran, set())  # outputs hashed as they were written settle
        db = sqlite3.connect(self.ws.path(".kiln/state.db"))
        memo, last = as_version_10(db)
        db.execute("PRAGMA user_version = 10")
        db.commit()
        db.close()
        self.assertGreaterEqual(len(memo), 9, memo)  # three sources, six outputs...
        self.assertEqual(len(last), 6, last)
        st = self.ws.kiln("status")  # reads only: says what `kiln run` will do
        self.assertIn("written by an earlier kiln (schema version 10, this one uses 12): run `kiln run` once to "
                      "migrate it in place, keeping every result", st.err)
        r = self.ws.kiln("run")
        self.assertIn("from schema version 10 to 12", r.err)
        self.assertEqual((r.ran, r.restored), (set(), set()), r)  # each up to date by its last success
        db = sqlite3.connect(self.ws.path(".kiln/state.db"))
        self.assertEqual(sorted(db.execute("SELECT path, rec FROM memo").fetchall()), memo,
                         "each row as it was, its hash time too: nothing was hashed again")
        self.assertEqual(sorted(db.execute("SELECT task, key, outputs FROM last_success").fetchall()), last)
        self.assertFalse(db.execute("SELECT name FROM sqlite_master WHERE name = 'files'").fetchall())
        db.close()

    def test_a_packing_migration_that_fails_leaves_version_10_whole(self):
        db = sqlite3.connect(self.ws.path(".kiln/state.db"))
        memo, last = as_version_10(db)
        db.execute("CREATE TABLE last_packed (x)")  # in the way of the last step
        db.execute("PRAGMA user_version = 10")
        db.commit()
        db.close()
        r = self.ws.kiln("run")
        self.assertNotEqual(r.rc, 0, r)
        self.assertIn("migrating the last successes: table last_packed already exists", r.err)
        db = sqlite3.connect(self.ws.path(".kiln/state.db"))
        self.assertEqual(db.execute("PRAGMA user_version").fetchone()[0], 10)
        self.assertEqual(db.execute("SELECT count(*) FROM files").fetchone()[0], len(memo), "the memo's step undone")
        self.assertFalse(db.execute("SELECT name FROM sqlite_master WHERE name = 'memo'").fetchall())
        db.execute("DROP TABLE last_packed")
        db.commit()
        db.close()
        r = self.ws.kiln("run")
        self.assertEqual((r.rc, r.ran, r.restored), (0, set(), set()), r)
        self.ws.write("src/a.txt", "line a, edited\n")
        self.assertEqual(self.ws.kiln("run").ran, {"leaf/a", "mid/ab", "len/ab"})


def as_version_10(db):
    """The memo and the last successes as versions up to 10 kept them: a table `files` of six
    columns, and each last success's outputs as the text recorded with its success. Returns
    the memo's rows and the last successes' as they were."""
    rows = db.execute("SELECT path, rec FROM memo").fetchall()
    last = db.execute("SELECT task, key, outputs FROM last_success").fetchall()
    db.execute("CREATE TABLE files (path TEXT PRIMARY KEY, size INTEGER, mtime_ns INTEGER, ino INTEGER,"
               "  ctime_ns INTEGER, hashed_ns INTEGER, hash BLOB) WITHOUT ROWID")
    for path, rec in rows:
        db.execute("INSERT INTO files VALUES (?, ?, ?, ?, ?, ?, ?)", (path,) + struct.unpack("<5q", rec[:40]) + (rec[40:],))
    db.execute("DROP TABLE memo")
    db.executescript("CREATE TABLE old AS SELECT task, key FROM last_success; DROP TABLE last_success;"
                     "CREATE TABLE last_success (task TEXT PRIMARY KEY, key BLOB, outputs TEXT) WITHOUT ROWID;"
                     "INSERT INTO last_success SELECT o.task, o.key, s.outputs FROM old o"
                     "  JOIN successes s ON s.task = o.task AND s.key = o.key;"
                     "DROP TABLE old;")
    db.commit()
    return sorted(rows), sorted(last)


class Accept(KilnTestCase):
    """A comment added to the script every eval reads: without accept all of them and the
    summary run again; with it none does, and what it refuses it says why."""

    def setUp(self):
        super().setUp()
        self.ws.write("eval.py", "import sys\nopen(sys.argv[2], 'w').write('{\"top1\": %d}' % len(sys.argv[1]))\n")
        self.ws.write("kiln.lua", """
local outs = {}
for _, d in ipairs({"cifar10", "dtd", "eurosat"}) do
  local out = "results/" .. d .. ".json"
  task { name = "eval/" .. d, inputs = {"eval.py"}, outputs = {out}, metrics = out, tags = {dataset = d},
         run = {"python3", "eval.py", d, out} }
  outs[#outs + 1] = out
end
task { name = "summary", inputs = outs, outputs = {"summary.txt"}, run = "cat results/*.json > summary.txt" }
""")
        r = self.ws.kiln("run")
        self.assertEqual(r.rc, 0, r)

    def test_an_edit_that_changes_no_result_is_accepted_and_nothing_runs(self):
        self.ws.write("eval.py", self.ws.read("eval.py") + "# evaluates one dataset\n")
        r = self.ws.kiln("status")
        self.assertIn("kiln: 3 tasks would run for eval.py's change alone: if that edit makes no difference to their "
                      "results, `kiln accept TASK|GLOB ...` records their outputs as they are", r.out)
        r = self.ws.kiln("accept", "-n", "eval/*")
        self.assertIn("would accept  eval/dtd (input eval.py changed", r.out)
        self.assertIn("kiln: 3 tasks would be accepted (-n: nothing recorded), 0 already up to date", r.out)
        self.assertIn("3 tasks would run for eval.py's change alone", self.ws.kiln("status").out, "-n recorded nothing")
        r = self.ws.kiln("accept", "eval/*")
        self.assertEqual(r.rc, 0, r)
        self.assertIn("accepted  eval/dtd (input eval.py changed", r.out)
        self.assertIn("kiln: 3 tasks accepted, 0 already up to date, 0 refused", r.out)
        r = self.ws.kiln("status", "--exit-code")
        self.assertEqual(r.rc, 0, "the summary is up to date by its own key: %s" % r.out)
        r = self.ws.kiln("run")
        self.assertEqual(r.ran, set(), r)
        self.assertIn("4 up to date", r.out)
        r = self.ws.kiln("metrics")
        self.assertIn("eurosat", r.out, "the accepted outputs' metrics are recorded")
        self.assertIn("eval/dtd: its outputs stand by `kiln accept` (run 2, ", self.ws.kiln("why", "eval/dtd").out)
        self.ws.write("eval.py", self.ws.read("eval.py").replace("len(sys.argv[1])", "(2 * len(sys.argv[1]))"))
        r = self.ws.kiln("run")  # a later real change runs as ever
        self.assertEqual(r.ran, {"eval/cifar10", "eval/dtd", "eval/eurosat", "summary"}, r)
        self.assertNotIn("kiln accept", self.ws.kiln("why", "eval/dtd").out, "made by its command again")

    def test_outputs_made_before_kiln_knew_them_are_taken_up(self):
        self.ws.kiln("clean", "--all")
        for d in ("cifar10", "dtd", "eurosat"):  # made by hand, the way a lab ran it before
            self.ws.write("results/%s.json" % d, '{"top1": %d}' % len(d))
        self.ws.write("summary.txt", "old\n")
        r = self.ws.kiln("accept", "eval/*", "summary")
        self.assertEqual(r.rc, 0, r)
        self.assertIn("accepted  summary (no successful run recorded)", r.out)
        self.assertEqual(self.ws.kiln("run").ran, set())

    def test_a_maps_name_accepts_its_items(self):
        self.ws.write("cap.py", "import sys\nfor i in open(sys.argv[1]): i = i.strip(); open('caps/' + i, 'w').write(i)\n")
        self.ws.write("kiln.lua", """
local names = {}
for i = 1, 60 do names[#names + 1] = "i" .. i end
map { name = "caption", items = names, shards = 2, inputs = {"cap.py"}, output = "caps/{item}",
      run = {"python3", "cap.py", "{items}"} }
""")
        self.assertEqual(self.ws.kiln("run").rc, 0)
        self.ws.write("cap.py", self.ws.read("cap.py") + "# one caption per line\n")
        r = self.ws.kiln("accept", "caption")
        self.assertEqual(r.rc, 0, r)
        self.assertIn("kiln: 60 tasks accepted, 1 already up to date, 0 refused", r.out)
        self.assertIn("kiln: the first 50 of each were listed", r.out)
        self.assertEqual(r.out.count("accepted  caption/"), 50)
        self.assertEqual(self.ws.kiln("run").ran, set())

    def test_what_it_cannot_stand_behind_is_refused(self):
        self.ws.write("eval.py", self.ws.read("eval.py") + "# a comment\n")
        os.remove(self.ws.path("results/dtd.json"))
        r = self.ws.kiln("accept", "eval/dtd", "summary")
        self.assertEqual(r.rc, 1, r)
        self.assertIn("refused   eval/dtd: its output results/dtd.json is not there: it must run", r.out)
        self.assertIn("refused   summary: its dependency eval/cifar10 would run (kiln why eval/cifar10): run it "
                      "first, or accept it too", r.out)
        r = self.ws.kiln("accept")
        self.assertEqual(r.rc, 2, r)
        self.assertIn("kiln accept needs the tasks to accept by name or glob", r.err)
        r = self.ws.kiln("accept", "nosuch/*")
        self.assertNotEqual(r.rc, 0, r)
        r = self.ws.kiln("run")  # the summary reads the same results again: up to date by its key
        self.assertEqual(r.ran, {"eval/cifar10", "eval/dtd", "eval/eurosat"}, "nothing was accepted")


class DirectoryOutputs(KilnTestCase):
    def test_file_inside_a_rewritten_directory_output_is_seen_afresh(self):
        # kiln stats every file it hashed before while the recipe loads; a task that then
        # rewrites its directory output must not leave those early stats in use
        self.ws.write("src.txt", "aaaa\n")
        self.ws.write("kiln.lua", """
task { name = "gen", inputs = {"src.txt"}, outputs = {"d"}, run = "mkdir -p d && cp src.txt d/f.txt && echo x > d/g.txt" }
task { name = "use", inputs = {"d/f.txt"}, outputs = {"u.txt"}, run = "cp d/f.txt u.txt" }
""")
        self.assertEqual(self.ws.kiln("run").ran, {"gen", "use"})
        time.sleep(0.06)  # leave the racy window, so that the memo trusts d/f.txt's stat
        self.assertEqual(self.ws.kiln("run").ran, set(), "a directory output's hash is recorded whole")
        self.ws.write("src.txt", "bbbb\n")
        r = self.ws.kiln("run")
        self.assertEqual(r.ran, {"gen", "use"}, r)
        self.assertEqual(self.ws.read("u.txt"), "bbbb\n")
        self.assertEqual(self.ws.kiln("run").ran, set())


    def test_directory_output_is_restored_from_the_store(self):
        self.ws.write("src.txt", "aaaa\n")
        self.ws.write("kiln.lua", """
task { name = "gen", inputs = {"src.txt"}, outputs = {"d"},
       run = "rm -rf d && mkdir -p d/sub d/empty && cp src.txt d/f.txt && echo deep > d/sub/g.txt && "
          .. "printf '#!/bin/sh\\necho hi\\n' > d/run.sh && chmod 755 d/run.sh" }
task { name = "use", inputs = {"d/f.txt"}, outputs = {"u.txt"}, run = "cp d/f.txt u.txt" }
""")
        self.assertEqual(self.ws.kiln("run").ran, {"gen", "use"})
        def snapshot():
            return {(os.path.relpath(os.path.join(dp, n), self.ws.path("d")), open(os.path.join(dp, n)).read(),
                     os.stat(os.path.join(dp, n)).st_mode)
                    for dp, dirs, files in os.walk(self.ws.path("d")) for n in files} | \
                   {os.path.relpath(os.path.join(dp, n), self.ws.path("d")) for dp, dirs, _ in os.walk(self.ws.path("d")) for n in dirs}
        first = snapshot()
        shutil.rmtree(self.ws.path("d"))
        r = self.ws.kiln("run")
        self.assertEqual((r.ran, r.restored), (set(), {"gen"}), r)
        self.assertEqual(snapshot(), first, "files, modes and empty directories come back")
        self.ws.write("d/f.txt", "tampered\n")
        self.ws.write("d/extra.txt", "x")
        r = self.ws.kiln("run")
        self.assertEqual((r.ran, r.restored), (set(), {"gen"}), r)
        self.assertEqual(snapshot(), first, "a restore replaces the whole directory")
        self.ws.write("src.txt", "bbbb\n")
        self.assertEqual(self.ws.kiln("run").ran, {"gen", "use"})
        self.ws.write("src.txt", "aaaa\n")
        self.assertEqual(self.ws.kiln("gc").rc, 0)
        r = self.ws.kiln("run")
        self.assertEqual((r.ran, r.restored), (set(), {"gen", "use"}), r)  # both keys were seen before
        self.assertEqual(self.ws.read("u.txt"), "aaaa\n")
        self.assertEqual(snapshot(), first)

    def test_directory_over_the_store_limit_is_not_kept(self):
        self.ws.write("kiln.lua", 'task { name = "big", outputs = {"d"}, run = '
                                  '"mkdir -p d && head -c 2000000 /dev/zero > d/zeros" }\n')
        self.assertEqual(self.ws.kiln("run", "--store-max", "1").ran, {"big"})
        shutil.rmtree(self.ws.path("d"))
        st = self.ws.kiln("status", "--store-max", "1")
        self.assertIn("the store does not hold the recorded version", st.out)
        r = self.ws.kiln("run", "--store-max", "1")
        self.assertEqual(r.ran, {"big"}, r)


    def test_fifo_input_is_not_read(self):
        # opening a fifo waits for a writer: kiln must not try to hash one
        os.mkfifo(self.ws.path("pipe"))
        self.ws.write("kiln.lua", 'task { name = "a", inputs = {"pipe"}, outputs = {"o"}, run = "touch o" }\n')
        self.assertEqual(self.ws.kiln("run").ran, {"a"})
        self.assertEqual(self.ws.kiln("run").ran, set())


class CrashSafety(KilnTestCase):
    def test_kill_9_mid_run_then_resume(self):
        # each task writes half its output, sleeps, writes the rest: a kill leaves partial files
        lines = ['task { name = "fast", outputs = {"fast.txt"}, run = "echo fast > fast.txt" }']
        for i in range(6):
            lines.append('task { name = "slow%d", deps = {"fast"}, outputs = {"s%d.txt"}, run = %s }' % (
                i, i, lua_str("printf 'part1-' > s%d.txt; sleep 0.6; echo part2 >> s%d.txt" % (i, i))))
        self.ws.write("kiln.lua", "\n".join(lines) + "\n")
        p = self.ws.spawn("run", "-j", "2")
        self.assertTrue(wait_for(lambda: self.ws.exists("s0.txt") or self.ws.exists("s1.txt"), 10))
        time.sleep(0.2)
        p.send_signal(signal.SIGKILL)
        p.communicate()
        partial = [f for f in ("s%d.txt" % i for i in range(6)) if self.ws.exists(f) and "part2" not in self.ws.read(f)]
        self.assertTrue(partial, "the kill should have left a partial output")
        r = self.ws.kiln("run", "-j", "2")
        self.assertEqual(r.rc, 0, r)
        self.assertNotIn("fast", r.ran, "an earlier success is not lost")
        for f in partial:
            self.assertIn(f.replace(".txt", "").replace("s", "slow"), r.ran)
        for i in range(6):
            self.assertEqual(self.ws.read("s%d.txt" % i), "part1-part2\n")
        self.assertEqual(self.ws.kiln("run").ran, set())

    def test_a_big_grid_judged_ahead_on_every_core_finds_each_change(self):
        # 1500 tasks without dependencies: their keys and outputs are judged before the
        # checks, several blocks of them at once; each kind of change must still be seen
        n = 1500
        for i in range(n):
            self.ws.write("in/%d.txt" % i, "item %d\n" % i)
        self.ws.write("kiln.lua", "local items = {}\nfor i = 0, %d do items[#items + 1] = tostring(i) end\n"
                      "map { name = 'g', items = items, shards = 1, input = 'in/{item}.txt', output = 'out/{item}.txt',\n"
                      "      run = 'while read it; do tr a-z A-Z < in/$it.txt > out/$it.txt; done < {items}' }\n" % (n - 1))
        self.assertIn("%d ran, 0 up to date" % (n + 1), self.ws.kiln("run").out)
        self.assertIn("0 ran, %d up to date" % (n + 1), self.ws.kiln("run").out)
        self.ws.write("in/700.txt", "changed\n")      # an input: that item runs
        self.ws.write("out/1300.txt", "tampered\n")   # an output: put back from the store
        os.remove(self.ws.path("out/5.txt"))          # a deleted output: the same
        time.sleep(0.01)
        r = self.ws.kiln("run")
        self.assertIn("2 ran, %d up to date, 2 restored" % (n + 1 - 4), r.out)  # the item and its group
        self.assertEqual(r.restored, {"g/1300", "g/5"}, r)
        self.assertEqual(self.ws.read("out/700.txt"), "CHANGED\n")
        self.assertEqual(self.ws.read("out/1300.txt"), "ITEM 1300\n")
        self.assertEqual(self.ws.read("out/5.txt"), "ITEM 5\n")
        self.ws.write("in/701.txt", "changed too\n")
        self.assertIn("input in/701.txt", self.ws.kiln("why", "g/701").out)
        self.assertIn("2 ran, %d up to date" % (n - 1), self.ws.kiln("run").out)
        self.assertIn("0 ran, %d up to date" % (n + 1), self.ws.kiln("run").out)

    def test_orphans_of_a_killed_kiln_are_stopped(self):
        self.ws.write("kiln.lua", 'task { name = "long", run = "sleep 63.29" }\n')
        p = self.ws.spawn("run")
        self.assertTrue(wait_for(lambda: self.ws.exists(".kiln/logs/long@1.log")))
        time.sleep(0.3)
        p.send_signal(signal.SIGKILL)
        p.communicate()
        from kilntest import processes_matching
        self.assertTrue(processes_matching("sleep 63.29"), "the task outlives a kill -9 of kiln")
        self.ws.write("kiln.lua", 'task { name = "other", run = "true" }\n')
        r = self.ws.kiln("run")
        self.assertIn('stopped the attempt of "long" an earlier kiln left running: the task is no longer in the recipe', r.err)
        self.assertTrue(wait_for(lambda: not processes_matching("sleep 63.29"), 5))


if __name__ == "__main__":
    main()
