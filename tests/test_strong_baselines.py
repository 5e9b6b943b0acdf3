"""The field's strong cheap baselines (item-kNN for seqrec, MiniRocket for UCR) and the defaults that follow the
task: AutoTCL's loss variant by data kind, a sentence recipe's pooling by backbone, seqrec's quick budget in epochs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from cl_domains.core.recipe import load_recipe
from cl_domains.seqrec.data import LeaveOneOut, Sequences
from cl_domains.seqrec.evaluate import evaluate_ranking
from cl_domains.seqrec.itemknn import ItemKNN

RECIPES = Path(__file__).resolve().parents[1] / "recipes"


def _log(users: list[list[int]], n_items: int) -> Sequences:
    items = np.array([i for u in users for i in u], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum([len(u) for u in users])]).astype(np.int64)
    return Sequences(items, offsets, n_items)


def test_item_knn_recommends_the_co_occurring_item():
    # 3 follows 1 in every sequence; 5 is the most popular item but never near 1
    log = _log([[1, 3, 9], [1, 3, 8], [2, 1, 3], [5, 6, 5, 7, 5], [5, 4, 5]], n_items=9)
    knn = ItemKNN(log, window=1, history=1)
    scores = knn.score_sequences(torch.tensor([[1, 0], [4, 1]]), torch.tensor([1, 2]))
    assert scores.shape == (2, 9)
    assert int(scores[0].argmax()) + 1 == 3 and int(scores[1].argmax()) + 1 == 3  # the last item votes
    assert scores[0, 5 - 1] > scores[0, 9 - 1] > 0  # no co-occurrence: popularity breaks the tie
    assert scores[0, 5 - 1] < scores[0, 2 - 1]  # ... below every item that co-occurs


def test_item_knn_ranks_the_held_out_successor_first():
    # items 1..6 in a cycle, one user starting at each item: the test target always follows the history's last item
    users = [[(k + j) % 6 + 1 for j in range(8)] for k in range(6)]
    data = LeaveOneOut(_log(users, n_items=6))
    knn = evaluate_ranking(ItemKNN(data.train_part(), window=2, history=2), data, "test", ks=(1,))
    pop = evaluate_ranking(torch.ones(6), data, "test", ks=(1,))
    assert knn["HR@1"] == 1.0 and pop["HR@1"] == pytest.approx(1 / 6)


def test_seqrec_quick_budget_is_epochs_with_patience():
    r = load_recipe(RECIPES / "sasrec_toys.yaml", "quick")
    assert (r.train.max_steps, r.train.epochs, r.train.eval_every, r.train.patience) == (None, 3, "epoch", 1)


def test_minirocket_joins_the_ucr_baselines_when_aeon_is_installed(data_root, monkeypatch):
    """With aeon present the classification baselines gain a ``MiniRocket`` row (aeon itself is stubbed here: the
    dev environment's numpy is newer than numba allows)."""
    from cl_domains.core import registry
    from cl_domains.timeseries import task as ts_task

    r = load_recipe(RECIPES / "autotcl_ucr.yaml", "tiny")
    task = registry.domain("timeseries").methods["autotcl"][1](r, data_root, torch.device("cpu"))
    calls = []

    def fake(x_train, y_train, x_test, kind, seed):
        calls.append((x_train.shape, x_test.shape, kind, seed))
        return task.data.y_test  # a perfect classifier

    monkeypatch.setattr(ts_task, "minirocket_available", lambda: True)
    monkeypatch.setattr(ts_task, "minirocket_predict", fake)
    base = task.baselines()
    assert set(base) == {"raw 1-NN", "raw SVM", "MiniRocket"} and base["MiniRocket"] == {"acc": 1.0}
    assert calls == [(task.data.x_train.shape, task.data.x_test.shape, "classify", r.train.seed)]


def test_minirocket_separates_sines_from_squares():
    pytest.importorskip("aeon")  # the optional extra "baselines"
    from cl_domains.core.baselines import minirocket_predict

    rng = np.random.default_rng(0)
    t = np.linspace(0, 6 * np.pi, 64)

    def sample(n):
        y = rng.integers(0, 2, n)
        x = np.where(y[:, None] == 0, np.sin(t), np.sign(np.sin(t))) + 0.3 * rng.normal(size=(n, 64))
        return x[:, :, None], y

    (xtr, ytr), (xte, yte) = sample(40), sample(40)
    assert (minirocket_predict(xtr, ytr, xte) == yte).mean() >= 0.95


def test_autotcl_loss_variant_follows_the_task():
    from cl_domains.core import registry
    from cl_domains.timeseries.autotcl import AutoTCLConfig, variant_for

    assert AutoTCLConfig().variant == "auto"
    assert variant_for("auto", "classify") == "ts2vec"
    assert variant_for("auto", "forecast") == variant_for("auto", "regress") == "autotcl"
    assert variant_for("autotcl", "classify") == "autotcl"  # an explicit choice wins
    # a classification run (and the estimator on series in memory, data.kind classify): TS2Vec's hierarchical loss
    r = load_recipe(RECIPES / "autotcl_ucr.yaml", "tiny", ["method.variant=auto"])
    cls = registry.method_spec("timeseries", "autotcl").cls
    assert cls(r, None, torch.device("cpu"), panel=np.zeros((4, 20, 1), np.float32)).variant == "ts2vec"
    r = load_recipe(RECIPES / "autotcl_ett.yaml", "paper")  # forecasting: AutoTCL's own terms
    assert r.method.variant == "auto" and variant_for(r.method.variant, r.data.kind) == "autotcl"


@pytest.mark.parametrize("name", ["simcse_unsup_sts", "simcse_sup_sts", "debcse_sts", "multicsr_sts"])
def test_sentence_pooling_follows_the_backbone(name):
    # quick: all-MiniLM-L6-v2 was trained for mean pooling; paper: bert-base-uncased is a raw MLM ([CLS] + head)
    assert load_recipe(RECIPES / f"{name}.yaml", "quick").model.pooling == "mean"
    assert load_recipe(RECIPES / f"{name}.yaml", "paper").model.pooling == "cls_mlp"
    assert load_recipe(RECIPES / f"{name}.yaml", "quick", ["model.pooling=cls"]).model.pooling == "cls"


def test_forecast_probe_on_representation_and_raw_window(data_root):
    """``eval.probe_with_raw`` adds the ridge probe on [representation, raw window] beside the representation alone;
    off by default."""
    from cl_domains.core import registry

    sets = ["model.depth=1", "model.hidden=8", "model.output_dims=8", "data.horizons=[4, 8]", "eval.padding=8"]
    r = load_recipe(RECIPES / "autotcl_ett.yaml", "quick", [*sets, "eval.probe_with_raw=true"])
    task = registry.domain("timeseries").methods["autotcl"][1](r, data_root, torch.device("cpu"))
    out = task.evaluate("test")
    assert {"mse_with_raw", "mae_with_raw", "mse_with_raw_4", "mse_with_raw_8"} <= set(out)
    assert all(np.isfinite(out[k]) and out[k] > 0 for k in ("mse", "mse_with_raw", "mae_with_raw"))
    assert out["mse_with_raw"] != out["mse"]  # the raw window changes the probe's inputs
    assert load_recipe(RECIPES / "autotcl_ett.yaml", "quick").eval.probe_with_raw is False
