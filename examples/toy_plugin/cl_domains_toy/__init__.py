"""A plugin domain, ``toyline``: random points seen through two noisy views; the method ``pairs`` learns
an embedding in which the views of one point match (InfoNCE). It uses only the documented surface of
``cl_domains.core`` (docs/extend/domain.md)."""

from typing import Literal

import torch
from pydantic import Field

from cl_domains.core import (
    Objective,
    StrictModel,
    Task,
    eval_mode,
    generator,
    method,
    objective_config,
    register_domain,
)


class ToylineModelConfig(StrictModel):
    dim: int = Field(4, gt=0)


class ToylineDataConfig(StrictModel):
    points: int = Field(64, gt=1)
    features: int = Field(8, gt=0)
    noise: float = Field(0.5, ge=0)


class ToylineEvalConfig(StrictModel):
    pass


PairsObjective = objective_config("pairs", "info_nce", 0.2)  # the published choice; `supcon` is refused (no labels)


class PairsConfig(StrictModel):
    name: Literal["pairs"] = "pairs"
    objective: PairsObjective = Field(default_factory=PairsObjective)


@method("toyline", "pairs")
class Pairs(Task):
    config = PairsConfig
    dev_metric = "top1"

    def __init__(self, recipe, data_root, device):
        d, self.batch_size, self.seed = recipe.data, recipe.train.batch_size, recipe.train.seed
        g = generator(self.seed, "toyline-data")
        self.x = torch.randn(d.points, d.features, generator=g)
        self.views = [self.x + d.noise * torch.randn(d.points, d.features, generator=g) for _ in range(2)]
        width = recipe.model.dim
        net = torch.nn.Sequential(torch.nn.Linear(d.features, 32), torch.nn.Tanh(), torch.nn.Linear(32, width))
        self.objective = Objective(recipe.method.objective)
        self.model = torch.nn.ModuleDict({"net": net, "objective": self.objective})  # a learnable temperature trains
        self.net = net

    def num_batches(self, epoch):
        return len(self.x) // self.batch_size

    def batches(self, epoch):
        order = torch.randperm(len(self.x), generator=generator(self.seed, "toyline-shuffle", epoch))
        return order[: self.num_batches(epoch) * self.batch_size].split(self.batch_size)

    def loss(self, batch, ctx):
        a, b = (self.net(v[batch]) for v in self.views)
        return self.objective(a, b)  # positives: the other view of each point

    def evaluate(self, split):
        with eval_mode(self.model):
            a, b = (torch.nn.functional.normalize(self.net(v), dim=1) for v in self.views)
        return {"top1": float(((a @ b.T).argmax(1) == torch.arange(len(a))).float().mean())}


register_domain("toyline", model=ToylineModelConfig, data=ToylineDataConfig, eval=ToylineEvalConfig)
