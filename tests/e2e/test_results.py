"""End-to-end: metrics ingestion (good and malformed), kiln metrics tables, plot tasks
rendered by the real gnuplot, kiln plot without re-running, the HTML report, and the
zero-shot recipe on a small param set."""
import json
import os
import re
import shutil

from kilntest import KilnTestCase, main

HERE = os.path.dirname(os.path.abspath(__file__))
ZEROSHOT = os.path.join(HERE, "..", "..", "recipes", "zeroshot.lua")

GRID = """
local P = params { scale = 1 }
for c in grid { dataset = {"d1", "d2", "d3"}, model = {"m1", "m2"} } do
  local acc = ({d1 = 0.5, d2 = 0.7, d3 = 0.9})[c.dataset] * ({m1 = 0.8, m2 = 1.0})[c.model] * P.scale
  task { name = "eval/" .. c.dataset .. "/" .. c.model, outputs = {"res/" .. c.dataset .. "-" .. c.model .. ".json"},
         run = string.format("printf '{\\"top1\\": %%s, \\"detail\\": {\\"n\\": 10}, \\"loss\\": [3, 2, 1.5], \\"curve\\": [{\\"epoch\\": 1, \\"acc\\": 0.2}, {\\"epoch\\": 2, \\"acc\\": 0.4}], \\"note\\": \\"ok\\"}' %.4f > {out}", acc),
         metrics = "{out}", tags = c }
end
plot { name = "acc", type = "bars", from = "eval/*", x = "dataset", series = "model", y = "top1", title = "TITLE", best = "max" }
plot { name = "heat", type = "heatmap", from = "eval/*", x = "model", series = "dataset", y = "top1" }
plot { name = "loss", type = "lines", from = "eval/*", y = "loss", series = "model" }
"""


