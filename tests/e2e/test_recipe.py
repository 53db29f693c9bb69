"""End-to-end: the recipe API (task, grid, params, glob, require) and every validation
error, each pointing at file:line with exit status 2 and nothing run."""
import os
import shutil
import subprocess

from kilntest import KILN, KilnTestCase, main


class Validation(KilnTestCase):
    def expect_error(self, recipe, needle, line, args=(), name="kiln.lua"):
        self.ws.write(name, recipe)
        self.ws.write("keep.txt", "x")
        r = self.ws.kiln("run", *args)
        self.assertEqual(r.rc, 2, r)
        if line is not None:
            self.assertIn("%s:%d:" % (name, line), r.err)
        self.assertIn(needle, r.err)
        self.assertFalse(self.ws.exists("ran"), "nothing may run before validation passes")
        self.assertFalse(self.ws.exists(".kiln/logs"))
        return r

    def test_task_value_fields_are_checked(self):
        self.expect_error('local t = task { name = "a", run = "true" }\nprint(t.output)\n',
                          "a task value has name, outputs and inputs, not 'output'", 2)
        self.expect_error('local t = task { name = "a", run = "true" }\nt.name = "b"\n',
                          "task a cannot be changed after task{} declared it ('name' set on its value)", 2)
        self.expect_error('task { name = "a", run = "true", deps = {{name = "x"}} }\n',
                          "entries must be task names or task values", 1)

    def test_a_mistyped_placeholder_is_named_with_the_one_meant(self):
        self.ws.write("kiln.lua", 'task { name = "a", outputs = {"a.txt"}, run = "echo hi > {outt}; echo ${HOME} {x} {a,b}" }\n'
                      'map { name = "m", items = {"x", "y"}, shards = 2, output = "m/{item}.txt",\n'
                      '      run = "for i in $(cat {itms}); do echo > m/$i.txt; done" }\n')
        r = self.ws.kiln("run", "-n")
        self.assertEqual(r.rc, 0, r)
        self.assertIn('kiln.lua:1: task "a" uses {outt}, which is no placeholder: it reaches the command as written '
                      '(did you mean {out}?)', r.err)
        self.assertIn("kiln.lua:2:", r.err)
        self.assertEqual(r.err.count("{itms}"), 1, "a map's command is named once: %s" % r.err)
        for own in ("{HOME}", "{x}", "{a,b}"):
            self.assertNotIn(own, r.err, "the command's own braces are left alone")

    def test_a_plots_tags_and_tasks_are_checked_when_the_recipe_loads(self):
        grid = ('for _, d in ipairs({"a", "b"}) do task { name = "eval/" .. d, tags = {dataset = d, model = "m"}, '
                'outputs = {d}, run = "touch {out}" } end\n')
        self.expect_error(grid + 'plot { name = "p", type = "bars", from = "eval/*", x = "datset", y = "top1" }\n',
                          'plot{} "p": x = "datset" is a tag no task it draws from has (did you mean dataset?); '
                          'their tags: dataset, model', 2)
        self.expect_error(grid + 'plot { name = "h", type = "heatmap", from = "eval/*", x = "model", series = "seed", '
                          'y = "top1" }\n', 'series = "seed" is a tag no task it draws from has; their tags:', 2)
        self.expect_error(grid + 'plot { name = "p", type = "bars", from = "evl/*", x = "dataset", y = "top1" }\n',
                          'plot{} "p": from = "evl/*" selects no task', 2)

    def test_syntax_error(self):
        self.expect_error('task { name = "a", run = "touch ran" }\ntask { name = }\n', "unexpected symbol", 2)

    def test_unknown_field(self):
        self.expect_error('task { name = "a", run = "touch ran" }\n\ntask { name = "b", gpu = 1 }\n',
                          "unknown field 'gpu'", 3)

    def test_wrong_type(self):
        self.expect_error('task { name = "a", cpus = "two" }\n', "cpus must be an integer, got string", 1)
        self.expect_error('task { name = "a", timeout = "soon" }\n', "timeout must be a positive duration", 1)
        self.expect_error('task { name = "a", run = 5 }\n', "run must be an argv table or a shell string", 1)

    def test_duplicate_task_name(self):
        r = self.expect_error('task { name = "a", run = "touch ran" }\ntask { name = "a" }\n', 'declared twice', 2)
        self.assertIn("first at kiln.lua:1", r.err)

    def test_two_tasks_same_output(self):
        self.expect_error('task { name = "a", outputs = {"o.txt"} }\ntask { name = "b", outputs = {"./o.txt"} }\n',
                          'both declare output "o.txt"', 2)

    def test_unknown_dependency(self):
        self.expect_error('task { name = "a", run = "touch ran" }\ntask { name = "b", deps = {"nope"} }\n',
                          'depends on unknown task "nope"', 2)

    def test_cycle_printed_as_path(self):
        r = self.expect_error('task { name = "a", deps = {"c"}, run = "touch ran" }\n'
                              'task { name = "b", deps = {"a"} }\n'
                              'task { name = "c", deps = {"b"} }\n', "dependency cycle: ", None)
        self.assertRegex(r.err, r"kiln\.lua:\d+: dependency cycle: (a -> c -> b -> a|b -> a -> c -> b|c -> b -> a -> c)")

    def test_cycle_through_files(self):
        self.expect_error('task { name = "a", inputs = {"y"}, outputs = {"x"} }\n'
                          'task { name = "b", inputs = {"x"}, outputs = {"y"} }\n', "dependency cycle", None)

    def test_missing_input(self):
        self.expect_error('task { name = "a", run = "touch ran" }\ntask { name = "b", inputs = {"keep.txt", "data/none.csv"} }\n',
                          'input "data/none.csv" does not exist and no task produces it', 2)

    def test_unknown_param(self):
        r = self.expect_error('local P = params { batch = 64 }\ntask { name = "a", run = "touch ran" }\n',
                              'unknown param "bach"', None, args=("bach=32",))
        self.assertIn("declares: batch", r.err)

    def test_param_type_checked(self):
        self.expect_error('local P = params { batch = 64 }\n', "expected a number", 1, args=("batch=big",))

    def test_glob_input_matching_nothing(self):
        self.expect_error('task { name = "a", inputs = {"data/*.csv"} }\n', "matches no file", 1)

    def test_error_in_required_file_points_there(self):
        self.ws.write("lib/helpers.lua", "local M = {}\nfunction M.add(n)\n  task { name = n, colour = 1 }\nend\nreturn M\n")
        r = self.expect_error('local h = require("lib.helpers")\nh.add("x")\n', "unknown field 'colour'", None)
        self.assertIn("lib/helpers.lua:3:", r.err)

    def test_loading_cannot_spawn_or_read_clock(self):
        self.expect_error('os.execute("touch ran")\n', "os.execute is not available while loading", 1)
        self.expect_error('local t = os.time()\n', "os.time is not available", 1)
        self.expect_error('io.open("ran", "w")\n', "would write", 1)

    def test_unknown_verb_and_help(self):
        r = self.ws.kiln("frobnicate")
        self.assertEqual(r.rc, 2)
        self.assertIn('unknown verb "frobnicate"', r.err)
        h = self.ws.kiln("--help")
        self.assertEqual(h.rc, 0)
        self.assertIn("kiln run", h.out)
        h = self.ws.kiln("help", "why")
        self.assertIn("last success", h.out)
        h = self.ws.kiln("help", "run")
        for name in ("local", "slurm", "ssh"):  # the executors' table, in its own words
            self.assertRegex(h.out, r"\n  %s +\S" % name)

    def test_long_options_version_and_exit_code(self):
        self.ws.write("kiln.lua", 'task { name = "a", outputs = {"a.txt"}, run = "echo a > {out}" }\n'
                      'task { name = "b", outputs = {"b.txt"}, run = "exit 1" }\n')
        v = self.ws.kiln("--version")
        self.assertEqual(v.rc, 0)
        self.assertRegex(v.out, r"^kiln \d+\.\d+\.\d+")
        bad = self.ws.kiln("run", "--bogus")
        self.assertEqual(bad.rc, 2)
        self.assertTrue(bad.err.startswith("kiln: "), bad.err)  # not the binary's path
        self.assertEqual(self.ws.kiln("status", "--exit-code").rc, 1, "work pending: 1, as make -q")
        self.assertEqual(self.ws.kiln("status", "-q").rc, 1)
        dry = self.ws.kiln("run", "--dry-run")
        self.assertIn("would run (dry run", dry.out)
        self.assertFalse(self.ws.exists("a.txt"))
        r = self.ws.kiln("run", "--keep-going", "--jobs", "1")
        self.assertEqual(r.rc, 1, r)
        self.assertEqual(r.ran, {"a"})
        self.ws.write("kiln.lua", 'task { name = "a", outputs = {"a.txt"}, run = "echo a > {out}" }\n')
        self.assertEqual(self.ws.kiln("status", "--exit-code").rc, 0, "all up to date: 0")
        os.remove(self.ws.path("a.txt"))  # a restore is pending work too, and says so
        st = self.ws.kiln("status", "--exit-code")
        self.assertEqual(st.rc, 1, st)
        self.assertIn("kiln: 1 would be restored from the store", st.out)
        self.assertNotIn("up to date", st.out)
        why = self.ws.kiln("why", "a")
        self.assertIn("a: output a.txt was deleted", why.out)
        self.assertIn("run restores its outputs, the task does not run", why.out)
        self.assertEqual(self.ws.kiln("run").restored, {"a"})
        os.makedirs(self.ws.path("w"))
        r = self.ws.kiln("--directory", "w", "run", "kiln.lua")
        self.assertEqual(r.rc, 0, r)
        self.assertTrue(self.ws.exists("w/a.txt"))

    def test_a_mistyped_directory_is_not_created_by_verbs_that_read(self):
        for verb in (("status",), ("log", "a"), ("report",), ("metrics",)):
            r = self.ws.kiln("-C", "typo", *verb)
            self.assertEqual(r.rc, 2, (verb, r))
            self.assertIn("only `kiln run` creates a workspace", r.err)
            self.assertFalse(self.ws.exists("typo"), verb)


    def test_a_mistyped_recipe_is_named_not_mistaken_for_kiln_lua(self):
        os.makedirs(self.ws.path("w"))
        r = self.ws.kiln("-C", "w", "run", "recipes/typo.lua")  # no kiln.lua in w either
        self.assertEqual(r.rc, 2, r)
        self.assertIn("cannot read recipe recipes/typo.lua: No such file or directory (a recipe is named from where "
                      "kiln was started)", r.err)
        self.ws.write("kiln.lua", 'task { name = "a", run = "true" }\n')
        r = self.ws.kiln("run", "typo.lua")  # kiln.lua loads, and the word matches no task
        self.assertEqual(r.rc, 2, r)
        self.assertIn('no task or output matches "typo.lua"', r.err)
        self.assertIn("as a recipe, typo.lua cannot be read: No such file or directory", r.err)
        self.assertFalse(self.ws.exists(".kiln/logs/a@1.log"), "nothing ran")

