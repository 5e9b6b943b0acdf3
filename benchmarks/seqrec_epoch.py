"""Training time of one epoch of SASRec and of MCLRec (and CL4SRec) on Amazon Beauty, paper settings.

    python benchmarks/seqrec_epoch.py [--steps N] [--threads 2] [--out benchmarks/results/seqrec_epoch.md]

Each method trains through the shared loop (``train_recipe``, no evaluation, no checkpoints) for
``--steps`` batches of 256 (default: a full epoch, 514 batches); the table gives seconds per step,
the epoch time (measured, or extrapolated from the steps when ``--steps`` is smaller) and the ratio
to SASRec measured in the same run. The machine's load average is recorded: timings on a shared
machine are upper bounds.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
import time
from pathlib import Path

from cl_domains.core.recipe import load_recipe
from cl_domains.core.train import train_recipe

RECIPES = {
    "sasrec": "recipes/sasrec_beauty.yaml",
    "cl4srec": "recipes/cl4srec_beauty.yaml",
    "mclrec": "recipes/mclrec_beauty.yaml",
}


def time_method(recipe_path: str, steps: int | None, threads: int, data_root: str | None) -> tuple[int, float, int]:
    overrides = [
        f"train.threads={threads}",
        "train.eval_every=null",
        "train.eval_before=false",
        "train.checkpoint_every=1000000",
        "train.epochs=1",
        "train.patience=null",
    ]
    if steps:
        overrides.append(f"train.max_steps={steps}")
    recipe = load_recipe(recipe_path, "paper", overrides)
    with tempfile.TemporaryDirectory() as out:
        run = train_recipe(recipe, out=out, data_root=data_root)
        m = json.loads((run.dir / "metrics.json").read_text())
    n_train = 198502 - 3 * 22363
    return m["steps"], m["train_seconds"], math.ceil(n_train / recipe.train.batch_size)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=None, help="batches per method (default: one full epoch)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--methods", default="sasrec,mclrec")
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--out", default="benchmarks/results/seqrec_epoch.md")
    args = ap.parse_args()
    load = os.getloadavg()
    rows, base = [], None
    for name in args.methods.split(","):
        steps, seconds, per_epoch = time_method(RECIPES[name], args.steps, args.threads, args.data_root)
        per_step = seconds / steps
        base = base or per_step
        rows.append(
            f"| {name} | {steps} | {seconds:.1f} | {per_step:.3f} | {per_step * per_epoch / 60:.2f} "
            f"| {per_step / base:.2f}x |"
        )
    text = "\n".join(
        [
            "# One training epoch on Amazon Beauty (paper settings: batch 256, max length 50, 514 batches)",
            "",
            f"`python benchmarks/seqrec_epoch.py{' --steps ' + str(args.steps) if args.steps else ''} --threads {args.threads} "
            f"--methods {args.methods}`, "
            f"{time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} CPUs, {args.threads} torch threads, "
            f"load average before the run {load[0]:.2f}.",
            "",
            "| method | steps timed | seconds | s / step | epoch (min) | vs SASRec |",
            "|---|---:|---:|---:|---:|---:|",
            *rows,
            "",
        ]
    )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