class Results(KilnTestCase):
    def setUp(self):
        super().setUp()
        if not shutil.which("gnuplot"):
            self.skipTest("gnuplot is not installed (scripts/install-deps.sh installs it)")

    def grid(self, title="Top-1 by dataset"):
        self.ws.write("kiln.lua", GRID.replace("TITLE", title))

    def test_metrics_ingested_flattened_and_tabled(self):
        self.grid()
        r = self.ws.kiln("run")
        self.assertEqual(r.rc, 0, r)
        t = self.ws.kiln("metrics", "--rows", "dataset", "--cols", "model", "--value", "top1", "--format", "tsv")
        self.assertEqual(t.rc, 0, t)
        rows = [l.split("\t") for l in t.out.strip().splitlines()]
        self.assertEqual(rows[0], ["dataset", "m1", "m2"])
        self.assertEqual(rows[3], ["d3", "0.7200", "0.9000"])
        md = self.ws.kiln("metrics", "--rows", "dataset", "--cols", "model", "--value", "top1", "--format", "md", "--mean")
        self.assertIn("| mean", md.out)
        self.assertRegex(md.out, r"\| d1\s+\|\s+0\.4000 \|\s+0\.5000 \|")
        # a name or glob that selects no task with metrics says so, and which have them
        none = self.ws.kiln("metrics", "eval/d9/*")
        self.assertEqual(none.rc, 2, none)
        self.assertIn("'eval/d9/*' names no task with recorded metrics (those with them: eval/d1/m1, ", none.err)
        part = self.ws.kiln("metrics", "eval/d1/m1", "top1")  # a metric where a task goes: said, the rest printed
        self.assertEqual(part.rc, 0, part)
        self.assertIn("'top1' names no task with recorded metrics", part.err)
        self.assertIn("a metric's name goes after --value", part.err)
        self.assertIn("eval/d1/m1", part.out)
        js = json.loads(self.ws.kiln("metrics", "eval/d1/*", "--format", "json").out)
        self.assertEqual(len(js), 2)
        self.assertEqual(js[0]["detail.n"], 10)
        self.assertEqual(js[0]["note"], "ok")
        self.assertEqual(js[0]["model"], "m1")
        db = self.ws.path(".kiln/state.db")
        import sqlite3
        con = sqlite3.connect(db)
        series = con.execute("SELECT step, value FROM series WHERE task = 'eval/d1/m1' AND key = 'curve.acc' ORDER BY step").fetchall()
        self.assertEqual(series, [(1.0, 0.2), (2.0, 0.4)])
        loss = con.execute("SELECT count(*) FROM series WHERE task = 'eval/d1/m1' AND key = 'loss'").fetchone()[0]
        self.assertEqual(loss, 3)
        # history: a second run with other values keeps the first; --vs shows deltas
        r = self.ws.kiln("run", "scale=0.5")
        self.assertEqual(len(r.ran & {"eval/d1/m1", "eval/d3/m2"}), 2, r)
        vs = self.ws.kiln("metrics", "--rows", "dataset", "--cols", "model", "--value", "top1", "--vs", "1")
        self.assertIn("0.4500 (-0.4500)", vs.out)
        runs = con.execute("SELECT count(DISTINCT run_id) FROM metrics WHERE task = 'eval/d3/m2'").fetchone()[0]
        self.assertEqual(runs, 2)

    def test_best_values_bold_and_a_latex_table_for_a_paper(self):
        self.ws.write("kiln.lua", """
local runs = { {"ddp", 1, 91.5, 0.30}, {"ddp", 2, 92.5, 0.28}, {"all_reduce", 1, 93.0, 0.25}, {"all_reduce", 2, 93.0, 0.27},
               {"ps", 1, -1.5, 0.9} }
for _, r in ipairs(runs) do
  local out = "r/" .. r[1] .. r[2] .. ".json"
  task { name = "train/" .. r[1] .. "/" .. r[2], outputs = {out}, metrics = out, tags = { method = r[1], seed = r[2] },
         run = string.format("mkdir -p r; printf '{\\"acc_pct\\": %s, \\"loss\\": %s}' > {out}", r[3], r[4]) }
end
""")
        r = self.ws.kiln("run")
        self.assertEqual(r.rc, 0, r)
        # grouped by method: the best of each column, each metric its own way round
        t = self.ws.kiln("metrics", "--rows", "method", "--best", "acc_pct=max,loss=min")
        self.assertEqual(t.rc, 0, t)
        rows = {line.split()[0]: line for line in t.out.splitlines()[1:]}
        self.assertIn("**93.00 ± 0.00**", rows["all_reduce"])
        self.assertIn("**0.2600 ± 0.0141**", rows["all_reduce"])
        self.assertNotIn("**", rows["ddp"] + rows["ps"])
        # the same as LaTeX, its format taken from --out's name: escaped, ± and × in math
        # mode, a minus sign, booktabs rules, the best \textbf
        t = self.ws.kiln("metrics", "--rows", "method", "--best", "acc_pct=max,loss=min", "--baseline", "method=ddp",
                         "--out", "table.tex")
        self.assertEqual(t.rc, 0, t)
        tex = self.ws.read("table.tex").splitlines()
        self.assertEqual(tex[1:4], ["\\begin{tabular}{lrrrr}", "\\toprule",
                                    "method & acc\\_pct (\\%) & acc\\_pct vs ddp & loss & loss vs ddp \\\\"])
        self.assertEqual(tex[4], "\\midrule")
        body = {line.split(" & ")[0]: line for line in tex[5:-2]}
        self.assertEqual(body["all\\_reduce"], "all\\_reduce & \\textbf{93.00 $\\pm$ 0.00} & 1.01$\\times$ & "
                         "\\textbf{0.2600 $\\pm$ 0.0141} & 0.90$\\times$ \\\\")
        self.assertEqual(body["ps"], "ps & $-$1.50 & $-$0.02$\\times$ & 0.9000 & 3.10$\\times$ \\\\")
        self.assertEqual(tex[-2:], ["\\bottomrule", "\\end{tabular}"])
        # a pivot: the best of each row, the row of means under a rule of its own
        t = self.ws.kiln("metrics", "--rows", "seed", "--cols", "method", "--value", "loss", "--best", "min", "--mean",
                         "--format", "latex")
        lines = t.out.splitlines()
        self.assertEqual(lines[5:], ["1 & 0.3000 & \\textbf{0.2500} & 0.9000 \\\\", "2 & 0.2800 & \\textbf{0.2700} &  \\\\",
                                     "\\midrule", "mean & 0.2900 & \\textbf{0.2600} & 0.9000 \\\\", "\\bottomrule",
                                     "\\end{tabular}"], t.out)
        # as JSON: each row names its best columns
        t = self.ws.kiln("metrics", "--rows", "seed", "--cols", "method", "--value", "loss", "--best", "min",
                         "--format", "json")
        rows = json.loads(t.out)
        self.assertEqual([r.get("best") for r in rows], [["all_reduce"], ["all_reduce"]], t.out)
        for bad, said in ((("--best", "most"), "--best takes max, min or METRIC=max|min"),
                          (("--best", "top5=max"), "no column of this table holds the metric top5"),
                          (("--format", "tex"), "--format takes text, md, tsv, json or latex")):
            r = self.ws.kiln("metrics", "--rows", "method", *bad)
            self.assertEqual(r.rc, 2, r)
            self.assertIn(said, r.err)

    def test_a_tag_named_as_a_metric_gets_a_header_of_its_own(self):
        self.ws.write("kiln.lua", 'for _, m in ipairs({"a", "b"}) do task { name = "e/" .. m, tags = { model = m, acc = "x" }, '
                      'outputs = {"r/" .. m .. ".json"}, metrics = "{out}", '
                      'run = "mkdir -p r; echo \'{\\"acc\\": 0.5}\' > {out}" } end\n')
        self.assertEqual(self.ws.kiln("run").rc, 0)
        r = self.ws.kiln("metrics")
        self.assertEqual(r.out.splitlines()[0].split(), ["task", "acc", "(tag)", "model", "acc"], r.out)

    def test_under_keep_going_a_chart_draws_what_was_made_and_leaves_a_failed_task_out(self):
        self.ws.write("kiln.lua", """
local P = params { fail = "" }
for _, d in ipairs({"x", "y"}) do for i, m in ipairs({"a", "b"}) do
  task { name = "e/" .. d .. "/" .. m, tags = { dataset = d, model = m }, outputs = {"r/" .. d .. m .. ".json"},
         metrics = "{out}", run = P.fail == d .. m and "exit 1" or "mkdir -p r; echo '{\\"acc\\": 0." .. i .. "}' > {out}" }
end end
plot { name = "heat", type = "heatmap", from = "e/*", x = "model", series = "dataset", y = "acc" }
""")
        self.assertEqual(self.ws.kiln("run").rc, 0)
        r = self.ws.kiln("run", "-k", "fail=yb")
        self.assertEqual(r.rc, 1, r)
        self.assertRegex(r.out, r"ok +\[\d+/\d+\] plot/heat", "the chart over a failed task still ran under -k")
        log = self.ws.read(".kiln/logs/plot/heat@2.log")
        self.assertIn("e/y/b is left out (a gap): its latest attempt failed", log)
        cells = [p for p in re.findall(r"<polygon fill = '[^']*' points = '([^']*)'", self.ws.read("plots/heat.svg"))
                 if (lambda xs: max(xs) - min(xs))([float(pt.split(",")[0]) for pt in p.split()]) > 40]
        self.assertEqual(len(cells), 3, "three values and a gap, not the failed task's old value")
        m = self.ws.kiln("metrics")
        self.assertRegex(m.out, r"e/y/b +y +b +0\.2000 \(stale\)")
        self.assertNotIn("e/x/b        x      b  0.2000 (stale)", m.out)
        best = self.ws.kiln("metrics", "--best", "max").out
        self.assertRegex(best, r"e/x/b +x +b +\*\*0\.2000\*\*", "the best value that is not stale")
        self.assertRegex(best, r"e/y/b +y +b +0\.2000 \(stale\)", "a failed task's old value is never the best")
        # without -k the chart is not drawn over a failure, as before
        r = self.ws.kiln("run", "fail=xa")
        self.assertIn("not run", r.out)

    def test_metrics_come_in_recipe_order(self):
        # declared zeta, alpha, mid: tables keep that order, not the names' order
        self.ws.write("kiln.lua", "\n".join(
            'task { name = "%s", outputs = {"%s.json"}, run = "echo \'{\\"acc\\": %d}\' > {out}", '
            'metrics = "{out}", tags = {dataset = "%s", model = "m"} }' % (n, n, i, n)
            for i, n in enumerate(["zeta", "alpha", "mid"])) + "\n")
        self.assertEqual(self.ws.kiln("run").rc, 0)
        listed = self.ws.kiln("metrics", "--format", "tsv").out.strip().splitlines()[1:]
        self.assertEqual([l.split("\t")[0] for l in listed], ["zeta", "alpha", "mid"])
        t = self.ws.kiln("metrics", "--rows", "dataset", "--cols", "model", "--value", "acc", "--format", "tsv")
        self.assertEqual([l.split("\t")[0] for l in t.out.strip().splitlines()[1:]], ["zeta", "alpha", "mid"])

    def test_malformed_metrics_fail_only_that_task(self):
        self.ws.write("kiln.lua", """
task { name = "bad", outputs = {"b.json"}, run = "printf '{\\"top1\\": 0.5,' > {out}", metrics = "{out}" }
task { name = "notobj", outputs = {"n.json"}, run = "echo '[1, 2]' > {out}", metrics = "{out}" }
task { name = "good", outputs = {"g.json"}, run = "echo '{\\"top1\\": 1}' > {out}", metrics = "{out}" }
""")
        r = self.ws.kiln("run", "-k")
        self.assertEqual(r.rc, 1, r)
        self.assertIn("metrics file b.json is not valid JSON: line 1, column 14", r.out)
        self.assertIn("metrics file n.json must hold a JSON object", r.out)
        self.assertEqual(r.ran, {"good"})
        self.assertIn("2 task", self.ws.kiln("status").out)  # neither bad task was recorded as done

    def test_plot_tasks_render_svg_and_png(self):
        self.grid()
        r = self.ws.kiln("run")
        self.assertEqual(r.rc, 0, r)
        self.assertTrue({"plot/acc", "plot/heat", "plot/loss"} <= r.ran)
        for name in ("acc", "heat", "loss"):
            for ext in ("svg", "png"):
                self.assertGreater(os.path.getsize(self.ws.path("plots/%s.%s" % (name, ext))), 1000)
        svg = self.ws.read("plots/acc.svg")
        for needle in ("m1", "m2", "d1", "d3", "Top-1 by dataset"):
            self.assertIn(needle, svg)
        self.assertEqual(open(self.ws.path("plots/acc.png"), "rb").read(8), b"\x89PNG\r\n\x1a\n")
        # a chart with a table writes it for a paper too: the best of each row bold (best = "max")
        tex = self.ws.read("plots/acc.tex").splitlines()
        self.assertEqual(tex[3:], ["dataset & m1 & m2 \\\\", "\\midrule", "d1 & 0.4000 & \\textbf{0.5000} \\\\",
                                   "d2 & 0.5600 & \\textbf{0.7000} \\\\", "d3 & 0.7200 & \\textbf{0.9000} \\\\", "\\midrule",
                                   "mean & 0.5600 & \\textbf{0.7000} \\\\", "\\bottomrule", "\\end{tabular}"])
        self.assertIn("d3 & 0.7200 & 0.9000 \\\\", self.ws.read("plots/heat.tex"))
        self.assertFalse(self.ws.exists("plots/loss.tex"), "a lines chart has no table")
        # plots are cached like tasks: nothing to do on a second run
        self.assertEqual(self.ws.kiln("run").ran, set())

    def test_log_x_axis_for_message_sizes(self):
        self.ws.write("kiln.lua", """
task { name = "comm/a", outputs = {"a.json"}, metrics = "a.json", tags = { pattern = "a" },
       run = "printf '{\\"sizes\\": [{\\"step\\": 1024, \\"bw\\": 1}, {\\"step\\": 1048576, \\"bw\\": 5}, {\\"step\\": 16777216, \\"bw\\": 9}]}' > a.json" }
plot { name = "bw", type = "lines", from = "comm/*", y = "sizes.bw", series = "pattern", xscale = "log2" }
""")
        r = self.ws.kiln("run")
        self.assertEqual(r.rc, 0, r)
        svg = self.ws.read("plots/bw.svg")
        for tick in ("1ki", "1Mi", "16Mi"):  # binary prefixes on a base-2 axis, not 1.04858e+06
            self.assertIn(">%s<" % tick, svg)
        self.ws.write("kiln.lua", 'task { name = "t", run = "true" }\n'
                      'plot { name = "bw", type = "bars", from = "t", x = "k", y = "v", xscale = "log" }\n')
        bad = self.ws.kiln("run")
        self.assertNotEqual(bad.rc, 0)
        self.assertIn("kiln.lua:2:", bad.err)
        self.assertIn("xscale applies to lines and scatter plots", bad.err)
        self.ws.write("kiln.lua", 'task { name = "t", run = "true" }\n'
                      'plot { name = "bw", type = "lines", from = "t", y = "v", xscale = "ln" }\n')
        self.assertIn("xscale must be linear, log or log2", self.ws.kiln("run").err)
        self.ws.write("kiln.lua", 'task { name = "t", run = "true" }\n'
                      'plot { name = "bw", type = "lines", from = "t", y = "v", best = "max" }\n')
        self.assertIn("kiln.lua:2: plot{}: best applies to bars and heatmap plots (their tables), not lines",
                      self.ws.kiln("run").err)

    def test_kiln_plot_rerenders_without_running_tasks(self):
        self.grid()
        self.assertEqual(self.ws.kiln("run").rc, 0)
        self.grid(title="A new title")
        p = self.ws.kiln("plot", "acc")
        self.assertEqual(p.rc, 0, p)
        self.assertIn("plot/acc: plots/acc.svg, .png, .pdf, .tex", p.out)
        self.assertIn("A new title", self.ws.read("plots/acc.svg"))
        typo = self.ws.kiln("plot", "accc")
        self.assertEqual(typo.rc, 2, typo)
        self.assertIn("no plot{} named accc in the recipe (its plots: acc, heat, loss)", typo.err)
        # the evals did not run: their logs still hold one attempt each, from the first run
        self.assertFalse(self.ws.exists(".kiln/logs/eval/d1/m1@2.log"))
        r = self.ws.kiln("run")  # only the restyled plot's key changed
        self.assertEqual(r.ran, {"plot/acc"}, r)

    def test_report_holds_tables_and_charts(self):
        self.grid()
        self.assertEqual(self.ws.kiln("run").rc, 0)
        r = self.ws.kiln("report", "--out", "r.html")
        self.assertEqual(r.rc, 0, r)
        html = self.ws.read("r.html")
        self.assertEqual(html.count("<div class=\"chart\"><svg"), 3)
        self.assertIn("<table", html)
        self.assertRegex(html, r"<td>d3</td><td class=\"n\">0.7200</td><td class=\"n\"><b>0.9000</b></td>")
        self.assertIn('>tex</a>', html)
        self.assertIn("Last run", html)
        self.assertNotRegex(html, r"(src|href)=\"https?:")  # self-contained

    def test_repeats_baselines_and_error_bars(self):
        # three seeds per method: mean ± std, ratios to the baseline row, error bars
        self.ws.write("kiln.lua", """
local speed = { ddp = 100, ar = 90, ps = 50 }
for _, m in ipairs({"ddp", "ar", "ps"}) do
  for seed = 1, 3 do
    local out = "r/" .. m .. seed .. ".json"
    task { name = "train/" .. m .. "/" .. seed, outputs = {out}, metrics = out, tags = { method = m, seed = seed },
           run = string.format("printf '{\\"tp\\": %d, \\"time\\": %d}' > {out}", speed[m] + seed, 1000 // speed[m]) }
  end
end
plot { name = "tp", type = "bars", from = "train/*", x = "method", y = "tp", baseline = "method=ddp" }
plot { name = "one", type = "bars", from = "train/*/1", x = "method", y = "tp" }
""")
        r = self.ws.kiln("run")
        self.assertEqual(r.rc, 0, r)
        m = self.ws.kiln("metrics", "--rows", "method", "--baseline", "method=ddp", "--format", "tsv")
        self.assertEqual(m.rc, 0, m)
        rows = [line.split("\t") for line in m.out.splitlines()]
        # a time's ratio is a speedup (baseline / value); "tp" says nothing of its kind: a ratio
        self.assertEqual(rows[0], ["method", "time", "time speedup vs ddp", "tp", "tp vs ddp"], "metrics in key order")
        table = {row[0]: row[1:] for row in rows[1:]}
        # four significant digits of each column's largest value: 20 -> 2 decimals, 102 -> 1
        self.assertEqual(table["ddp"], ["10.00 ± 0.00", "1.00×", "102.0 ± 1.0", "1.00×"])
        self.assertEqual(table["ar"][2:], ["92.0 ± 1.0", "%.2f×" % (92 / 102)])
        self.assertEqual(table["ps"][:2], ["20.00 ± 0.00", "0.50×"], "twice as long: half the speed")
        # one row per task: the baseline is the mean of the tasks with that tag value
        listed = self.ws.kiln("metrics", "train/ps/1", "train/ddp/*", "--value", "tp", "--baseline", "method=ddp",
                              "--format", "tsv").out.splitlines()
        self.assertEqual(listed[0].split("\t")[-2:], ["tp", "tp vs ddp"])
        ps1 = [line.split("\t") for line in listed if line.startswith("train/ps/1")][0]
        self.assertEqual(ps1[-1], "%.2f×" % (51 / 102))
        one = self.ws.kiln("metrics", "--rows", "method", "--value", "tp,time", "--format", "tsv").out.splitlines()
        self.assertEqual(one[0].split("\t"), ["method", "tp", "time"])
        bad = self.ws.kiln("metrics", "--rows", "method", "--baseline", "seed=1")
        self.assertEqual(bad.rc, 2, bad)
        self.assertIn("its tag is the row tag", bad.err)
        # the error bars are drawn: one stroke and two caps per bar (3 moves each), only for repeats
        def error_bar_paths(svg):
            return [d for d in re.findall(r"<path[^>]* d='([^']*)'", svg) if d.count("M") == 9]
        self.assertEqual(len(error_bar_paths(self.ws.read("plots/tp.svg"))), 1)
        self.assertEqual(error_bar_paths(self.ws.read("plots/one.svg")), [])
        self.assertEqual(self.ws.kiln("report").rc, 0)
        html = self.ws.read("report.html")
        self.assertIn("<th>tp vs ddp</th>", html)
        self.assertIn("102.0 ± 1.0", html)

    def test_plot_without_gnuplot_fails_with_hint(self):
        self.grid()
        bindir = self.ws.path("bin")
        os.makedirs(bindir)
        for tool in ("sh", "printf"):
            path = shutil.which(tool)
            if path:
                os.symlink(path, os.path.join(bindir, tool))
        r = self.ws.kiln("run", "-k", env={"PATH": bindir})
        self.assertEqual(r.rc, 1, r)
        self.assertEqual(len(r.ran), 6, "the evals still run")
        self.assertIn("apt-get install gnuplot-nox", self.ws.read(".kiln/logs/plot/acc@1.log"))


