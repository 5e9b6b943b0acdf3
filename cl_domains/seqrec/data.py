"""User-item sequences and the leave-one-out protocol (S3-Rec / CoSeRec / ICLRec / MCLRec files).

A file has one user per line, ``user item item ...`` in time order, ids from 1 (0 is padding).
:class:`LeaveOneOut` keeps every sequence in one flat array with offsets; batches of
left-aligned, right-padded windows are gathered with tensor indexing, never a per-sample loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..core.data import open_text
from ..core.errors import UserError

__all__ = ["Sequences", "read_sequences", "LeaveOneOut", "gather_windows"]

# Sanity bound on ids when the dataset declares no item count: the largest id may exceed the
# number of distinct ids by this factor plus margin (ids 1..N with gaps pass; a stray 5e7 does not).
ID_SLACK, ID_MARGIN = 4, 100_000


@dataclass
class Sequences:
    """All users' item sequences: ``items[offsets[u]:offsets[u+1]]`` is user ``u`` (0-based row)."""

    items: np.ndarray  # int64, flat
    offsets: np.ndarray  # int64, n_users + 1
    n_items: int
    name: str = ""

    @property
    def n_users(self) -> int:
        return len(self.offsets) - 1

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def user(self, u: int) -> np.ndarray:
        return self.items[self.offsets[u] : self.offsets[u + 1]]


def read_sequences(path: str | Path, n_items: int | None = None, min_length: int = 3) -> Sequences:
    """Read a one-user-per-line file (``.gz`` accepted). Items must be ``1..n_items`` (``n_items``
    defaults to the largest id, which must stay near the number of distinct ids: see ``ID_SLACK``);
    every user needs ``min_length`` items (leave-one-out needs 3)."""
    path = Path(path)
    rows, users, lines = [], set(), []
    with open_text(path) as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                ids = np.array(line.split(), dtype=np.int64)
            except (ValueError, OverflowError):
                raise UserError(
                    f"{path}, line {lineno}: expected integers 'user item item ...', got {line.strip()[:80]!r}."
                ) from None
            user, seq = int(ids[0]), ids[1:]
            if user in users:
                raise UserError(f"{path}, line {lineno}: user {user} appears twice; one line per user.")
            users.add(user)
            if len(seq) < min_length:
                raise UserError(
                    f"{path}, line {lineno}: user {user} has {len(seq)} item(s); leave-one-out needs at least "
                    f"{min_length} (one to train on, one for validation, one for test). Filter the file first."
                )
            if seq.min() < 1:
                raise UserError(
                    f"{path}, line {lineno}: item id {int(seq.min())} is out of range; ids start at 1 (0 is padding)."
                )
            rows.append(seq)
            lines.append(lineno)
    if not rows:
        raise UserError(f"{path}: no user sequences found.")
    items = np.concatenate(rows)
    top = int(items.max())
    if n_items is not None and top > n_items:
        line = lines[next(i for i, r in enumerate(rows) if r.max() > n_items)]
        raise UserError(f"{path}, line {line}: item id {top} is out of range: the dataset declares {n_items} items.")
    distinct = int(np.unique(items).size)
    if n_items is None and top > ID_SLACK * distinct + ID_MARGIN:
        # the embedding table has one row per id up to the largest: refuse a table mostly empty
        line = lines[next(i for i, r in enumerate(rows) if r.max() == top)]
        gb = (top + 1) * 64 * 4 * 4 / 1e9  # 64-dim float32 rows, with gradient and two Adam moments
        raise UserError(
            f"{path}, line {line}: item id {top:,} is far above the {distinct:,} distinct items; the item "
            f"table would have {top + 1:,} rows (~{gb:,.1f} GB at 64 dimensions with its optimiser state). "
            f"Renumber the items 1..{distinct:,} first."
        )
    offsets = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum([len(r) for r in rows], out=offsets[1:])
    return Sequences(items, offsets, n_items or top, path.name)


def gather_windows(items: Tensor, start: Tensor, end: Tensor, max_len: int) -> tuple[Tensor, Tensor]:
    """Rows ``items[max(start, end - max_len):end]``, left-aligned and zero-padded to the longest.

    Returns ``(seqs [B, L], lengths [B])`` with ``L = min(max_len, longest window)``."""
    lengths = torch.minimum(end - start, torch.full_like(end, max_len))
    width = int(lengths.max())
    pos = torch.arange(width, device=items.device)
    idx = (end - lengths).unsqueeze(1) + pos
    valid = pos < lengths.unsqueeze(1)
    seqs = torch.where(valid, items[idx.clamp(max=len(items) - 1)], torch.zeros((), dtype=items.dtype))
    return seqs, lengths


def _ranges(start: Tensor, counts: Tensor) -> Tensor:
    """Concatenation of ``arange(start[i], start[i] + counts[i])`` over ``i``."""
    total = int(counts.sum())
    return torch.repeat_interleave(start - torch.cumsum(counts, 0) + counts, counts) + torch.arange(total)


class LeaveOneOut:
    """Last item = test target, second-to-last = validation target, the rest trains.

    Training samples are every prefix of the training part: input ``s[:t]`` (its last ``max_len``
    items), target ``s[t]`` for ``t = 1 .. n-3``."""

    def __init__(self, seqs: Sequences, max_len: int = 50):
        self.seqs, self.max_len = seqs, max_len
        self.items = torch.from_numpy(seqs.items)
        starts = torch.from_numpy(seqs.offsets[:-1])
        ends = torch.from_numpy(seqs.offsets[1:])
        self.user_start = starts
        n_train = (ends - starts - 3).clamp(min=0)  # prefixes per user
        self.sample_user = torch.repeat_interleave(torch.arange(seqs.n_users), n_train)
        self.sample_target = _ranges(starts + 1, n_train)  # flat index of each target
        self.valid_target = ends - 2
        self.test_target = ends - 1

    @property
    def n_items(self) -> int:
        return self.seqs.n_items

    @property
    def n_train(self) -> int:
        return len(self.sample_target)

    def train_batch(self, sample_ids: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(seqs, lengths, targets)`` for training samples ``sample_ids``."""
        end = self.sample_target[sample_ids]
        seqs, lengths = gather_windows(self.items, self.user_start[self.sample_user[sample_ids]], end, self.max_len)
        return seqs, lengths, self.items[end]

    def eval_batch(self, users: Tensor, split: str) -> tuple[Tensor, Tensor, Tensor]:
        """``(seqs, lengths, targets)``: the history before the ``valid`` or ``test`` target of ``users``."""
        end = (self.valid_target if split == "valid" else self.test_target)[users]
        seqs, lengths = gather_windows(self.items, self.user_start[users], end, self.max_len)
        return seqs, lengths, self.items[end]

    def history(self, users: Tensor, split: str) -> tuple[Tensor, Tensor]:
        """``(row, item)`` pairs of every item each user interacted with before the ``split`` target."""
        end = (self.valid_target if split == "valid" else self.test_target)[users]
        start = self.user_start[users]
        counts = end - start
        row = torch.repeat_interleave(torch.arange(len(users)), counts)
        return row, self.items[_ranges(start, counts)]

    def train_part(self) -> Sequences:
        """Each user's training items (all but the last two), e.g. for item-similarity tables."""
        s = self.seqs
        lengths = torch.from_numpy(s.lengths) - 2
        keep = _ranges(self.user_start, lengths)
        offsets = np.zeros(s.n_users + 1, dtype=np.int64)
        np.cumsum(lengths.numpy(), out=offsets[1:])
        return Sequences(s.items[keep.numpy()], offsets, s.n_items, s.name)
