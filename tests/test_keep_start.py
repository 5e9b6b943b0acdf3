"""Step 0 is a candidate: a run whose training only hurts dev hands back the starting model and says so; a run
whose training helps hands back the trained one. One case per domain, on each domain's tiny profile."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import write_recipe

from cl_domains.core.recipe import load_recipe
from cl_domains.core.train import KEPT_START, Trainer, train_recipe

RECIPES = Path(__file__).resolve().parents[1] / "recipes"
CASES = {  # domain -> (recipe, overrides): the tiny profile, with a dev split to select on
    "timeseries": ("ts2vec_ett", []),
    "hetgraph": ("meow_acm", []),
    "seqrec": ("sasrec_beauty", []),
    "regression": ("supremix_airfoil", ["train.epochs=1"]),
}


def _weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.fixture
def dev_trend(monkeypatch):
    """Make every dev evaluation after step 0 look worse (``"hurts"``) or better (``"helps"``) than the start by a
    margin no real change can cross, and record the weights at step 0 and at the end of the last trainer."""
    seen: dict = {"trend": "hurts"}
    evaluate, finish = Trainer._evaluate, Trainer._finish

    def tilted(self, split):
        metrics = evaluate(self, split)
        if split == "dev" and self.select in metrics:
            if self.state.step == 0:
                seen["start"] = _weights(self.task.model)
            worse = -1.0 if self.cfg.select_mode == "max" else 1.0
            sign = 1.0 if seen["trend"] == "hurts" else -1.0
            metrics = {**metrics, self.select: metrics[self.select] + sign * worse * 1e6 * self.state.step}
        return metrics

    def finished(self):
        out = finish(self)
        seen["end"], seen["run"] = _weights(self.task.model), self.run
        return out

    monkeypatch.setattr(Trainer, "_evaluate", tilted)
    monkeypatch.setattr(Trainer, "_finish", finished)
    return seen


def _check(seen: dict, kept: bool) -> None:
    start, end, run = seen["start"], seen["end"], seen["run"]
    same = all(torch.equal(start[k], end[k]) for k in start)
    assert same is kept
    metrics = json.loads((run.dir / "metrics.json").read_text())
    assert bool(metrics.get("kept_start")) is kept
    assert (KEPT_START in (run.dir / "report.md").read_text()) is kept
    card = run.dir / "model" / "README.md"
    if card.is_file():
        assert ("starting model was kept" in card.read_text()) is kept


@pytest.mark.parametrize("domain", sorted(CASES))
def test_training_that_only_hurts_dev_returns_the_starting_model(domain, dev_trend, data_root, tmp_path):
    name, overrides = CASES[domain]
    recipe = load_recipe(RECIPES / f"{name}.yaml", profile="tiny", overrides=["train.baselines=false", *overrides])
    train_recipe(recipe, out=tmp_path, data_root=data_root)
    _check(dev_trend, kept=True)


@pytest.mark.parametrize("trend", ["hurts", "helps"])
def test_sentences_keep_the_start_only_when_training_does_not_help(
    trend, dev_trend, tmp_path, tiny_backbone, tiny_data
):
    dev_trend["trend"] = trend
    recipe = load_recipe(write_recipe(tmp_path / "r.yaml", tiny_backbone, tiny_data))
    train_recipe(recipe, out=tmp_path / "runs")
    _check(dev_trend, kept=trend == "hurts")


def test_keep_start_false_never_keeps_the_start(dev_trend, tmp_path, tiny_backbone, tiny_data):
    recipe = load_recipe(
        write_recipe(tmp_path / "r.yaml", tiny_backbone, tiny_data), overrides=["train.keep_start=false"]
    )
    train_recipe(recipe, out=tmp_path / "runs")
    assert "start" not in dev_trend  # step 0 is not scored
    assert not json.loads((dev_trend["run"].dir / "metrics.json").read_text()).get("kept_start")


def test_slu_studies_never_keep_the_start(dev_trend, data_root, tmp_path):
    """A class-incremental learner starts knowing no class, so its starting model is no candidate there."""
    recipe = load_recipe(RECIPES / "coconut_fsc.yaml", profile="tiny")
    train_recipe(recipe, out=tmp_path, data_root=data_root)
    assert "start" not in dev_trend  # step 0 was not scored
    assert not dev_trend["run"].metrics.get("kept_start")