class ZeroShotRecipe(KilnTestCase):
    ARGS = ["datasets=cifar-10,pets,dtd", "models=team,large", "samples=120", "dim=32"]

    def setUp(self):
        super().setUp()
        for tool in ("gnuplot", "rsync"):
            if not shutil.which(tool):
                self.skipTest("%s is not installed (scripts/install-deps.sh installs it)" % tool)

    def run_recipe(self, *extra):
        return self.ws.kiln("run", ZEROSHOT, *self.ARGS, *extra)

    def test_end_to_end_then_noop_then_one_model(self):
        r = self.run_recipe()
        self.assertEqual(r.rc, 0, r)
        evals = {"eval/%s/%s" % (d, m) for d in ("cifar-10", "pets", "dtd") for m in ("team", "large")}
        self.assertTrue(evals <= r.ran)
        table = self.ws.read("results/top1_table.md")
        self.assertIn("| mean", table)
        self.assertRegex(table, r"\| pets\s+\|\s+0\.\d{4} \|\s+0\.\d{4} \|")
        res = json.loads(self.ws.read("results/pets/team.json"))
        self.assertEqual(res["classes"], 37)
        self.assertGreater(res["top1"], 1 / 37)
        for name in ("top1_by_dataset", "top1_heatmap", "mean_top1"):
            self.assertGreater(os.path.getsize(self.ws.path("plots/%s.png" % name)), 1000)
        again = self.run_recipe()
        self.assertEqual(again.ran | again.restored, set(), again)
        changed = self.run_recipe("q_team=0.8")
        ran_evals = {t for t in changed.ran if t.startswith("eval/")}
        self.assertEqual(ran_evals, {"eval/%s/team" % d for d in ("cifar-10", "pets", "dtd")}, changed)
        self.assertIn("analysis/top1-table", changed.ran)
        self.assertTrue({"plot/top1_by_dataset", "plot/top1_heatmap", "plot/mean_top1"} <= changed.ran)
        report = self.ws.kiln("report", ZEROSHOT, *self.ARGS)
        self.assertEqual(report.rc, 0, report)
        self.assertIn("Zero-shot top-1 accuracy", self.ws.read("report.html"))


if __name__ == "__main__":
    main()
