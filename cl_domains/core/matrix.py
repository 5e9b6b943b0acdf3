"""``cl-domains matrix``: which contrastive loss wins where, measured under one protocol.

For every selected recipe (one per domain: the shipped recipes that have the chosen profile, ``matrix`` by
default), every applicable loss of the objective slot x temperature x seed is one **cell**: an ordinary run
directory under ``<out>/cells/<recipe>/<loss>-t<temperature>-s<seed>/``, trained in its own process (so its peak
memory is its own). A finished cell is read back, an interrupted one resumed from its checkpoint: the matrix
resumes and can be spread over several invocations. Outputs in ``<out>``:

* ``matrix.csv``: one row per cell (domain, recipe, loss, temperature, seed, metric, value, wall seconds, peak MB);
* ``matrix.md``: per recipe, mean ± std over seeds per loss and temperature, the best in bold, and the difference
  from the method's own objective with a paired t-test over seeds (the same seeds for every cell);
* ``matrix.png``: the change against the method's own objective in % of its mean (so that domains with different
  scales share one colour scale), positive = better (lower-is-better metrics, e.g. MAE, have their sign flipped).
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
import resource
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import UserError
from .objectives import LOSSES
from .safefs import UnsafeFile, safe_rmtree

__all__ = ["Cell", "plan", "run_matrix", "lower_is_better"]

_LOWER = re.compile(r"(mae|mse|rmse|error|loss|forgetting)", re.I)


def lower_is_better(metric: str) -> bool:
    """Error-like metrics (MAE, MSE, RMSE, ..., forgetting) improve downwards."""
    return bool(_LOWER.search(metric))


@dataclass
class Cell:
    domain: str
    recipe: str  # the recipe's file
    name: str  # the recipe's name
    profile: str
    loss: str
    temperature: float
    seed: int
    own: bool  # the method's published objective (loss and temperature)
    metric: str
    status: str = "todo"  # todo | done | failed | interrupted | busy | not applicable
    value: float = math.nan
    wall_s: float = math.nan
    peak_mb: float = math.nan
    note: str = ""

    @property
    def key(self) -> str:
        return f"{self.loss}-t{self.temperature:g}-s{self.seed}"

    def overrides(self) -> list[str]:
        return [
            f"method.objective.loss={self.loss}",
            f"method.objective.temperature={self.temperature}",
            f"train.seed={self.seed}",
            "train.eval_before=false",  # a cell is compared with the other cells, not with its untrained model
            "train.baselines=false",
            "train.keep_start=false",  # a cell measures what its loss trains, not whether training helped
        ]


def _recipes(domains: list[str] | None, profile: str, explicit: list[str]) -> list[Path]:
    from .recipe import MAX_RECIPE_BYTES, find_recipe, parse_yaml, read_user_text, recipe_dirs

    if explicit:
        return [find_recipe(r) for r in explicit]
    found: dict[str, Path] = {}  # by file name: the first of recipe_dirs() wins (a symlinked folder counts once)
    for d in recipe_dirs():
        for f in sorted(d.glob("*.yaml")) if d.is_dir() else []:
            if f.name in found:
                continue
            raw = parse_yaml(read_user_text(f, "recipe", MAX_RECIPE_BYTES), f"recipe {f}") or {}
            if not isinstance(raw, dict):
                raise UserError(f"recipe {f} must be a mapping of keys (name, domain, model, data, method, ...).")
            matrix_recipe = "matrix" in raw  # a recipe takes part through its `matrix:` section
            if (
                matrix_recipe
                and profile in (raw.get("profiles") or {})
                and (not domains or raw.get("domain") in domains)
            ):
                found[f.name] = f
    if not found:
        raise UserError(
            f"no shipped recipe with a matrix section has a {profile!r} profile"
            + (f" in the domains {', '.join(domains)}" if domains else "")
            + "; name recipes with --recipes, or choose another --profile."
        )
    return list(found.values())


def plan(
    *,
    domains: list[str] | None = None,
    losses: list[str] | None = None,
    temperatures: list[float] | None = None,
    seeds: list[int] = (0, 1, 2),
    profile: str = "matrix",
    recipes: list[str] = (),
) -> list[Cell]:
    """Every cell of the matrix; a loss the method cannot take (e.g. ``supcon`` without labels) is a cell with
    status ``not applicable`` and the one-line reason."""
    from .recipe import load_recipe

    bad = [x for x in losses or () if x not in LOSSES]
    if bad:
        raise UserError(f"--losses: unknown loss(es) {', '.join(bad)}; choose from {', '.join(LOSSES)}.")
    cells = []
    for path in _recipes(domains, profile, list(recipes)):
        base = load_recipe(path, profile)
        objective = getattr(base.method, "objective", None)
        if objective is None:
            raise UserError(f"recipe {path}: method {base.method.name!r} has no objective slot (method.objective).")
        own_t = objective.temperature
        temps = temperatures or base.matrix.temperatures or [own_t / 2, own_t, own_t * 2]
        metric = base.matrix.metric or next(iter(base.paper.metrics), None) or "?"
        own_loss = objective.loss  # a published loss outside the slot (e.g. RnC's) still gets its own cells
        for loss in losses or ([own_loss] if own_loss not in LOSSES else []) + list(LOSSES):
            for t in temps:
                reason = ""
                try:
                    load_recipe(path, profile, [f"method.objective.loss={loss}", f"method.objective.temperature={t}"])
                except UserError as exc:
                    reason = str(exc).split(": ", 1)[-1].splitlines()[0][:300]
                for seed in seeds:
                    cell = Cell(
                        base.domain,
                        str(path),
                        base.name,
                        profile,
                        loss,
                        float(t),
                        int(seed),
                        own=loss == objective.loss and math.isclose(t, own_t),
                        metric=metric,
                    )
                    if reason:
                        cell.status, cell.note = "not applicable", reason
                    cells.append(cell)
    return cells


def _cell_dir(out: Path, cell: Cell) -> Path:
    return out / "cells" / cell.name / cell.key


class CellResult(BaseModel):
    """``cell.json``: a finished cell's result, validated when the matrix reads it back."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)
    value: float
    wall_s: float = Field(ge=0)
    peak_mb: float = Field(ge=0)
    run: str = Field(max_length=4096)


