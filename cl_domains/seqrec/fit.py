"""``fit_interactions`` was replaced by the estimators: ``SASRec(...).fit(log)`` (or ``CL4SRec``, ``MCLRec``)."""

from __future__ import annotations

from ..core.errors import UserError

__all__ = ["fit_interactions"]


def fit_interactions(*args, **kwargs):
    """Replaced by the seqrec estimators; raises :class:`UserError` naming them."""
    raise UserError(
        "fit_interactions(log, ...) was replaced by the seqrec estimators: "
        "SASRec(data={'user': ..., 'item': ..., 'time': ...}, train={'max_steps': N}).fit(log) "
        "(or CL4SRec / MCLRec), then est.predict([history], k=10) in the log's own ids."
    )
