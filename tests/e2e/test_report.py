"""End-to-end: charts at publication quality (vector heatmap cells, label precision from
the data, whole-number ticks, PDF beside SVG and PNG) and the report (run history with
each run's summary, deltas against --vs with changed cells shaded, the timeline with one
bar per recorded attempt on its lane, the outcome map whose failed cell links its log),
and the waits before attempts. The page as a browser renders it: test_browser.py."""
import os
import re
import shutil
import sqlite3
import subprocess
import zlib

from kilntest import KilnTestCase, lua_str, main

HERE = os.path.dirname(os.path.abspath(__file__))
ZEROSHOT = os.path.join(HERE, "..", "..", "recipes", "zeroshot.lua")
PIL_PYTHON = "/usr/bin/python3"  # Debian's, with python3-pil (scripts/install-deps.sh)

GRID = """
local P = params { shift = 0 }
for c in grid { dataset = {"cifar", "dtd", "pets"}, model = {"a", "b"} } do
  local out = "r/" .. c.dataset .. "-" .. c.model .. ".json"
  local fail = c.dataset == "dtd" and c.model == "b"
  local top1 = #c.dataset / 10 + (c.model == "a" and 0.1 or 0) + (c.dataset == "pets" and P.shift or 0)
  task { name = "eval/" .. c.dataset .. "/" .. c.model, tags = c, gpus = 1, outputs = {out}, metrics = out,
         run = fail and %s or string.format("sleep 0.2; printf '{\\"top1\\": %%.4f, \\"tp\\": 809.403, \\"curve\\": [{\\"epoch\\": 1, \\"loss\\": 20}, {\\"epoch\\": 2, \\"loss\\": 15}, {\\"epoch\\": 3, \\"loss\\": 12}, {\\"epoch\\": 4, \\"loss\\": 11}]}' > {out}", top1) }
end
plot { name = "heat", type = "heatmap", from = "eval/*", x = "model", series = "dataset", y = "top1" }
plot { name = "tp", type = "bars", from = "eval/*/a", x = "dataset", y = "tp" }
plot { name = "acc", type = "bars", from = "eval/*/a", x = "dataset", y = "top1" }
plot { name = "loss", type = "lines", from = "eval/*/a", y = "curve.loss", series = "dataset" }
plot { name = "loss_by_model", type = "lines", from = "eval/*", y = "curve.loss", series = "model" }
""" % lua_str("sleep 0.2; echo 'RuntimeError: CUDA out of memory. Tried to allocate 2 GiB' >&2; exit 1")


def pdf_font_sizes(path):
    """The size in points of every text a PDF draws: each text matrix's scale (cairo writes
    'a b c d e f Tm' after '/f 1 Tf') times the page's transform (its first 'cm')."""
    data = open(path, "rb").read()
    sizes = []
    for m in re.finditer(rb"stream\r?\n(.*?)\r?\nendstream", data, re.S):
        try:
            text = zlib.decompress(m.group(1))
        except zlib.error:
            continue
        cms = re.findall(rb"([-\d.]+) ([-\d.]+) [-\d.]+ [-\d.]+ [-\d.]+ [-\d.]+ cm", text)
        page = (float(cms[0][0]) ** 2 + float(cms[0][1]) ** 2) ** 0.5 if cms else 1.0
        font = 1.0
        for op in re.finditer(rb"/[\w.+-]+ ([\d.]+) Tf|([-\d.]+) ([-\d.]+) [-\d.]+ [-\d.]+ [-\d.]+ [-\d.]+ Tm", text):
            if op.group(1):
                font = float(op.group(1))
            else:
                sizes.append(font * page * (float(op.group(2)) ** 2 + float(op.group(3)) ** 2) ** 0.5)
    return sizes


def svg_texts(svg):
    return [t.strip() for t in re.findall(r"<text[^>]*>(?:<tspan[^>]*>)?([^<]*)", svg)]


