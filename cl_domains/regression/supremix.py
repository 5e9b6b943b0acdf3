"""SupReMix (Wu et al., "Mixup Your Own Pairs", arXiv 2309.16633): supervised contrastive
regression whose hard pairs are mixtures of embeddings.

For each anchor ``i`` (a row of the 2-view batch):

* anchor-inclusive mixtures ``a z_i + (1 - a) z_k`` with ``y_k != y_i``, ``a ~ Beta(2, 8)``, label
  mixed the same way, are **hard negatives** (paper sec. 3.2, "Mix-neg");
* anchor-exclusive mixtures ``a z_j + (1 - a) z_k`` with ``y_j < y_i < y_k`` inside the label window
  ``|y - y_i| <= window`` and ``a = (y_k - y_i) / (y_k - y_j)`` have label exactly ``y_i`` and are
  **hard positives** (sec. 3.2, "Mix-pos");
* real rows with exactly the anchor's label are positives (mostly its other view), the other real
  rows are negatives;
* every denominator term is weighted by ``1 + |y_i - y_c|`` (label-distance weighting, sec. 3.3).

Mixtures are built from the detached, L2-normalised embeddings and are not re-normalised (as in the
released code). Unlike the released code's dense ``N^3 x d`` tensor, mixtures are *sampled*: a fixed
``n_neg`` and ``n_pos`` per anchor, so memory is ``O(N (N + n_neg + n_pos) + N (n_neg + n_pos) d)``.
The loss is :func:`cl_domains.regression.losses.supremix_objective` (SupCon's L_out with per-pair
negative weights, on core's kernel); ``method.objective`` swaps its denominator.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .losses import supremix_objective
from .mixtures import Mixtures

__all__ = ["Mixtures", "supremix_mixtures", "supremix_loss", "SupReMixLoss"]


def _pick(mask: np.ndarray, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``n`` column indices per row, uniform with replacement among the row's True entries; and
    whether the row had any. ``O(A n log A)``: a uniform rank per draw, located by one
    ``searchsorted`` over the row-offset cumulative counts."""
    rows, cols = mask.shape
    counts = mask.sum(1)
    rank = np.floor(rng.random((rows, n)) * np.maximum(counts, 1)[:, None]).astype(np.int64)
    offset = (np.arange(rows) * (cols + 1))[:, None]
    flat = (np.cumsum(mask, 1) + offset).ravel()  # strictly increasing across rows
    pos = np.searchsorted(flat, (rank + 1 + offset).ravel(), side="left").reshape(rows, n)
    return np.minimum(pos - np.arange(rows)[:, None] * cols, cols - 1), counts > 0


def supremix_mixtures(
    z: Tensor,
    y: Tensor,
    rng: np.random.Generator,
    n_neg: int = 16,
    n_pos: int = 16,
    window: float = 1.0,
    beta: tuple[float, float] = (2.0, 8.0),
) -> Mixtures:
    """Sample ``n_neg`` anchor-inclusive and ``n_pos`` anchor-exclusive mixtures per row of ``z``
    (``[A, D]``, used as given: pass normalised, detached embeddings)."""
    a = z.shape[0]
    yn = y.detach().cpu().double().numpy()
    rows = np.arange(a)[:, None]
    firsts, seconds, coefs, labels, pos, valid = [], [], [], [], [], []
    if n_neg:
        k, ok = _pick(yn[:, None] != yn[None, :], n_neg, rng)
        lam = rng.beta(beta[0], beta[1], (a, n_neg))
        firsts.append(np.broadcast_to(rows, (a, n_neg)))
        seconds.append(k)
        coefs.append(lam)
        labels.append(lam * yn[:, None] + (1 - lam) * yn[k])  # Mix-neg label: mixed like the embedding
        pos.append(np.zeros((a, n_neg), bool))
        valid.append(np.broadcast_to(ok[:, None], (a, n_neg)))
    if n_pos:
        gap = yn[None, :] - yn[:, None]  # y_c - y_i
        j, ok_lo = _pick((gap < 0) & (gap >= -window), n_pos, rng)
        k, ok_hi = _pick((gap > 0) & (gap <= window), n_pos, rng)
        yj, yk = yn[j], yn[k]
        lam = np.where(ok_lo[:, None] & ok_hi[:, None], (yk - yn[:, None]) / np.where(yk > yj, yk - yj, 1.0), 0.0)
        firsts.append(j)
        seconds.append(k)
        coefs.append(lam)
        labels.append(np.broadcast_to(yn[:, None], (a, n_pos)))  # Mix-pos: lam*y_j + (1-lam)*y_k = y_i exactly
        pos.append(np.ones((a, n_pos), bool))
        valid.append(np.broadcast_to((ok_lo & ok_hi)[:, None], (a, n_pos)))
    dev = z.device
    first = torch.as_tensor(np.concatenate(firsts, 1), device=dev)
    second = torch.as_tensor(np.concatenate(seconds, 1), device=dev)
    coef = torch.as_tensor(np.concatenate(coefs, 1), dtype=z.dtype, device=dev)
    emb = coef.unsqueeze(-1) * z[first] + (1 - coef).unsqueeze(-1) * z[second]
    return Mixtures(
        emb,
        torch.as_tensor(np.concatenate(labels, 1), dtype=y.dtype, device=dev),
        torch.as_tensor(np.concatenate(pos, 1), device=dev),
        torch.as_tensor(np.concatenate(valid, 1), device=dev),
        first,
        second,
        coef,
    )


def supremix_loss(
    z: Tensor,
    y: Tensor,
    mixtures: Mixtures | None,
    temperature: float = 0.5,
    distance_weight: bool = True,
    reduction: str = "mean",
) -> Tensor:
    """The SupReMix objective (paper eq. 4) over normalised ``z`` ``[A, D]`` and labels ``y`` ``[A]``:
    ``-1/|P_i| sum_{p in P_i} log( e^{s_ip/t} / sum_{c != i} w_ic e^{s_ic/t} )`` with ``P_i`` the real
    and mixture positives, ``c`` over real rows and the anchor's mixtures, ``w_ic = 1 + |y_i - y_c|``
    (1 for every positive). Anchors without a positive are left out of the mean. This is the published
    objective, ``supcon`` of :func:`cl_domains.regression.losses.supremix_objective`."""
    return supremix_objective("supcon", z, y, mixtures, temperature, distance_weight, reduction)


class SupReMixLoss(nn.Module):
    """The SupReMix loss as a module: ``SupReMixLoss()(z, y, rng)`` samples the mixtures and scores."""

    def __init__(
        self,
        temperature: float = 0.5,
        n_neg: int = 16,
        n_pos: int = 16,
        window: float = 1.0,
        beta: tuple[float, float] = (2.0, 8.0),
        distance_weight: bool = True,
    ):
        super().__init__()
        self.temperature, self.n_neg, self.n_pos, self.window = temperature, n_neg, n_pos, window
        self.beta, self.distance_weight = beta, distance_weight

    def forward(self, z: Tensor, y: Tensor, rng: np.random.Generator) -> Tensor:
        mix = None
        if self.n_neg or self.n_pos:
            mix = supremix_mixtures(
                F.normalize(z.detach(), dim=-1), y, rng, self.n_neg, self.n_pos, self.window, self.beta
            )
        return supremix_loss(z, y, mix, self.temperature, self.distance_weight)
