"""The sentence methods' contrastive terms on the objective slot (:mod:`cl_domains.core.objectives`).

``method.objective: {loss, temperature, learnable_temperature}`` chooses the loss; each method builds its own
structure and hands it over. None of the methods has class labels, so ``supcon`` is refused at recipe validation.

* **SimCSE** (published ``info_nce @ t=0.05``, eq. 4/5): queries = first views (unsup) or premises (sup), keys =
  second views or entailments, hard negatives = the contradictions (sup, shared by every anchor).
* **DebCSE** (``info_nce @ 0.05``): keys = the IPW-sampled positives (the anchor itself or a semantic neighbour),
  ``neg_weights`` = its ``[B, B]`` IPW negative weights (0 for a false negative). The losses that also contrast
  the other anchors (nt_xent, dcl, dhel) weigh anchor ``j`` as its key ``j`` (the slot's convention: anchor ``j``'s
  positive is ``j`` itself or a neighbour at reference cosine >= ``positive_threshold``).
* **MultiCSR** (``info_nce @ 0.05``): supervised SimCSE with the false negatives (reference cosine >= phi) removed
  from the denominator, hard negatives included (:func:`multicsr_objective`).

A fixed temperature of the slot is the recipe's float exactly, so the default objective gives bit for bit the loss
and gradients of the pre-slot code (tested).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..core.losses import contrastive_nll, similarity
from ..core.objectives import LOSSES, Objective, objective_config

__all__ = [
    "SimCSEObjectiveConfig",
    "DebCSEObjectiveConfig",
    "MultiCSRObjectiveConfig",
    "masked_sup_loss",
    "multicsr_objective",
]

# published choices (the three papers use SimCSE's InfoNCE at t = 0.05); no labels: supcon is refused
SimCSEObjectiveConfig = objective_config("simcse", "info_nce", 0.05)
DebCSEObjectiveConfig = objective_config("debcse", "info_nce", 0.05)
MultiCSRObjectiveConfig = objective_config("multicsr", "info_nce", 0.05)


def masked_sup_loss(anchor, positive, hard_negative, keep, temperature, reduction: str = "mean"):
    """Supervised SimCSE InfoNCE (Gao et al. 2021, eq. 5) over keys ``[positives; hard negatives]`` with the
    negatives where ``keep`` ``[N, 2N]`` is False removed (MultiCSR stage 3); the positive ``positive[i]``
    always counts. MultiCSR's published loss, unchanged."""
    n = anchor.shape[0]
    logits = similarity(anchor, torch.cat([positive, hard_negative])) / temperature
    loss = contrastive_nll(logits, torch.arange(n, device=anchor.device), negatives=keep)
    return loss.mean() if reduction == "mean" else loss


def multicsr_objective(
    objective: Objective,
    anchor: Tensor,
    positive: Tensor,
    hard_negative: Tensor,
    keep: Tensor,
    keep_anchors: Tensor | None = None,
    reduction: str = "mean",
) -> Tensor:
    """MultiCSR's masked structure under ``objective.loss_name``.

    Columns: ``[positives | hard negatives | other anchors]``; ``keep`` ``[N, 2N]`` removes the false negatives
    among the first two blocks, ``keep_anchors`` ``[N, N]`` (reference cosine of the anchors, default: all kept)
    among the other anchors. As in the slot's table: ``info_nce`` = positive + kept keys and hard negatives
    (the published loss, :func:`masked_sup_loss`); ``nt_xent`` adds the kept other anchors; ``dcl`` is
    ``nt_xent`` without the positive in the denominator; ``dhel`` keeps only the hard negatives and the other
    anchors. The slot's ``Objective`` cannot take this: its mask covers the keys, not the shared hard negatives,
    and the losses with other anchors need as many keys as queries; so the table is applied here on the slot's
    kernel (``contrastive_nll``). With every mask True it equals ``Objective(cfg)(anchor, positive,
    hard_negatives=hard_negative)`` (tested)."""
    name = objective.loss_name
    if name not in LOSSES or name == "supcon":
        raise ValueError(f"MultiCSR has no labels: loss must be one of info_nce, nt_xent, dcl, dhel, got {name!r}")
    t = objective.temperature()
    if name == "info_nce":
        return masked_sup_loss(anchor, positive, hard_negative, keep, t, reduction)
    n, dev = anchor.shape[0], anchor.device
    a = F.normalize(anchor, dim=-1)
    cols = F.normalize(torch.cat([positive, hard_negative, anchor]), dim=-1)
    logits = (a / t) @ cols.transpose(0, 1)
    eye = torch.eye(n, dtype=torch.bool, device=dev)
    ka = torch.ones(n, n, dtype=torch.bool, device=dev) if keep_anchors is None else keep_anchors.bool()
    keep = keep.bool()
    neg_pos, neg_hard = keep[:, :n] & ~eye, keep[:, n:]
    if name == "dhel":
        neg_pos = torch.zeros_like(neg_pos)  # the positives' view is not in DHEL's uniformity term
    pos = torch.cat([eye, torch.zeros(n, 2 * n, dtype=torch.bool, device=dev)], 1)
    neg = torch.cat([neg_pos, neg_hard, ka & ~eye], 1)
    loss = contrastive_nll(logits, pos, neg, decoupled=name in ("dcl", "dhel"))
    if reduction == "none":
        return loss
    return loss.mean() if reduction == "mean" else loss.sum()
