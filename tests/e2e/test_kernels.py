"""End-to-end: the kiln-kernels command line. Malformed inputs give a clear error and
exit 2; synth is deterministic and quality moves accuracy; the JSON has the metrics
recipes read. .npy files are written by hand here, so the test needs no numpy."""
import json
import re
import os
import struct
import subprocess

from kilntest import KilnTestCase, main

PYTHON = "/usr/bin/python3"  # Debian's, with python3-torch (scripts/install-deps.sh)
TORCH_CONV_CHECK = """
import numpy as np, torch, torch.nn.functional as F
for layer, stride, pad in (("conv1", 2, 3), ("l2.conv3s2", 2, 1), ("l2.down", 2, 0)):
    t = {k: torch.from_numpy(np.load("dump-%s/%s.npy" % (layer, k))).double() for k in ("x", "w", "y", "dy", "dx", "dw")}
    x = t["x"].permute(0, 3, 1, 2).clone().requires_grad_()  # NHWC -> NCHW
    w = t["w"].permute(0, 3, 1, 2).clone().requires_grad_()  # KRSC -> KCRS
    y = F.conv2d(x, w, stride=stride, padding=pad)
    assert tuple(y.permute(0, 2, 3, 1).shape) == tuple(t["y"].shape), layer
    y.backward(t["dy"].permute(0, 3, 1, 2))
    for name, want, got in (("y", y.detach().permute(0, 2, 3, 1), t["y"]), ("dx", x.grad.permute(0, 2, 3, 1), t["dx"]),
                            ("dw", w.grad.permute(0, 2, 3, 1), t["dw"])):
        err = (want - got).abs().max().item() / max(want.abs().max().item(), 1e-12)
        print(layer, name, "ok" if err < 1e-5 else "WRONG %.3g" % err)
"""
KK = os.environ.get("KILN_KERNELS") or os.path.join(os.path.dirname(__file__), "../../build/kiln-kernels")


def npy_bytes(descr, shape, payload):
    hdr = "{'descr': '%s', 'fortran_order': False, 'shape': (%s), }" % (
        descr, ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else ""))
    hdr += " " * ((64 - (10 + len(hdr) + 1) % 64) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(hdr)) + hdr.encode() + payload


def write_npy(path, descr, shape, values):
    fmt = {"<f4": "f", "<f2": "e", "<i8": "q", "<i4": "i", "<f8": "d"}[descr]
    with open(path, "wb") as f:
        f.write(npy_bytes(descr, shape, struct.pack("<%d%s" % (len(values), fmt), *values)))


