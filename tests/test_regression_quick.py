"""Benchmark regression of the regression recipes: each quick profile end to end (SupReMix, joint training)
against the ridge on the raw features that every run reports (same split), and the one-flag switch to the
other methods. Measured quick-profile test MAE (seed 0, split 0), ours vs ridge on raw features: Airfoil 1.309 vs
3.452 dB, Concrete 3.990 vs 8.668 MPa, Energy 0.731 vs 2.069 (ratios 0.35-0.46); before the batch order and noise
draws moved to core.rng.generator (issue 19) they were 1.331, 3.518 and 0.758 (the Concrete quick run is the most
seed-sensitive). Seed spread at the paper profile (5 Airfoil seeds): MAE std 0.045 on 1.07, about 4%. Asserted: ours
<= 0.6 x the ridge (a wide margin over that spread) and within 15% of the stored values; exchange rate: within
5% of the persistence forecast, which nothing here beats (the rates are close to a random walk)."""

import pytest

from cl_domains.core.recipe import load_recipe
from cl_domains.core.train import train_recipe
from cl_domains.regression import load_exchange, regression_metrics

# measured quick-profile test MAE; Concrete's differs between two CPUs of this workplace with the same code and
# torch (3.990 and 3.352: float kernels round differently and the seed-sensitive run amplifies it): both are kept
QUICK_MAE = {"supremix_airfoil": (1.309,), "supremix_concrete": (3.352, 3.990), "supremix_energy": (0.731,)}


def run_quick(name, tmp_path, data_root, *overrides):
    return train_recipe(
        load_recipe(f"recipes/{name}.yaml", "quick", list(overrides)), out=tmp_path, data_root=data_root
    )


@pytest.mark.integration
@pytest.mark.benchmark
@pytest.mark.parametrize("recipe", sorted(QUICK_MAE))
def test_tabular_quick_profile_beats_the_ridge_baseline(recipe, tmp_path, data_root):
    run = run_quick(recipe, tmp_path, data_root)
    m, ridge = run.metrics["final"], run.metrics["baselines"]["ridge on raw features"]
    print(recipe, {k: round(v, 4) for k, v in m.items()}, "ridge", round(ridge["mae"], 4))
    assert m["mae"] <= 0.6 * ridge["mae"], f"{recipe}: test mae {m['mae']:.3f} vs ridge {ridge['mae']:.3f}"
    low, high = min(QUICK_MAE[recipe]), max(QUICK_MAE[recipe])
    assert 0.85 * low <= m["mae"] <= 1.15 * high, f"{recipe}: test mae {m['mae']:.3f}, measured {QUICK_MAE[recipe]}"
    assert m["pearson"] > 0.9 and "| ridge on raw features | ours |" in (run.dir / "report.md").read_text()


@pytest.mark.integration
@pytest.mark.benchmark
def test_exchange_quick_profile_matches_persistence(tmp_path, data_root):
    metrics = run_quick("supremix_exchange", tmp_path, data_root).metrics
    m = metrics["final"]
    test = load_exchange(data_root / "regression/exchange_rate/exchange_rate.txt.gz").test
    persistence = regression_metrics(test.offset, test.y)["rmse"]
    assert metrics["baselines"]["persistence"]["rmse"] == pytest.approx(
        persistence
    )  # the reported baseline, same split
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
