"""Train on the user's own interaction log from Python: ``fit_interactions(df) -> SASRecEncoder``."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import yaml

from ..core.errors import UserError
from ..core.recipe import load_recipe
from ..core.registry import method_spec
from ..core.train import pick_device, seed_everything, train_task
from .model import SASRecEncoder

__all__ = ["fit_interactions"]


def fit_interactions(
    log,
    *,
    user: str = "user_id",
    item: str = "item_id",
    time: str | None = "timestamp",
    k_core: int | None = None,
    method: str = "sasrec",
    max_steps: int | None = 500,
    out: str | Path = "runs",
    model: dict[str, Any] | None = None,
    train: dict[str, Any] | None = None,
    method_options: dict[str, Any] | None = None,
    eval: dict[str, Any] | None = None,
) -> SASRecEncoder:
    """Train ``method`` (sasrec, cl4srec, mclrec) on an interaction log and return the exported encoder, which
    takes and returns the log's own item ids (``model.recommend(["B00X...", ...], k=10)``).

    ``log``: a pandas DataFrame or a path (CSV/TSV/JSONL/parquet, RecBole ``.inter``) with the columns
    ``user``, ``item`` and ``time`` (``None``: row order is time order). The run (metrics, report, checkpoints,
    ``model/``) is written under ``out``; ``model``, ``train``, ``method_options`` and ``eval`` override the
    recipe sections (defaults: the Beauty recipes' model, batch 256, lr 1e-3, seed 2020, evaluation at the end)."""
    frame = None
    if isinstance(log, (str, Path)):
        source = str(Path(log).expanduser().resolve())
    elif hasattr(log, "columns"):
        frame, source = log, "<DataFrame>"
    else:
        raise UserError(f"fit_interactions: log must be a pandas DataFrame or a file path, not {type(log).__name__}.")
    recipe = {
        "name": f"{method}_interactions",
        "domain": "seqrec",
        "model": model or {},
        "data": {"interactions": source, "user": user, "item": item, "time": time, "k_core": k_core},
        "method": {"name": method, **(method_options or {})},
        "train": {
            "seed": 2020,
            "batch_size": 256,
            "lr": 1e-3,
            "schedule": "constant",
            "epochs": 200,
            "max_steps": max_steps,
            "eval_every": None,
            "checkpoint_every": 10**9,
            "eval_before": False,
            **(train or {}),
        },
        "eval": eval or {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{recipe['name']}.yaml"
        path.write_text(yaml.safe_dump(recipe, sort_keys=False))
        r = load_recipe(path)
    device = pick_device(r.train.device)
    seed_everything(r.train.seed)  # the encoder is initialised while the task is built
    task = method_spec("seqrec", method, "fit_interactions").cls(r, None, device, frame=frame)
    run = train_task(r, task, out=out, device=device)
    encoder = SASRecEncoder.load(run.dir / "model")
    encoder.run_dir = run.dir
    return encoder