class Charts(KilnTestCase):
    def setUp(self):
        super().setUp()
        if not shutil.which("gnuplot"):
            self.skipTest("gnuplot is not installed (scripts/install-deps.sh installs it)")
        self.ws.write("kiln.lua", GRID.replace("fail and", "false and"))
        r = self.ws.kiln("run", "--gpus", "0,1")
        self.assertEqual(r.rc, 0, r)

    def test_heatmap_cells_are_vector_rectangles(self):
        svg = self.ws.read("plots/heat.svg")
        self.assertNotIn("<image", svg, "no bitmap for a viewer to blur")
        cells = [p for p in re.findall(r"<polygon fill = '[^']*' points = '([^']*)'", svg)
                 if (lambda xs: max(xs) - min(xs))([float(pt.split(",")[0]) for pt in p.split()]) > 40]
        self.assertEqual(len(cells), 6, "one filled rectangle per value (3 datasets x 2 models)")
        # the colours span the data: the lightest and darkest cells are far apart in colour
        fills = [tuple(map(int, f.split(","))) for f in
                 re.findall(r"<polygon fill = 'rgb\(([ \d,]+)\)' points = '(?:[^']*)'", svg)]
        shade = [sum(f) for f in fills]
        self.assertGreater(max(shade) - min(shade), 300, "data-scaled colours, not a fixed 0..1 scale: %s" % fills)

    def test_label_precision_follows_the_data(self):
        self.assertIn("809", svg_texts(self.ws.read("plots/tp.svg")), "three significant digits: 809, not 809.403")
        self.assertNotIn("809.403", self.ws.read("plots/tp.svg"))
        acc = svg_texts(self.ws.read("plots/acc.svg"))
        self.assertIn("0.600", acc, "accuracies keep three decimals")
        heat = svg_texts(self.ws.read("plots/heat.svg"))
        self.assertIn("0.400", heat)

    def test_whole_number_steps_get_whole_number_ticks_and_markers(self):
        svg = self.ws.read("plots/loss.svg")
        texts = svg_texts(svg)
        for tick in ("1", "2", "3", "4"):
            self.assertIn(tick, texts)
        for half in ("1.5", "2.5", "3.5"):
            self.assertNotIn(half, texts, "no fractional epoch ticks")
        self.assertIn("<use", svg, "points are marked")

    def test_lines_that_share_a_series_value_are_told_apart_in_the_key(self):
        # series = "model" over a dataset x model grid: three lines are model a's, three b's;
        # each says which dataset it is
        texts = svg_texts(self.ws.read("plots/loss_by_model.svg"))
        key = [t for t in texts if re.match(r"^[ab]\b", t)]
        self.assertEqual(key, ["a, dataset=cifar", "b, dataset=cifar", "a, dataset=dtd", "b, dataset=dtd", "a, dataset=pets",
                               "b, dataset=pets"])
        self.assertIn("cifar", svg_texts(self.ws.read("plots/loss.svg")), "a series that names each line alone")
        self.assertNotIn("cifar,", " ".join(svg_texts(self.ws.read("plots/loss.svg"))))

    def test_text_stays_legible_at_the_reports_width(self):
        # charts are never wider than the report shows them (1300 px), so no text is scaled below its size
        for name in ("heat", "tp", "acc", "loss"):
            svg = self.ws.read("plots/%s.svg" % name)
            width = float(re.search(r'viewBox="0 0 ([\d.]+) ', svg).group(1))
            self.assertLessEqual(width, 1300, name)
            sizes = [float(x) for x in re.findall(r'font-size="([\d.]+)"', svg)]
            self.assertTrue(sizes, name)
            self.assertGreaterEqual(min(sizes), 11, "%s: smallest text %s px" % (name, min(sizes)))

    def test_pdf_beside_svg_and_png(self):
        for name in ("heat", "tp", "acc", "loss"):
            with open(self.ws.path("plots/%s.pdf" % name), "rb") as f:
                self.assertEqual(f.read(5), b"%PDF-")

    def test_every_pdf_goes_into_a_paper_unscaled_with_no_text_under_8_pt(self):
        if not shutil.which("pdfinfo"):
            self.skipTest("poppler-utils is not installed (scripts/install-deps.sh installs it)")
        self.ws.write("kiln.lua", self.ws.read("kiln.lua") + """
plot { name = "sc", type = "scatter", from = "eval/*", x = "tp", y = "top1", series = "model" }
plot { name = "col", type = "bars", from = "eval/*", x = "dataset", series = "model", y = "top1", size = "column" }
plot { name = "wide", type = "heatmap", from = "eval/*", x = "model", series = "dataset", y = "top1", size = "page" }
""")
        r = self.ws.kiln("run")
        self.assertEqual(r.rc, 0, r)
        want = {"heat": 397, "tp": 397, "acc": 397, "loss": 397, "sc": 397, "col": 241, "wide": 468}
        for name, width in want.items():
            path = self.ws.path("plots/%s.pdf" % name)
            info = subprocess.run(["pdfinfo", path], capture_output=True, text=True).stdout
            w, h = map(float, re.search(r"Page size:\s+([\d.]+) x ([\d.]+) pts", info).groups())
            self.assertAlmostEqual(w, width, delta=1, msg="%s: the preset's width, placed at 100%%" % name)
            self.assertGreater(h, 0.5 * w, name)
            sizes = pdf_font_sizes(path)
            self.assertGreaterEqual(len(sizes), 5, "%s: its texts were found" % name)
            self.assertGreaterEqual(min(sizes), 8.0, "%s: smallest text %.2f pt" % (name, min(sizes)))
            words = subprocess.run(["pdftotext", "-bbox", path, "-"], capture_output=True, text=True).stdout
            self.assertIn({"tp": ">tp<", "loss": ">curve.loss<"}.get(name, ">top1<"), words, "%s: its axis" % name)
        self.ws.write("kiln.lua", self.ws.read("kiln.lua").replace('size = "page"', 'size = "poster"'))
        r = self.ws.kiln("run")
        self.assertEqual(r.rc, 2, r)
        self.assertRegex(r.err, r"kiln.lua:\d+: .*size must be column, text or page")


