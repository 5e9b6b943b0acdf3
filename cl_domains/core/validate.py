"""Checks at the domain boundary: every reader passes its features, targets, timestamps and scores through
:func:`check_finite` before anything is computed from them, so NaN, infinity and values too large to square
are refused with one paragraph naming the file, the column and the first bad row."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .errors import UserError

__all__ = ["check_finite", "check_metrics", "check_allocation", "max_array_bytes", "LARGEST", "NonFiniteMetric"]

ARRAY_ENV = "CL_DOMAINS_MAX_ARRAY_GB"

# the largest magnitude accepted: its square (a squared error, a variance) still fits in float64
LARGEST = 1e150


class NonFiniteMetric(UserError):
    """A final metric came out NaN or infinite; the message names it and the likely cause."""


def max_array_bytes() -> int:
    """The most bytes one array built by a reader may take: ``$CL_DOMAINS_MAX_ARRAY_GB`` (GiB), default 8."""
    import os

    raw = os.environ.get(ARRAY_ENV, "8")
    try:
        gib = float(raw)
    except ValueError:
        raise UserError(f"${ARRAY_ENV} = {raw!r} is not a number of GiB (e.g. 16).") from None
    return int(gib * 2**30)


def check_allocation(nbytes: float, *, what: str, file: str | Path | None, fix: str) -> None:
    """Refuse to build an array of ``nbytes`` over :func:`max_array_bytes`, naming the estimate and the fix.

    Args:
        nbytes: the estimated size of the array.
        what: what would be built ("the padded series [120 x 50,000,000 x 1] float64").
        file: the file it comes from.
        fix: how to make it smaller.
    """
    limit = max_array_bytes()
    if nbytes > limit:
        raise UserError(
            f"{f'{file}: ' if file is not None else ''}{what} would take about {nbytes / 2**30:,.1f} GiB, over the "
            f"readers' limit of {limit / 2**30:g} GiB. {fix} (or raise ${ARRAY_ENV} if the machine has the memory)."
        )


def _first_bad(bad: np.ndarray) -> tuple[int, int | None]:
    """(row, column or None) of the first True entry of a 1-D or 2-D mask."""
    flat = int(np.flatnonzero(bad.reshape(len(bad), -1).any(axis=1))[0])
    if bad.ndim == 1:
        return flat, None
    col = int(np.flatnonzero(bad[flat].reshape(-1))[0])
    return flat, col


def check_finite(
    values: object,
    *,
    what: str,
    file: str | Path | None = None,
    columns: Sequence[str] | None = None,
    first_row: int = 1,
    row_name: str = "row",
    allow_nan: bool = False,
    largest: float = LARGEST,
    fix: str = "",
) -> np.ndarray:
    """Refuse NaN, infinite and huge values (``|v| > largest``) in a numeric array.

    Args:
        values: array-like of numbers, 1-D (one column) or 2-D (rows x columns); higher dimensions are
            checked row by row over the first axis.
        what: what the values are ("regression targets", "node features").
        file: the file they came from (None: an in-memory input).
        columns: the column names, for the error (2-D input).
        first_row: the number of the first row as the user sees it (e.g. 2 under a CSV header).
        row_name: "row", "line", "node", "case" ...
        allow_nan: accept NaN (missing values the reader handles itself); infinity is still refused.
        largest: the largest magnitude accepted.
        fix: the end of the error message (how to fix it).

    Returns:
        ``values`` as a numpy array (unchanged).

    Raises:
        UserError: naming the file, the column and the first bad row, and the value found.
    """
    arr = np.asarray(values)
    if arr.dtype.kind not in "fc" or arr.size == 0:
        return arr
    with np.errstate(invalid="ignore", over="ignore"):
        a = np.abs(arr)
        bad = (np.isinf(a) | (a > largest)) if allow_nan else ~(a <= largest)
    if not bad.any():
        return arr
    if bad.ndim == 0:
        row, col = 0, None
        bad_value = arr.item()
    else:
        row, col = _first_bad(bad)
        bad_value = arr[row].reshape(-1)[col] if col is not None else arr[row]
    kind = "NaN" if np.isnan(bad_value) else ("infinite" if np.isinf(bad_value) else f"too large ({bad_value:.3g})")
    where = f"{file}: " if file is not None else ""
    column = ""
    if col is not None and arr.ndim == 2:
        column = f", column {columns[col]!r}" if columns is not None and col < len(columns) else f", column {col + 1}"
    count = int(bad.reshape(len(bad), -1).any(axis=1).sum()) if bad.ndim else 1
    raise UserError(
        f"{where}{what}: a {kind} value in {row_name} {row + first_row}{column} "
        f"({count:,} {row_name}{'s' if count != 1 else ''} in all with NaN, infinite or |value| > {largest:g}). "
        f"{fix or 'Fix or remove those rows.'}"
    )


def check_metrics(metrics: dict, *, where: str = "the run") -> None:
    """Raise :class:`NonFiniteMetric` when a final metric is NaN or infinite (numbers only; other values
    are ignored)."""
    bad = {}
    for k, v in metrics.items():
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.number)):
            continue
        if not np.isfinite(float(v)):
            bad[k] = float(v)
    if bad:
        shown = ", ".join(f"{k} = {v}" for k, v in list(bad.items())[:5])
        raise NonFiniteMetric(
            f"{where}: the final metrics are not finite ({shown}). The data hold values whose errors overflow, "
            "or a score is constant (a correlation is undefined), or training diverged; check the targets and "
            "scores for huge or constant values, and lower train.lr if the loss grew."
        )
