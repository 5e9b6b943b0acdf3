"""SupReMix vs Rank-N-Contrast vs L1 over a recipe's published splits: mean ± std of the test metrics.

    python benchmarks/regression_table.py recipes/supremix_airfoil.yaml --splits 0-4 \
        [--methods supremix,rnc,l1] [--profile paper] [--set train.epochs=100] [--out benchmarks/results]

Each (method, split) is one ``cl-domains run`` of the recipe with ``--set method.name=M data.split=S
 train.seed=S`` (datasets with one split vary the seed only);
per-run test metrics are appended to ``<out>/<recipe>-<profile>.jsonl`` as they finish (a rerun skips
what is there), and ``<out>/<recipe>-<profile>.md`` gets the table, next to the recipe's paper numbers.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from cl_domains.core.recipe import load_recipe
from cl_domains.core.train import train_recipe

COLUMNS = ("mae", "rmse", "mse", "gm", "pearson", "spearman")


def parse_splits(text: str) -> list[int]:
    out: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        out += list(range(int(lo), int(hi or lo) + 1))
    return out


def table(rows: list[dict], paper: dict[str, float], paper_label: str, extra: list[str]) -> str:
    methods = list(dict.fromkeys(r["method"] for r in rows))
    cols = [c for c in (*COLUMNS, *extra) if any(c in r["metrics"] for r in rows)]
    lines = ["| method | runs | " + " | ".join(cols) + " | train s/run |", "|---|---:|" + "---:|" * (len(cols) + 1)]
    for m in methods:
        rs = [r for r in rows if r["method"] == m]
        cells = []
        for c in cols:
            v = np.array([r["metrics"][c] for r in rs if c in r["metrics"]])
            cells.append(f"{v.mean():.4g} ± {v.std(ddof=1) if len(v) > 1 else 0:.2g}")
        secs = np.mean([r["seconds"] for r in rs])
        lines.append(f"| {m} | {len(rs)} | " + " | ".join(cells) + f" | {secs:.0f} |")
    if paper:
        lines.append(
            f"| {paper_label} | | " + " | ".join(f"{paper[c]:.4g}" if c in paper else "" for c in cols) + " | |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("recipe")
    ap.add_argument("--splits", default="0")
    ap.add_argument("--methods", default="supremix,rnc,l1")
    ap.add_argument("--profile", default="paper")
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    ap.add_argument("--extra", default="", help="more metric columns, e.g. few_mae,few_pearson")
    ap.add_argument("--out", default="benchmarks/results")
    ap.add_argument("--tag", default="", help="suffix of the result files")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"{Path(args.recipe).stem}-{args.profile}{args.tag}"
    log = out / f"{stem}.jsonl"
    rows = [json.loads(line) for line in log.read_text().splitlines()] if log.is_file() else []
    done = {(r["method"], r["split"]) for r in rows}
    recipe = None
    for split in parse_splits(args.splits):
        for method in args.methods.split(","):
            if (method, split) in done:
                continue
            recipe = load_recipe(
                args.recipe,
                args.profile,
                [*args.overrides, f"method.name={method}", f"data.split={split}", f"train.seed={split}"],
            )
            tmp = Path(tempfile.mkdtemp(prefix="regtable-"))
            t = time.time()
            try:
                run = train_recipe(recipe, out=tmp)
                metrics = run.metrics["final"]
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
            row = {
                "method": method,
                "split": split,
                "seconds": time.time() - t,
                "metrics": metrics,
                "overrides": args.overrides,
            }
            rows.append(row)
            with open(log, "a") as f:
                f.write(json.dumps(row) + "\n")
            print(
                f"{stem}: {method} split {split}: "
                + ", ".join(f"{k} {metrics[k]:.4f}" for k in ("mae", "rmse") if k in metrics),
                flush=True,
            )
    recipe = recipe or load_recipe(args.recipe, args.profile, args.overrides)
    extra = [c for c in args.extra.split(",") if c]
    md = table(rows, recipe.paper.metrics, f"paper: {recipe.paper.setting or recipe.paper.source}", extra)
    cmd = "python benchmarks/regression_table.py " + " ".join(
        [
            args.recipe,
            "--splits",
            args.splits,
            "--methods",
            args.methods,
            "--profile",
            args.profile,
            *[f"--set {o}" for o in args.overrides],
            *(["--extra", args.extra] if args.extra else []),
        ]
    )
    (out / f"{stem}.md").write_text(f"# {stem}\n\n`{cmd}`\n\n{md}\n")
    print(md)


if __name__ == "__main__":
    main()
