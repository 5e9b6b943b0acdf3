"""The regression estimators: :class:`Regressor` and one class per method, :class:`SupReMix`,
:class:`RankNContrast` and :class:`L1Regressor`; :func:`fit` is a shortcut.

``SupReMix().fit(X, y)`` trains on a table ``X [n, features]`` or series ``[n, length, channels]`` (NaN gaps
allowed) with targets ``y [n]``, through the loop of ``cl-domains run``: the rows are split at random into train,
dev (checkpoint selection) and test by ``data={"dev_fraction": .1, "test_fraction": .2, "split": seed}``.
``predict(X)`` gives values in ``y``'s units, ``embed(X)`` the representation; ``save(dir)`` keeps the weights with
the input scaler and the target scaling, so ``Regressor.load(dir).predict(X)`` reproduces the predictions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..core.errors import UserError
from ..core.estimator import RENAMED_KEYWORDS, Estimator, estimator, estimator_class
from .data import Split, _fill_series, from_arrays
from .task import write_regressor

__all__ = ["Regressor", "SupReMix", "RankNContrast", "L1Regressor", "fit", "write_regressor"]

IN_MEMORY = "<in memory>"  # data.dataset of a fit on arrays


class Regressor(Estimator):
    """A regression model (an encoder, a projector for the contrastive term, a linear head) trained by a method.

    ``Regressor(method="rnc")`` is :class:`RankNContrast`; the default method is SupReMix. The settings start from
    the ``supremix_airfoil`` recipe's ``quick`` profile (an MLP for tables, a 1-D CNN for series; joint L1 +
    contrastive training); ``model=``, ``data=``, ``method=``, ``train=``, ``eval=`` dicts change its sections
    (e.g. ``train={"epochs": 50, "seed": 1}``, ``data={"test_fraction": 0.2}``). The seed is ``train={"seed": s}``
    (default 0).

    Args:
        recipe: a shipped recipe name or a YAML path to start from.
        profile: the recipe profile (default ``quick`` with the shipped recipe).
        out: ``None``: train in a temporary run directory removed after ``fit``; a folder: keep the run there
            (``run_dir_``), as ``cl-domains run --out`` does.
        model, data, method, train, eval: dicts merged onto the recipe's sections (``method`` may be a name).

    Attributes (after ``fit`` or ``load``):
        recipe_: the resolved recipe. metrics_: the final test metrics (``dev_*`` when there is no test split).
        baselines_: the run's baselines (ridge on the raw features, ...). model_: encoder, projector and head.
        run_dir_: the kept run directory or ``None``.
    """

    domain = "regression"
    default_recipe = "supremix_airfoil"
    renamed = {
        **RENAMED_KEYWORDS,
        "dev_fraction": "data={'dev_fraction': F}",
        "test_fraction": "data={'test_fraction': F}",
    }

    def __new__(cls, *args: Any, **kwargs: Any):
        if cls is Regressor:  # Regressor(method=...) is the method's own class
            name = kwargs.get("method")
            name = name.get("name") if isinstance(name, dict) else name
            cls = estimator_class("regression", name or "supremix")
        return super().__new__(cls)

    def build_recipe(self, data_settings: dict[str, Any] | None = None):
        """The recipe (see :class:`Regressor`), with ``method.name`` set to this class's method."""
        given = self.method
        named = {"name": given} if isinstance(given, str) else dict(given or {})
        self.method = {"name": self.method_name, **named}
        try:
            return super().build_recipe(data_settings)
        finally:
            self.method = given

    # ------------------------------------------------------------------ fit
    def data_settings(self, data: Any = None, y: Any = None) -> dict[str, Any]:
        """``None``: the recipe's dataset; a path: a table or PBP folder (a table needs ``data={"target": ...}``);
        arrays ``X, y``: trained on them."""
        if data is None:
            return {}
        if isinstance(data, (str, Path)):
            return {"dataset": str(data)}
        if y is None:
            raise UserError(f"{type(self).__name__}.fit(X, y): give the targets y, one per row of X.")
        return {"dataset": IN_MEMORY}

    def build_task(self, recipe, device, data: Any = None, y: Any = None):
        """The method's task on the recipe's data, or on ``X, y`` split at random by the ``data`` settings."""
        from ..core.registry import method_spec

        cls = method_spec("regression", recipe.method.name).cls
        if data is None or isinstance(data, (str, Path)):
            return cls(recipe, None, device)
        d = recipe.data
        arrays = from_arrays(data, y, dev_fraction=d.dev_fraction, test_fraction=d.test_fraction, split=d.split)
        if d.test_fraction == 0:  # no test rows: the task scores the dev split and names it dev_*
            arrays.test = Split(arrays.test.x[:0], arrays.test.y[:0])
        if len(arrays.train) < recipe.train.batch_size:  # small data: one batch of all training rows
            recipe.train.batch_size = len(arrays.train)
            recipe.resolved["train"]["batch_size"] = len(arrays.train)
        return cls(recipe, None, device, data=arrays)

    def after_fit(self, task) -> None:
        from .task import inference_state

        self.model_, self.prep_, self.scaler_ = inference_state(task)
        self.model_.eval()

    # ------------------------------------------------------------------ inference
    def _inputs(self, x: Any) -> torch.Tensor:
        """Raw inputs shaped like the training ``X`` -> the model's inputs (gaps filled, standardised)."""
        p = self.prep_
        if p["kind"] == "pairs":
            raise UserError(f"{type(self).__name__}: a model trained on sentence pairs predicts only its own splits.")
        x = np.asarray(x, dtype=np.float64)
        want = tuple(p["input_shape"])
        if p["kind"] == "series" and x.ndim == 2 and len(want) == 2:
            x = x[..., None]
        if x.shape[1:] != want:
            raise UserError(
                f"inputs of shape {x.shape} do not match the training inputs [n, {', '.join(map(str, want))}]; "
                "give the same columns (series: the same length and channels) as in training."
            )
        if p["kind"] == "series" and x.ndim == 3:
            x = _fill_series(x, "input")
        if self.scaler_:
            x = (x - self.scaler_["mean"].numpy()) / self.scaler_["std"].numpy()
        return torch.as_tensor(x.astype(np.float32))

    def embed_tensor(self, x: Any) -> torch.Tensor:
        """The encoder's representation ``[n, dim]`` of raw inputs shaped like the training ``X``."""
        enc, inputs = self.model_["encoder"].eval(), self._inputs(x)
        bs = self.recipe_.eval.batch_size
        device = next(enc.parameters()).device
        return torch.cat([enc(inputs[i : i + bs].to(device)).cpu() for i in range(0, len(inputs), bs)])

    def predict(self, x: Any) -> np.ndarray:
        """Predicted targets ``[n]`` (float64, in the units of ``y``)."""
        self._check_fitted()
        head = self.model_["head"].eval()
        with torch.no_grad():
            z = self.embed_tensor(x)
            out = head(z.to(next(head.parameters()).device)).squeeze(-1).cpu().double().numpy()
        out = out * self.prep_["y_std"] + self.prep_["y_mean"]
        if self.prep_["offset_last_value"]:  # the model predicts the change from the window's last value
            out = out + np.asarray(x, np.float64).reshape(len(out), -1)[:, -1]
        return out

    def evaluate(self, data: Any = None, y: Any = None) -> dict[str, float]:
        """The run report's final metrics: on the test split trained on (``None``) or on ``X, y``."""
        from .metrics import metrics_by_shot

        self._check_fitted()
        if data is None:
            return super().evaluate()
        if y is None:
            raise UserError(f"{type(self).__name__}.evaluate(X, y): give the targets y.")
        return metrics_by_shot(self.predict(data), np.asarray(y, np.float64).ravel(), None)

    def embedding_dim(self) -> int:
        return int(self.model_["encoder"].dim)

    # ------------------------------------------------------------------ save / load
    def save_files(self, directory: Path) -> tuple[dict, dict, dict]:
        tensors = {"model.safetensors": self.model_.state_dict()}
        if self.scaler_:
            tensors["scaler.safetensors"] = self.scaler_
        return tensors, {"preprocessing.json": self.prep_}, {}

    def restore(self, model_dir) -> None:
        from .task import regression_modules

        self.prep_ = model_dir.json("preprocessing.json")
        files = model_dir.manifest.get("files", {})
        self.scaler_ = model_dir.tensors("scaler.safetensors") if "scaler.safetensors" in files else {}
        p = self.prep_
        self.model_ = regression_modules(self.recipe_.model, p["kind"], p["input_shape"], p["contrastive"])
        self.model_.load_state_dict(model_dir.tensors())
        self.model_.eval()

    @classmethod
    def read_inputs(cls, path: str | Path) -> tuple[list[str], np.ndarray]:
        """Rows to embed from a table (CSV/TSV/JSONL/parquet with a header, numeric columns in training order).

        Returns:
            ``(ids, X)``: the 0-based row numbers and ``[n, columns]``.
        """
        from ..core.tables import read_table

        df = read_table(Path(path), what="regression inputs")
        return [str(i) for i in range(len(df))], df.to_numpy(np.float64)


