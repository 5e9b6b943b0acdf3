"""Time-series domain: loaders against known sizes, the hierarchical loss against a naive reference,
the trend head, malformed inputs, quick profiles against floors, and TSEncoder in a fresh process."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import full_and_resumed

from cl_domains.core.errors import UserError
from cl_domains.timeseries import TS2Vec, TSEncoder, read_forecast, read_ucr
from cl_domains.timeseries.augment import gumbel_sigmoid, mmd
from cl_domains.timeseries.data import time_covariates
from cl_domains.timeseries.losses import global_loss, hierarchical_loss, local_loss
from cl_domains.timeseries.networks import TrendHead
from cl_domains.timeseries.probes import forecast_samples
from cl_domains.timeseries.task import random_crops, sections

UCR_SIZES = {
    "GunPoint": (50, 150, 150, 2),
    "ECG200": (100, 100, 96, 2),
    "ItalyPowerDemand": (67, 1029, 24, 2),
    "Coffee": (28, 28, 286, 2),
    "ArrowHead": (36, 175, 251, 3),
    "CBF": (30, 900, 128, 3),
    "Chinatown": (20, 343, 24, 2),
    "SyntheticControl": (300, 300, 60, 6),
    "TwoLeadECG": (23, 1139, 82, 2),
}


@pytest.fixture(scope="module")
def ts_root(data_root):
    return data_root / "timeseries"


# ------------------------------------------------------------------ loaders
def test_ett_wth_splits_scaling_and_covariates(ts_root):
    f = read_forecast(ts_root / "ett/ETTh1.csv.gz")
    assert f.values.shape == (14400, 8) and f.n_covariates == 7 and f.targets == ["OT"]
    assert f.borders == (8640, 11520, 14400)
    train = f.split("train")
    np.testing.assert_allclose(train[:, 7].mean(), 0, atol=1e-5)
    np.testing.assert_allclose(train[:, 7].std(), 1, atol=1e-4)
    assert abs(f.split("test")[:, 7].mean()) > 0.05  # scaled with train statistics, not its own
    multi = read_forecast(ts_root / "ett/ETTh1.csv.gz", univariate=False)
    assert multi.values.shape == (14400, 14) and multi.targets[-1] == "OT"
    m1 = read_forecast(ts_root / "ett/ETTm1.csv.gz")
    assert m1.borders == (34560, 46080, 57600)
    w = read_forecast(ts_root / "weather/WTH.csv.gz")
    assert w.borders == (21038, 28051, 35064) and w.targets == ["WetBulbCelsius"]


def test_time_covariates_by_hand():
    idx = pd.DatetimeIndex(["2016-07-01 00:00", "2018-06-26 19:45"])
    # minute, hour, weekday (Fri=4, Tue=1), day, day of year (2016 is a leap year), month, ISO week
    np.testing.assert_array_equal(time_covariates(idx), [[0, 0, 4, 1, 183, 7, 26], [45, 19, 1, 26, 177, 6, 26]])


@pytest.mark.parametrize("name", sorted(UCR_SIZES))
def test_ucr_sizes_and_labels(ts_root, name):
    d = read_ucr(ts_root / "ucr" / name)
    n_train, n_test, length, k = UCR_SIZES[name]
    assert d.x_train.shape == (n_train, length, 1) and d.x_test.shape == (n_test, length, 1)
    assert sorted(set(d.y_train)) == list(range(k)) and d.classes == sorted(d.classes)
    if name == "Chinatown":  # the non-normalised set: one global train mean/std
        assert abs(float(d.x_train.mean())) < 1e-5 and float(d.x_train.std()) == pytest.approx(1, abs=1e-4)


# ------------------------------------------------------------------ losses and networks
def naive_hierarchical(z1, z2, alpha=0.5):
    """Term by term: -log softmax over the other 2N-1 rows, at every max-pooled scale."""

    def nll(rows):  # rows [2N, D]; partner of i is i +- N
        n2 = rows.shape[0]
        total = 0.0
        for i in range(n2):
            j = (i + n2 // 2) % n2
            logits = torch.stack([rows[i] @ rows[k] for k in range(n2) if k != i])
            pos = rows[i] @ rows[j]
            total = total - (pos - torch.logsumexp(logits, 0))
        return total / n2

    total, scales = 0.0, 0
    while True:
        b, t = z1.shape[:2]
        if b > 1:
            total = total + alpha * sum(nll(torch.cat([z1[:, s], z2[:, s]])) for s in range(t)) / t
        if t == 1:
            scales += 1
            break
        total = total + (1 - alpha) * sum(nll(torch.cat([z1[i], z2[i]])) for i in range(b)) / b
        scales += 1
        z1 = torch.nn.functional.max_pool1d(z1.transpose(1, 2), 2).transpose(1, 2)
        z2 = torch.nn.functional.max_pool1d(z2.transpose(1, 2), 2).transpose(1, 2)
    return total / scales


@pytest.mark.parametrize("shape,alpha", [((3, 5, 4), 0.5), ((2, 4, 3), 0.8), ((1, 3, 2), 0.5)])
def test_hierarchical_loss_matches_naive_reference(shape, alpha):
    g = torch.Generator().manual_seed(0)
    a = torch.randn(*shape, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(*shape, generator=g, dtype=torch.float64, requires_grad=True)
    ours = hierarchical_loss(a, b, alpha)
    ref = naive_hierarchical(a, b, alpha)
    assert ours.item() == pytest.approx(ref.item(), rel=1e-10)
    ga = torch.autograd.grad(ours, (a, b))
    gr = torch.autograd.grad(ref, (a, b))
    for x, y in zip(ga, gr, strict=False):
        torch.testing.assert_close(x, y)


def naive_local(z, k, start):
    """AutoTCL's local InfoNCE by hand: for each series and segment i, -log e^{s(i,p)} / (e^{s(i,p)} + sum_n e^{s(i,n)}),
    p = i + 1 (i - 1 for the last), n at distance >= 2 except segment 2 for the first row and k - 3 for the last."""
    size = z.shape[1] // k
    terms = []
    for series in z:
        seg = [
            torch.nn.functional.normalize(series[start + j * size : start + (j + 1) * size].max(0).values, dim=0)
            for j in range(k)
        ]
        for i in range(k):
            p = i + 1 if i < k - 1 else i - 1
            negs = [
                j for j in range(k) if abs(i - j) >= 2 and not (i == 0 and j == 2) and not (i == k - 1 and j == k - 3)
            ]
            assert len(negs) == k - 3
            pos = torch.exp(seg[i] @ seg[p])
            terms.append(-torch.log(pos / (pos + sum(torch.exp(seg[i] @ seg[j]) for j in negs))))
    return sum(terms) / len(terms)


@pytest.mark.parametrize("shape,k", [((2, 37, 3), 4), ((3, 70, 5), 16), ((1, 16, 2), 16)])
def test_autotcl_local_loss_matches_naive_reference(shape, k):
    z = torch.randn(*shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64, requires_grad=True)
    ours = local_loss(z, k, generator=torch.Generator().manual_seed(7))
    size = shape[1] // k
    start = int(torch.randint(0, shape[1] - size * k + 1, (1,), generator=torch.Generator().manual_seed(7)))
    ref = naive_local(z, k, start)
    assert ours.item() == pytest.approx(ref.item(), rel=1e-10)
    torch.testing.assert_close(torch.autograd.grad(ours, z)[0], torch.autograd.grad(ref, z)[0])
    assert local_loss(z[:, : k - 1], k).item() == 0.0  # shorter than one step per segment: no local term


def test_autotcl_global_loss_matches_naive_reference():
    g = torch.Generator().manual_seed(2)
    a = torch.randn(4, 6, 3, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(4, 6, 3, generator=g, dtype=torch.float64, requires_grad=True)
    ours = global_loss(a, b, temperature=0.5)
    pa = torch.nn.functional.normalize(a.max(1).values, dim=1)
    pb = torch.nn.functional.normalize(b.max(1).values, dim=1)
    sim = pa @ pb.T / 0.5  # series i of view 1 against every series of view 2; its own view 2 is the positive
    ref = sum(-torch.log(torch.exp(sim[i, i]) / torch.exp(sim[i]).sum()) for i in range(4)) / 4
    assert ours.item() == pytest.approx(ref.item(), rel=1e-10)
    torch.testing.assert_close(torch.autograd.grad(ours, (a, b)), torch.autograd.grad(ref, (a, b)))
    dot = a.max(1).values @ b.max(1).values.T  # objective ts2vec: the same InfoNCE on dot products
    ref = sum(-torch.log_softmax(dot[i], 0)[i] for i in range(4)) / 4
    assert global_loss(a, b, normalize=False).item() == pytest.approx(ref.item(), rel=1e-10)


def test_ridge_alpha_is_chosen_by_validation_rmse_plus_mae():
    from sklearn.linear_model import Ridge

    from cl_domains.timeseries.probes import RIDGE_ALPHAS, ridge_probe

    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 20))
    y = x[:, :3] @ np.array([[1.0], [-2.0], [0.5]]) + rng.standard_t(2, size=(300, 1))  # heavy tails: criteria differ
    train, val, test = (x[:100], y[:100]), (x[100:200], y[100:200]), (x[200:], y[200:])
    scores = {}
    for alpha in RIDGE_ALPHAS:
        err = Ridge(alpha=alpha).fit(*train).predict(val[0]) - val[1]
        scores[alpha] = np.sqrt((err**2).mean()) + np.abs(err).mean()
    out = ridge_probe(train, val, test)
    assert out["alpha"] == min(scores, key=scores.get)
    pred = Ridge(alpha=out["alpha"]).fit(*train).predict(test[0])
    assert out["mse"] == pytest.approx(((pred - test[1]) ** 2).mean())


def test_trend_head_fft_equals_literal_mean_of_causal_convs():
    torch.manual_seed(0)
    head = TrendHead(5, 4, max_kernel=16).double()
    x = torch.randn(2, 5, 37, dtype=torch.float64, requires_grad=True)
    torch.testing.assert_close(head(x), head.reference(x))
    torch.testing.assert_close(head(x, last=True)[..., 0], head.reference(x)[..., -1])
    g1 = torch.autograd.grad(head(x).square().sum(), [x, head.convs[3].weight])
    g2 = torch.autograd.grad(head.reference(x).square().sum(), [x, head.convs[3].weight])
    for a, b in zip(g1, g2, strict=False):
        torch.testing.assert_close(a, b)
    # causal: the output at t does not depend on later inputs
    y = head(x)
    x2 = x.detach().clone()
    x2[..., 20:] += 1
    torch.testing.assert_close(head(x2)[..., :20], y[..., :20])


def test_random_crops_share_their_overlap():
    x = torch.arange(4 * 30, dtype=torch.float32).reshape(4, 30, 1)
    g = torch.Generator().manual_seed(3)
    for _ in range(20):
        a, b, overlap = random_crops(x, g)
        torch.testing.assert_close(a[:, -overlap:], b[:, :overlap])


def test_augmentation_pieces():
    g = torch.Generator().manual_seed(0)
    logits = torch.zeros(2, 50, 1, requires_grad=True)
    h = gumbel_sigmoid(logits, hard=True, generator=g)
    assert set(h.unique().tolist()) <= {0.0, 1.0}
    h.sum().backward()
    assert logits.grad.abs().sum() > 0  # straight-through gradient
    z = torch.randn(8, 3)
    assert mmd(z, z).item() == pytest.approx(0, abs=1e-6)
    assert mmd(z, z + 5).item() > 0.5


# ------------------------------------------------------------------ malformed inputs
def _csv(tmp_path, df, name="ETTh1.csv"):
    p = tmp_path / name
    df.to_csv(p, index=False)
    return p


def test_forecast_csv_errors(tmp_path, ts_root):
    df = pd.read_csv(ts_root / "ett/ETTh1.csv.gz")
    bad = df.copy()
    bad.loc[5, "OT"] = np.nan
    with pytest.raises(UserError, match=r"NaN.*'OT'.*row 7"):
        read_forecast(_csv(tmp_path, bad))
    with pytest.raises(UserError, match="target column 'OT' not found"):
        read_forecast(_csv(tmp_path, df.rename(columns={"OT": "ot"})))
    with pytest.raises(UserError, match="no 'date' column"):
        read_forecast(_csv(tmp_path, df.rename(columns={"date": "time"})))
    with pytest.raises(UserError, match="split needs 14400"):
        read_forecast(_csv(tmp_path, df.iloc[:10000]))


def test_horizon_longer_than_a_split(ts_root):
    f = read_forecast(ts_root / "ett/ETTh1.csv.gz")
    with pytest.raises(UserError, match="horizon 3000 is too long"):
        forecast_samples(np.zeros((2880, 4)), f.split("test")[:, 7:], 3000)
    from cl_domains.core.recipe import load_recipe
    from cl_domains.timeseries.ts2vec import TS2VecTask

    recipe = load_recipe("recipes/ts2vec_ett.yaml", "quick", ["data.horizons=[24,3000]"])
    with pytest.raises(UserError, match=r"data.horizons \[3000\] are too long"):
        TS2VecTask(recipe, ts_root.parent, torch.device("cpu"))


def test_batches_are_full_like_the_official_loader(ts_root):
    """34 ETTh1 sections, batch 32: one step per epoch (drop_last); a batch larger than the data takes it all."""
    from cl_domains.core.recipe import load_recipe
    from cl_domains.timeseries.ts2vec import TS2VecTask

    task = TS2VecTask(load_recipe("recipes/ts2vec_ett.yaml", "quick"), ts_root.parent, torch.device("cpu"))
    assert len(task.train_x) == 34 and task.num_batches(0) == 1
    (idx,) = list(task.batches(0))
    assert len(idx) == 32 and len(set(idx.tolist())) == 32
    task = TS2VecTask(
        load_recipe("recipes/ts2vec_ett.yaml", "quick", ["train.batch_size=100"]), ts_root.parent, torch.device("cpu")
    )
    (idx,) = list(task.batches(3))
    assert sorted(idx.tolist()) == list(range(34))


def test_tsencoder_input_errors():
    enc = TS2Vec(train={"max_steps": 1}, model={"depth": 1, "output_dims": 8})
    with pytest.raises(UserError, match="different lengths"):
        enc.fit([np.zeros(10), np.zeros(12)])
    x = np.random.randn(4, 20)
    x[1, 5] = np.nan
    with pytest.raises(UserError, match="series 1 has a missing value .NaN. at step 5"):
        enc.fit(x)
    x = np.random.randn(4, 20)
    x[2] = np.nan
    with pytest.raises(UserError, match="series 2 has no values"):
        enc.fit(x)
    with pytest.raises(UserError, match="not fitted yet: call fit"):
        TSEncoder().embed(np.zeros((2, 5)))
    padded = np.random.randn(6, 20)
    padded[0, 15:] = np.nan  # end padding of a shorter series is fine
    z = enc.fit(pd.DataFrame(padded)).embed(padded)
    assert z.shape == (6, 8) and np.isfinite(z).all()
    assert enc.embed_timestamps(padded).shape == (6, 20, 8)


def test_sections_split_long_series():
    x = np.random.randn(1, 10, 2).astype(np.float32)
    s = sections(x, 4)
    assert s.shape == (3, 4, 2) and np.isnan(s[2, 2:]).all()
    assert sections(x, 10) is x


# ------------------------------------------------------------------ quick profiles and the sklearn pipeline
# Quick profiles on ETTh1 (H = 24, 48), seeds 42 / 1 / 2, test MSE mean ± std, measured with the rng.generator
# streams (issue 19): AutoTCL .0509 / .0504 / .0484, TS2Vec .0563 / .0551 / .0544 (with the old seed formulas the
# means were .0500 ± .0013 and .0557 ± .0007; benchmarks/results/quick/<recipe>.json holds those older runs).
# Both LOSE to the simple baselines on the same split: last value .0422, ridge on the raw 33-step window .0398, and
# they barely differ from their own untrained encoder (AutoTCL .0507-.0518, TS2Vec .0529-.0558 over the 3 seeds).
# So what is asserted is what holds: the result stays within ~4 std of the stored mean, within 1.45x the last-value
# MSE (measured ratios: AutoTCL 1.15-1.21, TS2Vec 1.29-1.33), and the baselines are this split's deterministic values.
FORECAST = {"autotcl_ett": (0.0499, 0.0013), "ts2vec_ett": (0.0553, 0.0009)}
LAST_VALUE_MSE, RIDGE_WINDOW_MSE = 0.04223, 0.03982


@pytest.mark.integration
@pytest.mark.benchmark
@pytest.mark.parametrize("recipe", sorted(FORECAST))
def test_forecast_quick_profile_against_baselines(recipe, tmp_path, data_root):
    from cl_domains.core.recipe import load_recipe
    from cl_domains.core.train import train_recipe

    m = train_recipe(load_recipe(f"recipes/{recipe}.yaml", "quick"), out=tmp_path, data_root=data_root).metrics
    mean, std = FORECAST[recipe]
    mse, base = m["final"]["mse"], m["baselines"]
    assert abs(mse - mean) <= max(4 * std, 0.004), f"{recipe}: mse {mse:.4f} outside the stored {mean} ± 4 x {std}"
    assert base["last value"]["mse"] == pytest.approx(LAST_VALUE_MSE, abs=1e-4)
    assert base["ridge on raw window"]["mse"] == pytest.approx(RIDGE_WINDOW_MSE, abs=1e-4)
    assert mse <= 1.45 * base["last value"]["mse"], f"{recipe}: mse {mse:.4f} > 1.45 x last value"
    assert m["best_step"] is not None


# UCR Chinatown quick, seeds 42 / 1 / 2 / 3 (rng.generator streams): accuracy .9592 / .9446 / .9534 / .9796 (mean
# .9592 ± .0149; with the old seed formulas .9738 / .9621 / .9708 / .9650, .9679 ± .0052); raw 1-NN .9446 and raw SVM
# .9650 on the same split. Ours is at or above 1-NN on every seed (level on seed 1; seed 42, the test's, by .0146,
# asserted: .01), below the raw SVM on 3 of 4 seeds and below its own untrained encoder on 3 of 4 (before training
# .9767 / .9592 / .9738 / .9679): 30 steps do not improve this encoder here. Asserted: no drop of more than .02 below
# before training.
UCR_QUICK = (0.9592, 0.0149)


@pytest.mark.integration
@pytest.mark.benchmark
def test_ucr_quick_profile_and_pipeline_in_fresh_process(tmp_path, data_root):
    from cl_domains.core.recipe import load_recipe
    from cl_domains.core.train import train_recipe

    run = train_recipe(load_recipe("recipes/autotcl_ucr.yaml", "quick"), out=tmp_path, data_root=data_root)
    m = run.metrics
    acc, nn1 = m["final"]["acc"], m["baselines"]["raw 1-NN"]["acc"]
    assert nn1 == pytest.approx(0.9446, abs=1e-3) and m["baselines"]["raw SVM"]["acc"] == pytest.approx(0.965, abs=1e-3)
    assert acc >= nn1 + 0.01, f"accuracy {acc:.4f} does not beat raw 1-NN {nn1:.4f} by .01"
    assert abs(acc - UCR_QUICK[0]) <= 0.02, f"accuracy {acc:.4f} outside the stored {UCR_QUICK[0]} ± .02"
    assert acc >= m["before"]["acc"] - 0.02
    script = textwrap.dedent(f"""
        import numpy as np
        from pathlib import Path
        import pandas as pd
        from cl_domains.timeseries import TSEncoder, read_ucr
        from cl_domains.timeseries.probes import svm_probe
        folder = Path({str(data_root / "timeseries/ucr/Chinatown")!r})
        d = read_ucr(folder)  # the labels; the series are given to embed as the files hold them (unnormalised)
        raw = lambda split: pd.read_csv(next(folder.glob(f"Chinatown_{{split}}.tsv*")), sep="\t", header=None)
        enc = TSEncoder.load({str(run.dir / "model")!r})
        train = enc.embed(raw("TRAIN").iloc[:, 1:].to_numpy()), d.y_train
        test = enc.embed(raw("TEST").iloc[:, 1:].to_numpy()), d.y_test
        print("ACC", svm_probe(train, test)["acc"])
    """)
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert out.returncode == 0, out.stderr
    acc = float(out.stdout.split("ACC")[1])  # the saved encoder (with its input scaler) is the run's, in a new process
    assert abs(acc - m["final"]["acc"]) <= 0.003  # float32 vs float64 scaling may move one of 343 test series


TINY = {
    "autotcl_ett": [
        "model.depth=1",
        "model.hidden=16",
        "model.output_dims=16",
        "data.horizons=[4, 8]",
        "eval.padding=8",
        "train.epochs=20",
    ],
    "autotcl_ucr": ["model.depth=1", "model.hidden=16", "model.output_dims=16"],
}


@pytest.mark.parametrize("recipe", sorted(TINY))
def test_resumed_run_equals_uninterrupted_and_reports_baselines(recipe, tmp_path, data_root):
    """Tiny configs (seconds): interrupted after step 2 and resumed gives the uninterrupted run's final metrics;
    the baselines are in metrics.json and report.md, finite, with the test metrics' keys."""
    from cl_domains.core.recipe import load_recipe

    r = load_recipe(
        f"recipes/{recipe}.yaml",
        "quick",
        TINY[recipe] + ["train.max_steps=4", "train.eval_every=2", "train.checkpoint_every=2"],
    )
    full_run, resumed_run = full_and_resumed(r, tmp_path, 2, data_root)
    full, resumed, cut = full_run.metrics, resumed_run.metrics, resumed_run.dir
    assert resumed["steps"] == full["steps"] == 4
    assert resumed["final"] == pytest.approx(full["final"], rel=1e-6)
    assert resumed["baselines"] == full["baselines"]
    from cl_domains.core.baselines import minirocket_available

    names = {"autotcl_ett": {"last value", "ridge on raw window"}, "autotcl_ucr": {"raw 1-NN", "raw SVM"}}[recipe]
    if recipe == "autotcl_ucr" and minirocket_available():  # the optional extra "baselines" (aeon)
        names = names | {"MiniRocket"}
    assert set(full["baselines"]) == names
    for values in full["baselines"].values():
        assert values and set(values) <= set(full["final"]) and all(np.isfinite(v) for v in values.values())
    assert full["train_stats"] == {"aug_nonfinite_steps": 0}
    report = (cut / "report.md").read_text()
    assert all(n in report.splitlines()[2] for n in names)


