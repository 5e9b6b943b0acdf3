"""MiniRocket on the shipped UCR sets (official train/test split), for benchmarks/results/transfer.md.

    pip install "cl-domains[baselines]"      # aeon; it needs numba, which pins numpy below the dev environment's
    OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 nice python benchmarks/minirocket_ucr.py --seeds 42 1 2

Needs only numpy, pandas, scikit-learn and aeon (no torch): :func:`cl_domains.core.baselines.minirocket_predict`
on the series as the UCR files give them (NaN as 0). Appends nothing; writes
``benchmarks/results/transfer-minirocket.jsonl`` (one line per data set: accuracy per seed, seconds, aeon version).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cl_domains.core.baselines import minirocket_predict  # noqa: E402

SETS = [
    "Chinatown",
    "GunPoint",
    "ArrowHead",
    "CBF",
    "Coffee",
    "ECG200",
    "ItalyPowerDemand",
    "SyntheticControl",
    "TwoLeadECG",
]


def read(name: str, split: str, root: Path) -> tuple[np.ndarray, np.ndarray]:
    df = pd.read_csv(root / "timeseries" / "ucr" / name / f"{name}_{split}.tsv.gz", sep="\t", header=None)
    return df.iloc[:, 1:].to_numpy(np.float64)[:, :, None], df.iloc[:, 0].to_numpy()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[42, 1, 2])
    ap.add_argument("--data", type=Path, default=Path(os.environ.get("CL_DOMAINS_DATA", "/work/shared/data")))
    args = ap.parse_args()
    import aeon

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    lines = []
    for name in SETS:
        (xtr, ytr), (xte, yte) = read(name, "TRAIN", args.data), read(name, "TEST", args.data)
        t0, accs = time.time(), []
        for seed in args.seeds:
            accs.append(float((minirocket_predict(xtr, ytr, xte, "classify", seed) == yte).mean()))
        row = {
            "dataset": name,
            "seeds": args.seeds,
            "acc": accs,
            "seconds": round(time.time() - t0, 1),
            "aeon": aeon.__version__,
            "commit": commit.stdout.strip(),
        }
        print(json.dumps(row), flush=True)
        lines.append(json.dumps(row))
    (ROOT / "benchmarks" / "results" / "transfer-minirocket.jsonl").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
