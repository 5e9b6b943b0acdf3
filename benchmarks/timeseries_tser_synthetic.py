"""Time-series extrinsic regression (TSER) end to end from .ts files, the one TSER benchmark: a synthetic task where
the target is the amplitude of a sine with a random phase (2 dimensions, the second pure noise), so a ridge on the raw
values cannot read it off linearly but a shift-invariant series representation can.

    python benchmarks/timeseries_tser_synthetic.py [OUT_DIR] [--steps 100] [--epochs 30] [--seeds 0 1 2]
                                                   [--only timeseries|regression]

Writes toy_TRAIN.ts / toy_TEST.ts (300 / 150 series of length 64) under OUT_DIR and prints test RMSE / MAE on
toy_TEST.ts for
* the timeseries domain's ``kind: regress`` runs of TS2Vec and AutoTCL (3-block encoder, 64 dims, ``--steps``):
  a ridge on the frozen series representations, beside the train-mean and raw-ridge baselines and the untrained
  encoder;
* the regression estimators SupReMix, RankNContrast and L1Regressor trained on the same series in memory
  (``fit(X, y)`` on toy_TRAIN.ts with 10% held out for selection, ``--epochs``; ``evaluate`` on toy_TEST.ts).

Measured results and the command: benchmarks/results/tser_synthetic.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

import numpy as np
import yaml

from cl_domains.core.recipe import load_recipe
from cl_domains.core.train import train_recipe


def write_ts(path: Path, n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    t = np.arange(64)
    lines = ["@problemName SineAmplitude", "@timeStamps false", "@missing false", "@univariate false"]
    lines += ["@dimensions 2", "@equalLength true", "@seriesLength 64", "@targetLabel true", "@data"]
    for _ in range(n):
        amp = rng.uniform(0.5, 3.0)
        a = amp * np.sin(0.4 * t + rng.uniform(0, 2 * np.pi)) + 0.2 * rng.normal(size=64)
        b = rng.normal(size=64)
        lines.append(",".join(f"{v:.4f}" for v in a) + ":" + ",".join(f"{v:.4f}" for v in b) + f":{amp:.4f}")
    path.write_text("\n".join(lines) + "\n")


def timeseries_rows(out: Path, steps: int, seeds: list[int]) -> tuple[dict, dict]:
    """TS2Vec and AutoTCL through ``kind: regress`` recipes: their test metrics and untrained encoders', baselines."""
    rows: dict[str, list[dict]] = {}
    baselines: dict = {}
    for method in ("ts2vec", "autotcl"):
        for seed in seeds:
            recipe = {
                "name": f"tser_{method}",
                "domain": "timeseries",
                "model": {"output_dims": 64, "hidden": 32, "depth": 3, "mask_p": 0.0 if method == "autotcl" else 0.5},
                "data": {"kind": "regress", "path": str(out / "toy_TRAIN.ts"), "test": str(out / "toy_TEST.ts")},
                "method": {"name": method, **({"variant": "ts2vec"} if method == "autotcl" else {})},
                "train": {"seed": seed, "batch_size": 16, "epochs": 1000, "max_steps": steps, "eval_every": 50},
            }
            path = out / f"{method}.yaml"
            path.write_text(yaml.safe_dump(recipe))
            m = train_recipe(load_recipe(path), out=out / "runs", data_root=out).metrics
            rows.setdefault(method, []).append(m["final"])
            rows.setdefault(f"{method} untrained encoder", []).append(m["before"])
            baselines = m["baselines"]
            print(method, seed, json.dumps({k: round(v, 4) for k, v in m["final"].items()}), flush=True)
    return rows, baselines


def regression_rows(out: Path, epochs: int, seeds: list[int]) -> dict:
    """The regression estimators on the series in memory: fit on toy_TRAIN.ts, evaluate on toy_TEST.ts."""
    from cl_domains.regression import L1Regressor, RankNContrast, SupReMix
    from cl_domains.timeseries import read_ts

    (x, y, _), (xt, yt, _) = read_ts(out / "toy_TRAIN.ts"), read_ts(out / "toy_TEST.ts")
    settings = {
        "model": {"channels": 32, "dim": 64, "projection": 32},
        "data": {"dev_fraction": 0.1, "test_fraction": 0},  # selection on 10% of TRAIN; the test file scores
        "method": {"contrastive_weight": 0.1, "noise": 0.02},
        "train": {"batch_size": 32, "epochs": epochs, "eval_every": 40, "threads": 1},
    }
    rows: dict[str, list[dict]] = {}
    for cls in (SupReMix, RankNContrast, L1Regressor):
        for seed in seeds:
            params = {**settings, "train": {**settings["train"], "seed": seed}}
            if cls is L1Regressor:
                params["method"] = {}
            m = cls(**params).fit(x, y).evaluate(xt, yt)
            rows.setdefault(cls.__name__, []).append(m)
            print(cls.__name__, seed, json.dumps({k: round(m[k], 4) for k in ("rmse", "mae")}), flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out", nargs="?", default=None)
    ap.add_argument("--steps", type=int, default=100, help="timeseries methods: training steps")
    ap.add_argument("--epochs", type=int, default=30, help="regression methods: epochs")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--only", choices=["timeseries", "regression"], default=None)
    args = ap.parse_args()
    out = Path(args.out or tempfile.mkdtemp(prefix="tser-"))
    out.mkdir(parents=True, exist_ok=True)
    write_ts(out / "toy_TRAIN.ts", 300, 0)
    write_ts(out / "toy_TEST.ts", 150, 1)
    rows, baselines = {}, {}
    if args.only != "regression":
        rows, baselines = timeseries_rows(out, args.steps, args.seeds)
    if args.only != "timeseries":
        rows.update(regression_rows(out, args.epochs, args.seeds))
    print("\n| model | test RMSE | test MAE |\n|---|---|---|")
    for name, values in baselines.items():
        print(f"| {name} | {values['rmse']:.4f} | {values['mae']:.4f} |")
    for method, finals in rows.items():
        r = [f["rmse"] for f in finals]
        a = [f["mae"] for f in finals]
        sd = statistics.stdev(r) if len(r) > 1 else 0.0
        print(
            f"| {method} (seeds {', '.join(map(str, args.seeds))}) | {statistics.mean(r):.4f} ± {sd:.4f} | "
            f"{statistics.mean(a):.4f} |"
        )


if __name__ == "__main__":
    main()
