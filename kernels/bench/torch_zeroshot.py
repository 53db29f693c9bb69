#!/usr/bin/env python3
"""torch_zeroshot.py — the same zero-shot computation in PyTorch (normalize, matmul,
topk) at the same sizes, for a side-by-side ratio with bench_zeroshot on one machine.
Times it end to end from pageable and from pinned host arrays (as kiln-kernels is timed) and
with the inputs already on the device (beside kiln-kernels' kernels-alone time). usage: torch_zeroshot.py [N C D]"""
import sys
import time

import torch

n, c, d = (int(x) for x in sys.argv[1:4]) if len(sys.argv) > 3 else (1_000_000, 1000, 512)
g = torch.Generator().manual_seed(1)
img_h = (torch.rand(n, d, generator=g) - 0.5).half()
txt_h = (torch.rand(c, d, generator=g) - 0.5).half()
lab_h = torch.randint(0, c, (n,), generator=g)


def run(img, txt, lab, chunk=262_144):
    txt = torch.nn.functional.normalize(txt.cuda().float(), dim=1).half()
    top1 = top5 = 0
    for s in range(0, n, chunk):
        x = torch.nn.functional.normalize(img[s:s + chunk].cuda(non_blocking=True).float(), dim=1).half()
        pred = (x @ txt.T).topk(5, dim=1).indices
        y = lab[s:s + chunk].cuda(non_blocking=True)
        top1 += (pred[:, 0] == y).sum().item()
        top5 += (pred == y[:, None]).any(dim=1).sum().item()
    return top1, top5


def best_of(img, txt, lab, reps=5):
    run(img[:65536], txt, lab[:65536])
    torch.cuda.synchronize()
    best = 1e30
    for _ in range(reps):
        t0 = time.perf_counter()
        run(img, txt, lab)
        torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return best


flop = 2.0 * n * c * d
for what, args in (("end to end", (img_h, txt_h, lab_h)),
                   ("pinned input", (img_h.pin_memory(), txt_h, lab_h.pin_memory())),
                   ("device-resident", (img_h.cuda(), txt_h.cuda(), lab_h.cuda()))):
    t = best_of(*args)
    print("torch %s: N=%d C=%d D=%d fp16 %-15s %8.2f ms (%.1f TFLOP/s)" % (torch.__version__, n, c, d, what,
                                                                           t * 1e3, flop / t / 1e12))
