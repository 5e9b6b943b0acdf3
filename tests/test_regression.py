"""Regression domain: SupReMix pair construction on a hand-made batch, SupReMix / Rank-N-Contrast
against naive references (values and gradients), loaders against known row counts, clear errors."""

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import full_and_resumed

from cl_domains.core.errors import UserError
from cl_domains.core.losses import nested_logsumexp
from cl_domains.regression import (
    load_airfoil,
    load_exchange,
    load_stsb_dir,
    load_table,
    load_uci_pbp,
    metrics_by_shot,
    regression_metrics,
    rnc_loss,
    supremix_loss,
    supremix_mixtures,
)

R = "regression"


# ----------------------------------------------------------------------------------- pair construction
def hand_batch():
    # 4 rows, labels 1, 2, 3, 2: rows 1 and 3 share a label (real positives of each other).
    z = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.6, 0.8]], dtype=torch.float64)
    y = torch.tensor([1.0, 2.0, 3.0, 2.0], dtype=torch.float64)
    return z, y


def test_hard_negatives_are_anchor_inclusive_mixtures_with_other_labels():
    z, y = hand_batch()
    mix = supremix_mixtures(z, y, np.random.default_rng(0), n_neg=50, n_pos=0)
    assert mix.emb.shape == (4, 50, 2) and not mix.positive.any() and mix.valid.all()
    assert (mix.first == torch.arange(4)[:, None]).all()  # the anchor is always in its negatives
    for i in range(4):
        partners = set(mix.second[i].tolist())
        assert partners == {k for k in range(4) if y[k] != y[i]}  # 50 draws cover every other label
    a, k = mix.coef, mix.second
    assert ((a > 0) & (a < 1)).all() and 0.1 < a.mean() < 0.3  # Beta(2, 8): mean 0.2
    torch.testing.assert_close(mix.emb, a[..., None] * z[:, None, :] + (1 - a[..., None]) * z[k])
    torch.testing.assert_close(mix.label, a * y[:, None] + (1 - a) * y[k])


def test_hard_positives_are_anchor_exclusive_mixtures_with_the_anchor_label():
    z, y = hand_batch()
    mix = supremix_mixtures(z, y, np.random.default_rng(1), n_neg=0, n_pos=3, window=1.0)
    assert mix.positive.all()
    # Anchors 1 and 3 (label 2) have one row below (label 1, row 0) and one above (label 3, row 2)
    # within the window: the only mixture is 0.5 z_0 + 0.5 z_2, label exactly 2.
    assert mix.valid.tolist() == [[False] * 3, [True] * 3, [False] * 3, [True] * 3]
    for i in (1, 3):
        assert mix.first[i].tolist() == [0] * 3 and mix.second[i].tolist() == [2] * 3
        torch.testing.assert_close(mix.coef[i], torch.full((3,), 0.5, dtype=torch.float64))
        torch.testing.assert_close(mix.emb[i], (0.5 * z[0] + 0.5 * z[2]).expand(3, 2))
        assert (mix.label[i] == 2.0).all()
    # A window of 0.5 leaves no row on either side: no hard positive at all.
    narrow = supremix_mixtures(z, y, np.random.default_rng(1), n_neg=0, n_pos=3, window=0.5)
    assert not narrow.valid.any()


def test_hard_positive_coefficient_reproduces_the_anchor_label():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(40, 8, generator=g, dtype=torch.float64)
    y = torch.rand(40, generator=g, dtype=torch.float64) * 10
    mix = supremix_mixtures(z, y, np.random.default_rng(2), n_neg=0, n_pos=8, window=3.0)
    a, j, k = mix.coef, mix.first, mix.second
    v = mix.valid
    assert v.any()
    torch.testing.assert_close((a * y[j] + (1 - a) * y[k])[v], y[:, None].expand_as(a)[v])
    assert ((y[j] < y[:, None]) & (y[k] > y[:, None]) & ((y[k] - y[j]) <= 6.0))[v].all()