def attempts(ws, run_id):
    db = sqlite3.connect(ws.path(".kiln/state.db"))
    rows = db.execute("SELECT task, attempt, gpus FROM attempts WHERE run_id = ? AND outcome IS NOT 'restored'",
                      (run_id,)).fetchall()
    db.close()
    return rows


class Report(KilnTestCase):
    def setUp(self):
        super().setUp()
        if not shutil.which("gnuplot"):
            self.skipTest("gnuplot is not installed (scripts/install-deps.sh installs it)")

    def two_runs(self):
        self.ws.write("kiln.lua", GRID)
        first = self.ws.kiln("run", "-k", "--gpus", "0,1")
        self.assertEqual(first.rc, 1, first)
        second = self.ws.kiln("run", "-k", "--gpus", "0,1", "shift=0.2")
        self.assertEqual(second.rc, 1, second)

    def test_history_deltas_timeline_and_outcome_map(self):
        self.two_runs()
        r = self.ws.kiln("report", "--open")
        self.assertEqual(r.rc, 0, r)
        self.assertIn("file://" + os.path.realpath(self.ws.path("report.html")), r.out)
        html = self.ws.read("report.html")
        self.assertNotRegex(html, r"(src|href)=\"https?:", "self-contained")
        self.assertNotIn("<title>Gnuplot</title>", html, "each chart's SVG is titled by the chart")
        ticks = [float(t) for t in re.findall(r'<text x="[\d.]+" y="\d+" text-anchor="middle">([\d.]+) s</text>', html)]
        steps = {round(b - a, 3) for a, b in zip(ticks, ticks[1:])}
        self.assertEqual(len(steps), 1, "the timeline's ticks are evenly spaced: %s" % ticks)
        self.assertIn(steps.pop(), (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0), "and round: %s" % ticks)
        kiln_dir = os.path.dirname(os.path.realpath(os.environ["KILN"]))
        self.assertNotIn(kiln_dir, html, "a page people share names no folder of this machine's kiln")
        self.assertRegex(html, r"<code>kiln [^<]*run[^<]*</code>")
        # history: both runs, each linking its summary
        runs = re.findall(r'<tr><td><a href="#run-(\d+)">', html)
        self.assertEqual(runs, ["2", "1"])
        for run in runs:
            self.assertIn('<details id="run-%s">' % run, html)
        # deltas against the run before: pets moved by +0.2 and is shaded, cifar did not move
        self.assertIn("Deltas against run 1", html)
        self.assertRegex(html, r'<td>pets</td><td class="n up">0\.7000 \(\+0\.2000\)</td><td class="n up">0\.6000 \(\+0\.2000\)</td>')
        self.assertRegex(html, r'<td>cifar</td><td class="n">0\.6000 \(\+0\.0000\)</td>')
        # --vs names another run; the same run gives no change
        self.assertEqual(self.ws.kiln("report", "--vs", "2").rc, 0)
        self.assertNotIn('class="n up"', self.ws.read("report.html"))
        # the timeline: one bar per recorded attempt of the last run, on its GPU lane
        self.ws.kiln("report")
        html = self.ws.read("report.html")
        bars = re.findall(r'<rect class="attempt" data-task="([^"]*)" data-attempt="(\d+)" data-lane="([^"]*)"', html)
        recorded = attempts(self.ws, 2)
        self.assertEqual(len(bars), len(recorded))
        self.assertEqual(sorted((t, int(a), "gpu " + g if g else None) for t, a, g in recorded if g),
                         sorted((t, int(a), lane) for t, a, lane in bars if lane.startswith("gpu ")))
        self.assertIn("GPU utilisation:", html)
        # the outcome map: the failed cell names its class and links its log tail
        cell = re.search(r'<td style="background:[^"]*" title="eval/dtd/b"><a href="#(log-\d+)">failed \[oom\]</a>', html)
        self.assertIsNotNone(cell, "the failed cell")
        tail = re.search(r'<details id="%s" class="log">.*?</details>' % cell.group(1), html, re.S).group(0)
        self.assertIn("CUDA out of memory", tail)
        self.assertIn(".kiln/logs/eval/dtd/b@2.log", tail, "run 2's attempt: numbers go on across runs")
        self.assertRegex(html, r'title="eval/cifar/a">(done|up to date)</td>')


