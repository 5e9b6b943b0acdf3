"""Recipe sections of the time-series domain and the training task its methods share."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field, field_validator, model_validator
from torch import nn
from torch.optim.swa_utils import AveragedModel

from ..core import data as core_data
from ..core.baselines import (
    forecast_errors,
    lagged_windows,
    last_value_forecast,
    minirocket_available,
    minirocket_predict,
    nearest_neighbour_accuracy,
    ridge_select,
)
from ..core.errors import UserError
from ..core.modes import eval_mode
from ..core.recipe import Recipe, StrictModel
from ..core.rng import generator
from ..core.task import StepContext, Task
from .data import (
    HORIZONS,
    Classification,
    Forecast,
    Regression,
    read_forecast,
    read_long_split,
    read_ts_split,
    read_ucr,
)
from .networks import TS2VecNet
from .probes import encode_causal, encode_series, forecast_samples, regression_probe, ridge_probe, svm_probe

__all__ = [
    "TimeseriesBackboneConfig",
    "TimeseriesModelConfig",
    "TimeseriesDataConfig",
    "TimeseriesEvalConfig",
    "TimeseriesTask",
    "sections",
    "random_crops",
]


class TimeseriesBackboneConfig(StrictModel):
    """The encoder body (``model.backbone``): TS2Vec's dilated convolutions or a tsai architecture."""

    name: Literal["ts2vec", "tsai"] = Field(
        "ts2vec",
        description="ts2vec: the dilated-conv encoder; tsai: a tsai "
        "architecture (optional extra: pip install 'cl-domains[tsai]')",
    )
    arch: str | None = Field(None, description="tsai model class with per-timestamp features, e.g. InceptionTime")
    kwargs: dict[str, Any] = Field(
        default_factory=dict, description="keyword arguments of the tsai model, e.g. {nf: 32}"
    )

    @model_validator(mode="after")
    def _arch_with_tsai(self):
        if self.name == "tsai" and not self.arch:
            raise ValueError("arch is required with name: tsai (e.g. InceptionTime)")
        return self


class TimeseriesModelConfig(StrictModel):
    """The recipe's ``model`` section of the time-series domain: the TS2Vec network's sizes and masking."""

    output_dims: int = Field(320, gt=0)
    hidden: int = Field(64, gt=0)
    depth: int = Field(10, gt=0)
    kernel: int = Field(3, gt=0)
    dropout: float = Field(0.1, ge=0, lt=1)
    mask_p: float = Field(0.5, ge=0, lt=1, description="TS2Vec timestamp masking probability in training (0 = off)")
    trend: bool = Field(False, description="append the CoST trend head (AutoTCL's forecasting encoder)")
    max_kernel: int = Field(128, gt=0)
    backbone: TimeseriesBackboneConfig = Field(
        default_factory=TimeseriesBackboneConfig,
        description="the encoder body between input projection and output (default: TS2Vec's)",
    )


class TimeseriesDataConfig(StrictModel):
    """The recipe's ``data`` section of the time-series domain: the task (``kind``) and where its series are."""

    kind: Literal["forecast", "classify", "regress"] = Field(
        "forecast", description="forecast (ridge, MSE/MAE), classify (SVM, accuracy) or regress (ridge, RMSE/MAE)"
    )
    path: str = Field(
        ...,
        description="forecast: 'ett/ETTh1' or a CSV; classify: 'ucr/<Name>', a folder of <Name>_TRAIN/TEST.tsv "
        "or a train file (.ts, or a long table: CSV/TSV/JSONL/parquet); regress: a .ts (@targetLabel true) or "
        "long-table train file",
    )
    test: str | None = Field(None, description="classify/regress from .ts files or long tables: the test file")
    id: str = Field("series", description="long table (CSV/TSV/JSONL/parquet path): the series id column")
    time: str = Field("time", description="long table: the time-step column (sorts each series)")
    value: list[str] = Field(["value"], min_length=1, description="long table: one value column per dimension")
    label: str = Field("label", description="long table: the per-series class (classify) or target (regress)")
    name: str | None = Field(None, description="dataset name for split rule and target (default: from the path)")
    univariate: bool = True
    target: str | None = None
    horizons: list[int] | None = Field(None, description="forecast horizons (default: the paper's for the dataset)")
    max_train_length: int = Field(257, gt=1, description="training sections are at most this long")

    @field_validator("value", mode="before")
    @classmethod
    def _one_value_column(cls, v):
        return [v] if isinstance(v, str) else v

    @model_validator(mode="after")
    def _own_files(self):
        own = is_ts_file(self.path) or is_long_table(self.path)
        if self.kind == "regress" and not own:
            raise ValueError(
                f"kind regress reads .ts files (TSER, @targetLabel true) or long tables; path {self.path!r} is neither"
            )
        if is_ts_file(self.path) and self.kind == "forecast":
            raise ValueError("a .ts path needs kind classify or regress")
        if own and self.kind != "forecast" and not self.test:
            raise ValueError(f"path {self.path!r} is a train file: set test to the matching test file")
        if self.test and not (own and self.kind != "forecast"):
            raise ValueError("test is only read with kind classify/regress and a .ts or long-table train file")
        return self


