"""Interaction logs (one row per user-item event, with the user's own ids) -> leave-one-out sequences.

A log is a CSV/TSV/JSONL/parquet table or a RecBole ``.inter`` atomic file (read by
:func:`cl_domains.core.tables.read_table`) with a user, an item and, optionally, a time column. Preparation:

1. rows with a missing user, item or time are refused (the error names the row);
2. optional k-core filtering: users and items with fewer than ``k`` interactions are removed, repeatedly,
   until every remaining user and item has at least ``k``;
3. users left with fewer than 3 interactions are dropped (leave-one-out needs a training item, a validation
   and a test target) and counted in :attr:`PreparedLog.dropped_users`;
4. each user's events are sorted by time with a STABLE sort: events with equal times keep their file order
   (without a time column, file order is the time order);
5. raw ids are kept as text (``7`` and ``"7"`` are one id) and become internal ids ``1..N`` in their sorted
   text order (users likewise), so the same log gives the same ids whatever its row order. An id longer
   than :data:`MAX_ID_CHARS` characters is refused (ids are kept in fixed-width arrays, so one huge id
   would multiply the memory of all of them), and so are NaN or infinite times.

Repeated interactions (a user meeting the same item again) are kept as separate events: the item appears
twice in the sequence, and a repeated item may be a validation or test target. Evaluation ranks it like any
other target; with ``eval.mask_history: true`` the user's earlier items are removed from the candidates but
the target itself never is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..core.errors import UserError
from ..core.tables import read_table, require_columns
from ..core.validate import check_finite
from .data import Sequences

__all__ = ["PreparedLog", "prepare_interactions", "read_interactions", "MIN_EVENTS", "MAX_ID_CHARS"]

MIN_EVENTS = 3  # leave-one-out: one item to train on, one validation target, one test target
MAX_ID_CHARS = 1024  # the longest user or item id accepted


@dataclass
class PreparedLog:
    """A prepared log: the sequences (internal ids) and the raw ids behind them."""

    sequences: Sequences
    item_ids: np.ndarray  # str; item_ids[j] is internal item j + 1
    user_ids: np.ndarray  # str; user_ids[u] is sequence row u
    item_counts: np.ndarray  # interactions per item in the prepared log (same order as item_ids)
    rows_read: int = 0
    dropped_users: int = 0  # users with fewer than MIN_EVENTS interactions after filtering
    k_core_removed: int = 0  # interactions removed by the k-core filter
    notes: list[str] = field(default_factory=list)

    def history(self, user) -> list[str]:
        """The raw item ids of ``user`` (a raw user id), oldest first: the input of ``SASRecEncoder.recommend``."""
        key = str(user)
        row = int(np.searchsorted(self.user_ids, key))
        if row >= len(self.user_ids) or self.user_ids[row] != key:
            raise UserError(
                f"user {key!r} is not among the {len(self.user_ids):,} users of the prepared log {self.sequences.name} "
                f"(absent, or dropped: fewer than {MIN_EVENTS} events or removed by k-core). For a new user pass the "
                "items they interacted with to recommend(); with no known item, recommend(..., unknown='skip') "
                "answers with the most popular items."
            )
        return [str(self.item_ids[i - 1]) for i in self.sequences.user(row)]


def _codes(values, path, key: str) -> tuple[np.ndarray, np.ndarray]:
    """``(codes, uniques)``: ids as text (a file and a DataFrame of the same log agree), uniques sorted."""
    import pandas as pd

    if not pd.api.types.is_string_dtype(values) or values.dtype == object:
        values = values.astype(str)  # numbers become text; mixed int/str objects would not sort
    lengths = values.str.len().to_numpy()
    if len(lengths) and lengths.max() > MAX_ID_CHARS:
        row = int(lengths.argmax())
        raise UserError(
            f"the interaction log {path}: the id in {key} at data row {row + 1} is {int(lengths[row]):,} characters "
            f"long, over the limit of {MAX_ID_CHARS:,} (ids are stored at the longest id's width, so this one "
            f"would need about {4 * int(lengths[row]) * len(lengths) / 2**30:,.1f} GiB). Fix that row, or point "
            f"{key} at the id column."
        )
    try:
        codes, uniques = pd.factorize(values, sort=True)
    except TypeError as exc:  # pragma: no cover - defensive
        raise UserError(f"the interaction log {path}: the ids in {key} cannot be ordered ({exc}).") from None
    return codes.astype(np.int64), np.asarray(uniques).astype(str)


def _times(column, path, name: str) -> np.ndarray:
    import pandas as pd

    if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
        return check_finite(
            column.to_numpy(dtype=np.float64),
            what=f"the time column {name!r} (data.time)",
            file=path,
            row_name="data row",
            fix="Times must be finite numbers or dates; fix those rows, or set data.time: null to use the file order.",
        )
    try:
        dates = pd.to_datetime(column, utc=True, format="mixed").dt.tz_localize(None)
        return dates.astype("datetime64[ns]").to_numpy().astype(np.int64)
    except (ValueError, TypeError, OverflowError):
        example = str(column.iloc[0])[:40]
        raise UserError(
            f"the interaction log {path}: the time column {name!r} (named by data.time) holds {example!r}, which is "
            "neither a number nor a date. Point data.time at a numeric or date column, or set data.time: null to "
            "use the file order."
        ) from None


def _check_missing(df, path, columns: dict[str, str | None]) -> None:
    for key, name in columns.items():
        if name is None:
            continue
        missing = df[name].isna().to_numpy()
        if missing.any():
            row = int(np.flatnonzero(missing)[0])
            raise UserError(
                f"the interaction log {path}: column {name!r} (named by {key}) is empty in data row {row + 1} "
                f"({int(missing.sum()):,} empty in all). Remove those rows or fill them in."
            )


def _k_core(users: np.ndarray, items: np.ndarray, k: int) -> np.ndarray:
    """Mask of the interactions that survive iterative k-core filtering (counts include repeats)."""
    keep = np.ones(len(users), dtype=bool)
    while True:
        u_count = np.bincount(users[keep], minlength=users.max() + 1)
        i_count = np.bincount(items[keep], minlength=items.max() + 1)
        bad = keep & ((u_count[users] < k) | (i_count[items] < k))
        if not bad.any():
            return keep
        keep &= ~bad


def prepare_interactions(
    df,
    *,
    user: str = "user_id",
    item: str = "item_id",
    time: str | None = "timestamp",
    k_core: int | None = None,
    path: str | Path = "<DataFrame>",
) -> PreparedLog:
    """Sequences from an interaction table (a pandas DataFrame); see the module docstring for the steps.
    ``path`` names the table in errors."""
    columns = {"data.user": user, "data.item": item, "data.time": time}
    require_columns(df, path, columns, what="interaction log")
    if time is not None and time in (user, item):
        raise UserError(f"the interaction log {path}: data.time names {time!r}, which is also the user or item column.")
    _check_missing(df, path, columns)
    u, user_ids = _codes(df[user], path, "data.user")
    i, item_ids = _codes(df[item], path, "data.item")
    t = _times(df[time], path, time) if time is not None else None
    rows = len(df)
    removed = 0
    notes = []
    if k_core and k_core > 1:
        keep = _k_core(u, i, k_core)
        removed = int((~keep).sum())
        if removed:
            notes.append(f"{k_core}-core filtering removed {removed:,} of {rows:,} interactions")
        u, i = u[keep], i[keep]
        t = t[keep] if t is not None else None
    counts = np.bincount(u, minlength=len(user_ids))
    short = counts[u] < MIN_EVENTS
    dropped = int(((counts > 0) & (counts < MIN_EVENTS)).sum())
    if dropped:
        notes.append(
            f"{dropped:,} users with fewer than {MIN_EVENTS} interactions dropped (leave-one-out needs {MIN_EVENTS})"
        )
        u, i = u[~short], i[~short]
        t = t[~short] if t is not None else None
    if len(u) == 0:
        raise UserError(
            f"the interaction log {path}: no user has {MIN_EVENTS} or more interactions"
            f"{f' after {k_core}-core filtering' if k_core and k_core > 1 else ''} ({rows:,} rows read). "
            "Leave-one-out needs at least 3 per user; lower data.k_core or use a larger log."
        )
    # compact ids (filtering may have removed some); np.unique keeps the sorted raw-id order
    used_u, u = np.unique(u, return_inverse=True)
    used_i, i = np.unique(i, return_inverse=True)
    user_ids, item_ids = user_ids[used_u], item_ids[used_i]
    order = np.lexsort((t, u)) if t is not None else np.argsort(u, kind="stable")  # both stable: ties keep file order
    items = i[order].astype(np.int64) + 1
    offsets = np.zeros(len(user_ids) + 1, dtype=np.int64)
    np.cumsum(np.bincount(u, minlength=len(user_ids)), out=offsets[1:])
    seqs = Sequences(items, offsets, len(item_ids), Path(str(path)).name)
    return PreparedLog(
        seqs,
        item_ids,
        user_ids,
        np.bincount(i, minlength=len(item_ids)),
        rows_read=rows,
        dropped_users=dropped,
        k_core_removed=removed,
        notes=notes,
    )


def read_interactions(
    path: str | Path,
    *,
    user: str = "user_id",
    item: str = "item_id",
    time: str | None = "timestamp",
    k_core: int | None = None,
) -> PreparedLog:
    """Read and prepare an interaction log file (CSV/TSV/JSONL/parquet, RecBole ``.inter``, optionally ``.gz``)."""
    path = Path(path).expanduser()
    text = {name: str for c in (user, item) for name in (c, f"{c}:token")}  # ids stay text (RecBole typed headers too)
    df = read_table(path, what="interaction log", dtype=text)
    return prepare_interactions(df, user=user, item=item, time=time, k_core=k_core, path=path)
