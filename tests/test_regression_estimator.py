"""The regression estimators and ``cl-domains run`` are one training path, and a saved model reproduces its own
predictions in a fresh process (the input scaler and the target scaling are saved with the weights)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import torch

from cl_domains.cli import main
from cl_domains.regression import Regressor, SupReMix


def test_fit_equals_the_cli_run_of_the_same_recipe(tmp_path, data_root, monkeypatch):
    monkeypatch.setenv("CL_DOMAINS_DATA", str(data_root))
    est = SupReMix(recipe="supremix_concrete", profile="tiny").fit()
    args = ["run", "supremix_concrete", "--profile", "tiny", "--out", str(tmp_path), "--data-root", str(data_root)]
    assert main(args) == 0
    (run_dir,) = tmp_path.iterdir()
    assert est.metrics_ == json.loads((run_dir / "metrics.json").read_text())["final"]
    x = np.random.default_rng(0).normal(size=(4, 8)) * 100 + 300  # raw Concrete-like columns: scaled on the way in
    assert np.array_equal(Regressor.load(run_dir / "model").predict(x), est.predict(x))


def test_saved_model_predicts_the_same_values_in_a_fresh_process(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(150, 4)) * [1.0, 50.0, 0.01, 3.0] + [0.0, 500.0, 2.0, -7.0]  # far from standardised
    y = x @ np.array([2.0, 0.02, 100.0, -1.0]) + 40 + 0.1 * rng.normal(size=150)  # far from zero mean, unit std
    est = SupReMix(train={"epochs": 5, "batch_size": 32}).fit(x, y)
    torch.set_num_threads(1)  # as in the child: the same reduction order, so the same float64 values
    pred = est.predict(x)
    assert np.abs(pred - y).mean() < 0.5 * y.std()  # in y's units, on raw inputs
    est.save(tmp_path / "model")
    np.save(tmp_path / "x.npy", x)
    script = (
        "import numpy as np, cl_domains\n"
        f"m = cl_domains.load({str(tmp_path / 'model')!r})\n"
        f"x = np.load({str(tmp_path / 'x.npy')!r})\n"
        f"np.save({str(tmp_path / 'pred.npy')!r}, m.predict(x))\n"
        f"np.save({str(tmp_path / 'z.npy')!r}, m.embed(x))\n"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stderr
    assert np.array_equal(np.load(tmp_path / "pred.npy"), pred)
    assert np.array_equal(np.load(tmp_path / "z.npy"), est.embed(x))
    files = json.loads((tmp_path / "model" / "cl_domains.json").read_text())["files"]
    assert {"model.safetensors", "scaler.safetensors", "preprocessing.json"} <= set(files)
