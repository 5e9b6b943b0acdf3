"""Contrastive terms of CL4SRec and MCLRec on the objective slot (:mod:`cl_domains.core.objectives`).

Both methods contrast two views of the same ``N`` sequences (CL4SRec: two data-augmented views; MCLRec: data
views and their model-augmented images): view ``a_i``'s positive is ``b_i``, every other row of the batch is a
negative. Both published terms are NT-Xent over the ``2N`` rows on raw dot products (CL4SRec eq. 5, MCLRec
eqs. 7 and 9; no normalisation, temperature 1), which the slot expresses exactly: ``loss: nt_xent`` with
``symmetric=True`` and ``normalize=False`` equals ``core.losses.nt_xent(a, b, t, normalize=False)``. Other
losses (``info_nce``, ``dcl``, ``dhel``) get the same positives, also on raw dot products; ``supcon`` is refused
(the methods have no labels).
"""

from __future__ import annotations

from torch import Tensor

from ..core.objectives import Objective, objective_config

__all__ = ["CL4SRecObjective", "MCLRecObjective", "view_contrast"]

CL4SRecObjective = objective_config("cl4srec", "nt_xent", 1.0)  # CL4SRec eq. 5, tau = 1 (its released code)
MCLRecObjective = objective_config("mclrec", "nt_xent", 1.0)  # MCLRec eqs. 7 and 9, tau = 1
CL4SRecObjective.__doc__ = "CL4SRec's ``method.objective``: the loss between the two views (published: NT-Xent, t = 1)."
MCLRecObjective.__doc__ = "MCLRec's ``method.objective``: the loss of L_cl1 and L_cl2 (published: NT-Xent, t = 1)."


def view_contrast(objective: Objective, a: Tensor, b: Tensor) -> Tensor:
    """The contrastive term between two views ``a[N, D]``, ``b[N, D]`` of the same sequences: positives on the
    diagonal, both directions (each of the ``2N`` rows is an anchor once), inner products (no normalisation)."""
    return objective(a, b, symmetric=True, normalize=False)
