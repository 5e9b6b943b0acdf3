"""MCLRec (Qin et al., SIGIR 2023): data- and learnable model-augmented views, meta-optimised.

Per batch (Algorithm 1, with the released code's schedule): (1) encoder step on
``L0 = L_rec + lambda L_cl1 + beta (L_cl2 + gamma R)`` with the augmenters frozen; (2) augmenter
step on ``L1 = L_cl2 + gamma R`` with the sequence views re-encoded by the updated encoder
(no encoder gradient is needed, so it runs without a graph); (3) encoder step on ``L0`` again.
The contrastive terms L_cl1 and L_cl2 are the recipe's ``method.objective`` (published: NT-Xent, t = 1; see
:mod:`cl_domains.seqrec.losses`); the margin regulariser R is MCLRec's own and stays as published.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor, nn

from ..core.distributed import average_gradients
from ..core.losses import similarity
from ..core.objectives import Objective
from ..core.recipe import StrictModel
from ..core.registry import method
from ..core.task import StepContext
from .losses import MCLRecObjective, view_contrast
from .task import AugmentConfig, SeqRecTask

__all__ = ["MCLRecConfig", "MCLRecTask", "Augmenter", "margin_regulariser"]


class MCLRecConfig(StrictModel):
    """The ``method`` section of MCLRec: loss weights, objective, augmentations and the learnable augmenters."""

    name: Literal["mclrec"] = "mclrec"
    loss: Literal["ce", "bpr"] = "ce"
    renamed = {
        "lmd": "cl1_weight",
        "beta": "cl2_weight",
        "gamma": "regularizer_weight",
        "temperature": "objective.temperature",
    }

    cl1_weight: float = Field(0.0, ge=0, description="the paper's lambda: weight of L_cl1 (data views only)")
    cl2_weight: float = Field(
        0.05, ge=0, description="the paper's beta: weight of L_cl2 (+ gamma R) in the encoder objective"
    )
    regularizer_weight: float = Field(
        0.1, ge=0, description="the paper's gamma: weight of the contrastive regulariser R"
    )
    objective: MCLRecObjective = Field(default_factory=MCLRecObjective)
    augmenter: list[int] = Field(default_factory=lambda: [32, 16], description="hidden widths of each augmenter MLP")
    augmenter_lr: float | None = Field(None, gt=0, description="default: train.lr")
    augment: AugmentConfig = Field(default_factory=AugmentConfig)


class Augmenter(nn.Module):
    """Learnable model augmenter w_phi (eq. 5): an MLP with GELU, L2-normalised output."""

    def __init__(self, dim: int, hidden: list[int]):
        super().__init__()
        widths = [dim, *hidden, dim]
        layers: list[nn.Module] = []
        for a, b in zip(widths, widths[1:], strict=False):
            layers += [nn.Linear(a, b), nn.GELU()]
        self.net = nn.Sequential(*layers[:-1])

    def forward(self, h: Tensor) -> Tensor:
        return F.normalize(self.net(h), dim=-1)


def margin_regulariser(a: Tensor, b: Tensor) -> Tensor:
    """Contrastive regulariser R (eqs. 11-13) on the 2N x 2N dot products of views ``a``, ``b``:
    positives sigma+ (the other view), negatives sigma- (all other rows but self). As in the
    released code, o_min / o_max are taken per anchor between its positive and its hardest negative."""
    rows = torch.cat([a, b])
    n2 = rows.shape[0]
    s = similarity(rows, rows, normalize=False)
    idx = torch.arange(n2, device=rows.device)
    other = (idx + n2 // 2) % n2
    pos = s[idx, other]
    neg = torch.ones_like(s, dtype=torch.bool)
    neg[idx, idx] = False
    neg[idx, other] = False
    hardest = s.masked_fill(~neg, float("-inf")).max(1).values
    o_min, o_max = torch.minimum(pos, hardest), torch.maximum(pos, hardest)
    return F.relu(pos - o_min).mean() + (F.relu(o_max[:, None] - s) * neg).sum() / neg.sum()


@method("seqrec", "mclrec")
class MCLRecTask(SeqRecTask):
    """MCLRec's training: the three-step meta-optimised schedule of the module docstring on SASRec."""

    config = MCLRecConfig

    def __init__(self, recipe, data_root, device, frame=None):
        super().__init__(recipe, data_root, device, frame)
        dim = recipe.model.hidden
        self.augmenters = nn.ModuleList([Augmenter(dim, self.cfg.augmenter), Augmenter(dim, self.cfg.augmenter)])
        self.augmenters.requires_grad_(False)  # frozen except in step 2: the loop's optimiser never sees them
        # L_cl1 and L_cl2 (a learnable temperature trains with the encoder)
        self.objective = Objective(self.cfg.objective)
        self.model = nn.ModuleDict(
            {"encoder": self.encoder, "augmenters": self.augmenters, "objective": self.objective}
        )
        lr = self.cfg.augmenter_lr or recipe.train.lr
        self._optimizers = {"augmenters": torch.optim.Adam(self.augmenters.parameters(), lr=lr)}

    def augmentation(self) -> AugmentConfig:
        return self.cfg.augment

    def l_cl2(self, h1: Tensor, h2: Tensor) -> Tensor:
        """L_cl2 + gamma R (eqs. 9, 13): z_i = w_phi_i(h_i); pairs (z1, z2), (h1, z2), (h2, z1)."""
        z1, z2 = self.augmenters[0](h1), self.augmenters[1](h2)
        pairs = ((z1, z2), (h1, z2), (h2, z1))
        cl = sum(view_contrast(self.objective, x, y) for x, y in pairs)
        return cl + self.cfg.regularizer_weight * sum(margin_regulariser(x, y) for x, y in pairs)

    def l0(self, batch: dict, ctx: StepContext) -> tuple[Tensor, dict[str, float]]:
        """L0 = L_rec + lambda L_cl1 + beta (L_cl2 + gamma R) (eq. 14)."""
        v1, v2 = batch["views"]
        h, h1, h2 = self.encode((batch["seqs"], batch["lengths"]), v1, v2)  # one fused encoder pass
        rec = self.rec_loss(h, batch["targets"].to(self.device), ctx)
        total = rec + self.cfg.cl2_weight * self.l_cl2(h1, h2)
        if self.cfg.cl1_weight:
            total = total + self.cfg.cl1_weight * view_contrast(self.objective, h1, h2)  # L_cl1, eq. 7
        return total, {"rec": float(rec.detach())}

    def train_step(self, batch: dict, ctx: StepContext, update) -> tuple[Tensor, dict[str, float]]:
        loss, extras = self.l0(batch, ctx)
        update(loss, extras)  # step 1: encoder
        with torch.no_grad():  # step 2: augmenters, on views re-encoded by the updated encoder (eq. 15)
            h1, h2 = self.encode(*batch["views"])
        self.augmenters.requires_grad_(True)
        try:
            l1 = self.l_cl2(h1, h2)
            opt = self._optimizers["augmenters"]
            l1.backward()
            average_gradients(self.augmenters.parameters())  # same augmenters on every process under torchrun
            opt.step()
            opt.zero_grad(set_to_none=True)
            self.objective.zero_grad(set_to_none=True)  # a learnable temperature is the encoder steps' to train
        finally:
            self.augmenters.requires_grad_(False)
        loss, extras = self.l0(batch, ctx)
        update(loss, extras)  # step 3: encoder again
        return loss, {**extras, "l1": float(l1.detach())}

    def loss(self, batch: dict, ctx: StepContext):
        return self.l0(batch, ctx)

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return self._optimizers

    def export(self, directory) -> None:
        self.encoder.save(directory)