class Setup(KilnTestCase):
    def test_setup_environment_check_and_a_tasks_markdown_are_in_the_page(self):
        self.ws.write("kiln.lua", """
local P = params { epochs = 5, lr = 0.1 }
task { name = "env/check", outputs = {"env.json"}, metrics = "env.json",
       run = [[printf '{"torch": "1.13.1", "world_size": 2}' > env.json]] }
for _, m in ipairs({"ddp", "ps"}) do
  task { name = "train/" .. m, tags = {method = m}, outputs = {m .. ".json"}, metrics = m .. ".json",
         run = string.format([[printf '{"train_time": %d}' > %s.json]], m == "ddp" and 10 or 20, m) }
end
plot { name = "t", type = "bars", from = "train/*", x = "method", y = "train_time", baseline = "method=ddp" }
task { name = "perf", deps = {"train/ddp", "train/ps"}, outputs = {"perf.md"},
       run = {"@kiln", "metrics", "train/*", "--rows", "method", "--baseline", "method=ddp", "--format", "md",
              "--out", "perf.md"} }
task { name = "notes", outputs = {"notes.md"},
       run = [[printf '# Notes\n\nA *first* look: `ps` is **slower**.\n\n- one <script>alert(1)</script>\n' > notes.md]] }
""")
        r = self.ws.kiln("run", "epochs=2")
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(self.ws.kiln("report").rc, 0)
        page = self.ws.read("report.html")
        setup = page[page.index('<h2 id="setup">'):page.index('id="charts"')]
        self.assertRegex(setup, r"<th>kiln</th><td>\d+\.\d+\.\d+")
        self.assertIn("<th>param epochs</th><td>2 (the recipe's default: 5)</td>", setup,
                      "the value the run was given, not the recipe's default")
        self.assertIn("<th>param lr</th><td>0.1</td>", setup)
        # the environment check (no tags, no chart) is shown; the charted tasks are not
        self.assertIn("<h3>env/check</h3>", setup)
        self.assertIn("<th>torch</th><td>1.13.1</td>", setup)
        self.assertIn("<th>world_size</th><td>2</td>", setup)
        self.assertNotIn("train/ddp", setup)
        # Markdown a task wrote, embedded: the table with its speedups, escaped text
        docs = page[page.index('<h2 id="documents">'):page.index('<h2 id="runs">')]
        self.assertIn("<th>train_time speedup vs ddp</th>", docs)
        self.assertRegex(docs, r"<tr><td>ps</td><td class=\"n\">20\.00</td><td class=\"n\">0\.50×</td></tr>")
        self.assertIn("<h3>Notes</h3>", docs)
        self.assertIn("A <em>first</em> look: <code>ps</code> is <strong>slower</strong>.", docs)
        self.assertIn("<li>one &lt;script&gt;alert(1)&lt;/script&gt;</li>", docs)
        self.assertNotIn("<script", page, "a task's file cannot put markup into the page")
        self.assertIn('<a href="#documents">documents</a>', page)


    def test_the_kiln_named_is_the_commit_it_was_built_from(self):
        # asked of git at every build, not once when the build folder was configured: the
        # setup a paper cites named the commit of the first configure after later builds
        kiln = os.environ.get("KILN") or os.path.join(HERE, "../../build/kiln")
        src = os.path.join(HERE, "..", "..")
        git = shutil.which("git") and subprocess.run(["git", "-C", src, "describe", "--always", "--dirty"],
                                                      capture_output=True, text=True)
        if not git or git.returncode != 0:
            self.skipTest("the source is not a git checkout")
        said = subprocess.run([kiln, "--version"], capture_output=True, text=True).stdout.strip()
        self.assertRegex(said, r"^kiln \d+\.\d+\.\d+\+" + re.escape(git.stdout.strip()) + "$")


