"""The contrastive terms of MEOW and AdaMEOW on the core objective slot (:mod:`cl_domains.core.objectives`).

Each method builds its own structure -- the coarse and fine views of the target nodes (node ``i`` of one view is
the positive of node ``i`` of the other), MEOW's cluster-based negative weights (k-means on the fine view, eq. 8),
AdaMEOW's learned pair weights (eq. 11) -- and hands it to :class:`~cl_domains.core.objectives.Objective`, which
applies the loss the recipe names in ``method.objective``. Both methods publish ``info_nce`` at ``t = 0.4``, which
the slot expresses exactly (the weighted InfoNCE of the core). With ``nt_xent`` / ``dcl`` / ``dhel`` the same
weights also apply to the other anchors of the query view (the slot's rule for two views of the same nodes).
Neither method has labels (self-supervised), so ``supcon`` is refused at recipe validation.

MEOW's prototypical term (ProtoNCE against the k-means centroids, eq. 9) is not a pairwise contrastive term over
the two views and stays outside the slot; it uses the objective's temperature as its mean concentration.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from ..core.losses import contrastive_nll
from ..core.objectives import Objective, objective_config

__all__ = ["MEOWObjective", "AdaMEOWObjective", "kmeans", "cluster_weights", "proto_nce", "views_nce"]

# the published choices (MEOW, Yu & Li 2023, eq. 10; AdaMEOW, Yu et al. 2024, eq. 12): InfoNCE at tau = 0.4
MEOWObjective = objective_config("meow", "info_nce", 0.4)
AdaMEOWObjective = objective_config("adameow", "info_nce", 0.4)


def views_nce(objective: Objective, query: Tensor, key: Tensor, neg_weights: Tensor | None = None) -> Tensor:
    """The contrastive term between two views of the same ``N`` target nodes: ``key[i]`` is the positive of
    ``query[i]``, every other key a negative weighted by ``neg_weights[i, j]`` (``[N, N]``, e.g. MEOW's cluster
    weights or AdaMEOW's learned weights; ``None``: unweighted)."""
    return objective(query, key, neg_weights=neg_weights)


def kmeans(x: Tensor, k: int, seed: int, iters: int = 10) -> tuple[Tensor, Tensor]:
    """``(assignments [N], centroids [k, d])`` of k-means on ``x``; faiss when installed, else sklearn."""
    a = np.ascontiguousarray(x.detach().float().cpu().numpy())
    try:
        import faiss

        faiss.omp_set_num_threads(max(torch.get_num_threads(), 1))
        # max_points_per_centroid: use every point (no subsampling, no warning at N < 39 k)
        km = faiss.Kmeans(
            a.shape[1],
            k,
            niter=iters,
            seed=seed,
            verbose=False,
            max_points_per_centroid=a.shape[0],
            min_points_per_centroid=1,
        )
        km.train(a)
        assign = km.index.search(a, 1)[1].reshape(-1)
        centroids = km.centroids
    except ImportError:
        from sklearn.cluster import KMeans
        from threadpoolctl import threadpool_limits

        # torch's thread count for OpenMP/BLAS too (as faiss above): on a busy machine sklearn's default pools
        # cost 8.5 s instead of 0.5 s for k = 700 on DBLP, same result
        with threadpool_limits(max(torch.get_num_threads(), 1)):
            km = KMeans(n_clusters=k, n_init=1, max_iter=iters, random_state=seed).fit(a)
        assign, centroids = km.labels_, km.cluster_centers_
    return torch.as_tensor(assign, dtype=torch.long), torch.as_tensor(np.asarray(centroids), dtype=torch.float32)


def cluster_weights(assignments: list[Tensor]) -> Tensor:
    """MEOW eq. 8: ``w_ij = K - #{k : c_k(i) = c_k(j)}`` over ``K`` clusterings (0: same cluster every time)."""
    same = sum((c.unsqueeze(1) == c.unsqueeze(0)).float() for c in assignments)
    return len(assignments) - same


def proto_nce(anchor: Tensor, assign: Tensor, centroids: Tensor, temperature: float | Tensor) -> Tensor:
    """ProtoNCE (PCL, Li et al. 2021, eq. 6) for one clustering: ``-log softmax_s(v_i . c_s / phi_s)[c(i)]``,
    ``phi_s`` the cluster concentration (mean distance / log(n_s + 10)) scaled to mean ``temperature``."""
    centroids = torch.nn.functional.normalize(centroids.to(anchor.dtype), dim=1)
    k = centroids.shape[0]
    n = torch.bincount(assign, minlength=k).to(anchor.dtype)
    dist = torch.zeros(k, dtype=anchor.dtype).index_add_(0, assign, (anchor.detach() - centroids[assign]).norm(dim=1))
    phi = torch.where(n > 1, dist / n.clamp_min(1) / torch.log(n + 10), torch.full_like(n, float("nan")))
    phi = torch.nan_to_num(phi, nan=float(phi[n > 1].max()) if bool((n > 1).any()) else 1.0)
    lo, hi = torch.quantile(phi, 0.1), torch.quantile(phi, 0.9)
    phi = temperature * phi.clamp(lo, hi) / phi.clamp(lo, hi).mean()
    return contrastive_nll(anchor @ centroids.T / phi, assign).mean()
