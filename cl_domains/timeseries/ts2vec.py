"""TS2Vec (Yue et al., AAAI 2022): two overlapping random crops with timestamp masking, hierarchical loss.

``objective`` (the slot, published: dot-product ``nt_xent`` at temperature 1) is the loss of the instance and
temporal contrasts at every scale (see :mod:`.losses`: ``nt_xent`` runs on the published batched path, the other
losses through the slot group by group)."""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field

from ..core.objectives import Objective, objective_config
from ..core.recipe import StrictModel
from ..core.registry import method
from ..core.task import StepContext
from .losses import hierarchical_loss
from .task import TimeseriesTask, random_crops

__all__ = ["TS2VecObjectiveConfig", "TS2VecConfig", "TS2VecTask", "ts2vec_loss"]

TS2VecObjectiveConfig = objective_config("ts2vec", "nt_xent", 1.0)  # eqs. 1-2: 2N rows, self excluded, dot product


class TS2VecConfig(StrictModel):
    """The recipe's ``method`` section for TS2Vec (``method.name: ts2vec``)."""

    name: Literal["ts2vec"] = "ts2vec"
    renamed = {"alpha": "instance_weight"}

    instance_weight: float = Field(
        0.5, ge=0, le=1, description="weight of the instance contrast (1 - instance_weight: temporal)"
    )
    temporal_unit: int = Field(0, ge=0, description="smallest scale (as a power of 2) with a temporal contrast")
    objective: TS2VecObjectiveConfig = Field(
        default_factory=TS2VecObjectiveConfig,
        description="loss and temperature of the instance and temporal contrasts on dot products "
        "(published: nt_xent, 1.0)",
    )


def ts2vec_loss(
    net,
    x: torch.Tensor,
    g: torch.Generator,
    alpha: float = 0.5,
    temporal_unit: int = 0,
    objective: Objective | None = None,
) -> torch.Tensor:
    """One TS2Vec objective on a batch ``[B, T, C]``: crops (§3.2), masking inside ``net``, Alg. 1; ``objective``
    chooses the contrastive loss (default: the published one)."""
    a, b, overlap = random_crops(x, g, temporal_unit)
    z1 = net(a, generator=g)[:, -overlap:]
    z2 = net(b, generator=g)[:, :overlap]
    return hierarchical_loss(z1, z2, alpha, temporal_unit, objective=objective)


@method("timeseries", "ts2vec")
class TS2VecTask(TimeseriesTask):
    """TS2Vec's training step (crops, masking, hierarchical loss) on the shared time-series task; the estimator
    is :class:`cl_domains.timeseries.TS2Vec`."""

    config = TS2VecConfig

    def __init__(self, recipe, data_root, device, panel=None):
        super().__init__(recipe, data_root, device, panel)
        self.objective = Objective(self.cfg.objective)
        self.model["objective"] = self.objective  # a learnable temperature trains with the encoder

    def loss(self, batch, ctx: StepContext):
        x, g = self.batch_inputs(batch, ctx)
        return ts2vec_loss(self.net, x, g, self.cfg.instance_weight, self.cfg.temporal_unit, self.objective)
