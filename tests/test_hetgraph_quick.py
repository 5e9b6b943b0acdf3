"""Benchmark regression: the hetgraph recipes' quick profiles end to end against their baselines and the stored
results, and the exported encoder reproducing the run's embeddings through the public API.

Each run also scores two baselines with the same probe on the same split: the untrained encoder (its seeded
initialisation) and the raw target-node features. Measured on ACM at the quick profiles (seed 0, Macro-F1 at 20
labels per class; benchmarks/results/quick/<recipe>.json): meow_acm 87.68 (earlier 86.52: runs differ by up to
~1 point, k-means and dense-op nondeterminism), adameow_acm see QUICK; untrained encoder 71.74, raw features 67.70.
Since k-means, probe and clustering seeds come from core.rng (not seed * 1000 + epoch / seed / seed + r): meow_acm
86.76 (the old seeds gave 87.55 on the same day), adameow_acm 76.30 (was 76.00), untrained encoder 72.92, raw
features 67.75. The DBLP values were not re-measured after that change.
On the objective slot (method.objective; core.Temperature holds log(1/t) in float32, so ACM's t = 0.4 is 0.39999998):
meow_acm 86.79 (was 86.76).
On DBLP (`--baselines-only`, no training): untrained encoder 86.97, raw features 67.17 vs quick MEOW 92.61 and
AdaMEOW 92.83; but inside a full meow_dblp quick run (merged main, seed 0) the untrained encoder scored 91.73 against
MEOW's 92.52: on DBLP the quick profile gains under one point over its own untrained encoder, so the DBLP margin is
0.5 (a loss to the untrained encoder fails; the gain is within run-to-run noise, and the README says so).
Asserted: ours beats the untrained encoder and the raw features by MARGIN points (about half the measured gap, far
above the ~1 point run-to-run spread), and stays within 3 points of the stored result.
"""

import math

import pytest
import torch
from conftest import full_and_resumed, skip_or_fail

from cl_domains.core.recipe import load_recipe
from cl_domains.core.train import train_recipe

# stored quick-profile Macro-F1 at 20 labels per class (seed 0); DBLP: measured before the baselines existed
QUICK = {"meow_acm": 86.79, "adameow_acm": 76.30, "meow_dblp": 92.61, "adameow_dblp": 92.83}
MARGIN = {"meow_acm": 8.0, "adameow_acm": 2.0, "meow_dblp": 0.5, "adameow_dblp": 0.5}


@pytest.mark.integration
@pytest.mark.benchmark
@pytest.mark.parametrize(
    "recipe",
    [
        "meow_acm",
        pytest.param("adameow_acm", marks=pytest.mark.slow),
        pytest.param("meow_dblp", marks=pytest.mark.slow),
        pytest.param("adameow_dblp", marks=pytest.mark.slow),
    ],
)
def test_quick_profile_beats_its_baselines_and_exports(recipe, tmp_path, data_root):
    from cl_domains.hetgraph import load_encoder, load_heco
    from cl_domains.hetgraph.evaluate import linear_probe

    if not (data_root / "hetgraph").is_dir():
        skip_or_fail(f"hetgraph data not found under {data_root}")
    torch.set_num_threads(1)
    run = train_recipe(load_recipe(f"recipes/{recipe}.yaml", "quick"), out=tmp_path, data_root=data_root)
    final, base = run.metrics["final"], run.metrics["baselines"]
    ours = final["macro_f1_20"]
    for name in ("untrained encoder", "raw features"):
        assert ours >= base[name]["macro_f1_20"] + MARGIN[recipe], (
            f"{recipe}: {ours:.2f} vs {name} {base[name]['macro_f1_20']:.2f}"
        )
    assert abs(ours - QUICK[recipe]) <= 3.0, f"{recipe}: {ours:.2f} vs stored {QUICK[recipe]}"
    assert set(final) >= {f"{m}_{r}" for m in ("macro_f1", "micro_f1", "auc") for r in (20, 40, 60)} | {"nmi", "ari"}
    # Public API: the exported encoder embeds a HeteroData and reproduces the run's probe score.
    data = load_heco(recipe.split("_")[1], data_root)
    z = load_encoder(run.dir / "model").embed(data)
    target = data[data.node_types[0]]
    assert z.shape == (target.num_nodes, 64) and torch.isfinite(z).all()
    ev = load_recipe(f"recipes/{recipe}.yaml", "quick").eval
    res = linear_probe(
        z,
        target.y,
        target.train_20,
        target.val_20,
        target.test_20,
        repeats=ev.repeats,
        steps=ev.steps,
        lr=ev.lr,
        weight_decay=ev.weight_decay,
        seed=0,
    )
    assert res["macro_f1"].mean() == pytest.approx(final["macro_f1_20"], abs=1e-6)


def test_resumed_run_equals_uninterrupted_and_reports_baselines(tmp_path, data_root):
    """MEOW on ACM for 4 epochs with a small probe (seconds): interrupted after epoch 2 and resumed gives the
    uninterrupted run's final metrics; the untrained-encoder and raw-feature baselines are reported once."""
    if not (data_root / "hetgraph").is_dir():
        skip_or_fail(f"hetgraph data not found under {data_root}")
    torch.set_num_threads(1)
    small = [
        "train.epochs=4",
        "train.eval_every=2",
        "train.checkpoint_every=2",
        "eval.repeats=2",
        "eval.steps=50",
        "eval.cluster_runs=1",
        "eval.rates=[20]",
        "method.clusters=[10, 20]",
    ]
    r = load_recipe("recipes/meow_acm.yaml", "quick", small)
    full_run, resumed_run = full_and_resumed(r, tmp_path, 2, data_root)
    full, resumed, cut = full_run.metrics, resumed_run.metrics, resumed_run.dir
    assert resumed["steps"] == full["steps"] == 4
    assert resumed["final"] == pytest.approx(full["final"], abs=1e-6)
    assert set(full["baselines"]) == {"untrained encoder", "raw features"} and resumed["baselines"] == full["baselines"]
    for values in full["baselines"].values():
        assert set(values) == set(full["final"]) and all(math.isfinite(v) for v in values.values())
    assert "untrained encoder | raw features | ours" in (cut / "report.md").read_text()
