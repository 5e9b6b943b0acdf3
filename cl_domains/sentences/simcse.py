"""SimCSE (Gao et al., 2021): unsupervised (dropout views) and supervised (NLI with hard negatives)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from ..core.recipe import StrictModel
from ..core.registry import method
from ..core.task import StepContext
from .losses import Objective, SimCSEObjectiveConfig
from .task import SentenceTask

__all__ = ["SimCSEConfig", "SimCSETask"]


class SimCSEConfig(StrictModel):
    name: Literal["simcse"] = "simcse"
    variant: Literal["unsup", "sup"] = "unsup"
    objective: SimCSEObjectiveConfig = Field(default_factory=SimCSEObjectiveConfig)

    renamed = {"temperature": "objective.temperature"}


@method("sentences", "simcse")
class SimCSETask(SentenceTask):
    """``unsup``: each sentence is encoded twice, the two dropout masks give the positive pair
    (eq. 4); ``sup``: (premise, entailment) is the positive pair and the contradiction of every
    premise in the batch is an extra negative for all anchors (eq. 5); pairs without a hard-negative column
    train with in-batch negatives only."""

    config = SimCSEConfig

    def __init__(self, recipe, data_root, device, examples=None):
        super().__init__(recipe, data_root, device, examples)
        self.use_objective(Objective(self.cfg.objective))

    def build_examples(self, path: Path) -> list:
        return self.read_sentences(path) if self.cfg.variant == "unsup" else self.read_pairs(path)

    def embed_batch(self, batch: list[int], ctx: StepContext) -> tuple:
        """Per example: (view 1, view 2) for ``unsup``, (premise, entailment, contradiction) for ``sup``."""
        rows = [self.examples[i] for i in batch]
        n = len(rows)
        if self.cfg.variant == "unsup":
            z = self.encoder.embed_with_grad(rows + rows, self.max_len)  # one pass, two dropout masks
            return z[:n], z[n:]
        width = len(rows[0])  # 3 with hard negatives, 2 for pairs
        z = self.encoder.embed_with_grad([r[c] for c in range(width) for r in rows], self.max_len)
        return tuple(z[c * n : (c + 1) * n] for c in range(width))

    def loss_from_embeddings(self, z: tuple, batch: list[int], ctx: StepContext):
        # eq. 4 (unsup, and pairs without hard negatives); eq. 5 with them (the contradictions: hard negatives)
        return self.objective(z[0], z[1], hard_negatives=z[2] if len(z) > 2 else None)
