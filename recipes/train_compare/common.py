"""Shared by ddp.py, allreduce.py and ps.py: arguments, the synthetic classification task,
the model, evaluation, timing and the per-epoch JSON that kiln ingests as metrics.

Every method trains the same model from the same initial parameters on the same data with
the same batch per worker, so throughput, time, loss and accuracy compare the ways
gradients travel (a parameter server has one worker fewer: rank 0 serves).
Runs on CPU with gloo, or on the leased GPUs with NCCL (one process per GPU, torchrun's
LOCAL_RANK indexing CUDA_VISIBLE_DEVICES). With --resume PATH rank 0 snapshots the run after
every epoch (parameters, optimizer, the epochs so far) and a restarted run continues after
the last finished epoch."""
import argparse
import json
import os
import time

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F


def parse_args(description):
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch", type=int, default=64, help="samples per worker per step")
    p.add_argument("--samples", type=int, default=4096, help="training samples (synthetic)")
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--backend", default="auto", help="gloo, nccl, or auto (nccl where CUDA is)")
    p.add_argument("--out", required=True, help="the JSON results file (written by rank 0)")
    p.add_argument("--resume", help="the per-epoch snapshot: written after each epoch, continued from if present")
    return p.parse_args()


def init(args):
    """Joins the process group torchrun set up; returns (rank, world, device)."""
    use_cuda = torch.cuda.is_available() and args.backend in ("auto", "nccl")
    backend = "nccl" if use_cuda else "gloo"
    if args.backend not in ("auto", backend):
        backend = args.backend
    dist.init_process_group(backend)
    rank, world = dist.get_rank(), dist.get_world_size()
    if use_cuda:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
        torch.backends.cudnn.benchmark = True
    else:
        device = torch.device("cpu")
        torch.set_num_threads(1)  # one core per process: torchrun runs nproc of them
    torch.manual_seed(args.seed)
    return rank, world, device


def dataset(args, device):
    """A fixed synthetic task: Gaussian inputs labelled by a random two-layer teacher,
    the same on every rank (seeded), with a held-out evaluation split."""
    g = torch.Generator().manual_seed(1000 + args.seed)
    n = args.samples + 1024
    x = torch.randn(n, args.dim, generator=g)
    w1 = torch.randn(args.dim, args.hidden, generator=g) / args.dim ** 0.5
    w2 = torch.randn(args.hidden, args.classes, generator=g) / args.hidden ** 0.5
    logits = torch.tanh(x @ w1) @ w2 + 0.05 * torch.randn(n, args.classes, generator=g)
    y = logits.argmax(1)
    return (x[: args.samples].to(device), y[: args.samples].to(device),
            x[args.samples:].to(device), y[args.samples:].to(device))


def model(args, device):
    torch.manual_seed(args.seed)  # identical initial parameters on every rank
    return nn.Sequential(nn.Linear(args.dim, args.hidden), nn.ReLU(),
                         nn.Linear(args.hidden, args.hidden), nn.ReLU(),
                         nn.Linear(args.hidden, args.classes)).to(device)


def shard(x, y, index, count, epoch, seed):
    """Worker `index` of `count`: its share of an epoch's permutation (same on all ranks)."""
    g = torch.Generator().manual_seed(seed * 7919 + epoch)
    order = torch.randperm(x.shape[0], generator=g)[index::count].to(x.device)
    return x[order], y[order]


def batches(x, y, batch):
    steps = x.shape[0] // batch
    for s in range(steps):
        yield x[s * batch:(s + 1) * batch], y[s * batch:(s + 1) * batch]


@torch.no_grad()
def evaluate(net, x, y):
    net.eval()
    logits = net(x)
    net.train()
    return F.cross_entropy(logits, y).item(), (logits.argmax(1) == y).float().mean().item()


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def now(device):
    sync(device)
    return time.perf_counter()


