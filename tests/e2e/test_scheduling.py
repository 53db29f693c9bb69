"""End-to-end: dependency order, parallelism limits, -k, timeouts, retries, Ctrl-C and
GPU leasing, on the real kiln binary in temp workspaces."""
import os
import re
import signal
import shutil
import subprocess
import time

from kilntest import KILN, KilnTestCase, lua_str, main, processes_matching, traced, wait_for


def intervals(trace):
    starts, spans = {}, {}
    for name, event, t, extra in trace:
        if event == "start":
            starts[name] = (t, extra)
        elif event == "end":
            spans[name] = (starts[name][0], t, (extra or [""])[0])
    return spans


def max_overlap(spans):
    events = sorted([(s, 1) for s, e, _ in spans.values()] + [(e, -1) for s, e, _ in spans.values()],
                    key=lambda x: (x[0], x[1]))
    cur = best = 0
    for _, d in events:
        cur += d
        best = max(best, cur)
    return best


class Scheduling(KilnTestCase):
    def test_dependency_order_from_recorded_times(self):
        self.ws.write("kiln.lua", """
task { name = "a", outputs = {"a.txt"}, run = %s }
task { name = "b", deps = {"a"}, outputs = {"b.txt"}, run = %s }
task { name = "c", deps = {"a"}, outputs = {"c.txt"}, run = %s }
task { name = "d", inputs = {"b.txt", "c.txt"}, outputs = {"d.txt"}, run = %s }
""" % tuple(lua_str(traced("sleep 0.2; echo x > %s.txt" % n)) for n in "abcd"))
        r = self.ws.kiln("run", "-j", "4")
        self.assertEqual(r.rc, 0, r)
        spans = intervals(self.ws.trace())
        self.assertEqual(set(spans), set("abcd"))
        for dep, task in [("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")]:
            self.assertLessEqual(spans[dep][1], spans[task][0], "%s must end before %s starts" % (dep, task))
        # b and c are independent: with -j4 they overlap
        self.assertLess(spans["b"][0], spans["c"][1])
        self.assertLess(spans["c"][0], spans["b"][1])

    def test_j2_overlaps_and_never_exceeds_two(self):
        tasks = "\n".join('task { name = "t%d", run = %s }' % (i, lua_str(traced("sleep 0.3"))) for i in range(6))
        self.ws.write("kiln.lua", tasks)
        r = self.ws.kiln("run", "-j", "2")
        self.assertEqual(r.rc, 0, r)
        spans = intervals(self.ws.trace())
        self.assertEqual(len(spans), 6)
        self.assertEqual(max_overlap(spans), 2)

    def test_cpus_slots_limit_concurrency(self):
        tasks = "\n".join('task { name = "t%d", cpus = 2, run = %s }' % (i, lua_str(traced("sleep 0.2")))
                          for i in range(4))
        self.ws.write("kiln.lua", tasks)
        r = self.ws.kiln("run", "-j", "4", "--cpus", "4")
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(max_overlap(intervals(self.ws.trace())), 2)

    def test_a_task_that_declares_cpus_tells_its_processes_their_share(self):
        # OMP_NUM_THREADS (PyTorch's, OpenMP's and BLAS's pools read it): the cpus it declares,
        # over its ranks; not set for a task that declares none, nor over the task's own env
        self.ws.write("kiln.lua", """
task { name = "two", cpus = 2, outputs = {"two.txt"}, run = "echo ${OMP_NUM_THREADS:-unset} > two.txt" }
task { name = "none", outputs = {"none.txt"}, run = "echo ${OMP_NUM_THREADS:-unset} > none.txt" }
task { name = "own", cpus = 4, env = { OMP_NUM_THREADS = "3" }, outputs = {"own.txt"},
       run = "echo ${OMP_NUM_THREADS:-unset} > own.txt" }
task { name = "ranks", cpus = 4, ranks = 2, outputs = {"r0.txt"}, run = "echo ${OMP_NUM_THREADS:-unset} > r{rank}.txt" }
""")
        r = self.ws.kiln("run", "-j", "4", "--cpus", "4")
        self.assertEqual(r.rc, 0, r)
        for name, want in (("two", "2"), ("none", "unset"), ("own", "3"), ("r0", "2"), ("r1", "2")):
            self.assertEqual(self.ws.read(name + ".txt").strip(), want, name)
        self.assertIn("OMP_NUM_THREADS=2", self.ws.read(".kiln/logs/two@1.log"), "its log's header says it")
        # kiln's own environment stands too: a user who set it meant it
        r = self.ws.kiln("run", "--cpus", "4", "--force", "two", env={"OMP_NUM_THREADS": "1"})
        self.assertEqual(self.ws.read("two.txt").strip(), "1", r)

    def test_targets_run_only_what_they_need(self):
        self.ws.write("kiln.lua", """
task { name = "a", outputs = {"a.txt"}, run = "echo a > a.txt" }
task { name = "b", deps = {"a"}, outputs = {"b.txt"}, run = "echo b > b.txt" }
task { name = "other", outputs = {"o.txt"}, run = "echo o > o.txt" }
""")
        r = self.ws.kiln("run", "b")
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(r.ran, {"a", "b"})
        self.assertFalse(self.ws.exists("o.txt"))
        r = self.ws.kiln("run", "nothing-like-this")
        self.assertEqual(r.rc, 2, r)
        self.assertIn("no task or output matches", r.err)

    def test_failure_without_k_starts_nothing_new(self):
        self.ws.write("kiln.lua", """
task { name = "bad", run = "exit 3" }
task { name = "slow", run = "sleep 0.5; echo done > slow.txt", outputs = {"slow.txt"} }
task { name = "later1", deps = {"slow"}, run = "echo x > l1.txt", outputs = {"l1.txt"} }
task { name = "after_bad", deps = {"bad"}, run = "true" }
""")
        r = self.ws.kiln("run", "-j", "2")
        self.assertEqual(r.rc, 1, r)
        self.assertIn("FAILED bad: exit status 3", r.out)
        self.assertTrue(self.ws.exists("slow.txt"), "running tasks are waited for")
        self.assertFalse(self.ws.exists("l1.txt"), "nothing new starts after a failure")
        self.assertIn("log: .kiln/logs/bad@1.log", r.out)

    def test_keep_going_runs_everything_not_downstream(self):
        self.ws.write("kiln.lua", """
task { name = "bad", run = "echo oops; exit 3" }
task { name = "down", deps = {"bad"}, run = "echo d > d.txt", outputs = {"d.txt"} }
task { name = "ok1", run = "sleep 0.2; echo 1 > 1.txt", outputs = {"1.txt"} }
task { name = "ok2", deps = {"ok1"}, run = "echo 2 > 2.txt", outputs = {"2.txt"} }
""")
        r = self.ws.kiln("run", "-k", "-j", "1")
        self.assertEqual(r.rc, 1, r)
        self.assertEqual(r.ran, {"ok1", "ok2"})
        self.assertFalse(self.ws.exists("d.txt"))
        self.assertIn("1 failed, 1 not run", r.out)
        self.assertIn("| oops", r.out, "the summary shows the tail of the failed log")

    def test_timeout_kills_the_process_group(self):
        self.ws.write("kiln.lua", """
task { name = "hang", timeout = "1s", run = "sleep 41.37 & sleep 41.37; wait" }
""")
        t0 = time.time()
        r = self.ws.kiln("run")
        self.assertEqual(r.rc, 1, r)
        self.assertIn("timed out after", r.out)
        self.assertLess(time.time() - t0, 15)
        self.assertTrue(wait_for(lambda: not processes_matching("sleep 41.37"), 5), "group members left behind")

    def test_retry_reruns_with_own_log(self):
        self.ws.write("kiln.lua", """
task { name = "flaky", retries = 2, outputs = {"ok.txt"},
       run = "n=$(cat count 2>/dev/null || echo 0); n=$((n+1)); echo $n > count; echo attempt $n; [ $n -ge 2 ] && echo ok > ok.txt" }
""")
        r = self.ws.kiln("run")
        self.assertEqual(r.rc, 0, r)
        self.assertIn("retry", r.out)
        self.assertEqual(self.ws.read("count").strip(), "2")
        self.assertIn("attempt 1", self.ws.read(".kiln/logs/flaky@1.log"))
        self.assertIn("attempt 2", self.ws.read(".kiln/logs/flaky@2.log"))
        log = self.ws.kiln("log", "flaky")
        self.assertIn("attempt 2", log.out)

    def test_log_has_header_and_output(self):
        self.ws.write("kiln.lua", 'task { name = "e/x", env = {GREETING = "hi"}, run = {"sh", "-c", "echo $GREETING $KILN_TASK; echo err >&2"} }\n')
        r = self.ws.kiln("run")
        self.assertEqual(r.rc, 0, r)
        log = self.ws.read(".kiln/logs/e/x@1.log")
        self.assertIn("# command: sh -c", log)
        self.assertIn("GREETING=hi", log)
        self.assertIn("hi e/x", log)
        self.assertIn("err", log)

    def test_ctrl_c_leaves_no_child_behind(self):
        self.ws.write("kiln.lua", "\n".join(
            'task { name = "s%d", run = %s }' % (i, lua_str(traced("sleep 52.91 & sleep 52.91; wait"))) for i in range(3)))
        p = self.ws.spawn("run", "-j", "3")
        self.assertTrue(wait_for(lambda: len(self.ws.trace()) >= 3), "tasks did not start")
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=20)
        self.assertEqual(p.returncode, 130, out + err)
        self.assertIn("stopped by Ctrl-C", out)
        self.assertRegex(out, r"stopping 3 running tasks: SIGTERM now, SIGKILL after [\d.]+ s or at a second Ctrl-C")
        self.assertIn("3 not run", out)
        self.assertIn("kiln: stopped by Ctrl-C (SIGINT); 3 running tasks stopped, not recorded as done", out)
        self.assertTrue(wait_for(lambda: not processes_matching("sleep 52.91"), 5), "children left behind")
        # nothing was recorded as done: the next run would run all three
        st = self.ws.kiln("status")
        self.assertIn("3 tasks would run", st.out)
        # the report calls them interrupted, not failed
        self.assertEqual(self.ws.kiln("report").rc, 0)
        self.assertRegex(self.ws.read("report.html"), r"<td>stopped</td><td>3 interrupted</td>")

    def test_the_status_line_shows_elapsed_time_and_an_eta_from_recorded_durations(self):
        import pty
        self.ws.write("kiln.lua", 'local P = params { salt = "" }\n'
                      'for i = 1, 4 do task { name = "t" .. i, run = "sleep 0.4 # " .. P.salt } end\n')
        self.assertEqual(self.ws.kiln("run", "-j", "1").rc, 0)
        master, slave = pty.openpty()
        p = subprocess.Popen([KILN, "run", "-j", "1", "salt=1"], cwd=self.ws.dir, env=self.ws.env(None),
                             stdin=slave, stdout=slave, stderr=slave)
        os.close(slave)
        seen = b""
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
        p.wait(timeout=30)
        os.close(master)
        text = seen.decode(errors="replace")
        self.assertEqual(p.returncode, 0, text)
        etas = re.findall(r"elapsed [\d.]+s, ETA ([\d.]+)s", text)
        self.assertTrue(etas, "the line shows the time so far and what is left: %r" % text[-600:])
        self.assertLess(float(etas[-1]), 1.2, "one 0.4 s task left at most: %s" % etas)

    def test_ctrl_c_while_hashing_new_inputs_stops_at_once(self):
        # 400 x 32 MiB of new (sparse) input: hashing all of it takes seconds, and a Ctrl-C
        # must not wait for it (only for the few files being read at that moment)
        os.makedirs(self.ws.path("data"))
        for i in range(400):
            with open(self.ws.path("data/%d.bin" % i), "wb") as f:
                f.truncate(32 << 20)
        self.ws.write("kiln.lua", 'for i = 0, 399 do task { name = "t" .. i, inputs = {"data/" .. i .. ".bin"}, '
                                  'outputs = {"o" .. i}, run = "touch o" .. i } end\n')
        p = self.ws.spawn("run")
        time.sleep(0.3)
        t0 = time.time()
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=120)
        self.assertEqual(p.returncode, 130, out + err)
        self.assertLess(time.time() - t0, 2.0, "Ctrl-C waited for the hashing to finish")
        self.assertIn("400 not run", out)
        self.assertFalse(any(self.ws.exists("o%d" % i) for i in range(400)))

    def test_progress_into_a_pipe_is_seen_while_tasks_run(self):
        # lines into a pipe are flushed in batches, but none waits for the slow task's end
        self.ws.write("kiln.lua", 'task { name = "fast", run = "true" }\n'
                                  'task { name = "slow", deps = {"fast"}, run = "sleep 3" }\n')
        p = self.ws.spawn("run")
        t0 = time.time()
        line = p.stdout.readline()
        seen_after = time.time() - t0
        p.communicate(timeout=20)
        self.assertRegex(line, r"^ok\s+\[1/2\] fast")
        self.assertLess(seen_after, 2.0, "the fast task's line waited for the slow task")

    def test_task_without_command_groups_its_deps(self):
        self.ws.write("kiln.lua", 'task { name = "a", outputs = {"a.txt"}, run = "echo a > a.txt" }\n'
                                  'task { name = "b", outputs = {"b.txt"}, run = "echo b > b.txt" }\n'
                                  'task { name = "all", deps = {"a", "b"} }\n'
                                  'task { name = "claims", outputs = {"never.txt"} }\n')
        r = self.ws.kiln("run", "all")
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(r.ran, {"a", "b", "all"})
        self.assertIn("all (no command)", r.out)
        self.assertIn("has no command", self.ws.kiln("log", "all").out)
        self.assertEqual(self.ws.kiln("run", "all").ran, set())
        r = self.ws.kiln("run", "claims")
        self.assertEqual(r.rc, 1, r)
        self.assertIn("never.txt", r.out + r.err)

    def test_dry_run_prints_order_and_runs_nothing(self):
        self.ws.write("kiln.lua", """
task { name = "b", deps = {"a"}, run = "echo b > b.txt", outputs = {"b.txt"} }
task { name = "a", run = "echo a > a.txt", outputs = {"a.txt"} }
""")
        r = self.ws.kiln("run", "-n")
        self.assertEqual(r.rc, 0, r)
        lines = [l.split()[1].rstrip(":") for l in r.out.splitlines() if l.startswith("run ")]
        self.assertEqual(lines, ["a", "b"])
        self.assertFalse(self.ws.exists("a.txt"))
        self.assertFalse(self.ws.exists(".kiln/state.db"))

    def test_dry_run_finds_inputs_by_directory_listings(self):
        # 300 inputs in one directory: the plan lists it (on a thread, while the recipe
        # loads) instead of a stat each; a link and a subdirectory are inputs too
        for i in range(300):
            self.ws.write("data/%d.txt" % i, "%d\n" % i)
        os.symlink("0.txt", self.ws.path("data/link.txt"))
        os.makedirs(self.ws.path("data/sub"))
        tasks = ['task { name = "t%d", inputs = {"data/%d.txt"}, run = "true" }' % (i, i) for i in range(300)]
        tasks.append('task { name = "l", inputs = {"data/link.txt", "data/sub"}, run = "true" }')
        # an input the listing lacks that a task declared later makes: no error
        tasks.append('task { name = "reads", inputs = {"data/made.txt"}, run = "true" }')
        tasks.append('task { name = "makes", outputs = {"data/made.txt"}, run = "touch data/made.txt" }')
        self.ws.write("kiln.lua", "\n".join(tasks) + "\n")
        r = self.ws.kiln("run", "-n")
        self.assertEqual(r.rc, 0, r)
        self.assertIn("303 tasks would run", r.err + r.out)
        os.remove(self.ws.path("data/217.txt"))
        r = self.ws.kiln("run", "-n")
        self.assertEqual(r.rc, 2, r)
        self.assertIn('task "t217": input "data/217.txt" does not exist and no task produces it', r.err)
        # recorded tasks ask the state, not the listing; the new ones after them are still
        # answered right from theirs
        self.ws.write("data/217.txt", "217\n")
        self.assertEqual(self.ws.kiln("run").rc, 0)
        for i in range(300, 400):
            if i != 350:
                self.ws.write("data/%d.txt" % i, "%d\n" % i)
        more = ['task { name = "t%d", inputs = {"data/%d.txt"}, run = "true" }' % (i, i) for i in range(300, 400)]
        self.ws.write("kiln.lua", "\n".join(tasks + more) + "\n")
        r = self.ws.kiln("run", "-n")
        self.assertEqual(r.rc, 2, r)
        self.assertIn('task "t350": input "data/350.txt" does not exist and no task produces it', r.err)
        self.ws.write("data/350.txt", "350\n")
        r = self.ws.kiln("run", "-n")
        self.assertEqual(r.rc, 0, r)
        self.assertIn("100 tasks would run", r.err + r.out)

    def test_missing_program_fails_clearly(self):
        self.ws.write("kiln.lua", 'task { name = "x", run = {"no-such-program-kiln"} }\n')
        r = self.ws.kiln("run")
        self.assertEqual(r.rc, 1, r)
        self.assertIn("could not start", r.out)
        self.assertIn("no-such-program-kiln", self.ws.read(".kiln/logs/x@1.log"))

    def test_kiln_without_its_keeper_says_so(self):
        # a kiln binary copied on its own: its attempts cannot start, and the log names the
        # keeper it looked for (not the task's program, which is there)
        alone = self.ws.path("bin/kiln")
        os.makedirs(os.path.dirname(alone))
        shutil.copy(KILN, alone)
        self.ws.write("kiln.lua", 'task { name = "x", outputs = {"o.txt"}, run = "echo hi > o.txt" }\n')
        r = subprocess.run([alone, "run"], cwd=self.ws.dir, env=self.ws.env(None), text=True, capture_output=True)
        self.assertEqual(r.returncode, 1, r)
        log = self.ws.read(".kiln/logs/x@1.log")
        self.assertIn("cannot start %s: No such file or directory" % self.ws.path("bin/kiln-keeper"), log)
        self.assertIn("copy kiln-keeper next to", log)
        self.assertNotIn("/bin/sh", log.split("# --")[-1])
        self.assertFalse(self.ws.exists("o.txt"))

    def test_missing_output_is_a_failure(self):
        self.ws.write("kiln.lua", 'task { name = "x", outputs = {"never.txt"}, run = "true" }\n')
        r = self.ws.kiln("run")
        self.assertEqual(r.rc, 1, r)
        self.assertIn("did not write its declared output never.txt", r.out)


