"""MEOW (Yu & Li, SDM 2023): coarse view vs fine-grained view InfoNCE with cluster-based negative
weights, plus a prototypical term. ``weighted: false, proto_weight: 0`` is the unweighted baseline
(plain coarse-vs-fine InfoNCE, the HeCo-style reference point)."""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from pydantic import Field
from torch import Tensor

from ..core.losses import contrastive_nll, info_nce
from ..core.recipe import StrictModel
from ..core.registry import method
from ..core.task import StepContext
from .task import HetGraphTask

__all__ = ["MEOWConfig", "MEOW", "kmeans", "cluster_weights", "proto_nce"]


class MEOWConfig(StrictModel):
    name: Literal["meow"] = "meow"
    temperature: float = Field(0.4, gt=0)
    clusters: list[int] = Field(default_factory=lambda: [100, 300], description="k of each k-means clustering")
    weighted: bool = Field(True, description="cluster-based negative weights (False: plain InfoNCE)")
    renamed = {"lam_proto": "proto_weight"}

    proto_weight: float = Field(1.0, ge=0, description="weight of the prototypical term")
    kmeans_iters: int = Field(10, gt=0)


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


def proto_nce(anchor: Tensor, assign: Tensor, centroids: Tensor, temperature: float) -> Tensor:
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


@method("hetgraph", "meow")
class MEOW(HetGraphTask):
    """Loss (MEOW eqs. 7-10): ``InfoNCE(coarse_i -> fine_i; negatives fine_j weighted w_ij) + lam * ProtoNCE``;
    k-means runs on the detached fine projections of the same forward pass (once per epoch)."""

    config = MEOWConfig

    def loss(self, batch: None, ctx: StepContext):
        z, fine, coarse = self.encoder(self.graph)
        cfg = self.cfg
        need = cfg.weighted or cfg.proto_weight > 0
        # one k-means seed per clustering, drawn from this epoch's own stream
        seeds = torch.randint(2**31 - 1, (len(cfg.clusters),), generator=ctx.generator("kmeans")).tolist()
        clusterings = [kmeans(fine, k, s, cfg.kmeans_iters) for k, s in zip(cfg.clusters, seeds)] if need else []
        weights = cluster_weights([a for a, _ in clusterings]) if cfg.weighted else None
        nce = info_nce(coarse, fine, cfg.temperature, neg_weights=weights)
        extras = {"nce": float(nce.detach())}
        loss = nce
        if cfg.proto_weight > 0:
            proto = sum(proto_nce(coarse, a, c, cfg.temperature) for a, c in clusterings) / len(clusterings)
            loss = loss + cfg.proto_weight * proto
            extras["proto"] = float(proto.detach())
        return loss, extras
