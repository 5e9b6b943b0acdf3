"""The HeCo / DMGI evaluation of frozen node embeddings.

Classification: one linear layer trained with Adam for ``steps`` full-batch steps on the labelled
training nodes, repeated ``repeats`` times (the repeats are trained side by side as one batched
layer: Adam is element-wise, so this equals independent runs). Per repeat, Macro-F1 is read on test
at the step of best validation Macro-F1, Micro-F1 and AUC at the step of best validation Micro-F1
(first best on ties). Reported: mean and std over repeats, x100. Clustering: KMeans with k = number
of classes on all target nodes, ``runs`` seeds, mean NMI and ARI x100.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score, f1_score, normalized_mutual_info_score, roc_auc_score
from threadpoolctl import threadpool_limits
from torch import Tensor

from ..core.rng import derive_seed, generator

__all__ = ["batched_f1", "linear_probe", "cluster_scores"]


def batched_f1(pred: Tensor, y: Tensor, num_classes: int) -> tuple[Tensor, Tensor]:
    """Macro-F1 and Micro-F1 of each row of ``pred`` ``[R, n]`` against ``y`` ``[n]`` (sklearn's definitions)."""
    p = F.one_hot(pred, num_classes).bool()
    t = F.one_hot(y, num_classes).bool().unsqueeze(0)
    tp = (p & t).sum(1).float()
    fp = (p & ~t).sum(1).float()
    fn = (~p & t).sum(1).float()
    denom = 2 * tp + fp + fn
    per_class = torch.where(denom > 0, 2 * tp / denom.clamp_min(1), torch.zeros_like(tp))
    return per_class.mean(-1), (pred == y).float().mean(-1)


def linear_probe(
    emb: Tensor,
    y: Tensor,
    train: Tensor,
    val: Tensor,
    test: Tensor,
    *,
    repeats: int = 50,
    steps: int = 200,
    lr: float = 0.01,
    weight_decay: float = 0.0,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Per-repeat test ``macro_f1``, ``micro_f1`` and ``auc`` (x100) under validation selection."""
    emb = emb.detach().float()
    c = int(y.max()) + 1
    g = generator(seed, "probe")
    bound = (6.0 / (emb.shape[1] + c)) ** 0.5  # xavier-uniform, as HeCo's LogReg
    w = ((torch.rand(repeats, emb.shape[1], c, generator=g) * 2 - 1) * bound).requires_grad_()
    b = torch.zeros(repeats, 1, c, requires_grad=True)
    opt = torch.optim.Adam([w, b], lr=lr, weight_decay=weight_decay)
    xtr, xva, xte = emb[train], emb[val], emb[test]
    ytr, yva, yte = y[train], y[val], y[test]
    best_ma = torch.full((repeats,), -1.0)
    best_mi = torch.full((repeats,), -1.0)
    pred_ma = torch.zeros(repeats, len(test), dtype=torch.long)
    pred_mi = torch.zeros(repeats, len(test), dtype=torch.long)
    prob_mi = torch.zeros(repeats, len(test), c)
    for _ in range(steps):
        opt.zero_grad()
        logits = torch.einsum("nd,rdc->rnc", xtr, w) + b
        # sum over repeats of each repeat's mean cross-entropy: independent gradients
        F.cross_entropy(logits.reshape(-1, c), ytr.repeat(repeats), reduction="sum").div(len(train)).backward()
        opt.step()
        with torch.no_grad():
            ma, mi = batched_f1((torch.einsum("nd,rdc->rnc", xva, w) + b).argmax(-1), yva, c)
            lt = torch.einsum("nd,rdc->rnc", xte, w) + b
            up_ma, up_mi = ma > best_ma, mi > best_mi
            best_ma, best_mi = torch.where(up_ma, ma, best_ma), torch.where(up_mi, mi, best_mi)
            pred_ma[up_ma] = lt.argmax(-1)[up_ma]
            pred_mi[up_mi] = lt.argmax(-1)[up_mi]
            prob_mi[up_mi] = lt.softmax(-1)[up_mi]
    yt = yte.numpy()
    onehot = np.eye(c)[yt]
    return {
        "macro_f1": np.array([f1_score(yt, p, average="macro") for p in pred_ma.numpy()]) * 100,
        "micro_f1": np.array([f1_score(yt, p, average="micro") for p in pred_mi.numpy()]) * 100,
        "auc": np.array([roc_auc_score(onehot, p) for p in prob_mi.numpy()]) * 100,
        "val_macro_f1": best_ma.numpy() * 100,
    }


def cluster_scores(emb: Tensor, y: Tensor, runs: int = 10, seed: int = 0) -> dict[str, float]:
    """Mean NMI and ARI (x100) of KMeans (k = #classes) over ``runs`` seeds."""
    x, yt = emb.detach().float().numpy(), y.numpy()
    k = int(yt.max()) + 1
    nmi, ari = [], []
    for r in range(runs):
        with threadpool_limits(1):  # on a few cores, OpenMP k-means threads mostly wait on each other
            pred = KMeans(n_clusters=k, n_init=1, random_state=derive_seed(seed, "cluster", r) % 2**32).fit_predict(x)
        nmi.append(normalized_mutual_info_score(yt, pred))
        ari.append(adjusted_rand_score(yt, pred))
    return {"nmi": float(np.mean(nmi)) * 100, "ari": float(np.mean(ari)) * 100}
