"""Each domain's default on a shipped dataset that was not used to choose it, beside its strongest baseline.

    python benchmarks/transfer.py run ucr --seeds 42 1 2       # trains; appends to benchmarks/results/transfer.jsonl
    python benchmarks/transfer.py render                       # writes benchmarks/results/transfer.md

Jobs (``JOBS``): a recipe at its quick profile with ``--set`` overrides, on data other than the profile's own.
Every run appends one JSON line (job, seed, test metrics, before training, baselines, kept_start, seconds, commit).
Run niced with one thread: ``OMP_NUM_THREADS=1 nice python benchmarks/transfer.py run ...``.
"""

from __future__ import annotations

import argparse
import fnmatch
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
            [f"data.path=ucr/{n}", "method={name: ts2vec}", "model.mask_p=0.5"],
            "acc",
            True,
        )
        for n in UCR_ALL
    },
    **{
        f"forecast-{n.split('/')[-1]}": (
            "timeseries",
            "autotcl_ett",
            [f"data.path={n}", "eval.probe_with_raw=true"],
            "mse",
            False,
        )
        for n in ("ett/ETTh2", "wth/WTH")
    },
    "hetgraph-dblp": ("hetgraph", "meow_dblp", [], "macro_f1_20", True),
    "seqrec-toys": ("seqrec", "sasrec_toys", [], "NDCG@10", True),
    "seqrec-toys-500steps": (  # the former quick budget
        "seqrec",
        "sasrec_toys",
        ["train.max_steps=500", "train.eval_every=250", "train.patience=null"],
        "NDCG@10",
        True,
    ),
    "regression-concrete": ("regression", "supremix_concrete", [], "mae", False),
    "regression-energy": ("regression", "supremix_energy", [], "mae", False),
}


NOTES = [
    "Notes:",
    "- `ucr-Chinatown` and `ucr-GunPoint` are the UCR recipe's own sets (its settings were chosen there); the other "
    "UCR rows are sets it was not chosen on. `-autotcl-loss`: `method.variant=autotcl` (AutoTCL's own terms); "
    "`-ts2vec`: TS2Vec (`method={name: ts2vec}` `model.mask_p=0.5`). The default (`method.variant: auto`) is TS2Vec's "
    "hierarchical loss for classification.",
    "- MiniRocket: `benchmarks/minirocket_ucr.py` in a separate environment with aeon 1.6.0 (its numba pins numpy "
    "2.3.5), on the series as the UCR files give them; per-seed values in `transfer-minirocket.jsonl`.",
    "- `forecast-*`: the `autotcl_ett` quick profile (6 steps, H = 24, 48) on ETTh2 / WTH (chosen on ETTh1); at the "
    "paper settings AutoTCL beats the ridge on raw window on both (ETTh2 .1537 vs .1695, WTH .1709 vs .2302; "
    "`benchmarks/results/baselines.md`).",
    "- `seqrec-toys`: `sasrec_toys` quick (up to 3 epochs, patience 1; chosen on Beauty; dev still improved at the "
    "3-epoch cap); `seqrec-toys-500steps`: the former fixed budget, for comparison. One seed: a run takes 7-24 "
    "minutes here. On Beauty, item-kNN scores "
    "HR@10 .0653 / NDCG@10 .0391 (`python benchmarks/quick_results.py sasrec_beauty --baselines-only`) against "
    "SASRec quick (500 steps) .0236 / .0124 and SASRec paper profile (55 epochs) .0841 / .0417.",
    "- Sentences: not re-measured here (a quick run takes 10-40 minutes on this machine). "
    "`benchmarks/results/sentences-quick.md`: with the backbone's own mean pooling (now the quick default) training "
    "reached STS-B dev 86.72 vs 86.72 for the backbone as built (test 82.12 vs 82.03, one seed): no dev gain, so "
    "the trainer keeps the starting model; with [CLS] (the former default) it lost 2.7-4.1 test points to it.",
]


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


def _verdict(ours: list[float], baselines: dict[str, list[float]], higher: bool) -> str:
    """``wins`` / ``ties`` / ``LOSES`` against the best baseline by mean: a tie is a gap within the larger seed
    std (or 0.5% of the baseline with one seed)."""
    if not ours or not baselines:
        return "—"
    mean = statistics.mean
    name, best = max(baselines.items(), key=lambda kv: mean(kv[1]) if higher else -mean(kv[1]))
    spread = max([statistics.stdev(v) for v in (ours, best) if len(v) > 1] + [0.005 * abs(mean(best))])
    gap = (mean(ours) - mean(best)) * (1 if higher else -1)
    word = "wins" if gap > spread else "ties" if gap >= -spread else "LOSES"
    return f"{word} ({name})"


