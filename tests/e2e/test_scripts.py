"""End-to-end: what running a script nobody here wrote needs — a working directory per
task, outputs it may leave unmade, metrics read from its log lines, its ranks started by
kiln, the command as it ran in the log header, and a grid that runs to the end whatever
one config does. (Real PyTorch ranks are in test_torchrun.py.)"""
import os
import re
import signal
import sqlite3
import time

from kilntest import KilnTestCase, lua_str, main, processes_matching, wait_for


class WorkingDirectory(KilnTestCase):
    def test_each_task_runs_in_its_own_folder_with_paths_from_there(self):
        self.ws.write("data/in.txt", "D\n")
        self.ws.write("kiln.lua", """
for _, lr in ipairs({"1", "2"}) do
  task { name = "train/" .. lr, cwd = "runs/{name}", inputs = {"data/in.txt"},
         outputs = {"runs/train/" .. lr .. "/model.pt"},
         run = "pwd > where.txt; cat {in} > model.pt; echo lr=" .. lr .. " >> model.pt" }
end
task { name = "argv", cwd = "runs/argv", inputs = {"data/in.txt"}, outputs = {"runs/argv/o"}, run = {"cp", "{in}", "o"} }
""")
        r = self.ws.kiln("run")
        self.assertEqual(r.rc, 0, r)
        for lr in ("1", "2"):
            self.assertEqual(self.ws.read("runs/train/%s/where.txt" % lr).strip(),
                             os.path.realpath(self.ws.path("runs/train/%s" % lr)))
            self.assertEqual(self.ws.read("runs/train/%s/model.pt" % lr), "D\nlr=%s\n" % lr)
        self.assertEqual(self.ws.read("runs/argv/o"), "D\n")
        log = self.ws.read(".kiln/logs/train/1@1.log")
        self.assertIn("# cwd: runs/train/1", log)
        self.assertIn("cat ../../../data/in.txt > model.pt", log)
        self.assertEqual(self.ws.kiln("run").ran, set())
        # the folder is part of the key: moving it runs the task there
        self.ws.write("kiln.lua", 'task { name = "argv", cwd = "elsewhere", inputs = {"data/in.txt"}, '
                      'outputs = {"elsewhere/o"}, run = {"cp", "{in}", "o"} }\n')
        self.assertEqual(self.ws.kiln("run").ran, {"argv"})
        self.assertEqual(self.ws.read("elsewhere/o"), "D\n")

    def test_a_folder_outside_the_workspace_is_refused(self):
        os.symlink("/tmp", self.ws.path("up"))
        for cwd, needle in [("../x", "not inside the workspace"), ("/tmp", "not inside the workspace"),
                            ("up/x", "not inside the workspace"), (".kiln/x", "kiln's own state")]:
            self.ws.write("kiln.lua", 'task { name = "t", cwd = "%s", run = "true" }\n' % cwd)
            r = self.ws.kiln("list")
            self.assertEqual(r.rc, 2, r)
            self.assertIn("kiln.lua:1:", r.err)
            self.assertIn(needle, r.err)

    def test_map_shards_run_in_their_folder(self):
        for i in range(1, 5):
            self.ws.write("in/%d.txt" % i, "%d\n" % i)
        self.ws.write("kiln.lua", """
map { name = "m", items = {"1", "2", "3", "4"}, shards = 2, cwd = "work/{name}", input = "in/{item}.txt",
      output = "out/{item}.txt",
      run = "pwd >> seen; while read i; do cat ../../in/$i.txt > ../../out/$i.txt; echo \\"$i 1\\" >> \\"$KILN_PROGRESS\\"; done < {items}" }
""")
        r = self.ws.kiln("run")
        self.assertEqual(r.rc, 0, r)
        for i in range(1, 5):
            self.assertEqual(self.ws.read("out/%d.txt" % i), "%d\n" % i)
        self.assertTrue(self.ws.exists("work/m:shard-1/seen") and self.ws.exists("work/m:shard-2/seen"))


    def test_a_command_that_changes_directory_itself_finds_its_item_list_and_progress_file(self):
        # {items}, KILN_ITEMS and KILN_PROGRESS are full paths: `cd w && ...` in a command
        # (no cwd declared) failed with "cannot open .kiln/maps/...items"; {items} in a shell
        # string is one word, in a workspace whose path holds a space too
        self.ws.write("my runs/kiln.lua", """
map { name = "m", items = {"a", "b", "c"}, shards = 1, output = "out/{item}.txt",
      run = "mkdir -p w && cd w && n=0; while read it; do n=$((n + 1)); echo $it > ../out/$it.txt; echo $n/3 >> \\"$KILN_PROGRESS\\"; done < {items}; test -r \\"$KILN_ITEMS\\"" }
map { name = "argv", items = {"d"}, shards = 1, output = "out/{item}.txt",
      run = { "sh", "-c", "mkdir -p w && cd w && while read it; do echo $it > ../out/$it.txt; done < \\"$1\\"", "sh", "{items}" } }
""")
        r = self.ws.kiln("-C", "my runs", "run")
        self.assertEqual(r.rc, 0, r)
        for it in "abcd":
            self.assertEqual(self.ws.read("my runs/out/%s.txt" % it), it + "\n")
        self.assertIn("m: 3/3 items", r.out)


