"""End-to-end with real PyTorch (gloo, CPU): the PyTorch recipes run from start to end —
train_compare.lua (DDP vs all-reduce vs parameter server: five charts, the performance
report with ratios to DDP, the kiln-kernels comm measurements and their two charts, a second
run that executes nothing), imagenet.lua (one process and torchrun DDP, a loadable
checkpoint, kiln-kernels conv per pass and its charts, a DDP run stopped by Ctrl-C that
continues after the last epoch it finished), clip_grid.lua (the encoder grid: logs and
checkpoints named after each config, the recall table) and caption.lua (generated images
captioned by a sharded map{}) and third_party.lua (an unmodified trainer with its own rank
launcher, per-config folders, a best model as an optional output, charts from its log lines). Skipped (with the reason) where Debian's python3-torch /
python3-torchvision / python3-pil are not installed."""
import json
import os
import re
import signal
import subprocess
import unittest

from kilntest import KilnTestCase, main, wait_for
from test_torchrun import PYTHON, SKIP

HERE = os.path.dirname(os.path.abspath(__file__))
RECIPES = os.path.normpath(os.path.join(HERE, "..", "..", "recipes"))


@unittest.skipIf(SKIP, SKIP)
class Recipes(KilnTestCase):
    def test_train_compare_end_to_end(self):
        recipe = os.path.join(RECIPES, "train_compare.lua")
        r = self.ws.kiln("run", recipe, "epochs=2", "samples=4096", timeout=600)
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(len(r.ran), 15, r)
        env = json.loads(self.ws.read("results/env.json"))
        self.assertTrue(env["gloo"])
        for method in ("ddp", "allreduce", "ps"):
            res = json.loads(self.ws.read("results/%s-s1.json" % method))
            self.assertEqual(len(res["epochs"]), 2)
            self.assertEqual(res["world_size"], 2)
            self.assertGreater(res["throughput"], 0)
            self.assertGreater(res["comm_time"], 0, "%s measured its communication" % method)
            self.assertTrue(0 < res["comm_share"] < 1)
        ps = json.loads(self.ws.read("results/ps-s1.json"))
        self.assertEqual(ps["workers"], 1)
        self.assertGreater(ps["server_send_time"], 0)
        self.assertGreater(ps["pull_time"], 0)
        for pattern in ("allreduce", "ps", "p2p"):
            comm = json.loads(self.ws.read("results/comm-%s.json" % pattern))
            self.assertTrue(comm["correct"], comm["check"])
            self.assertEqual(comm["ranks"], 2, "as many ranks as training processes")
            self.assertEqual(comm["sizes"][-1]["bytes"], 16 << 20)
        peak = self.ws.kiln("metrics", "comm/*", "--format", "json")
        self.assertEqual(peak.rc, 0, peak)
        self.assertIn("peak_algbw_gbs", peak.out)
        for chart in ("throughput", "train_time", "loss", "accuracy", "comm_share", "comm_bandwidth", "comm_peak"):
            self.assertGreater(os.path.getsize(self.ws.path("plots/%s.png" % chart)), 5000, chart)
            self.assertIn("<svg", self.ws.read("plots/%s.svg" % chart))
        perf = self.ws.read("results/performance.md").splitlines()
        self.assertIn("throughput speedup vs ddp", perf[0])
        self.assertIn("train_time speedup vs ddp", perf[0], "a time's ratio is a speedup too, the right way round")
        rows = {line.split("|")[1].strip(): line for line in perf[2:]}
        self.assertEqual(set(rows), {"ddp", "allreduce", "ps"})
        self.assertIn("1.00×", rows["ddp"], "DDP against itself")
        ddp, ar = (json.loads(self.ws.read("results/%s-s1.json" % m)) for m in ("ddp", "allreduce"))
        speedup = "%.2f×" % (ar["throughput"] / ddp["throughput"])
        self.assertIn(speedup, rows["allreduce"], "the ratio is computed from the recorded values")
        self.assertIn("%.2f×" % (ddp["train_time"] / ar["train_time"]), rows["allreduce"], "baseline time / time")
        again = self.ws.kiln("run", recipe, "epochs=2", "samples=4096")
        self.assertEqual(again.ran, set(), again)
        rep = self.ws.kiln("report", recipe)
        self.assertEqual(rep.rc, 0, rep)
        html = self.ws.read("report.html")
        self.assertIn("<th>throughput (samples/s)</th><th>throughput speedup vs ddp</th>", html)
        self.assertEqual(html.count("<div class=\"chart\"><svg"), 7)

    def test_imagenet_single_process_and_torchrun(self):
        recipe = os.path.join(RECIPES, "imagenet.lua")
        r = self.ws.kiln("run", recipe, "steps=2", "epochs=1", "image_size=32", "batch=4", timeout=600)
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(r.ran, {"imagenet/single", "imagenet/ddp", "plot/imagenet_throughput", "plot/imagenet_loss",
                                 "conv/fwd", "conv/bwd_data", "conv/bwd_filter", "plot/conv_layers", "plot/conv_network"})
        for p in ("fwd", "bwd_data", "bwd_filter"):
            conv = json.loads(self.ws.read("results/conv-%s.json" % p))
            self.assertEqual((conv["net"], conv["pass"], conv["image_size"]), ("resnet18", p, 32))
            self.assertEqual(len(conv["layers"]), 11)
            self.assertGreater(conv["images_per_s"], 0)
        self.assertIn("<svg", self.ws.read("plots/conv_layers.svg"))
        single, ddp = (json.loads(self.ws.read("results/%s.json" % m)) for m in ("single", "ddp"))
        self.assertEqual((single["world_size"], ddp["world_size"]), (1, 2))
        self.assertEqual(ddp["backend"], "gloo")
        self.assertEqual(single["epochs"][0]["steps"], 2)
        check = subprocess.run([PYTHON, "-c", "import sys, torch; c = torch.load(sys.argv[1]); "
                                "print(c['arch'], len(c['state_dict']))", self.ws.path("checkpoints/ddp.pt")],
                               capture_output=True, text=True, timeout=120)
        self.assertEqual(check.returncode, 0, check.stderr)
        self.assertTrue(check.stdout.startswith("resnet18 "), check.stdout)
        self.assertIn("--nproc_per_node=2", self.ws.read(".kiln/logs/imagenet/ddp@1.log"))
        self.assertEqual(self.ws.kiln("run", recipe, "steps=2", "epochs=1", "image_size=32", "batch=4").ran, set())

    def test_imagenet_ddp_continues_after_ctrl_c_at_the_epoch_it_stopped(self):
        recipe = os.path.join(RECIPES, "imagenet.lua")
        args = ["run", recipe, "modes=ddp", "conv=false", "epochs=6", "steps=4", "image_size=32", "batch=4"]
        log = ".kiln/logs/imagenet/ddp@1.log"
        p = self.ws.spawn(*args)
        self.assertTrue(wait_for(lambda: self.ws.exists(log) and "epoch 2:" in self.ws.read(log), timeout=300))
        os.kill(p.pid, signal.SIGINT)
        p.communicate(timeout=120)
        self.assertEqual(p.returncode, 130, "stopped part way")
        r = self.ws.kiln(*args, timeout=600)
        self.assertEqual(r.rc, 0, r)
        second = self.ws.read(".kiln/logs/imagenet/ddp@2.log")
        resumed = re.search(r"resuming after epoch (\d+) of 6", second)
        self.assertTrue(resumed, second)
        self.assertGreaterEqual(int(resumed.group(1)), 2)
        said = re.findall(r"^epoch (\d+):", self.ws.read(log) + second, re.M)
        self.assertEqual(sorted(map(int, said)), list(range(1, 7)), "each epoch trained (and said) once")
        result = json.loads(self.ws.read("results/ddp.json"))
        self.assertEqual([e["epoch"] for e in result["epochs"]], list(range(1, 7)))
        self.assertEqual(self.ws.kiln(*args).ran, set())

    def test_clip_grid(self):
        recipe = os.path.join(RECIPES, "clip_grid.lua")
        args = ("images=starnet_s1,starnet_s2", "epochs=2", "samples=256")
        r = self.ws.kiln("run", recipe, *args, timeout=600)
        self.assertEqual(r.rc, 0, r)
        configs = ["starnet_s1-clip", "starnet_s1-bert", "starnet_s2-clip", "starnet_s2-bert"]
        for c in configs:
            self.assertTrue(self.ws.exists(".kiln/logs/clip/%s@1.log" % c), "one log per config, named after it")
            self.assertTrue(self.ws.exists("checkpoints/%s/model.pt" % c))
            res = json.loads(self.ws.read("results/%s.json" % c))
            self.assertEqual(len(res["epochs"]), 2)
            self.assertTrue(0 <= res["recall_at_1"] <= 1)
        table = self.ws.read("results/recall.md")
        self.assertIn("| starnet_s2 |", table)
        self.assertIn("bert-base-chinese", table)
        self.assertEqual(self.ws.kiln("run", recipe, *args).ran, set())

    def test_caption_map(self):
        recipe = os.path.join(RECIPES, "caption.lua")
        r = self.ws.kiln("run", recipe, "images=120", "shards=3", timeout=600)
        self.assertEqual(r.rc, 0, r)
        self.assertIn("progress caption: 120/120 items", r.out)
        lines = self.ws.read("captions.tsv").splitlines()
        self.assertEqual(len(lines), 120)
        self.assertRegex(lines[0], r"^0001\t\w+ shapes covering \d+% of a \w+ background")
        loads = [self.ws.read(".kiln/logs/caption:shard-%d@1.log" % k).count("model loaded") for k in (1, 2, 3)]
        self.assertEqual(loads, [1, 1, 1], "one model load per shard")
        again = self.ws.kiln("run", recipe, "images=120", "shards=3")
        self.assertIn("123 up to date", again.out, again)
        more = self.ws.kiln("run", recipe, "images=130", "shards=3")
        self.assertIn("progress caption: 130/130 items", more.out, "ten new images")

    def test_third_party_trainer_unmodified(self):
        recipe = os.path.join(RECIPES, "third_party.lua")
        r = self.ws.kiln("run", recipe, "epochs=3", timeout=600)
        self.assertEqual(r.rc, 0, r)
        for lr in ("0.1", "0.02"):
            d = "runs/lr%s/" % lr
            self.assertTrue(self.ws.exists(d + "checkpoint.pth.tar"), "fixed names in each config's own folder")
            self.assertTrue(self.ws.exists(d + "model_best.pth.tar"))
            log = self.ws.read(".kiln/logs/train/lr%s@1.log" % lr)
            self.assertIn("[rank 0] Epoch: [2]", log)
            self.assertIn("[rank 1] Epoch: [2]", log, "both ranks ran, started by kiln")
            self.assertIn("# cwd: " + d[:-1], log)
        m = self.ws.kiln("metrics", "--rows", "lr", "--value", "acc1,loss", "--format", "tsv")
        self.assertEqual(m.rc, 0, m)
        rows = [line.split("\t") for line in m.out.strip().splitlines()[1:]]
        self.assertEqual(len(rows), 2)
        for row in rows:
            self.assertTrue(0 < float(row[1]) <= 100 and float(row[2]) > 0, row)
        for chart in ("loss", "acc1"):
            self.assertRegex(self.ws.read("plots/%s.svg" % chart), r"<g id=\"[A-Za-z0-9_]+_plot_1\"")
        # the best model deleted by hand comes back from the store; nothing runs again
        os.unlink(self.ws.path("runs/lr0.1/model_best.pth.tar"))
        again = self.ws.kiln("run", recipe, "epochs=3")
        self.assertEqual(again.ran, set(), again)
        self.assertTrue(self.ws.exists("runs/lr0.1/model_best.pth.tar"))
        # more epochs: the key changes, so each config trains afresh from its own folder
        more = self.ws.kiln("run", recipe, "epochs=4", "lrs=0.1", timeout=600)
        self.assertEqual(more.rc, 0, more)
        self.assertIn("[rank 0] Epoch: [3]", self.ws.read(".kiln/logs/train/lr0.1@2.log"))


if __name__ == "__main__":
    main()
