"""Hand-written all-reduce: after each backward every worker flattens its gradients into
one buffer, all-reduces it (timed, synchronously), divides by the world size and copies
the mean back before its optimizer step: DDP's arithmetic without its overlap."""
import torch
import torch.distributed as dist
import torch.nn.functional as F

import common


def main():
    args = common.parse_args(__doc__)
    rank, world, device = common.init(args)
    x, y, xe, ye = common.dataset(args, device)
    net = common.model(args, device)
    params = [p for p in net.parameters()]
    opt = torch.optim.SGD(params, lr=args.lr, momentum=0.9)
    results = common.Results(args, "allreduce", world, world, net, opt)
    for epoch in range(results.first_epoch(device), args.epochs + 1):
        xs, ys = common.shard(x, y, rank, world, epoch, args.seed)
        comm_time = 0.0
        dist.barrier()
        start = common.now(device)
        steps = 0
        for xb, yb in common.batches(xs, ys, args.batch):
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(net(xb), yb).backward()
            flat = torch.cat([p.grad.reshape(-1) for p in params])
            t0 = common.now(device)
            dist.all_reduce(flat)
            comm_time += common.now(device) - t0
            flat /= world
            offset = 0
            for p in params:
                n = p.numel()
                p.grad.copy_(flat[offset:offset + n].view_as(p))
                offset += n
            opt.step()
            steps += 1
        results.end_epoch(epoch, net, xe, ye, steps, start, comm_time, device)
    if rank == 0:
        results.write()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