class OptionalOutputs(KilnTestCase):
    RECIPE = """
local P = params { best = "yes" }
task { name = "train", outputs = {"ck.pt"}, optional_outputs = {"best.pt"},
       run = "echo ck > ck.pt; if [ " .. P.best .. " = yes ]; then echo best > best.pt; fi" }
task { name = "use", inputs = {"best.pt"}, outputs = {"used.txt"}, run = "cat best.pt > used.txt" }
"""

    def test_made_it_is_recorded_stored_and_restored(self):
        self.ws.write("kiln.lua", self.RECIPE)
        self.assertEqual(self.ws.kiln("run").rc, 0)
        os.unlink(self.ws.path("best.pt"))
        r = self.ws.kiln("run")
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(r.restored, {"train"}, "restored from the store, not run")
        self.assertEqual(self.ws.read("best.pt"), "best\n")
        # an attempt deletes it first, like any output: a stale one cannot pass for new
        self.ws.write("best.pt", "stale\n")
        r = self.ws.kiln("run", "--force", "train", "best=no", "use")
        self.assertNotEqual(r.rc, 0)
        self.assertFalse(self.ws.exists("best.pt"))

    def test_not_made_is_no_failure_and_a_reader_says_why(self):
        self.ws.write("kiln.lua", self.RECIPE)
        r = self.ws.kiln("run", "best=no", "-k")
        self.assertEqual(r.rc, 1, r)
        self.assertIn("ok       [", r.out)
        self.assertIn("FAILED   [", r.out)
        self.assertIn("use: its input best.pt is an optional output of train, which did not make it", r.out)
        self.assertEqual(self.ws.kiln("run", "best=no", "train").ran, set(), "the success without it stands")
        db = sqlite3.connect(self.ws.path(".kiln/state.db"))
        outputs = db.execute("SELECT s.outputs FROM last_success l JOIN successes s ON s.task = l.task AND s.key = l.key"
                             " WHERE l.task = 'train'").fetchone()[0]
        db.close()
        self.assertIn("0" * 32 + " best.pt", outputs, "recorded as absent")


