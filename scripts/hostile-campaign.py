#!/usr/bin/env python3
"""hostile-campaign.py [--kiln PATH ...] [--emit-seeds DIR] — hostile recipes against kiln.

Each case is a recipe that tries to get out of the sandbox while it loads (through every
standard library table and metatable), to make kiln touch paths outside the workspace, to
crash it with sizes and recursion, or to never end. Every case runs under `kiln run -n`,
`kiln list` and `kiln status` (and `kiln run` for the path cases, whose commands are
harmless) with each kiln given (the release and the ASan/UBSan builds, say), in a fresh
workspace beside a canary directory that nothing may touch. A case passes when kiln
exits 0 or 2 (never a signal, never a sanitizer report), refuses what it must refuse with
a message naming the recipe's line, and the canary and the rest of the temporary
directory are as they were. Prints counts per category; exits 1 on any finding.

--emit-seeds DIR writes each case's recipe to DIR (seeds for tests/fuzz/fuzz_recipe.c).
"""
import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time

CANARY = "@CANARY@"  # replaced by the canary directory's absolute path

# (category, recipe, expect): expect "refuse" (exit 2 with kiln.lua:N), "load" (exit 0),
# or "either" (0 or 2: kiln decides, but must not crash or touch anything outside)
CASES = []


def case(category, expect, *recipes):
    for r in recipes:
        CASES.append((category, r, expect))


# --- io: every way to open, write or reach a file for writing ------------------------
for mode in ["w", "a", "r+", "w+", "a+", "wb", "ab", "r+b", "rw", "x"]:
    case("io", "refuse", 'local f = io.open("%s/x", "%s")\nf:write("escaped")\nf:close()\n' % (CANARY, mode))
case("io", "refuse",
     'io.output("%s/x")\nio.write("escaped")\n' % CANARY,
     'local p = io.popen("touch %s/x")\n' % CANARY,
     'local f = io.tmpfile()\n',
     'io.read("l")\n',
     'io.input("%s/x")\n' % CANARY,
     'for l in io.lines() do end\n',
     'io.stdin:read("l")\n',
     'local f = io.open("kiln.lua")\nassert(f:write("x"))\n',
     'local f = io.open("kiln.lua")\nlocal m = getmetatable(f)\nm.__index.write(f, "x")\nassert(m.__index.flush(f))\n'
     'local g = io.open("%s/x", "w")\n' % CANARY,
     'local f = io.open("/dev/stdout", "w")\n',
     'io.open("%s/x", string.rep("w", 1000))\n' % CANARY,
     'io.open("%s/x", "\\0w")\n' % CANARY,
     'io.open(setmetatable({}, {__tostring = function() return "%s/x" end}), "w")\n' % CANARY)
case("io", "load", 'local f = io.open("kiln.lua", "rb")\nassert(f:read(5) == "local")\nf:close()\n',
     'for l in io.lines("kiln.lua") do end\n', 'assert(io.open("%s/nothing") == nil)\n' % CANARY,
     'io.write("to standard output is fine\\n")\n')

# --- os: nothing that runs, removes, renames, reads the clock or exits -------------
for fn, args in [("execute", '"touch %s/x"' % CANARY), ("remove", '"%s/keep"' % CANARY),
                 ("rename", '"%s/keep", "%s/moved"' % (CANARY, CANARY)), ("tmpname", ""), ("exit", "3"),
                 ("time", ""), ("clock", ""), ("date", ""), ("setlocale", '"C"')]:
    case("os", "refuse", "os.%s(%s)\n" % (fn, args))
case("os", "load", 'assert(type(os.getenv("HOME")) == "string" or os.getenv("HOME") == nil)\n',
     'assert(os.difftime(2, 1) == 1)\n')

# --- the string metatable, then a write --------------------------------------------
for fn in ["sub", "find", "lower", "upper", "byte", "match", "gsub", "format", "len", "rep"]:
    case("string", "refuse",
         'string.%s = function() return "r" end\nio.open("%s/x", "w")\n' % (fn, CANARY),
         'getmetatable("").__index.%s = function() return nil end\nio.open("%s/x", "a")\n' % (fn, CANARY))
