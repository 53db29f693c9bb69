"""Parameter server: rank 0 holds the parameters and the optimizer; every other rank is a
worker that, each step, pulls the parameters (recv from rank 0), computes gradients on its
batch and pushes them (send to rank 0). The server sends the parameters to each worker,
receives each worker's gradients, averages them and steps: synchronous SGD over point-to-
point messages. Recorded: the workers' pull and push times, the server's send and receive
times; communication time is the workers' pull + push."""
import torch
import torch.distributed as dist
import torch.nn.functional as F

import common


def flat_params(net):
    return torch.cat([p.data.reshape(-1) for p in net.parameters()])


def load_flat(net, flat, grads=False):
    offset = 0
    for p in net.parameters():
        n = p.numel()
        view = flat[offset:offset + n].view_as(p)
        if grads:
            p.grad = view.clone()
        else:
            p.data.copy_(view)
        offset += n


def main():
    args = common.parse_args(__doc__)
    rank, world, device = common.init(args)
    if world < 2:
        raise SystemExit("ps.py needs at least 2 processes: rank 0 serves, the others work")
    workers = world - 1
    x, y, xe, ye = common.dataset(args, device)
    net = common.model(args, device)
    opt = torch.optim.SGD(net.parameters(), lr=args.lr, momentum=0.9) if rank == 0 else None
    size = sum(p.numel() for p in net.parameters())
    totals = {"pull": 0.0, "push": 0.0, "send": 0.0, "recv": 0.0}
    results = common.Results(args, "ps", world, workers, net, opt, totals)
    for epoch in range(results.first_epoch(device), args.epochs + 1):
        # the workers share the epoch; the server takes no data
        steps = (args.samples // workers) // args.batch
        pull = push = send = recv = 0.0
        dist.barrier()
        start = common.now(device)
        if rank == 0:
            grad = torch.empty(size, device=device)
            for _ in range(steps):
                flat = flat_params(net)
                t0 = common.now(device)
                for w in range(1, world):
                    dist.send(flat, dst=w)
                t1 = common.now(device)
                total = torch.zeros(size, device=device)
                for w in range(1, world):
                    dist.recv(grad, src=w)
                    total += grad
                t2 = common.now(device)
                send, recv = send + t1 - t0, recv + t2 - t1
                opt.zero_grad(set_to_none=True)
                load_flat(net, total / workers, grads=True)
                opt.step()
        else:
            xs, ys = common.shard(x, y, rank - 1, workers, epoch, args.seed)
            flat = torch.empty(size, device=device)
            for _, (xb, yb) in zip(range(steps), common.batches(xs, ys, args.batch)):
                t0 = common.now(device)
                dist.recv(flat, src=0)
                pull += common.now(device) - t0
                load_flat(net, flat)
                net.zero_grad(set_to_none=True)
                F.cross_entropy(net(xb), yb).backward()
                g = torch.cat([p.grad.reshape(-1) for p in net.parameters()])
                t1 = common.now(device)
                dist.send(g, dst=0)
                push += common.now(device) - t1
        elapsed = common.now(device) - start
        # workers' means of their timings; the server's own (only it adds send/recv)
        elapsed_sum, pull, push, send, recv = common.mean_over_ranks([elapsed, pull, push, send, recv], device, 1)
        elapsed = elapsed_sum / world
        pull, push = pull / workers, push / workers
        for k, v in (("pull", pull), ("push", push), ("send", send), ("recv", recv)):
            totals[k] += v
        loss, acc = common.evaluate(net, xe, ye) if rank == 0 else (0.0, 0.0)
        results.epoch(epoch=epoch, loss=loss, accuracy=acc, throughput=steps * args.batch * workers / elapsed,
                      epoch_time=elapsed, batch_time=elapsed / max(steps, 1), comm_time=pull + push,
                      pull_time=pull, push_time=push, server_send_time=send, server_recv_time=recv)
    if rank == 0:
        results.write(pull_time=totals["pull"], push_time=totals["push"], server_send_time=totals["send"],
                      server_recv_time=totals["recv"])
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
