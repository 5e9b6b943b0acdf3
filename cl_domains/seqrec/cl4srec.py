"""CL4SRec (Xie et al., 2022): SASRec plus InfoNCE between two augmented views of each sequence."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ..core.losses import nt_xent
from ..core.recipe import StrictModel
from ..core.registry import method
from ..core.task import StepContext
from .task import AugmentConfig, SeqRecTask

__all__ = ["CL4SRecConfig", "CL4SRec"]


class CL4SRecConfig(StrictModel):
    name: Literal["cl4srec"] = "cl4srec"
    loss: Literal["ce", "bpr"] = "ce"
    cl_weight: float = Field(0.1, ge=0, description="lambda: weight of the contrastive term")
    temperature: float = Field(1.0, gt=0)
    augment: AugmentConfig = Field(default_factory=AugmentConfig)


@method("seqrec", "cl4srec")
class CL4SRec(SeqRecTask):
    """L = L_rec + lambda * L_cl (CL4SRec eq. 6); L_cl is NT-Xent on dot products of the two
    views' sequence vectors, the other 2(N-1) views of the batch as negatives (eq. 5)."""

    config = CL4SRecConfig

    def augmentation(self) -> AugmentConfig:
        return self.cfg.augment

    def loss(self, batch: dict, ctx: StepContext):
        v1, v2 = batch["views"]
        h, h1, h2 = self.encode((batch["seqs"], batch["lengths"]), v1, v2)  # one fused encoder pass
        rec = self.rec_loss(h, batch["targets"].to(self.device), ctx)
        cl = nt_xent(h1, h2, self.cfg.temperature, normalize=False)
        return rec + self.cfg.cl_weight * cl, {"rec": float(rec.detach()), "cl": float(cl.detach())}