def test_forecast_baselines_by_hand():
    from cl_domains.core.baselines import lagged_windows, last_value_forecast, ridge_select

    v = np.arange(6, dtype=float)[:, None]
    pred, truth = last_value_forecast(v, 2)
    assert pred.tolist() == [[0, 0], [1, 1], [2, 2], [3, 3]] and truth.tolist() == [[1, 2], [2, 3], [3, 4], [4, 5]]
    assert lagged_windows(v, 3)[:3].tolist() == [[0, 0, 0], [0, 0, 1], [0, 1, 2]]
    # a noiseless linear target: the smallest alpha wins on validation and predicts it almost exactly
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 3))
    y = x @ np.array([1.0, -2.0, 0.5]) + 3
    res = ridge_select((x[:100], y[:100]), (x[100:150], y[100:150]), {"t": x[150:]})
    assert res["alpha"] == 0.1 and np.abs(res["test_pred"]["t"] - y[150:]).max() < 0.05


PAPER_EPOCHS = {
    ("autotcl_ett", "paper"): 115,
    ("autotcl_ett", "etth2"): 80,
    ("autotcl_ett", "ettm1"): 190,
    ("autotcl_ett", "wth"): 20,
    ("autotcl_ett", "multivariate"): 35,
}  # the official per-dataset configs


