"""Quick-profile results beside the run's own simple baselines, over seeds, as results files.

    python benchmarks/quick_results.py autotcl_ett --seeds 42 1 2            # trains, 1 thread each
    python benchmarks/quick_results.py autotcl_ett --runs runs/a runs/b      # collects finished runs instead
    python benchmarks/quick_results.py autotcl_ett --profile paper --baselines-only   # the baselines alone, no training

Writes (replaces) ``benchmarks/results/quick/<recipe>.json`` (every run: seed, final, before, baselines; pass earlier
runs with ``--runs`` to keep them) and prints a markdown
row per metric: ours and each baseline as mean ± sample std over the seeds (the per-seed values with one seed).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "quick"


def collect(run_dir: Path) -> dict:
    m = json.loads((run_dir / "metrics.json").read_text())
    cfg = (run_dir / "config.yaml").read_text()
    seed = next((int(line.split(":")[1]) for line in cfg.splitlines() if line.strip().startswith("seed:")), None)
    return {
        "run": run_dir.name,
        "seed": seed,
        "profile": m.get("profile"),
        "final": m.get("final", {}),
        "before": m.get("before", {}),
        "baselines": m.get("baselines", {}),
        "steps": m.get("steps"),
        "train_seconds": round(m.get("train_seconds", 0.0), 1),
        "paper": m.get("paper", {}).get("metrics", {}) if m.get("paper", {}).get("shown", True) else {},
    }


def summary(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.4g}"
    return f"{statistics.mean(values):.4g} ± {statistics.stdev(values):.2g}"


def over_seeds(runs: list[dict]) -> dict[str, dict[str, float]]:
    """Mean and sample std over the runs of each final metric every run has (what the docs quote)."""
    keys = [k for k in runs[0]["final"] if all(k in r["final"] for r in runs)]
    return {
        k: {
            "mean": statistics.mean(r["final"][k] for r in runs),
            "std": statistics.stdev(r["final"][k] for r in runs) if len(runs) > 1 else 0.0,
        }
        for k in keys
    }


def table(recipe: str, runs: list[dict], metrics: list[str]) -> str:
    names = list(dict.fromkeys(n for r in runs for n in r["baselines"]))
    head = ["metric", "ours", *names, "before training", "paper"]
    rows = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    for k in metrics:
        cells = [summary([r["final"][k] for r in runs if k in r["final"]])]
        for n in names:
            vals = [r["baselines"][n][k] for r in runs if k in r["baselines"].get(n, {})]
            cells.append(summary(vals) if vals else "—")
        before = [r["before"][k] for r in runs if k in r["before"]]
        cells.append(summary(before) if before else "—")
        cells.append(f"{runs[0]['paper'][k]:.4g}" if k in runs[0]["paper"] else "—")
        rows.append(f"| {k} | " + " | ".join(cells) + " |")
    seeds = ", ".join(str(r["seed"]) for r in runs)
    return f"{recipe} (quick), seeds {seeds}:\n" + "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("recipe")
    ap.add_argument("--seeds", type=int, nargs="*", default=[])
    ap.add_argument("--runs", type=Path, nargs="*", default=[], help="finished run directories to collect")
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    ap.add_argument("--metrics", nargs="*", default=None, help="rows of the printed table (default: all)")
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "quick_results")
    ap.add_argument("--profile", default="quick")
    ap.add_argument(
        "--baselines-only", action="store_true", help="build the task and print its baselines (no training)"
    )
    args = ap.parse_args(argv)
    if args.baselines_only:
        import torch

        from cl_domains.core import registry
        from cl_domains.core.recipe import load_recipe

        r = load_recipe(ROOT / "recipes" / f"{args.recipe}.yaml", args.profile, args.overrides)
        torch.set_num_threads(r.train.threads or 1)
        task = registry.domain(r.domain).methods[r.method.name][1](r, None, torch.device("cpu"))
        base = task.baselines()
        print(
            json.dumps({"recipe": args.recipe, "profile": args.profile, "overrides": args.overrides, "baselines": base})
        )
        return
    runs = [collect(d) for d in args.runs]
    if args.seeds:
        from cl_domains.core.recipe import load_recipe
        from cl_domains.core.train import train_recipe

        for seed in args.seeds:
            r = load_recipe(
                ROOT / "recipes" / f"{args.recipe}.yaml", args.profile, [*args.overrides, f"train.seed={seed}"]
            )
            runs.append(collect(train_recipe(r, out=args.out).dir))
    if not runs:
        sys.exit("give --seeds or --runs")
    OUT.mkdir(parents=True, exist_ok=True)
    command = "python benchmarks/quick_results.py " + " ".join(sys.argv[1:] if argv is None else argv)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    (OUT / f"{args.recipe}{'' if args.profile == 'quick' else '-' + args.profile}.json").write_text(
        json.dumps(
            {
                "recipe": args.recipe,
                "command": command,
                "commit": commit or None,
                "overrides": args.overrides,
                "runs": runs,
            },
            indent=1,
        )
    )
    print(table(args.recipe, runs, args.metrics or list(runs[0]["final"])))


if __name__ == "__main__":
    main()