case("string", "refuse", 'getmetatable("").__index = function() return function() return "r" end end\n'
     'io.open("%s/x", "w")\n' % CANARY,
     'getmetatable("").__index = nil\nio.open("%s/x", "w")\n' % CANARY,
     'string = nil\nio.open("%s/x", "w")\n' % CANARY,
     'type, tostring, error = nil, nil, nil\nio.open("%s/x", "w")\n' % CANARY)

# --- debug, native code, bytecode -----------------------------------------------------
case("debug", "refuse", 'debug.getupvalue(io.open, 1)\n', 'package.loaded.debug.getupvalue(io.open, 1)\n',
     'local d = require "debug"\nd.sethook()\n',
     'package.loadlib("libc.so.6", "system")("touch %s/x")\n' % CANARY,
     'package.cpath = "/usr/lib/x86_64-linux-gnu/lua/5.4/?.so"\nrequire "lpeg"\nerror("loaded native code")\n',
     'assert(load(string.dump(function() end)))()\n', 'assert(load(string.dump(print), nil, "b"))\n',
     'assert(loadfile("/bin/sh"))\n', 'dofile("/etc/passwd")\n',
     'table.insert(package.searchers, function() return function() end end)\nrequire "nothere"\n',
     'package.searchers = nil\nrequire "nothere"\n', 'collectgarbage("stop")\ndebug.traceback()\n')
case("debug", "either", 'package.path = "/etc/?"\nrequire "hostname"\n', 'require "string"\n',
     'local f = load("return 1", "x", "t", {})\nassert(f() == 1)\n', 'load(function() return nil end)\n')

# --- kiln's own values and functions given what they do not expect ----------------
case("values", "refuse",
     'local t = task { name = "a", run = "true" }\ngetmetatable(t).__tostring(nil)\n',
     'local t = task { name = "a", run = "true" }\ngetmetatable(t).__index({}, "name")\n',
     'local t = task { name = "a", run = "true" }\nt.name = "b"\n',
     'local t = task { name = "a", run = "true" }\nsetmetatable(t, {})\n',
     'local t = task { name = "a", run = "true" }\nlocal x = t.nothing\n',
     'task(nil)\n', 'task "a"\n', 'task { name = {}, run = "true" }\n',
     'task { name = "a", run = "true", deps = { {} } }\n', 'task { name = "a", run = function() end }\n',
     'plot(5)\n', 'map { name = "m" }\n', 'params(nil)\n', 'glob({})\n', 'hosts { a = 5 }\n',
     'slurm { partition = {} }\n', 'external { 5 }\n', 'grid(5)\n', 'grid { a = 5 }\n',
     'task { name = "a", run = "true", env = { [1] = "x" } }\n',
     'task = function() return 1 end\nmap { name = "m", items = {"a"}, output = "o/{item}", run = "true" }\nerror("x")\n')
case("values", "load", 'local t = task { name = "a", run = "true" }\nassert(tostring(t) == "task a")\n'
     'assert(rawequal(getmetatable(t), getmetatable(t)))\nassert(not pcall(getmetatable(t).__tostring, 5))\n',
     'for c in grid { a = {} } do error("empty") end\n')

# --- error objects and finalizers ----------------------------------------------------
case("errors", "refuse", 'error(setmetatable({}, {__tostring = function() error("again") end}))\n',
     'error(setmetatable({}, {__tostring = function() return 5 end}))\n', 'error()\n', 'error(nil, 2)\n',
     'error(coroutine.create(print))\n',
     'setmetatable({}, {__gc = function() io.open("%s/x", "w") end})\ncollectgarbage()\nerror("x")\n' % CANARY,
     'local co = coroutine.wrap(function() io.open("%s/x", "w") end)\nco()\n' % CANARY,
     'coroutine.wrap(function() coroutine.yield() end)()\nerror("stop")\n',
     'xpcall(error, function() error("in handler") end)\nerror("x")\n',
     'pcall(string.rep)\nerror(string.rep("x", 100000))\n')
