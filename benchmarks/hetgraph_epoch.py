"""Peak RAM and time of full-batch training epochs of a hetgraph recipe (default: MEOW on DBLP).

    python benchmarks/hetgraph_epoch.py [--recipe meow_dblp] [--epochs 2] [--threads 1]

Run one recipe per process: the peak resident set size (ru_maxrss) covers loading, graph
preparation and the epochs. Prints one markdown row.
"""

from __future__ import annotations

import argparse
import resource
import time

import torch

from cl_domains.core import registry
from cl_domains.core.recipe import load_recipe
from cl_domains.core.task import StepContext


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--recipe", default="meow_dblp")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    recipe = load_recipe(f"recipes/{args.recipe}.yaml", "paper")
    _, build = registry.domain("hetgraph").methods[recipe.method.name]
    t0 = time.time()
    task = build(recipe, None, torch.device("cpu"))
    prep = time.time() - t0
    opt = torch.optim.AdamW(task.model.parameters(), lr=recipe.train.lr)
    times = []
    for epoch in range(args.epochs):
        t = time.time()
        out = task.loss(None, StepContext(epoch, epoch, 0, recipe.train.seed, torch.device("cpu")))
        (out[0] if isinstance(out, tuple) else out).backward()
        opt.step()
        opt.zero_grad()
        times.append(time.time() - t)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"| {args.recipe} | {args.threads} | {prep:.1f} | {min(times):.1f} | {peak:.2f} |")


if __name__ == "__main__":
    main()
