"""seqrec on the user's own interaction logs: preparation, raw ids in and out, errors, memory check."""

import gzip
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from conftest import readme_snippet

from cl_domains.core.errors import UserError
from cl_domains.seqrec import SASRec, SASRecEncoder, prepare_interactions, read_interactions
from cl_domains.seqrec.memory import RUNTIME_BYTES, memory_estimate

REPO = Path(__file__).resolve().parents[1]


def seq(p, u):
    """The raw item ids of user row ``u`` of a prepared log."""
    s = p.sequences
    return [p.item_ids[i - 1] for i in s.user(u)]


# file order, unsorted by user and time; "bob" has a tie at t=5 (file order: y then x) and a repeat of x
LOG = pd.DataFrame(
    {
        "uid": ["bob", "amy", "bob", "amy", "bob", "cat", "amy", "bob", "cat", "amy"],
        "iid": ["x", "z", "y", "x", "x", "y", "y", "w", "z", "x"],
        "t": [9, 3, 5, 1, 5, 2, 2, 1, 1, 7],
    }
)


def test_prepare_sorts_stably_keeps_repeats_and_drops_short_users():
    p = prepare_interactions(LOG, user="uid", item="iid", time="t")
    assert p.user_ids.tolist() == ["amy", "bob"]  # cat has 2 events: dropped
    assert p.item_ids.tolist() == ["w", "x", "y", "z"]  # sorted raw ids -> internal 1..4
    assert seq(p, 0) == ["x", "y", "z", "x"]  # amy by time 1, 2, 3, 7; x repeats
    assert seq(p, 1) == ["w", "y", "x", "x"]  # bob: t=1, then the tie t=5 in file order (y, x), then t=9
    assert p.sequences.items.tolist() == [2, 3, 4, 2, 1, 3, 2, 2] and p.sequences.offsets.tolist() == [0, 4, 8]
    assert p.item_counts.tolist() == [1, 4, 2, 1] and p.dropped_users == 1 and p.rows_read == 10
    assert "1 users with fewer than 3 interactions dropped" in p.notes[0]
    assert p.history("bob") == ["w", "y", "x", "x"] and p.history("amy") == ["x", "y", "z", "x"]
    for unknown in ("cat", "dan", "zed"):  # dropped (2 events), absent (sorts inside / after the known ids)
        with pytest.raises(UserError, match=f"user '{unknown}' is not among the 2 users"):
            p.history(unknown)
    # without a time column the file order is the time order
    q = prepare_interactions(LOG, user="uid", item="iid", time=None)
    assert seq(q, 0) == ["z", "x", "y", "x"] and seq(q, 1) == ["x", "y", "x", "w"]


def test_k_core_is_iterative():
    rows = [("u1", x) for x in "aabbc"] + [("u2", x) for x in "abba"] + [("u3", x) for x in "cde"]
    rows += [("u4", x) for x in "deed"]
    df = pd.DataFrame(rows, columns=["user_id", "item_id"])
    # k=3: c (2 events) goes; u3 falls to 2 and goes; d and e fall to 2 and go; u4 is left with nothing
    p = prepare_interactions(df, time=None, k_core=3)
    assert p.user_ids.tolist() == ["u1", "u2"] and p.item_ids.tolist() == ["a", "b"]
    assert seq(p, 0) == list("aabb") and seq(p, 1) == list("abba")
    assert p.k_core_removed == 8 and p.dropped_users == 0
    assert p.notes == ["3-core filtering removed 8 of 16 interactions"]
    assert prepare_interactions(df, time=None).user_ids.tolist() == ["u1", "u2", "u3", "u4"]  # no filter by default


