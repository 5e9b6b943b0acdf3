"""TS2Vec's hierarchical contrastive loss (Yue et al., AAAI 2022, §3.2-3.3), expressed on core losses.

Both contrasts are dot-product InfoNCE at temperature 1 over ``2N`` rows with the self-pair
excluded, i.e. :func:`cl_domains.core.losses.contrastive_nll` with the other view as positive:
* instance: for each timestamp, the rows are the ``2B`` series of both views (eq. 2);
* temporal: for each series, the rows are the ``2T`` timestamps of both views (eq. 1);
and the hierarchy max-pools both views by 2 along time until one timestamp is left (Alg. 1).
AutoTCL's global and local InfoNCE (Zheng et al., ICLR 2024, §3.3) use cosine similarity instead.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..core.losses import contrastive_nll, info_nce

__all__ = ["paired_rows_loss", "instance_loss", "temporal_loss", "hierarchical_loss", "global_loss", "local_loss"]


def paired_rows_loss(rows: Tensor) -> Tensor:
    """``rows``: ``[G, 2N, D]``, row ``i`` and ``i +- N`` of each group are the positive pair; mean NLL."""
    g, n2, _ = rows.shape
    logits = rows @ rows.transpose(1, 2)
    other = (torch.arange(n2, device=rows.device) + n2 // 2) % n2
    not_self = ~torch.eye(n2, dtype=torch.bool, device=rows.device)
    return contrastive_nll(logits.reshape(g * n2, n2), other.repeat(g), not_self.repeat(g, 1)).mean()


def instance_loss(z1: Tensor, z2: Tensor) -> Tensor:
    """TS2Vec eq. 2 on ``[B, T, D]`` views: the other view of the same series is the positive."""
    if z1.shape[0] == 1:
        return z1.sum() * 0.0
    return paired_rows_loss(torch.cat([z1, z2], 0).transpose(0, 1))


def temporal_loss(z1: Tensor, z2: Tensor) -> Tensor:
    """TS2Vec eq. 1: the same timestamp in the other view is the positive, other timestamps are negatives."""
    if z1.shape[1] == 1:
        return z1.sum() * 0.0
    return paired_rows_loss(torch.cat([z1, z2], 1))


def hierarchical_loss(z1: Tensor, z2: Tensor, alpha: float = 0.5, temporal_unit: int = 0) -> Tensor:
    """TS2Vec Alg. 1: ``alpha * instance + (1 - alpha) * temporal`` at every scale, averaged over scales."""
    total, scales = z1.new_zeros(()), 0
    while True:
        if alpha:
            total = total + alpha * instance_loss(z1, z2)
        if z1.shape[1] == 1:
            scales += 1
            break
        if scales >= temporal_unit and alpha != 1:
            total = total + (1 - alpha) * temporal_loss(z1, z2)
        scales += 1
        z1 = F.max_pool1d(z1.transpose(1, 2), 2).transpose(1, 2)
        z2 = F.max_pool1d(z2.transpose(1, 2), 2).transpose(1, 2)
    return total / scales


def global_loss(z1: Tensor, z2: Tensor, temperature: float = 1.0, normalize: bool = True) -> Tensor:
    """AutoTCL's global InfoNCE: cosine (or dot-product) similarity of the max-pooled views; the other view of the
    same series is the positive, the other series' views are the negatives."""
    if z1.shape[0] == 1:
        return z1.sum() * 0.0
    return info_nce(z1.max(1).values, z2.max(1).values, temperature, normalize=normalize)


def local_loss(
    z: Tensor, segments: int = 16, temperature: float = 1.0, generator: torch.Generator | None = None
) -> Tensor:
    """AutoTCL's local InfoNCE within each series: a random window of ``segments`` equal segments, each max-pooled;
    a segment's positive is the next one (the previous one for the last), its negatives the segments two or more
    away, ``segments - 3`` per row as in the official code (which scores the first series of the batch only; we
    average over all). Cosine similarity over ``temperature``."""
    b, t, d = z.shape
    size = t // segments
    if size < 1 or segments < 4:
        return z.sum() * 0.0
    start = int(torch.randint(0, t - size * segments + 1, (1,), generator=generator))
    seg = F.normalize(z[:, start : start + size * segments].reshape(b, segments, size, d).amax(2), dim=-1)
    logits = (seg @ seg.transpose(1, 2) / temperature).reshape(b * segments, segments)
    idx = torch.arange(segments, device=z.device)
    positive = torch.where(idx < segments - 1, idx + 1, idx - 1)
    negative = (idx[:, None] - idx[None, :]).abs() >= 2
    negative[0, 2] = negative[-1, -3] = False  # the end rows lose one far negative: every row has segments - 3
    return contrastive_nll(logits, positive.repeat(b), negative.repeat(b, 1)).mean()
