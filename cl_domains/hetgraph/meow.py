"""MEOW (Yu & Li, SDM 2023): coarse view vs fine-grained view InfoNCE with cluster-based negative
weights, plus a prototypical term. ``weighted: false, proto_weight: 0`` is the unweighted baseline
(plain coarse-vs-fine InfoNCE, the HeCo-style reference point). The contrastive term is the recipe's
``method.objective`` (published: ``info_nce`` at 0.4), see :mod:`.losses`."""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field

from ..core.errors import UserError
from ..core.recipe import StrictModel
from ..core.registry import method
from ..core.task import StepContext
from .losses import MEOWObjective, cluster_weights, kmeans, proto_nce, views_nce
from .minibatch import meow_batch_loss
from .task import HetGraphTask

__all__ = ["MEOWConfig", "MEOWTask", "kmeans", "cluster_weights", "proto_nce"]


class MEOWConfig(StrictModel):
    name: Literal["meow"] = "meow"
    objective: MEOWObjective = Field(default_factory=MEOWObjective)
    clusters: list[int] = Field(default_factory=lambda: [100, 300], description="k of each k-means clustering")
    weighted: bool = Field(True, description="cluster-based negative weights (False: unweighted contrastive term)")
    renamed = {"lam_proto": "proto_weight", "temperature": "objective.temperature"}

    proto_weight: float = Field(1.0, ge=0, description="weight of the prototypical term")
    kmeans_iters: int = Field(10, gt=0)


@method("hetgraph", "meow")
class MEOWTask(HetGraphTask):
    """The MEOW training task (the estimator is :class:`cl_domains.hetgraph.MEOW`). Loss (MEOW eqs. 7-10): ``objective(coarse_i -> fine_i; negatives fine_j weighted w_ij) + lam * ProtoNCE``;
    k-means runs on the detached fine projections of the same forward pass (once per epoch)."""

    config = MEOWConfig

    def build_heads(self) -> None:
        """Refuse more k-means clusters than target nodes before training starts."""
        n, cfg = int(self.data[self.target].num_nodes), self.cfg
        too_many = [k for k in cfg.clusters if k > n] if cfg.weighted or cfg.proto_weight > 0 else []
        if too_many:
            raise UserError(
                f"method.clusters {cfg.clusters} asks k-means for {max(too_many)} clusters, but the graph has only "
                f"{n} {self.target} nodes; set method.clusters to values of at most {n} (e.g. [{max(2, n // 10)}])."
            )

    def loss(self, batch, ctx: StepContext):
        if batch is not None:  # mini-batch mode: a tensor of target-node ids
            return meow_batch_loss(self, batch, ctx)
        z, fine, coarse = self.encoder(self.graph)
        cfg = self.cfg
        need = cfg.weighted or cfg.proto_weight > 0
        # one k-means seed per clustering, drawn from this epoch's own stream
        seeds = torch.randint(2**31 - 1, (len(cfg.clusters),), generator=ctx.generator("kmeans")).tolist()
        clusterings = (
            [kmeans(fine, k, s, cfg.kmeans_iters) for k, s in zip(cfg.clusters, seeds, strict=False)] if need else []
        )
        weights = cluster_weights([a for a, _ in clusterings]) if cfg.weighted else None
        nce = views_nce(self.objective, coarse, fine, weights)
        extras = {"nce": float(nce.detach())}
        loss = nce
        if cfg.proto_weight > 0:
            t = cfg.objective.temperature  # eq. 9: the cluster concentrations average to the contrastive tau
            proto = sum(proto_nce(coarse, a, c, t) for a, c in clusterings) / len(clusterings)
            loss = loss + cfg.proto_weight * proto
            extras["proto"] = float(proto.detach())
        return loss, extras