class RecipeApi(KilnTestCase):
    def kept_chunk(self):
        """The recipe's kept bytecode file in .kiln/recipes (its debug information names it)."""
        d = self.ws.path(".kiln/recipes")
        for name in sorted(os.listdir(d)):
            with open(os.path.join(d, name), "rb") as f:
                if b"kiln.lua" in f.read():
                    return os.path.join(d, name)
        self.fail("no kept chunk for kiln.lua in %s" % os.listdir(d))

    def test_gpus_available_counts_the_devices_kiln_sees(self):
        # the count is asked when the recipe first calls it (not before every load): the
        # devices of KILN_GPU_INFO, narrowed by --gpus; none here without it (no driver)
        self.ws.write("gpus.csv", "0, 80000, 0\n1, 80000, 0\n2, 80000, 0\n")
        self.ws.write("kiln.lua", 'local n = gpus_available()\n'
                      'task { name = "n", outputs = {"n.txt"}, run = "echo " .. n .. " > {out}" }\n')
        env = {"KILN_GPU_INFO": self.ws.path("gpus.csv")}
        r = self.ws.kiln("run", env=env)
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(self.ws.read("n.txt"), "3\n")
        r = self.ws.kiln("run", "--gpus", "0,2", env=env)
        self.assertEqual((r.rc, self.ws.read("n.txt")), (0, "2\n"), r)
        r = self.ws.kiln("list", env=env)
        self.assertEqual(r.rc, 0, r)
        if not os.path.exists("/dev/nvidiactl") and not os.path.exists("/dev/dxg"):
            r = self.ws.kiln("run")
            self.assertEqual((r.rc, self.ws.read("n.txt")), (0, "0\n"), r)

    def test_the_compiled_recipe_is_kept_while_its_text_is_unchanged(self):
        self.ws.write("kiln.lua", 'task { name = "a", outputs = {"a.txt"}, run = "echo a > a.txt" }\n')
        self.assertFalse(self.ws.exists(".kiln"))
        self.assertEqual(self.ws.kiln("list").rc, 0)
        self.assertFalse(self.ws.exists(".kiln"), "a command that only reads makes no workspace")
        self.assertEqual(self.ws.kiln("run").ran, {"a"})
        kept = self.kept_chunk()
        # an error found while the kept bytecode runs still names file:line
        self.ws.write("kiln.lua", 'task { name = "a", outputs = {"a.txt"}, run = "echo a > a.txt" }\n\n'
                                  'task { name = "b", gpu = 1 }\n')
        for _ in range(2):
            r = self.ws.kiln("run")
            self.assertEqual(r.rc, 2, r)
            self.assertIn("kiln.lua:3: task{}: unknown field 'gpu'", r.err)
        inode = os.stat(self.kept_chunk()).st_ino
        self.assertEqual(self.ws.kiln("run").rc, 2)
        self.assertEqual(os.stat(self.kept_chunk()).st_ino, inode, "an unchanged text is not compiled again")
        # a new text is compiled again, never the old bytecode run
        self.ws.write("kiln.lua", 'task { name = "a", outputs = {"a.txt"}, run = "echo a > a.txt" }\n'
                                  'task { name = "c", outputs = {"c.txt"}, run = "echo c > c.txt" }\n')
        self.assertEqual(self.ws.kiln("run").ran, {"c"})
        # damaged bytecode (same size, so only its hash can tell) is not loaded: parsed again
        kept = self.kept_chunk()
        with open(kept, "r+b") as f:
            f.seek(-40, os.SEEK_END)
            f.write(b"\xff" * 32)
        damaged = os.stat(kept).st_ino
        r = self.ws.kiln("run")
        self.assertEqual((r.rc, r.ran), (0, set()), r)
        self.assertNotEqual(os.stat(kept).st_ino, damaged, "the damaged file is replaced")
        with open(kept, "rb") as f:
            self.assertNotIn(b"\xff" * 32, f.read())
        with open(kept, "wb"):  # an emptied one too
            pass
        r = self.ws.kiln("run", "--force", "c")
        self.assertEqual((r.rc, r.ran), (0, {"c"}), r)
        # a workspace copied with its .kiln: bytecode made elsewhere is never loaded
        copy = self.ws.path("../" + os.path.basename(self.ws.dir) + "-copy")
        shutil.copytree(self.ws.dir, copy, symlinks=True)
        try:
            kept_copy = os.path.join(copy, os.path.relpath(self.kept_chunk(), self.ws.dir))
            inode = os.stat(kept_copy).st_ino
            r = subprocess.run([KILN, "run"], cwd=copy, capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertNotEqual(os.stat(kept_copy).st_ino, inode, "the copy's recipe was parsed and kept anew")
        finally:
            shutil.rmtree(copy)

    def test_grid_params_numbers_and_placeholders(self):
        self.ws.write("kiln.lua", """
local P = params { batch = 64, tag = "base" }
assert(math.type(P.batch) == "integer", "numbers stay numbers")
local n = 0
for c in grid { model = {"m1", "m2"}, dataset = {"d1", "d2", "d3"} } do
  n = n + 1
  task { name = "eval/" .. c.dataset .. "/" .. c.model, outputs = {"out/" .. c.dataset .. "-" .. c.model .. ".txt"},
         run = {"sh", "-c", "echo $1 $2 > $3", "x", P.batch * 2, P.tag, "{out}"}, tags = c }
end
assert(n == 6)
""")
        r = self.ws.kiln("run", "batch=32", "tag=exp one")
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(len(r.ran), 6)
        self.assertEqual(self.ws.read("out/d2-m1.txt").strip(), "64 exp one")
        lst = self.ws.kiln("list")
        self.assertIn("eval/d1/m1", lst.out)
        self.assertIn("dataset=d1 model=m1", lst.out)

    def test_task_values_as_deps_and_glob(self):
        self.ws.write("data/a.csv", "1")
        self.ws.write("data/b.csv", "2")
        self.ws.write("kiln.lua", """
local files = glob("data/*.csv")
assert(#files == 2 and files[1] == "data/a.csv")
local prep = task { name = "prep", inputs = files, outputs = {"all.csv"}, run = "cat {inputs} > {out}" }
assert(prep.name == "prep" and #prep.inputs == 2 and prep.inputs[2] == "data/b.csv")
assert(tostring(prep) == "task prep")
task { name = "use", deps = {prep}, inputs = prep.outputs, outputs = {"n.txt"}, run = "wc -c < {in} > {out}" }
task { name = "one", deps = prep, run = "true" }
""")
        r = self.ws.kiln("run")
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(self.ws.read("all.csv"), "12")
        self.assertEqual(self.ws.read("n.txt").strip(), "2")
        g = self.ws.kiln("graph")
        self.assertIn('"prep" -> "use"', g.out)

    def test_graph_patterns_collapse_a_grid_and_colour_by_what_run_would_do(self):
        self.ws.write("kiln.lua", """
for _, d in ipairs({"cifar", "dtd", "pets"}) do
  task { name = "data/" .. d, outputs = {"d/" .. d}, run = "echo " .. d .. " > {out}" }
  for _, m in ipairs({"a", "b"}) do
    task { name = "eval/" .. d .. "/" .. m, tags = {dataset = d, model = m}, deps = {"data/" .. d},
           outputs = {"e/" .. d .. m}, run = (d == "dtd" and m == "b") and "exit 1" or "echo ok > {out}" }
  end
end
task { name = "table", deps = {"eval/cifar/a", "eval/pets/b"}, outputs = {"t.txt"}, run = "echo t > {out}" }
""")
        self.assertEqual(self.ws.kiln("run", "-k").rc, 1)
        g = self.ws.kiln("graph", "--patterns")
        self.assertEqual(g.rc, 0, g)
        self.assertIn('label="eval/{dataset}/{model} ×6\\n5 up to date, 1 failed", fillcolor="#fcae91"', g.out)
        self.assertIn('label="data/* ×3\\n3 up to date", fillcolor="#c7e9c0"', g.out)
        self.assertEqual(g.out.count(" -> "), 2, "data -> eval -> table, each edge once: %s" % g.out)
        # a task alone keeps its name; per task, each is filled by its own state
        self.assertIn('label="table", fillcolor="#c7e9c0"', g.out)
        self.ws.write("d/pets", "changed\n")
        g = self.ws.kiln("graph")
        self.assertIn('"data/pets" [label="data/pets", fillcolor="#c6dbef"]', g.out, "its output restored")
        self.assertIn('"eval/dtd/b" [label="eval/dtd/b", fillcolor="#fcae91"]', g.out)
        if shutil.which("dot"):
            svg = subprocess.run(["dot", "-Tsvg"], input=g.out, capture_output=True, text=True)
            self.assertEqual(svg.returncode, 0, svg.stderr)

    def test_a_script_beside_the_recipe_but_not_in_the_workspace_is_named(self):
        self.ws.write("recipes/train.py", "print('trained')\n")
        self.ws.write("recipes/y.lua", 'task { name = "t", outputs = {"o.txt"}, run = "/usr/bin/python3 train.py > o.txt" }\n')
        r = self.ws.kiln("-C", "build/x", "run", "recipes/y.lua")
        self.assertEqual(r.rc, 1, r)
        self.assertIn('train.py is not in the workspace (%s), where commands run, but beside the recipe: name it '
                      'RECIPE_DIR .. "/train.py" in the recipe' % os.path.realpath(self.ws.path("build/x")), r.out)
        self.ws.write("recipes/y.lua", 'task { name = "t", outputs = {"o.txt"}, '
                      'run = "/usr/bin/python3 " .. RECIPE_DIR .. "/train.py > o.txt" }\n')
        r = self.ws.kiln("-C", "build/x", "run", "recipes/y.lua")
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(self.ws.read("build/x/o.txt"), "trained\n")

    def test_recipe_path_and_workspace_flag(self):
        self.ws.write("recipes/r.lua", 'task { name = "w", outputs = {"w.txt"}, run = "pwd > w.txt" }\n')
        r = self.ws.kiln("-C", "work", "run", "recipes/r.lua")
        self.assertEqual(r.rc, 0, r)
        self.assertTrue(self.ws.read("work/w.txt").strip().endswith("/work"))
        self.assertTrue(self.ws.exists("work/.kiln/state.db"))
        self.assertFalse(self.ws.exists(".kiln"))


if __name__ == "__main__":
    main()
