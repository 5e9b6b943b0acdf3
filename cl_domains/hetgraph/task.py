"""Recipe sections of the heterogeneous-graph domain and the full-batch task its methods share."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal, Optional

import numpy as np
import torch
from pydantic import Field
from safetensors.torch import load_model, save_model

from ..core.recipe import Recipe, StrictModel
from ..core.task import Task
from .data import SCHEMAS, SPLITS, load_heco
from .encoder import MEOWEncoder
from .evaluate import cluster_scores, linear_probe

__all__ = ["HetGraphModelConfig", "HetGraphDataConfig", "HetGraphEvalConfig", "HetGraphTask", "load_encoder"]


class HetGraphModelConfig(StrictModel):
    hidden: int = Field(64, gt=0)
    dropout: float = Field(0.2, ge=0, lt=1)
    nei_max: list[int] = Field(..., description="PathSim top-k per meta-path (the schema's order)")
    feat_mask: float = Field(
        0.3, ge=0, lt=1, description="fraction of target feature non-zeros zeroed in the masked copy"
    )
    adj_mask: list[float] = Field(..., description="fraction of pruned meta-path edges dropped, per meta-path")
    mask_seed: int = 0


class HetGraphDataConfig(StrictModel):
    dataset: Literal["acm", "dblp"]
    folder: Optional[str] = Field(None, description="a HeCo-format data/<dataset> folder instead of the card's files")


class HetGraphEvalConfig(StrictModel):
    lr: float = Field(0.01, gt=0, description="linear probe Adam learning rate (HeCo: acm 0.05, dblp 0.01)")
    weight_decay: float = Field(0.0, ge=0)
    repeats: int = Field(50, gt=0)
    steps: int = Field(200, gt=0)
    rates: list[Literal[20, 40, 60]] = Field(default_factory=lambda: list(SPLITS))
    dev_repeats: int = Field(2, gt=0, description="probe repeats of the per-checkpoint validation score")
    cluster_runs: int = Field(10, gt=0)


class HetGraphTask(Task):
    """Full-batch training: one batch (the whole graph) per epoch. Model selection on the validation
    Macro-F1 of a small linear probe (mean over the label rates); evaluation in eval mode."""

    dev_metric = "val_macro_f1"

    def __init__(self, recipe: Recipe, data_root, device: torch.device):
        self.recipe, self.cfg, self.device = recipe, recipe.method, device
        self.seed = recipe.train.seed
        d, m = recipe.data, recipe.model
        self.data = load_heco(d.dataset, data_root, d.folder)
        self.target = SCHEMAS[d.dataset].target
        self.y = self.data[self.target].y
        feat_dims = {t: int(self.data[t].x.shape[1]) for t in self.data.node_types}
        self.model = self.encoder = MEOWEncoder(
            d.dataset, feat_dims, m.hidden, m.dropout, m.nei_max, m.feat_mask, m.adj_mask, m.mask_seed
        )
        self.graph = self.encoder.inputs(self.data)
        self.build_heads()

    def build_heads(self) -> None:
        """Methods add trained modules beyond the encoder here."""

    def num_batches(self, epoch: int) -> int:
        return 1

    def batches(self, epoch: int):
        yield None  # the batch is the whole graph (``self.graph``); the epoch comes from the step context

    def embeddings(self) -> torch.Tensor:
        return self.encoder.embed(self.data)

    def evaluate(self, split: str) -> dict[str, float]:
        e, z = self.recipe.eval, self.embeddings()
        if split == "dev":
            scores = [self._probe(z, r, e.dev_repeats)["val_macro_f1"].mean() for r in e.rates]
            return {"val_macro_f1": float(np.mean(scores))}
        return self.test_scores(z)

    def _probe(self, z: torch.Tensor, rate: int, repeats: int) -> dict:
        """The recipe's linear probe on ``z`` at ``rate`` labels per class, ``repeats`` times."""
        e = self.recipe.eval
        return linear_probe(
            z,
            self.y,
            *self._split(rate),
            repeats=repeats,
            steps=e.steps,
            lr=e.lr,
            weight_decay=e.weight_decay,
            seed=self.seed,
        )

    def test_scores(self, z: torch.Tensor) -> dict[str, float]:
        """The reported test metrics of node embeddings ``z``: the linear probe at every label rate, KMeans."""
        e = self.recipe.eval
        out: dict[str, float] = {}
        for r in e.rates:
            res = self._probe(z, r, e.repeats)
            for k in ("macro_f1", "micro_f1", "auc"):
                out[f"{k}_{r}"] = float(res[k].mean())
                out[f"{k}_{r}_std"] = float(res[k].std())
        out.update(cluster_scores(z, self.y, e.cluster_runs, self.seed))
        return out

    def baselines(self) -> dict[str, dict[str, float]]:
        """``untrained encoder`` (called before training: the encoder at its seeded initialisation) and
        ``raw features`` (the target nodes' input features, same probe and clustering)."""
        x = self.data[self.target].x
        raw = (x.to_dense() if x.is_sparse else x).float()
        return {"untrained encoder": self.test_scores(self.embeddings()), "raw features": self.test_scores(raw)}

    def _split(self, rate: int):
        s = self.data[self.target]
        return s[f"train_{rate}"], s[f"val_{rate}"], s[f"test_{rate}"]

    def export(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        save_model(self.encoder, str(directory / "encoder.safetensors"))
        (directory / "config.json").write_text(json.dumps(self.encoder.config, indent=1))


def load_encoder(directory: str | Path) -> MEOWEncoder:
    """An exported encoder (``<run>/model``): ``load_encoder(d).embed(load_heco("acm"))``."""
    directory = Path(directory)
    enc = MEOWEncoder(**json.loads((directory / "config.json").read_text()))
    load_model(enc, str(directory / "encoder.safetensors"))
    return enc.eval()
