"""The :class:`Mixtures` record that SupReMix's sampler (:mod:`.supremix`) builds and its losses
(:mod:`.losses`) read; a module of its own so that neither imports the other for it."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

__all__ = ["Mixtures"]


@dataclass
class Mixtures:
    """Per-anchor mixtures: ``emb [A, M, D]``, ``label [A, M]``, ``positive [A, M]`` (anchor-exclusive,
    label = the anchor's), ``valid [A, M]`` (False where an anchor had no candidate), plus the indices
    and coefficients that made them (``first``, ``second``, ``coef``: ``emb = coef * z[first] +
    (1 - coef) * z[second]``)."""

    emb: Tensor
    label: Tensor
    positive: Tensor
    valid: Tensor
    first: Tensor
    second: Tensor
    coef: Tensor
