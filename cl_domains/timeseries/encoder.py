"""``TSEncoder``: a scikit-learn transformer around the TS2Vec network.

``TSEncoder(pretrained="runs/<run>/model")`` loads what a recipe exported (``fit`` only loads);
``TSEncoder()`` trains TS2Vec on ``fit(X)``. ``X``: numpy ``[N, T]`` / ``[N, T, C]`` or a pandas
DataFrame with one series per row. Shorter series may be NaN-padded at the end.
``transform`` gives ``[N, D]`` (``per="series"``, max-pooled) or ``[N, T, D]`` (``per="timestamp"``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_model
from sklearn.base import BaseEstimator, TransformerMixin

from ..core.errors import UserError
from .networks import TS2VecNet
from .probes import encode_series
from .task import sections

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
        self.pretrained, self.per, self.output_dims, self.hidden, self.depth = (
            pretrained,
            per,
            output_dims,
            hidden,
            depth,
        )
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
        from .ts2vec import ts2vec_loss

        x = torch.as_tensor(sections(as_panel(X), self.max_train_length))
        torch.manual_seed(self.seed)
        self.net_ = TS2VecNet(x.shape[-1], self.output_dims, self.hidden, self.depth).to(self.device)
        opt = torch.optim.AdamW(self.net_.parameters(), lr=self.lr)
        g = torch.Generator().manual_seed(self.seed)
        self.net_.train()
        bs = min(self.batch_size, len(x))
        for _ in range(self.n_iters):
            idx = torch.randperm(len(x), generator=g)[:bs]
            loss = ts2vec_loss(self.net_, x[idx].to(self.device), g)
            opt.zero_grad()
            loss.backward()
            opt.step()
        self.net_.eval()
        return self

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
