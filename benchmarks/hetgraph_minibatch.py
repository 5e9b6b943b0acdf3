"""Mini-batch against full-batch MEOW on ACM and DBLP: the same recipe and profile, several seeds, Macro-F1 at
20/40/60 labels per class and NMI/ARI (mean +- std over the seeds), written to
benchmarks/results/hetgraph-minibatch.md with the command and commit.

    python benchmarks/hetgraph_minibatch.py                       # acm + dblp, seeds 0 1 2, profile quick
    python benchmarks/hetgraph_minibatch.py --datasets acm --seeds 0 --out /tmp/mb.md

Every training runs in its own ``cl-domains run`` process (1 torch thread). Mini-batch settings:
``model.batching=minibatch``, ``train.batch_size`` per dataset (--batch), the default fan-outs, a dev evaluation
every epoch; full batch keeps the recipe's schedule.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "hetgraph-minibatch.md"
METRICS = ["macro_f1_20", "macro_f1_40", "macro_f1_60", "nmi", "ari"]


def train(recipe: str, profile: str, seed: int, extra: list[str], out: Path) -> dict:
    sets = ["train.threads=1", f"train.seed={seed}", "train.baselines=false", *extra]
    cmd = [sys.executable, "-m", "cl_domains.cli", "run", recipe, "--profile", profile, "--out", str(out)]
    for s in sets:
        cmd += ["--set", s]
    t = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{p.stderr[-2000:]}")
    run = max(out.glob("*/metrics.json"), key=lambda f: f.stat().st_mtime)
    m = json.loads(run.read_text())
    return {**{k: m["final"][k] for k in METRICS}, "train_s": m["train_seconds"], "wall_s": time.perf_counter() - t}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--datasets", nargs="+", default=["acm", "dblp"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--profile", default="quick")
    ap.add_argument("--method", default="meow")
    ap.add_argument("--batch", type=json.loads, default={"acm": 512, "dblp": 1024}, help="JSON: dataset -> batch")
    ap.add_argument("--modes", nargs="+", default=["full", "minibatch"], choices=["full", "minibatch"])
    ap.add_argument(
        "--reuse",
        type=Path,
        help="JSON lines of earlier runs (this script's output) to include; those (dataset, mode, seed) are not rerun",
    )
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    done = {}
    if args.reuse:
        for line in args.reuse.read_text().splitlines():
            if line.startswith("{"):
                r = json.loads(line)
                done[(r["dataset"], r["mode"], r["seed"])] = r
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT)
    commit = commit.stdout.strip() or os.environ.get("GIT_COMMIT", "unknown")  # an exported copy: say which
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for ds in args.datasets:
            recipe = str(ROOT / "recipes" / f"{args.method}_{ds}.yaml")
            modes = {
                "full": ["model.batching=full"],
                f"minibatch {args.batch[ds]}": [
                    "model.batching=minibatch",
                    f"train.batch_size={args.batch[ds]}",
                    "train.eval_every=epoch",
                ],
            }
            for mode, extra in modes.items():
                res = []
                for s in args.seeds:
                    if (ds, mode, s) in done:
                        res.append(done[(ds, mode, s)])
                        continue
                    if mode.split()[0] not in args.modes:
                        continue
                    r = train(recipe, args.profile, s, extra, Path(tmp) / f"{ds}-{mode.split()[0]}-{s}")
                    print(json.dumps({"dataset": ds, "mode": mode, "seed": s, **r}), flush=True)
                    res.append(r)
                if not res:
                    continue
                cells = [f"{np.mean([r[k] for r in res]):.2f} ± {np.std([r[k] for r in res]):.2f}" for k in METRICS]
                secs = np.mean([r["train_s"] for r in res])
                rows.append(f"| {ds} | {mode} | " + " | ".join(cells) + f" | {secs:.0f} |")
    seeds = " ".join(map(str, args.seeds))
    text = "\n".join(
        [
            f"# {args.method.upper()}: mini-batch vs full batch (ACM, DBLP)",
            "",
            f"`python benchmarks/hetgraph_minibatch.py --datasets {' '.join(args.datasets)} --seeds {seeds} "
            f"--profile {args.profile}` at commit {commit} (1 torch thread each, CPU, shared "
            f"{os.cpu_count()}-core machine)"
            + (f"; runs listed in `--reuse {args.reuse.name}` were taken from an earlier invocation." if done else "."),
            "",
            f"Profile `{args.profile}` of the recipes; mini-batch: `model.batching=minibatch`, `train.batch_size` as "
            "shown (target nodes per batch), default fan-outs (5 draws at the first hop, 1 after), dev evaluation "
            "every epoch. Full batch: the recipe's own schedule. Mean ± std over the training seeds "
            f"({seeds}); each seed's value is the mean over the profile's linear-probe repeats.",
            "",
            "| dataset | batching | Macro-F1 20 | Macro-F1 40 | Macro-F1 60 | NMI | ARI | train (s) |",
            "|---|---|---:|---:|---:|---:|---:|---:|",
            *rows,
            "",
        ]
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