SELECT_DEFAULTS = {"forecast": "val_mse", "classify": "cv_acc", "regress": "cv_r2"}  # dev metric per data.kind
SELECT_MODES = {"val_mse": "min", "cv_acc": "max", "cv_r2": "max"}


def is_long_table(path: str) -> bool:
    name = path.lower().removesuffix(".gz")
    return name.endswith((".csv", ".tsv", ".jsonl", ".parquet"))


def is_ts_file(path: str) -> bool:
    return path.lower().endswith((".ts", ".ts.gz"))


class TimeseriesEvalConfig(StrictModel):
    """The recipe's ``eval`` section of the time-series domain: how series are encoded for the probes."""

    padding: int = Field(200, ge=0, description="causal window before each timestamp when encoding for forecasting")
    batch_size: int = Field(256, gt=0)
    probe_with_raw: bool = Field(
        False,
        description="forecasting: also fit the test ridge probe on [representation, raw window] concatenated (the "
        "raw window is the 'ridge on raw window' baseline's input); test keys mse_with_raw / mae_with_raw",
    )


def sections(x: np.ndarray, length: int) -> np.ndarray:
    """``[N, T, C]`` -> ``[N * ceil(T / length), length, C]`` when ``T > length``, NaN-padding the last
    section; all-NaN sections are dropped."""
    n, t, c = x.shape
    if t <= length:
        return x
    k = math.ceil(t / length)
    padded = np.full((n, k * length, c), np.nan, np.float32)
    padded[:, :t] = x
    out = padded.reshape(n * k, length, c)
    return out[~np.isnan(out).all(axis=(1, 2))]


def random_crops(x: torch.Tensor, g: torch.Generator, temporal_unit: int = 0) -> tuple[torch.Tensor, torch.Tensor, int]:
    """TS2Vec's contextual consistency views (§3.2): two overlapping random crops of each series
    with per-series offsets; returns both crops and the length ``l`` of the overlap, which is the
    last ``l`` steps of the first and the first ``l`` steps of the second."""
    b, t, _ = x.shape

    def draw(lo: int, hi: int, size: int = 1) -> torch.Tensor:  # integers in [lo, hi)
        return torch.randint(lo, hi, (size,), generator=g)

    overlap = int(draw(min(2 ** (temporal_unit + 1), t), t + 1))
    left = int(draw(0, t - overlap + 1))
    right = left + overlap
    ext_left, ext_right = int(draw(0, left + 1)), int(draw(right, t + 1))
    shift = draw(-ext_left, t - ext_right + 1, b)

    def take(start: torch.Tensor, length: int) -> torch.Tensor:
        idx = (start.unsqueeze(1) + torch.arange(length)).to(x.device)
        return x[torch.arange(b, device=x.device).unsqueeze(1), idx]

    return take(shift + ext_left, right - ext_left), take(shift + left, ext_right - left), overlap


