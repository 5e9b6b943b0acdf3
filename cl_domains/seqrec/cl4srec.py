"""CL4SRec (Xie et al., 2022): SASRec plus a contrastive term (NT-Xent) between two augmented views of each
sequence; the term is the recipe's ``method.objective`` (see :mod:`cl_domains.seqrec.losses`)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from torch import nn

from ..core.objectives import Objective
from ..core.recipe import StrictModel
from ..core.registry import method
from ..core.task import StepContext
from .losses import CL4SRecObjective, view_contrast
from .task import AugmentConfig, SeqRecTask

__all__ = ["CL4SRecConfig", "CL4SRecTask"]


class CL4SRecConfig(StrictModel):
    """The ``method`` section of CL4SRec: next-item loss, contrastive weight, objective and augmentations."""

    name: Literal["cl4srec"] = "cl4srec"
    loss: Literal["ce", "bpr"] = "ce"
    renamed = {"cl_weight": "contrastive_weight", "temperature": "objective.temperature"}

    contrastive_weight: float = Field(0.1, ge=0, description="lambda: weight of the contrastive term")
    objective: CL4SRecObjective = Field(default_factory=CL4SRecObjective)
    augment: AugmentConfig = Field(default_factory=AugmentConfig)


@method("seqrec", "cl4srec")
class CL4SRecTask(SeqRecTask):
    """L = L_rec + lambda * L_cl (CL4SRec eq. 6); L_cl is NT-Xent on dot products of the two
    views' sequence vectors, the other 2(N-1) views of the batch as negatives (eq. 5), or the loss that
    ``method.objective`` names on the same views."""

    config = CL4SRecConfig

    def __init__(self, recipe, data_root, device, frame=None):
        super().__init__(recipe, data_root, device, frame)
        self.objective = Objective(self.cfg.objective)
        self.model = nn.ModuleDict({"encoder": self.encoder, "objective": self.objective})  # a learnable t trains

    def augmentation(self) -> AugmentConfig:
        return self.cfg.augment

    def loss(self, batch: dict, ctx: StepContext):
        v1, v2 = batch["views"]
        h, h1, h2 = self.encode((batch["seqs"], batch["lengths"]), v1, v2)  # one fused encoder pass
        rec = self.rec_loss(h, batch["targets"].to(self.device), ctx)
        cl = view_contrast(self.objective, h1, h2)
        return rec + self.cfg.contrastive_weight * cl, {"rec": float(rec.detach()), "cl": float(cl.detach())}
