"""In-memory entry point: ``fit(X, y) -> Regressor`` with ``.predict(X)`` and ``.embed(X)``.

``X`` is a table ``[n, features]`` (MLP encoder) or series ``[n, length, channels]`` with NaN gaps allowed
(1-D CNN encoder). The rows are split at random into train and dev (model selection); training is the same
loop, recipe schema and methods as ``cl-domains run``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ..core.modes import eval_mode
from .data import RegressionData, from_arrays

__all__ = ["fit", "Regressor"]

# The defaults of a run on in-memory arrays (the UCI recipes' settings, fewer epochs); `overrides` change them.
_BASE = {
    "name": "regression_arrays",
    "domain": "regression",
    "model": {"hidden": [128, 128], "projection": 64},
    "data": {"dataset": "table"},  # not read: the arrays are the data
    "method": {"name": "supremix", "protocol": "joint", "contrastive_weight": 0.1, "noise": 0.02},
    "train": {
        "seed": 0,
        "batch_size": 64,
        "lr": 1e-3,
        "weight_decay": 1e-4,
        "epochs": 50,
        "schedule": "cosine",
        "eval_every": 100,
        "select_mode": "min",
        "checkpoint_every": 100000,
        "log_every": 1000,
        "eval_before": False,
        "threads": 1,
    },
}


class Regressor:
    """A trained regression model: :meth:`predict` (target units) and :meth:`embed` (the representation)."""

    def __init__(self, task, metrics: dict[str, Any]):
        self.task, self.metrics = task, metrics

    @property
    def data(self) -> RegressionData:
        return self.task.data

    def _inputs(self, x: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(self.data.prepare(x))

    def embed(self, x: np.ndarray) -> np.ndarray:
        """The encoder's representation ``[n, dim]`` of raw inputs shaped like the training ``X``."""
        return self.task.represent(self._inputs(x)).numpy()

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Predicted targets ``[n]`` (float64, in the units of ``y``)."""
        t = self.task
        with eval_mode(t.model):
            out = t.head(t.represent(self._inputs(x)).to(t.device)).squeeze(-1).cpu().double().numpy()
        return out * t.y_std + t.y_mean


def fit(
    x: np.ndarray,
    y: np.ndarray,
    *,
    method: str = "supremix",
    epochs: int = 50,
    batch_size: int = 64,
    dev_fraction: float = 0.1,
    test_fraction: float = 0.0,
    seed: int = 0,
    overrides: Sequence[str] = (),
    out: str | Path | None = None,
) -> Regressor:
    """Train ``method`` (supremix | rnc | l1) on ``x`` ``[n, d]`` or ``[n, T, channels]`` and targets ``y`` ``[n]``.

    ``dev_fraction`` of the rows (seeded by ``seed``) select the checkpoint; ``test_fraction`` > 0 holds out a
    test split scored once at the end (else the final metrics are the dev split's). ``overrides`` are recipe
    ``--set`` strings (e.g. ``"model.hidden=[64,64]"``); ``out``: keep the run directory there (default: a
    temporary one, deleted). Returns a :class:`Regressor`; its ``metrics`` are the run's ``metrics.json``."""
    from ..core.recipe import recipe_from_dict
    from ..core.registry import method_spec
    from ..core.train import pick_device, seed_everything, train_task

    data = from_arrays(x, y, dev_fraction=dev_fraction, test_fraction=test_fraction, split=seed)
    with tempfile.TemporaryDirectory(prefix="cl-regression-") as tmp:
        sets = [
            f"method.name={method}",
            f"train.epochs={epochs}",
            f"train.batch_size={min(batch_size, len(data.train))}",
            f"train.seed={seed}",
            *overrides,
        ]
        recipe = recipe_from_dict(_BASE, None, sets, source=f"regression.fit(method={method!r})")
        device = pick_device(recipe.train.device)
        seed_everything(recipe.train.seed)
        task = method_spec("regression", recipe.method.name).cls(recipe, None, device, data=data)
        run = train_task(recipe, task, out=out if out is not None else Path(tmp) / "runs", device=device)
        return Regressor(task, dict(run.metrics))