def naive_supremix(z, y, mix_emb, mix_label, mix_pos, mix_valid, t):
    """Term by term: SupCon L_out over real rows and the anchor's mixtures, denominator terms
    weighted by 1 + |y_i - y_c|."""
    total, count = 0.0, 0
    n = len(z)
    for i in range(n):
        zi = z[i] / z[i].norm()
        cands = []  # (logit, label, is_positive)
        for c in range(n):
            if c != i:
                cands.append((torch.dot(zi, z[c] / z[c].norm()) / t, float(y[c]), bool(y[c] == y[i])))
        for m in range(mix_emb.shape[1]):
            if mix_valid[i, m]:
                cands.append((torch.dot(zi, mix_emb[i, m]) / t, float(mix_label[i, m]), bool(mix_pos[i, m])))
        den = sum((1.0 + abs(float(y[i]) - lab)) * torch.exp(s) for s, lab, _ in cands)
        pos = [s for s, _, p in cands if p]
        if not pos:
            continue
        total = total + sum(-(s - torch.log(den)) for s in pos) / len(pos)
        count += 1
    return total / count


def test_supremix_loss_on_the_hand_made_batch_weights_and_positives():
    z, y = hand_batch()
    z = z.clone().requires_grad_(True)
    mix = supremix_mixtures(F.normalize(z.detach(), dim=-1), y, np.random.default_rng(3), n_neg=2, n_pos=2, window=1.0)
    t = 0.5
    ours = supremix_loss(z, y, mix, t)
    # Anchor 1 by hand: positives = row 3 (same label) and its 2 valid hard positives; every other
    # candidate is a negative weighted 1 + |2 - label|.
    zn = F.normalize(z.detach(), dim=-1)
    s = lambda v: math.exp(float(zn[1] @ v) / t)  # noqa: E731
    den = (
        s(zn[3])
        + 2 * s(zn[0])
        + 2 * s(zn[2])  # real rows: label 2 (w 1), labels 1 and 3 (w 2)
        + sum(s(mix.emb[1, m]) for m in range(2, 4))  # hard positives, weight 1
        + sum((1 + abs(2 - float(mix.label[1, m]))) * s(mix.emb[1, m]) for m in range(2))
    )
    pos_logits = [float(zn[1] @ zn[3]) / t] + [float(zn[1] @ mix.emb[1, m]) / t for m in (2, 3)]
    anchor1 = sum(math.log(den) - p for p in pos_logits) / 3
    per_anchor = supremix_loss(z.detach(), y, mix, t, reduction="none")
    assert per_anchor[1].item() == pytest.approx(anchor1, rel=1e-12)
    naive = naive_supremix(z, y, mix.emb, mix.label, mix.positive, mix.valid, t)
    assert ours.item() == pytest.approx(naive.item(), rel=1e-12)


@pytest.mark.parametrize("n,d,n_neg,n_pos", [(6, 3, 2, 2), (12, 5, 4, 3), (9, 4, 0, 0)])
def test_supremix_loss_matches_naive_reference_values_and_gradients(n, d, n_neg, n_pos):
    g = torch.Generator().manual_seed(n)
    z = torch.randn(n, d, generator=g, dtype=torch.float64, requires_grad=True)
    y = torch.randint(0, 4, (n,), generator=g).double()  # ties: several real positives
    mix = None
    if n_neg or n_pos:
        mix = supremix_mixtures(F.normalize(z.detach(), dim=-1), y, np.random.default_rng(n), n_neg, n_pos, window=2.0)
    ours = supremix_loss(z, y, mix, 0.3)
    empty = torch.zeros(n, 0, d, dtype=torch.float64)
    naive = naive_supremix(
        z,
        y,
        *(empty, torch.zeros(n, 0), torch.zeros(n, 0, dtype=torch.bool), torch.zeros(n, 0, dtype=torch.bool))
        if mix is None
        else (mix.emb, mix.label, mix.positive, mix.valid),
        0.3,
    )
    torch.testing.assert_close(ours, naive, rtol=1e-10, atol=1e-12)
    (g1,), (g2,) = torch.autograd.grad(ours, z), torch.autograd.grad(naive, z)
    torch.testing.assert_close(g1, g2, rtol=1e-8, atol=1e-12)


def test_mixture_memory_is_sparse():
    z = torch.randn(256, 128)
    y = torch.rand(256)
    mix = supremix_mixtures(F.normalize(z, dim=-1), y, np.random.default_rng(0), n_neg=16, n_pos=16)
    assert mix.emb.shape == (256, 32, 128)  # not 256^3 x 128 as in the released code