def _read_done(directory: Path, log=None) -> dict | None:
    """The cell's validated ``cell.json``, or None when absent or damaged (said in ``log``: the cell is then
    trained again, resuming its run, so a finished run only re-writes its result)."""
    from .runs import SMALL_MAX_BYTES
    from .safefs import read_json

    result = directory / "cell.json"
    if not os.path.lexists(result):
        return None
    try:
        return CellResult.model_validate(read_json(result, SMALL_MAX_BYTES, base=directory)).model_dump()
    except UnsafeFile as exc:
        problem = str(exc)
    except ValidationError as exc:
        first = exc.errors()[0]
        problem = f"{result}: {'.'.join(map(str, first['loc'])) or 'top level'}: {first['msg']}"
    if log is not None:
        log(f"{directory.parent.name} {directory.name}: cell.json is damaged ({problem[:300]}); reading the run again")
    return None


def _run_cell(cell: Cell, out: Path, data_root: str | None, threads: int, log) -> Cell:
    from .runs import Run

    directory = _cell_dir(out, cell)
    directory.mkdir(parents=True, exist_ok=True)
    claim = Run(directory)  # a cell folder is trained by one matrix process at a time
    try:
        claim.lock()
    except UserError as exc:
        cell.status, cell.note = "busy", str(exc)[:400]
        log(f"{cell.name} {cell.key}: skipped, {cell.note}")
        return cell
    try:
        return _run_locked_cell(cell, directory, data_root, threads, log)
    finally:
        claim.unlock()


