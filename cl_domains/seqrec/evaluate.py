"""Full-ranking leave-one-out evaluation: HR@k, NDCG@k, MRR@k over all items, in user batches."""
from __future__ import annotations

import torch
from torch import Tensor

from .data import LeaveOneOut
from .model import SASRecEncoder

__all__ = ["target_ranks", "ranking_metrics", "evaluate_ranking"]


def target_ranks(scores: Tensor, targets: Tensor, exclude: tuple[Tensor, Tensor] | None = None) -> Tensor:
    """0-based rank of each target column among all columns (items scoring strictly higher;
    ties count in the target's favour). ``exclude``: ``(row, column)`` candidates to drop (the
    target itself is never dropped). ``scores`` is modified in place when ``exclude`` is given."""
    target_scores = scores.gather(1, targets.unsqueeze(1))
    if exclude is not None:
        scores[exclude] = float("-inf")
    return (scores > target_scores).sum(1)


def ranking_metrics(ranks: Tensor, ks: tuple[int, ...] = (5, 10, 20)) -> dict[str, float]:
    """Mean HR@k (target in the top k), NDCG@k (``1/log2(rank+2)`` inside the top k) and MRR@k."""
    r = ranks.double()
    out = {}
    for k in ks:
        hit = (ranks < k).double()
        out[f"HR@{k}"] = float(hit.mean())
        out[f"NDCG@{k}"] = float((hit / torch.log2(r + 2)).mean())
        out[f"MRR@{k}"] = float((hit / (r + 1)).mean())
    return out


@torch.no_grad()
def evaluate_ranking(model: SASRecEncoder, data: LeaveOneOut, split: str, *, batch_size: int = 1024,
                     mask_history: bool = False, ks: tuple[int, ...] = (5, 10, 20)) -> dict[str, float]:
    """Rank every user's ``valid`` or ``test`` target against all items; memory is one
    ``batch_size x n_items`` score block at a time. ``mask_history`` removes the items the user
    already interacted with from the candidates (ICLRec/CoSeRec); MCLRec keeps them."""
    was = model.training
    model.eval()
    device = model.item_emb.weight.device
    ranks = []
    users = torch.arange(data.seqs.n_users)
    for chunk in users.split(batch_size):
        seqs, lengths, targets = data.eval_batch(chunk, split)
        scores = model.scores(model(seqs.to(device), lengths.to(device)))
        seen = None
        if mask_history:
            row, item = data.history(chunk, split)
            seen = (row.to(device), item.to(device) - 1)
        ranks.append(target_ranks(scores, targets.to(device) - 1, seen).cpu())
    model.train(was)
    return ranking_metrics(torch.cat(ranks), ks)