@estimator("regression", "supremix")
class SupReMix(Regressor):
    """SupReMix (Wu et al. 2023): supervised contrastive regression with mixup-made hard negatives and positives,
    trained jointly with an L1 head. See :class:`Regressor` for the arguments and verbs."""


@estimator("regression", "rnc")
class RankNContrast(Regressor):
    """Rank-N-Contrast (Zha et al., NeurIPS 2023): contrast ranked by target distance, trained jointly with an L1
    head. See :class:`Regressor` for the arguments and verbs."""


@estimator("regression", "l1")
class L1Regressor(Regressor):
    """The same encoder and head trained on the regression loss alone (L1 or MSE): the floor the contrastive
    methods are compared with. See :class:`Regressor`."""


def fit(x: Any, y: Any, *, method: str = "supremix", **settings: Any) -> Regressor:
    """``Regressor(method=method, **settings).fit(x, y)``: train a regression method on arrays.

    Args:
        x: ``[n, features]`` or series ``[n, length, channels]``.
        y: ``[n]`` targets.
        method: ``supremix``, ``rnc`` or ``l1``.
        settings: the estimator's keywords (``train={"epochs": 50}``, ``data={"test_fraction": 0.2}``, ``out=`` ...).

    Returns:
        The fitted estimator.
    """
    return estimator_class("regression", method)(**settings).fit(x, y)