class Gpus(KilnTestCase):
    def gpu_file(self, rows):
        self.ws.write("gpus.csv", "".join("%d, %d, %d\n" % r for r in rows))
        return {"KILN_GPU_INFO": self.ws.path("gpus.csv")}

    def test_gpu_tasks_never_share_a_device(self):
        env = self.gpu_file([(0, 80000, 0), (1, 80000, 0)])
        self.ws.write("kiln.lua", "\n".join(
            'task { name = "g%d", gpus = 1, run = %s }' % (i, lua_str(traced("sleep 0.25"))) for i in range(6)))
        r = self.ws.kiln("run", "-j", "4", env=env)
        self.assertEqual(r.rc, 0, r)
        spans = intervals(self.ws.trace())
        self.assertEqual(len(spans), 6)
        for dev in ("0", "1"):
            on = [(s, e) for s, e, d in spans.values() if d == dev]
            self.assertTrue(on, "device %s was never used" % dev)
            on.sort()
            for (s1, e1), (s2, e2) in zip(on, on[1:]):
                self.assertLessEqual(e1, s2, "two tasks shared device %s" % dev)
        self.assertEqual(max_overlap(spans), 2)

    def test_two_gpu_task_gets_two_devices(self):
        env = self.gpu_file([(0, 80000, 0), (3, 80000, 0)])
        self.ws.write("kiln.lua", 'task { name = "g", gpus = 2, run = %s }' % lua_str(traced("true")))
        r = self.ws.kiln("run", env=env)
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(intervals(self.ws.trace())["g"][2], "0,3")

    def test_busy_device_is_not_leased(self):
        env = self.gpu_file([(0, 80000, 70000), (1, 80000, 1000)])
        self.ws.write("kiln.lua", "\n".join(
            'task { name = "g%d", gpus = 1, run = %s }' % (i, lua_str(traced("sleep 0.1"))) for i in range(3)))
        r = self.ws.kiln("run", "-j", "3", env=env)
        self.assertEqual(r.rc, 0, r)
        self.assertEqual({d for _, _, d in intervals(self.ws.trace()).values()}, {"1"})

    def test_task_waits_for_device_to_become_free(self):
        env = self.gpu_file([(0, 80000, 79000)])
        self.ws.write("kiln.lua", 'task { name = "g", gpus = 1, run = %s }' % lua_str(traced("true")))
        p = self.ws.spawn("run", env=env)
        time.sleep(1.5)
        self.assertIsNone(p.poll(), "the task must wait while the device is busy")
        self.assertEqual(self.ws.trace(), [])
        self.ws.write("gpus.csv", "0, 80000, 100\n")
        out, err = p.communicate(timeout=20)
        self.assertEqual(p.returncode, 0, out + err)
        self.assertEqual(len(self.ws.trace()), 2)

    def test_more_gpus_than_exist_is_a_validation_error(self):
        env = self.gpu_file([(0, 80000, 0), (1, 80000, 0)])
        self.ws.write("kiln.lua", '\n\ntask { name = "big", gpus = 3, run = "true" }\n')
        r = self.ws.kiln("run", env=env)
        self.assertEqual(r.rc, 2, r)
        self.assertIn("kiln.lua:3:", r.err)
        self.assertIn("asks for 3 GPUs but only 2", r.err)

    def test_no_gpus_known_fails_at_once(self):
        env = self.gpu_file([])
        self.ws.write("kiln.lua", 'task { name = "g", gpus = 1, run = "true" }\ntask { name = "c", run = "true" }\n')
        t0 = time.time()
        r = self.ws.kiln("run", "-k", env=env)
        self.assertEqual(r.rc, 1, r)
        self.assertLess(time.time() - t0, 10)
        self.assertIn("needs a GPU but none is known", r.out)
        self.assertEqual(r.ran, {"c"})

    def test_a_gpu_task_up_to_date_passes_where_no_gpu_is_known(self):
        # run on a GPU machine, then looked at on a laptop: nothing needs the device
        self.ws.write("kiln.lua", 'task { name = "g", gpus = 1, outputs = {"g.txt"}, run = "echo g > g.txt" }\n')
        self.assertEqual(self.ws.kiln("run", "--gpus", "0").rc, 0)
        r = self.ws.kiln("run", env=self.gpu_file([]))
        self.assertEqual(r.rc, 0, r)
        self.assertIn("1 up to date", r.out)

    def test_gpus_flag_lists_devices(self):
        self.ws.write("kiln.lua", 'task { name = "g", gpus = 1, run = %s }' % lua_str(traced("true")))
        r = self.ws.kiln("run", "--gpus", "5", env={"KILN_GPU_INFO": ""})
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(intervals(self.ws.trace())["g"][2], "5")


if __name__ == "__main__":
    main()
