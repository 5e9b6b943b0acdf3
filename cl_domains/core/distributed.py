"""Cross-process gathering *with gradient*, so a global batch supplies the negatives.

Under torchrun, each process computes its loss over its local anchors against the gathered
keys. The backward of :func:`gather_with_grad` sums the key gradients of all processes
(all-reduce) and keeps this process's slice; DDP then averages parameter gradients over the
world, which yields exactly the gradient of the single-process loss over the global batch.
A plain ``dist.all_gather`` (no gradient through the other processes' terms) does not.
"""
from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor

__all__ = ["is_distributed", "rank", "world_size", "gather_with_grad", "local_slice"]


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


class _GatherWithGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        sizes = [torch.zeros(1, dtype=torch.long, device=x.device) for _ in range(world_size())]
        dist.all_gather(sizes, torch.tensor([x.shape[0]], device=x.device))
        ctx.sizes = [int(s) for s in sizes]
        ctx.rank = rank()
        if len(set(ctx.sizes)) != 1:
            raise ValueError(f"gather_with_grad needs equal local batch sizes on every process, got {ctx.sizes}")
        parts = [torch.empty_like(x) for _ in range(world_size())]
        dist.all_gather(parts, x.contiguous())
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        grad = grad.contiguous().clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        start = sum(ctx.sizes[: ctx.rank])
        return grad[start : start + ctx.sizes[ctx.rank]]


def gather_with_grad(x: Tensor) -> Tensor:
    """Concatenate ``x`` from every process (rank order), differentiable; identity when not distributed."""
    if not is_distributed() or world_size() == 1:
        return x
    return _GatherWithGrad.apply(x)


def local_slice(n_local: int) -> slice:
    """Rows of this process inside a gathered tensor (e.g. for the positive diagonal offset)."""
    return slice(rank() * n_local, (rank() + 1) * n_local)
