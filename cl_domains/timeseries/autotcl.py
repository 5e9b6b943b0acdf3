"""AutoTCL (Zheng et al., ICLR 2024): a learned augmentation network trained alternately with the encoder.

Encoder step: view ``v`` from the (frozen) augmenter, loss = global InfoNCE between the representations
of ``x`` and ``v`` + local_weight * local InfoNCE between neighbouring segments of ``x``'s representation
(both cosine, as the official code; ``variant: ts2vec``, the default for classification, swaps in a dot-product global term and TS2Vec's
hierarchical loss as the local term). ``objective`` (the slot, published: ``info_nce`` at temperature 1) is the
loss of the global term and of the neighbouring-segment local term (see :mod:`.losses`); TS2Vec's hierarchical
local term of ``variant: ts2vec`` keeps its published loss (dot-product ``nt_xent``, temperature 1). Augmenter step
(every ``ratio_step`` encoder steps, its own Adam with ``meta_lr``): information preservation (MMD between
the encoder's representations of ``x`` and ``v``) + reg_weight * mask size + temporal consistency of the
mask, with gradients into the augmenter only.
"""

from __future__ import annotations

import warnings
from typing import Literal

import torch
from pydantic import Field, model_validator
from pydantic_core import PydanticCustomError

from ..core.objectives import Objective, objective_config
from ..core.recipe import StrictModel
from ..core.registry import method
from ..core.task import StepContext
from .augment import Augmenter, mask_size_penalty, mmd, temporal_consistency
from .losses import global_loss, hierarchical_loss, local_loss
from .task import TimeseriesTask

__all__ = ["AutoTCLObjectiveConfig", "AutoTCLConfig", "AutoTCLTask", "variant_for"]

AutoTCLObjectiveConfig = objective_config("autotcl", "info_nce", 1.0)  # §3.3; no labels: supcon is refused


class AutoTCLConfig(StrictModel):
    """The recipe's ``method`` section for AutoTCL (``method.name: autotcl``)."""

    name: Literal["autotcl"] = "autotcl"
    renamed = {"temperature": "objective.temperature"}

    aug_dim: int = Field(16, gt=0, description="width of the augmentation network")
    aug_depth: int = Field(3, gt=0)
    meta_lr: float = Field(0.01, gt=0, description="learning rate of the augmentation network")
    ratio_step: int = Field(1, gt=0, description="encoder steps per augmenter step")
    local_weight: float = Field(0.3, ge=0)
    reg_weight: float = Field(0.003, ge=0, description="weight of relu(mean(h) - mask_target)")
    mask_target: float = Field(0.4, gt=0, le=1)
    consistency_weight: float = Field(1.0, ge=0, description="weight of the mask's temporal consistency")
    tau: float = Field(1.0, gt=0, description="Gumbel-sigmoid temperature")
    hard: bool = Field(True, description="hard (straight-through) Gumbel mask")
    segments: int = Field(16, ge=4, description="segments of the local InfoNCE window")
    variant: Literal["auto", "autotcl", "ts2vec"] = Field(
        "auto",
        description="autotcl: cosine global + neighbouring-segment local InfoNCE (the official forecasting "
        "code); ts2vec: dot-product global + TS2Vec's hierarchical local loss (for UCR, whose official code is "
        "unpublished); auto (default): ts2vec for classification data (data.kind classify, and TSEncoder.fit), "
        "autotcl for forecasting and regression",
    )
    objective: AutoTCLObjectiveConfig = Field(
        default_factory=AutoTCLObjectiveConfig,
        description="loss and temperature of the global and local contrastive terms (published: info_nce, 1.0)",
    )

    @model_validator(mode="before")
    @classmethod
    def _objective_was_the_variant(cls, data):
        if isinstance(data, dict) and isinstance(data.get("objective"), str):
            raise PydanticCustomError(
                "renamed_key",
                "objective: {value} (AutoTCL's or TS2Vec's terms) is now the key 'variant': write variant: {value}; "
                "'objective' is the contrastive loss, e.g. objective: {example}",
                {"value": data["objective"], "example": "{loss: info_nce, temperature: 1.0}"},
            )
        return data


def variant_for(variant: str, kind: str) -> str:
    """The loss variant a run uses: ``variant`` itself, or for ``auto`` the one that wins on the task: TS2Vec's
    hierarchical loss for classification (AutoTCL's own terms lowered the SVM accuracy below the untrained
    encoder's on UCR), AutoTCL's terms for forecasting and regression (its published setting).

    Args:
        variant: ``auto``, ``autotcl`` or ``ts2vec`` (the recipe's ``method.variant``).
        kind: the recipe's ``data.kind``.

    Returns:
        ``autotcl`` or ``ts2vec``.
    """
    if variant != "auto":
        return variant
    return "ts2vec" if kind == "classify" else "autotcl"


