"""The time-series estimator and ``cl-domains run`` are one training path: the same recipe, profile and seed give
the same metrics and the same encoder."""

from __future__ import annotations

import json

import numpy as np

from cl_domains.cli import main
from cl_domains.timeseries import AutoTCL, TSEncoder


def test_fit_equals_the_cli_run_of_the_same_recipe(tmp_path, data_root, monkeypatch):
    monkeypatch.setenv("CL_DOMAINS_DATA", str(data_root))
    est = AutoTCL(recipe="autotcl_ett", profile="tiny").fit()
    assert main(["run", "autotcl_ett", "--profile", "tiny", "--out", str(tmp_path), "--data-root", str(data_root)]) == 0
    (run_dir,) = tmp_path.iterdir()
    final = json.loads((run_dir / "metrics.json").read_text())["final"]
    assert est.metrics_ == final and est.recipe_.train.seed == 42  # an explicit recipe keeps its own seed
    x = np.random.default_rng(0).normal(size=(5, 48, 8)).astype(np.float32)  # ETTh1: target + 7 time covariates
    assert np.array_equal(TSEncoder.load(run_dir / "model").embed(x), est.embed(x))