@pytest.mark.parametrize(
    "recipe,profiles",
    [
        ("autotcl_ett", ["paper", "etth2", "ettm1", "wth", "cpu", "multivariate", "quick"]),
        ("ts2vec_ett", ["paper", "etth2", "ettm1", "wth", "cpu", "multivariate", "quick"]),
        ("autotcl_ucr", ["paper", "quick"]),
    ],
)
def test_timeseries_recipes_validate(recipe, profiles):
    from cl_domains.core.recipe import load_recipe

    for profile in profiles:
        r = load_recipe(f"recipes/{recipe}.yaml", profile)
        assert r.domain == "timeseries" and r.train.threads == 1
        if profile not in ("cpu", "quick") and r.data.kind == "forecast":
            assert r.train.max_steps is None and r.paper.metrics["mse"] > 0
            assert r.train.epochs == PAPER_EPOCHS.get((recipe, profile), 115)
            if profile not in ("paper", "multivariate"):
                assert profile.upper() in r.data.path.upper()
    with pytest.raises(UserError, match="method.aug_dimm"):
        load_recipe("recipes/autotcl_ett.yaml", "quick", ["method.aug_dimm=3"])


def test_autotcl_counts_and_skips_non_finite_augmenter_steps(data_root, monkeypatch):
    """A NaN augmenter loss does not move the augmenter: the step is skipped, counted (train_stats) and warned about."""
    from cl_domains.core import registry
    from cl_domains.core.recipe import load_recipe
    from cl_domains.core.task import StepContext
    from cl_domains.timeseries import autotcl

    r = load_recipe("recipes/autotcl_ucr.yaml", "quick", TINY["autotcl_ucr"])
    task = registry.domain("timeseries").methods["autotcl"][1](r, data_root, torch.device("cpu"))
    ctx = StepContext(0, 0, 0, r.train.seed, torch.device("cpu"))
    x, g = task.batch_inputs(next(iter(task.batches(0))), ctx)
    before = [p.detach().clone() for p in task.augmenter.parameters()]
    task.augmenter_step(x, g)
    assert task.train_stats() == {"aug_nonfinite_steps": 0}
    moved = [p.detach().clone() for p in task.augmenter.parameters()]
    assert any(not torch.equal(a, b) for a, b in zip(before, moved, strict=False))
    monkeypatch.setattr(autotcl, "mmd", lambda a, b: (a - b).sum() * float("nan"))
    with pytest.warns(RuntimeWarning, match="non-finite"):
        stats = task.augmenter_step(x, g)
    assert stats["aug_skipped"] == 1.0 and task.train_stats() == {"aug_nonfinite_steps": 1}
    assert all(torch.equal(a, b.detach()) for a, b in zip(moved, task.augmenter.parameters(), strict=False))
    assert "augmenter.nonfinite_steps" in dict(task.model.named_buffers())  # saved with every checkpoint


