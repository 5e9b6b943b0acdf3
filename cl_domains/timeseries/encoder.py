"""``TSEncoder``: a scikit-learn transformer around the TS2Vec network.

``TSEncoder(pretrained="runs/<run>/model")`` loads what a recipe exported (``fit`` only loads);
``TSEncoder(method="ts2vec" | "autotcl")`` trains that method on ``fit(X)`` (the recipe methods' own
losses and weight average; ``method_params`` sets keys of the recipe's ``method`` section). ``X``: numpy ``[N, T]`` / ``[N, T, C]`` or a pandas
DataFrame with one series per row. Shorter series may be NaN-padded at the end.
``transform`` gives ``[N, D]`` (``per="series"``, max-pooled) or ``[N, T, D]`` (``per="timestamp"``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from pydantic import ValidationError
from safetensors.torch import load_model
from sklearn.base import BaseEstimator, TransformerMixin

from ..core.errors import UserError
from ..core.task import StepContext
from .networks import TS2VecNet
from .probes import encode_series

__all__ = ["TSEncoder", "as_panel"]


def as_panel(X, what: str = "X") -> np.ndarray:
    """numpy / pandas / list input -> ``[N, T, C]`` float32, with clear errors for malformed series."""
    try:
        import pandas as pd

        if isinstance(X, (pd.DataFrame, pd.Series)):
            X = X.to_numpy()
    except ImportError:  # pragma: no cover
        pass
    if isinstance(X, (list, tuple)) or (isinstance(X, np.ndarray) and X.dtype == object):
        lengths = {len(np.asarray(s)) for s in X}
        if len(lengths) > 1:
            raise UserError(
                f"{what}: series have different lengths {sorted(lengths)[:5]}; pad the shorter ones "
                "with NaN at the end into one [N, T] or [N, T, C] array."
            )
    try:
        arr = np.asarray(X, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise UserError(f"{what}: cannot be read as numbers ({exc}).") from None
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise UserError(f"{what}: expected [N, T] or [N, T, C] with N, T > 0, got shape {arr.shape}.")
    if np.isinf(arr).any():
        raise UserError(f"{what}: contains infinite values (series {int(np.argwhere(np.isinf(arr))[0][0])}).")
    missing = np.isnan(arr).all(-1)  # [N, T]
    if missing.all(1).any():
        raise UserError(f"{what}: series {int(np.argmax(missing.all(1)))} has no values (all NaN).")
    # NaN is allowed only as trailing padding: once missing, a series must stay missing.
    inner = missing[:, :-1] & ~missing[:, 1:]
    if inner.any():
        i, t = np.argwhere(inner)[0]
        raise UserError(
            f"{what}: series {i} has a missing value (NaN) at step {t} followed by values; "
            "fill or interpolate gaps first (NaN is only accepted as end padding of shorter series)."
        )
    return arr


class TSEncoder(BaseEstimator, TransformerMixin):
    def __init__(
        self,
        pretrained: str | None = None,
        per: str = "series",
        method: str = "ts2vec",
        method_params: dict | None = None,
        output_dims: int = 320,
        hidden: int = 64,
        depth: int = 10,
        lr: float = 1e-3,
        batch_size: int = 8,
        n_iters: int = 200,
        max_train_length: int = 3000,
        seed: int = 0,
        device: str = "cpu",
    ):
        self.pretrained, self.per, self.method, self.method_params = pretrained, per, method, method_params
        self.output_dims, self.hidden, self.depth = output_dims, hidden, depth
        self.lr, self.batch_size, self.n_iters, self.max_train_length = lr, batch_size, n_iters, max_train_length
        self.seed, self.device = seed, device

    @staticmethod
    def load(directory: str | Path, **kwargs) -> "TSEncoder":
        enc = TSEncoder(pretrained=str(directory), **kwargs)
        return enc._load()

    def _load(self) -> "TSEncoder":
        d = Path(self.pretrained)
        if not (d / "config.json").is_file() or not (d / "model.safetensors").is_file():
            raise UserError(f"{d} is not an exported time-series encoder (needs config.json and model.safetensors).")
        cfg = json.loads((d / "config.json").read_text())["network"]
        self.net_ = TS2VecNet(**cfg)
        load_model(self.net_, str(d / "model.safetensors"), device=self.device)
        self.net_.eval()
        return self

    def fit(self, X, y=None) -> "TSEncoder":
        if self.per not in ("series", "timestamp"):
            raise UserError(f"TSEncoder: per must be 'series' or 'timestamp', got {self.per!r}.")
        if self.pretrained:
            return self._load()
        task = self._task(as_panel(X))
        opt = torch.optim.AdamW([p for p in task.net.parameters() if p.requires_grad], lr=self.lr)
        task.model.train()
        step, epoch = 0, 0
        while step < self.n_iters:
            for i, batch in enumerate(task.batches(epoch)):
                ctx = StepContext(step, epoch, i, self.seed, torch.device(self.device))
                out = task.loss(batch, ctx)
                loss = out[0] if isinstance(out, tuple) else out
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                task.on_step_end(ctx)
                step += 1
                if step >= self.n_iters:
                    break
            epoch += 1
        self.net_ = task.encoder().eval()  # the weight average, as a recipe run exports
        return self

    def _task(self, x: np.ndarray):
        """The registered method's task on the in-memory series ``x``."""
        from ..core import registry
        from ..core.recipe import PaperConfig, Recipe, TrainConfig
        from .task import TimeseriesDataConfig, TimeseriesEvalConfig, TimeseriesModelConfig

        methods = registry.domain("timeseries").methods
        if self.method not in methods:
            raise UserError(f"TSEncoder: method must be one of {', '.join(sorted(methods))}, got {self.method!r}.")
        cls = registry.method_spec("timeseries", self.method, "TSEncoder").cls
        try:
            params = cls.config.model_validate({**(self.method_params or {}), "name": self.method})
            model = TimeseriesModelConfig(output_dims=self.output_dims, hidden=self.hidden, depth=self.depth)
            data = TimeseriesDataConfig(kind="classify", path="<fit(X)>", max_train_length=self.max_train_length)
            train = TrainConfig(seed=self.seed, batch_size=self.batch_size, lr=self.lr)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "method_params"
            raise UserError(f"TSEncoder: {where}: {first['msg']} (method_params or the encoder's arguments).") from None
        recipe = Recipe(
            name="tsencoder",
            domain="timeseries",
            description="",
            profile=None,
            model=model,
            data=data,
            method=params,
            train=train,
            eval=TimeseriesEvalConfig(),
            paper=PaperConfig(),
            resolved={},
            source="TSEncoder",
        )
        torch.manual_seed(self.seed)  # the networks' initial weights
        task = cls(recipe, None, torch.device(self.device), panel=x)
        task.model.to(self.device)
        return task

    def transform(self, X) -> np.ndarray:
        if not hasattr(self, "net_"):
            raise UserError("TSEncoder: call fit() first (or TSEncoder.load(<exported model dir>)).")
        x = as_panel(X)
        if x.shape[-1] != self.net_.input_dims:
            raise UserError(
                f"TSEncoder: X has {x.shape[-1]} channel(s), the encoder was trained on {self.net_.input_dims}."
            )
        if self.per == "series":
            return encode_series(self.net_, x)
        with torch.no_grad():
            return self.net_(torch.as_tensor(x, device=self.device), mask=False).cpu().numpy()