class LogMetrics(KilnTestCase):
    def test_log_lines_become_series_and_scalars_drawn_by_plot(self):
        self.ws.write("kiln.lua", """
for _, lr in ipairs({"1", "2"}) do
  task { name = "train/" .. lr, tags = { lr = lr }, outputs = {"o/" .. lr},
         log_metrics = { loss = "loss=([%d%.eE+-]+)", acc1 = "Acc@1 +([%d%.]+)", at = "at (%d+) step (%d+)" },
         metrics = "{out}",
         run = "for e in 1 2 3; do echo \\"Epoch $e | loss=0.$((9 - e))" .. lr .. "\\"; done; "
            .. "echo 'at 7 step 40'; echo ' * Acc@1 12.500 Acc@5 50.000'; echo '{\\"extra\\": 5}' > {out}" }
end
plot { name = "loss", type = "lines", from = "train/*", y = "loss", series = "lr" }
""")
        r = self.ws.kiln("run")
        self.assertEqual(r.rc, 0, r)
        db = sqlite3.connect(self.ws.path(".kiln/state.db"))
        series = db.execute("SELECT step, value FROM series WHERE task = 'train/1' AND key = 'loss' ORDER BY step").fetchall()
        scalars = dict(db.execute("SELECT key, value FROM metrics WHERE task = 'train/1'").fetchall())
        at = db.execute("SELECT step, value FROM series WHERE task = 'train/1' AND key = 'at'").fetchall()
        db.close()
        self.assertEqual(series, [(0.0, 0.81), (1.0, 0.71), (2.0, 0.61)])
        self.assertAlmostEqual(scalars["loss"], 0.61)
        self.assertAlmostEqual(scalars["acc1"], 12.5)
        self.assertEqual(scalars["extra"], 5, "the metrics file is recorded beside the log's")
        self.assertEqual(at, [(40.0, 7.0)], "a second capture is the step")
        svg = self.ws.read("plots/loss.svg")
        self.assertEqual(len(re.findall(r'<g id="[A-Za-z0-9_]+_plot_\d+"', svg)), 2, "a line per task")
        self.assertEqual(svg.count("#gpPt0' transform"), 4, "three points over steps, and the legend's")
        m = self.ws.kiln("metrics", "--rows", "lr", "--value", "acc1", "--format", "tsv")
        self.assertIn("12.5", m.out)

    def test_a_big_logs_matches_are_all_read_a_piece_at_a_time(self):
        # 3,000 matches in ~30 MB of output: read in pieces of 8 MiB that end at a line's
        # end, so no match is cut or lost where one piece ends and the next begins
        self.ws.write("talk.py", "import sys\n"
                      "for i in range(3000):\n"
                      "    sys.stdout.write('x' * (9000 + i % 997) + '\\n')\n"
                      "    sys.stdout.write('step %d loss=%d.%03d\\n' % (i, i, i % 1000))\n")
        self.ws.write("kiln.lua", 'task { name = "t", log_metrics = { loss = "loss=([%d.]+)" }, '
                      'run = {"/usr/bin/python3", "talk.py"} }\n')
        r = self.ws.kiln("run")
        self.assertEqual(r.rc, 0, r)
        self.assertGreater(os.path.getsize(self.ws.path(".kiln/logs/t@1.log")), 3 * (8 << 20))
        db = sqlite3.connect(self.ws.path(".kiln/state.db"))
        series = db.execute("SELECT step, value FROM series WHERE task = 't' AND key = 'loss' ORDER BY step").fetchall()
        scalar = db.execute("SELECT value FROM metrics WHERE task = 't' AND key = 'loss'").fetchone()
        db.close()
        self.assertEqual(len(series), 3000)
        self.assertEqual(series, [(float(i), float("%d.%03d" % (i, i % 1000))) for i in range(3000)])
        self.assertAlmostEqual(scalar[0], 2999.999)

    def test_a_pattern_is_checked_where_it_is_declared(self):
        for pattern, needle in [("loss=%d", "has 0"), ("(loss=[%d)", "misses a ']'"), ("(a)(b)(c)", "has 3"),
                                ("(x", "leaves a capture open")]:
            self.ws.write("kiln.lua", 'local x = 1\ntask { name = "t", run = "true", log_metrics = { a = "%s" } }\n'
                          % pattern.replace("%", "%%").replace("%%", "%"))
            r = self.ws.kiln("list")
            self.assertEqual(r.rc, 2, r)
            self.assertIn("kiln.lua:2:", r.err)
            self.assertIn(needle, r.err)