case("errors", "either",
     'setmetatable({}, {__gc = function() io.open("%s/x", "w") end})\n' % CANARY,
     'setmetatable({}, {__gc = function() error("in gc") end})\ncollectgarbage()\n',
     'warn("@on")\nwarn("a warning")\n', 'setmetatable({}, {__close = 5})\n')

# --- paths: outputs and other written paths outside the workspace -------------------
for field, value in [("outputs", '"%s/x"' % CANARY), ("outputs", '"../x"'), ("outputs", '"a/../../x"'),
                     ("outputs", '"kiln.lua"'), ("outputs", '".kiln/state.db"'), ("outputs", '"."'),
                     ("outputs", '""'), ("outputs", '"/"'), ("outputs", '"up/x"'), ("outputs", '"a\\0b"'),
                     ("resume", '"%s/x"' % CANARY), ("resume", '"../x"'), ("metrics", '"%s/m.json"' % CANARY),
                     ("inputs", '"%s/keep"' % CANARY), ("inputs", '"/etc/hostname"'), ("inputs", '"../*"'),
                     ("name", '"a/../../b"'), ("name", '"../x"'), ("name", '"a\\nb"'), ("name", '""')]:
    wrapped = value if field in ("metrics", "name") else "{ %s }" % value
    extra = "" if field == "name" else 'name = "a", '
    case("paths", "refuse", 'task { %s%s = %s, run = "true" }\n' % (extra, field, wrapped))
case("paths", "refuse", 'plot { name = "p", from = {}, x = "a", y = "b", out = "%s/p" }\n' % CANARY,
     'external { "%s" }\ntask { name = "a", outputs = { "%s/x" }, run = "true" }\n' % (CANARY, CANARY),
     'map { name = "m", items = {"a"}, output = "%s/{item}", run = "true" }\n' % CANARY,
     'require "../%s"\n' % "x" * 1)
case("paths", "load", 'external { "%s" }\ntask { name = "a", inputs = { "%s/keep" }, run = "true" }\n'
     % (CANARY, CANARY), 'task { name = "a", outputs = { "sub/dir/x" }, run = "mkdir -p sub/dir && touch sub/dir/x" }\n')

# --- sizes -------------------------------------------------------------------------------
case("sizes", "either", 'local s = string.rep("x", 2^40)\n', 'local s = string.rep("x", 2^31)\n',
     'local t = {}\nfor i = 1, 2^62 do t[i] = i end\n', 'task { name = string.rep("a", 1e6), run = "true" }\n',
     'task { name = "a", run = string.rep("x ", 1e6) }\n', 'local t = {}\nt[2^53] = 1\ntask { name = "a", inputs = t, run = "true" }\n',
     'local t = setmetatable({}, {__len = function() return 2^62 end})\ntask { name = "a", outputs = t, run = "true" }\n',
     'local t = setmetatable({}, {__index = function(t, k) return "x" .. k end})\ntask { name = "a", inputs = t, run = "true" }\n',
     'table.concat(setmetatable({}, {__len = function() return 2^40 end}))\n',
     'string.format("%99999d", 1)\n', 'local s = ("x"):rep(1e7)\nfor i = 1, 3 do s = s .. s end\n',
     'table.unpack({}, 1, 1e8)\n', 'select(-1)\n', 'string.rep("x", -1)\n', 'utf8.char(0x7FFFFFFF + 1)\n')
for field, value in [("cpus", "2^63"), ("cpus", "-1"), ("cpus", "0/0"), ("gpus", "1/0"), ("gpus", "-2^63"),
                     ("mem", '"1e308G"'), ("retries", "2^31"), ("timeout", "-0.0"), ("timeout", '"1e999s"'),
                     ("ports", "2^20"), ("priority", "0/0")]:
    case("sizes", "refuse", 'task { name = "a", run = "true", %s = %s }\n' % (field, value))
