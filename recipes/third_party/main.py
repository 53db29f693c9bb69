"""A trainer written the way published ImageNet-style scripts are, knowing nothing of kiln:
it takes its own --world-size/--rank/--dist-url (one process per rank, all started by
whoever runs it), prints its progress ("Epoch: [3] ... Loss 0.4123", " * Acc@1 12.500
Acc@5 50.000") and writes fixed file names into the directory it runs in: checkpoint.pth.tar
after every epoch, model_best.pth.tar only when accuracy improved. --resume continues from a
checkpoint when there is one. Synthetic data and a small network: it runs on CPU in seconds."""
import argparse
import os
import shutil

import torch
import torch.distributed as dist
import torch.nn as nn

parser = argparse.ArgumentParser(description="toy ImageNet-style training")
parser.add_argument("--epochs", default=3, type=int)
parser.add_argument("--lr", default=0.1, type=float)
parser.add_argument("--batch-size", default=32, type=int)
parser.add_argument("--world-size", default=1, type=int)
parser.add_argument("--rank", default=0, type=int)
parser.add_argument("--dist-url", default="tcp://127.0.0.1:23456")
parser.add_argument("--resume", default="", type=str)
parser.add_argument("--seed", default=0, type=int)


def save_checkpoint(state, is_best, filename="checkpoint.pth.tar"):
    torch.save(state, filename)
    if is_best:
        shutil.copyfile(filename, "model_best.pth.tar")


def main():
    args = parser.parse_args()
    distributed = args.world_size > 1
    if distributed:
        dist.init_process_group(backend="gloo", init_method=args.dist_url, world_size=args.world_size, rank=args.rank)
    torch.manual_seed(args.seed)
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))
    if distributed:
        model = nn.parallel.DistributedDataParallel(model)
    optimizer = torch.optim.SGD(model.parameters(), args.lr, momentum=0.9)
    criterion = nn.CrossEntropyLoss()
    start_epoch, best_acc1 = 0, 0.0
    if args.resume:
        if os.path.isfile(args.resume):
            print("=> loading checkpoint '{}'".format(args.resume))
            checkpoint = torch.load(args.resume)
            start_epoch, best_acc1 = checkpoint["epoch"], checkpoint["best_acc1"]
            model.load_state_dict(checkpoint["state_dict"])
            optimizer.load_state_dict(checkpoint["optimizer"])
            print("=> loaded checkpoint '{}' (epoch {})".format(args.resume, start_epoch))
        else:
            print("=> no checkpoint found at '{}'".format(args.resume))
    g = torch.Generator().manual_seed(1234)
    x = torch.randn(512, 16, generator=g)
    y = (x[:, :4].argmax(dim=1))
    shard = slice(args.rank, None, args.world_size)
    xs, ys = x[shard], y[shard]
    for epoch in range(start_epoch, args.epochs):
        model.train()
        total = 0.0
        steps = 0
        for i in range(0, len(xs), args.batch_size):
            optimizer.zero_grad()
            loss = criterion(model(xs[i:i + args.batch_size]), ys[i:i + args.batch_size])
            loss.backward()
            optimizer.step()
            total += loss.item()
            steps += 1
        print("Epoch: [{}]\tLoss {:.4f}".format(epoch, total / steps), flush=True)
        model.eval()
        with torch.no_grad():
            pred = model(x).topk(2, dim=1).indices
            acc1 = 100.0 * (pred[:, 0] == y).float().mean().item()
            acc5 = 100.0 * (pred == y[:, None]).any(dim=1).float().mean().item()
        print(" * Acc@1 {:.3f} Acc@5 {:.3f}".format(acc1, acc5), flush=True)
        is_best = acc1 > best_acc1
        best_acc1 = max(acc1, best_acc1)
        if args.rank == 0:
            save_checkpoint({"epoch": epoch + 1, "state_dict": model.state_dict(), "best_acc1": best_acc1,
                             "optimizer": optimizer.state_dict()}, is_best)
    if distributed:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
