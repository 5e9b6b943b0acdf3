"""Your own recordings: a manifest (CSV or JSONL) + a folder of WAV files, the class order of the tasks,
and the errors of a bad manifest."""

import json
import os

import numpy as np
import pytest
import torch
from conftest import readme_snippet

from cl_domains.core.errors import UserError
from cl_domains.core.recipe import load_recipe
from cl_domains.core.rng import generator
from cl_domains.core.train import train_recipe
from cl_domains.slu import class_order, ordered_tasks, read_manifest
from cl_domains.slu.data import write_wav

CLASSES = ["lights_off", "lights_on", "music_off", "music_on"]
TONES = {"lights_off": 300.0, "lights_on": 600.0, "music_off": 1200.0, "music_on": 2400.0}
TINY = [
    "model.dim=16",
    "model.layers=1",
    "model.heads=2",
    "model.ff=32",
    "model.proj_dim=8",
    "train.batch_size=8",
    "train.epochs=1",
    "method.memory_size=4",
]


def make_commands(folder, per_class=(4, 2), fmt="csv"):
    """``folder/audio/<split>/<label>_<k>.wav`` (0.25 s tone of the class + noise) and the two manifests."""
    rng = np.random.default_rng(0)
    t = np.arange(4000) / 16000
    paths = {}
    for split, n in zip(("train", "test"), per_class, strict=False):
        (folder / "audio" / split).mkdir(parents=True, exist_ok=True)
        rows = []
        for label in CLASSES:
            for k in range(n):
                rel = f"audio/{split}/{label}_{k}.wav"
                write_wav(folder / rel, 0.5 * np.sin(2 * np.pi * TONES[label] * t) + 0.05 * rng.standard_normal(len(t)))
                rows.append(
                    {"path": rel, "label": label, "speaker": f"s{k % 2}", "transcript": label.replace("_", " ")}
                )
        paths[split] = folder / f"{split}.{fmt}"
        if fmt == "csv":
            lines = ["path,label,speaker,transcript", *(",".join(r.values()) for r in rows)]
            paths[split].write_text("\n".join(lines) + "\n")
        else:
            paths[split].write_text("".join(json.dumps(r) + "\n" for r in rows))
    return paths