case("sizes", "either", "local x = " + "{" * 180 + "}" * 180 + "\n")
case("sizes", "refuse", "local x = " + "{" * 5000 + "}" * 5000 + "\n", "return " + "(" * 5000 + "1" + ")" * 5000 + "\n",
     "local x = " + "-" * 100000 + "1\n", 'glob(string.rep("*/", 3000))\n', 'glob(string.rep("a", 10000))\n',
     'task { name = "a", run = "true", inputs = { string.rep("?/", 3000) } }\n', 'glob(string.rep("/", 4000))\n')

# --- recursion -------------------------------------------------------------------------
case("recursion", "refuse", 'local function f() return 1 + f() end\nf()\n',
     'local t = setmetatable({}, {__index = function(t, k) return t[k] end})\nlocal x = t.a\n',
     'local t = setmetatable({}, {__tostring = function(t) return tostring(t) end})\nprint(t)\n',
     'local t = setmetatable({}, {__concat = function(a, b) return a .. b end})\nlocal x = t .. "a"\n',
     'local t = setmetatable({}, {__eq = function(a, b) return a == b end})\nlocal x = t == setmetatable({}, getmetatable(t))\n',
     'local function f() return pcall(f) end\nf()\nerror("after")\n',
     'local function f() local co = coroutine.wrap(f) return co() end\nf()\n',
     'local function f(...) return f(1, ...) end\nf()\n', 'string.gsub(string.rep("a", 1e6), "(a)", function(c) return c end)\nerror("x")\n')
case("recursion", "refuse", '-- a.lua requires b.lua requires a.lua\nrequire "cyc_a"\n')

# --- never ending ------------------------------------------------------------------------
case("endless", "refuse", "while true do end\n", "repeat until false\n", "local function f() return f() end\nf()\n",
     "while true do pcall(function() while true do end end) end\n",
     "for i = 1, math.huge do end\n", "local co = coroutine.wrap(function() while true do coroutine.yield() end end)\nwhile true do co() end\n",
     'setmetatable({}, {__gc = function() while true do end end})\ncollectgarbage()\n',
     'local s = string.rep("a", 40)\nprint(s:find(string.rep("a*", 40) .. "b"))\n')


def tree_digest(path):
    h = hashlib.sha256()
    for root, dirs, files in os.walk(path):
        dirs.sort()
        for name in sorted(dirs + files):
            p = os.path.join(root, name)
            st = os.lstat(p)
            h.update(("%s %o %d\n" % (os.path.relpath(p, path), st.st_mode, st.st_size)).encode())
            if os.path.isfile(p) and not os.path.islink(p):
                with open(p, "rb") as f:
                    h.update(f.read())
    return h.hexdigest()


