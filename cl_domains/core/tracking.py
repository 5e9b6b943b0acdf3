"""Experiment tracking: ``train.track: [mlflow, tensorboard]`` (or ``--track``), off by default.

A tracker is a training :class:`cl_domains.core.train.Callback`. It logs the resolved recipe as parameters, every
logged step's loss and learning rate, each dev evaluation, the final test metrics (``final/<metric>``), the metrics
before training (``before/<metric>``) and the baselines (``baseline/<name>/<metric>``), and, for MLflow, the run's
``report.md``, ``curves.png`` and model card as artifacts.

- MLflow: the tracking URI of ``MLFLOW_TRACKING_URI`` when set, else the local file store ``./mlruns`` (view it with
  ``mlflow ui --backend-store-uri ./mlruns``); experiment ``MLFLOW_EXPERIMENT_NAME`` or ``cl-domains``.
- TensorBoard: event files in ``<run dir>/tensorboard`` (``tensorboard --logdir runs``).

``cl-domains matrix --track mlflow`` opens one parent run and logs every cell as its child.
Needs the ``tracking`` extra: ``pip install 'cl-domains[tracking]'`` (``mlflow-skinny``, ``tensorboard``).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import UserError

if TYPE_CHECKING:  # pragma: no cover
    from .recipe import Recipe

__all__ = [
    "TRACKERS",
    "trackers",
    "require_trackers",
    "metric_key",
    "mlflow_client",
    "matrix_parent",
    "PARENT_ENV",
    "TRACK_ENV",
]

TRACKERS = ("mlflow", "tensorboard")
PARENT_ENV = "CL_DOMAINS_MLFLOW_PARENT"  # the matrix's parent run id, read by its cells' processes
TRACK_ENV = "CL_DOMAINS_TRACK"  # trackers the matrix asks of its cells (comma-separated)
_NEEDS = {"mlflow": "mlflow", "tensorboard": "tensorboard"}


def require_trackers(names: list[str]) -> None:
    """Raise a :class:`UserError` for an unknown tracker or one whose package is not installed."""
    for name in names:
        if name not in TRACKERS:
            raise UserError(f"track: {name!r} is not a tracker; use: {', '.join(TRACKERS)}.")
        if importlib.util.find_spec(_NEEDS[name]) is None:
            raise UserError(f"train.track includes {name}, which is not installed: pip install 'cl-domains[tracking]'.")


def mlflow_client() -> tuple[Any, str]:
    """An ``MlflowClient`` on the tracking URI (``MLFLOW_TRACKING_URI``, else ``./mlruns``) and the experiment id."""
    require_trackers(["mlflow"])
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if not uri:
        uri = Path("mlruns").resolve().as_uri()
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")  # the local file store is the embedded default
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    name = os.environ.get("MLFLOW_EXPERIMENT_NAME", "cl-domains")
    exp = client.get_experiment_by_name(name)
    return client, exp.experiment_id if exp is not None else client.create_experiment(name)


def _flat(d: Any, prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    if isinstance(d, dict):
        for k, v in d.items():
            out.update(_flat(v, f"{prefix}{k}."))
        return out
    out[prefix[:-1]] = json.dumps(d) if not isinstance(d, str) else d
    return out


def metric_key(name: str) -> str:
    """A logged metric name: ``@`` becomes ``_at_``, other characters MLflow refuses become ``_``."""
    return re.sub(r"[^\w\-. :/]", "_", name.replace("@", "_at_"))


def _numbers(d: dict, prefix: str) -> dict[str, float]:
    return {
        metric_key(f"{prefix}{k}"): float(v)
        for k, v in d.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool)
    }


def _summary(metrics: dict[str, Any]) -> dict[str, float]:
    """The run's end metrics by logged name: ``final/``, ``before/``, ``baseline/<name>/``."""
    out = _numbers(metrics.get("final", {}), "final/")
    out.update(_numbers(metrics.get("before", {}), "before/"))
    for name, values in (metrics.get("baselines") or {}).items():
        out.update(_numbers(values, f"baseline/{name}/"))
    return out


