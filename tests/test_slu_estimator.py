"""The slu estimators: fit == cl-domains run for the same recipe and seed (through the same study), in-memory
tasks of (audio, label), a DataFrame manifest, evaluate on test data, and the one-model rule."""

import json

import numpy as np
import pandas as pd
import pytest
from conformance.slu import TINY
from test_slu_manifest import CLASSES, make_commands

import cl_domains
from cl_domains.cli import main
from cl_domains.core.errors import UserError
from cl_domains.slu import COCONUT, ExperienceReplay, read_wav


@pytest.fixture
def cmds(tmp_path):
    return make_commands(tmp_path / "cmds")


def _sets(section: str, d: dict) -> list[str]:
    return [f"{section}.{k}={json.dumps(v)}" for k, v in d.items()]


def test_fit_equals_cli_run_of_the_same_recipe_and_seed(tmp_path, cmds):
    cache = str(tmp_path / "cache")
    est = COCONUT(recipe="coconut_manifest", profile="tiny", out=tmp_path / "py", data={"cache_dir": cache},
                  train={"seed": 2}, model=TINY["model"])  # fmt: skip
    est.fit(str(cmds["train"]), test=str(cmds["test"]))
    sets = [*_sets("model", TINY["model"]), "train.seed=2", f"data.cache_dir={cache}"]
    sets += [f"data.train={cmds['train']}", f"data.test={cmds['test']}"]
    args = ["run", "coconut_manifest", "--profile", "tiny", "--out", str(tmp_path / "cli")]
    assert main([*args, *[a for s in sets for a in ("--set", s)]]) == 0
    (run_dir,) = (tmp_path / "cli").iterdir()
    cli = json.loads((run_dir / "metrics.json").read_text())
    assert est.metrics_ == cli["final"] and set(est.metrics_) == {
        "coconut/avg_acc",
        "coconut/last_acc",
        "coconut/forgetting",
    }
    assert (est.run_dir_ / "strategies" / "coconut-seed2" / "result.json").is_file()
    # the model after each task, scored again on the test manifest, gives the study's numbers
    assert est.evaluate(cmds["test"]) == pytest.approx(est.metrics_)
    again = cl_domains.load(est.save(tmp_path / "m"))
    assert again.evaluate(cmds["test"]) == pytest.approx(est.metrics_)
    # the run's model folder is the same model, loadable the same way
    waves = [str(tmp_path / "cmds" / "audio" / "test" / f"{c}_1.wav") for c in CLASSES]
    run_model = cl_domains.load(run_dir / "strategies" / "coconut-seed2" / "model")
    assert type(run_model) is COCONUT and np.array_equal(run_model.embed(waves), est.embed(waves))
    assert run_model.predict(waves) == est.predict(waves)
    # cl-domains embed reads a manifest with or without labels
    (tmp_path / "cmds" / "to_embed.csv").write_text("path\n" + "".join(f"audio/test/{c}_1.wav\n" for c in CLASSES))
    out = tmp_path / "z.parquet"
    assert (
        main(["embed", str(tmp_path / "m"), "--data", str(tmp_path / "cmds" / "to_embed.csv"), "--out", str(out)]) == 0
    )
    z = pd.read_parquet(out)
    assert z["id"].tolist() == [f"audio/test/{c}_1.wav" for c in CLASSES]
    assert np.array_equal(z.drop(columns="id").to_numpy(), est.embed(waves))


def test_in_memory_tasks_and_a_dataframe_manifest(tmp_path, cmds):
    folder = tmp_path / "cmds"
    train = pd.read_csv(cmds["train"])
    wave = {row.path: read_wav(folder / row.path) for row in train.itertuples()}
    # two tasks given as lists of (waveform, label): the task split and class order follow them
    tasks = [
        [(wave[r.path], r.label) for r in train.itertuples() if r.label.startswith(p)] for p in ("music", "lights")
    ]
    test = [(str(folder / p), y) for p, y in pd.read_csv(cmds["test"])[["path", "label"]].itertuples(index=False)]
    est = ExperienceReplay(**TINY).fit(tasks, test)
    assert est.tasks_ == [[2, 3], [0, 1]] and est.recipe_.method.class_order == [
        "music_off",
        "music_on",
        "lights_off",
        "lights_on",
    ]
    assert set(est.metrics_) == {"replay/avg_acc", "replay/last_acc", "replay/forgetting"}
    assert set(est.predict([w for w, _ in tasks[0]])) <= set(CLASSES)
    assert est.evaluate(test) == pytest.approx(est.metrics_)
    beside = ExperienceReplay(**TINY).fit(tasks, str(cmds["test"]))  # the same test split as a manifest
    assert beside.metrics_ == est.metrics_
    # a manifest as a DataFrame, paths relative to data.audio_root
    frame = ExperienceReplay(data={"audio_root": str(folder)}, **TINY).fit(train, pd.read_csv(cmds["test"]))
    assert frame.embed([str(folder / train.path[0])]).shape == (1, TINY["model"]["dim"])


def test_bad_calls_are_user_errors(cmds):
    with pytest.raises(UserError, match=r"give the evaluation data too"):
        COCONUT(**TINY).fit(str(cmds["train"]))
    with pytest.raises(UserError, match=r"trains one model: method.strategies must be \['coconut'\]"):
        COCONUT(**{**TINY, "method": {"strategies": ["coconut", "replay"]}}).fit(str(cmds["train"]), str(cmds["test"]))
    with pytest.raises(UserError, match=r"a class appears in two tasks"):
        COCONUT(**TINY).fit([[(np.zeros(800), "a")], [(np.zeros(800), "a")]], [(np.zeros(800), "a")])
    with pytest.raises(UserError, match=r"'epochs' is not accepted; write train=\{'epochs': E\}"):
        COCONUT(epochs=3)
