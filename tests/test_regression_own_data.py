"""The user's own regression data: a PBP-layout folder, a TSER ``.ts`` file, a table, in-memory arrays
(``fit``), each end to end from a tiny file written here, and the errors bad input gives."""

import json

import numpy as np
import pytest
import yaml
from conftest import readme_snippet

from cl_domains.core.errors import UserError
from cl_domains.core.recipe import load_recipe
from cl_domains.core.registry import method_spec
from cl_domains.core.train import train_recipe
from cl_domains.regression import fit, load_uci_pbp
from cl_domains.regression.task import L1Task, RnCTask, SupReMixTask

METRICS = {"mae", "mse", "rmse", "gm", "pearson", "spearman"}


def write_recipe(tmp_path, data, method="supremix", epochs=3, batch_size=16):
    recipe = {
        "name": "own",
        "domain": "regression",
        "model": {"hidden": [16, 16], "projection": 8, "channels": 4, "dim": 16},
        "data": data,
        "method": {"name": method, "contrastive_weight": 0.1},
        "train": {
            "batch_size": batch_size,
            "epochs": epochs,
            "eval_every": 1000,
            "select_mode": "min",
            "checkpoint_every": 100000,
            "eval_before": False,
            "threads": 1,
        },
    }
    path = tmp_path / "own.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def built_task(recipe, data_root=None):
    """The task a run would train (nothing trained): its data and predict() shapes."""
    import torch

    return method_spec("regression", recipe.method.name).cls(recipe, data_root, torch.device("cpu"))


# ----------------------------------------------------------------------------------- methods
def test_each_method_name_is_its_own_class_sharing_the_method_keys():
    specs = {n: method_spec("regression", n) for n in ("supremix", "rnc", "l1")}
    assert {n: s.cls for n, s in specs.items()} == {"supremix": SupReMixTask, "rnc": RnCTask, "l1": L1Task}
    keys = {n: set(s.config.model_fields) for n, s in specs.items()}
    # `--set method.name=rnc` changes nothing else: the same keys, plus each contrastive method's objective
    assert keys["supremix"] == keys["rnc"] == keys["l1"] | {"objective"} and "objective" not in keys["l1"]
    assert SupReMixTask.contrastive and RnCTask.contrastive and not L1Task.contrastive


