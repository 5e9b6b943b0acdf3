"""Experiment tracking: a tiny run with ``--track mlflow`` / ``--track tensorboard`` logs what metrics.json holds
(read back with mlflow.search_runs and TensorBoard's EventAccumulator); the matrix logs its cells as children of one
parent MLflow run; a clear error without the extra."""

from __future__ import annotations

import importlib.util
import json
import math
import os
from pathlib import Path

import pytest

from cl_domains.cli import main
from cl_domains.core import registry
from cl_domains.core.tracking import metric_key

pytest.importorskip("mlflow")
pytest.importorskip("tensorboard")

RUN = ["run", "debcse_sts", "-p", "tiny", "--set", "train.log_every=1"]  # the main job, smallest profile


@pytest.fixture
def store(tmp_path, monkeypatch):
    """A private MLflow file store."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", (tmp_path / "mlruns").as_uri())
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    return tmp_path / "mlruns"


def _runs():
    import mlflow

    return mlflow.search_runs(search_all_experiments=True, output_format="list")


def test_mlflow_and_tensorboard_hold_the_metrics_of_metrics_json(tmp_path, store):
    from mlflow.tracking import MlflowClient
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    assert main([*RUN, "--out", str(tmp_path / "runs"), "--track", "mlflow", "--track", "tensorboard"]) == 0
    run_dir = next((tmp_path / "runs").iterdir())
    metrics = json.loads((run_dir / "metrics.json").read_text())
    final, losses = metrics["final"], metrics["history"]["loss"]
    assert final

    (run,) = _runs()
    logged = run.data.metrics
    assert {k: logged[f"final/{k}"] for k in final} == final  # the same numbers (float64)
    assert {k: logged[f"before/{k}"] for k in metrics["before"]} == metrics["before"]
    for name, values in metrics.get("baselines", {}).items():
        assert {k: logged[metric_key(f"baseline/{name}/{k}")] for k in values} == values
    assert run.data.params["train.track"] == '["mlflow", "tensorboard"]'
    assert run.data.params["method.name"] == "debcse"
    history = MlflowClient().get_metric_history(run.info.run_id, "train/loss")
    assert [[m.step, m.value] for m in sorted(history, key=lambda m: m.step)] == losses
    artifacts = {a.path for a in MlflowClient().list_artifacts(run.info.run_id)}
    assert {"report.md", "curves.png"} <= artifacts

    events = EventAccumulator(str(run_dir / "tensorboard"))
    events.Reload()
    for k, v in final.items():  # TensorBoard stores float32
        assert math.isclose(events.Scalars(f"final/{k}")[-1].value, v, rel_tol=1e-6, abs_tol=1e-7)
    assert [e.step for e in events.Scalars("train/loss")] == [s for s, _ in losses]


def test_the_matrix_logs_its_cells_as_children_of_one_run(tmp_path, store, toy_plugin_site, monkeypatch):
    monkeypatch.syspath_prepend(str(toy_plugin_site))
    paths = [str(toy_plugin_site), str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH", "")]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in paths if p))
    monkeypatch.setattr(registry, "_plugins_loaded", False)
    recipe = str(toy_plugin_site / "cl_domains_toy/toyline.yaml")
    args = ["matrix", "--recipes", recipe, "--profile", "tiny", "--losses", "info_nce", "--seeds", "0,1"]
    assert main([*args, "--threads", "1", "--track", "mlflow", "--out", str(tmp_path / "m")]) == 0
    runs = _runs()
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert len(children) == len(list((tmp_path / "m").rglob("metrics.json"))) >= 2
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parents[0].info.run_id}
    assert all(any(k.startswith("final/") for k in c.data.metrics) for c in children)


def test_tracking_without_the_extra_names_it(tmp_path, store, monkeypatch, capsys):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "mlflow" else real(n, *a))
    assert main([*RUN, "--out", str(tmp_path / "runs"), "--track", "mlflow"]) == 2
    assert "pip install 'cl-domains[tracking]'" in capsys.readouterr().err
    assert main([*RUN, "--out", str(tmp_path / "runs"), "--track", "wandb"]) == 2
    assert "the trackers are: mlflow, tensorboard" in capsys.readouterr().err


def test_metric_names_are_ones_mlflow_accepts():
    assert (
        metric_key("baseline/backbone, cls pooling (recipe)/HR@10")
        == "baseline/backbone_ cls pooling _recipe_/HR_at_10"
    )