def _run_locked_cell(cell: Cell, directory: Path, data_root: str | None, threads: int, log) -> Cell:
    done = _read_done(directory, log)
    if done is None:
        runs = [p for p in directory.iterdir() if p.is_dir() and not p.is_symlink()]
        resumable = [p for p in runs if list((p / "checkpoints").glob("step-*"))]
        for p in runs:  # started, but killed before its first checkpoint: start again
            if p not in resumable:
                safe_rmtree(p, directory)
        args = [sys.executable, "-m", "cl_domains.core.matrix", "--cell", json.dumps(asdict(cell)), str(directory)]
        if resumable:
            args += ["--resume", str(sorted(resumable)[-1])]
            log(f"{cell.name} {cell.key}: resuming {sorted(resumable)[-1].name}")
        else:
            log(f"{cell.name} {cell.key}: starting")
        if data_root:
            args += ["--data-root", str(data_root)]
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "CL_DOMAINS_MATRIX_THREADS": str(threads)}
        proc = subprocess.run(args, capture_output=True, text=True, env=env)
        done = _read_done(directory, log)
        if proc.returncode in (130, -2):  # Ctrl-C reached the cell's process too: it keeps its checkpoint
            cell.status, cell.note = "interrupted", "interrupted; resumes from its last checkpoint"
            log(f"{cell.name} {cell.key}: interrupted (resumes from its last checkpoint)")
            return cell
        if proc.returncode != 0 or done is None:
            tail = (proc.stdout + proc.stderr).strip().splitlines()[-3:]
            cell.status, cell.note = "failed", " | ".join(tail)[:400]
            log(f"{cell.name} {cell.key}: FAILED ({cell.note})")
            return cell
    else:
        log(f"{cell.name} {cell.key}: finished before, kept")
    cell.status = "done"
    cell.value, cell.wall_s, cell.peak_mb = done["value"], done["wall_s"], done["peak_mb"]
    return cell


def _cell_main(argv: list[str]) -> int:
    """In a cell's own process: train (or resume) the cell, then write ``cell.json`` atomically."""
    import argparse

    import torch

    from .recipe import load_recipe
    from .runs import atomic_write_text
    from .train import train_recipe

    ap = argparse.ArgumentParser()
    ap.add_argument("--cell", required=True)
    ap.add_argument("directory")
    ap.add_argument("--resume")
    ap.add_argument("--data-root")
    a = ap.parse_args(argv)
    cell = Cell(**json.loads(a.cell))
    torch.set_num_threads(int(os.environ.get("CL_DOMAINS_MATRIX_THREADS", "1")))
    t0 = time.time()
    try:
        if a.resume:
            run = train_recipe(resume=a.resume, data_root=a.data_root)
        else:
            recipe = load_recipe(cell.recipe, cell.profile, cell.overrides())
            run = train_recipe(recipe, out=a.directory, data_root=a.data_root)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    final = run.metrics.get("final", {})
    if cell.metric not in final:
        raise UserError(f"the matrix metric {cell.metric!r} is not among the test metrics: {', '.join(final)}.")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    result = {"value": final[cell.metric], "wall_s": time.time() - t0, "peak_mb": peak, "run": str(run.dir)}
    atomic_write_text(Path(a.directory) / "cell.json", json.dumps(result))
    return 0


