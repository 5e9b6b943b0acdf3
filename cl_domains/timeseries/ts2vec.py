"""TS2Vec (Yue et al., AAAI 2022): two overlapping random crops with timestamp masking, hierarchical loss."""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field

from ..core.recipe import StrictModel
from ..core.registry import method
from ..core.task import StepContext
from .losses import hierarchical_loss
from .task import TimeseriesTask, random_crops

__all__ = ["TS2VecConfig", "TS2Vec", "ts2vec_loss"]


class TS2VecConfig(StrictModel):
    name: Literal["ts2vec"] = "ts2vec"
    renamed = {"alpha": "instance_weight"}

    instance_weight: float = Field(
        0.5, ge=0, le=1, description="weight of the instance contrast (1 - instance_weight: temporal)"
    )
    temporal_unit: int = Field(0, ge=0, description="smallest scale (as a power of 2) with a temporal contrast")


def ts2vec_loss(net, x: torch.Tensor, g: torch.Generator, alpha: float = 0.5, temporal_unit: int = 0) -> torch.Tensor:
    """One TS2Vec objective on a batch ``[B, T, C]``: crops (§3.2), masking inside ``net``, Alg. 1."""
    a, b, overlap = random_crops(x, g, temporal_unit)
    z1 = net(a, generator=g)[:, -overlap:]
    z2 = net(b, generator=g)[:, :overlap]
    return hierarchical_loss(z1, z2, alpha, temporal_unit)


@method("timeseries", "ts2vec")
class TS2Vec(TimeseriesTask):
    config = TS2VecConfig

    def loss(self, batch, ctx: StepContext):
        x, g = self.batch_inputs(batch, ctx)
        return ts2vec_loss(self.net, x, g, self.cfg.instance_weight, self.cfg.temporal_unit)
