"""A toy run directory to damage, and resuming a damaged copy in this process (milliseconds per case)."""

from __future__ import annotations

import shutil
from pathlib import Path

from toy_task import StopAfter, ToyTask, recipe

from cl_domains.core.errors import UserError
from cl_domains.core.runs import Run
from cl_domains.core.train import train_task


def make_toy_run(out: Path) -> Path:
    """A toy run (12 steps, 2 checkpoints kept) interrupted after step 7: checkpoints at steps 4 and 6."""
    try:
        train_task(recipe(keep_checkpoints=2), ToyTask(8), out=out, callbacks=[StopAfter(7)])
    except KeyboardInterrupt:
        return Run.latest_created
    raise AssertionError("the toy run was not interrupted")


def resume_copy(toy_run: Path, where: Path, damage) -> tuple[object, Path]:
    """Copy the toy run, ``damage(run_dir)``, resume it: (its metrics or the UserError, the run dir)."""
    run_dir = Path(shutil.copytree(toy_run, where, symlinks=True))
    damage(run_dir)
    try:
        return train_task(recipe(keep_checkpoints=2), ToyTask(8), run=Run(run_dir)).metrics, run_dir
    except UserError as exc:
        return exc, run_dir
