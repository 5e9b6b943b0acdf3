"""Sequence augmentations of CL4SRec (crop, mask, reorder) and CoSeRec (insert, substitute).

Every function takes a left-aligned, zero-padded batch ``seqs [B, L]`` with ``lengths [B]`` and
returns a NEW ``(seqs, lengths)`` pair — inputs are never modified — computed for the whole batch
with tensor ops. Sequences of length 1 are returned unchanged.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor

from .data import Sequences

__all__ = ["crop", "mask", "reorder", "insert", "substitute", "two_views", "similar_items", "AUGMENTATIONS"]


def _count(lengths: Tensor, ratio: float) -> Tensor:
    """``floor(ratio * n)`` items per row, 0 for rows of length 1."""
    return torch.where(lengths > 1, (ratio * lengths).floor().long(), torch.zeros_like(lengths))


def _valid(seqs: Tensor, lengths: Tensor) -> Tensor:
    return torch.arange(seqs.shape[1], device=seqs.device) < lengths.unsqueeze(1)


def crop(
    seqs: Tensor, lengths: Tensor, ratio: float = 0.5, *, generator: torch.Generator | None = None, **_
) -> tuple[Tensor, Tensor]:
    """Keep a random contiguous run of ``floor(ratio * n)`` items (at least one)."""
    keep = torch.where(lengths > 1, _count(lengths, ratio).clamp(min=1), lengths)
    start = (torch.rand(len(lengths), generator=generator) * (lengths - keep + 1)).long().clamp(max=lengths - keep)
    pos = torch.arange(seqs.shape[1])
    src = (start.unsqueeze(1) + pos).clamp(max=seqs.shape[1] - 1)
    out = torch.where(pos < keep.unsqueeze(1), seqs.gather(1, src), torch.zeros_like(seqs))
    return out, keep


def mask(
    seqs: Tensor, lengths: Tensor, ratio: float = 0.5, *, mask_id: int, generator: torch.Generator | None = None, **_
) -> tuple[Tensor, Tensor]:
    """Replace ``floor(ratio * n)`` random positions with ``mask_id``."""
    keys = torch.rand(seqs.shape, generator=generator).masked_fill(~_valid(seqs, lengths), 2.0)
    rank = keys.argsort(1).argsort(1)
    return seqs.masked_fill(rank < _count(lengths, ratio).unsqueeze(1), mask_id), lengths.clone()


def reorder(
    seqs: Tensor, lengths: Tensor, ratio: float = 0.8, *, generator: torch.Generator | None = None, **_
) -> tuple[Tensor, Tensor]:
    """Shuffle a random contiguous block of ``floor(ratio * n)`` items."""
    size = _count(lengths, ratio)
    start = (torch.rand(len(lengths), generator=generator) * (lengths - size + 1)).long()
    pos = torch.arange(seqs.shape[1], dtype=torch.float).expand(seqs.shape)
    inside = (pos >= start.unsqueeze(1)) & (pos < (start + size).unsqueeze(1))
    # Sorting by these keys permutes the block among its own slots and leaves the rest in place.
    shuffled = start.unsqueeze(1) - 0.5 + torch.rand(seqs.shape, generator=generator) * size.unsqueeze(1)
    order = torch.where(inside, shuffled, pos).argsort(1)
    return seqs.gather(1, order), lengths.clone()


def substitute(
    seqs: Tensor, lengths: Tensor, ratio: float = 0.2, *, similar: Tensor, generator: torch.Generator | None = None, **_
) -> tuple[Tensor, Tensor]:
    """Replace ``floor(ratio * n)`` random items by their most similar item (``similar[item]``)."""
    keys = torch.rand(seqs.shape, generator=generator).masked_fill(~_valid(seqs, lengths), 2.0)
    chosen = keys.argsort(1).argsort(1) < _count(lengths, ratio).unsqueeze(1)
    return torch.where(chosen, similar[seqs], seqs), lengths.clone()


def insert(
    seqs: Tensor, lengths: Tensor, ratio: float = 0.2, *, similar: Tensor, generator: torch.Generator | None = None, **_
) -> tuple[Tensor, Tensor]:
    """Insert, before ``floor(ratio * n)`` random items, their most similar item; the most recent
    ``L`` items are kept when the result outgrows the window."""
    b, width = seqs.shape
    valid = _valid(seqs, lengths)
    keys = torch.rand(seqs.shape, generator=generator).masked_fill(~valid, 2.0)
    chosen = keys.argsort(1).argsort(1) < _count(lengths, ratio).unsqueeze(1)
    pos = torch.arange(width, dtype=torch.float).expand(seqs.shape)
    inf = torch.full_like(pos, float("inf"))
    key = torch.cat([torch.where(valid, pos, inf), torch.where(chosen, pos - 0.5, inf)], 1)
    value = torch.cat([seqs, similar[seqs]], 1).gather(1, key.argsort(1))
    total = lengths + chosen.sum(1)
    new_len = total.clamp(max=width)
    src = (total - new_len).unsqueeze(1) + torch.arange(width)
    out = torch.where(torch.arange(width) < new_len.unsqueeze(1), value.gather(1, src.clamp(max=2 * width - 1)), 0)
    return out, new_len


AUGMENTATIONS = {"crop": crop, "mask": mask, "reorder": reorder, "insert": insert, "substitute": substitute}


def two_views(
    seqs: Tensor,
    lengths: Tensor,
    ops: list[str],
    ratios: dict[str, float],
    *,
    generator: torch.Generator,
    mask_id: int,
    similar: Tensor | None = None,
) -> tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor]]:
    """Two views per sequence made by two DIFFERENT operations drawn from ``ops`` (CL4SRec §3.2).

    Every op runs on the whole batch and each row picks its own; rows are trimmed to the longest."""
    n = len(ops)
    first = torch.randint(n, (len(lengths),), generator=generator)
    second = (first + torch.randint(1, n, (len(lengths),), generator=generator)) % n if n > 1 else first
    outs = [
        AUGMENTATIONS[op](seqs, lengths, ratios.get(op, 0.5), generator=generator, mask_id=mask_id, similar=similar)
        for op in ops
    ]
    views = []
    for pick in (first, second):
        s = torch.stack([o[0] for o in outs])[pick, torch.arange(len(lengths))]
        n_ = torch.stack([o[1] for o in outs])[pick, torch.arange(len(lengths))]
        views.append((s[:, : int(n_.max())], n_))
    return views[0], views[1]


def similar_items(train: Sequences) -> Tensor:
    """``similar[i]``: the item most often co-occurring with ``i`` in users' training sequences
    (cosine-normalised counts, ItemCF), ``i`` itself when it co-occurs with nothing; index 0 -> 0."""
    users = np.repeat(np.arange(train.n_users), train.lengths)
    x = sp.csr_matrix(
        (np.ones(len(train.items), dtype=np.float32), (users, train.items)), shape=(train.n_users, train.n_items + 2)
    )
    x.data[:] = 1.0
    co = (x.T @ x).tocsr()
    co.setdiag(0)
    co.eliminate_zeros()
    norm = np.sqrt(np.asarray(x.sum(0)).ravel()) + 1e-12
    co = sp.diags(1 / norm) @ co @ sp.diags(1 / norm)
    best = np.asarray(co.argmax(axis=1)).ravel()
    has = np.diff(co.tocsr().indptr) > 0
    ids = np.arange(train.n_items + 2)
    return torch.from_numpy(np.where(has, best, ids)).long()