# ----------------------------------------------------------------------------------- PBP folder
@pytest.fixture
def pbp(tmp_path):
    """40 rows x 4 columns (x0, x1, target, x3: the target is column 2), 2 splits of 30 / 10 rows."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 3))
    y = 3 * x[:, 0] - x[:, 1] + 0.5 * x[:, 2]
    data = np.column_stack([x[:, 0], x[:, 1], y, x[:, 2]])
    d = tmp_path / "mydata"
    d.mkdir()
    np.savetxt(d / "data.txt", data)
    (d / "index_features.txt").write_text("0\n1\n3\n")
    (d / "index_target.txt").write_text("2\n")
    (d / "n_splits.txt").write_text("2\n")
    for k in range(2):
        perm = np.random.RandomState(100 + k).permutation(40)
        (d / f"index_train_{k}.txt").write_text("".join(f"{i}\n" for i in perm[:30]))
        (d / f"index_test_{k}.txt").write_text("".join(f"{i}\n" for i in perm[30:]))
    return d, data


def test_pbp_folder_splits_columns_and_rows(pbp):
    d, data = pbp
    for k in (0, 1):
        got = load_uci_pbp(d, k)
        test_rows = np.loadtxt(d / f"index_test_{k}.txt").astype(int)
        np.testing.assert_allclose(got.test.y, data[test_rows, 2])  # target = column 2, test rows as listed
        assert (len(got.train), len(got.dev), len(got.test)) == (27, 3, 10) and got.train.x.shape == (27, 3)
        assert got.feature_names == ["x0", "x1", "x3"] and got.target_name == "column 2"
        # features standardised with the training rows' statistics
        train_rows = np.setdiff1d(np.loadtxt(d / f"index_train_{k}.txt").astype(int), [])
        assert set(np.round(got.train.y, 9)) <= set(np.round(data[train_rows, 2], 9))
        np.testing.assert_allclose(got.train.x.mean(0), 0, atol=1e-6)
    assert not np.array_equal(load_uci_pbp(d, 0).test.y, load_uci_pbp(d, 1).test.y)
    nested = d.parent / "UCI_Datasets" / "mine"  # the archives' layout: <name>/data/data.txt
    nested.mkdir(parents=True)
    d.rename(nested / "data")
    got = load_uci_pbp(nested, 1)
    assert got.name == "mine" and len(got.test) == 10


def test_pbp_folder_errors_name_the_file_and_the_fix(pbp):
    d, _ = pbp
    with pytest.raises(UserError, match=r"split 2 does not exist \(splits: 0-1\); set data.split"):
        load_uci_pbp(d, 2)
    (d / "index_test_1.txt").write_text("0\n45\n")
    with pytest.raises(UserError, match=r"index_test_1.txt, line 2: index 45 is not one of the 40 rows of data.txt"):
        load_uci_pbp(d, 1)
    (d / "index_test_1.txt").write_text("1.5\n")
    with pytest.raises(UserError, match=r"index_test_1.txt, line 1: index 1.5 is not one of the 40 rows"):
        load_uci_pbp(d, 1)
    train0 = (d / "index_train_0.txt").read_text().split()
    (d / "index_test_0.txt").write_text(f"{train0[0]}\n{train0[1]}\n")
    with pytest.raises(UserError, match="index_train_0.txt and index_test_0.txt share 2 rows"):
        load_uci_pbp(d, 0)
    (d / "index_features.txt").write_text("0\n2\n")
    with pytest.raises(UserError, match=r"index_features.txt: lists the target column 2"):
        load_uci_pbp(d, 0)
    (d / "index_features.txt").write_text("0\n7\n")
    with pytest.raises(UserError, match=r"index_features.txt, line 2: index 7 is not one of the 4 columns"):
        load_uci_pbp(d, 0)
    (d / "index_features.txt").unlink()
    with pytest.raises(UserError, match=r"index_features.txt is missing: a PBP folder holds data.txt"):
        load_uci_pbp(d, 0)
    with pytest.raises(UserError, match=r"has no data.txt; a PBP folder holds"):
        load_uci_pbp(d.parent, 0)


@pytest.mark.parametrize("how", ["format", "path"])
def test_pbp_folder_recipe_end_to_end(pbp, tmp_path, how):
    d, _ = pbp
    data = {"dataset": "pbp", "path": str(d), "split": 1} if how == "format" else {"dataset": str(d), "split": 1}
    recipe = load_recipe(write_recipe(tmp_path, data, batch_size=8))
    task = built_task(recipe)
    assert task.data.name == "mydata" and len(task.data.test) == 10 and task.predict("test").shape == (10,)
    run = train_recipe(recipe, out=tmp_path / "runs")
    assert set(run.metrics["final"]) == METRICS and np.isfinite(list(run.metrics["final"].values())).all()
    assert run.metrics["steps"] == 3 * (27 // 8)
    import cl_domains

    saved = cl_domains.load(run.dir / "model")  # a run's model directory is a saved estimator
    assert type(saved).__name__ == "SupReMix" and saved.prep_["dataset"] == "mydata"
    assert saved.predict(np.zeros((2, 3))).shape == (2,)


@pytest.mark.parametrize("name", ["uci_concrete", "uci_energy"])
def test_the_shipped_pbp_folders_read_as_own_folders_equal_their_cards(name, data_root):
    from cl_domains.regression.task import RegressionDataConfig, load_data

    card = load_data(RegressionDataConfig(dataset=name, split=7), data_root)
    folder = load_data(RegressionDataConfig(dataset="pbp", path=str(data_root / "regression" / name), split=7), None)
    for part in ("train", "dev", "test"):
        np.testing.assert_array_equal(getattr(card, part).x, getattr(folder, part).x)
        np.testing.assert_array_equal(getattr(card, part).y, getattr(folder, part).y)
    assert len(card.test) == len((data_root / "regression" / name / "index_test_7.txt").read_text().split())


def test_a_users_card_in_the_pbp_layout_needs_no_code(pbp, tmp_path, monkeypatch):
    from cl_domains.core.data import sha256sum

    d, data = pbp
    root = tmp_path / "root"
    (root / "regression").mkdir(parents=True)
    d = d.rename(root / "regression" / "mydata")
    keys = {"data": "data.txt", "index_features": "index_features.txt", "index_target": "index_target.txt"}
    keys.update({f"{s}_{k}": f"index_{s}_{k}.txt" for s in ("train", "test") for k in (0, 1)})
    card = {
        "name": "my_pbp",
        "domain": "regression",
        "title": "mine",
        "license": "mine",
        "source": "here",
        "how_to_get": "it is here",
        "files": {k: {"path": f"regression/mydata/{f}", "sha256": sha256sum(d / f)} for k, f in keys.items()},
    }
    cards = tmp_path / "cards"
    cards.mkdir()
    (cards / "my_pbp.yaml").write_text(yaml.safe_dump(card))
    monkeypatch.setenv("CL_DOMAINS_CARDS", str(cards))
    recipe = load_recipe(write_recipe(tmp_path, {"dataset": "my_pbp", "split": 1}))
    task = built_task(recipe, root)
    test_rows = np.loadtxt(d / "index_test_1.txt").astype(int)
    assert task.data.name == "my_pbp" and task.predict("test").shape == (10,)
    np.testing.assert_allclose(task.data.test.y, data[test_rows, 2])
    (d / "index_test_0.txt").write_text("0\n")
    with pytest.raises(UserError, match=r"dataset 'my_pbp': file .*index_test_0.txt is corrupt"):
        built_task(recipe, root)


def test_a_users_card_with_one_table(tmp_path, monkeypatch):
    from cl_domains.core.data import sha256sum

    root, cards = tmp_path / "root", tmp_path / "cards"
    (root / "regression").mkdir(parents=True)
    cards.mkdir()
    rng = np.random.default_rng(2)
    table = root / "regression" / "t.csv"
    table.write_text("a,b,y\n" + "".join(f"{a},{b},{a - b}\n" for a, b in rng.normal(size=(30, 2))))
    (root / "regression" / "s_TRAIN.ts").write_text(ts_text(40, 0))
    (root / "regression" / "s_TEST.ts").write_text(ts_text(10, 1))

    def write(name, files):
        files = {k: {"path": f"regression/{f}", "sha256": sha256sum(root / "regression" / f)} for k, f in files.items()}
        card = {"name": name, "domain": "regression", "title": name, "license": "-", "source": "-", "files": files}
        (cards / f"{name}.yaml").write_text(yaml.safe_dump(card))

    write("my_table", {"table": "t.csv"})
    write("my_tser", {"train": "s_TRAIN.ts", "test": "s_TEST.ts"})
    write("my_odd", {"a": "t.csv", "b": "t.csv"})
    monkeypatch.setenv("CL_DOMAINS_CARDS", str(cards))
    task = built_task(load_recipe(write_recipe(tmp_path, {"dataset": "my_table", "target": "y"})), root)
    assert task.data.name == "my_table" and (len(task.data.train), len(task.data.test)) == (21, 6)
    with pytest.raises(UserError, match=r"dataset 'my_table' is a table \(t.csv\): set data.target"):
        built_task(load_recipe(write_recipe(tmp_path, {"dataset": "my_table"})), root)
    with pytest.raises(UserError, match=r"card 'my_tser' holds .ts files: time-series extrinsic regression"):
        built_task(load_recipe(write_recipe(tmp_path, {"dataset": "my_tser"})), root)
    with pytest.raises(UserError, match=r"dataset card 'my_odd' has no layout the regression domain reads"):
        built_task(load_recipe(write_recipe(tmp_path, {"dataset": "my_odd"})), root)


# ----------------------------------------------------------------------------------- TSER .ts
def ts_text(n, seed, missing=False):
    """``n`` series of 2 dimensions, lengths 10-12; target = mean of dimension 0 + 2 x last of dimension 1."""
    rng = np.random.default_rng(seed)
    lines = ["# a tiny TSER file", "@problemName tiny", "@timeStamps false", "@missing true", "@univariate false"]
    lines += ["@dimensions 2", "@equalLength false", "@targetLabel true", "@data"]
    for i in range(n):
        t = 10 + i % 3
        a, b = rng.normal(size=t), rng.normal(size=t)
        target = a.mean() + 2 * b[-1]
        da = ",".join(f"{v:.6f}" for v in a)
        if missing and i == 0:
            da = "?," + da.split(",", 1)[1]
        lines.append(f"{da}:{','.join(f'{v:.6f}' for v in b)}:{target:.6f}")
    return "\n".join(lines) + "\n"


def test_tser_is_refused_with_a_pointer_to_the_timeseries_domain(tmp_path):
    """One TSER path: .ts files with targets belong to the timeseries domain (kind: regress)."""
    train = tmp_path / "tiny_TRAIN.ts"
    train.write_text(ts_text(20, 0))
    for data in ({"dataset": "tser", "path": str(train)}, {"dataset": str(train)}):
        with pytest.raises(UserError, match=r"extrinsic regression .* timeseries domain.*kind: regress.*read_ts"):
            built_task(load_recipe(write_recipe(tmp_path, data)))


# ----------------------------------------------------------------------------------- tables and names
def test_jsonl_table_and_dataset_errors(tmp_path):
    rng = np.random.default_rng(1)
    rows = [{"a": float(a), "b": float(b), "y": float(2 * a - b)} for a, b in rng.normal(size=(50, 2))]
    table = tmp_path / "mine.jsonl"
    table.write_text("".join(json.dumps(r) + "\n" for r in rows))
    recipe = load_recipe(write_recipe(tmp_path, {"dataset": "table", "path": str(table), "target": "y"}))
    task = built_task(recipe)
    assert (len(task.data.train), len(task.data.dev), len(task.data.test)) == (35, 5, 10)
    assert task.data.feature_names == ["a", "b"] and task.predict("test").shape == (10,)
    with pytest.raises(UserError, match=r"mine.jsonl has no column 'why' \(named by data.target\)"):
        built_task(load_recipe(write_recipe(tmp_path, {"dataset": "table", "path": str(table), "target": "why"})))
    for features, at in ((["a", "c"], 1), (["c", "b"], 0)):  # the first feature is checked as well as the last
        with pytest.raises(UserError, match=rf"no column 'c' \(named by data.features\[{at}\]\)"):
            built_task(
                load_recipe(
                    write_recipe(
                        tmp_path, {"dataset": "table", "path": str(table), "target": "y", "features": features}
                    )
                )
            )
    with pytest.raises(UserError, match=r"data.dataset 'uci_airfol' is neither a dataset card \(.*uci_airfoil"):
        built_task(load_recipe(write_recipe(tmp_path, {"dataset": "uci_airfol"})))
    with pytest.raises(UserError, match=r"data.dataset 'pbp' reads your own data: set data.path"):
        built_task(load_recipe(write_recipe(tmp_path, {"dataset": "pbp"})))
    with pytest.raises(UserError, match=r"'stsb' is a sentences dataset, not a regression one"):
        built_task(load_recipe(write_recipe(tmp_path, {"dataset": "stsb"})))


# ----------------------------------------------------------------------------------- in memory
def test_fit_on_arrays_predicts_and_embeds():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 3))
    y = 2 * x[:, 0] - x[:, 1] + 10  # a linear target with an offset: predictions come back in y's units
    model = fit(x, y, method="l1", train={"epochs": 40, "batch_size": 32})
    assert type(model).__name__ == "L1Regressor"
    new = rng.normal(size=(50, 3))
    pred = model.predict(new)
    assert pred.shape == (50,) and model.embed(new).shape == (50, 128)
    truth = 2 * new[:, 0] - new[:, 1] + 10
    assert np.abs(pred - truth).mean() < 0.3 * truth.std()  # measured ~0.1 x std
    assert set(model.metrics_) == METRICS
    with pytest.raises(UserError, match=r"X has 200 rows and y 199"):
        fit(x, y[:-1])
    with pytest.raises(UserError, match=r"inputs of shape \(4, 2\) do not match the training inputs \[n, 3\]"):
        model.predict(new[:4, :2])
    with pytest.raises(UserError, match=r"'epochs' is not accepted; write train=\{'epochs': E\}"):
        fit(x, y, epochs=5)
    with pytest.raises(UserError, match=r"'test_fraction' is not accepted; write data=\{'test_fraction': F\}"):
        fit(x, y, test_fraction=0.2)


def test_fit_without_a_test_split_names_its_final_metrics_dev(tmp_path):
    """No test rows: the final scores are the dev split's and say so (dev_*), in the estimator and the report."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(80, 3))
    model = fit(
        x, x.sum(1), method="l1", train={"epochs": 1, "batch_size": 16}, data={"test_fraction": 0}, out=tmp_path
    )
    assert set(model.metrics_) == {f"dev_{k}" for k in METRICS}
    assert all(set(v) <= {f"dev_{k}" for k in METRICS} for v in model.baselines_.values())
    assert "| dev_mae |" in (model.run_dir_ / "report.md").read_text()


def test_fit_on_series_arrays():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 16, 2))
    y = x[:, -4:, 0].mean(1)
    x[0, -3:] = np.nan  # a shorter series
    model = fit(x, y, train={"epochs": 2, "batch_size": 32})
    assert model.prep_["kind"] == "series" and model.predict(x[:7]).shape == (7,)
    assert model.embed(x[:7]).shape == (7, 128)


def test_readme_example_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(readme_snippet("regression"), scope)
    assert scope["pred"].shape == (len(scope["X"]),)
