"""Randomized: a random DAG of a few hundred tasks under random edits to inputs, the
recipe and outputs. After each edit, the tasks kiln runs (and restores) must equal what an
independent reference model says, and every output must equal a clean run's.

Each task's output is (bytes of its leaf input + bytes of its deps' outputs + salt) mod 5,
so small outputs often come out identical and exercise early cutoff. Some tasks write a
directory (out/<i>/v.txt) instead of a file, restored from the store as a whole, and their
consumers read a file inside it. KILN_RANDOM_SEED picks the seed (printed on failure)."""
import os
import random
import shutil

from kilntest import KilnTestCase, Workspace, main

N_TASKS = 240
ROUNDS = 14


class Model:
    """What kiln should do, computed without kiln: the last key per task, every key that
    ever succeeded (restorable from the store), and the output recorded for the last key."""

    def __init__(self, deps, has_leaf, is_dir):
        self.deps, self.has_leaf, self.is_dir = deps, has_leaf, is_dir
        self.last, self.seen, self.recorded = {}, {}, {}

    def step(self, ws, salts):
        ran, restored, expected = set(), set(), {}
        for i in range(len(self.deps)):
            leaf = ws.read("src/%d.txt" % i) if self.has_leaf[i] else ""
            dep_outs = tuple(expected[d] for d in self.deps[i])
            key = (salts[i], leaf, dep_outs)
            out = "%d\n" % ((len(leaf.encode()) + sum(len(o) for o in dep_outs) + salts[i]) % 5)
            path = output_file(i, self.is_dir)
            on_disk = ws.read(path) if ws.exists(path) else None
            name = "t%d" % i
            if key == self.last.get(i) and on_disk == self.recorded.get(i):
                pass
            elif key in self.seen.setdefault(i, set()):
                restored.add(name)  # from the store (or found already in place)
            else:
                ran.add(name)
            self.last[i], self.recorded[i], expected[i] = key, out, out
            self.seen[i].add(key)
        return ran, restored, expected


def output_file(i, is_dir):
    """The file holding task i's value: its output, or a file inside its output directory."""
    return "out/%d/v.txt" % i if is_dir[i] else "out/%d.txt" % i


def write_recipe(ws, deps, has_leaf, is_dir, salts):
    ws.write("salts.lua", "return {" + ", ".join(str(s) for s in salts) + "}\n")
    lines = ['local salts = require("salts")', "local deps, leaf, dir = {}, {}, {}"]
    for i, ds in enumerate(deps):
        lines.append("deps[%d] = {%s}; leaf[%d] = %s; dir[%d] = %s" % (
            i, ", ".join(str(d) for d in ds), i, "true" if has_leaf[i] else "false", i, "true" if is_dir[i] else "false"))
    lines.append("""
local function value_of(d) return dir[d] and "out/" .. d .. "/v.txt" or "out/" .. d .. ".txt" end
for i = 0, %d do
  local inputs = {}
  if leaf[i] then inputs[#inputs + 1] = "src/" .. i .. ".txt" end
  for _, d in ipairs(deps[i]) do inputs[#inputs + 1] = value_of(d) end
  local cat = #inputs > 0 and "cat {inputs} | wc -c" or "echo 0"
  local value = "$(( (n + " .. salts[i + 1] .. ") %% 5 ))"
  if dir[i] then
    task { name = "t" .. i, inputs = inputs, outputs = {"out/" .. i},
           run = "n=$(" .. cat .. "); rm -rf out/" .. i .. " && mkdir -p out/" .. i .. " && echo " .. value .. " > out/" .. i .. "/v.txt" }
  else
    task { name = "t" .. i, inputs = inputs, outputs = {"out/" .. i .. ".txt"},
           run = "n=$(" .. cat .. "); echo " .. value .. " > {out}" }
  end
end
""" % (len(deps) - 1))
    ws.write("kiln.lua", "\n".join(lines))


