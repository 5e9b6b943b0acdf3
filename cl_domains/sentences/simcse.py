"""SimCSE (Gao et al., 2021): unsupervised (dropout views) and supervised (NLI with hard negatives)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from ..core.losses import info_nce
from ..core.recipe import StrictModel
from ..core.registry import method
from ..core.task import StepContext
from .data import read_corpus, read_triplets
from .task import SentenceTask

__all__ = ["SimCSEConfig", "SimCSE"]


class SimCSEConfig(StrictModel):
    name: Literal["simcse"] = "simcse"
    variant: Literal["unsup", "sup"] = "unsup"
    temperature: float = Field(0.05, gt=0)


@method("sentences", "simcse")
class SimCSE(SentenceTask):
    """``unsup``: each sentence is encoded twice, the two dropout masks give the positive pair
    (eq. 4); ``sup``: (premise, entailment) is the positive pair and the contradiction of every
    premise in the batch is an extra negative for all anchors (eq. 5)."""

    config = SimCSEConfig

    def build_examples(self, path: Path) -> list:
        return read_corpus(path) if self.cfg.variant == "unsup" else read_triplets(path)

    def embed(self, batch: list[int], ctx: StepContext) -> tuple:
        """Per example: (view 1, view 2) for ``unsup``, (premise, entailment, contradiction) for ``sup``."""
        rows = [self.examples[i] for i in batch]
        n = len(rows)
        if self.cfg.variant == "unsup":
            z = self.encoder.embed(rows + rows, self.max_len)  # one pass, two dropout masks
            return z[:n], z[n:]
        flat = [r[0] for r in rows] + [r[1] for r in rows] + [r[2] for r in rows]
        z = self.encoder.embed(flat, self.max_len)
        return z[:n], z[n : 2 * n], z[2 * n :]

    def loss_from_embeddings(self, z: tuple, batch: list[int], ctx: StepContext):
        if self.cfg.variant == "unsup":
            return info_nce(z[0], z[1], self.cfg.temperature)
        return info_nce(z[0], z[1], self.cfg.temperature, hard_negatives=z[2])