class Seeds(KilnTestCase):
    def test_a_cell_over_seeds_counts_the_seeds_that_failed(self):
        self.ws.write("kiln.lua", """
for _, d in ipairs({"cifar", "dtd"}) do
  for _, m in ipairs({"a", "b"}) do
    for seed = 1, 2 do
      local fail = d == "dtd" and m == "b" and seed == 2
      task { name = "eval/" .. d .. "/" .. m .. "/" .. seed, tags = { dataset = d, model = m, seed = tostring(seed) },
             run = fail and "exit 1" or "true" }
    end
  end
end
""")
        self.assertEqual(self.ws.kiln("run", "-k").rc, 1)
        self.assertEqual(self.ws.kiln("report").rc, 0)
        html = self.ws.read("report.html")
        self.assertRegex(html, r'title="eval/dtd/b/2"><a href="#log-\d+">failed \[error\]</a> <small>1 of 2</small>')
        self.assertRegex(html, r'title="eval/cifar/a/\d">done <small>&times;2</small>')


class Waits(KilnTestCase):
    def test_the_wait_for_a_gpu_is_drawn_before_the_attempt(self):
        self.ws.write("gpus.csv", "0, 80000, 0\n")
        self.ws.write("kiln.lua", 'task { name = "a", gpus = 1, run = "sleep 1" }\n'
                      'task { name = "b", gpus = 1, run = "sleep 0.3" }\n')
        r = self.ws.kiln("run", env={"KILN_GPU_INFO": self.ws.path("gpus.csv")})
        self.assertEqual(r.rc, 0, r)
        self.assertRegex(r.out, r"kiln: 1 task waited for GPUs, \S+ in all, the longest \S+\n")
        db = sqlite3.connect(self.ws.path(".kiln/state.db"))
        waited = dict(db.execute("SELECT task, waited FROM attempts").fetchall())
        db.close()
        self.assertGreater(waited["b"] or 0, 0.5, "the second waited for the one device")
        self.assertEqual(self.ws.kiln("report").rc, 0)
        html = self.ws.read("report.html")
        waits = re.findall(r'<rect class="wait" data-task="([^"]*)" x="([\d.]+)" y="\d+" width="([\d.]+)"', html)
        self.assertEqual([w[0] for w in waits], ["b"])
        start = float(re.search(r'<rect class="attempt" data-task="b" data-attempt="1" data-lane="gpu 0" x="([\d.]+)"',
                                html).group(1))
        self.assertAlmostEqual(float(waits[0][1]) + float(waits[0][2]), start, delta=1.0, msg="it ends where b starts")


if __name__ == "__main__":
    main()
