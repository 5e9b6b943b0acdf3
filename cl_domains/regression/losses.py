"""The regression methods' contrastive terms on the objective slot (:mod:`cl_domains.core.objectives`).

``method.objective.loss`` chooses the loss; each method builds its own structure over the 2-view batch
``z = [v1; v2]`` (``[2B, D]``, targets ``y`` ``[2B]``, row ``i`` and ``i + B`` are the two views of one example).

**SupReMix** (published: ``supcon @ t=0.5``). For anchor ``i`` the method's columns are the other ``2B - 1`` rows
(*keys*: the other view's rows; *other queries*: the anchor's own view) and the anchor's own mixtures (per anchor,
like hard negatives); its **positives** are the rows with the anchor's target (its other view and exact ties) and
its Mix-pos mixtures, its **negatives** every other row and its Mix-neg mixtures, each negative weighted
``1 + |y_i - y_c|`` (paper sec. 3.3). The loss picks the denominator, as in the slot's table:

=========  ==============================================================================
info_nce   positives and negatives among the keys, and the mixtures
nt_xent    + the other queries: SupReMix eq. 4 itself
supcon     nt_xent's (positives = equal target: the method's positives already are that)
dcl        nt_xent's without the positives (Yeh et al. 2022, eq. 6)
dhel       the negatives among the other queries and the Mix-neg mixtures, no positives
=========  ==============================================================================

The slot's :class:`~cl_domains.core.objectives.Objective` takes hard negatives shared by all anchors and refuses an
``[A, K]`` mask for the losses that contrast other queries unless ``K == A``, so per-anchor mixtures do not pass
through it; :func:`supremix_objective` applies the same table on the same kernel
(:func:`~cl_domains.core.losses.contrastive_nll`) with the mixtures as per-anchor columns. Without mixtures it
equals ``Objective(cfg)(v1, v2, positives=, neg_weights=, symmetric=True)`` exactly, and ``info_nce`` with
mixtures equals the slot on the flattened ``[A, A + A*M]`` layout (both tested). Continuous targets and
``supcon``: "same label" is exact equality of targets, as in SupReMix (its Mix-pos are built to carry the anchor's
target exactly; real ties are 2-20% of the UCI training targets); no binning.

**Rank-N-Contrast** (published: ``rnc @ t=2``): its per-pair nested denominators ``S_ij`` (ranked by label
distance, on negative L2 feature distances) are no positives/negatives/weights structure, so ``rnc`` keeps its
published computation (:func:`.rnc.rnc_loss`); the slot's losses take the two views with positives = equal target
(``supcon``: labels = the targets) through :class:`Objective`, on cosine similarities.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor, nn

from ..core.losses import contrastive_nll
from ..core.objectives import LOSSES, Objective, ObjectiveConfig, objective_config
from .mixtures import Mixtures
from .rnc import rnc_loss

__all__ = [
    "SupReMixObjectiveConfig",
    "RnCObjectiveConfig",
    "supremix_objective",
    "rnc_objective",
    "SupReMixObjective",
    "RnCObjective",
]

SupReMixObjectiveConfig = objective_config("supremix", "supcon", 0.5, labels=True)  # the targets are its labels


class RnCObjectiveConfig(objective_config("rnc", "info_nce", 2.0, labels=True)):
    """``method.objective`` of Rank-N-Contrast: ``rnc`` (published, the default) or a loss of the slot."""

    loss: Literal[("rnc",) + LOSSES] = "rnc"  # type: ignore[valid-type]
    temperature: float = Field(2.0, gt=0)


def _views(a: int, device) -> Tensor:
    if a % 2:
        raise ValueError(f"the 2-view batch needs an even number of rows, got {a}")
    return torch.arange(a, device=device) >= a // 2


def supremix_objective(
    loss: str,
    z: Tensor,
    y: Tensor,
    mixtures: Mixtures | None,
    temperature: float | Tensor,
    distance_weight: bool = True,
    reduction: str = "mean",
) -> Tensor:
    """The SupReMix structure of the 2-view batch ``z`` (targets ``y``) and its ``mixtures`` under ``loss`` (see
    the module's table). Anchors without a positive are left out of the mean."""
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {', '.join(LOSSES)}, got {loss!r}")
    z = F.normalize(z, dim=-1)
    a = z.shape[0]
    not_self = ~torch.eye(a, dtype=torch.bool, device=z.device)
    same = (y[:, None] == y[None, :]) & not_self
    logits, pos, neg = z @ z.T, same, ~same & not_self
    if loss in ("info_nce", "dhel"):
        view = _views(a, z.device)
        keys = view[:, None] != view[None, :]  # the other view's rows
        if loss == "info_nce":  # no other queries
            pos, neg = pos & keys, neg & keys
        else:  # DHEL: the keys are positives only
            neg = neg & ~keys
    dist = (y[:, None] - y[None, :]).abs()
    if mixtures is not None:
        logits = torch.cat([logits, torch.einsum("ad,amd->am", z, mixtures.emb)], 1)
        pos = torch.cat([pos, mixtures.positive & mixtures.valid], 1)
        neg = torch.cat([neg, ~mixtures.positive & mixtures.valid], 1)
        dist = torch.cat([dist, (y[:, None] - mixtures.label).abs()], 1)
    weights = 1.0 + dist if distance_weight else None  # sec. 3.3: push harder on farther labels
    out = contrastive_nll(logits / temperature, pos, neg, weights, decoupled=loss in ("dcl", "dhel"))
    if reduction == "none":
        return out
    has_pos = pos.any(-1)
    return out[has_pos].mean() if reduction == "mean" else out[has_pos].sum()


def rnc_objective(objective: Objective, z: Tensor, y: Tensor, temperature: float | Tensor) -> Tensor:
    """Rank-N-Contrast's term under ``objective``: ``rnc`` is the published loss (Zha et al. eq. 2); another loss
    contrasts the two views through the slot, positives = equal target (``supcon``: labels = the targets)."""
    if objective.loss_name == "rnc":
        return rnc_loss(z, y, temperature)
    _views(z.shape[0], z.device)  # checks the 2-view layout
    b = z.shape[0] // 2
    v1, v2, y1 = z[:b], z[b:], y[:b]
    if objective.loss_name == "supcon":
        return objective(v1, v2, labels=y1, symmetric=True)
    return objective(v1, v2, positives=y1[:, None] == y1[None, :], symmetric=True)


class _MethodObjective(nn.Module):
    def __init__(self, cfg: ObjectiveConfig):
        super().__init__()
        self.cfg = cfg
        self.objective = Objective(cfg)  # holds the (learnable) temperature

    def temperature(self) -> float | Tensor:
        # a fixed temperature is the recipe's float, exactly (exp(-log(1/t)) is not always t in float32)
        return self.objective.temperature() if self.cfg.learnable_temperature else self.cfg.temperature

    def extra_repr(self) -> str:
        return f"loss={self.cfg.loss}"


class SupReMixObjective(_MethodObjective):
    """``SupReMixObjective(cfg)(z, y, mixtures)``: :func:`supremix_objective` with the recipe's loss."""

    def __init__(self, cfg: ObjectiveConfig, distance_weight: bool = True):
        super().__init__(cfg)
        self.distance_weight = distance_weight

    def forward(self, z: Tensor, y: Tensor, mixtures: Mixtures | None) -> Tensor:
        return supremix_objective(self.cfg.loss, z, y, mixtures, self.temperature(), self.distance_weight)


class RnCObjective(_MethodObjective):
    """``RnCObjective(cfg)(z, y)``: :func:`rnc_objective` with the recipe's loss."""

    def forward(self, z: Tensor, y: Tensor) -> Tensor:
        return rnc_objective(self.objective, z, y, self.temperature())
