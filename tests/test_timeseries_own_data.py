"""Your own time-series data: tiny .ts files (UCR univariate, UEA 2-dimensional, TSER regression) run end to end
through a recipe, the long-format table reader, the regression probe by hand, TSEncoder(method=...), the README
example, and one-paragraph errors for bad input."""

import gzip

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from conftest import readme_snippet

from cl_domains.core.errors import UserError
from cl_domains.timeseries import AutoTCL, TS2Vec, TSEncoder
from cl_domains.timeseries.data import Classification, Regression, read_long, read_ts_split
from cl_domains.timeseries.probes import encode_series, regression_probe
from cl_domains.timeseries.ts_format import read_ts

TINY_MODEL = {"output_dims": 16, "hidden": 8, "depth": 2, "mask_p": 0.0}


def ts_text(cases, labels, *, dims=1, equal=True, regress=False, classes=("a", "b")):
    """A .ts file: ``cases`` a list of [d][T] value lists."""
    head = ["@problemName Toy", "@timeStamps false", "@missing false", f"@univariate {str(dims == 1).lower()}"]
    head += [f"@dimensions {dims}", f"@equalLength {str(equal).lower()}"]
    if equal:
        head.append(f"@seriesLength {len(cases[0][0])}")
    head.append("@targetLabel true" if regress else "@classLabel true " + " ".join(classes))
    head.append("@data")
    rows = [
        ":".join(",".join(f"{v:.5f}" for v in dim) for dim in case) + f":{lab}"
        for case, lab in zip(cases, labels, strict=False)
    ]
    return "\n".join(head + rows) + "\n"


def toy_classes(n, dims, seed, unequal=False):
    """Class a: slow sine, class b: fast sine (per dimension a phase shift); lengths 20-28 when unequal."""
    rng = np.random.default_rng(seed)
    cases, labels = [], []
    for i in range(n):
        lab = "ab"[i % 2]
        t = np.arange(24 if not unequal else 20 + (i % 3) * 4)
        freq = 0.15 if lab == "a" else 0.6
        cases.append([np.sin(freq * t + k) + 0.1 * rng.normal(size=len(t)) for k in range(dims)])
        labels.append(lab)
    return cases, labels


def toy_regression(n, seed):
    """Target = amplitude of the first dimension's sine."""
    rng = np.random.default_rng(seed)
    cases, targets = [], []
    for _ in range(n):
        amp = rng.uniform(0.5, 3.0)
        t = np.arange(16)
        cases.append([amp * np.sin(0.5 * t + rng.uniform(0, 6)), rng.normal(size=16)])
        targets.append(round(amp, 4))
    return cases, targets


def write_pair(tmp_path, train, test, gz=False):
    paths = []
    for split, text in (("TRAIN", train), ("TEST", test)):
        p = tmp_path / f"toy_{split}.ts{'.gz' if gz else ''}"
        p.write_bytes(gzip.compress(text.encode()) if gz else text.encode())
        paths.append(p)
    return paths


def run_recipe(tmp_path, data, method="ts2vec", steps=4, **train):
    from cl_domains.core.recipe import load_recipe
    from cl_domains.core.train import train_recipe

    recipe = {
        "name": "toy",
        "domain": "timeseries",
        "model": TINY_MODEL,
        "data": {"max_train_length": 64, **data},
        "method": {"name": method},
        "train": {"seed": 0, "batch_size": 8, "epochs": 100, "max_steps": steps, "eval_every": steps, **train},
    }
    path = tmp_path / "toy.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return train_recipe(load_recipe(path), out=tmp_path / "runs", data_root=tmp_path)


