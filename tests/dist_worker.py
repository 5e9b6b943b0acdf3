"""Run under torchrun: local anchors against keys gathered from every process, DDP gradients.

Writes rank-0's all-reduced loss and DDP-averaged gradients to OUT/result-<mode>.pt.
mode = grad (gather_with_grad) | plain (dist.all_gather without gradient: must differ).
"""

import gc
import sys

import torch
import torch.distributed as dist

from cl_domains.core.distributed import gather_with_grad, local_slice, rank, world_size
from cl_domains.core.losses import info_nce

GLOBAL, DIM = 8, 5


def setup():
    torch.manual_seed(0)
    model = torch.nn.Linear(DIM, 4).double()
    x1 = torch.randn(GLOBAL, DIM, dtype=torch.float64)
    x2 = x1 + 0.3 * torch.randn(GLOBAL, DIM, dtype=torch.float64)
    return model, x1, x2


def main(out: str, mode: str) -> None:
    dist.init_process_group("gloo")
    model, x1, x2 = setup()
    ddp = torch.nn.parallel.DistributedDataParallel(model)
    n = GLOBAL // world_size()
    mine = local_slice(n)
    q, k = ddp(x1[mine]), ddp(x2[mine])
    if mode == "grad":
        keys = gather_with_grad(k)
    else:
        parts = [torch.empty_like(k) for _ in range(world_size())]
        dist.all_gather(parts, k.detach())
        parts[rank()] = k
        keys = torch.cat(parts)
    loss = info_nce(q, keys, 0.2, positives=torch.arange(n) + mine.start)
    loss.backward()
    total = loss.detach().clone()
    dist.all_reduce(total)
    if rank() == 0:
        torch.save(
            {"loss": total / world_size(), "grads": [p.grad for p in model.parameters()]}, f"{out}/result-{mode}.pt"
        )
    del ddp, q, k, keys, loss
    gc.collect()
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