# ----------------------------------------------------------------------------------- Rank-N-Contrast
def naive_rnc(z, y, t):
    a, total = len(z), 0.0
    for i in range(a):
        for j in range(a):
            if i == j:
                continue
            num = torch.exp(-(z[i] - z[j]).norm() / t)
            den = sum(
                torch.exp(-(z[i] - z[k]).norm() / t)
                for k in range(a)
                if k != i and abs(y[i] - y[k]) >= abs(y[i] - y[j])
            )
            total = total - torch.log(num / den)
    return total / (a * (a - 1))


@pytest.mark.parametrize("n,d", [(5, 3), (10, 4)])
def test_rnc_matches_naive_reference_values_and_gradients(n, d):
    g = torch.Generator().manual_seed(n)
    z = torch.randn(n, d, generator=g, dtype=torch.float64, requires_grad=True)
    y = torch.randint(0, 4, (n,), generator=g).double()  # ties in label distance
    ours, naive = rnc_loss(z, y, 2.0), naive_rnc(z, y, 2.0)
    torch.testing.assert_close(ours, naive, rtol=1e-10, atol=1e-12)
    (g1,), (g2,) = torch.autograd.grad(ours, z), torch.autograd.grad(naive, z)
    torch.testing.assert_close(g1, g2, rtol=1e-8, atol=1e-12)


def test_nested_logsumexp_matches_naive():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 6, generator=g, dtype=torch.float64)
    keys = torch.randint(0, 3, (4, 6), generator=g).double()
    mask = torch.rand(4, 6, generator=g) > 0.2
    out = nested_logsumexp(x, keys, mask)
    for i in range(4):
        for j in range(6):
            terms = [math.exp(x[i, k]) for k in range(6) if mask[i, k] and keys[i, k] >= keys[i, j]]
            assert out[i, j].item() == pytest.approx(math.log(sum(terms)) if terms else -math.inf, rel=1e-12)


# ----------------------------------------------------------------------------------- metrics
def test_metrics_hand_computed():
    m = regression_metrics(np.array([2.0, 4.0, 7.0]), np.array([1.0, 2.0, 3.0]))  # |e| = 1, 2, 4
    assert (
        m["mae"] == pytest.approx(7 / 3) and m["mse"] == pytest.approx(7.0) and m["rmse"] == pytest.approx(math.sqrt(7))
    )
    assert m["gm"] == pytest.approx(2.0)  # (1 * 2 * 4)^(1/3)
    assert m["pearson"] == pytest.approx(np.corrcoef([2, 4, 7], [1, 2, 3])[0, 1]) and m["spearman"] == pytest.approx(
        1.0
    )
    shots = metrics_by_shot(
        np.array([1.0, 2.0, 3.0, 5.0]), np.array([1.0, 3.0, 3.0, 3.0]), np.array(["many", "many", "few", "few"])
    )
    assert shots["many_mae"] == pytest.approx(0.5) and shots["few_mae"] == pytest.approx(1.0)
    assert "medium_mae" not in shots


# ----------------------------------------------------------------------------------- loaders
def test_airfoil_splits(data_root):
    d = data_root / R / "uci_airfoil"
    a0 = load_airfoil(d / "airfoil_self_noise.dat", d / "cmixup_style_splits_seed0-4.json", 0)
    a1 = load_airfoil(d / "airfoil_self_noise.dat", d / "cmixup_style_splits_seed0-4.json", 1)
    assert (len(a0.train), len(a0.dev), len(a0.test)) == (1003, 300, 200)
    assert a0.train.x.shape == (1003, 5)
    assert not np.array_equal(a0.test.y, a1.test.y)
    # C-Mixup's rule: seed 0's first test row is row 1438 of the file.
    perm = np.random.RandomState(0).permutation(1503)
    raw = np.loadtxt(d / "airfoil_self_noise.dat")
    np.testing.assert_allclose(a0.test.y, raw[perm[1303:], 5])
    np.testing.assert_allclose(a0.train.x.mean(0), 0, atol=1e-5)  # standardised on the training split
    with pytest.raises(UserError, match="no split for seed 7"):
        load_airfoil(d / "airfoil_self_noise.dat", d / "cmixup_style_splits_seed0-4.json", 7)


