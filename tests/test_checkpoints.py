"""Checkpoints hold no code: weights as safetensors, optimiser state loaded with ``weights_only=True``,
loop state as JSON; the last K are kept and resume falls back to the newest intact one."""

import json
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from toy_task import StopAfter, ToyTask, recipe

from cl_domains.core.errors import UserError
from cl_domains.core.runs import Run
from cl_domains.core.train import train_recipe, train_task

REPO = Path(__file__).resolve().parents[1]


class Payload:
    """Unpickling this creates ``path``: proof that code ran."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def cut_run(tmp_path, at=7, **train):
    with pytest.raises(KeyboardInterrupt):
        train_task(recipe(**train), ToyTask(8), out=tmp_path / "cut", callbacks=[StopAfter(at)])
    return Run.latest_created


def resume(run_dir, **train):
    return train_task(recipe(**train), ToyTask(8), run=Run(run_dir))


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    return train_task(recipe(), ToyTask(8), out=tmp_path_factory.mktemp("full")).metrics


def test_keeps_the_last_k_checkpoints(tmp_path):
    d = cut_run(tmp_path, at=9, keep_checkpoints=3)
    assert sorted(p.name for p in (d / "checkpoints").iterdir()) == [
        "latest",
        "step-0000004",
        "step-0000006",
        "step-0000008",
    ]
    assert (d / "checkpoints/step-0000008/trainer.json").is_file()


@pytest.mark.parametrize("damage", ["truncate_model", "truncate_trainer", "empty_json", "missing_folder"])
def test_damaged_newest_checkpoint_resumes_from_the_previous_one(tmp_path, full, damage, capsys):
    d = cut_run(tmp_path)  # checkpoints at steps 4 and 6
    newest = d / "checkpoints/step-0000006"
    if damage == "missing_folder":
        import shutil

        shutil.rmtree(newest)
    else:
        name = {"truncate_model": "model.safetensors", "truncate_trainer": "trainer.pt", "empty_json": "trainer.json"}[
            damage
        ]
        f = newest / name
        f.write_bytes(f.read_bytes()[: len(f.read_bytes()) // 2] if damage != "empty_json" else b"")
    metrics = resume(d).metrics
    assert metrics["final"] == full["final"] and metrics["history"] == full["history"]
    log = (d / "train.log").read_text()
    assert "resumed from step-0000004" in log
    if damage != "missing_folder":
        assert "step-0000006 is unusable" in log


def test_malicious_pickle_in_a_checkpoint_does_not_run(tmp_path):
    d = cut_run(tmp_path, at=5, keep_checkpoints=1)  # one checkpoint only: nothing to fall back to
    marker = tmp_path / "pwned"
    torch.save({"optimizer": Payload(marker)}, d / "checkpoints/step-0000004/trainer.pt")
    with pytest.raises(UserError, match="no intact checkpoint.*step-0000004"):
        resume(d, keep_checkpoints=1)
    assert not marker.exists()
    with open(d / "checkpoints/step-0000004/trainer.pt", "wb") as f:  # a bare pickle, not a torch zip
        pickle.dump(Payload(marker), f)
    with pytest.raises(UserError, match="no intact checkpoint"):
        resume(d, keep_checkpoints=1)
    assert not marker.exists()


def test_latest_pointer_cannot_leave_the_run(tmp_path, full):
    d = cut_run(tmp_path)
    outside = tmp_path / "elsewhere"
    (outside / "step-0000011").mkdir(parents=True)
    for hint in (str(outside / "step-0000011"), "../../elsewhere/step-0000011"):
        (d / "checkpoints/latest").write_text(hint)
    metrics = resume(d).metrics  # the pointer is a hint: only checkpoints/step-N folders are read
    assert metrics["final"] == full["final"]
    assert "resumed from step-0000006" in (d / "train.log").read_text()


def test_resuming_a_finished_run_changes_nothing(tmp_path, capsys):
    run = train_task(recipe(), ToyTask(8), out=tmp_path)
    before = {p: p.read_bytes() for p in run.dir.rglob("*") if p.is_file()}
    again = train_task(recipe(), ToyTask(8), run=Run(run.dir))
    assert again.dir == run.dir
    assert "is finished" in capsys.readouterr().err
    assert {p: p.read_bytes() for p in run.dir.rglob("*") if p.is_file()} == before
    assert len(json.loads((run.dir / "metrics.json").read_text())["history"]["dev"]) == 2  # step 0 and the end


def test_out_pointing_at_a_file_is_refused_before_the_data_loads(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(UserError, match="is a file"):
        train_recipe(recipe(), out=f / "sub")


def test_no_unsafe_deserialisation_in_the_package():
    found = subprocess.run(
        ["grep", "-rnE", r"weights_only=False|pickle\.load|allow_pickle=True", "cl_domains"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    # the one full unpickle: a user's own graph file, only behind the explicit data.trust_pickle opt-in
    opt_in = "cl_domains/hetgraph/data.py:" + str(
        next(
            i
            for i, line in enumerate((REPO / "cl_domains/hetgraph/data.py").read_text().splitlines(), 1)
            if "weights_only=False" in line
        )
    )
    lines = found.splitlines()
    assert [x.split(":", 2)[0] + ":" + x.split(":", 2)[1] for x in lines] == [opt_in]
    src = (REPO / "cl_domains/hetgraph/data.py").read_text().splitlines()
    assert "if trust_pickle:" in src[int(opt_in.rsplit(":", 1)[1]) - 2]
    assert sys.version_info >= (3, 10)


def test_malicious_pickle_in_the_slu_feature_cache_does_not_run(tmp_path):
    import wave

    import numpy as np

    from cl_domains.slu.features import features_for

    wav = tmp_path / "a.wav"
    with wave.open(str(wav), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(16000)
        w.writeframes((np.sin(np.arange(3200) / 5) * 3000).astype(np.int16).tobytes())
    first = features_for([wav], tmp_path / "cache", log=lambda *_: None)
    (cache,) = (tmp_path / "cache").iterdir()
    assert cache.suffix == ".safetensors"
    assert torch.equal(features_for([wav], tmp_path / "cache")[0], first[0])  # read back from the cache
    marker = tmp_path / "pwned"
    torch.save([Payload(marker)], cache)
    with pytest.raises(UserError, match="feature cache .* is damaged.*delete it"):
        features_for([wav], tmp_path / "cache")
    assert not marker.exists()