class LogProgress(KilnTestCase):
    def test_a_scripts_own_progress_lines_show_with_a_rate_and_an_eta(self):
        # scripts that print their progress and write no KILN_PROGRESS: epochs counted from
        # 0 with the total given, and a progress bar redrawn with \r, side by side
        self.ws.write("kiln.lua", """
task { name = "train", log_progress = { "Epoch: %[(%d+)%]", total = 20 },
       run = "for e in $(seq 0 19); do echo \\"Epoch: [$e] Loss 0.$e\\"; sleep 0.8; done" }
task { name = "caption", log_progress = "(%d+)/(%d+) %[",
       run = "for i in $(seq 1 32); do printf '\\r%3d%%|##| %d/32 [00:0%d<00:09]' $((i * 100 / 32)) $i $i; sleep 0.5; done; echo" }
""")
        r = self.ws.kiln("run")
        self.assertEqual(r.rc, 0, r)
        lines = [l for l in r.out.splitlines() if l.startswith("progress ")]
        self.assertGreaterEqual(len(lines), 2, r.out)  # the first reading, then 10-12 s later (both run 16 s)
        last = lines[-1]
        self.assertRegex(last, r"train (\d+)/20, [\d.]+/s, ETA \d", last)
        self.assertRegex(last, r"caption (\d+)/32, [\d.]+/s, ETA \d", last)
        done = int(re.search(r"train (\d+)/20", last).group(1))
        self.assertTrue(8 <= done <= 19, last)

    def test_a_python_scripts_prints_reach_the_log_as_they_are_made_and_when_it_is_stopped(self):
        # Python buffers stdout when it is no terminal: unset, a timeout's SIGTERM (or a
        # Ctrl-C's, the OOM killer's) left its log without the epochs it printed, and
        # log_progress saw none while it ran (the harness drops PYTHONUNBUFFERED from kiln's env)
        self.ws.write("train.py", "import time\nfor e in range(1, 100):\n"
                      "    print('epoch %d loss %.3f' % (e, 1.0 / e))\n    time.sleep(0.3)\n")
        self.ws.write("kiln.lua", """
task { name = "train", inputs = {"train.py"}, outputs = {"model.pt"}, timeout = 3,
       log_progress = { "epoch (%d+)", total = 99 }, run = {"/usr/bin/python3", "train.py"} }
task { name = "own", env = { PYTHONUNBUFFERED = "" }, outputs = {"own.txt"},
       run = {"/usr/bin/python3", "-c", "import os; open('own.txt', 'w').write(repr(os.environ['PYTHONUNBUFFERED']))"} }
""")
        p = self.ws.spawn("run", "-k")
        progress = lambda: os.path.exists(self.ws.path(".kiln/logs/train@1.log")) and \
            "epoch 2 " in self.ws.read(".kiln/logs/train@1.log")
        self.assertTrue(wait_for(progress, timeout=20), "the log shows each epoch as it is printed")
        out, err = p.communicate(timeout=60)
        self.assertEqual(p.returncode, 1, out + err)
        log = self.ws.read(".kiln/logs/train@1.log")
        self.assertIn("PYTHONUNBUFFERED=1", log.split("# --")[0], "its header says so")
        printed = [int(m) for m in re.findall(r"^epoch (\d+) loss", log, re.M)]
        self.assertGreaterEqual(len(printed), 5, log)  # ~10 in 3 s: every one it printed is there
        self.assertEqual(printed, list(range(1, len(printed) + 1)), log)
        self.assertIn("timed out after 3.0s", log)
        self.assertEqual(self.ws.read("own.txt"), "''", "the task's own env stands")
        self.assertNotIn("PYTHONUNBUFFERED=1", self.ws.read(".kiln/logs/own@1.log").split("# --")[0])

    def test_a_log_progress_mistake_is_said_where_it_is_declared(self):
        for field, needle in [('"Epoch (%d+)"', "needs two captures"), ('{ "(%d+)/(%d+)", total = 9 }', "needs one capture"),
                              ('{ "(%d+)", total = 0 }', "above 0"), ('{ "(%d+)", totl = 9 }', "must be a Lua pattern")]:
            self.ws.write("kiln.lua", 'local x = 1\ntask { name = "t", run = "true", log_progress = %s }\n' % field)
            r = self.ws.kiln("list")
            self.assertEqual(r.rc, 2, r)
            self.assertIn("kiln.lua:2:", r.err)
            self.assertIn(needle, r.err)