@pytest.mark.parametrize("name,rows,features", [("uci_concrete", 1030, 8), ("uci_energy", 768, 8)])
def test_uci_pbp_twenty_splits(data_root, name, rows, features):
    for k in (0, 19):
        d = load_uci_pbp(data_root / R / name, k)
        n_train = len((data_root / R / name / f"index_train_{k}.txt").read_text().split())
        assert len(d.train) + len(d.dev) == n_train and len(d.dev) == round(0.1 * n_train)
        assert len(d.train) + len(d.dev) + len(d.test) == rows and d.train.x.shape[1] == features
    with pytest.raises(UserError, match="split 20 does not exist"):
        load_uci_pbp(data_root / R / name, 20)


@pytest.mark.parametrize("variant,shots", [("yyzharry_official", (756, 170, 74)), ("supremix_repo", (760, 178, 62))])
def test_stsb_dir_splits_and_shot_groups(data_root, variant, shots):
    d = data_root / R / "stsb_dir" / variant
    data = load_stsb_dir(*(d / f"{s}_new.tsv.gz" for s in ("train", "dev", "test")))
    assert (len(data.train), len(data.dev), len(data.test)) == (5249, 1000, 1000)
    assert tuple(int((data.test.shot == g).sum()) for g in ("many", "medium", "few")) == shots
    assert data.train.y.min() >= 0 and data.train.y.max() <= 5


def test_exchange_windows(data_root):
    path = data_root / R / "exchange_rate" / "exchange_rate.txt.gz"
    d = load_exchange(path, 168, 12)
    raw = np.loadtxt(path, delimiter=",")
    scaled = raw / np.abs(raw).max(0)
    n = len(raw)
    assert n == 7588
    days = [int(0.6 * n) - 179, int(0.8 * n) - int(0.6 * n), n - int(0.8 * n)]
    assert [len(d.train), len(d.dev), len(d.test)] == [8 * k for k in days]
    # First training sample: currency 0, window = days 0..167, target = day 179 (12 steps after day 167).
    np.testing.assert_allclose(d.train.x[0], scaled[:168, 0], rtol=1e-6)
    assert d.train.y[0] == pytest.approx(scaled[179, 0])
    # First test sample: target day int(0.8 n), its window ends 12 days before.
    t = int(0.8 * n)
    np.testing.assert_allclose(d.test.x[3], scaled[t - 11 - 168 : t - 11, 3], rtol=1e-6)
    assert d.test.y[3] == pytest.approx(scaled[t, 3])


# ----------------------------------------------------------------------------------- clear errors
@pytest.fixture
def table(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 3))
    path = tmp_path / "mine.csv"
    lines = ["a,b,c,price"] + [f"{r[0]},{r[1]},{r[2]},{2 * r[0] - r[1] + 0.1 * r[2]}" for r in x]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_table_loader_and_its_errors(table, tmp_path):
    d = load_table(table, "price")
    assert (len(d.train), len(d.dev), len(d.test)) == (140, 20, 40) and d.feature_names == ["a", "b", "c"]
    with pytest.raises(
        UserError,
        match=r"mine.csv has no column 'prise' \(named by data.target\); did you mean 'price'\?.*Its columns: a, b, c, price",
    ):
        load_table(table, "prise")
    bad = tmp_path / "nan.csv"
    rows = table.read_text().splitlines()
    rows[5] = "1.0,,2.0,3.0"
    bad.write_text("\n".join(rows) + "\n")
    with pytest.raises(
        UserError, match=r"nan.csv: feature 'b' has NaN/inf .*values \(1 cells, first at file lines \[6\]\)"
    ):
        load_table(bad, "price")
    const = tmp_path / "const.csv"
    const.write_text("a,y\n" + "".join(f"{i},7.5\n" for i in range(30)))
    with pytest.raises(UserError, match="target 'y' is constant .7.5 on all 30 rows"):
        load_table(const, "y")
    text = tmp_path / "text.csv"
    text.write_text("a,city,y\n" + "".join(f"{i},x{i},{i}\n" for i in range(30)))
    with pytest.raises(UserError, match="column 'city' is not numeric"):
        load_table(text, "y")


