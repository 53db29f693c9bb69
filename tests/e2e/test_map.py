"""End-to-end: map{} — items as tasks made in batches by one process per shard. A kill -9
or Ctrl-C in the middle of a 200-item, 4-shard map, then a re-run that executes only the
items not recorded (counted from the item records and a ledger the command appends to;
items added meanwhile run in a batch of their own, not as a retry); the item a shard had
finished when Ctrl-C or its timeout stopped it is kept with atomic_outputs;
10 new items run 10; an edited command re-runs all; a failed item is reported by name and
the others stay done; items that fail with one shard's log show it once in the summary,
and `kiln log MAP/ITEM` prints it (`kiln why` names it); shards are even; progress lines
with a rate; the runner's GPU lease; a thousand-item group keyed as one digest, in any
order; the report's count of a map's items by run, naming those not recorded.
Also progress from inside a task (KILN_PROGRESS) and the cost estimate of a dry run."""
import os
import re
import signal
import sqlite3
import subprocess
import time

from kilntest import KilnTestCase, lua_str, main, marked_processes, wait_for

# works through its list in order, one item at a time: appends to the ledger, writes the
# output atomically; FAIL_ITEM names one item that fails (no output, the shard goes on)
WORKER = ("while read it; do sleep ${SLEEP:-0}; echo \"$it $KILN_TASK $CUDA_VISIBLE_DEVICES\" >> ledger; "
          "if [ \"$it\" = \"$FAIL_ITEM\" ]; then continue; fi; "
          "printf 'caption of %s\\n' \"$it\" > out/$it.tmp && mv out/$it.tmp out/$it.txt; done < {items}")


def recipe(n, shards=4, extra="", command=WORKER):
    return """
local items = {}
for i = 1, %d do items[#items + 1] = string.format("%%04d", i) end
map { name = "cap", items = items, shards = %s, output = "out/{item}.txt", run = %s %s }
task { name = "all", deps = {"cap"}, outputs = {"all.txt"}, run = "cat out/*.txt | wc -l > {out}" }
""" % (n, shards, lua_str(command), extra)


