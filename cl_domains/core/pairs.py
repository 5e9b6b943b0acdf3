"""Positive/negative structure: boolean masks and per-pair weights that the losses consume.

Samplers decide *which* pairs count and *how much*; :mod:`cl_domains.core.losses` only scores.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = [
    "labels_to_positives",
    "drop_false_negatives",
    "inverse_propensity_weights",
    "normalize_row_weights",
]


def labels_to_positives(labels: Tensor, other: Tensor | None = None, *, exclude_self: bool = True) -> Tensor:
    """``[A, C]`` mask of pairs that share a label; ``exclude_self`` drops the diagonal when the
    two label sets are the same rows."""
    other = labels if other is None else other
    mask = labels[:, None] == other[None, :]
    if exclude_self and other is labels:
        mask &= ~torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    return mask


def drop_false_negatives(similarity: Tensor, threshold: float, negatives: Tensor | None = None) -> Tensor:
    """Negatives mask without the pairs a reference similarity deems too close to be negatives
    (e.g. MultiCSR's 0.95 under a reference model, DebCSE's semantic filter)."""
    keep = similarity < threshold
    return keep if negatives is None else negatives & keep


def inverse_propensity_weights(
    values: Tensor,
    reference: Tensor,
    bins: int = 10,
    clip: tuple[float, float] = (0.2, 5.0),
    value_range: tuple[float, float] = (0.0, 1.0),
) -> Tensor:
    """IPW of each entry of ``values``: ``1 / p(bin(value))`` with ``p`` the histogram density of
    ``reference`` (the population a naive rule draws from), rescaled so that the reference
    population has mean weight 1, then clipped (the usual variance control of IPW)."""
    lo, hi = value_range
    edges = torch.linspace(lo, hi, bins + 1, device=reference.device)[1:-1]
    ref_bins = torch.bucketize(reference.reshape(-1).clamp(lo, hi), edges)
    density = torch.bincount(ref_bins, minlength=bins).double() / max(reference.numel(), 1)
    inv = torch.where(density > 0, 1.0 / density.clamp_min(1e-12), torch.zeros_like(density))
    inv = inv / (density * inv).sum().clamp_min(1e-12)  # E_ref[w] = 1
    w = inv[torch.bucketize(values.clamp(lo, hi), edges)]
    return w.clamp(*clip).to(values.dtype)


def normalize_row_weights(weights: Tensor, mask: Tensor) -> Tensor:
    """Rescale each row's weights over ``mask`` to mean 1 (zero outside the mask), so weighting
    changes the shape of the negative distribution, not the loss scale."""
    w = weights.masked_fill(~mask, 0.0)
    count = mask.sum(-1, keepdim=True).clamp_min(1)
    mean = w.sum(-1, keepdim=True) / count
    return torch.where(mean > 0, w / mean.clamp_min(1e-12), w)
