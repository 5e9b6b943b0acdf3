"""Rank-N-Contrast (Zha et al., NeurIPS 2023): contrast samples by their rank in label space."""

from __future__ import annotations

import torch
from torch import Tensor

from ..core.losses import nested_logsumexp

__all__ = ["rnc_loss"]


def rnc_loss(z: Tensor, y: Tensor, temperature: float = 2.0, reduction: str = "mean") -> Tensor:
    """``L_RnC = 1/A sum_i 1/(A-1) sum_{j != i} -log( e^{s_ij/t} / sum_{k in S_ij} e^{s_ik/t} )``
    with ``S_ij = {k != i : |y_i - y_k| >= |y_i - y_j|}`` (paper eq. 2), ``s`` the negative L2
    distance of the features and ``|.|`` the L1 label distance. The nested denominators come from
    :func:`cl_domains.core.losses.nested_logsumexp` (``O(A^2 log A)``, no ``A^3`` mask)."""
    a = z.shape[0]
    logits = -torch.cdist(z, z) / temperature
    not_self = ~torch.eye(a, dtype=torch.bool, device=z.device)
    denominators = nested_logsumexp(logits, (y[:, None] - y[None, :]).abs(), not_self)  # log sum_{k in S_ij}
    loss = (denominators - logits)[not_self].reshape(a, a - 1)
    if reduction == "none":
        return loss
    return loss.mean() if reduction == "mean" else loss.sum()