class Map(KilnTestCase):
    def ledger(self):
        return self.ws.read("ledger").split("\n")[:-1] if self.ws.exists("ledger") else []

    def recorded(self):
        db = sqlite3.connect(self.ws.path(".kiln/state.db"))
        n = db.execute("SELECT count(*) FROM last_success WHERE task LIKE 'cap/%'").fetchone()[0]
        db.close()
        return n

    def interrupted_then_resumed(self, sig):
        self.ws.write("kiln.lua", recipe(200))
        p = self.ws.spawn("run", env={"SLEEP": "0.02"})
        self.assertTrue(wait_for(lambda: len(self.ledger()) >= 60, timeout=60), "the map got going")
        os.kill(p.pid, sig)
        p.wait(timeout=60)
        # after a kill -9 the shard processes run on until the next kiln stops them; stop
        # them here, so that the ledger counts what the re-run does
        for pid in marked_processes(self.ws.dir):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.assertTrue(wait_for(lambda: not marked_processes(self.ws.dir)))
        before = len(self.ledger())
        self.assertLess(before, 200, "stopped in the middle")
        recorded = self.recorded() if self.ws.exists(".kiln/state.db") else 0
        r = self.ws.kiln("run", timeout=300)
        self.assertEqual(r.rc, 0, r)
        rerun = len(self.ledger()) - before
        # the items without a record ran again, except those a killed shard had finished
        # (its keeper outlived it and says how it ended: what it finished is adopted)
        self.assertLessEqual(rerun, 200 - recorded)
        items = [line.split()[0] for line in self.ledger()]
        self.assertLessEqual(len(items) - len(set(items)), 4, "at most the item in flight per shard ran twice")
        # items print progress, not an "ok" line each: the summary counts them
        self.assertRegex(r.out, r"kiln: 202 tasks: %d ran( \(\d+ in attempts an earlier kiln started, re-attached\))?, "
                                r"%d up to date" % (200 - recorded + 2, recorded))
        self.assertEqual(self.ws.read("all.txt").strip(), "200")
        for i in range(1, 201):
            self.assertEqual(self.ws.read("out/%04d.txt" % i), "caption of %04d\n" % i)
        return recorded

    def test_kill_9_resumes_at_the_item(self):
        recorded = self.interrupted_then_resumed(signal.SIGKILL)
        self.assertGreater(recorded, 0, "items recorded before the kill were kept")

    def test_kill_9_of_kiln_alone_redoes_at_most_the_items_in_flight(self):
        # the shards outlive kiln and go on working; the next kiln re-attaches to them and
        # records everything they finished, before the kill or after it
        n, sleep = 120, 0.05
        self.ws.write("kiln.lua", recipe(n, shards=2))
        env = {"SLEEP": str(sleep)}
        p = self.ws.spawn("run", env=env)
        self.assertTrue(wait_for(lambda: len(self.ledger()) >= 16, timeout=60), "the map got going")
        # status from another terminal: the items are in the running shards' hands, not "run"
        during = self.ws.kiln("status").out
        self.assertNotRegex(during, r"run +cap/\d")
        self.assertRegex(during, r"kiln: 2 tasks would run, \d+ at work under the kiln running here now")  # cap, all
        p.send_signal(signal.SIGKILL)
        p.communicate()
        self.assertTrue(marked_processes(self.ws.dir), "the shards run on")
        # a plan says so, instead of reading as if their work were lost
        st = self.ws.kiln("status")
        for shard in ("cap:shard-1", "cap:shard-2"):
            self.assertRegex(st.out, r"running   %s: attempt 1 \(local/[\d/]+\), started [\d.]+s ago by an earlier "
                             r"kiln, still runs: `kiln run` re-attaches to it" % shard)
        time.sleep(1.5)  # items finish while no kiln watches
        r = self.ws.kiln("run", env=env, timeout=300)
        self.assertEqual(r.rc, 0, r)
        self.assertIn("attached to local job", r.out)
        runs = len(self.ledger())
        self.assertLessEqual(runs, n + 2, "at most one item per shard runs twice")
        # the summary says where the items it counts ran: in the shards the killed kiln left
        taken = re.search(r"kiln: %d tasks: (\d+) ran \((\d+) in attempts an earlier kiln started, re-attached\)"
                          % (n + 2), r.out)
        self.assertTrue(taken, r.out)
        self.assertEqual(int(taken.group(1)), int(taken.group(2)) + 2, "all but the map's group and `all`: " + r.out)
        self.assertEqual(self.recorded(), n)
        self.assertEqual(self.ws.read("all.txt").strip(), str(n))
        for i in range(1, n + 1):
            self.assertEqual(self.ws.read("out/%04d.txt" % i), "caption of %04d\n" % i)
        # the rate counts what was made while this kiln watched: the items made unwatched,
        # recorded at its first look, would put it above what two shards sleeping `sleep`
        # an item can make at all
        rates = [float(x) for x in re.findall(r"cap: %d/%d items, ([\d.]+) items/s" % (n, n), r.out)]
        self.assertEqual(len(rates), 1, r.out)
        self.assertLessEqual(rates[0], 1.25 * 2 / sleep, r.out)
        self.assertNotIn("running   ", self.ws.kiln("status").out, "nothing is left open")
        self.assertEqual(self.ws.kiln("run").ran, set(), "then a no-op")

    def test_items_added_after_a_kill_9_run_in_a_batch_of_their_own_not_as_a_retry(self):
        self.ws.write("kiln.lua", recipe(20, shards=2))
        p = self.ws.spawn("run", env={"SLEEP": "0.1"})
        self.assertTrue(wait_for(lambda: len(self.ledger()) >= 4, timeout=60), "the map got going")
        p.send_signal(signal.SIGKILL)
        p.communicate()
        self.ws.write("kiln.lua", recipe(24, shards=2))  # four more: no attempt left running lists them
        r = self.ws.kiln("run", env={"SLEEP": "0.1"}, timeout=300)
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(self.recorded(), 24)
        logs = [f for f in os.listdir(self.ws.path(".kiln/logs")) if f.startswith("cap:shard-") and f.endswith(".log")]
        self.assertGreater(len(logs), 2, "a batch after the re-attached attempts")
        for f in logs:
            self.assertIn("(try 1 of 1 in this run)", self.ws.read(".kiln/logs/" + f), f)
        # the attempt re-attached to keeps its number, and the batch after it takes the next
        for shard in ("cap:shard-1", "cap:shard-2"):
            numbers = sorted(int(f[len(shard) + 1:-4]) for f in logs if f.startswith(shard + "@"))
            self.assertEqual(numbers, list(range(1, len(numbers) + 1)), logs)
        r = self.ws.kiln("log", "cap")  # the map's own task groups its items: where are their logs
        self.assertEqual(r.rc, 0, r)
        self.assertIn("cap is a map{}: its items ran in 2 shards, each with its logs: `kiln log cap:shard-1`", r.err)

    def test_after_a_kill_9_items_whose_inputs_were_made_again_are_not_taken_from_the_old_attempt(self):
        # the shards outlive kiln; the next run makes their inputs again with other content:
        # what the old attempt made from the old inputs must not be recorded as done
        self.ws.write("kiln.lua", """
local P = params { version = 1 }
local items = {}
for i = 1, 60 do items[#items + 1] = string.format("%04d", i) end
task { name = "gen", outputs = {"in"}, run = "mkdir -p in; for i in $(seq -f %04g 1 60); do echo v" .. P.version .. " $i > in/$i.txt; done" }
map { name = "m", items = items, shards = 2, input = "in/{item}.txt", output = "out/{item}.txt",
      run = "mkdir -p out; while read i; do sleep 0.05; cp in/$i.txt out/$i.tmp 2>/dev/null && mv out/$i.tmp out/$i.txt; done < {items}" }
""")
        p = self.ws.spawn("run", "version=1")
        self.assertTrue(wait_for(lambda: self.ws.exists("out") and len(os.listdir(self.ws.path("out"))) >= 10, timeout=60))
        p.send_signal(signal.SIGKILL)
        p.communicate()
        r = self.ws.kiln("run", "version=2", timeout=300)
        self.assertEqual(r.rc, 0, r)
        self.assertIn("inputs of its items changed after the attempt an earlier kiln left running started", r.out)
        old = [f for f in sorted(os.listdir(self.ws.path("out"))) if self.ws.read("out/" + f).startswith("v1")]
        self.assertEqual(old, [], "no output made from the old inputs is left as done")
        for i in range(1, 61):
            self.assertEqual(self.ws.read("out/%04d.txt" % i), "v2 %04d\n" % i)
        self.assertEqual(self.ws.kiln("run", "version=2").ran, set())

    def test_shards_that_ended_while_no_kiln_watched_are_adopted(self):
        self.ws.write("kiln.lua", recipe(80))
        p = self.ws.spawn("run", env={"SLEEP": "0.02"})
        self.assertTrue(wait_for(lambda: len(self.ledger()) >= 10, timeout=60))
        p.send_signal(signal.SIGKILL)
        p.communicate()
        self.assertTrue(wait_for(lambda: not marked_processes(self.ws.dir), timeout=60), "the shards finish alone")
        self.assertIn("ended while no kiln watched: `kiln run` takes up how it ended", self.ws.kiln("status").out)
        finished = len(self.ledger())
        self.assertGreaterEqual(finished, 20, "the shards that had started finished their lists")
        r = self.ws.kiln("run")
        self.assertEqual(r.rc, 0, r)
        items = [line.split()[0] for line in self.ledger()]
        self.assertEqual(sorted(items), ["%04d" % i for i in range(1, 81)], "nothing they finished ran again")
        self.assertEqual(self.recorded(), 80)
        self.assertEqual(self.ws.read("all.txt").strip(), "80")

    def test_ctrl_c_resumes_at_the_item(self):
        recorded = self.interrupted_then_resumed(signal.SIGINT)
        self.assertGreater(recorded, 0)

    def test_ctrl_c_keeps_an_item_the_shard_finished_and_redoes_one_it_held_open(self):
        # atomic_outputs: item 2 is renamed into place, then the shard idles before item 3;
        # item 3 (breaking that promise) is written in place and held open half written (each
        # waits only the first time)
        worker = ("while read it; do "
                  "if [ $it = 0003 ] && [ ! -e held ]; then exec 3> out/$it.txt; echo part >&3; touch held; "
                  "sleep 30; echo rest >&3; exec 3>&-; continue; fi; "
                  "echo $it >> ledger; printf 'caption of %s\\n' $it > out/$it.tmp && mv out/$it.tmp out/$it.txt; "
                  "if [ $it = 0002 ] && [ ! -e finished2 ]; then touch finished2; sleep 30; fi; done < {items}")
        self.ws.write("kiln.lua", recipe(5, shards=1, command=worker, extra=", atomic_outputs = true"))
        for marker in ("finished2", "held"):
            p = self.ws.spawn("run")
            self.assertTrue(wait_for(lambda: self.ws.exists(marker), timeout=60), marker)
            p.send_signal(signal.SIGINT)
            out, err = p.communicate(timeout=60)
            self.assertEqual(p.returncode, 130, out + err)
            if marker == "finished2":  # the item it had finished when stopped is recorded, not redone
                self.assertEqual(self.recorded(), 2, out)
        self.assertEqual(self.ws.read("out/0003.txt"), "part\n", "the held item's output is there, half written")
        self.assertEqual(self.recorded(), 2, "and not recorded: the shard held it open when it was stopped")
        r = self.ws.kiln("run")
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(self.ws.read("out/0003.txt"), "caption of 0003\n", "redone")
        self.assertEqual(self.ledger(), ["0001", "0002", "0003", "0004", "0005"], "nothing finished ran twice")

    def test_ctrl_c_keeps_the_item_finished_when_the_shard_cannot_be_frozen(self):
        # a process of the shard that does not stop on SIGSTOP (here a vfork parent waiting on
        # a child, as one in a long disk wait would not): the look at its open files goes on
        # unfrozen, and the item it had finished is kept
        self.ws.write("vforker.c", "#include <unistd.h>\n#include <stdio.h>\nint main(void) {\n"
                      "  FILE *f = fopen(\"vforked\", \"w\"); fclose(f);\n"
                      "  if (vfork() == 0) { sleep(30); _exit(0); }\n  return 0;\n}\n")
        cc = subprocess.run(["cc", "-o", self.ws.path("vforker"), self.ws.path("vforker.c")], capture_output=True, text=True)
        self.assertEqual(cc.returncode, 0, cc.stderr)
        worker = ("while read it; do echo $it >> ledger; printf 'caption of %s\\n' $it > out/$it.tmp && "
                  "mv out/$it.tmp out/$it.txt; if [ $it = 0002 ] && [ ! -e vforked ]; then ./vforker; fi; done < {items}")
        self.ws.write("kiln.lua", recipe(4, shards=1, command=worker, extra=", atomic_outputs = true"))
        p = self.ws.spawn("run")
        self.assertTrue(wait_for(lambda: self.ws.exists("vforked"), timeout=60))
        time.sleep(0.3)
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=60)
        self.assertEqual(p.returncode, 130, out + err)
        self.assertEqual(self.recorded(), 2, out)
        r = self.ws.kiln("run")
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(self.ledger(), ["0001", "0002", "0003", "0004"], "nothing finished ran twice")

    def test_a_shard_stopped_by_its_timeout_keeps_the_item_it_finished(self):
        # atomic_outputs, items of 0.8 s, a 2 s timeout per attempt: each attempt finishes an
        # item or two before its timeout; the last of them is recorded, not made again (the
        # retry would otherwise redo it, and with items over half the timeout never progress)
        worker = ("while read it; do echo $it >> ledger; sleep 0.8; "
                  "printf 'caption of %s\\n' $it > out/$it.tmp && mv out/$it.tmp out/$it.txt; done < {items}")
        self.ws.write("kiln.lua", recipe(5, shards=1, command=worker,
                                         extra=", atomic_outputs = true, timeout = 2, retries = 4"))
        r = self.ws.kiln("run", timeout=120)
        self.assertEqual(r.rc, 0, r)
        timeouts = r.out.count("timed out")
        self.assertGreaterEqual(timeouts, 1, r.out)
        self.assertEqual(self.recorded(), 5)
        runs = self.ledger()
        self.assertEqual(sorted(set(runs)), ["0001", "0002", "0003", "0004", "0005"])
        self.assertLessEqual(len(runs) - 5, timeouts, "only the item in flight at each timeout ran twice: %s" % runs)

    def test_ctrl_c_redoes_an_output_written_in_steps_without_atomic_outputs(self):
        # written in two steps, closed between them: nothing holds it open during the pause
        worker = ("while read it; do echo $it >> ledger; printf 'caption of ' > out/$it.txt; "
                  "if [ $it = 0002 ] && [ ! -e paused ]; then touch paused; sleep 30; fi; "
                  "printf '%s\\n' $it >> out/$it.txt; done < {items}")
        self.ws.write("kiln.lua", recipe(3, shards=1, command=worker))
        p = self.ws.spawn("run")
        self.assertTrue(wait_for(lambda: self.ws.exists("paused"), timeout=60))
        p.send_signal(signal.SIGINT)
        p.communicate(timeout=60)
        self.assertEqual(self.ws.read("out/0002.txt"), "caption of ", "stopped between the steps")
        self.assertEqual(self.recorded(), 1, "the half-written item is not recorded")
        r = self.ws.kiln("run")
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(self.ws.read("out/0002.txt"), "caption of 0002\n")

    def test_new_items_run_alone_and_an_edited_command_reruns_all(self):
        self.ws.write("kiln.lua", recipe(40))
        r = self.ws.kiln("run")
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(len(self.ledger()), 40)
        shards = {}
        for line in self.ledger():
            item, shard = line.split()[:2]
            shards.setdefault(shard, []).append(item)
        self.assertEqual(sorted(len(v) for v in shards.values()), [10, 10, 10, 10], "even shards")
        self.assertEqual(sorted(shards), ["cap:shard-1", "cap:shard-2", "cap:shard-3", "cap:shard-4"])
        self.assertIn("progress cap: 40/40 items", r.out)
        self.assertRegex(r.out, r"items/s")
        self.assertEqual(self.ws.kiln("run").ran, set(), "no-op")
        self.ws.write("kiln.lua", recipe(50))
        r = self.ws.kiln("run")
        self.assertEqual(len(self.ledger()), 50, "10 new items, 10 runs")
        self.assertEqual({x.split()[0] for x in self.ledger()[40:]}, {"%04d" % i for i in range(41, 51)})
        self.ws.write("kiln.lua", recipe(50, command=WORKER + " # v2"))
        r = self.ws.kiln("run")
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(len(self.ledger()), 100, "an edited command re-runs every item")

    def test_a_big_group_keys_its_items_as_one_digest_in_any_order(self):
        # past 1000 items the group's key holds one digest of its items' outputs (key.c):
        # reversing the items changes nothing; an item fewer re-keys it, said plainly; an
        # item more runs alone
        def big(n, reverse=False):
            text = recipe(n, shards=2).replace('output = "out/{item}.txt"', 'output = "out/{item}.txt", input = "in/{item}.txt"')
            if reverse:
                text = text.replace('map { name = "cap", items = items', 'local rev = {}\n'
                                    'for i = #items, 1, -1 do rev[#rev + 1] = items[i] end\n'
                                    'map { name = "cap", items = rev')
            return text
        os.makedirs(self.ws.path("in"))
        for i in range(1, 1004):
            self.ws.write("in/%04d.txt" % i, "x\n")
        self.ws.write("kiln.lua", big(1002))
        self.assertEqual(self.ws.kiln("run", timeout=300).rc, 0)
        self.assertEqual(len(self.ledger()), 1002)
        self.ws.write("kiln.lua", big(1002, reverse=True))
        r = self.ws.kiln("run")
        self.assertEqual((r.rc, r.ran), (0, set()), r)
        self.assertIn("0 ran, 1004 up to date", r.out)
        self.ws.write("kiln.lua", big(1001))
        r = self.ws.kiln("run", "-n")
        self.assertRegex(r.out, r"run\s+cap: its dependencies or their outputs changed", r)
        self.assertNotRegex(r.out, r"run\s+cap/", "no item runs")
        self.ws.write("kiln.lua", big(1003))
        r = self.ws.kiln("run")
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(len(self.ledger()), 1003, "the new item alone ran")

    def test_a_plan_and_status_decide_items_not_their_shards_runners(self):
        # a runner starts for its items and has no record of its own: a done map plans
        # nothing and status says so; a changed item is planned alone, with its group
        self.ws.write("kiln.lua", recipe(6, shards=2))
        self.assertEqual(self.ws.kiln("run").rc, 0)
        r = self.ws.kiln("run", "-n")
        self.assertEqual(r.rc, 0, r)
        self.assertIn("0 tasks would run", r.out)
        self.assertNotIn("shard", r.out)
        self.assertEqual(self.ws.kiln("status", "-q").rc, 0, "everything is up to date")
        w = self.ws.kiln("why", "cap:shard-2")
        self.assertEqual(w.rc, 0, w)
        self.assertIn("cap:shard-2: runs map cap's shard 2 of 2", w.out)
        self.assertIn("0 of its 3 items would run now", w.out)
        os.remove(self.ws.path("out/0003.txt"))
        self.ws.write("kiln.lua", recipe(6, shards=2, command=WORKER + " # v2"))
        r = self.ws.kiln("run", "-n")
        self.assertIn("8 tasks would run", r.out, r)  # the six items, the group, all
        self.assertRegex(r.out, r"run\s+cap:shard-1: 3 of its 3 items would run")
        self.assertRegex(r.out, r"run\s+cap:shard-2: 3 of its 3 items would run")
        self.assertNotEqual(self.ws.kiln("status", "-q").rc, 0)

    def test_a_failed_item_is_reported_by_name_and_the_others_stay_done(self):
        self.ws.write("kiln.lua", recipe(12, shards=2))
        r = self.ws.kiln("run", "-k", env={"FAIL_ITEM": "0005"})
        self.assertEqual(r.rc, 1, r)
        self.assertIn("FAILED cap/0005: cap:shard-1 exited 0 without writing out/0005.txt", r.out)
        self.assertEqual(self.recorded(), 11, "the other eleven are recorded")
        before = len(self.ledger())
        r = self.ws.kiln("run")
        self.assertEqual(r.rc, 0, r)
        self.assertEqual([x.split()[0] for x in self.ledger()[before:]], ["0005"], "only the failed item runs again")
        self.assertIn("3 ran, 11 up to date", r.out)

    def test_items_that_share_a_log_print_it_once_in_the_summary(self):
        self.ws.write("kiln.lua", recipe(12, shards=1, command="echo the shard looked at {items}; true"))
        r = self.ws.kiln("run", "-k")
        self.assertEqual(r.rc, 1, r)
        summary = r.out[r.out.rindex("progress cap:"):]
        self.assertEqual(len(re.findall(r"^FAILED cap/\d+: cap:shard-1 exited 0 without writing", summary, re.M)), 5,
                         summary)
        self.assertIn("FAILED cap/0001:", summary)
        self.assertIn("  ... and 7 more with the same log\n", summary)
        self.assertEqual(summary.count("| the shard looked at"), 1, "the log's tail once")
        self.assertEqual(len(re.findall(r"^FAILED\s+\[\d+/\d+\] cap/", r.out, re.M)), 12, "each item as it failed")
        # an item's log is its shard's; the map's name says where the logs are
        r = self.ws.kiln("log", "cap/0007")
        self.assertEqual(r.rc, 0, r)
        self.assertIn("cap/0007 is an item of a map{}; attempt 1 of cap:shard-1 ran it, whose log follows", r.err)
        self.assertIn("# kiln: task cap:shard-1, attempt 1", r.out)
        self.assertIn("the shard looked at", r.out)
        r = self.ws.kiln("why", "cap/0007")
        self.assertIn("cap/0007: an item of map cap, made in a batch by its shard cap:shard-1 (kiln log cap/0007)",
                      r.out)
        self.assertIn("cap/0007: its shard's latest attempt ran: /bin/sh -c echo the shard looked at", r.out)
        r = self.ws.kiln("log", "cap")
        self.assertEqual(r.rc, 2, r)
        self.assertIn("is a map{}: its items ran in 1 shard", r.err)
        self.assertIn("no log recorded for task \"cap/0099\", and no list of map cap's shards names it",
                      self.ws.kiln("log", "cap/0099").err)

    def test_an_item_s_log_is_the_attempt_that_ran_it_in_a_map_named_with_a_slash(self):
        # two runs: the second adds items, so shard 1's latest attempt lists only new ones
        self.ws.write("kiln.lua", recipe(4, shards=2).replace('name = "cap"', 'name = "eval/cap"')
                      .replace('deps = {"cap"}', 'deps = {"eval/cap"}'))
        self.assertEqual(self.ws.kiln("run").rc, 0)
        self.ws.write("kiln.lua", recipe(6, shards=2).replace('name = "cap"', 'name = "eval/cap"')
                      .replace('deps = {"cap"}', 'deps = {"eval/cap"}'))
        self.assertEqual(self.ws.kiln("run").rc, 0)
        ledger = [line.split() for line in self.ledger()]
        first, added = ledger[:4], ledger[4:]
        self.assertEqual(sorted(i for i, *_ in added), ["0005", "0006"], "only the new items ran")
        for item, shard, *_ in first + added:
            r = self.ws.kiln("log", "eval/cap/" + item)
            self.assertEqual(r.rc, 0, r)
            attempt = 1 if [item, shard] in [x[:2] for x in first] else 2
            self.assertIn("eval/cap/%s is an item of a map{}; attempt %d of %s ran it" % (item, attempt, shard), r.err)
            self.assertIn("# kiln: task %s, attempt %d " % (shard, attempt), r.out)
        r = self.ws.kiln("log", "eval/cap")
        self.assertEqual(r.rc, 0, r)
        self.assertIn("eval/cap is a map{}: its items ran in 2 shards", r.err)
        self.assertIn("no list of map eval/cap's shards names it", self.ws.kiln("log", "eval/cap/0099").err)

    def map_row(self):
        r = self.ws.kiln("report")
        self.assertEqual(r.rc, 0, r)
        row = re.search(r"<h3>Maps</h3>.*?<tr><td>cap</td>(.*?)</tr>", self.ws.read("report.html"), re.S)
        self.assertIsNotNone(row, "the report has a row for the map")
        return [cell for cell in re.split(r"<[^>]+>", row.group(1)) if cell]

    def test_the_report_counts_a_maps_items_by_run_and_names_those_not_recorded(self):
        self.ws.write("kiln.lua", recipe(12, shards=2))
        self.assertEqual(self.ws.kiln("run", "-k", env={"FAIL_ITEM": "0005"}).rc, 1)
        # items, recorded, made in this run, made earlier, not recorded
        self.assertEqual(self.map_row(), ["12", "11", "11", "0", "1: 0005"])
        self.assertEqual(self.ws.kiln("run").rc, 0)
        self.assertEqual(self.map_row(), ["12", "12", "1", "11", "none"])
        # items gone from the recipe keep their records, but are no longer the map's
        self.ws.write("kiln.lua", recipe(10, shards=2))
        self.assertEqual(self.map_row(), ["10", "10", "1", "9", "none"])

    def test_deleted_output_is_restored_and_a_shard_holds_its_gpu_for_all_items(self):
        self.ws.write("gpus.csv", "0, 80000, 0\n1, 80000, 0\n")
        env = {"KILN_GPU_INFO": self.ws.path("gpus.csv")}
        self.ws.write("kiln.lua", recipe(8, shards="\"gpus\"", extra=", gpus = 1"))
        r = self.ws.kiln("run", env=env)
        self.assertEqual(r.rc, 0, r)
        by_shard = {}
        for line in self.ledger():
            item, shard, gpu = line.split()
            by_shard.setdefault(shard, set()).add(gpu)
        self.assertEqual(len(by_shard), 2, "shards = \"gpus\": one per device")
        self.assertEqual(sorted(g for v in by_shard.values() for g in v), ["0", "1"], "one device per shard, all along")
        os.remove(self.ws.path("out/0003.txt"))
        r = self.ws.kiln("run", env=env)
        self.assertEqual(r.restored, {"cap/0003"}, "an item is a task: its output comes back from the store")
        self.assertEqual(len(self.ledger()), 8)

    def test_recipe_errors(self):
        cases = [('map { name = "m", items = {"a"}, run = "true" }', "field 'output'"),
                 ('map { name = "m", items = {"a"}, output = "o.txt", run = "true" }', "field 'output'"),
                 ('map { name = "m", items = {"a"}, output = "{item}.txt" }', "field 'run'"),
                 ('map { name = "m", items = {"a"}, output = "{item}.txt", run = "true", shards = 0 }', "shards must be"),
                 ('map { name = "m", items = {"a b"}, output = "{item}.txt", run = "true" }',
                  'map{} "m": item "a b" cannot name its task ("m/a b")'),
                 ('map { name = "m", items = {"a", "b c"}, output = "{item}.txt", run = "true" }',
                  'map{} "m": item "b c" cannot name its task'),
                 ('map { name = "m", items = {"a"}, output = "{item}.txt", run = "true", nope = 1 }', "unknown field 'nope'"),
                 ('map { name = "m", items = {"a"}, output = "{item}.txt", run = "true", atomic_outputs = "yes" }',
                  "atomic_outputs is true")]
        for text, message in cases:
            self.ws.write("kiln.lua", "\n" + text + "\n")
            r = self.ws.kiln("run")
            self.assertEqual(r.rc, 2, (text, r))
            self.assertIn("kiln.lua:2:", r.err, text)
            self.assertIn(message, r.err, text)