@method("timeseries", "autotcl")
class AutoTCLTask(TimeseriesTask):
    """AutoTCL's alternating training (encoder step, then augmenter step) on the shared time-series task; the
    estimator is :class:`cl_domains.timeseries.AutoTCL`."""

    config = AutoTCLConfig

    def __init__(self, recipe, data_root, device, panel=None):
        super().__init__(recipe, data_root, device, panel)
        c = self.cfg
        self.variant = variant_for(c.variant, recipe.data.kind)
        self.augmenter = Augmenter(self.net_config["input_dims"], c.aug_dim, c.aug_depth, c.tau, c.hard)
        self.model["augmenter"] = self.augmenter
        self.objective = Objective(c.objective)
        self.model["objective"] = self.objective  # a learnable temperature trains with the encoder
        self.aug_optimizer = torch.optim.Adam(self.augmenter.parameters(), lr=c.meta_lr)
        # augmenter steps skipped for non-finite gradients; a buffer, so checkpoints (and resume) keep the count
        self.augmenter.register_buffer("nonfinite_steps", torch.zeros((), dtype=torch.long))

    def encoder_loss(self, x: torch.Tensor, v: torch.Tensor, g: torch.Generator) -> tuple[torch.Tensor, dict]:
        z1, z2 = self.net(x, generator=g), self.net(v, generator=g)
        c = self.cfg
        cosine = self.variant == "autotcl"
        # AutoTCL §3.3: global (series-level) InfoNCE between the views
        glob = global_loss(z1, z2, normalize=cosine, objective=self.objective)
        if cosine:  # AutoTCL §3.3: local InfoNCE between neighbouring segments
            local = local_loss(z1, c.segments, generator=g, objective=self.objective)
        else:
            local = hierarchical_loss(z1, z2)  # TS2Vec's multi-scale instance + temporal loss (its published loss)
        return glob + c.local_weight * local, {"global": glob.item(), "local": local.item()}

    def augmenter_step(self, x: torch.Tensor, g: torch.Generator) -> dict:
        c = self.cfg
        v, h, _ = self.augmenter(x, g)
        with torch.no_grad():
            zx = self.net(x, mask=False).max(1).values
        zv = self.net(v, mask=False).max(1).values
        keep = mmd(zx, zv)  # AutoTCL §3.2 (PRI): the view preserves the information of x
        size = mask_size_penalty(h, c.mask_target)  # AutoTCL §3.2: small informative part (entropy of v)
        smooth = temporal_consistency(h)  # AutoTCL §3.2: informative regions are contiguous in time
        loss = keep + c.reg_weight * size + c.consistency_weight * smooth
        params = [p for p in self.augmenter.parameters() if p.requires_grad]
        grads = torch.autograd.grad(loss, params, allow_unused=True)  # the encoder's .grad stays untouched
        for p, gr in zip(params, grads, strict=False):
            p.grad = gr
        finite = all(gr is None or torch.isfinite(gr).all() for gr in grads)
        if finite:
            self.aug_optimizer.step()
        else:  # skipped, counted (metrics.json train_stats) and logged
            self.augmenter.nonfinite_steps += 1
            warnings.warn(
                f"AutoTCL: augmenter step skipped, non-finite gradients ({int(self.augmenter.nonfinite_steps)} so far)",
                RuntimeWarning,
                stacklevel=2,
            )
        self.aug_optimizer.zero_grad(set_to_none=True)
        return {"aug_mmd": keep.item(), "mask_mean": h.mean().item(), "aug_skipped": float(not finite)}

    def train_stats(self) -> dict[str, int]:
        return {"aug_nonfinite_steps": int(self.augmenter.nonfinite_steps)}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"augmenter": self.aug_optimizer}  # the loop checkpoints and restores its state

    def loss(self, batch, ctx: StepContext):
        x, g = self.batch_inputs(batch, ctx)
        stats = {}
        if ctx.step % self.cfg.ratio_step == 0:  # alternating updates (AutoTCL Alg. 1)
            stats = self.augmenter_step(x, g)
        with torch.no_grad():
            v, _, _ = self.augmenter(x, g)
        loss, parts = self.encoder_loss(x, v, g)
        return loss, {**stats, **parts}