def run_case(kiln, recipe, expect, verbs, top):
    """Runs one recipe under each verb; returns a list of findings (strings)."""
    findings = []
    ws = os.path.join(top, "ws")
    canary = os.path.join(top, "canary")
    shutil.rmtree(ws, ignore_errors=True)
    os.makedirs(ws)
    with open(os.path.join(ws, "kiln.lua"), "w") as f:
        f.write(recipe.replace(CANARY, canary))
    with open(os.path.join(ws, "cyc_a.lua"), "w") as f:
        f.write('require "cyc_b"\n')
    with open(os.path.join(ws, "cyc_b.lua"), "w") as f:
        f.write('require "cyc_a"\n')
    os.symlink(top, os.path.join(ws, "up"))
    before, listing = tree_digest(canary), sorted(os.listdir(top))
    env = dict(os.environ, NO_COLOR="1", ASAN_OPTIONS="detect_leaks=1:allocator_may_return_null=1")
    for verb in verbs:
        try:
            p = subprocess.run([kiln, *verb, "--load-timeout", "2"], cwd=ws, env=env, capture_output=True, text=True,
                               timeout=60, errors="replace")
            rc, err = p.returncode, p.stderr
        except subprocess.TimeoutExpired:
            findings.append("%s: did not end within 60 s" % " ".join(verb))
            continue
        what = " ".join(verb)
        if rc < 0 or rc >= 128:
            findings.append("%s: exit %d (a signal)" % (what, rc))
        elif "Sanitizer" in err or "runtime error:" in err or "internal error" in err:
            findings.append("%s: %s" % (what, err.strip().splitlines()[0][:200]))
        elif expect == "refuse" and (rc != 2 or "kiln" not in err):
            findings.append("%s: expected a refusal (exit 2), got %d: %s" % (what, rc, err.strip()[:200]))
        elif expect == "refuse" and ".lua:" not in err and "stuck inside" not in err:
            findings.append("%s: the error names no recipe line: %s" % (what, err.strip()[:200]))
        elif expect == "load" and rc != 0:
            findings.append("%s: expected to load, got %d: %s" % (what, rc, err.strip()[:200]))
        elif rc not in (0, 1, 2):
            findings.append("%s: exit %d" % (what, rc))
        if tree_digest(canary) != before:
            findings.append("%s: the canary directory outside the workspace changed" % what)
            shutil.rmtree(canary)
            os.makedirs(canary)
            with open(os.path.join(canary, "keep"), "w") as f:
                f.write("precious\n")
            before = tree_digest(canary)
        if sorted(os.listdir(top)) != listing:
            findings.append("%s: something appeared beside the workspace: %s" % (what, sorted(set(os.listdir(top)) - set(listing))))
    return findings


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kiln", action="append", help="kiln binaries to try (default: build/kiln and build-asan/kiln)")
    ap.add_argument("--emit-seeds", help="write each case's recipe into this directory and stop")
    args = ap.parse_args()
    if args.emit_seeds:
        os.makedirs(args.emit_seeds, exist_ok=True)
        for i, (_, recipe, _) in enumerate(CASES):
            if "a*" in recipe or "__gc = function() while" in recipe:
                continue  # stuck inside one C call: the harness waits for libFuzzer's timeout
            with open(os.path.join(args.emit_seeds, "hostile-%03d.lua" % i), "w") as f:
                f.write(recipe.replace(CANARY, "/tmp/kiln-canary"))
        print("wrote the seeds to %s" % args.emit_seeds)
        return 0
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    kilns = [os.path.abspath(k) for k in args.kiln] if args.kiln else [p for p in (os.path.join(root, "build/kiln"), os.path.join(root, "build-asan/kiln"))
                          if os.path.exists(p)]
    top = tempfile.mkdtemp(prefix="kiln-hostile-")
    os.makedirs(os.path.join(top, "canary"))
    with open(os.path.join(top, "canary", "keep"), "w") as f:
        f.write("precious\n")
    counts, findings, runs = {}, [], 0
    start = time.time()
    try:
        for kiln in kilns:
            for category, recipe, expect in CASES:
                verbs = [("run", "-n"), ("list",), ("status",)]
                if category == "paths":
                    verbs.append(("run",))
                found = run_case(kiln, recipe, expect, verbs, top)
                runs += len(verbs)
                c = counts.setdefault(category, [0, 0])
                c[0] += 1
                c[1] += len(found)
                for f in found:
                    findings.append("%s [%s] %r: %s" % (os.path.relpath(kiln, root), category, recipe[:80], f))
    finally:
        shutil.rmtree(top, ignore_errors=True)
    for f in findings:
        print("FINDING", f)
    print("%d cases (%d per kiln) x %d kiln build(s), %d kiln runs in %.0f s; canary untouched unless a finding says so"
          % (len(CASES) * len(kilns), len(CASES), len(kilns), runs, time.time() - start))
    for category, (n, bad) in counts.items():
        print("  %-10s %4d cases  %d findings" % (category, n, bad))
    print("%d findings" % len(findings))
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
