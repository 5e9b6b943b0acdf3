"""Item-kNN: a co-occurrence recommender, the non-neural baseline of sequential recommendation.

Two items are similar when they appear close together in the same user's training sequence: ``C[i, j]`` adds
``1 / d`` for every pair ``d <= window`` positions apart (both directions), normalised to
``C[i, j] / sqrt(n_i * n_j)`` (``n``: each item's interactions). A user is scored from the last ``history`` items
of their sequence, the most recent weighted most (``1 / r`` for the ``r``-th most recent); items no neighbour
reaches fall back to popularity (a tie-break below every co-occurrence score).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor

from ..core.baselines import popularity_counts
from .data import Sequences

__all__ = ["ItemKNN"]


class ItemKNN:
    """Co-occurrence item-kNN over training sequences; ``score_sequences`` ranks every item for a batch.

    Args:
        train: each user's training items (``LeaveOneOut.train_part()``).
        window: largest distance, in positions, at which two items of one sequence count as co-occurring.
        history: how many of the user's most recent items vote.
    """

    def __init__(self, train: Sequences, window: int = 3, history: int = 3):
        n = train.n_items
        rows, cols, vals = [], [], []
        items = np.asarray(train.items, dtype=np.int64) - 1
        same_user = np.repeat(np.arange(train.n_users), train.lengths)
        for d in range(1, window + 1):
            ok = same_user[d:] == same_user[:-d]
            a, b = items[:-d][ok], items[d:][ok]
            w = np.full(len(a), 1.0 / d)
            rows += [a, b]
            cols += [b, a]
            vals += [w, w]
        c = sp.coo_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n)).tocsr()
        pop = popularity_counts(train.items, n)
        norm = 1.0 / np.sqrt(np.maximum(pop, 1.0))
        self.sim = sp.diags(norm) @ c @ sp.diags(norm)
        self.sim.setdiag(0.0)
        self.sim = self.sim.tocsr()
        self.sim.eliminate_zeros()
        floor = self.sim.data[self.sim.data > 0].min() if self.sim.nnz else 1.0
        self.fallback = pop / max(pop.max(), 1.0) * floor * 1e-3  # below every co-occurrence score
        self.history, self.n_items = history, n

    def score_sequences(self, seqs: Tensor, lengths: Tensor) -> Tensor:
        """``[B, n_items]`` float64 scores for left-aligned, zero-padded histories ``seqs`` of ``lengths``."""
        s, n = seqs.cpu().numpy(), lengths.cpu().numpy()
        rows, cols, vals = [], [], []
        for r in range(1, self.history + 1):
            ok = n >= r
            rows.append(np.nonzero(ok)[0])
            cols.append(s[ok, n[ok] - r] - 1)
            vals.append(np.full(int(ok.sum()), 1.0 / r))
        q = sp.csr_matrix(
            (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(len(s), self.n_items)
        )
        scores = (q @ self.sim).toarray()
        scores += self.fallback
        return torch.from_numpy(scores)