class TimeseriesTask(Task):
    """Shared by the time-series methods: data, the TS2Vec network and its SWA copy, the probes, export.
    A method implements :meth:`loss` (and may add modules to ``self.model`` before training)."""

    def __init__(self, recipe: Recipe, data_root, device: torch.device, panel: np.ndarray | None = None):
        """``panel``: train on these series ``[N, T, C]`` (no evaluation data; :class:`TSEncoder`) instead of
        reading ``recipe.data``."""
        self.recipe, self.cfg, self.device = recipe, recipe.method, device
        self.seed, self.data_root = recipe.train.seed, data_root
        d = recipe.data
        self.data: Forecast | Classification | Regression | None
        if panel is not None:
            self.data, train, self.dev_metric = None, panel, "cv_acc"
        elif d.kind == "forecast":
            self.data = read_forecast(
                core_data.resolve(d.path, data_root), d.name, univariate=d.univariate, target=d.target
            )
            self.horizons = d.horizons or HORIZONS.get(self.data.name)
            if not self.horizons:
                raise UserError(f"data.horizons is not set and {self.data.name!r} has no default horizons.")
            test_len = self.data.borders[2] - self.data.borders[1]
            val_len = self.data.borders[1] - self.data.borders[0]
            too_long = [h for h in self.horizons if h >= min(test_len, val_len)]
            if too_long:
                raise UserError(
                    f"data.horizons {too_long} are too long: the {self.data.name} validation/test splits have "
                    f"{val_len}/{test_len} steps; every horizon must be shorter."
                )
            train = self.data.split("train")[None]
            self.dev_metric = "val_mse"
        elif is_ts_file(d.path) or is_long_table(d.path):
            paths = core_data.resolve(d.path, data_root), core_data.resolve(d.test, data_root)
            if is_ts_file(d.path):
                self.data = read_ts_split(*paths, d.kind)
            else:
                self.data = read_long_split(*paths, d.kind, id=d.id, time=d.time, value=d.value, label=d.label)
            train = self.data.x_train
            self.dev_metric = "cv_acc" if d.kind == "classify" else "cv_r2"
        else:
            self.data = read_ucr(self._ucr_folder(d.path, data_root))
            train = self.data.x_train
            self.dev_metric = "cv_acc"
        if panel is None:
            self._check_select_metric(recipe)
        self.train_x = torch.as_tensor(sections(train, d.max_train_length))
        self.batch_size = min(recipe.train.batch_size, len(self.train_x))  # a batch larger than the data takes it all
        m = recipe.model
        self.net_config = dict(
            input_dims=int(self.train_x.shape[-1]),
            output_dims=m.output_dims,
            hidden=m.hidden,
            depth=m.depth,
            kernel=m.kernel,
            dropout=m.dropout,
            mask_p=m.mask_p,
            trend=m.trend,
            max_kernel=m.max_kernel,
        )
        if m.backbone.name != "ts2vec":
            self.net_config["backbone"] = m.backbone.model_dump()
        self.net = TS2VecNet(**self.net_config)
        self.swa = AveragedModel(self.net, use_buffers=True)  # tsai backbones have BatchNorm statistics
        self.model = nn.ModuleDict({"net": self.net, "swa": self.swa})
        self._cache: tuple[float, np.ndarray] | None = None

    def _check_select_metric(self, recipe: Recipe) -> None:
        """``train.select_metric`` must be a dev metric of ``data.kind``: another kind's selection metric (a recipe
        written for classification run with ``kind: regress``, say) becomes this kind's, with its direction; any
        other unknown name is refused before the data is encoded or a step is taken."""
        t = recipe.train
        if t.select_metric is None:
            return
        kind = recipe.data.kind
        horizons = getattr(self, "horizons", None) or []
        own = {"forecast": ["val_mse", *(f"val_mse_{h}" for h in horizons)], "classify": ["cv_acc"]}
        own["regress"] = ["cv_r2", "cv_rmse"]
        if t.select_metric in own[kind]:
            return
        if t.select_metric in SELECT_DEFAULTS.values():  # another kind's default: follow the kind
            t.select_metric, t.select_mode = self.dev_metric, SELECT_MODES[self.dev_metric]
            recipe.resolved.setdefault("train", {}).update(select_metric=t.select_metric, select_mode=t.select_mode)
            return
        raise UserError(
            f"recipe {recipe.source}: train.select_metric {t.select_metric!r} is not a dev metric of data.kind "
            f"{kind!r}; choose one of {', '.join(own[kind])} (or leave it unset: {self.dev_metric})."
        )

    @staticmethod
    def _ucr_folder(ref: str, data_root) -> Path:
        if Path(ref).expanduser().is_dir():
            return Path(ref).expanduser()
        card, _, name = ref.partition("/")
        train = core_data.resolve(f"{card}/{name}_train", data_root)
        core_data.resolve(f"{card}/{name}_test", data_root)
        return train.parent

    # -- batches ---------------------------------------------------------------
    def num_batches(self, epoch: int) -> int:
        return len(self.train_x) // self.batch_size  # full batches only, as TS2Vec and AutoTCL (drop_last)

    def batches(self, epoch: int) -> Iterator[torch.Tensor]:
        """The epoch's batches: index tensors into ``train_x``, shuffled by ``rng.generator(seed, "shuffle", epoch)``."""
        order = torch.randperm(len(self.train_x), generator=generator(self.seed, "shuffle", epoch))
        b = self.batch_size
        for i in range(self.num_batches(epoch)):
            yield order[i * b : (i + 1) * b]

    def batch_inputs(self, batch: torch.Tensor, ctx: StepContext) -> tuple[torch.Tensor, torch.Generator]:
        """The batch's series and the generator of its random draws (crops, masks, augmentations)."""
        return self.train_x[batch].to(self.device), ctx.generator("views")

    def on_step_end(self, ctx: StepContext) -> None:
        self.swa.update_parameters(self.net)  # each post-step weight enters the average once

    # -- evaluation ------------------------------------------------------------
    def encoder(self) -> nn.Module:
        """The weight average of the trained network (TS2Vec's SWA): what is evaluated and exported."""
        return self.swa.module

    def _forecast_reprs(self) -> np.ndarray:
        net = self.encoder()
        key = float(sum(p.detach().double().abs().sum() for p in net.parameters()))
        if self._cache is None or self._cache[0] != key:
            with eval_mode(net):
                reprs = encode_causal(net, self.data.values, self.recipe.eval.padding, self.recipe.eval.batch_size)
            self._cache = (key, reprs)
        return self._cache[1]

    def evaluate(self, split: str) -> dict[str, float]:
        if self.data is None:  # series given in memory without labels: nothing to score
            return {}
        if isinstance(self.data, Regression):
            with eval_mode(self.encoder()) as net:
                tr, te = encode_series(net, self.data.x_train), encode_series(net, self.data.x_test)
            res = regression_probe((tr, self.data.y_train), (te, self.data.y_test) if split == "test" else None)
            keys = ("cv_r2", "cv_rmse") if split == "dev" else ("rmse", "mae", "cv_r2", "cv_rmse")
            return {k: res[k] for k in keys}
        if isinstance(self.data, Classification):
            with eval_mode(self.encoder()) as net:
                tr, te = encode_series(net, self.data.x_train), encode_series(net, self.data.x_test)
            res = svm_probe((tr, self.data.y_train), (te, self.data.y_test) if split == "test" else None)
            return {"cv_acc": res["cv_acc"]} if split == "dev" else {"acc": res["acc"], "cv_acc": res["cv_acc"]}
        reprs, f = self._forecast_reprs(), self.data
        a, b, c = f.borders
        target = f.values[:, f.n_covariates :]
        out: dict[str, float] = {}
        for h in self.horizons:
            res = ridge_probe(
                forecast_samples(reprs[:a], target[:a], h, drop=self.recipe.eval.padding),
                forecast_samples(reprs[a:b], target[a:b], h),
                forecast_samples(reprs[b:c], target[b:c], h) if split == "test" else None,
            )
            out[f"val_mse_{h}"] = res["val_mse"]
            if split == "test":
                out[f"mse_{h}"], out[f"mae_{h}"] = res["mse"], res["mae"]
        out["val_mse"] = float(np.mean([out[f"val_mse_{h}"] for h in self.horizons]))
        if split == "test":
            out["mse"] = float(np.mean([out[f"mse_{h}"] for h in self.horizons]))
            out["mae"] = float(np.mean([out[f"mae_{h}"] for h in self.horizons]))
            if self.recipe.eval.probe_with_raw:
                out.update(self._probe_with_raw(reprs))
            return {k: v for k, v in out.items() if not k.startswith("val_")}
        return out

    def _probe_with_raw(self, reprs: np.ndarray) -> dict[str, float]:
        """Test MSE / MAE of the ridge probe on [representation, raw window of ``eval.padding + 1`` target values]."""
        f, pad = self.data, self.recipe.eval.padding
        a, b, c = f.borders
        target = f.values[:, f.n_covariates :]
        both = np.concatenate([reprs, lagged_windows(target, pad + 1)], axis=1)
        out: dict[str, float] = {}
        for h in self.horizons:
            res = ridge_probe(
                forecast_samples(both[:a], target[:a], h, drop=pad),
                forecast_samples(both[a:b], target[a:b], h),
                forecast_samples(both[b:c], target[b:c], h),
            )
            out[f"mse_with_raw_{h}"], out[f"mae_with_raw_{h}"] = res["mse"], res["mae"]
        for k in ("mse", "mae"):
            out[f"{k}_with_raw"] = float(np.mean([out[f"{k}_with_raw_{h}"] for h in self.horizons]))
        return out

    def baselines(self) -> dict[str, dict[str, float]]:
        """Simple baselines on the same split and metrics. Forecasting: ``last value`` (persistence) and
        ``ridge on raw window`` (the last ``eval.padding + 1`` raw target values, the window the encoder
        sees; the time covariates are left out: they drift out of their training range on test, and a ridge
        on them extrapolates badly; alpha on validation as the probe's). Classification: ``raw 1-NN`` (Euclidean) and ``raw SVM``
        (the same RBF SVM probe on the raw series), and ``MiniRocket`` when the optional ``aeon`` package is installed
        (:func:`~cl_domains.core.baselines.minirocket_predict`; also for regression). Regression: ``train mean`` and ``ridge on raw series``
        (the same ridge probe on the NaN-zeroed raw series)."""
        if self.data is None:
            return {}
        if isinstance(self.data, Regression):
            d = self.data
            flat = lambda x: np.nan_to_num(x.reshape(len(x), -1))  # noqa: E731
            ridge = regression_probe((flat(d.x_train), d.y_train), (flat(d.x_test), d.y_test))
            err = d.y_test - d.y_train.mean()
            out = {
                "train mean": {"rmse": float(np.sqrt((err**2).mean())), "mae": float(np.abs(err).mean())},
                "ridge on raw series": {k: ridge[k] for k in ("rmse", "mae", "cv_r2", "cv_rmse")},
            }
            if minirocket_available():
                err = minirocket_predict(d.x_train, d.y_train, d.x_test, "regress", self.recipe.train.seed) - d.y_test
                out["MiniRocket"] = {"rmse": float(np.sqrt((err**2).mean())), "mae": float(np.abs(err).mean())}
            return out
        if isinstance(self.data, Classification):
            d = self.data
            flat = lambda x: np.nan_to_num(x.reshape(len(x), -1))  # noqa: E731
            svm = svm_probe((flat(d.x_train), d.y_train), (flat(d.x_test), d.y_test))
            out = {
                "raw 1-NN": {"acc": nearest_neighbour_accuracy(d.x_train, d.y_train, d.x_test, d.y_test)},
                "raw SVM": {"acc": svm["acc"], "cv_acc": svm["cv_acc"]},
            }
            if minirocket_available():
                pred = minirocket_predict(d.x_train, d.y_train, d.x_test, "classify", self.recipe.train.seed)
                out["MiniRocket"] = {"acc": float((pred == d.y_test).mean())}
            return out
        f, pad = self.data, self.recipe.eval.padding
        a, b, c = f.borders
        target = f.values[:, f.n_covariates :]
        windows = lagged_windows(target, pad + 1)
        last: dict[str, float] = {}
        ridge: dict[str, float] = {}
        for h in self.horizons:
            last.update({f"{k}_{h}": v for k, v in forecast_errors(*last_value_forecast(target[b:c], h)).items()})
            tr = forecast_samples(windows[:a], target[:a], h, drop=pad)
            va = forecast_samples(windows[a:b], target[a:b], h)
            te = forecast_samples(windows[b:c], target[b:c], h)
            res = ridge_select(tr, va, {"test": te[0]})
            ridge.update({f"{k}_{h}": v for k, v in forecast_errors(res["test_pred"]["test"], te[1]).items()})
        for out in (last, ridge):
            for k in ("mse", "mae"):
                out[k] = float(np.mean([out[f"{k}_{h}"] for h in self.horizons]))
        return {"last value": last, "ridge on raw window": ridge}

    def input_scaler(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The per-channel mean and std the data readers standardised the training series with, from the raw
        training file (``.ts``, long table, or a UCR set shipped unnormalised); ``None`` where the series are used
        as given (in-memory series, forecasting data, UCR sets shipped normalised)."""
        from .data import NON_NORMALISED_UCR, _read_tsv, read_long
        from .ts_format import read_ts

        d = self.recipe.data
        if not isinstance(self.data, (Classification, Regression)):
            return None
        if is_ts_file(d.path) or is_long_table(d.path):
            path = core_data.resolve(d.path, self.data_root)
            if is_ts_file(d.path):
                x = read_ts(path)[0]
            else:
                x = read_long(path, id=d.id, time=d.time, value=d.value, label=d.label, path=path, keys="data.")[0]
            mean, std = np.nanmean(x, axis=(0, 1)), np.nanstd(x, axis=(0, 1))
            return mean, np.where(std > 0, std, 1.0)
        folder = self._ucr_folder(d.path, self.data_root)
        if folder.name not in NON_NORMALISED_UCR:
            return None
        train = next(
            f for f in (folder / f"{folder.name}_TRAIN.tsv", folder / f"{folder.name}_TRAIN.tsv.gz") if f.is_file()
        )
        x = _read_tsv(train)[1]
        return np.array([np.nanmean(x)]), np.array([np.nanstd(x)])

    def export(self, directory: Path) -> None:
        """The averaged encoder in the model-directory layout (:mod:`cl_domains.core.modeldir`), with the input
        scaler of its data: what ``TSEncoder.load`` and ``cl_domains.load`` read."""
        write_encoder(directory, self.recipe, self.encoder(), self.net_config, self.input_scaler())


def write_encoder(
    directory: str | Path,
    recipe,
    net: torch.nn.Module,
    network: dict[str, Any],
    scaler: tuple[np.ndarray, np.ndarray] | None = None,
    **fields: Any,
) -> Path:
    """Write an encoder in the model-directory layout (a run's ``model/`` and :meth:`TSEncoder.save`).

    Args:
        directory: the folder.
        recipe: the resolved recipe it was trained with.
        net: the (averaged) encoder network.
        network: the ``TS2VecNet`` constructor arguments.
        scaler: the per-channel mean and std applied to raw series before encoding (``scaler.safetensors``).
        fields: manifest fields (``metrics``, ``baselines``, ``paper``, ``estimator``).

    Returns:
        The directory.
    """
    from ..core.modeldir import make_manifest, write_model_dir

    tensors = {"model.safetensors": {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}}
    if scaler is not None:
        tensors["scaler.safetensors"] = {
            k: torch.as_tensor(np.asarray(v, np.float64)) for k, v in zip(("mean", "std"), scaler, strict=False)
        }
    dim = network["output_dims"] * (2 if network.get("trend") else 1)
    manifest = make_manifest(recipe, embedding_dim=dim, network=network, **fields)
    return write_model_dir(directory, manifest, tensors)
