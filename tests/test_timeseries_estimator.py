"""The time-series estimator and ``cl-domains run`` are one training path: the same recipe, profile and seed give
the same metrics and the same encoder. Every public class of the time-series and regression domains says what it is."""

from __future__ import annotations

import importlib
import inspect
import json
import pkgutil

import numpy as np
import pytest

from cl_domains.cli import main
from cl_domains.timeseries import AutoTCL, TSEncoder


def test_fit_equals_the_cli_run_of_the_same_recipe(tmp_path, data_root, monkeypatch):
    monkeypatch.setenv("CL_DOMAINS_DATA", str(data_root))
    est = AutoTCL(recipe="autotcl_ucr", profile="tiny").fit()
    assert main(["run", "autotcl_ucr", "--profile", "tiny", "--out", str(tmp_path), "--data-root", str(data_root)]) == 0
    (run_dir,) = tmp_path.iterdir()
    final = json.loads((run_dir / "metrics.json").read_text())["final"]
    assert est.metrics_ == final and est.recipe_.train.seed == 42  # an explicit recipe keeps its own seed
    x = np.random.default_rng(0).normal(size=(5, 24, 1)).astype(np.float32)
    assert np.array_equal(TSEncoder.load(run_dir / "model").embed(x), est.embed(x))


@pytest.mark.parametrize("domain", ["timeseries", "regression"])
def test_every_public_class_has_its_own_docstring(domain):
    package = importlib.import_module(f"cl_domains.{domain}")
    missing = []
    for info in pkgutil.iter_modules(package.__path__):
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        for name, obj in vars(module).items():
            public = inspect.isclass(obj) and obj.__module__ == module.__name__ and not name.startswith("_")
            if public and not (obj.__dict__.get("__doc__") or "").strip():
                missing.append(f"{module.__name__}.{name}")
    assert not missing, f"public classes without a docstring: {missing}"
