#!/usr/bin/env python3
"""torch_conv.py — PyTorch's convolutions on the shapes `kiln-kernels conv` measured, for a
side-by-side ratio on one GPU: reads that run's JSON (layers, batch, dtype), times each
layer's forward, backward-data and backward-filter in channels_last with
cudnn.benchmark (PyTorch's autotuner) by CUDA events, and prints both TFLOP/s and the
ratio kiln / PyTorch. usage: torch_conv.py CONV.json [--iters 10]"""
import argparse
import json

import torch

ap = argparse.ArgumentParser()
ap.add_argument("json")
ap.add_argument("--iters", type=int, default=10)
a = ap.parse_args()
run = json.load(open(a.json))
assert run["device"] == "cuda", "compare a GPU run of kiln-kernels conv"
torch.backends.cudnn.benchmark = True
dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}[run["dtype"]]
conv_bwd = torch.ops.aten.convolution_backward


def timed(fn):
    for _ in range(3):
        fn()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(a.iters):
        fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / a.iters  # ms


print("# PyTorch %s, cuDNN %s, %s, %s, batch %d: TFLOP/s (kiln / PyTorch)" % (
    torch.__version__, torch.backends.cudnn.version(), run["dtype"], run["net"], run["batch"]))
print("%-12s %22s %22s %22s" % ("layer", "fwd", "bwd_data", "bwd_filter"))
totals = {p: [0.0, 0.0] for p in ("fwd", "bwd_data", "bwd_filter")}
for l in run["layers"]:
    pad = {7: 3, 3: 1, 1: 0}[l["r"]]
    x = torch.randn(l["n"], l["c"], l["h"], l["w"], device="cuda", dtype=dtype).to(memory_format=torch.channels_last)
    w = torch.randn(l["k"], l["c"], l["r"], l["r"], device="cuda", dtype=dtype).to(memory_format=torch.channels_last)
    y = torch.nn.functional.conv2d(x, w, stride=l["stride"], padding=pad)
    dy = torch.randn_like(y)
    fns = {
        "fwd": lambda: torch.nn.functional.conv2d(x, w, stride=l["stride"], padding=pad),
        "bwd_data": lambda: conv_bwd(dy, x, w, None, [l["stride"]] * 2, [pad] * 2, [1, 1], False, [0, 0], 1,
                                     [True, False, False]),
        "bwd_filter": lambda: conv_bwd(dy, x, w, None, [l["stride"]] * 2, [pad] * 2, [1, 1], False, [0, 0], 1,
                                       [False, True, False]),
    }
    cells = []
    for p, fn in fns.items():
        if p + "_ms" not in l:
            cells.append("%22s" % "-")
            continue
        ms = timed(fn)
        kiln = l[p + "_tflops"]
        torch_tf = l["gflop"] / ms
        totals[p][0] += l[p + "_ms"] * l["count"]
        totals[p][1] += ms * l["count"]
        cells.append("%7.1f %7.1f %5.2fx" % (kiln, torch_tf, kiln / torch_tf if torch_tf else 0))
    print("%-12s %s" % (l["name"], " ".join(cells)))
for p, (kiln_ms, torch_ms) in totals.items():
    if kiln_ms:
        print("# network %s: kiln %.2f ms, PyTorch %.2f ms per batch: %.2fx" % (p, kiln_ms, torch_ms, torch_ms / kiln_ms))
