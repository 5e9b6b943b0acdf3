"""Sentence quick-profile results beside the untrained backbone, written to benchmarks/results/.

Each (recipe, seed) is trained with its ``quick`` profile (plus any ``--set``); the record keeps the
STS-B dev score of the selected checkpoint, its STS-B test score and the backbone baselines (native
and the recipe's pooling, dev and test, on the same splits). Records are merged into
``benchmarks/results/sentences-quick.json`` (one entry per recipe, settings and seed) and the table
``sentences-quick.md`` is rewritten from it.

    CL_DOMAINS_DATA=../shared/data python benchmarks/sentences_quick.py debcse_sts --seeds 42 1 --threads 1
    python benchmarks/sentences_quick.py --table-only
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
JSON = RESULTS / "sentences-quick.json"
MD = RESULTS / "sentences-quick.md"
NATIVE = "backbone, mean pooling (native)"


def run_one(recipe_name: str, seed: int, overrides: list[str], out: Path, threads: int | None) -> dict:
    from cl_domains.core import registry
    from cl_domains.core.recipe import load_recipe
    from cl_domains.core.train import seed_everything, train_task

    sets = [*overrides, f"train.seed={seed}"] + ([f"train.threads={threads}"] if threads else [])
    recipe = load_recipe(REPO / "recipes" / f"{recipe_name}.yaml", "quick", sets)
    if recipe.train.threads:
        torch.set_num_threads(recipe.train.threads)
    _, builder = registry.domain(recipe.domain).methods[recipe.method.name]
    t0 = time.time()
    seed_everything(recipe.train.seed)
    task = builder(recipe, None, torch.device("cpu"))
    baselines = {"dev": task.baselines("dev"), "test": task.baselines("test")}
    run = train_task(recipe, task, out=out)
    m = run.metrics
    return {
        "recipe": recipe_name,
        "seed": seed,
        "overrides": overrides,
        "pooling": recipe.model.pooling,
        "dev": m["best_dev"],
        "test": m["final"]["stsb_test"],
        "best_step": m["best_step"],
        "steps": m["steps"],
        "dev_history": m["history"]["dev"],
        "baselines": baselines,
        "stats": getattr(task, "stats", {}),
        "minutes": round((time.time() - t0) / 60, 1),
        "threads": recipe.train.threads,
        "run": str(run.dir),
        "command": "python benchmarks/sentences_quick.py "
        + " ".join([recipe_name, "--seeds", str(seed)] + [f"--set {o}" for o in overrides]),
    }


def key(rec: dict) -> str:
    return f"{rec['recipe']} {' '.join(rec['overrides'])}".strip()


def load() -> dict:
    return json.loads(JSON.read_text()) if JSON.is_file() else {}


def save(results: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    JSON.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
    MD.write_text(table(results))


def _ms(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"


def _baseline(baselines: dict, split: str, kind: str) -> float:
    """The ``native`` or ``recipe`` pooling baseline's STS-B score on ``split``."""
    for name, scores in baselines[split].items():
        if f"({kind}" in name or "native = recipe" in name:
            return scores[f"stsb_{split}"]
    raise KeyError(kind)


def _fmt(x: float | None) -> str:
    return "—" if x is None else f"{x:.2f}"


HEADER = """# Sentence quick profiles beside the untrained backbone

STS-B Spearman x100, all-MiniLM-L6-v2. *dev*: the selected checkpoint's STS-B dev score (selection on dev
only); *test*: its STS-B test score. Baselines: the untrained backbone on the same splits, with its native
pooling (mean, what it was trained for) and with the recipe's pooling. Per-seed values are listed; "mean ± std"
is over those seeds (sample std). Written by `benchmarks/sentences_quick.py`.

| recipe (quick) + settings | pooling | per seed: dev / test | ours test | native (mean) dev / test | recipe pooling dev / test | test vs native | time per run |
|---|---|---|---:|---:|---:|---:|---|
"""


def table(results: dict) -> str:
    lines = []
    for name, entry in sorted(results.items()):
        seeds = sorted(entry["seeds"], key=int)
        recs = [entry["seeds"][s] for s in seeds]
        test = [r["test"] for r in recs]
        b = recs[0]["baselines"]
        gap = statistics.mean(test) - _baseline(b, "test", "native")
        verdict = "equal" if abs(gap) < 0.05 else "gain" if gap > 0 else "loses"
        per_seed = ", ".join(
            f"{s}: {_fmt(r['dev'])} / {r['test']:.2f}{'¹' if r.get('source') else ''}"
            for s, r in zip(seeds, recs, strict=False)
        )
        minutes = [f"{r['minutes']} min (seed {s})" for s, r in zip(seeds, recs, strict=False) if r.get("minutes")]
        lines.append(
            f"| `{name}` | {recs[0]['pooling']} | {per_seed} | {_ms(test)} | "
            f"{_fmt(_baseline(b, 'dev', 'native'))} / {_baseline(b, 'test', 'native'):.2f} | "
            f"{_fmt(_baseline(b, 'dev', 'recipe'))} / {_baseline(b, 'test', 'recipe'):.2f} | "
            f"{gap:+.2f} ({verdict}) | {entry.get('note') or ', '.join(minutes)} |"
        )
    foot = (
        "\n¹ from the README before issue 21 (measured before later loss and trainer changes), not re-run.\n"
        "\nReproduce a row: `CL_DOMAINS_DATA=../shared/data python benchmarks/sentences_quick.py <recipe> "
        "--seeds <seeds> [--set key=value ...] --threads 1` (time per run in minutes, on a shared 2-core box).\n"
    )
    return HEADER + "\n".join(lines) + "\n" + foot


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("recipes", nargs="*", help="recipe names (recipes/<name>.yaml)")
    p.add_argument("--seeds", nargs="+", type=int, default=[42])
    p.add_argument("--set", dest="overrides", action="append", default=[], help="dotted override, as cl-domains run")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--out", default=str(REPO / "runs" / "sentences-quick"))
    p.add_argument("--table-only", action="store_true", help="rewrite sentences-quick.md from the JSON")
    args = p.parse_args(argv)
    results = load()
    if not args.table_only:
        for name in args.recipes:
            for seed in args.seeds:
                rec = run_one(name, seed, args.overrides, Path(args.out), args.threads)
                entry = results.setdefault(key(rec), {"recipe": name, "overrides": args.overrides, "seeds": {}})
                entry["seeds"][str(seed)] = rec
                save(results)  # after every run: a long sweep keeps what it finished
                print(
                    f"{key(rec)} seed {seed}: dev {rec['dev']:.2f} test {rec['test']:.2f} ({rec['minutes']} min)",
                    flush=True,
                )
    save(results)
    print(MD.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