class RandomDag(KilnTestCase):
    def test_random_edits_match_reference(self):
        seed = int(os.environ.get("KILN_RANDOM_SEED", "20261122"))
        rng = random.Random(seed)
        deps = [sorted(rng.sample(range(i), min(i, rng.choice([0, 1, 1, 2, 3])))) for i in range(N_TASKS)]
        has_leaf = [not deps[i] or rng.random() < 0.6 for i in range(N_TASKS)]
        salts = [rng.randrange(5) for _ in range(N_TASKS)]
        is_dir = [rng.random() < 0.15 for _ in range(N_TASKS)]
        ws = self.ws
        for i in range(N_TASKS):
            if has_leaf[i]:
                ws.write("src/%d.txt" % i, "x" * rng.randrange(1, 9))
        write_recipe(ws, deps, has_leaf, is_dir, salts)
        model = Model(deps, has_leaf, is_dir)
        leaves = [i for i in range(N_TASKS) if has_leaf[i]]

        for rnd in range(ROUNDS + 1):
            edits = []
            if rnd > 0:
                for _ in range(rng.randint(1, 4)):
                    kind = rng.choice(["leaf", "leaf", "same", "touch", "salt", "salt_back", "rm_out", "edit_out"])
                    i = rng.choice(leaves) if kind in ("leaf", "same", "touch") else rng.randrange(N_TASKS)
                    edits.append((kind, i))
                    if kind == "leaf":
                        ws.write("src/%d.txt" % i, rng.choice("xyz") * rng.randrange(1, 9))
                    elif kind == "same":
                        ws.write("src/%d.txt" % i, ws.read("src/%d.txt" % i))
                    elif kind == "touch":
                        os.utime(ws.path("src/%d.txt" % i))
                    elif kind == "salt":
                        salts[i] = rng.randrange(5)
                    elif kind == "salt_back":
                        seen = sorted(k[0] for k in model.seen.get(i, ()))
                        salts[i] = rng.choice(seen) if seen else salts[i]
                    elif kind == "rm_out" and is_dir[i] and ws.exists("out/%d" % i):
                        shutil.rmtree(ws.path("out/%d" % i))
                    elif kind == "rm_out" and not is_dir[i] and ws.exists("out/%d.txt" % i):
                        os.remove(ws.path("out/%d.txt" % i))
                    elif kind == "edit_out":
                        ws.write(output_file(i, is_dir), "tampered\n")
                write_recipe(ws, deps, has_leaf, is_dir, salts)
            want_ran, want_restored, expected = model.step(ws, salts)
            r = ws.kiln("run", "-j", "2")
            ctx = "seed %d round %d edits %s\n%s" % (seed, rnd, edits, r.err)
            if os.environ.get("KILN_RANDOM_VERBOSE"):
                print("round %d: %d ran, %d restored, edits %s" % (rnd, len(r.ran), len(r.restored), edits))
            self.assertEqual(r.rc, 0, ctx + r.out[-2000:])
            self.assertEqual(r.ran, want_ran, ctx)
            self.assertEqual(r.restored, want_restored, ctx)
            for i in range(N_TASKS):
                self.assertEqual(ws.read(output_file(i, is_dir)), expected[i], "%s: task %d" % (ctx, i))

        # and the outputs equal those of a clean run of the final recipe
        clean = Workspace()
        try:
            shutil.copytree(ws.path("src"), clean.path("src"))
            for f in ("kiln.lua", "salts.lua"):
                shutil.copy(ws.path(f), clean.path(f))
            r = clean.kiln("run", "-j", "2")
            self.assertEqual(r.rc, 0, r)
            self.assertEqual(len(r.ran), N_TASKS)
            for i in range(N_TASKS):
                self.assertEqual(clean.read(output_file(i, is_dir)), ws.read(output_file(i, is_dir)))
        finally:
            clean.cleanup()


if __name__ == "__main__":
    main()
