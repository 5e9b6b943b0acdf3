"""Benchmark regression of the regression recipes: each quick profile end to end (SupReMix, joint
training) against a metric floor well below what a broken method gives, and the one-flag switch
to the baselines. Floors (test split; observed quick-profile values in brackets): Airfoil MAE <= 1.6 dB
[1.33] (a linear model: 3.7), Concrete MAE <= 4.5 MPa [3.52] (linear: 8.3), Energy MAE <= 1.0 [0.76]
(linear: 2.1), exchange rate RMSE <= 1.05 x the persistence forecast (the rates are close to a random
walk: nothing beats it by much)."""
import numpy as np
import pytest

from cl_domains.core.recipe import load_recipe
from cl_domains.core.train import train_recipe
from cl_domains.regression import load_exchange, regression_metrics

FLOORS = {"supremix_airfoil": ("mae", 1.6), "supremix_concrete": ("mae", 4.5), "supremix_energy": ("mae", 1.0)}


def run_quick(name, tmp_path, data_root, *overrides):
    return train_recipe(load_recipe(f"recipes/{name}.yaml", "quick", list(overrides)), out=tmp_path, data_root=data_root)


@pytest.mark.integration
@pytest.mark.benchmark
@pytest.mark.parametrize("recipe", sorted(FLOORS))
def test_tabular_quick_profile_beats_the_floor(recipe, tmp_path, data_root):
    metric, floor = FLOORS[recipe]
    m = run_quick(recipe, tmp_path, data_root).metrics["final"]
    print(recipe, {k: round(v, 4) for k, v in m.items()})
    assert m[metric] <= floor, f"{recipe}: test {metric} {m[metric]:.3f} > floor {floor}"
    assert m["pearson"] > 0.9


@pytest.mark.integration
@pytest.mark.benchmark
def test_exchange_quick_profile_matches_persistence(tmp_path, data_root):
    m = run_quick("supremix_exchange", tmp_path, data_root).metrics["final"]
    test = load_exchange(data_root / "regression/exchange_rate/exchange_rate.txt.gz").test
    persistence = regression_metrics(test.offset, test.y)["rmse"]
    assert m["rmse"] <= 1.05 * persistence, (m["rmse"], persistence)


@pytest.mark.integration
@pytest.mark.parametrize("method", ["rnc", "l1"])
def test_one_flag_switches_to_the_baselines(method, tmp_path, data_root):
    run = run_quick("supremix_airfoil", tmp_path, data_root, f"method.name={method}", "train.epochs=30")
    assert run.metrics["final"]["mae"] <= 2.5
    assert f"name: {method}" in (run.dir / "config.yaml").read_text()


@pytest.mark.integration
@pytest.mark.benchmark
@pytest.mark.slow  # encodes ~14k sentences with MiniLM on the first run (minutes on 2 CPU cores)
def test_stsb_dir_quick_profile(tmp_path, data_root):
    m = run_quick("supremix_stsb_dir", tmp_path, data_root).metrics["final"]
    assert m["pearson"] >= 0.80 and m["mae"] <= 0.70  # observed 0.85 and 0.59
    assert {"many_mae", "medium_mae", "few_mae", "few_pearson"} <= set(m)
