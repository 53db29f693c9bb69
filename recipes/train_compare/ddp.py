"""DistributedDataParallel: gradients are all-reduced by DDP's buckets during backward.
Communication time is measured by a comm hook around DDP's own all-reduce: from a bucket
being handed over until its all-reduce completes (it overlaps backward compute, which is
the point of DDP; the share is of wall time)."""
import time

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel

import common


def main():
    args = common.parse_args(__doc__)
    rank, world, device = common.init(args)
    x, y, xe, ye = common.dataset(args, device)
    net = common.model(args, device)
    ddp = DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)
    comm = {"time": 0.0}

    def timed_allreduce(state, bucket):
        start = time.perf_counter()
        tensor = bucket.buffer().div_(world)
        fut = dist.all_reduce(tensor, async_op=True).get_future()

        def done(f):
            comm["time"] += time.perf_counter() - start
            return f.value()[0]
        return fut.then(done)

    ddp.register_comm_hook(None, timed_allreduce)
    opt = torch.optim.SGD(ddp.parameters(), lr=args.lr, momentum=0.9)
    results = common.Results(args, "ddp", world, world, net, opt)
    for epoch in range(results.first_epoch(device), args.epochs + 1):
        xs, ys = common.shard(x, y, rank, world, epoch, args.seed)
        comm["time"] = 0.0
        dist.barrier()
        start = common.now(device)
        steps = 0
        for xb, yb in common.batches(xs, ys, args.batch):
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(ddp(xb), yb).backward()
            opt.step()
            steps += 1
        results.end_epoch(epoch, net, xe, ye, steps, start, comm["time"], device)
    if rank == 0:
        results.write()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