class _Tracker:
    """A training callback (the hooks of :class:`cl_domains.core.train.Callback`): params once, the loss at each
    logged step, dev metrics, the end summary."""

    def __init__(self, recipe: Recipe):
        self.recipe, self.started = recipe, False

    def on_step_end(self, trainer: Any, ctx: Any, loss: float) -> None:
        self._start(trainer)
        step = trainer.state.step
        if step % trainer.cfg.log_every == 0 or step == trainer.total:
            self.scalars({"train/loss": loss, "train/lr": trainer.scheduler.get_last_lr()[0]}, step)

    def on_evaluate(self, trainer: Any, split: str, metrics: dict[str, float]) -> None:
        self._start(trainer)
        if split == "dev":
            self.scalars(_numbers(metrics, "dev/"), trainer.state.step)

    def on_fit_end(self, trainer: Any, metrics: dict[str, Any]) -> None:
        self._start(trainer)
        self.scalars(_summary(metrics), trainer.state.step)
        self.finish(trainer.run.dir)

    def _start(self, trainer: Any) -> None:
        if not self.started:
            self.started = True
            self.start(trainer.run.dir, _flat(self.recipe.resolved))

    # per backend
    def start(self, run_dir: Path, params: dict[str, str]) -> None: ...
    def scalars(self, values: dict[str, float], step: int) -> None: ...
    def finish(self, run_dir: Path) -> None: ...


class MLflowTracker(_Tracker):
    """Logs to MLflow (a child of the matrix's parent run when ``CL_DOMAINS_MLFLOW_PARENT`` is set)."""

    def start(self, run_dir: Path, params: dict[str, str]) -> None:
        from mlflow.entities import Param

        self.client, exp = mlflow_client()
        parent = os.environ.get(PARENT_ENV)
        tags = {"mlflow.parentRunId": parent} if parent else {}
        tags["cl_domains.run_dir"] = str(run_dir)
        self.run_id = self.client.create_run(exp, run_name=run_dir.name, tags=tags).info.run_id
        items = [Param(k, v[:6000]) for k, v in params.items()]
        for i in range(0, len(items), 100):
            self.client.log_batch(self.run_id, params=items[i : i + 100])

    def scalars(self, values: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(k, v, now, step) for k, v in values.items()]
        for i in range(0, len(items), 500):
            self.client.log_batch(self.run_id, metrics=items[i : i + 500])

    def finish(self, run_dir: Path) -> None:
        for name in ("report.md", "curves.png", "metrics.json", "model/README.md"):
            if (run_dir / name).is_file():
                self.client.log_artifact(self.run_id, str(run_dir / name))
        self.client.set_terminated(self.run_id, "FINISHED")


class TensorBoardTracker(_Tracker):
    """Writes TensorBoard event files to ``<run dir>/tensorboard``."""

    def start(self, run_dir: Path, params: dict[str, str]) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(run_dir / "tensorboard"))
        self.writer.add_text("recipe", "\n".join(f"    {k}: {v}" for k, v in params.items()), 0)

    def scalars(self, values: dict[str, float], step: int) -> None:
        for k, v in values.items():
            self.writer.add_scalar(k, v, step)

    def finish(self, run_dir: Path) -> None:
        self.writer.close()


def trackers(recipe: Recipe) -> list[Any]:
    """The tracking callbacks of ``train.track`` (plus those a matrix asks of its cells through the environment).

    Args:
        recipe: the resolved recipe.

    Returns:
        Callbacks for :class:`cl_domains.core.train.Trainer` (none on processes other than rank 0).
    """
    from . import distributed as D

    names = list(dict.fromkeys([*recipe.train.track, *filter(None, os.environ.get(TRACK_ENV, "").split(","))]))
    if not names or D.rank() != 0:
        return []
    require_trackers(names)
    kinds: dict[str, type[_Tracker]] = {"mlflow": MLflowTracker, "tensorboard": TensorBoardTracker}
    return [kinds[n](recipe) for n in names]


def matrix_parent(names: list[str], title: str) -> tuple[Any, str] | None:
    """Open the parent MLflow run of a matrix (``None`` when MLflow is not tracked).

    Returns:
        ``(client, run_id)``; set ``CL_DOMAINS_MLFLOW_PARENT`` to the id for the cells.
    """
    require_trackers(names)
    if "mlflow" not in names:
        return None
    client, exp = mlflow_client()
    return client, client.create_run(exp, run_name=title).info.run_id
