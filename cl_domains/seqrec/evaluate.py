"""Full-ranking leave-one-out evaluation: HR@k, NDCG@k, MRR@k over all items, in user batches.

Ties are ranked in expectation: a target tied with ``t`` other items is equally likely at each of the
``t + 1`` places of the tie, so a model that gives every item one score gets chance-level metrics
(HR@k = k / n_items), never a perfect score."""

from __future__ import annotations

from contextlib import nullcontext

import torch
from torch import Tensor

from ..core.modes import eval_mode
from ..core.rng import generator
from .data import LeaveOneOut
from .model import SASRecEncoder

__all__ = ["target_ranks", "ranking_metrics", "evaluate_ranking", "eval_users"]


def target_ranks(
    scores: Tensor, targets: Tensor, exclude: tuple[Tensor, Tensor] | None = None
) -> tuple[Tensor, Tensor]:
    """``(higher, tied)`` per row: the number of candidate items scoring strictly above the target
    column, and the number of *other* candidates with exactly its score. ``exclude``: ``(row, column)``
    candidates to drop (the target itself is never dropped). ``scores`` is modified in place."""
    target_scores = scores.gather(1, targets.unsqueeze(1))
    if exclude is not None:
        scores[exclude] = float("-inf")
    scores.scatter_(1, targets.unsqueeze(1), float("nan"))  # the target is not its own competitor
    return (scores > target_scores).sum(1), (scores == target_scores).sum(1)


def _expected(higher: Tensor, tied: Tensor, k: int, gain) -> Tensor:
    """Mean of ``gain(r)`` over ranks ``r`` in ``higher .. higher + tied`` that fall inside the top ``k``."""
    table = torch.zeros(k + 1, dtype=torch.float64)
    table[1:] = torch.cumsum(gain(torch.arange(k, dtype=torch.float64)), 0)  # table[j] = sum of gain(r) for r < j
    lo = higher.clamp(max=k)
    hi = (higher + tied + 1).clamp(max=k)
    return (table[hi] - table[lo]) / (tied + 1).double()


def ranking_metrics(higher: Tensor, ks: tuple[int, ...] = (5, 10, 20), tied: Tensor | None = None) -> dict[str, float]:
    """Mean HR@k (target in the top k), NDCG@k (``1/log2(rank+2)`` inside the top k) and MRR@k, with
    0-based ranks ``higher``; with ``tied`` (see :func:`target_ranks`) each metric is its expectation over
    the target's place within its tie."""
    higher = higher.long().cpu()
    tied = torch.zeros_like(higher) if tied is None else tied.long().cpu()
    out = {}
    for k in ks:
        out[f"HR@{k}"] = float(_expected(higher, tied, k, torch.ones_like).mean())
        out[f"NDCG@{k}"] = float(_expected(higher, tied, k, lambda r: 1 / torch.log2(r + 2)).mean())
        out[f"MRR@{k}"] = float(_expected(higher, tied, k, lambda r: 1 / (r + 1)).mean())
    return out


@torch.no_grad()
def evaluate_ranking(
    model: SASRecEncoder | Tensor,
    data: LeaveOneOut,
    split: str,
    *,
    batch_size: int = 1024,
    mask_history: bool = False,
    ks: tuple[int, ...] = (5, 10, 20),
    users: int | None = None,
) -> dict[str, float]:
    """Rank every user's ``valid`` or ``test`` target against all items; memory is one
    ``batch_size x n_items`` score block at a time. ``mask_history`` removes the items the user
    already interacted with from the candidates (ICLRec/CoSeRec); MCLRec keeps them. ``model`` may be
    a fixed ``[n_items]`` score vector instead (the most-popular baseline), or any object with a
    ``score_sequences(seqs, lengths) -> [B, n_items]`` method (:class:`~cl_domains.seqrec.itemknn.ItemKNN`). ``users``: score only this many
    users, the fixed sample of :func:`eval_users` (default: every user)."""
    fixed = isinstance(model, Tensor) or hasattr(model, "score_sequences")
    with nullcontext() if fixed else eval_mode(model):
        higher, tied = _ranks(model, data, split, batch_size, mask_history, eval_users(data.seqs.n_users, users))
    return ranking_metrics(higher, ks, tied)


def eval_users(n_users: int, users: int | None = None) -> Tensor:
    """The users scored: all, or a sample of ``users`` of them (sorted ids), the same for every run, seed and split
    of a data set (``core.rng.generator(0, "seqrec-eval-users")``)."""
    if users is None or users >= n_users:
        return torch.arange(n_users)
    return torch.randperm(n_users, generator=generator(0, "seqrec-eval-users"))[:users].sort().values


def _ranks(model, data: LeaveOneOut, split: str, batch_size: int, mask_history: bool, users: Tensor):
    fixed = isinstance(model, Tensor)
    scorer = getattr(model, "score_sequences", None)
    device = model.device if fixed else torch.device("cpu") if scorer else model.item_emb.weight.device
    higher, tied = [], []
    for chunk in users.split(batch_size):
        seqs, lengths, targets = data.eval_batch(chunk, split)
        if fixed:
            scores = model.to(torch.float64).expand(len(chunk), -1).clone()
        elif scorer is not None:
            scores = scorer(seqs, lengths)
        else:
            scores = model.scores(model(seqs.to(device), lengths.to(device)))
        seen = None
        if mask_history:
            row, item = data.history(chunk, split)
            seen = (row.to(device), item.to(device) - 1)
        h, t = target_ranks(scores, targets.to(device) - 1, seen)
        higher.append(h.cpu())
        tied.append(t.cpu())
    return torch.cat(higher), torch.cat(tied)