def test_univariate_ts_classification_end_to_end(tmp_path):
    (tr, trl), (te, tel) = toy_classes(20, 1, 0), toy_classes(10, 1, 1)
    train, test = write_pair(tmp_path, ts_text(tr, trl), ts_text(te, tel), gz=True)
    run = run_recipe(tmp_path, {"kind": "classify", "path": str(train), "test": str(test)})
    m = run.metrics
    assert set(m["final"]) == {"acc", "cv_acc"} and 0 <= m["final"]["acc"] <= 1
    assert m["final"]["acc"] >= 0.8  # slow vs fast sine: separable
    assert set(m["baselines"]) == {"raw 1-NN", "raw SVM"} and m["steps"] == 4
    enc = TSEncoder.load(run.dir / "model")
    x = np.array([c[0] for c in te])
    assert enc.transform(x).shape == (10, 16)


def test_two_dimensional_unequal_length_ts_classification_with_autotcl(tmp_path):
    (tr, trl), (te, tel) = toy_classes(16, 2, 0, unequal=True), toy_classes(8, 2, 1, unequal=True)
    train, test = write_pair(tmp_path, ts_text(tr, trl, dims=2, equal=False), ts_text(te, tel, dims=2, equal=False))
    d = read_ts_split(train, test, "classify")
    assert isinstance(d, Classification) and d.x_train.shape == (16, 28, 2) and d.x_test.shape == (8, 28, 2)
    assert np.isnan(d.x_train[0, 20:]).all() and not np.isnan(d.x_train[2]).any()  # lengths 20, 24, 28, ...
    assert d.classes == ["a", "b"] and d.y_train[:4].tolist() == [0, 1, 0, 1]
    assert abs(float(np.nanmean(d.x_train[..., 1]))) < 1e-6  # channels scaled with the train mean / std
    run = run_recipe(tmp_path, {"kind": "classify", "path": str(train), "test": str(test)}, method="autotcl")
    assert set(run.metrics["final"]) == {"acc", "cv_acc"} and run.metrics["train_stats"] == {"aug_nonfinite_steps": 0}
    assert TSEncoder.load(run.dir / "model").transform(d.x_test).shape == (8, 16)


def test_tser_regression_end_to_end(tmp_path):
    (tr, ytr), (te, yte) = toy_regression(24, 0), toy_regression(12, 1)
    train, test = write_pair(tmp_path, ts_text(tr, ytr, dims=2, regress=True), ts_text(te, yte, dims=2, regress=True))
    d = read_ts_split(train, test, "regress")
    assert isinstance(d, Regression) and d.x_train.shape == (24, 16, 2) and d.y_test.tolist() == yte
    run = run_recipe(tmp_path, {"kind": "regress", "path": str(train), "test": str(test)})
    m = run.metrics
    assert set(m["final"]) == {"rmse", "mae", "cv_r2", "cv_rmse"}
    assert all(np.isfinite(v) for v in m["final"].values()) and m["final"]["mae"] <= m["final"]["rmse"]
    err = np.array(yte) - np.mean(ytr)  # the train-mean baseline by hand
    assert m["baselines"]["train mean"]["rmse"] == pytest.approx(float(np.sqrt((err**2).mean())))
    assert m["baselines"]["train mean"]["mae"] == pytest.approx(float(np.abs(err).mean()))
    assert m["select_metric"] == "cv_r2" and m["best_step"] is not None
    assert -1 < m["baselines"]["ridge on raw series"]["cv_r2"] < 1  # a sane cross-validation of the raw ridge
    assert TSEncoder.load(run.dir / "model").transform(d.x_test).shape == (12, 16)


def test_regression_probe_by_hand():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 4))
    y = x @ np.array([1.0, -2.0, 0.5, 0.0]) + 3
    res = regression_probe((x[:40], y[:40]), (x[40:], y[40:]))
    assert res["alpha"] == 0.1 and res["rmse"] < 0.05 and res["mae"] < 0.05 and res["cv_r2"] > 0.999
    noise = regression_probe((x[:40], rng.normal(size=40)), (x[40:], rng.normal(size=20)))
    assert noise["cv_r2"] < 0.2
    with pytest.raises(UserError, match="at least 4 train series"):
        regression_probe((x[:3], y[:3]))


