"""The time-series estimators: :class:`TSEncoder` and one class per method, :class:`TS2Vec` and :class:`AutoTCL`.

``TS2Vec(train={"max_steps": 50}).fit(X)`` trains on series ``X`` (numpy ``[N, T]`` / ``[N, T, C]``, a DataFrame
with one series per row, shorter series NaN-padded at the end) through the loop of ``cl-domains run``;
``fit("ucr/GunPoint")`` or ``fit("my_TRAIN.ts", test="my_TEST.ts")`` trains on a dataset and scores it as the
run's report does. ``embed(X)`` gives one float32 vector per series (max-pooled over time); ``save(dir)`` /
``TSEncoder.load(dir)`` (or a run's ``model/`` folder) keep and restore the encoder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..core.errors import UserError
from ..core.estimator import Estimator, estimator, estimator_class
from .networks import TS2VecNet
from .probes import encode_series
from .task import write_encoder

__all__ = ["TSEncoder", "TS2Vec", "AutoTCL", "as_panel", "write_encoder"]

IN_MEMORY = "<in memory>"  # data.path of a fit on in-memory series


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


class TSEncoder(Estimator):
    """A time-series encoder (TS2Vec's dilated-convolution network) trained by a contrastive method.

    ``TSEncoder(method="autotcl")`` is :class:`AutoTCL`, ``method="ts2vec"`` (the default) :class:`TS2Vec`.
    The settings start from the method's shipped recipe and its ``quick`` profile (``TS2Vec``: ``ts2vec_ett``;
    ``AutoTCL``: ``autotcl_ucr``, whose classification settings use TS2Vec's hierarchical loss); ``model=``,
    ``data=``, ``method=``, ``train=``, ``eval=`` dicts change the recipe's sections (e.g.
    ``train={"max_steps": 200, "threads": 1}``, ``model={"output_dims": 64}``). The seed is ``train={"seed": s}``
    (default 0).

    Args:
        recipe: a shipped recipe name or a YAML path to start from.
        profile: the recipe profile (default ``quick`` with the shipped recipe).
        out: ``None``: train in a temporary run directory removed after ``fit``; a folder: keep the run there
            (``run_dir_``), as ``cl-domains run --out`` does.
        model, data, method, train, eval: dicts merged onto the recipe's sections (``method`` may be a name).

    Attributes (after ``fit`` or ``load``):
        recipe_: the resolved recipe. metrics_: the final test metrics (empty for unlabelled in-memory series).
        baselines_: the run's baselines. net_: the (weight-averaged) encoder network. run_dir_: the kept run
        directory or ``None``.
    """

    domain = "timeseries"
    default_recipe = "ts2vec_ett"

    def __new__(cls, *args: Any, **kwargs: Any):
        if cls is TSEncoder:  # TSEncoder(method=...) is the method's own class
            name = kwargs.get("method")
            name = name.get("name") if isinstance(name, dict) else name
            cls = estimator_class("timeseries", name or "ts2vec")
        return super().__new__(cls)

    # ------------------------------------------------------------------ fit
    def data_settings(self, data: Any = None, y: Any = None, *, test: str | Path | None = None) -> dict[str, Any]:
        """``None``: the recipe's data; a path or dataset name (``"ucr/GunPoint"``, ``"ett/ETTh1"``, a ``.ts``
        file or long table with ``test=``): that data, scored as the run's report does; series in memory: trained
        on them alone (no labels, so no scores; ``y`` is accepted and ignored, as by scikit-learn transformers)."""
        if data is None:
            return {"test": str(test)} if test is not None else {}
        if isinstance(data, (str, Path)):
            from .task import is_ts_file

            out: dict[str, Any] = {"path": str(data)}
            if test is not None:
                out["test"] = str(test)
            given = self.data or {}
            if given.get("kind") is None:  # data={"kind": "regress"} for extrinsic regression
                paired = test is not None or given.get("test") is not None
                series = paired or is_ts_file(str(data)) or str(data).startswith("ucr/") or Path(data).is_dir()
                out["kind"] = "classify" if series else "forecast"  # else: a forecasting dataset or CSV
            return out
        return {"kind": "classify", "path": IN_MEMORY, "test": None}

    def build_task(self, recipe, device, data: Any = None, y: Any = None, **kwargs: Any):
        """The method's task; series in memory are its training data (no evaluation data)."""
        from ..core import registry

        cls = registry.method_spec("timeseries", recipe.method.name).cls
        if data is None or isinstance(data, (str, Path)):
            return cls(recipe, None, device)
        return cls(recipe, None, device, panel=as_panel(data))

    def after_fit(self, task) -> None:
        self.net_ = task.encoder().eval()
        self.network_ = dict(task.net_config)
        self.scaler_ = task.input_scaler()

    def _panel(self, x: Any) -> np.ndarray:
        """Raw series -> the encoder's inputs: checked, and standardised as the training series were."""
        panel = as_panel(x)
        if panel.shape[-1] != self.net_.input_dims:
            raise UserError(
                f"{type(self).__name__}: the series have {panel.shape[-1]} channel(s), the encoder was trained on "
                f"{self.net_.input_dims}."
            )
        if self.scaler_ is None:
            return panel
        mean, std = self.scaler_
        return ((panel.astype(np.float64) - mean) / std).astype(np.float32)

    # ------------------------------------------------------------------ inference
    def embed_tensor(self, x: Any) -> torch.Tensor:
        """One vector per series, max-pooled over its timestamps: ``[N, D]``. Series are given raw: a model
        trained on a dataset's files standardises them with that data's training statistics, as its run did."""
        return torch.as_tensor(encode_series(self.net_, self._panel(x)))

    def embed_timestamps(self, x: Any) -> np.ndarray:
        """One vector per timestamp: ``[N, T, D]`` float32, a row per step of the (NaN-padded) input."""
        self._check_fitted()
        with torch.no_grad():
            return self.net_(torch.as_tensor(self._panel(x)), mask=False).cpu().float().numpy()

    def transform(self, x: Any) -> np.ndarray:
        """scikit-learn's name for :meth:`embed`."""
        return self.embed(x)

    def onnx_graph(self):
        """The encoder as one ONNX graph, inputs to embedding (``cl-domains export``)."""
        self._check_fitted()
        from .onnx_graph import onnx_graph

        return onnx_graph(self.net_, self.scaler_, lambda x: (self._panel(x), as_panel(x))[1])  # checked, raw

    def embedding_dim(self) -> int:
        return self.network_["output_dims"] * (2 if self.network_.get("trend") else 1)

    def evaluate(self, data: Any = None, *, test: str | Path | None = None) -> dict[str, float]:
        """The run report's final metrics of this encoder: on the data it was trained on (``None``) or on
        another dataset (a path or name as in :meth:`fit`, with ``test=`` for a ``.ts``/long-table pair)."""
        from ..core import registry
        from ..core.modes import eval_mode
        from ..core.recipe import recipe_from_dict

        self._check_fitted()
        if data is None and test is None and getattr(self, "task_", None) is not None:
            return super().evaluate()
        if data is None and self.recipe_.data.path == IN_MEMORY:
            raise UserError(f"{type(self).__name__}.evaluate(): give the data to score (a path or dataset name).")
        sections = {"data": self.data_settings(data, test=test)} if data is not None else {}
        recipe = recipe_from_dict(self.recipe_.resolved, source="evaluate()", sections=sections or None)
        task = registry.method_spec("timeseries", recipe.method.name).cls(recipe, None, torch.device("cpu"))
        task.encoder().load_state_dict(self.net_.state_dict())
        with eval_mode(task.model):
            return dict(task.evaluate("test"))

    # ------------------------------------------------------------------ save / load
    def save(self, directory: str | Path) -> Path:
        """Write the model directory (``model.safetensors``, ``cl_domains.json`` with the network settings, a
        model card ``README.md``).

        Returns:
            The directory.
        """
        self._check_fitted()
        return write_encoder(
            directory,
            self.recipe_,
            self.net_,
            self.network_,
            self.scaler_,
            estimator=self.estimator_name,
            metrics=self.metrics_,
            baselines=self.baselines_,
            paper=self.paper_,
        )

    def restore(self, model_dir) -> None:
        self.network_ = dict(model_dir.manifest["network"])
        self.net_ = TS2VecNet(**self.network_)
        self.net_.load_state_dict(model_dir.tensors())
        self.net_.eval()
        self.scaler_ = None
        if "scaler.safetensors" in model_dir.manifest.get("files", {}):
            s = model_dir.tensors("scaler.safetensors")
            self.scaler_ = (s["mean"].numpy(), s["std"].numpy())

    @classmethod
    def read_inputs(cls, path: str | Path) -> tuple[list[str], np.ndarray]:
        """Series to embed from a ``.ts`` file or a long table (columns ``series``, ``time``, ``value``).

        Returns:
            ``(ids, X)``: the series ids (``.ts``: the 0-based case numbers) and ``[N, T, C]``.
        """
        from .data import read_long
        from .task import is_long_table, is_ts_file
        from .ts_format import read_ts

        if is_ts_file(str(path)):
            x = read_ts(path)[0]
            return [str(i) for i in range(len(x))], x
        if is_long_table(str(path)):
            x, _, ids = read_long(path)
            return [str(i) for i in ids], x
        raise UserError(f"{path}: time-series inputs are a .ts file or a long table (CSV/TSV/JSONL/parquet).")


@estimator("timeseries", "ts2vec")
class TS2Vec(TSEncoder):
    """TS2Vec (Yue et al., AAAI 2022): random overlapping crops, timestamp masking, hierarchical contrastive
    loss. Default settings: the ``ts2vec_ett`` recipe, ``quick`` profile. See :class:`TSEncoder` for the
    arguments and verbs."""

    default_recipe = "ts2vec_ett"


@estimator("timeseries", "autotcl")
class AutoTCL(TSEncoder):
    """AutoTCL (Zheng et al., ICLR 2024): a learned augmentation network trained alternately with the encoder.
    Default settings: the ``autotcl_ucr`` recipe (classification: TS2Vec's hierarchical loss, ``method.variant:
    ts2vec``), ``quick`` profile; ``recipe="autotcl_ett"`` for forecasting. See :class:`TSEncoder`."""

    default_recipe = "autotcl_ucr"