def run_matrix(
    cells: list[Cell],
    out: str | Path,
    *,
    jobs: int = 1,
    threads: int | None = None,
    data_root: str | None = None,
    log=print,
) -> Path:
    """Run (or read back) every cell and write ``matrix.csv``, ``matrix.md`` and ``matrix.png`` in ``out``.
    ``threads`` per cell defaults to the CPU count divided by ``jobs`` (on a busy machine, 1 is often faster)."""
    from .progress import progress_bar
    from .runs import Run

    if not isinstance(jobs, int) or isinstance(jobs, bool) or jobs < 1:
        raise UserError(f"jobs = {jobs!r}: give the number of cells trained at once, 1 or more.")
    if threads is not None and (not isinstance(threads, int) or isinstance(threads, bool) or threads < 1):
        raise UserError(f"threads = {threads!r}: give the torch threads per cell, 1 or more.")
    if cells and all(c.status == "not applicable" for c in cells):
        first = cells[0]
        raise UserError(
            f"all {len(cells)} matrix cells are not applicable (e.g. {first.name} {first.loss}: {first.note}); "
            "choose other --losses or --recipes."
        )
    out = Run.check_out(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create the matrix folder {out}: {exc.strerror or exc}.") from None
    todo = [c for c in cells if c.status == "todo"]
    threads = threads or max(1, (os.cpu_count() or 1) // jobs)
    pool = ThreadPoolExecutor(max_workers=jobs)
    interrupted = False
    try:
        with progress_bar("matrix cells", len(todo)) as advance:
            list(pool.map(lambda c: (_run_cell(c, out, data_root, threads, log), advance()), todo))
    except KeyboardInterrupt:  # the running cells got Ctrl-C too: they end, keeping their checkpoints
        interrupted = True
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    write_outputs(cells, out)
    if interrupted or any(c.status == "interrupted" for c in cells):
        raise KeyboardInterrupt  # the caller says how to resume (the CLI: the same command)
    busy = [c for c in cells if c.status == "busy"]
    if busy:
        raise UserError(
            f"{len(busy)} of {len(cells)} matrix cells are being trained by another process "
            f"(first: {busy[0].name} {busy[0].key}: {busy[0].note}); run the same command again once it ends."
        )
    failed = [c for c in cells if c.status == "failed"]
    if failed:
        raise UserError(
            f"{len(failed)} of {len(cells)} matrix cells failed (first: {failed[0].name} {failed[0].key}: "
            f"{failed[0].note}); the finished ones are kept: run the same command again to retry."
        )
    return out


def _stats(values: list[float]) -> tuple[float, float]:
    n = len(values)
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    return mean, std


def summarize(cells: list[Cell]) -> list[dict]:
    """Per recipe and (loss, temperature): mean, std, change against the method's own objective, paired t-test."""
    from scipy import stats

    rows = []
    for name in dict.fromkeys(c.name for c in cells):
        mine = [c for c in cells if c.name == name and c.status == "done"]
        own = {c.seed: c.value for c in mine if c.own}
        for loss, t in dict.fromkeys((c.loss, c.temperature) for c in mine):
            group = sorted((c for c in mine if c.loss == loss and c.temperature == t), key=lambda c: c.seed)
            mean, std = _stats([c.value for c in group])
            paired = [(c.value, own[c.seed]) for c in group if c.seed in own]
            p = math.nan
            if len(paired) >= 2 and not group[0].own:
                diffs = [x - y for x, y in paired]
                p = (
                    1.0
                    if all(d == diffs[0] for d in diffs) and diffs[0] == 0
                    else float(stats.ttest_rel(*zip(*paired, strict=False)).pvalue)
                )
            own_mean = _stats(list(own.values()))[0] if own else math.nan
            gain = own_mean - mean if lower_is_better(group[0].metric) else mean - own_mean  # positive = better
            rows.append(
                {
                    "domain": group[0].domain,
                    "recipe": name,
                    "metric": group[0].metric,
                    "loss": loss,
                    "temperature": t,
                    "own": group[0].own,
                    "seeds": len(group),
                    "mean": mean,
                    "std": std,
                    "delta": mean - own_mean,
                    "gain": gain,
                    "gain_pct": gain / abs(own_mean) * 100 if own_mean else math.nan,
                    "p": p,
                }
            )
    return rows


def write_outputs(cells: list[Cell], out: Path) -> None:
    from .runs import atomic_write_text

    with open(out / "matrix.csv.tmp", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(
            [
                "domain",
                "recipe",
                "loss",
                "temperature",
                "seed",
                "metric",
                "value",
                "wall_s",
                "peak_mb",
                "status",
                "note",
            ]
        )
        for c in cells:
            w.writerow(
                [
                    c.domain,
                    c.name,
                    c.loss,
                    f"{c.temperature:g}",
                    c.seed,
                    c.metric,
                    _num(c.value),
                    _num(c.wall_s, 1),
                    _num(c.peak_mb, 0),
                    c.status,
                    c.note,
                ]
            )
    os.replace(out / "matrix.csv.tmp", out / "matrix.csv")
    rows = summarize(cells)
    atomic_write_text(out / "matrix.md", _markdown(rows, cells))
    _plot(rows, out / "matrix.png")


def _num(x: float, digits: int = 4) -> str:
    return "" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def _markdown(rows: list[dict], cells: list[Cell]) -> str:
    lines = [
        "# Loss x domain matrix",
        "",
        "Mean ± std over seeds of each recipe's test metric, per loss and temperature of the objective slot; "
        "**bold**: the best mean; *own*: the method's published objective. matrix.png shows each Δ in % of the own "
        "objective's mean, signed so that positive is better. Δ: difference from the own objective's "
        "mean; p: two-sided paired t-test over the seeds (scipy.stats.ttest_rel; the same seeds for every cell), "
        "significant when p < 0.05.",
        "",
    ]
    for name in dict.fromkeys(r["recipe"] for r in rows):
        mine = [r for r in rows if r["recipe"] == name]
        metric, lower = mine[0]["metric"], lower_is_better(mine[0]["metric"])
        best = (min if lower else max)(r["mean"] for r in mine)
        lines += [f"## {mine[0]['domain']}: {name} ({metric}, {'lower' if lower else 'higher'} is better)", ""]
        lines += [
            "| loss | temperature | seeds | mean ± std | Δ vs own | p | significant |",
            "|---|---:|---:|---:|---:|---:|---|",
        ]
        for r in mine:
            cell = f"{r['mean']:.4f} ± {r['std']:.4f}"
            cell = f"**{cell}**" if r["mean"] == best else cell
            loss = f"{r['loss']} (own)" if r["own"] else r["loss"]
            sig = "" if math.isnan(r["p"]) else ("yes" if r["p"] < 0.05 else "no")
            delta = "" if r["own"] else f"{r['delta']:+.4f}"
            lines.append(
                f"| {loss} | {r['temperature']:g} | {r['seeds']} | {cell} | {delta} | {_num(r['p'], 3)} | {sig} |"
            )
        skipped = {c.loss: c.note for c in cells if c.name == name and c.status == "not applicable"}
        for loss, note in skipped.items():  # one reason per loss (the temperatures' reasons differ only in t)
            lines.append(f"\n{loss}: not applicable ({note})")
        lines.append("")
    return "\n".join(lines) + "\n"


def _plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # columns: loss x the recipe's first / second temperature (domains use different temperatures); each box
    # shows its temperature, rows name the method's own objective
    recipes = list(dict.fromkeys(r["recipe"] for r in rows))
    if not recipes:  # no finished cell yet: nothing to draw
        return
    temps = {name: list(dict.fromkeys(r["temperature"] for r in rows if r["recipe"] == name)) for name in recipes}

    def column(r: dict) -> str:
        return f"{r['loss']} t{temps[r['recipe']].index(r['temperature']) + 1}"

    columns = list(dict.fromkeys(column(r) for r in rows))
    grid = [[math.nan] * len(columns) for _ in recipes]
    labels = [[""] * len(columns) for _ in recipes]
    for r in rows:
        i = recipes.index(r["recipe"])
        j = columns.index(column(r))
        grid[i][j] = 0.0 if r["own"] else r["gain_pct"]
        labels[i][j] = ("own" if r["own"] else f"{r['gain_pct']:+.1f}") + f"\nt={r['temperature']:g}"
    owns = {r["recipe"]: f"{r['loss']} t={r['temperature']:g}" for r in rows if r["own"]}
    fig, ax = plt.subplots(figsize=(max(6, 1.0 * len(columns) + 3), 0.8 * len(recipes) + 2))
    finite = [abs(v) for row in grid for v in row if not math.isnan(v)] or [1.0]
    scale = max(finite) or 1.0
    im = ax.imshow(grid, cmap="RdBu", vmin=-scale, vmax=scale, aspect="auto")
    ax.set_xticks(range(len(columns)), columns, rotation=45, ha="right")
    ax.set_yticks(range(len(recipes)), [f"{name}\n(own: {owns.get(name, '?')})" for name in recipes])
    for i, row in enumerate(grid):
        for j, v in enumerate(row):
            if not math.isnan(v):
                ax.text(j, i, labels[i][j], ha="center", va="center", fontsize=7)
    fig.colorbar(im, ax=ax, label="% change vs the method's own objective (positive = better)")
    ax.set_title("Loss x domain matrix")
    fig.tight_layout()
    tmp = path.with_name(path.name + ".tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    os.replace(tmp, path)


if __name__ == "__main__":
    try:
        sys.exit(_cell_main(sys.argv[1:]))
    except UserError as exc:  # one paragraph, which the matrix shows as the cell's note
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
