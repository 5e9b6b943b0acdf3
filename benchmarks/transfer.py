"""Each domain's default on a shipped dataset that was not used to choose it, beside its strongest baseline.

    python benchmarks/transfer.py run ucr --seeds 42 1 2       # trains; appends to benchmarks/results/transfer.jsonl
    python benchmarks/transfer.py render                       # writes benchmarks/results/transfer.md

Jobs (``JOBS``): a recipe at its quick profile with ``--set`` overrides, on data other than the profile's own.
Every run appends one JSON line (job, seed, test metrics, before training, baselines, kept_start, seconds, commit).
Run niced with one thread: ``OMP_NUM_THREADS=1 nice python benchmarks/transfer.py run ...``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
JSONL = RESULTS / "transfer.jsonl"

UCR_OTHER = ["ArrowHead", "CBF", "Coffee", "ECG200", "ItalyPowerDemand", "SyntheticControl", "TwoLeadECG"]
UCR_ALL = ["Chinatown", "GunPoint", *UCR_OTHER]  # the recipe's defaults were chosen on the first two

# name -> (domain, recipe, overrides, metric shown, higher is better)
JOBS: dict[str, tuple[str, str, list[str], str, bool]] = {
    **{f"ucr-{n}": ("timeseries", "autotcl_ucr", [f"data.path=ucr/{n}"], "acc", True) for n in UCR_ALL},
    **{
        f"ucr-{n}-autotcl-loss": (
            "timeseries",
            "autotcl_ucr",
            [f"data.path=ucr/{n}", "method.variant=autotcl"],
            "acc",
            True,
        )
        for n in UCR_ALL
    },
    **{
        f"ucr-{n}-ts2vec": (
            "timeseries",
            "autotcl_ucr",
            [f"data.path=ucr/{n}", "method.name=ts2vec", "model.mask_p=0.5"],
            "acc",
            True,
        )
        for n in UCR_ALL
    },
    "seqrec-toys": ("seqrec", "sasrec_toys", [], "NDCG@10", True),
    "regression-concrete": ("regression", "supremix_concrete", [], "mae", False),
    "regression-energy": ("regression", "supremix_energy", [], "mae", False),
}


def commit() -> str:
    out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    return out.stdout.strip()


def run(job: str, seeds: list[int], out: Path) -> None:
    from cl_domains.core.recipe import load_recipe
    from cl_domains.core.train import train_recipe

    domain, recipe, overrides, _, _ = JOBS[job]
    for seed in seeds:
        r = load_recipe(ROOT / "recipes" / f"{recipe}.yaml", "quick", [*overrides, f"train.seed={seed}"])
        t0 = time.time()
        d = train_recipe(r, out=out).dir
        m = json.loads((d / "metrics.json").read_text())
        row = {
            "job": job,
            "domain": domain,
            "recipe": recipe,
            "overrides": overrides,
            "seed": seed,
            "final": m.get("final", {}),
            "before": m.get("before", {}),
            "baselines": m.get("baselines", {}),
            "kept_start": bool(m.get("kept_start", False)),
            "seconds": round(time.time() - t0, 1),
            "commit": commit(),
        }
        with JSONL.open("a") as f:
            f.write(json.dumps(row) + "\n")
        print(json.dumps(row), flush=True)


def _cell(values: list[float]) -> str:
    if not values:
        return "—"
    if len(values) == 1:
        return f"{values[0]:.4g}"
    return f"{statistics.mean(values):.4g} ± {statistics.stdev(values):.2g}"


def render() -> str:
    rows = [json.loads(line) for line in JSONL.read_text().splitlines() if line.strip()] if JSONL.exists() else []
    extra = RESULTS / "transfer-minirocket.jsonl"
    mini = [json.loads(line) for line in extra.read_text().splitlines() if line.strip()] if extra.exists() else []
    lines = [
        "# Defaults on data they were not chosen on, beside the strongest baseline",
        "",
        "Command: `OMP_NUM_THREADS=1 nice python benchmarks/transfer.py run <job> --seeds ...`, then "
        "`python benchmarks/transfer.py render`; MiniRocket: `python benchmarks/minirocket_ucr.py` (aeon, "
        "separate environment). Commits: " + ", ".join(sorted({r["commit"] for r in rows + mini})) + ".",
        "Machine: shared 2-core CPU, 1 torch thread per run, quick profiles. ± is the sample std over the seeds.",
        "",
        "| job | recipe (`--set`) | metric | ours | before training | baselines | seeds | kept start | s/run |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    by_job: dict[str, list[dict]] = {}
    for r in rows:
        by_job.setdefault(r["job"], []).append(r)
    mr = {m["dataset"]: m for m in mini}
    for job, rs in by_job.items():
        _, recipe, overrides, metric, _ = JOBS.get(job, ("", rs[0]["recipe"], rs[0]["overrides"], "", True))
        metric = metric or next(iter(rs[0]["final"]))
        names = list(dict.fromkeys(n for r in rs for n in r["baselines"]))
        base = [f"{n} {_cell([r['baselines'][n][metric] for r in rs if metric in r['baselines'][n]])}" for n in names]
        ds = next((o.split("/")[-1] for o in overrides if o.startswith("data.path=")), None)
        if ds in mr and not any("MiniRocket" in n for n in names):
            base.append(f"MiniRocket {_cell(mr[ds]['acc'])}")
        lines.append(
            f"| {job} | `{recipe}` {' '.join(f'`{o}`' for o in overrides)} | {metric} "
            f"| {_cell([r['final'][metric] for r in rs if metric in r['final']])} "
            f"| {_cell([r['before'][metric] for r in rs if metric in r['before']])} | {'; '.join(base)} "
            f"| {', '.join(str(r['seed']) for r in rs)} | {sum(r['kept_start'] for r in rs)}/{len(rs)} "
            f"| {statistics.mean(r['seconds'] for r in rs):.0f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("jobs", nargs="+", help=f"job names or prefixes, of: {', '.join(JOBS)}")
    r.add_argument("--seeds", type=int, nargs="+", default=[42])
    r.add_argument("--out", type=Path, default=ROOT / "runs" / "transfer")
    sub.add_parser("render")
    args = ap.parse_args(argv)
    if args.cmd == "render":
        text = render()
        (RESULTS / "transfer.md").write_text(text)
        print(text)
        return
    jobs = [j for j in JOBS if any(j == p or (p.endswith("*") and j.startswith(p[:-1])) for p in args.jobs)]
    if not jobs:
        sys.exit(f"no job matches {args.jobs}")
    for job in jobs:
        run(job, args.seeds, args.out)


if __name__ == "__main__":
    main()