def test_dates_numbers_as_ids_and_formats(tmp_path):
    df = pd.DataFrame(
        {
            "user_id": [7, 7, 7, 10, 10, 10],  # numeric ids become text, sorted as text
            "item_id": ["007", "5", "5", "007", "6", "5"],
            "timestamp": ["2024-03-01", "2024-01-01", "2024-02-01", "2023-05-01", "2023-05-01T10:00", "2023-04-01"],
        }
    )
    csv = tmp_path / "log.csv"
    df.to_csv(csv, index=False)
    p = read_interactions(csv)
    assert p.user_ids.tolist() == ["10", "7"] and p.item_ids.tolist() == ["007", "5", "6"]  # "007" kept as text
    assert seq(p, 1) == ["5", "5", "007"] and seq(p, 0) == ["5", "007", "6"]  # by date; "10" < "7" as text
    assert prepare_interactions(df).sequences.items.tolist() == p.sequences.items.tolist()  # DataFrame == file
    # the same log as a RecBole .inter file (typed headers, tabs), gzip-compressed, and as parquet
    inter = tmp_path / "log.inter.gz"
    text = "user_id:token\titem_id:token\ttimestamp:float\n" + "".join(
        f"{u}\t{i}\t{pd.Timestamp(t).timestamp()}\n" for u, i, t in df.itertuples(index=False)
    )
    inter.write_bytes(gzip.compress(text.encode()))
    q = read_interactions(inter)
    assert q.sequences.items.tolist() == p.sequences.items.tolist() and q.item_ids.tolist() == ["007", "5", "6"]
    df.astype(str).to_parquet(tmp_path / "log.parquet")
    r = read_interactions(tmp_path / "log.parquet")
    assert r.sequences.items.tolist() == p.sequences.items.tolist()


def one_paragraph(e):
    text = str(e.value)
    assert "\n" not in text and "Traceback" not in text
    return text


def test_log_without_the_time_column_names_file_column_key_and_fix(tmp_path):
    p = tmp_path / "events.csv"
    p.write_text("user_id,item_id,time\nu1,a,1\nu1,b,2\nu1,c,3\n")
    with pytest.raises(UserError) as e:
        read_interactions(p)  # data.time defaults to "timestamp"
    text = one_paragraph(e)
    assert str(p) in text and "'timestamp'" in text and "data.time" in text and "did you mean 'time'" in text
    assert "Set data.time to one of them" in text
    # the same through a recipe: the CLI's path
    recipe = tiny_recipe(tmp_path, {"interactions": str(p)})
    from cl_domains.core.registry import method_spec

    with pytest.raises(UserError, match="has no column 'timestamp' \\(named by data.time\\)"):
        method_spec("seqrec", "sasrec").cls(recipe, None, torch.device("cpu"))


@pytest.mark.parametrize(
    "text, message",
    [
        (
            "user_id,item_id,timestamp\nu1,a,1\n,b,2\n",
            "column 'user_id' \\(named by data.user\\) is empty in data row 2",
        ),
        ("user_id,item_id,timestamp\nu1,a,1\nu1,b,soon\n", "time column 'timestamp' \\(named by data.time\\) holds"),
        ("user_id,item_id,timestamp\nu1,a,1\nu1,b,2\nu2,a,3\n", "no user has 3 or more interactions"),
    ],
)
def test_bad_logs_are_one_paragraph_errors(tmp_path, text, message):
    p = tmp_path / "bad.csv"
    p.write_text(text)
    with pytest.raises(UserError, match=message) as e:
        read_interactions(p)
    assert str(p) in one_paragraph(e)


def test_recipe_names_exactly_one_data_source(tmp_path):
    for data, message in [
        ({"sequences": "x.txt", "interactions": "y.csv"}, "exactly one of data.sequences"),
        ({}, "exactly one of data.sequences"),
        ({"interactions": "y.csv", "n_items": 5}, "data.n_items applies to data.sequences only"),
        ({"sequences": "x.txt", "k_core": 5}, "data.k_core applies to data.interactions only"),
    ]:
        with pytest.raises(UserError, match=message):
            tiny_recipe(tmp_path, data)


def test_one_data_source_given_replaces_the_recipes_other(tmp_path):
    from cl_domains.core.recipe import load_recipe

    # the shipped recipe names data.sequences: an interaction log given by --set replaces it (and n_items with it)
    r = load_recipe("sasrec_beauty", "quick", ["data.interactions=log.csv", "data.k_core=5"])
    assert (r.data.interactions, r.data.sequences, r.data.k_core) == ("log.csv", None, 5)
    assert "sequences" not in r.resolved["data"]  # the run's saved recipe loads again
    # and the other way round; k_core only applies to a log, so it goes with it
    log = {"interactions": "y.csv", "k_core": 5}
    r = load_recipe(tiny_recipe(tmp_path, log).source, None, ["data.sequences=s.txt"])
    assert (r.data.sequences, r.data.interactions, r.data.k_core) == ("s.txt", None, None)
    # both given at once is still refused, and a null source given changes nothing
    with pytest.raises(UserError, match="exactly one of data.sequences"):
        load_recipe("sasrec_beauty", "quick", ["data.interactions=log.csv", "data.sequences=s.txt"])
    assert load_recipe("sasrec_beauty", "quick", ["data.interactions=null"]).data.sequences == "amazon_beauty/sequences"


