"""AdaMEOW (Yu et al., TKDE 2024): MEOW's encoder with learnable soft negative weights
``w_ij = sigmoid(MLP(f_i + c_j))`` (f: fine projection of the anchor, c: coarse projection of the
key), trained jointly through the weighted InfoNCE. The ``N x N x d`` MLP input is never built:
the first layer is linear, so ``W1 (f_i + c_j) = W1 f_i + W1 c_j``, and the ``[rows, N, hidden]``
activations are computed chunk by chunk under activation checkpointing (memory ``chunk * N * hidden``)."""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from ..core.recipe import StrictModel
from ..core.registry import method
from ..core.task import StepContext
from .losses import AdaMEOWObjective, views_nce
from .minibatch import adameow_batch_loss
from .task import HetGraphTask

__all__ = ["AdaMEOWConfig", "PairWeights", "AdaMEOWTask"]


class AdaMEOWConfig(StrictModel):
    name: Literal["adameow"] = "adameow"
    objective: AdaMEOWObjective = Field(default_factory=AdaMEOWObjective)
    weight_hidden: int = Field(16, gt=0, description="hidden width of the weight MLP (d -> 16 -> tanh -> 1)")
    chunk: int = Field(256, gt=0, description="anchor rows per chunk of the pair-weight computation")
    renamed = {"temperature": "objective.temperature"}


class PairWeights(nn.Module):
    """``sigmoid(w2 . tanh(W1 (a_i + b_j) + b1) + b2)`` for all pairs (AdaMEOW eq. 11), in row chunks."""

    def __init__(self, dim: int, hidden: int = 16, chunk: int = 256):
        super().__init__()
        self.l1, self.l2, self.chunk = nn.Linear(dim, hidden), nn.Linear(hidden, 1), chunk

    def _rows(self, u: Tensor, v: Tensor) -> Tensor:
        return torch.sigmoid(torch.tanh(u.unsqueeze(1) + v.unsqueeze(0)) @ self.l2.weight.squeeze(0) + self.l2.bias)

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        u, v = self.l1(a), b @ self.l1.weight.T  # the bias enters once, through u
        parts = [
            checkpoint(self._rows, u[s : s + self.chunk], v, use_reentrant=False)
            if torch.is_grad_enabled()
            else self._rows(u[s : s + self.chunk], v)
            for s in range(0, u.shape[0], self.chunk)
        ]
        return torch.cat(parts)


@method("hetgraph", "adameow")
class AdaMEOWTask(HetGraphTask):
    """The AdaMEOW training task (the estimator is :class:`cl_domains.hetgraph.AdaMEOW`). Loss (AdaMEOW eq. 12): ``objective(fine_i -> coarse_i; negatives coarse_j weighted w_ij)``, published
    ``info_nce`` at 0.4 (see :mod:`.losses`). Unlike the official code, the positive's own term keeps weight 1
    (the core's weighted InfoNCE)."""

    config = AdaMEOWConfig

    def build_heads(self) -> None:
        self.weights = PairWeights(self.recipe.model.hidden, self.cfg.weight_hidden, self.cfg.chunk)
        self.model = nn.ModuleDict({"encoder": self.encoder, "weights": self.weights})

    def loss(self, batch, ctx: StepContext):
        if batch is not None:  # mini-batch mode: a tensor of target-node ids
            return adameow_batch_loss(self, batch, ctx)
        _, fine, coarse = self.encoder(self.graph)
        w = self.weights(fine, coarse)
        loss = views_nce(self.objective, fine, coarse, w)
        return loss, {"mean_weight": float(w.detach().mean())}
