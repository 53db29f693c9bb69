"""End-to-end: the report as headless Chromium (Debian's chromium) renders it — the zero-shot
demo's and a run with failures — at desktop and phone widths: the rendered page holds every
chart, and its screenshot has ink all the way down. Skips (with the reason) where Chromium
cannot start."""
import html
import json
import re
import shutil
import subprocess
import tempfile

from kilntest import KilnTestCase, main
from test_report import GRID, PIL_PYTHON, ZEROSHOT


def chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    return None


# Appended to a copy of the page (the report itself has no script): per svg, the width its
# viewBox asks for, the width it is drawn at, and its smallest text as drawn, in CSS px.
MEASURE = """<script>
var out = [];
document.querySelectorAll("svg").forEach(function (svg) {
  var box = svg.viewBox.baseVal, drawn = svg.getBoundingClientRect().width;
  var scale = box && box.width ? drawn / box.width : 1, least = 1e9;
  svg.querySelectorAll("text").forEach(function (t) {
    if (t.textContent.trim()) least = Math.min(least, parseFloat(getComputedStyle(t).fontSize) * scale);
  });
  out.push({kind: svg.closest(".chart") ? "chart" : (svg.getAttribute("class") || "svg"),
            title: (svg.querySelector("title") || {}).textContent || "", asks: box ? box.width : 0,
            drawn: drawn, least: least});
});
document.body.setAttribute("data-measured", JSON.stringify(out));
</script>"""


class Browser(KilnTestCase):
    def setUp(self):
        super().setUp()
        self.browser = chromium()
        if not self.browser:
            self.skipTest("Chromium is not installed (Debian: apt-get install chromium)")
        if not shutil.which("gnuplot"):
            self.skipTest("gnuplot is not installed")
        self.profile = tempfile.mkdtemp(prefix="kiln-chromium-")

    def tearDown(self):
        shutil.rmtree(self.profile, ignore_errors=True)
        super().tearDown()

    def render(self, page, width, height, shot):
        """The page as rendered at width x height: its DOM after scripts ran, and its screenshot
        into shot (one launch does both)."""
        args = [self.browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--user-data-dir=" + self.profile, "--hide-scrollbars", "--window-size=%d,%d" % (width, height),
                "--dump-dom", "--screenshot=" + shot, "file://" + page]
        dom = subprocess.run(args, capture_output=True, text=True, timeout=120)
        if dom.returncode != 0 or "<body" not in dom.stdout:
            self.skipTest("Chromium cannot start here: " + (dom.stderr.strip().splitlines() or ["?"])[-1])
        return dom.stdout

    def content_height(self, shot):
        """The last screenshot row that is not blank, and the number of 100-px bands with ink."""
        code = ("import sys; from PIL import Image; im = Image.open(sys.argv[1]).convert('L'); w, h = im.size; "
                "px = im.load(); rows = [y for y in range(h) if any(px[x, y] < 240 for x in range(0, w, 3))]; "
                "print(max(rows) if rows else 0, len({y // 100 for y in rows}), w)")
        p = subprocess.run([PIL_PYTHON, "-c", code, shot], capture_output=True, text=True, timeout=120)
        if p.returncode != 0:
            self.skipTest("Pillow (python3-pil) is needed to read the screenshot: " + p.stderr.strip()[-200:])
        return [int(x) for x in p.stdout.split()]

    def measured(self, page, width, height, shot):
        """render() of a copy of page that measures its own svgs (the script changes nothing
        drawn): the DOM, and per svg what MEASURE found."""
        copy = self.ws.path("measure.html")
        with open(page) as f, open(copy, "w") as g:
            g.write(f.read().replace("</body>", MEASURE + "</body>"))
        dom = self.render(copy, width, height, shot)
        found = re.search(r'data-measured="([^"]*)"', dom)
        self.assertTrue(found, "the measuring script ran")
        return dom, json.loads(html.unescape(found.group(1)))

    def check_sizes(self, measures, width, charts, fits=True):
        # every chart at its own size on a desktop; on a phone shrunk while its smallest text
        # stays 11 px (a chart a little wider than the page fits it) and scrolled sideways
        # beyond that: no chart's text is drawn smaller than 11 px
        svgs = [m for m in measures if m["kind"] == "chart"]
        self.assertEqual(len(svgs), charts)
        for m in svgs:
            if fits:
                self.assertAlmostEqual(m["drawn"], m["asks"], delta=1, msg="%s at %d px: %s" % (m["title"], width, m))
            else:
                self.assertLessEqual(m["drawn"], m["asks"] + 1, "%s at %d px: %s" % (m["title"], width, m))
            self.assertGreaterEqual(m["least"], 11, "%s at %d px: %s" % (m["title"], width, m))

    def check_page(self, charts):
        page = self.ws.path("report.html")
        dom, measures = self.measured(page, 1400, 6000, self.ws.path("desk.png"))
        self.assertEqual(dom.count("<svg"), charts + 1, "every chart (and the timeline) is in the rendered page")
        self.assertNotIn("chart not rendered yet", dom)
        bottom, bands, width = self.content_height(self.ws.path("desk.png"))
        self.assertEqual(width, 1400)
        self.assertGreater(bottom, 1500, "the page renders its charts, tables and history")
        self.assertLess(bottom, 5990, "and ends inside a 6000-px window")
        self.assertGreater(bands, 12, "ink all the way down, not a blank page")
        self.check_sizes(measures, 1400, charts)
        _, measures = self.measured(page, 390, 8000, self.ws.path("phone.png"))
        phone_bottom, phone_bands, phone_width = self.content_height(self.ws.path("phone.png"))
        self.assertEqual(phone_width, 390)
        self.assertGreater(phone_bands, 8, "readable on a phone: it reflows instead of going blank")
        self.check_sizes(measures, 390, charts, fits=False)

    def test_zeroshot_report_renders(self):
        r = self.ws.kiln("run", ZEROSHOT, "datasets=cifar-10,dtd,pets,mnist", "models=team,large", timeout=300)
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(self.ws.kiln("report", ZEROSHOT).rc, 0)
        self.check_page(3)

    def test_report_of_a_run_with_failures_renders(self):
        # the heatmap needs the failed cell; the other four charts draw what ran
        self.ws.write("kiln.lua", GRID.replace('plot { name = "heat"', '-- plot { name = "heat"'))
        self.assertEqual(self.ws.kiln("run", "-k", "--gpus", "0,1").rc, 1)
        self.assertEqual(self.ws.kiln("report").rc, 0)
        self.assertIn("failed [oom]", self.ws.read("report.html"))
        self.check_page(4)


if __name__ == "__main__":
    main()
