"""TS2Vec's hierarchical contrastive loss (Yue et al., AAAI 2022, §3.2-3.3), expressed on core losses.

Both contrasts are dot-product InfoNCE at temperature 1 over ``2N`` rows with the self-pair
excluded, i.e. :func:`cl_domains.core.losses.contrastive_nll` with the other view as positive:
* instance: for each timestamp, the rows are the ``2B`` series of both views (eq. 2);
* temporal: for each series, the rows are the ``2T`` timestamps of both views (eq. 1);
and the hierarchy max-pools both views by 2 along time until one timestamp is left (Alg. 1).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..core.losses import contrastive_nll, nt_xent

__all__ = ["paired_rows_loss", "instance_loss", "temporal_loss", "hierarchical_loss", "global_loss"]


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


def global_loss(z1: Tensor, z2: Tensor, temperature: float = 1.0) -> Tensor:
    """AutoTCL's global InfoNCE: series-level (max-pooled over time) NT-Xent between the two views."""
    if z1.shape[0] == 1:
        return z1.sum() * 0.0
    return nt_xent(z1.max(1).values, z2.max(1).values, temperature, normalize=False)