class Ranks(KilnTestCase):
    def test_each_rank_gets_its_number_and_one_failing_stops_the_rest(self):
        self.ws.write("kiln.lua", """
task { name = "ok", ranks = 3, outputs = {"seen"},
       env = { WHO = "r{rank}" },
       run = "echo rank={rank} of {world_size} at {master_addr}:{master_port} env=$RANK/$WORLD_SIZE/$MASTER_PORT $WHO >> seen" }
task { name = "bad", ranks = 3,
       run = "if [ $RANK = 1 ]; then sleep 0.3; echo giving up; exit 3; fi; trap 'echo stopped; exit 0' TERM; "
          .. "touch started.$RANK; while true; do sleep 0.1; done" }
""")
        start = time.time()
        r = self.ws.kiln("run", "-k")
        self.assertLess(time.time() - start, 60)
        self.assertEqual(r.rc, 1, r)
        lines = sorted(self.ws.read("seen").splitlines())
        self.assertEqual(len(lines), 3)
        port = lines[0].split(":")[1].split()[0]
        for k, line in enumerate(lines):
            self.assertEqual(line, "rank=%d of 3 at 127.0.0.1:%s env=%d/3/%s r%d" % (k, port, k, port, k))
        log = self.ws.read(".kiln/logs/bad@1.log")
        self.assertIn("[rank 1] giving up", log)
        self.assertIn("[kiln launch] rank 1 failed (exit status 3): stopping the other ranks", log)
        self.assertIn("[rank 0] stopped", log)
        self.assertIn("[rank 2] stopped", log)
        self.assertIn("FAILED   [", r.out)
        self.assertIn("bad: exit status 3 [error]", r.out)

    def test_the_rank_that_failed_is_named_not_the_peers_that_lost_it(self):
        # all three end within a millisecond: the launcher finds them ended at one look, in
        # waitpid's order (rank 0 first); the two that say a peer went away are not the cause
        self.ws.write("go.sh", "while [ ! -e go ]; do sleep 0.01; done\n"
                      "if [ $RANK = 1 ]; then echo 'ValueError: bad batch'; exit 3; fi\n"
                      "echo 'RuntimeError: [gloo] Connection closed by peer [127.0.0.1]:4100'; exit 1\n")
        self.ws.write("kiln.lua", 'task { name = "peers", ranks = 3, inputs = {"go.sh"}, run = "sh go.sh" }\n')
        p = self.ws.spawn("run")
        wait_for(lambda: self.ws.exists(".kiln/logs/peers@1.log"), 10)
        time.sleep(0.3)
        # stop the launcher while all three end, so it finds them at one look
        launcher = [q for q in processes_matching("launch --ranks 3")
                    if os.path.realpath("/proc/%d/cwd" % q) == os.path.realpath(self.ws.dir)]
        self.assertEqual(len(launcher), 1, launcher)
        for q in launcher:
            os.kill(q, signal.SIGSTOP)
        self.ws.write("go", "")
        time.sleep(0.5)
        for q in launcher:
            os.kill(q, signal.SIGCONT)
        out, err = p.communicate(timeout=60)
        self.assertEqual(p.returncode, 1, out + err)
        log = self.ws.read(".kiln/logs/peers@1.log")
        self.assertIn("[kiln launch] rank 1 of 3 failed (exit status 3)", log)

    def test_a_command_that_cannot_start_fails_at_once(self):
        self.ws.write("kiln.lua", 'task { name = "t", ranks = 2, run = {"/nonexistent/trainer", "--rank", "{rank}"} }\n')
        start = time.time()
        r = self.ws.kiln("run", timeout=60)
        self.assertLess(time.time() - start, 30)
        self.assertEqual(r.rc, 1, r)
        self.assertIn("[kiln launch] rank 0: cannot start /nonexistent/trainer", self.ws.read(".kiln/logs/t@1.log"))

    def test_ranks_split_the_leased_gpus_or_see_all_with_local_rank(self):
        self.ws.write("kiln.lua", """
task { name = "split", ranks = 2, gpus = 4, outputs = {"split.txt"}, run = "echo $RANK=$CUDA_VISIBLE_DEVICES >> split.txt" }
task { name = "all", ranks = 2, gpus = 4, outputs = {"all.txt"}, deps = {"split"},
       run = "echo {local_rank}=$CUDA_VISIBLE_DEVICES >> all.txt" }
""")
        r = self.ws.kiln("run", "--gpus", "0,1,2,3")
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(sorted(self.ws.read("split.txt").split()), ["0=0,1", "1=2,3"])
        self.assertEqual(sorted(self.ws.read("all.txt").split()), ["0=0,1,2,3", "1=0,1,2,3"])


