"""The shared training loop on a tiny model: resume equals an uninterrupted run, NaN guard, outputs."""

import json

import pytest
import torch
from conftest import write_recipe
from safetensors.torch import load_file
from toy_task import StopAfter

from cl_domains.core.errors import TrainingDiverged
from cl_domains.core.recipe import load_recipe
from cl_domains.core.train import train_recipe


def only_run(parent):
    (d,) = [p for p in parent.iterdir() if p.is_dir()]
    return d


@pytest.mark.parametrize(
    "method",
    [
        {"name": "simcse"},
        {"name": "debcse", "neighbours": 2, "positive_threshold": 0.0, "false_negative_threshold": 1.0},
    ],
)
def test_resume_after_interruption_gives_the_same_result(tmp_path, tiny_backbone, tiny_data, method):
    recipe = load_recipe(write_recipe(tmp_path / "r.yaml", tiny_backbone, tiny_data, method))
    full = train_recipe(recipe, out=tmp_path / "full")
    with pytest.raises(KeyboardInterrupt):
        train_recipe(recipe, out=tmp_path / "cut", callbacks=[StopAfter(5)])  # dies after step 5, last checkpoint at 4
    cut = only_run(tmp_path / "cut")
    assert not (cut / "metrics.json").exists()
    assert (cut / "checkpoints" / "latest").read_text() == "step-0000004"
    resumed = train_recipe(resume=cut)

    a, b = full.metrics, resumed.metrics
    assert a["final"] == b["final"] and a["history"]["loss"] == b["history"]["loss"]
    assert a["history"]["dev"] == b["history"]["dev"] and a["steps"] == b["steps"] == 8
    wa, wb = load_file(full.dir / "model" / "model.safetensors"), load_file(cut / "model" / "model.safetensors")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    # the loss actually moved: a resume bug that reloads the start weights would not match `full`
    assert a["history"]["loss"][0][1] != a["history"]["loss"][-1][1]


def test_run_outputs(tmp_path, tiny_backbone, tiny_data):
    run = train_recipe(load_recipe(write_recipe(tmp_path / "r.yaml", tiny_backbone, tiny_data)), out=tmp_path)
    files = {p.name for p in run.dir.iterdir()}
    assert {
        "config.yaml",
        "metrics.json",
        "train.log",
        "curves.png",
        "report.md",
        "model",
        "best",
        "checkpoints",
    } <= files
    m = json.loads((run.dir / "metrics.json").read_text())
    assert set(m["final"]) == {"stsb_test"} and set(m["before"]) == {"stsb_test"}
    # step 0 (the starting model) is scored and is a candidate beside the trained checkpoints
    assert m["best_step"] in (0, 4, 8) and [s for s, _ in m["history"]["dev"]] == [0, 4, 8]
    assert "| stsb_test |" in (run.dir / "report.md").read_text()
    # the saved config reloads to the same recipe
    again = load_recipe(run.dir / "config.yaml")
    assert again.train == load_recipe(tmp_path / "r.yaml").train
    assert (run.dir / "curves.png").read_bytes()[:4] == b"\x89PNG"
    # the exported model is a model directory: manifest and card with the run's metrics and baselines
    manifest = json.loads((run.dir / "model" / "cl_domains.json").read_text())
    assert (manifest["domain"], manifest["method"], manifest["seed"]) == ("sentences", "simcse", 3)
    assert manifest["metrics"] == m["final"] and manifest["paper"] == {"stsb_test": 50.0}
    assert set(manifest["baselines"]) == set(m["baselines"]) and "model.safetensors" in manifest["files"]
    card = (run.dir / "model" / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: cl-domains") and "| stsb_test |" in card


def test_seeded_runs_are_identical(tmp_path, tiny_backbone, tiny_data):
    r = load_recipe(write_recipe(tmp_path / "r.yaml", tiny_backbone, tiny_data, max_steps=3, eval_every=None))
    a = train_recipe(r, out=tmp_path / "a").metrics
    b = train_recipe(r, out=tmp_path / "b").metrics
    assert a["history"]["loss"] == b["history"]["loss"] and a["final"] == b["final"]


def test_nan_loss_stops_with_a_diagnosis(tmp_path, tiny_backbone, tiny_data, monkeypatch):
    from cl_domains.sentences.simcse import SimCSETask as SimCSE

    real = SimCSE.loss
    calls = {"n": 0}

    def flaky(self, batch, ctx):
        calls["n"] += 1
        out = real(self, batch, ctx)
        return out * float("nan") if calls["n"] == 3 else out

    monkeypatch.setattr(SimCSE, "loss", flaky)
    recipe = load_recipe(write_recipe(tmp_path / "r.yaml", tiny_backbone, tiny_data))
    with pytest.raises(TrainingDiverged, match=r"loss became nan at step 3.*learning rate") as err:
        train_recipe(recipe, out=tmp_path)
    assert "Recent losses" in str(err.value)
    run = only_run(tmp_path)
    assert (run / "checkpoints" / "latest").read_text() == "step-0000002"  # the last good state is kept


def test_recipe_thread_count_does_not_outlive_the_run(tmp_path, tiny_backbone, tiny_data):
    before = torch.get_num_threads()
    target = 1 if before != 1 else 2
    p = write_recipe(
        tmp_path / "r.yaml", tiny_backbone, tiny_data, max_steps=1, eval_every=None, threads=target, eval_before=False
    )
    train_recipe(load_recipe(p), out=tmp_path / "runs")
    assert torch.get_num_threads() == before


def test_rank_seeds_do_not_collide_with_other_seeds():
    """Process r > 0 of seed s must not replay another seed's stream (seed + 1000 * rank gave seed 0 on rank 1 the
    stream of seed 1000 on rank 0)."""
    from cl_domains.core.train import rank_seed

    assert rank_seed(0, 1) != 1000
    seeds = {rank_seed(s, r) for s in range(50) for r in range(1, 5)}
    assert len(seeds) == 200 and not seeds & set(range(5000))
    assert rank_seed(0, 1, step=10) != rank_seed(0, 1)