def test_read_manifest_rows_classes_and_paths(tmp_path):
    paths = make_commands(tmp_path)
    train = read_manifest(paths["train"])
    assert len(train) == 16 and train.classes == CLASSES
    assert train.labels[:5] == [0, 0, 0, 0, 1] and train.speakers[:2] == ["s0", "s1"]
    assert train.texts[0] == "lights off" and train.audio[0] == tmp_path / "audio/train/lights_off_0.wav"
    assert train.lines[:2] == [2, 3]  # the header is line 1
    test = read_manifest(paths["test"], classes=train.classes)
    assert len(test) == 8 and test.labels == [0, 0, 1, 1, 2, 2, 3, 3]
    # JSONL, without the optional columns
    rows = [{"file": "audio/train/music_on_1.wav", "intent": "music_on"}]
    (tmp_path / "min.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    u = read_manifest(tmp_path / "min.jsonl", audio_column="file", label_column="intent")
    assert (u.labels, u.classes, u.speakers, u.texts, u.lines) == ([0], ["music_on"], [""], [""], [1])


def test_bad_manifests_are_one_clear_paragraph(tmp_path):
    paths = make_commands(tmp_path)
    text = paths["train"].read_text().splitlines()
    text[4] = "audio/train/gone.wav,lights_off,s1,lights off"
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join(text) + "\n")
    with pytest.raises(UserError) as err:
        read_manifest(bad)
    msg = str(err.value)
    assert "bad.csv, line 5: audio file" in msg and str(tmp_path / "audio/train/gone.wav") in msg
    assert "set data.audio_root" in msg and "\n" not in msg
    with pytest.raises(UserError, match=r"has no column 'lable' \(named by data.label_column\); did you mean 'label'"):
        read_manifest(paths["train"], label_column="lable")
    with pytest.raises(UserError, match=r"no column 'spk' \(named by data.speaker_column\)"):
        read_manifest(paths["train"], speaker_column="spk")  # a column named explicitly must exist
    other = tmp_path / "other.jsonl"
    other.write_text(json.dumps({"path": "audio/train/music_on_1.wav", "label": "play_jazz"}) + "\n")
    with pytest.raises(UserError, match=r"other.jsonl, line 1: label 'play_jazz' does not occur in the training"):
        read_manifest(other, classes=CLASSES)
    # through the recipe: the error names the manifest, not a traceback, and no run folder is left behind
    recipe = load_recipe("coconut_manifest", None, [f"data.train={bad}", f"data.test={paths['test']}", *TINY])
    with pytest.raises(UserError, match="bad.csv, line 5"):
        train_recipe(recipe, out=tmp_path / "runs")
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_class_order_explicit_seeded_and_dataset():
    assert class_order(CLASSES, "dataset") == [0, 1, 2, 3]
    assert class_order(CLASSES, ["music_on", "lights_off", "music_off", "lights_on"]) == [3, 0, 2, 1]
    seeded = class_order(CLASSES, "seeded", seed=0)
    assert seeded == class_order(CLASSES, "seeded", seed=0) and sorted(seeded) == [0, 1, 2, 3]
    many = {tuple(class_order([str(i) for i in range(10)], "seeded", seed=s)) for s in range(5)}
    assert len(many) == 5  # each class_order_seed its own order
    rng = generator(0, "class_order")
    assert seeded == torch.randperm(4, generator=rng).tolist()  # drawn from core.rng, tag "class_order"
    assert ordered_tasks(CLASSES, 2, order=["music_on", "lights_off", "music_off", "lights_on"]) == [[3, 0], [2, 1]]
    assert ordered_tasks(CLASSES, None, [1, 3], "dataset") == [[0], [1, 2, 3]]
    with pytest.raises(UserError, match=r"unknown 'jazz'; missing 'music_on'; repeated 'lights_on'"):
        class_order(CLASSES, ["lights_off", "lights_on", "lights_on", "music_off", "jazz"])


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_tiny_run_from_a_manifest(tmp_path, fmt):
    paths = make_commands(tmp_path / "cmds", fmt=fmt)
    order = ["music_on", "lights_off", "music_off", "lights_on"]
    base = [f"data.train={paths['train']}", f"data.test={paths['test']}", f"data.cache_dir={tmp_path / 'cache'}"]
    recipe = load_recipe("coconut_manifest", None, [*base, *TINY, f"method.class_order={json.dumps(order)}"])
    run = train_recipe(recipe, out=tmp_path / "runs")
    m = run.metrics
    assert m["tasks"] == [["music_on", "lights_off"], ["music_off", "lights_on"]]  # explicit order honoured
    assert m["data"]["train_utterances"] == 16 and m["data"]["test_utterances"] == 8
    assert m["test_counts"] == [4, 4]
    for s in ("joint", "coconut", "replay", "finetune"):
        assert 0 <= m["final"][f"{s}/avg_acc"] <= 100 and 0 <= m["final"][f"{s}/last_acc"] <= 100
        assert np.array(m["runs"][s][0]["acc_matrix"]).shape == (2, 2)
    assert "| coconut |" in (run.dir / "report.md").read_text()
    # the default order is seeded and reproducible: two runs agree, and match class_order(seed 0)
    runs = [train_recipe(load_recipe("coconut_manifest", None, [*base, *TINY]), out=tmp_path / "r2") for _ in range(2)]
    expect = [CLASSES[i] for i in class_order(CLASSES, "seeded", 0)]
    assert runs[0].metrics["tasks"] == runs[1].metrics["tasks"] == [expect[:2], expect[2:]]
    assert runs[0].metrics["final"] == runs[1].metrics["final"]


def test_readme_example_runs(tmp_path, monkeypatch):
    make_commands(tmp_path / "my_commands")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # the feature cache
    code = readme_snippet("slu", "python")
    assert len(code.strip().splitlines()) <= 10
    namespace: dict = {}
    exec(compile(code, "README.md (slu)", "exec"), namespace)
    est = namespace["est"]
    assert est.tasks_ == [[1, 0], [3, 2]]  # lights_on, lights_off | music_on, music_off
    assert set(est.metrics_) == {"coconut/avg_acc", "coconut/last_acc", "coconut/forgetting"}
    assert os.path.isdir(tmp_path / "runs") and os.path.isfile(tmp_path / "my_slu_model" / "cl_domains.json")


def test_cli_missing_audio_is_exit_code_2(tmp_path, capsys):
    from cl_domains.cli import main

    paths = make_commands(tmp_path)
    (tmp_path / "audio/test/music_on_1.wav").unlink()
    args = ["run", "coconut_manifest", "--out", str(tmp_path / "runs")]
    code = main([*args, "--set", f"data.train={paths['train']}", "--set", f"data.test={paths['test']}"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert "test.csv, line 9: audio file" in err and "music_on_1.wav does not exist" in err
    assert not (tmp_path / "runs").exists()