def tiny_recipe(tmp_path, data, method=None, **train):
    from cl_domains.core.recipe import load_recipe

    r = {
        "name": "tiny_log",
        "domain": "seqrec",
        "model": {"max_len": 8, "hidden": 16, "layers": 1, "heads": 2, "inner": 32},
        "data": data,
        "method": method or {"name": "sasrec"},
        "train": {"batch_size": 16, "lr": 1e-2, "max_steps": 4, "eval_every": None, "seed": 1, **train},
        "eval": {"batch_size": 32},
    }
    p = tmp_path / "r.yaml"
    p.write_text(yaml.safe_dump(r))
    return load_recipe(p)


def random_log(n_users=60, n_items=40, seed=0):
    g = np.random.default_rng(seed)
    rows = [(f"user-{u}", f"item-{i:03d}", t) for u in range(n_users) for t, i in enumerate(g.integers(0, n_items, 6))]
    return pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])


def test_recommend_speaks_the_logs_ids_and_survives_save_load(tmp_path):
    log = random_log()
    est = SASRec(out=tmp_path / "runs", model={"hidden": 16, "layers": 1}, train={"max_steps": 3}).fit(log)
    model, run_dir = est.model_, est.run_dir_
    ids = set(log.item_id)
    assert model.item_ids == sorted(ids) and sum(model.item_counts) == len(log)
    top = model.recommend(["item-001", "item-002"], k=5)
    assert len(top) == 5 and set(top) <= ids and not {"item-001", "item-002"} & set(top)
    both = model.recommend([["item-001"], ["item-003", "item-004"]], k=3)
    assert len(both) == 2 and all(len(r) == 3 and set(r) <= ids for r in both)
    assert "item-001" in model.recommend(["item-001"], k=len(ids), exclude_seen=False)
    again = SASRecEncoder.load(run_dir / "model")
    assert again.recommend(["item-001", "item-002"], k=5) == top
    assert json.loads((run_dir / "model" / "items.json").read_text())["items"][0] == "item-000"
    torch.testing.assert_close(again.embed([["item-007", "item-001"]]), model.embed([["item-007", "item-001"]]))
    # internal ids are the sorted raw ids: item-00j is internal j + 1
    torch.testing.assert_close(model.embed([["item-005"]]), model.embed_internal([[6]]))
    with pytest.raises(UserError, match="item 'B00NOPE' is not one of the model's 40 items") as e:
        model.recommend(["item-001", "B00NOPE"], k=3)
    assert "unknown='skip'" in one_paragraph(e)
    assert model.recommend(["item-001", "B00NOPE"], k=3, unknown="skip") == model.recommend(["item-001"], k=3)
    # cold start: no known item -> the most popular items of the training log, most frequent first
    popular = log.item_id.value_counts()
    cold = model.recommend(["B00NOPE"], k=3, unknown="skip")
    assert [popular[c] for c in cold] == sorted(popular.values, reverse=True)[:3]
    mixed = model.recommend([["B00NOPE"], ["item-001"]], k=3, unknown="skip")
    assert mixed == [cold, model.recommend(["item-001"], k=3)]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["train_stats"] == {"log rows": 360, "k-core removed": 0, "users dropped": 0}


def test_the_estimated_memory_stops_a_log_that_does_not_fit(tmp_path):
    csv = tmp_path / "log.csv"
    random_log().to_csv(csv, index=False)
    recipe = tiny_recipe(tmp_path, {"interactions": str(csv), "memory_limit_gb": 0.001})
    from cl_domains.core.registry import method_spec

    with pytest.raises(UserError) as e:
        method_spec("seqrec", "sasrec").cls(recipe, None, torch.device("cpu"))
    text = one_paragraph(e)
    assert f"the interaction log {csv} (60 users, 40 items, 360 interactions) needs about 0.3" in text
    assert "more than the 0.00 GB available (data.memory_limit_gb)" in text and "Lower train.batch_size" in text
    task = method_spec("seqrec", "sasrec").cls(
        tiny_recipe(tmp_path, {"interactions": str(csv), "memory_limit_gb": 1.0}), None, torch.device("cpu")
    )
    assert task.memory_estimate()["peak"] < 1e9