def test_regression_probe_cv_survives_columns_that_are_almost_always_padding():
    """The zero-filled end of the one longer series (tiny values on another row) must not blow up a CV fold."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 3))
    y = x @ np.array([1.0, -1.0, 0.5]) + 0.3 * rng.normal(size=40)
    pad = np.zeros((40, 10))
    pad[0], pad[1] = 1e-3 * rng.normal(size=10), rng.normal(size=10)
    res = regression_probe((np.hstack([x, pad]), y))
    assert res["cv_r2"] > 0.9  # per-fold scaling gave -1512 here


def test_kind_mismatch_and_config_errors(tmp_path):
    from cl_domains.core.recipe import load_recipe

    (tr, trl), (te, tel) = toy_classes(8, 1, 0), toy_classes(4, 1, 1)
    train, test = write_pair(tmp_path, ts_text(tr, trl), ts_text(te, tel))
    with pytest.raises(UserError, match=r"toy_TRAIN.ts: data.kind is 'regress' but the header has no '@targetLabel"):
        read_ts_split(train, test, "regress")
    for data, match in [
        ({"kind": "regress", "path": "ucr/Chinatown"}, "kind regress reads .ts files"),
        ({"kind": "classify", "path": str(train)}, "set test to the matching test file"),
        ({"kind": "forecast", "path": str(train), "test": str(test)}, "needs kind classify or regress"),
    ]:
        p = tmp_path / "bad.yaml"
        p.write_text(yaml.safe_dump({"name": "b", "domain": "timeseries", "data": data, "method": {"name": "ts2vec"}}))
        with pytest.raises(UserError, match=match):
            load_recipe(p)


def test_ragged_ts_file_in_a_recipe_is_a_user_error(tmp_path):
    (tr, trl), (te, tel) = toy_classes(8, 2, 0), toy_classes(4, 2, 1)
    text = ts_text(tr, trl, dims=2).splitlines()
    text[10] = text[10].split(":", 1)[0] + ":1,2,3:" + text[10].rsplit(":", 1)[1]  # dimension 2 too short
    train, test = write_pair(tmp_path, "\n".join(text) + "\n", ts_text(te, tel, dims=2))
    with pytest.raises(UserError, match=r"toy_TRAIN.ts, line 11: the dimensions have different lengths \[24, 3\]"):
        run_recipe(tmp_path, {"kind": "classify", "path": str(train), "test": str(test)})


def test_read_long_format():
    df = pd.DataFrame(
        {
            "sid": ["s2", "s2", "s1", "s1", "s1", "s2"],
            "t": [1, 0, 2, 0, 1, 2],
            "v": [21.0, 20.0, 12.0, 10.0, 11.0, 22.0],
            "w": [0.0, 0.0, 1.0, 1.0, 1.0, 0.5],
            "cls": ["b", "b", "a", "a", "a", "b"],
        }
    )
    X, y, ids = read_long(df, id="sid", time="t", value=["v", "w"], label="cls")
    assert ids.tolist() == ["s1", "s2"] and y.tolist() == ["a", "b"] and X.shape == (2, 3, 2)
    assert X[0, :, 0].tolist() == [10, 11, 12] and X[1, :, 0].tolist() == [20, 21, 22] and X[1, 2, 1] == 0.5
    X, y, _ = read_long(df.drop(index=5), id="sid", time="t", value="v")  # s2 one step shorter: NaN padded
    assert y is None and X.shape == (2, 3, 1) and np.isnan(X[1, 2, 0]) and X[1, :2, 0].tolist() == [20, 21]
    z = TS2Vec(train={"max_steps": 2}, **TINY_FIT).fit(X).embed(X)
    assert z.shape == (2, 8) and np.isfinite(z).all()


def test_read_long_format_errors(tmp_path):
    df = pd.DataFrame({"sid": [1, 1, 2], "t": [0, 1, 0], "v": [1.0, 2.0, 3.0], "cls": ["a", "b", "a"]})
    path = tmp_path / "long.csv"
    df.to_csv(path, index=False)
    X, _, ids = read_long(path, id="sid", time="t", value="v")
    assert X.shape == (2, 2, 1) and ids.tolist() == [1, 2]
    with pytest.raises(UserError, match=r"long.csv has no column 'value' \(named by value\)"):
        read_long(path, id="sid", time="t")
    with pytest.raises(UserError, match=r"series 1 has 2 different values in the label column 'cls'"):
        read_long(df, id="sid", time="t", value="v", label="cls")
    with pytest.raises(UserError, match=r"series 1 has two rows at time 0"):
        read_long(pd.concat([df, df.iloc[:1]]), id="sid", time="t", value="v")
    with pytest.raises(UserError, match=r"value column\(s\) .*cls.* are not numeric"):
        read_long(df, id="sid", time="t", value="cls")


TINY_FIT = {"model": {"depth": 1, "output_dims": 8, "hidden": 8}}


def test_tsencoder_is_the_method_estimator_trained_by_the_core_loop(monkeypatch):
    X = np.random.default_rng(0).normal(size=(12, 40, 2))
    enc = TSEncoder(method="autotcl", train={"max_steps": 3}, **TINY_FIT).fit(X)
    assert isinstance(enc, AutoTCL) and enc.recipe_.method.name == "autotcl" and enc.metrics_ == {}
    z = enc.embed(X)
    assert z.shape == (12, 8) and z.dtype == np.float32 and np.array_equal(enc.transform(X), z)
    assert enc.embed_timestamps(X).shape == (12, 40, 8)
    a = AutoTCL(train={"max_steps": 2, "seed": 3}, **TINY_FIT).fit(X).embed(X)
    b = AutoTCL(train={"max_steps": 2, "seed": 3}, **TINY_FIT).fit(X).embed(X)
    c = AutoTCL(train={"max_steps": 2, "seed": 4}, **TINY_FIT).fit(X).embed(X)
    assert np.array_equal(a, b) and not np.array_equal(a, c)  # seeded by train.seed
    assert "BaseEstimator" not in (TSEncoder.__doc__ or "") and "contrastive method" in TSEncoder.__doc__
    with pytest.raises(
        UserError, match="no timeseries estimator named .*the timeseries estimators are: autotcl, ts2vec"
    ):
        TSEncoder(method="simclr")
    with pytest.raises(UserError, match=r"'n_iters' is not accepted; write train=\{'max_steps': N\}"):
        TSEncoder(n_iters=5)
    with pytest.raises(UserError, match=r"'method_params' is not accepted"):
        TSEncoder(method_params={"aug_dim": 3})
    with pytest.raises(UserError, match=r"aug_dimm.*did you mean 'aug_dim'"):
        AutoTCL(method={"aug_dimm": 3}).fit(X)
    with pytest.raises(UserError, match=r"the series have 3 channel\(s\), the encoder was trained on 2"):
        enc.embed(np.zeros((2, 40, 3)))
    threads = []
    monkeypatch.setattr(torch, "set_num_threads", lambda n: threads.append(n))
    TS2Vec(train={"max_steps": 1, "threads": 1}, **TINY_FIT).fit(X)
    assert threads[0] == 1  # train.threads is honoured (and restored afterwards)


def test_tsencoder_trains_the_learnable_temperature_with_the_recipe_optimiser():
    """The one training path: the objective's temperature is optimised with the encoder, weight decay is the
    recipe's (0.0) and the run's non-finite guard applies."""
    X = np.random.default_rng(0).normal(size=(16, 30, 1))
    method = {"objective": {"learnable_temperature": True}}
    enc = TS2Vec(method=method, train={"max_steps": 3, "lr": 0.05}, **TINY_FIT).fit(X)
    assert enc.recipe_.train.weight_decay == 0.0
    assert enc.task_.objective.temperature.log_scale.item() != pytest.approx(0.0)  # log(1 / 1.0) at the start


def test_readme_example(tmp_path, monkeypatch):
    (tr, trl), (te, tel) = toy_classes(12, 2, 0), toy_classes(6, 2, 1)
    write_pair(tmp_path, ts_text(tr, trl, dims=2), ts_text(te, tel, dims=2))
    monkeypatch.chdir(tmp_path)
    code = readme_snippet("timeseries")
    assert "toy_TRAIN.ts" in code and len(code.strip().splitlines()) <= 10
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)
    assert scope["X"].shape == (12, 24, 2) and scope["y"].tolist() == trl
    assert scope["Z"].shape == (12, 64) and np.isfinite(scope["Z"]).all()
    assert np.array_equal(AutoTCL.load(tmp_path / "my_encoder").embed(scope["X"]), scope["Z"])


def long_table(cases, labels):
    rows = [
        {"sid": f"s{i:02d}", "step": t, "x1": case[0][t], "x2": case[1][t], "y": lab}
        for i, (case, lab) in enumerate(zip(cases, labels, strict=False))
        for t in range(len(case[0]))
    ]
    return pd.DataFrame(rows).sample(frac=1.0, random_state=0)  # row order does not matter


def test_long_table_recipe_regression_and_errors(tmp_path):
    (tr, ytr), (te, yte) = toy_regression(20, 0), toy_regression(8, 1)
    long_table(tr, ytr).to_csv(tmp_path / "train.csv", index=False)
    long_table(te, yte).to_parquet(tmp_path / "test.parquet", index=False)
    data = {"kind": "regress", "path": str(tmp_path / "train.csv"), "test": str(tmp_path / "test.parquet")}
    cols = {"id": "sid", "time": "step", "value": ["x1", "x2"], "label": "y"}
    from cl_domains.timeseries.data import read_long_split

    d = read_long_split(data["path"], data["test"], "regress", **cols)
    assert d.x_train.shape == (20, 16, 2) and d.y_test.tolist() == yte  # ids s00..s07 sort as written
    raw = (d.x_test[3, :, 0] - d.x_test[3, 0, 0]) / (d.x_test[3, 1, 0] - d.x_test[3, 0, 0])
    want = (np.array(te[3][0]) - te[3][0][0]) / (te[3][0][1] - te[3][0][0])
    assert np.allclose(raw, want, atol=1e-3)  # time order restored (scaling is affine)
    m = run_recipe(tmp_path, {**data, **cols}, steps=2).metrics
    assert set(m["final"]) == {"rmse", "mae", "cv_r2", "cv_rmse"} and set(m["baselines"]) == {
        "train mean",
        "ridge on raw series",
    }
    with pytest.raises(UserError, match=r"train.csv has no column 'x3' \(named by data.value\[1\]\).*Set data.value"):
        run_recipe(tmp_path, {**data, **cols, "value": ["x1", "x3"]})
    table = long_table(tr, ["high" if v > 1 else "low" for v in ytr])
    table.to_csv(tmp_path / "train.csv", index=False)
    with pytest.raises(UserError, match=r"train.csv: the label column 'y' \(data.label\) is not numeric"):
        run_recipe(tmp_path, {**data, **cols})


def test_ucr_set_written_as_ts_reads_like_the_tsv_reader(tmp_path, data_root):
    """Chinatown (a non-normalised UCR set: one train mean/std, as the .ts route's per-channel scaling for d = 1)
    written as .ts files gives the TSV reader's arrays and labels."""
    from cl_domains.timeseries import read_ucr

    folder = data_root / "timeseries/ucr/Chinatown"
    ref = read_ucr(folder)
    paths = []
    for split in ("TRAIN", "TEST"):
        raw = pd.read_csv(folder / f"Chinatown_{split}.tsv.gz", sep="\t", header=None)
        head = ["@problemName Chinatown", "@univariate true", "@equalLength true", f"@seriesLength {raw.shape[1] - 1}"]
        head += ["@classLabel true " + " ".join(sorted(set(raw[0].astype(str)))), "@data"]
        rows = [",".join(repr(float(v)) for v in row[1:]) + f":{row[0]}" for row in raw.to_numpy()]
        paths.append(tmp_path / f"Chinatown_{split}.ts")
        paths[-1].write_text("\n".join(head + rows) + "\n")
    d = read_ts_split(*paths, "classify")
    assert d.x_train.shape == ref.x_train.shape == (20, 24, 1) and d.x_test.shape == (343, 24, 1)
    assert np.allclose(d.x_train, ref.x_train, atol=1e-5) and np.allclose(d.x_test, ref.x_test, atol=1e-5)
    assert d.y_train.tolist() == ref.y_train.tolist() and d.y_test.tolist() == ref.y_test.tolist()


def test_regress_kind_follows_with_its_selection_metric(tmp_path):
    """A classification recipe switched to ``kind: regress`` selects on cv_r2 (max) instead of failing at its first
    evaluation; an unknown metric is refused before the baselines and the first step."""
    (tr, ytr), (te, yte) = toy_regression(24, 0), toy_regression(12, 1)
    train, test = write_pair(tmp_path, ts_text(tr, ytr, dims=2, regress=True), ts_text(te, yte, dims=2, regress=True))
    data = {"kind": "regress", "path": str(train), "test": str(test)}
    run = run_recipe(tmp_path, data, steps=2, select_metric="cv_acc", select_mode="max", eval_before=False)
    assert run.metrics["select_metric"] == "cv_r2" and run.metrics["best_step"] is not None
    assert yaml.safe_load((run.dir / "config.yaml").read_text())["train"]["select_metric"] == "cv_r2"
    run = run_recipe(tmp_path, data, steps=2, select_metric="val_mse", select_mode="min", eval_before=False)
    assert run.metrics["select_metric"] == "cv_r2" and run.metrics["best_step"] is not None
    with pytest.raises(UserError, match=r"train.select_metric 'acc' is not a dev metric of data.kind 'regress'.*cv_r2"):
        run_recipe(tmp_path, data, steps=2, select_metric="acc")


def test_a_loaded_encoder_scores_a_ts_pair_as_its_run_did(tmp_path):
    (tr, trl), (te, tel) = toy_classes(12, 2, 0), toy_classes(6, 2, 1)
    train, test = write_pair(tmp_path, ts_text(tr, trl, dims=2), ts_text(te, tel, dims=2))
    est = TS2Vec(train={"max_steps": 2, "batch_size": 4}, **TINY_FIT).fit(str(train), test=str(test))
    assert est.recipe_.data.kind == "classify" and set(est.metrics_) == {"acc", "cv_acc"}
    assert est.evaluate() == est.metrics_
    raw = read_ts(train)[0]  # the file's own values: embed standardises them as the run's reader did
    run_view = encode_series(est.net_, est.task_.data.x_train)
    assert np.allclose(est.embed(raw), run_view, atol=1e-5) and not np.allclose(encode_series(est.net_, raw), run_view)
    est.save(tmp_path / "enc")
    again = TSEncoder.load(tmp_path / "enc")
    assert np.array_equal(again.embed(raw), est.embed(raw))  # the scaler is saved with the weights
    assert again.evaluate(str(train), test=str(test)) == est.metrics_  # rebuilt from the saved recipe and weights
    mem = TS2Vec(train={"max_steps": 1}, **TINY_FIT).fit(np.random.default_rng(0).normal(size=(4, 10, 1)))
    assert mem.evaluate() == mem.metrics_ == {}  # unlabelled series: nothing to score
    with pytest.raises(UserError, match="give the data to score"):
        TSEncoder.load(mem.save(tmp_path / "mem")).evaluate()