class CommandAsItRan(KilnTestCase):
    def test_the_log_header_and_why_show_ports_filled_in(self):
        self.ws.write("kiln.lua", 'task { name = "t", ports = 1, outputs = {"o"}, '
                      'run = "echo {port} --rdzv_endpoint={rdzv} > o" }\n')
        r = self.ws.kiln("run")
        self.assertEqual(r.rc, 0, r)
        port = self.ws.read("o").split()[0]
        header = self.ws.read(".kiln/logs/t@1.log").splitlines()[1]
        self.assertEqual(header, "# command: /bin/sh -c echo %s --rdzv_endpoint=127.0.0.1:%s > o" % (port, port))
        why = self.ws.kiln("why", "t")
        self.assertIn("its latest attempt ran: /bin/sh -c echo %s" % port, why.out)


class KeepGoing(KilnTestCase):
    def test_settings_keep_going_runs_every_config_and_lists_each_failure(self):
        self.ws.write("kiln.lua", 'settings { keep_going = true }\n'
                      'task { name = "a", run = "exit 1" }\n'
                      'task { name = "b", run = "exit 2" }\n'
                      'task { name = "c", outputs = {"c"}, run = "sleep 0.3; touch c" }\n')
        r = self.ws.kiln("run", "-j", "1")
        self.assertEqual(r.rc, 1, r)
        self.assertTrue(self.ws.exists("c"), "the good config ran after the failures")
        self.assertIn("FAILED a: exit status 1", r.out)
        self.assertIn("FAILED b: exit status 2", r.out)
        self.ws.write("kiln.lua", 'settings { keep_going = "yes" }\n')
        r = self.ws.kiln("list")
        self.assertEqual(r.rc, 2)
        self.assertIn("kiln.lua:1: settings{}: keep_going must be true or false", r.err)


# a lab's command line, written for bash: `source`, [[ ]], brace expansion, arrays, pipefail
BASH_LINE = ('source env.sh && [[ -n "$GREETING" ]] && set -o pipefail && words=({1..3}) && '
             'echo "$GREETING ${words[@]}" | cat > {out}')

# saves on a stop's signal, a second later: the save a stop must wait for
SAVER = "trap 'sleep 1; echo saved > saved.txt; exit 143' TERM INT\ntouch started; while :; do sleep 0.1; done\n"


def write_bash_pair(ws, prefix="", fields=""):
    """Task PREFIX+b makes b.txt with BASH_LINE; PREFIX+s runs SAVER behind a bash line,
    until stopped: both shell = "bash", with fields (host = ...)."""
    ws.write("env.sh", "GREETING=hello\n")
    ws.write("save.sh", SAVER)
    ws.write("kiln.lua", 'task { name = "%sb", %s shell = "bash", inputs = {"env.sh"}, outputs = {"b.txt"}, run = %s }\n'
             'task { name = "%ss", %s shell = "bash", inputs = {"env.sh", "save.sh"}, outputs = {"never.txt"}, '
             'kill_grace = 10, run = %s }\n'
             % (prefix, fields, lua_str(BASH_LINE), prefix, fields,
                lua_str("source env.sh && [[ -n $GREETING ]] && bash save.sh; echo after")))


