"""End-to-end: the kiln-kernels command line. Malformed inputs give a clear error and
exit 2; synth is deterministic and quality moves accuracy; the JSON has the metrics
recipes read. .npy files are written by hand here, so the test needs no numpy."""
import json
import re
import os
import struct
import subprocess

from kilntest import KilnTestCase, main

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


if __name__ == "__main__":
    main()
