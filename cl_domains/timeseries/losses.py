"""TS2Vec's hierarchical contrastive loss (Yue et al., AAAI 2022, §3.2-3.3) and AutoTCL's global and local
InfoNCE (Zheng et al., ICLR 2024, §3.3), built on the core losses and the objective slot.

Each term builds its own contrastive structure and, given an :class:`~cl_domains.core.objectives.Objective`
(the recipe's ``method.objective``), hands it to the chosen loss:

* TS2Vec: both contrasts are dot-product NT-Xent over ``2N`` rows with the self-pair excluded (``nt_xent``
  at temperature 1, symmetric): instance: per timestamp, the rows are the ``2B`` series of both views (eq. 2);
  temporal: per series, the ``2T`` timestamps of both views (eq. 1); the hierarchy max-pools both views by 2
  along time until one timestamp is left (Alg. 1). ``nt_xent`` (the published choice, any temperature) runs
  on one batched logit tensor; the other losses go through the slot group by group (a block-diagonal
  negatives mask keeps each timestamp's, or series', rows to themselves), which for ``nt_xent`` gives the same
  value (tested).
* AutoTCL global: the max-pooled views, the other view of the same series is the positive (``info_nce``,
  cosine, temperature 1: the published choice).
* AutoTCL local: within each series, a segment's positive is the next segment, its negatives the segments two
  or more away; the query and key sets are the same segments, so losses that add the other queries as
  candidates (``nt_xent``, ``dcl``, ``dhel``) see each candidate twice (a constant ``log 2`` for ``nt_xent``
  and ``dcl``; ``dhel`` becomes the decoupled ``info_nce``).

Without an objective each function computes the published formula directly on the core losses.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..core.losses import contrastive_nll, info_nce
from ..core.objectives import Objective

__all__ = [
    "paired_rows_loss",
    "instance_loss",
    "temporal_loss",
    "hierarchical_loss",
    "global_loss",
    "local_loss",
    "MAX_SLOT_ENTRIES",
]

MAX_SLOT_ENTRIES = 1 << 22  # logit entries per slot call when groups are packed block-diagonally


def paired_rows_loss(rows: Tensor, objective: Objective | None = None) -> Tensor:
    """``rows``: ``[G, 2N, D]``, row ``i`` and ``i +- N`` of each group are the positive pair; mean NLL over the
    ``G * 2N`` rows. ``objective`` (default: dot-product ``nt_xent`` at temperature 1) chooses the loss."""
    if objective is not None and objective.loss_name != "nt_xent":
        return _slot_groups(rows, objective)
    g, n2, _ = rows.shape
    logits = rows @ rows.transpose(1, 2)
    if objective is not None:
        logits = logits / objective.temperature()
    other = (torch.arange(n2, device=rows.device) + n2 // 2) % n2
    not_self = ~torch.eye(n2, dtype=torch.bool, device=rows.device)
    return contrastive_nll(logits.reshape(g * n2, n2), other.repeat(g), not_self.repeat(g, 1)).mean()


def _slot_groups(rows: Tensor, objective: Objective) -> Tensor:
    """The slot's loss per group (query: the first view's rows, key: the second's, symmetric, dot product),
    several groups per call under a block-diagonal negatives mask; mean over all ``G * 2N`` anchors."""
    g, n2, d = rows.shape
    n = n2 // 2
    per_call = max(1, int((MAX_SLOT_ENTRIES // (2 * n2 * n2)) ** 0.5))  # [gN, 2gN] logits per direction
    terms = []
    for lo in range(0, g, per_call):
        part = rows[lo : lo + per_call]
        m = part.shape[0]
        group = torch.arange(m, device=rows.device).repeat_interleave(n)
        same = group[:, None] == group[None, :]
        q, k = part[:, :n].reshape(m * n, d), part[:, n:].reshape(m * n, d)
        terms.append(objective(q, k, negatives=same, symmetric=True, normalize=False, reduction="none"))
    return torch.cat(terms).mean()


def instance_loss(z1: Tensor, z2: Tensor, objective: Objective | None = None) -> Tensor:
    """TS2Vec eq. 2 on ``[B, T, D]`` views: the other view of the same series is the positive."""
    if z1.shape[0] == 1:
        return z1.sum() * 0.0
    return paired_rows_loss(torch.cat([z1, z2], 0).transpose(0, 1), objective)


def temporal_loss(z1: Tensor, z2: Tensor, objective: Objective | None = None) -> Tensor:
    """TS2Vec eq. 1: the same timestamp in the other view is the positive, other timestamps are negatives."""
    if z1.shape[1] == 1:
        return z1.sum() * 0.0
    return paired_rows_loss(torch.cat([z1, z2], 1), objective)


def hierarchical_loss(
    z1: Tensor, z2: Tensor, alpha: float = 0.5, temporal_unit: int = 0, *, objective: Objective | None = None
) -> Tensor:
    """TS2Vec Alg. 1: ``alpha * instance + (1 - alpha) * temporal`` at every scale, averaged over scales."""
    total, scales = z1.new_zeros(()), 0
    while True:
        if alpha:
            total = total + alpha * instance_loss(z1, z2, objective)
        if z1.shape[1] == 1:
            scales += 1
            break
        if scales >= temporal_unit and alpha != 1:
            total = total + (1 - alpha) * temporal_loss(z1, z2, objective)
        scales += 1
        z1 = F.max_pool1d(z1.transpose(1, 2), 2).transpose(1, 2)
        z2 = F.max_pool1d(z2.transpose(1, 2), 2).transpose(1, 2)
    return total / scales


def global_loss(
    z1: Tensor, z2: Tensor, temperature: float = 1.0, normalize: bool = True, *, objective: Objective | None = None
) -> Tensor:
    """AutoTCL's global InfoNCE: cosine (or dot-product) similarity of the max-pooled views; the other view of the
    same series is the positive, the other series' views are the negatives. ``objective`` (its loss and
    temperature) replaces ``info_nce`` at ``temperature``."""
    if z1.shape[0] == 1:
        return z1.sum() * 0.0
    p1, p2 = z1.max(1).values, z2.max(1).values
    if objective is None:
        return info_nce(p1, p2, temperature, normalize=normalize)
    return objective(p1, p2, normalize=normalize)


def local_loss(
    z: Tensor,
    segments: int = 16,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
    *,
    objective: Objective | None = None,
) -> Tensor:
    """AutoTCL's local InfoNCE within each series: a random window of ``segments`` equal segments, each max-pooled;
    a segment's positive is the next one (the previous one for the last), its negatives the segments two or more
    away, ``segments - 3`` per row as in the official code (which scores the first series of the batch only; we
    average over all). Cosine similarity over ``temperature``; ``objective`` (its loss and temperature) replaces
    ``info_nce`` and receives the series' segments block-diagonally (positives, negatives mask)."""
    b, t, d = z.shape
    size = t // segments
    if size < 1 or segments < 4:
        return z.sum() * 0.0
    start = int(torch.randint(0, t - size * segments + 1, (1,), generator=generator))
    seg = z[:, start : start + size * segments].reshape(b, segments, size, d).amax(2)
    idx = torch.arange(segments, device=z.device)
    positive = torch.where(idx < segments - 1, idx + 1, idx - 1)
    negative = (idx[:, None] - idx[None, :]).abs() >= 2
    negative[0, 2] = negative[-1, -3] = False  # the end rows lose one far negative: every row has segments - 3
    if objective is not None:
        flat = seg.reshape(b * segments, d)
        offset = (torch.arange(b, device=z.device) * segments).repeat_interleave(segments)
        positives = positive.repeat(b) + offset
        negatives = torch.block_diag(*[negative] * b)
        return objective(flat, flat, positives=positives, negatives=negatives)
    seg = F.normalize(seg, dim=-1)
    logits = (seg @ seg.transpose(1, 2) / temperature).reshape(b * segments, segments)
    return contrastive_nll(logits, positive.repeat(b), negative.repeat(b, 1)).mean()