class ProgressAndCost(KilnTestCase):
    def test_progress_file_lines_with_rate_and_eta(self):
        # written after the command changed directory: KILN_PROGRESS is a full path
        self.ws.write("kiln.lua", 'task { name = "train", run = "mkdir -p w && cd w && for i in $(seq 1 16); do '
                      'echo $i/16 >> $KILN_PROGRESS; '
                      'sleep 0.8; done" }\n')
        r = self.ws.kiln("run")
        self.assertEqual(r.rc, 0, r)
        lines = [l for l in r.out.splitlines() if l.startswith("progress ")]
        self.assertGreaterEqual(len(lines), 1, r.out)
        self.assertTrue(any(re.match(r"^progress +train \d+/16, [\d.]+/s, ETA \d", l) for l in lines),
                        "a rate and an ETA: %s" % lines)
        self.assertFalse(self.ws.exists(".kiln/logs/train@1.log.progress"), "the file goes with the attempt")

    def test_dry_run_estimates_from_own_and_similar_tasks(self):
        recipe = """
local P = params { models = "a,b" }
for m in P.models:gmatch("[^,]+") do
  for _, d in ipairs({"x", "y"}) do
    task { name = "eval/" .. d .. "/" .. m, tags = { dataset = d, model = m }, gpus = 1,
           run = string.format("sleep %s # %s", d == "x" and "0.3" or "0.9", P.salt or "") }
  end
end
"""
        self.ws.write("gpus.csv", "0, 80000, 0\n1, 80000, 0\n")
        env = {"KILN_GPU_INFO": self.ws.path("gpus.csv")}
        self.ws.write("kiln.lua", recipe)
        first = self.ws.kiln("run", env=env)
        self.assertEqual(first.rc, 0, first)
        # their times as recorded (a loaded machine stretches a sleep), to the printed 0.1 s
        took = {d: [float(t) for t in re.findall(r"\] eval/%s/[ab] \(([\d.]+)s\)" % d, first.out)] for d in "xy"}
        self.assertEqual([len(took["x"]), len(took["y"])], [2, 2], first.out)
        r = self.ws.kiln("run", "-n", "models=a,b,c", "-j", "1", env=env)
        self.assertEqual(r.rc, 0, r)
        m = re.search(r"estimated ([\d.]+)s of work \(0 from their last run, 2 from similar tasks, 0 unknown\), "
                      r"([\d.]+) GPU-hours; ETA about ([\d.]+)s at 1 slot", r.out)
        self.assertIsNotNone(m, r.out)
        self.assertAlmostEqual(float(m.group(1)), sum(took["x"]) / 2 + sum(took["y"]) / 2, delta=0.16,
                               msg="c on x like a, b on x; on y likewise")
        s = self.ws.kiln("status", "models=a,b,c", env=env)
        self.assertIn("2 from similar tasks", s.out)

    def test_dry_run_eta_counts_the_cpus_tasks_hold(self):
        # four ~0.4 s tasks of 2 CPUs each: 4 slots would take one task's time, but 2 CPUs
        # take the four one after another (their times as recorded: a loaded machine
        # stretches a sleep)
        self.ws.write("kiln.lua", 'local P = params { salt = "" }\n'
                      'for i = 1, 4 do task { name = "t" .. i, cpus = 2, run = "sleep 0.4 # " .. P.salt } end\n')
        first = self.ws.kiln("run", "-j", "4", "--cpus", "8")
        self.assertEqual(first.rc, 0, first)
        took = [float(t) for t in re.findall(r"\] t\d \(([\d.]+)s\)", first.out)]
        self.assertEqual(len(took), 4, first.out)
        r = self.ws.kiln("run", "-n", "salt=1", "-j", "4", "--cpus", "2")
        self.assertEqual(r.rc, 0, r)
        m = re.search(r"ETA about ([\d.]+)s at 4 slots, 2 CPUs", r.out)
        self.assertIsNotNone(m, r.out)
        self.assertAlmostEqual(float(m.group(1)), sum(took), delta=0.35)
        self.assertGreater(float(m.group(1)), 2.5 * max(took), "one after another, not side by side")


if __name__ == "__main__":
    main()
