"""ImageNet-style ResNet training with torchvision models: one process, or DDP under
torchrun (one process per leased GPU with NCCL, or CPU processes with gloo), on one node
or several. --dummy trains on random images (smoke tests, throughput); --data DIR reads an
ImageFolder tree (DIR/train/<class>/*.jpeg, DIR/val/...). --steps caps the steps of every
epoch. Writes per-epoch JSON for kiln (loss, top-1, images/s, epoch time) and, on rank 0,
the final checkpoint. With --resume PATH, rank 0 also snapshots the run after every epoch
(model, optimiser, the epochs so far) and a restarted run continues after the last epoch
it finished: an interrupted 90-epoch run loses at most the epoch in flight."""
import argparse
import json
import os
import time

import torch
import torch.distributed as dist
import torch.nn.functional as F
import torchvision


def parse_args():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--arch", default="resnet18", help="any torchvision.models classifier")
    p.add_argument("--data", help="ImageFolder root with train/ and val/ (not with --dummy)")
    p.add_argument("--dummy", action="store_true", help="random images and labels")
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--classes", type=int, default=1000)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--steps", type=int, default=0, help="at most this many steps per epoch (0: all)")
    p.add_argument("--batch", type=int, default=32, help="per process")
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--workers", type=int, default=4, help="data-loading processes (real data)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="results JSON")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--resume", help="the per-epoch snapshot: written after each epoch, continued from if present")
    return p.parse_args()


def save_atomically(obj, path):
    """torch.save to a temporary name, then a rename: a kill mid-write leaves the last
    complete file, never half of one."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    torch.save(obj, path + ".tmp")
    os.replace(path + ".tmp", path)


def setup():
    """(rank, world, local_rank, device, distributed): torchrun sets WORLD_SIZE; without it
    this is one process."""
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    local = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(local)
        torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick its fastest kernels
    if distributed:
        dist.init_process_group("nccl" if cuda else "gloo")
    rank = dist.get_rank() if distributed else 0
    world = dist.get_world_size() if distributed else 1
    if not cuda and distributed:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // int(os.environ.get("LOCAL_WORLD_SIZE", "1"))))
    return rank, world, local, torch.device("cuda", local) if cuda else torch.device("cpu"), distributed


class Dummy(torch.utils.data.Dataset):
    """Random images with random labels, the same for a given index on every rank."""

    def __init__(self, n, size, classes):
        self.n, self.size, self.classes = n, size, classes

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(i)
        return torch.randn(3, self.size, self.size, generator=g), int(torch.randint(self.classes, (1,), generator=g))


def loaders(args, rank, world, distributed):
    if args.dummy:
        per_epoch = (args.steps or 50) * args.batch * world
        train, val = Dummy(per_epoch, args.image_size, args.classes), Dummy(args.batch * 2, args.image_size, args.classes)
        workers = 0
    else:
        if not args.data:
            raise SystemExit("give --data DIR (an ImageFolder tree) or --dummy")
        t = torchvision.transforms
        norm = t.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])
        train = torchvision.datasets.ImageFolder(os.path.join(args.data, "train"), t.Compose(
            [t.RandomResizedCrop(args.image_size), t.RandomHorizontalFlip(), t.ToTensor(), norm]))
        val = torchvision.datasets.ImageFolder(os.path.join(args.data, "val"), t.Compose(
            [t.Resize(int(args.image_size * 256 / 224)), t.CenterCrop(args.image_size), t.ToTensor(), norm]))
        workers = args.workers
    sampler = torch.utils.data.distributed.DistributedSampler(train, world, rank, seed=args.seed) if distributed else None
    train_loader = torch.utils.data.DataLoader(train, args.batch, shuffle=sampler is None, sampler=sampler,
                                               num_workers=workers, pin_memory=torch.cuda.is_available(), drop_last=True)
    val_loader = torch.utils.data.DataLoader(val, args.batch, num_workers=workers)
    return train_loader, val_loader, sampler


@torch.no_grad()
def validate(net, loader, device, steps):
    net.eval()
    correct = total = 0
    loss = 0.0
    for i, (x, y) in enumerate(loader):
        if steps and i >= steps:
            break
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        out = net(x)
        loss += F.cross_entropy(out, y, reduction="sum").item()
        correct += (out.argmax(1) == y).sum().item()
        total += y.numel()
    net.train()
    return loss / max(total, 1), correct / max(total, 1)


def main():
    args = parse_args()
    rank, world, local, device, distributed = setup()
    torch.manual_seed(args.seed)
    net = torchvision.models.__dict__[args.arch](num_classes=args.classes).to(device)
    if device.type == "cuda":
        net = net.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(net.parameters(), lr=args.lr, momentum=0.9, weight_decay=1e-4)
    epochs = []
    if args.resume and os.path.exists(args.resume):  # every rank reads the same snapshot
        snap = torch.load(args.resume, map_location=device)
        net.load_state_dict(snap["model"])
        opt.load_state_dict(snap["optimizer"])
        epochs = snap["epochs"]
        if rank == 0:
            print(f"resuming after epoch {len(epochs)} of {args.epochs} from {args.resume}", flush=True)
    model = torch.nn.parallel.DistributedDataParallel(net, device_ids=[local] if device.type == "cuda" else None) \
        if distributed else net
    train_loader, val_loader, sampler = loaders(args, rank, world, distributed)
    for epoch in range(len(epochs) + 1, args.epochs + 1):
        if sampler:
            sampler.set_epoch(epoch)
        if distributed:
            dist.barrier()
        start = time.perf_counter()
        steps, loss_sum = 0, 0.0
        for x, y in train_loader:
            if args.steps and steps >= args.steps:
                break
            x = x.to(device, non_blocking=True)
            if device.type == "cuda":
                x = x.contiguous(memory_format=torch.channels_last)
            y = y.to(device, non_blocking=True)
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum += loss.item()
            steps += 1
        if device.type == "cuda":
            torch.cuda.synchronize()
        elapsed = time.perf_counter() - start
        val_loss, top1 = validate(net, val_loader, device, args.steps)
        row = {"epoch": epoch, "train_loss": loss_sum / max(steps, 1), "val_loss": val_loss, "top1": top1,
               "images_per_s": steps * args.batch * world / elapsed, "epoch_time": elapsed, "steps": steps}
        epochs.append(row)
        if rank == 0:
            if args.resume:  # before the line: an epoch said done is in the snapshot
                save_atomically({"model": net.state_dict(), "optimizer": opt.state_dict(), "epochs": epochs},
                                args.resume)
            print(f"epoch {epoch}: {steps} steps, train loss {row['train_loss']:.4f}, top-1 {top1:.4f}, "
                  f"{row['images_per_s']:.1f} images/s over {world} process(es)", flush=True)
    if rank == 0:
        save_atomically({"arch": args.arch, "state_dict": net.state_dict(), "epochs": args.epochs}, args.checkpoint)
        result = {"arch": args.arch, "world_size": world, "device": device.type,
                  "backend": dist.get_backend() if distributed else "none",
                  "cudnn": torch.backends.cudnn.version() if device.type == "cuda" else 0,
                  "images_per_s": sum(r["images_per_s"] for r in epochs) / len(epochs),
                  "train_time": sum(r["epoch_time"] for r in epochs),
                  "final_top1": epochs[-1]["top1"], "final_train_loss": epochs[-1]["train_loss"], "epochs": epochs}
        with open(args.out + ".tmp", "w") as f:
            json.dump(result, f, indent=1)
        os.replace(args.out + ".tmp", args.out)
    if distributed:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