def test_memory_estimate_by_hand():
    kw = dict(n_users=10, n_items=100, n_interactions=50, n_train=20, max_len=8, hidden=4, layers=1, heads=1, inner=8)
    parts = memory_estimate(**kw, batch_size=2, eval_batch_size=3)
    params = (100 + 2 + 8) * 4 + (4 * 16 + 2 * 4 * 8 + 40)
    assert parts["model"] == 16 * params
    assert parts["sequences"] == 8 * 50 + 16 * 20 + 24 * 10
    assert parts["train step"] == 12 * 2 * 100 + 2 * 5 * 1 * (40 + 16 + 2 * 5) * 4  # window = 50 / 10 = 5
    assert parts["eval block"] == 12 * 3 * 100
    assert parts["peak"] == parts["sequences"] + parts["model"] + parts["train step"] + RUNTIME_BYTES
    # a 1M-item table with its Adam state: 16 bytes x 64 dims per item
    big = memory_estimate(**{**kw, "n_items": 10**6, "hidden": 64}, batch_size=256, eval_batch_size=1024)
    assert big["model"] > 16 * 64 * 10**6 and big["eval block"] == 12 * 1024 * 10**6


def test_readme_example_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(readme_snippet("seqrec"), namespace)
    model = namespace["model"]
    top = model.recommend(["B003", "B010"], k=5)
    assert len(top) == 5 and all(t.startswith("B") and len(t) == 4 for t in top) and "B003" not in top
    assert (tmp_path / "runs").is_dir()


# ---------------------------------------------------------------- the shipped Beauty file as a log with string ids
@pytest.mark.integration
def test_beauty_as_a_string_id_log_trains_exactly_like_the_shipped_file(tmp_path, data_root):
    """examples/seqrec_beauty_to_csv.py (rows shuffled, the time column carrying the order), 5-core, trained on the
    quick recipe bounded to 40 steps: the same metrics, loss curve and baselines as the shipped file, and
    recommend answers in the log's string ids."""
    from cl_domains.core.recipe import load_recipe
    from cl_domains.core.train import train_recipe

    sys.path.insert(0, str(REPO / "examples"))
    from seqrec_beauty_to_csv import to_frame

    csv = tmp_path / "beauty.csv.gz"
    to_frame(data_root / "seqrec/Amazon_Beauty.txt.gz", shuffle_seed=0).to_csv(csv, index=False)
    sets = ["train.max_steps=40", "train.eval_every=20", "train.eval_before=false", "train.checkpoint_every=40"]
    shipped = train_recipe(
        load_recipe(REPO / "recipes/sasrec_beauty.yaml", "quick", sets), out=tmp_path / "a", data_root=data_root
    )
    log_sets = sets + ["data.sequences=null", f"data.interactions={csv}", "data.k_core=5"]
    ours = train_recipe(
        load_recipe(REPO / "recipes/sasrec_beauty.yaml", "quick", log_sets), out=tmp_path / "b", data_root=data_root
    )
    a, b = shipped.metrics, ours.metrics
    assert b["final"] == a["final"] and b["baselines"] == a["baselines"]
    assert b["history"]["loss"] == a["history"]["loss"]
    assert b["train_stats"] == {"log rows": 198502, "k-core removed": 0, "users dropped": 0}
    model = SASRecEncoder.load(ours.dir / "model")
    plain = SASRecEncoder.load(shipped.dir / "model")
    top = model.recommend(["B000000001", "B000000523"], k=10)
    assert all(t.startswith("B") and len(t) == 10 for t in top)
    assert [int(t[1:]) for t in top] == plain.recommend([1, 523], k=10).tolist()


def test_a_recipe_data_block_names_the_log_and_its_columns(tmp_path):
    from cl_domains.core.train import train_recipe

    log = random_log().rename(columns={"user_id": "visitor", "item_id": "product", "timestamp": "when"})
    log["when"] = pd.Timestamp("2024-01-01") + pd.to_timedelta(log["when"], unit="h")  # dates as time
    log = pd.concat([log, pd.DataFrame({"visitor": ["once"], "product": ["rare"], "when": [log["when"][0]]})])
    path = tmp_path / "shop.tsv"
    log.to_csv(path, sep="\t", index=False)
    data = {"interactions": str(path), "user": "visitor", "item": "product", "time": "when", "k_core": 2}
    run = train_recipe(tiny_recipe(tmp_path, data), out=tmp_path / "runs")
    assert run.metrics["train_stats"] == {"log rows": 361, "k-core removed": 1, "users dropped": 0}
    model = SASRecEncoder.load(run.dir / "model")
    assert model.n_items == 40 and "rare" not in model.item_ids and model.item_ids[0] == "item-000"
    assert set(model.recommend(["item-001"], k=3)) <= set(log["product"]) - {"rare", "item-001"}