def ucr_table(by_job: dict[str, list[dict]], mr: dict[str, dict]) -> list[str]:
    """UCR test accuracy per set: the default (AutoTCL, TS2Vec's loss), AutoTCL's own loss, TS2Vec, the baselines."""
    out = [
        "UCR test accuracy at a glance (mean over the seeds run; * = the recipe's own sets):",
        "",
        "| set | AutoTCL, default loss | AutoTCL's own loss | TS2Vec | raw 1-NN | raw SVM | MiniRocket |",
        "|---|---|---|---|---|---|---|",
    ]
    mean = statistics.mean
    for n in UCR_ALL:
        cells = []
        for job in (f"ucr-{n}", f"ucr-{n}-autotcl-loss", f"ucr-{n}-ts2vec"):
            v = [r["final"]["acc"] for r in by_job.get(job, [])]
            cells.append(f"{mean(v):.3f} ({len(v)})" if v else "—")
        rs = by_job.get(f"ucr-{n}", [])
        for b in ("raw 1-NN", "raw SVM"):
            cells.append(f"{rs[0]['baselines'][b]['acc']:.3f}" if rs else "—")
        cells.append(f"{mean(mr[n]['acc']):.3f}" if n in mr else "—")
        star = "*" if n in ("Chinatown", "GunPoint") else ""
        out.append(f"| {n}{star} | " + " | ".join(cells) + " |")
    return out


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
        "| job | recipe (`--set`) | metric | ours | before training | baselines | verdict vs the strongest | seeds "
        "| kept start | s/run |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    by_job: dict[str, list[dict]] = {}
    for r in rows:
        by_job.setdefault(r["job"], []).append(r)
    mr = {m["dataset"]: m for m in mini}
    for job, rs in by_job.items():
        _, recipe, overrides, metric, higher = JOBS.get(job, ("", rs[0]["recipe"], rs[0]["overrides"], "", True))
        metric = metric or next(iter(rs[0]["final"]))
        names = list(dict.fromkeys(n for r in rs for n in r["baselines"]))
        base = [f"{n} {_cell([r['baselines'][n][metric] for r in rs if metric in r['baselines'][n]])}" for n in names]
        ds = next((o.split("/")[-1] for o in overrides if o.startswith("data.path=")), None)
        pools = {n: [r["baselines"][n][metric] for r in rs if metric in r["baselines"][n]] for n in names}
        if ds in mr and not any("MiniRocket" in n for n in names):
            base.append(f"MiniRocket {_cell(mr[ds]['acc'])}")
            pools["MiniRocket"] = mr[ds]["acc"]
        ours = [r["final"][metric] for r in rs if metric in r["final"]]
        verdict = _verdict(ours, {n: v for n, v in pools.items() if v}, higher)
        raw = [r["final"][f"{metric}_with_raw"] for r in rs if f"{metric}_with_raw" in r["final"]]
        with_raw = f"; probe on [representation, raw window] {_cell(raw)}" if raw else ""
        lines.append(
            f"| {job} | `{recipe}` {' '.join(f'`{o}`' for o in overrides)} | {metric} "
            f"| {_cell(ours)}{with_raw} "
            f"| {_cell([r['before'][metric] for r in rs if metric in r['before']])} | {'; '.join(base)} | {verdict} "
            f"| {', '.join(str(r['seed']) for r in rs)} | {sum(r['kept_start'] for r in rs)}/{len(rs)} "
            f"| {statistics.mean(r['seconds'] for r in rs):.0f} |"
        )
    lines += ["", *ucr_table(by_job, mr), "", *NOTES]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("jobs", nargs="+", help=f"job names or shell patterns (ucr-*-ts2vec), of: {', '.join(JOBS)}")
    r.add_argument("--seeds", type=int, nargs="+", default=[42])
    r.add_argument("--out", type=Path, default=ROOT / "runs" / "transfer")
    sub.add_parser("render")
    args = ap.parse_args(argv)
    if args.cmd == "render":
        text = render()
        (RESULTS / "transfer.md").write_text(text)
        print(text)
        return
    jobs = [j for j in JOBS if any(fnmatch.fnmatchcase(j, p) for p in args.jobs)]
    if not jobs:
        sys.exit(f"no job matches {args.jobs}")
    for job in jobs:
        run(job, args.seeds, args.out)


if __name__ == "__main__":
    main()