def mean_over_ranks(values, device, divide_by):
    """Sums a list of floats over all ranks (an all-reduce outside any timed region) and
    divides by divide_by: the workers' mean of their timings."""
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return [v / divide_by for v in t.tolist()]


class Results:
    """The per-epoch record and the JSON written at the end (rank 0), atomically so a
    killed run never leaves half a file for kiln to ingest; with --resume, the snapshot of
    net, opt (None on ranks without one) and extra (a dict of running totals) as well."""

    def __init__(self, args, method, world, workers, net, opt, extra=None):
        self.args, self.method, self.world, self.workers = args, method, world, workers
        self.net, self.opt, self.extra = net, opt, extra if extra is not None else {}
        self.epochs = []

    def first_epoch(self, device):
        """1, or the epoch after the snapshot's last: every rank reads it and takes what it
        holds (a parameter server's workers have no optimizer)."""
        path = self.args.resume
        if not path or not os.path.exists(path):
            return 1
        snap = torch.load(path, map_location=device)
        self.net.load_state_dict(snap["model"])
        if self.opt is not None:
            self.opt.load_state_dict(snap["optimizer"])
        self.epochs = snap["epochs"]
        self.extra.update(snap["extra"])
        if dist.get_rank() == 0:
            print(f"resuming after epoch {len(self.epochs)} of {self.args.epochs} from {path}", flush=True)
        return len(self.epochs) + 1

    def epoch(self, **row):
        self.epochs.append(row)
        if dist.get_rank() == 0:
            if self.args.resume:  # before the line: an epoch said done is in the snapshot
                os.makedirs(os.path.dirname(self.args.resume) or ".", exist_ok=True)
                torch.save({"model": self.net.state_dict(), "epochs": self.epochs, "extra": self.extra,
                            "optimizer": self.opt.state_dict() if self.opt is not None else None},
                           self.args.resume + ".tmp")
                os.replace(self.args.resume + ".tmp", self.args.resume)
            print(f"{self.method} epoch {row['epoch']}: loss {row['loss']:.4f} acc {row['accuracy']:.4f} "
                  f"{row['throughput']:.0f} samples/s, {row['epoch_time']:.2f} s "
                  f"(comm {row['comm_time']:.2f} s)", flush=True)

    def end_epoch(self, epoch, net, eval_x, eval_y, steps, start, comm_time, device):
        """Closes an epoch every rank trained with `steps` steps since `start`: the ranks'
        mean time and communication time, then the evaluation and the record."""
        elapsed = now(device) - start
        elapsed, comm_time = mean_over_ranks([elapsed, comm_time], device, self.world)
        loss, acc = evaluate(net, eval_x, eval_y)
        self.epoch(epoch=epoch, loss=loss, accuracy=acc, throughput=steps * self.args.batch * self.world / elapsed,
                   epoch_time=elapsed, batch_time=elapsed / max(steps, 1), comm_time=comm_time)

    def write(self, **extra):
        e = self.epochs
        train_time = sum(r["epoch_time"] for r in e)
        comm_time = sum(r["comm_time"] for r in e)
        out = {
            "method": self.method, "world_size": self.world, "workers": self.workers,
            "backend": dist.get_backend(), "epochs_run": len(e),
            "throughput": sum(r["throughput"] for r in e) / len(e),
            "train_time": train_time, "comm_time": comm_time,
            "comm_share": comm_time / train_time if train_time > 0 else 0.0,
            "batch_time": sum(r["batch_time"] for r in e) / len(e),
            "final_loss": e[-1]["loss"], "final_accuracy": e[-1]["accuracy"],
            "epochs": e,
        }
        out.update(extra)
        os.makedirs(os.path.dirname(self.args.out) or ".", exist_ok=True)
        tmp = self.args.out + ".tmp"
        with open(tmp, "w") as f:
            json.dump(out, f, indent=1)
        os.replace(tmp, self.args.out)
