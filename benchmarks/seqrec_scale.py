"""How seqrec scales with the size of an interaction log: preparation time, time of a fixed number of training
steps, time of one evaluation block, peak memory (measured and estimated), for synthetic logs of growing size.

Each size runs in its own process (so its peak RSS is its own). A synthetic log has string user and item ids
("u123", "B00000042"), 5-15 events per user, Zipf-like item popularity and integer timestamps; it is prepared
with 5-core filtering, then SASRec (the Beauty recipe's model, batch 256, CE over all items) takes ``--steps``
optimiser steps. A full epoch or evaluation is not run: the evaluation time is extrapolated from one block.

    python benchmarks/seqrec_scale.py                       # writes benchmarks/results/seqrec-scale.md
    python benchmarks/seqrec_scale.py --sizes 10000:5000 --steps 20 --out /tmp/scale.md
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from itertools import islice
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SIZES = ["10000:5000", "100000:20000", "1000000:100000"]


def synthetic_log(n_users: int, n_items: int, seed: int = 0):
    import pandas as pd

    g = np.random.default_rng(seed)
    lengths = g.integers(5, 16, n_users)
    n = int(lengths.sum())
    # Zipf-like popularity (exponent 0.8) over a random permutation of the items
    weights = 1.0 / np.arange(1, n_items + 1) ** 0.8
    items = g.permutation(n_items)[g.choice(n_items, n, p=weights / weights.sum())]
    users = np.repeat(np.arange(n_users), lengths)
    times = g.integers(0, 10**9, n)
    return pd.DataFrame(
        {
            "user_id": np.char.add("u", users.astype(str)),
            "item_id": np.char.add("B", np.char.zfill(items.astype(str), 8)),
            "timestamp": times,
        }
    )


def peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def one(n_users: int, n_items: int, steps: int) -> dict:
    import torch
    import yaml

    from cl_domains.core.recipe import load_recipe
    from cl_domains.core.task import StepContext
    from cl_domains.seqrec.evaluate import target_ranks
    from cl_domains.seqrec.sasrec import SASRecTask

    torch.set_num_threads(1)
    out = {"users": n_users, "items": n_items}
    t = time.perf_counter()
    df = synthetic_log(n_users, n_items)
    out["rows"], out["generate_s"] = len(df), time.perf_counter() - t
    recipe = yaml.safe_load((REPO / "recipes/sasrec_beauty.yaml").read_text())
    recipe["data"] = {"interactions": "<synthetic>", "k_core": 5}
    recipe.pop("profiles")
    recipe["default_profile"] = None
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "r.yaml").write_text(yaml.safe_dump(recipe))
        r = load_recipe(Path(tmp) / "r.yaml")
    rss_before = peak_rss()
    t, cpu = time.perf_counter(), time.process_time()
    torch.manual_seed(0)
    task = SASRecTask(r, None, torch.device("cpu"), frame=df)  # prepare, leave-one-out split, estimate check, model
    out["prepare_s"] = time.perf_counter() - t
    out["prepare_cpu_s"] = time.process_time() - cpu
    del df
    s = task.data.seqs
    out.update(
        kept_users=s.n_users,
        kept_items=s.n_items,
        kept_rows=len(s.items),
        train_samples=task.data.n_train,
        estimate=task.memory_estimate(),
        rss_after_prepare=peak_rss(),
        rss_before_prepare=rss_before,
    )
    opt = torch.optim.AdamW(task.model.parameters(), lr=1e-3)
    task.model.train()
    batches = islice(task.batches(0), steps + 1)
    for i, batch in enumerate(batches):
        if i == 1:
            t, cpu = time.perf_counter(), time.process_time()  # the first step warms up allocators
        loss = task.loss(batch, StepContext(i, 0, i, 2020, torch.device("cpu")))
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    out["step_ms"] = (time.perf_counter() - t) / steps * 1e3
    out["step_cpu_ms"] = (time.process_time() - cpu) / steps * 1e3
    out["epoch_steps"] = task.num_batches(0)
    task.model.eval()
    users = torch.arange(min(task.recipe.eval.batch_size, s.n_users))
    t = time.perf_counter()
    with torch.no_grad():
        seqs, lengths, targets = task.data.eval_batch(users, "test")
        target_ranks(task.encoder.scores(task.encoder(seqs, lengths)), targets - 1)
    out["eval_block_s"] = time.perf_counter() - t
    out["eval_blocks"] = -(-s.n_users // len(users))
    out["peak_rss"] = peak_rss()
    return out


def refusal_example() -> str:
    """The error a log too large for 24 GiB gets, from the estimate alone (nothing is allocated)."""
    import torch

    from cl_domains.core.errors import UserError
    from cl_domains.seqrec.memory import check_memory, memory_estimate

    parts = memory_estimate(
        n_users=20_000_000, n_items=5_000_000, n_interactions=200_000_000, n_train=140_000_000, max_len=50,
        hidden=64, layers=2, heads=2, inner=256, batch_size=256, eval_batch_size=1024,
    )  # fmt: skip
    try:
        check_memory(parts, 24 * 2**30 / 1e9, torch.device("cpu"), "a 20M-user log", "5,000,000 items")
    except UserError as exc:
        return str(exc)
    return "(fits)"


def gb(n: float) -> str:
    return f"{n / 1e9:.2f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", nargs="+", default=SIZES, help="users:items")
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--out", default=str(REPO / "benchmarks/results/seqrec-scale.md"))
    ap.add_argument("--one", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        u, i = map(int, args.one.split(":"))
        print("RESULT " + json.dumps(one(u, i, args.steps)), flush=True)
        return
    rows = []
    for size in args.sizes:
        proc = subprocess.run(
            [sys.executable, __file__, "--one", size, "--steps", str(args.steps)], capture_output=True, text=True
        )
        line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
        if line is None:
            print(proc.stdout[-2000:], proc.stderr[-4000:], file=sys.stderr)
            rows.append({"size": size, "error": (proc.stderr.strip().splitlines() or ["?"])[-1][:300]})
            continue
        r = json.loads(line[7:])
        rows.append(r)
        print(json.dumps(r), flush=True)
    write_report(rows, args.steps, Path(args.out))


def write_report(rows: list[dict], steps: int, out: Path) -> None:
    lines = [
        "# seqrec: scale with the size of an interaction log",
        "",
        f"`python benchmarks/seqrec_scale.py --steps {steps}` on {platform.machine()}, 1 torch thread, CPU "
        "(a 2-core machine shared with other jobs: wall times are upper bounds, the CPU time of the process in "
        "parentheses). Synthetic logs: string ids, 5-15 events per user, "
        "Zipf(0.8) item popularity; 5-core filtered; SASRec with the Beauty recipe (hidden 64, 2 layers, window 50, "
        "batch 256, CE over all items). Preparation = ids, filter, stable time sort, leave-one-out index and model "
        "(from an in-memory DataFrame). Step time: mean of "
        f"{steps} optimiser steps after one warm-up step; epoch time = step time x steps per epoch (wall, and CPU in parentheses: what an unshared core would take). Evaluation: "
        "one block of 1024 users ranked against all items, times the number of blocks. Peak memory: the process's "
        "peak RSS (including the DataFrame of the log); the estimate is the task's own check (no DataFrame).",
        "",
        "| users | items | interactions (kept) | prepare s (CPU s) | step ms (CPU ms) | steps/epoch | epoch min, est. (CPU) "
        "| eval block s | full eval min (est.) | peak RSS GB | RSS before prepare GB | estimated peak GB |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['size']} | | | failed: {r['error']} |")
            continue
        lines.append(
            f"| {r['kept_users']:,} | {r['kept_items']:,} | {r['kept_rows']:,} | {r['prepare_s']:.1f} "
            f"({r['prepare_cpu_s']:.1f}) | {r['step_ms']:.0f} ({r['step_cpu_ms']:.0f}) | {r['epoch_steps']:,} | {r['step_ms'] * r['epoch_steps'] / 6e4:.1f} "
            f"({r['step_cpu_ms'] * r['epoch_steps'] / 6e4:.1f}) "
            f"| {r['eval_block_s']:.2f} | {r['eval_block_s'] * r['eval_blocks'] / 60:.1f} | {gb(r['peak_rss'])} "
            f"| {gb(r['rss_before_prepare'])} | {gb(r['estimate']['peak'])} |"
        )
    lines += [
        "",
        "A log too large stops before training, from the estimate alone (20M users, 5M items, 200M events, 24 GiB):",
        "",
        "> " + refusal_example(),
        "",
    ]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