class Kernels(KilnTestCase):
    def kk(self, *args):
        p = subprocess.run([KK, *map(str, args)], cwd=self.ws.dir, capture_output=True, text=True, timeout=120)
        return p.returncode, p.stdout, p.stderr

    def inputs(self, images=None, text=None, labels=None):
        write_npy(self.ws.path("img.npy"), *(images or ("<f4", (3, 2), [1, 0, 0, 1, 1, 0.2])))
        write_npy(self.ws.path("txt.npy"), *(text or ("<f2", (2, 2), [1, 0, 0, 1])))
        write_npy(self.ws.path("lab.npy"), *(labels or ("<i8", (3,), [0, 1, 1])))
        return ["zeroshot", "--images", "img.npy", "--text", "txt.npy", "--labels", "lab.npy", "--out", "r.json"]

    def test_good_input_writes_metrics(self):
        rc, out, err = self.kk(*self.inputs(), "--topk-out", "p.npy")
        self.assertEqual(rc, 0, err)
        r = json.loads(self.ws.read("r.json"))
        self.assertAlmostEqual(r["top1"], 2 / 3, places=5)
        self.assertAlmostEqual(r["top5"], 1.0)
        self.assertAlmostEqual(r["mean_per_class"], (1 + 0.5) / 2, places=5)
        self.assertEqual(r["per_class"][1]["samples"], 2)
        # device-agnostic: where a GPU is usable the CUDA back end runs, else kiln-kernels says why not
        device = re.search(r"zeroshot on (\S+?):", out)
        self.assertIsNotNone(device, out)
        if "cuda" not in device.group(1).lower():
            self.assertIn("using the C back end", err)
        self.assertTrue(self.ws.exists("p.npy"))

    def expect_error(self, args, needle):
        rc, out, err = self.kk(*args)
        self.assertEqual(rc, 2, out + err)
        self.assertIn(needle, err)
        self.assertFalse(self.ws.exists("r.json"))

    def test_malformed_inputs(self):
        args = self.inputs()
        with open(self.ws.path("img.npy"), "wb") as f:
            f.write(b"not an npy file at all")
        self.expect_error(args, "bad magic")
        args = self.inputs(images=("<f8", (3, 2), [1, 0, 0, 1, 1, 0]))
        self.expect_error(args, "unsupported dtype")
        args = self.inputs(text=("<f4", (2, 3), [1, 0, 0, 0, 1, 0]))
        self.expect_error(args, "dimension mismatch")
        args = self.inputs(labels=("<i8", (2,), [0, 1]))
        self.expect_error(args, "count mismatch")
        args = self.inputs(labels=("<i4", (3,), [0, 1, 2]))
        self.expect_error(args, "out of range")
        args = self.inputs(images=("<f4", (3, 2), [1, 0, float("nan"), 1, 1, 0]))
        self.expect_error(args, "row 1 contains NaN")
        args = self.inputs()
        data = open(self.ws.path("img.npy"), "rb").read()
        with open(self.ws.path("img.npy"), "wb") as f:
            f.write(data[:-5])
        self.expect_error(args, "truncated")

    def test_synth_is_deterministic_and_quality_moves_accuracy(self):
        tops = []
        for q in (0.2, 0.8):
            for rep in range(2):
                d = "s%s-%d" % (q, rep)
                rc, out, err = self.kk("synth", "--classes", 50, "--dim", 64, "--samples", 800, "--seed", 11,
                                       "--quality", q, "--out", d)
                self.assertEqual(rc, 0, err)
            self.assertEqual(open(self.ws.path("s%s-0/images.npy" % q), "rb").read(),
                             open(self.ws.path("s%s-1/images.npy" % q), "rb").read())
            rc, out, err = self.kk("zeroshot", "--images", "s%s-0/images.npy" % q, "--text", "s%s-0/text.npy" % q,
                                   "--labels", "s%s-0/labels.npy" % q, "--out", "r%s.json" % q)
            self.assertEqual(rc, 0, err)
            tops.append(json.loads(self.ws.read("r%s.json" % q))["top1"])
        self.assertLess(tops[0] + 0.2, tops[1])
        self.assertGreater(tops[0], 1 / 50)  # better than chance

    def test_probe_reports_parts_and_exit_status(self):
        rc, out, err = self.kk("probe")
        r = json.loads(out)
        self.assertIn(r["nvml"]["status"], ("ok", "unavailable"))
        self.assertIn("status", r["cuda"])
        self.assertEqual(rc, 0 if r["usable"] else 1)
        if not r["gpus"]:
            self.assertFalse(r["usable"])

    def test_runs_without_its_cuda_modules_and_the_cpu_path_loads_none(self):
        # the program alone, as on a machine without the toolkit's libraries
        alone = self.ws.path("bin/kiln-kernels")
        os.makedirs(os.path.dirname(alone))
        with open(KK, "rb") as src, open(alone, "wb") as dst:
            dst.write(src.read())
        os.chmod(alone, 0o755)
        args = self.inputs()
        p = subprocess.run([alone, *args], cwd=self.ws.dir, capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(len(p.stderr.strip().splitlines()), 1, "one line says why")
        self.assertIn("using the C back end", p.stderr)
        probe = subprocess.run([alone, "probe"], cwd=self.ws.dir, capture_output=True, text=True, timeout=60)
        r = json.loads(probe.stdout)
        self.assertEqual(r["cuda"]["status"], "unavailable")
        self.assertIn("libkiln-kernels-probe.so", r["cuda"]["reason"])
        # --device cpu maps no CUDA library into the process, built with CUDA or not
        maps = subprocess.run(["sh", "-c", 'env LD_DEBUG=libs "$@" 2>&1 | grep -c "calling init: .*lib\\(cudart\\|cublas\\|cudnn\\|nccl\\)" || true',
                               "sh", KK, *args, "--device", "cpu"], cwd=self.ws.dir, capture_output=True, text=True,
                              timeout=60)
        self.assertEqual(maps.stdout.strip(), "0", "no CUDA library initialised on the C path")

    def test_forced_cuda_without_gpu_fails_clearly(self):
        rc, out, err = self.kk(*self.inputs(), "--device", "cuda")
        r = json.loads(self.kk("probe")[1])
        if r["usable"]:
            self.skipTest("a GPU is present")
        self.assertEqual(rc, 1)
        self.assertIn("--device cuda", err)

    def test_conv_reference_matches_pytorch(self):
        # the C reference's three passes on seeded tensors against torch.nn.functional.conv2d
        # and autograd, for a 7x7 stride-2 stem, a strided 3x3 and a strided 1x1 (downsample)
        for layer in ("conv1", "l2.conv3s2", "l2.down"):
            rc, out, err = self.kk("conv", "--dump", "dump-" + layer, "--layers", layer, "--size", 40, "--batch", 2)
            self.assertEqual(rc, 0, err)
        p = subprocess.run([PYTHON, "-c", TORCH_CONV_CHECK], cwd=self.ws.dir, capture_output=True, text=True,
                           timeout=300)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertEqual(p.stdout.count("ok"), 9, p.stdout)

    def test_conv_json_and_errors(self):
        rc, out, err = self.kk("conv", "--device", "cpu", "--net", "resnet18", "--size", 32, "--passes", "fwd",
                               "--out", "conv.json")
        self.assertEqual(rc, 0, err)
        r = json.loads(self.ws.read("conv.json"))
        self.assertEqual(len(r["layers"]), 11)
        self.assertEqual([l["step"] for l in r["layers"]], list(range(1, 12)))
        self.assertEqual(r["pass"], "fwd")
        total_gflop = sum(l["gflop"] * l["count"] for l in r["layers"])
        self.assertAlmostEqual(r["tflops"], total_gflop / r["ms"], delta=r["tflops"] * 0.02)
        self.assertAlmostEqual(r["images_per_s"], 1000 / r["ms"], delta=r["images_per_s"] * 0.02)
        self.assertNotIn("bwd_data_ms", r["layers"][0])
        for args, needle in ((["--layers", "l9.x"], 'no layer "l9.x"'), (["--net", "vgg"], 'unknown network "vgg"'),
                             (["--passes", "sideways"], 'unknown pass "sideways"'), (["--dtype", "fp8"], "fp16 or bf16"),
                             (["--dump", "d"], "one layer")):
            rc, out, err = self.kk("conv", "--device", "cpu", "--size", 32, *args)
            self.assertEqual(rc, 2, args)
            self.assertIn(needle, err)

    def test_comm_reference_checks_sums_and_reports_bandwidth(self):
        rc, out, err = self.kk("comm", "--device", "cpu", "--ranks", 3, "--min-bytes", "1K", "--max-bytes", "256K",
                               "--out", "comm.json")
        self.assertEqual(rc, 0, err)
        r = json.loads(self.ws.read("comm.json"))
        self.assertTrue(r["correct"], r["check"])
        self.assertEqual(r["ranks"], 3)
        self.assertEqual(sorted(r["patterns"]), ["allreduce", "p2p", "ps"])
        factors = {"allreduce": 2 * 2 / 3, "ps": 2, "p2p": 2}
        for name, points in r["patterns"].items():
            self.assertEqual([p["bytes"] for p in points], [1024, 4096, 16384, 65536, 262144])
            for p in points:
                self.assertAlmostEqual(p["algbw_gbs"], p["bytes"] / p["time_us"] / 1e3, delta=p["algbw_gbs"] * 0.01 + 1e-4)
                self.assertAlmostEqual(p["busbw_gbs"], p["algbw_gbs"] * factors[name], delta=p["busbw_gbs"] * 0.01 + 1e-4)
        self.assertIn("allreduce", out)
        # one pattern: its points are also top-level (what a lines plot reads)
        rc, out, err = self.kk("comm", "--device", "cpu", "--ranks", 2, "--patterns", "p2p", "--max-bytes", "4K",
                               "--out", "one.json")
        self.assertEqual(rc, 0, err)
        one = json.loads(self.ws.read("one.json"))
        self.assertEqual(one["pattern"], "p2p")
        self.assertEqual([p["step"] for p in one["sizes"]], [1024, 4096])
        self.assertEqual(one["peak_busbw_gbs"], max(p["busbw_gbs"] for p in one["sizes"]))
        for args, needle in ((["--patterns", "gossip"], 'unknown pattern "gossip"'),
                             (["--min-bytes", "1Q"], "--min-bytes"), (["--ranks", 0, "--max-bytes", "8M", "--min-bytes", "16M"], "min <= max")):
            rc, out, err = self.kk("comm", "--device", "cpu", *args)
            self.assertEqual(rc, 2, args)
            self.assertIn(needle, err)


if __name__ == "__main__":
    main()