def test_swa_averages_each_post_step_weight_once(data_root):
    """on_step_end folds the weights after each optimiser step into the average exactly once; evaluation adds none."""
    from cl_domains.core.recipe import load_recipe
    from cl_domains.core.task import StepContext
    from cl_domains.timeseries.ts2vec import TS2VecTask

    r = load_recipe("recipes/autotcl_ucr.yaml", "quick", TINY["autotcl_ucr"] + ["method={name: ts2vec}"])
    task = TS2VecTask(r, data_root, torch.device("cpu"))
    first = next(task.net.parameters())
    for step, value in enumerate([1.0, 2.0, 6.0]):
        with torch.no_grad():
            first.fill_(value)  # stands in for the optimiser step
        task.on_step_end(StepContext(step, 0, step, r.train.seed, torch.device("cpu")))
    task.evaluate("dev")
    assert int(task.swa.n_averaged) == 3
    assert torch.allclose(next(task.encoder().parameters()), torch.full_like(first, 3.0))
    assert all(m.training for m in task.swa.modules())  # encode under eval_mode restored the modes


def test_batches_are_index_tensors_drawn_from_named_streams(data_root):
    from cl_domains.core.recipe import load_recipe
    from cl_domains.core.rng import generator
    from cl_domains.core.task import StepContext
    from cl_domains.timeseries.ts2vec import TS2VecTask

    r = load_recipe("recipes/autotcl_ucr.yaml", "quick", TINY["autotcl_ucr"] + ["method={name: ts2vec}"])
    task = TS2VecTask(r, data_root, torch.device("cpu"))
    (e0,), (e1,) = list(task.batches(0))[:1], list(task.batches(1))[:1]
    assert e0.dtype == torch.long and not torch.equal(e0, e1)
    want = torch.randperm(len(task.train_x), generator=generator(r.train.seed, "shuffle", 1))[: task.batch_size]
    assert torch.equal(e1, want)
    ctx = StepContext(5, 1, 0, r.train.seed, torch.device("cpu"))
    x, g = task.batch_inputs(e1, ctx)
    assert torch.equal(x, task.train_x[e1]) and torch.equal(
        torch.rand(3, generator=g), torch.rand(3, generator=ctx.generator("views"))
    )


def test_autotcl_alternates_on_the_loop_step(data_root, monkeypatch):
    """ratio_step counts the loop's steps (ctx.step), so a resumed run alternates as the uninterrupted one."""
    from cl_domains.core.recipe import load_recipe
    from cl_domains.core.task import StepContext
    from cl_domains.timeseries.autotcl import AutoTCLTask

    r = load_recipe("recipes/autotcl_ucr.yaml", "quick", TINY["autotcl_ucr"] + ["method.ratio_step=2"])
    task = AutoTCLTask(r, data_root, torch.device("cpu"))
    calls = []
    monkeypatch.setattr(task, "augmenter_step", lambda x, g: calls.append(1) or {})
    batch = next(iter(task.batches(0)))
    steps = []
    for step in (3, 4, 5, 6):
        n = len(calls)
        task.loss(batch, StepContext(step, 0, 0, r.train.seed, torch.device("cpu")))
        steps += [step] * (len(calls) - n)
    assert steps == [4, 6]