class BashLines(KilnTestCase):
    def setUp(self):
        super().setUp()
        self.ws.write("env.sh", "GREETING=hello\n")

    def recipe(self, shell):
        return 'task { name = "b", inputs = {"env.sh"}, outputs = {"b.txt"}, %s run = %s }\n' % (
            'shell = "%s",' % shell if shell else "", lua_str(BASH_LINE))

    def test_shell_bash_runs_a_bash_line_and_is_in_the_key(self):
        if os.path.basename(os.path.realpath("/bin/sh")) == "dash":  # Debian's, Ubuntu's /bin/sh
            self.ws.write("kiln.lua", self.recipe(None))
            r = self.ws.kiln("run")
            self.assertEqual(r.rc, 1, r)
            self.assertIn('Syntax error: "(" unexpected', self.ws.read(".kiln/logs/b@1.log"))
            self.assertIn('exit status 2; the line is bash\'s (/bin/sh, dash, says `Syntax error: "(" unexpected`): '
                          'shell = "bash" on the task runs it under bash [error]', r.out, "the failure says what to do")
        self.ws.write("kiln.lua", self.recipe("bash"))
        r = self.ws.kiln("run")
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(self.ws.read("b.txt"), "hello 1 2 3\n")
        self.assertIn("# command: bash -c source env.sh", self.attempt_log())
        self.assertEqual(self.ws.kiln("run").ran, set())
        self.ws.write("kiln.lua", self.recipe("/bin/bash"))
        self.assertEqual(self.ws.kiln("run").ran, {"b"}, "another program runs it: another key")

    def attempt_log(self):
        logs = sorted(os.listdir(self.ws.path(".kiln/logs")))
        return self.ws.read(".kiln/logs/" + [n for n in logs if n.endswith(".log")][-1])

    def test_ranks_run_their_line_under_it(self):
        self.ws.write("kiln.lua", 'task { name = "r", ranks = 2, shell = "bash", outputs = {"r.txt"}, '
                      'run = %s }\n' % lua_str('[[ $RANK -ge 0 ]] && a=(x$RANK) && echo "${a[0]}" >> r.txt'))
        r = self.ws.kiln("run")
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(sorted(self.ws.read("r.txt").split()), ["x0", "x1"])

    def test_a_bash_line_saving_at_a_stop_is_waited_for(self):
        # bash runs the trainer as its child here (a compound line): a Ctrl-C reaches the
        # trainer, which saves, and kiln waits for that as under /bin/sh
        write_bash_pair(self.ws)
        p = self.ws.spawn("run", "s")
        self.assertTrue(wait_for(lambda: self.ws.exists("started")))
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=60)
        self.assertEqual(p.returncode, 130, out + err)
        self.assertEqual(self.ws.read("saved.txt"), "saved\n", "the save landed before kiln ended")
        self.assertEqual(processes_matching("save.sh", cwd=self.ws.dir), [])

    def test_settings_shell_is_every_later_tasks_and_one_may_say_otherwise(self):
        self.ws.write("kiln.lua", 'settings { shell = "bash" }\n' + self.recipe(None) +
                      'task { name = "d", shell = "/bin/sh", outputs = {"d.txt"}, run = "echo $0 > d.txt" }\n')
        r = self.ws.kiln("run")
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(self.ws.read("b.txt"), "hello 1 2 3\n")
        self.assertEqual(self.ws.read("d.txt"), "/bin/sh\n")
        self.ws.write("kiln.lua", 'settings { shell = "bash -l" }\n')
        r = self.ws.kiln("run")
        self.assertEqual(r.rc, 2, r)
        self.assertIn('kiln.lua:1: settings{}: shell must name a program, like "bash"', r.err)

    def test_shell_is_for_a_command_string(self):
        for fields, said in (('shell = "bash", run = {"echo", "x"}', "this task's run is a list of words"),
                             ('shell = "bash -l", run = "echo x"', 'must name a program, like "bash"'),
                             ('shell = "bin/bash", run = "echo x"', 'must name a program')):
            self.ws.write("kiln.lua", "\n\ntask { name = \"t\", %s }\n" % fields)
            r = self.ws.kiln("run")
            self.assertEqual(r.rc, 2, r)
            self.assertIn("kiln.lua:3:", r.err)
            self.assertIn(said, r.err)


if __name__ == "__main__":
    main()