def test_user_table_recipe_trains_each_method(table, tmp_path, data_root):
    """A user's CSV end to end, for the three methods of the one-flag switch."""
    import yaml

    from cl_domains.core.recipe import load_recipe
    from cl_domains.core.train import train_recipe

    recipe = {
        "name": "mine",
        "domain": "regression",
        "model": {"hidden": [32, 32], "projection": 16},
        "data": {"dataset": "table", "path": str(table), "target": "price"},
        "method": {"name": "supremix", "contrastive_weight": 0.1},
        "train": {
            "batch_size": 32,
            "lr": 3e-3,
            "epochs": 40,
            "eval_every": 50,
            "select_mode": "min",
            "checkpoint_every": 1000,
            "eval_before": False,
            "seed": 1,
            "threads": 1,
        },
    }
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(recipe))
    maes = {}
    for method in ("supremix", "rnc", "l1"):
        run = train_recipe(load_recipe(path, None, [f"method.name={method}"]), out=tmp_path / "runs")
        maes[method] = run.metrics["final"]["mae"]
        cfg = json.loads((run.dir / "model" / "cl_domains.json").read_text())
        assert cfg["method"] == method and cfg["recipe"]["method"]["name"] == method
    std = 2.2  # std of 2a - b + 0.1c with standard normal a, b, c
    assert all(v < 0.25 * std for v in maes.values()), maes
    assert len(set(maes.values())) == 3  # three different trainings, not one
    # two-stage protocol: linear probe on the frozen representation
    run = train_recipe(load_recipe(path, None, ["method.protocol=two_stage", "train.epochs=20"]), out=tmp_path / "runs")
    assert run.metrics["final"]["mae"] < 0.5 * std
    recipe["train"]["select_mode"] = "max"
    path.write_text(yaml.safe_dump(recipe))
    with pytest.raises(UserError, match="select_mode: min"):
        train_recipe(load_recipe(path), out=tmp_path / "runs")
    recipe["train"]["select_mode"] = "min"
    recipe["data"]["target"] = "nope"
    path.write_text(yaml.safe_dump(recipe))
    with pytest.raises(UserError, match=r"has no column 'nope' \(named by data.target\)"):
        train_recipe(load_recipe(path), out=tmp_path / "runs")


@pytest.mark.parametrize("name", ["uci_airfoil", "uci_concrete", "uci_energy", "stsb_dir", "exchange_rate"])
def test_regression_cards_verify(name, data_root):
    from cl_domains.core import data

    assert all(status == "ok" for _, _, status in data.verify(name, data_root))
    c = data.card(name)
    assert c.domain == "regression" and c.license and (c.fetch or c.how_to_get)


def test_own_table_run_hides_the_airfoil_paper_numbers_and_reports_the_ridge_baseline(table, tmp_path):
    """The Airfoil recipe on a user's table: no Airfoil paper RMSE in the report or plot data; the ridge on the
    raw features is there (the table's target is linear in its columns: the ridge is almost exact)."""
    from cl_domains.core.recipe import load_recipe, paper_applies
    from cl_domains.core.train import train_recipe

    recipe = load_recipe(
        "recipes/supremix_airfoil.yaml",
        "quick",
        ["data.dataset=table", f"data.path={table}", "data.target=price", "train.epochs=2", "train.batch_size=32"],
    )
    assert paper_applies(recipe)[0] is False
    assert paper_applies(load_recipe("recipes/supremix_airfoil.yaml", "quick"))[0] is True
    run = train_recipe(recipe, out=tmp_path)
    m = run.metrics
    assert m["paper"]["shown"] is False and "uci_airfoil" in m["paper"]["note"]
    report = (run.dir / "report.md").read_text()
    assert "paper" not in report.splitlines()[2] and "2.717" not in report and "paper numbers not shown" in report
    ridge = m["baselines"]["ridge on raw features"]
    assert set(ridge) == set(m["final"]) and ridge["mae"] < 0.01 < m["final"]["mae"]


def test_resumed_run_equals_uninterrupted_and_reports_baselines(tmp_path, data_root):
    """Airfoil, 5 epochs of 8 batches (seconds): interrupted after step 12 and resumed == uninterrupted."""
    from cl_domains.core.recipe import load_recipe

    r = load_recipe(
        "recipes/supremix_airfoil.yaml", "quick", ["train.epochs=5", "train.eval_every=10", "train.checkpoint_every=6"]
    )
    full, resumed = (run.metrics for run in full_and_resumed(r, tmp_path, 12, data_root))
    assert resumed["steps"] == full["steps"] > 12
    assert resumed["final"] == pytest.approx(full["final"], rel=1e-6)
    assert set(full["baselines"]) == {"ridge on raw features"} and resumed["baselines"] == full["baselines"]
    assert np.isfinite(list(full["baselines"]["ridge on raw features"].values())).all()
