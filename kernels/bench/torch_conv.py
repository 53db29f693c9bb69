#!/usr/bin/env python3
"""torch_conv.py — PyTorch's convolutions on the shapes `kiln-kernels conv` measured, for a
side-by-side ratio on one GPU: reads that run's JSON (layers, batch, dtype), times each
layer's forward, backward-data and backward-filter in channels_last with
cudnn.benchmark (PyTorch's autotuner) by CUDA events, called one after another and replayed
as a CUDA graph (as kiln-kernels times them), and prints TFLOP/s and ratios. usage: torch_conv.py CONV.json [--iters 10]"""
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
    """ms per call: calls one after another (eager), and the same calls replayed as one CUDA
    graph (the GPU's time without launch gaps), as kiln-kernels times both."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm-up (cudnn.benchmark picks here) off the default stream
        for _ in range(3):
            fn()
    torch.cuda.current_stream().wait_stream(side)
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(a.iters):
        fn()
    end.record()
    torch.cuda.synchronize()
    eager = start.elapsed_time(end) / a.iters
    try:
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g):
            for _ in range(a.iters):
                fn()
        g.replay()
        start.record()
        g.replay()
        end.record()
        torch.cuda.synchronize()
        return eager, start.elapsed_time(end) / a.iters
    except RuntimeError:
        return eager, None


print("# PyTorch %s, cuDNN %s, %s, %s, batch %d: TFLOP/s as CUDA graphs, kiln / PyTorch "
      "(then calls one after another)" % (torch.__version__, torch.backends.cudnn.version(), run["dtype"], run["net"],
                                          run["batch"]))
print("%-12s %46s %46s %46s" % ("layer", "fwd", "bwd_data", "bwd_filter"))
totals = {p: {"graph": [0.0, 0.0], "loop": [0.0, 0.0], "api": [0.0, 0.0]} for p in ("fwd", "bwd_data", "bwd_filter")}
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
            cells.append("%46s" % "-")
            continue
        eager, graph = timed(fn)
        kiln_graph, kiln_loop = l[p + "_ms"], l.get(p + "_loop_ms", l[p + "_ms"])
        torch_graph = graph if graph else eager
        kiln_api = l.get(p + "_api_ms")  # cuDNN's graph API, calls one after another
        for kind, k, t in (("graph", kiln_graph, torch_graph), ("loop", kiln_loop, eager), ("api", kiln_api, eager)):
            if k:
                totals[p][kind][0] += k * l["count"]
                totals[p][kind][1] += t * l["count"]
        cells.append("%6.1f %6.1f %5.2fx (%5.2fx, %4.0f us; api %s)" % (
            l["gflop"] / kiln_graph, l["gflop"] / torch_graph, torch_graph / kiln_graph, eager / kiln_loop,
            l.get(p + "_host_us", 0), "%5.2fx" % (eager / kiln_api) if kiln_api else "  -  "))
    print("%-12s %s" % (l["name"], " ".join(cells)))
print("# cells: kiln and PyTorch TFLOP/s as graphs, their ratio (kiln faster above 1), then the ratio of calls one")
print("# after another, kiln's CPU time to issue one call, and the ratio with kiln through cuDNN's graph API")
for p, kinds in totals.items():
    for kind, (kiln_ms, torch_ms) in kinds.items():
        if kiln_ms:
            print("# network %s, %s: kiln %.2f ms, PyTorch %.2f ms per batch: kiln %.2fx PyTorch's speed" % (
                p, {"graph": "CUDA graphs", "loop": "calls one after another",
                    "api": "cuDNN's graph API against PyTorch's calls"}[kind], kiln_ms, torch_ms,
                torch_ms / kiln_ms))
