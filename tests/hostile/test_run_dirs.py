"""Run directories are untrusted input: state files are validated, only regular files are opened, nothing is
deleted through a link or outside the run directory, and one run directory is trained by one process at a time."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from harness import REPO, assert_clean_exit, run_cli, tree_digest
from toy_task import StopAfter
from toyruns import resume_copy

from cl_domains.core.errors import UserError
from cl_domains.core.recipe import load_recipe
from cl_domains.core.train import train_recipe

DATA = Path(os.environ.get("CL_DOMAINS_DATA", REPO.parent / "shared" / "data"))
TINY = [
    "train.max_steps=8",
    "train.checkpoint_every=2",
    "train.keep_checkpoints=2",
    "train.eval_every=null",
    "train.eval_before=false",
    "train.baselines=false",
]


@pytest.fixture(scope="module")
def cut_run(tmp_path_factory) -> Path:
    """A real run (supremix_airfoil, 8 steps) interrupted after step 5: checkpoints step-2 and step-4."""
    if not (DATA / "regression").is_dir():
        pytest.skip(f"no data at {DATA}")
    out = tmp_path_factory.mktemp("cut")
    with pytest.raises(KeyboardInterrupt):
        train_recipe(load_recipe("supremix_airfoil", "tiny", TINY), out=out, data_root=DATA, callbacks=[StopAfter(5)])
    (run,) = [p for p in out.iterdir() if p.is_dir()]
    assert sorted(p.name for p in (run / "checkpoints").glob("step-*")) == ["step-0000002", "step-0000004"]
    return run


@pytest.fixture
def run_dir(cut_run, tmp_path) -> Path:
    """A fresh copy of the interrupted run for one test."""
    return Path(shutil.copytree(cut_run, tmp_path / "run", symlinks=True))


def resume(run_dir: Path):
    return train_recipe(resume=run_dir, data_root=DATA)


def set_state(ckpt: Path, **state) -> None:
    f = ckpt / "trainer.json"
    info = json.loads(f.read_text())
    info["state"].update(state)
    f.write_text(json.dumps(info))


def test_symlinked_checkpoints_folder_is_never_pruned_or_read_through(run_dir, tmp_path):
    outside = tmp_path / "elsewhere"
    shutil.move(run_dir / "checkpoints", outside)  # the real checkpoints, plus a folder of someone else's
    (outside / "step-0000001").mkdir()
    (outside / "step-0000001" / "precious.txt").write_text("not the run's")
    (run_dir / "checkpoints").symlink_to(outside)
    before = tree_digest(outside)
    with pytest.raises(UserError, match="checkpoints"):
        resume(run_dir)
    assert tree_digest(outside) == before
    assert (outside / "step-0000001" / "precious.txt").is_file()


def test_fifo_trainer_json_does_not_hang(run_dir):
    newest = run_dir / "checkpoints" / "step-0000004" / "trainer.json"
    newest.unlink()
    os.mkfifo(newest)
    (newest.parent / "trainer.pt").unlink()  # else the checkpoint is taken for an older format before trainer.json
    t = time.monotonic()
    result = run_cli("run", "--resume", run_dir, "--data-root", DATA, wall=30)
    assert time.monotonic() - t < 29
    assert_clean_exit(result, codes=(0,), contains="step-0000004")
    assert "FIFO" in result.output and json.loads((run_dir / "metrics.json").read_text())["steps"] == 8


@pytest.mark.parametrize("step", ["abc", -1_000_000, 10**18, 3.5, True, None])
def test_bad_step_in_trainer_json_is_skipped_like_a_damaged_checkpoint(toy_run, tmp_path, step, capsys):
    result, _ = resume_copy(
        toy_run, tmp_path / "run", lambda d: set_state(d / "checkpoints" / "step-0000006", step=step)
    )
    assert result["steps"] == 12 and "final" in result
    log = capsys.readouterr().err
    assert "step-0000006 is unusable" in log and "resumed from step-0000004" in log


def test_no_valid_checkpoint_is_a_user_error_naming_the_files(toy_run, tmp_path):
    def damage(d):
        for ckpt in ("step-0000004", "step-0000006"):
            set_state(d / "checkpoints" / ckpt, step=10**18)

    result, _ = resume_copy(toy_run, tmp_path / "run", damage)
    assert isinstance(result, UserError)
    assert re.search("step-0000006.*step.*step-0000004", str(result))


def test_run_json_not_json_is_said_and_the_run_resumes(run_dir, capsys):
    (run_dir / "run.json").write_text("{not json")
    run = resume(run_dir)
    assert run.metrics["steps"] == 8
    assert "run.json" in capsys.readouterr().err


def test_concurrent_resume_second_exits_2_naming_the_holder(run_dir):
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
    # the first resume trains long enough to be caught holding the run directory
    cfg = run_dir / "config.yaml"
    cfg.write_text(cfg.read_text().replace("max_steps: 8", "max_steps: 1000000").replace("epochs: 5", "epochs: 10000"))
    first = subprocess.Popen(
        [sys.executable, "-m", "cl_domains.cli", "run", "--resume", str(run_dir), "--data-root", str(DATA)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO,
    )
    try:
        deadline = time.time() + 60
        while "resumed from" not in (run_dir / "train.log").read_text():
            assert first.poll() is None, first.communicate()
            assert time.time() < deadline, "the first resume did not start in 60 s"
            time.sleep(0.2)
        t = time.monotonic()
        second = run_cli("run", "--resume", run_dir, "--data-root", DATA, wall=60)
        assert time.monotonic() - t < 30
        assert_clean_exit(second, codes=(2,), contains=f"pid {first.pid}")
        assert first.poll() is None  # the holder was not disturbed
    finally:
        first.send_signal(signal.SIGINT)
        try:
            first.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            first.kill()
            first.communicate()
