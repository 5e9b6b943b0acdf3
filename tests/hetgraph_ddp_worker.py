"""Run under torchrun (or plainly for one process): mini-batch MEOW on a tiny synthetic graph; rank 0 writes the
run's final metrics and loss curve to OUT_DIR/result.json.

    hetgraph_ddp_worker.py OUT_DIR [SEED]"""

import json
import sys
from pathlib import Path

import torch

from cl_domains.core import distributed as D


def tiny_graph(n: int = 480, seed: int = 0):
    """``item`` nodes of 3 classes with noisy features; each item has 3 users (random) and one tag of its class
    (3 tags per class); meta-paths item-user-item and item-tag-item."""
    from torch_geometric.data import HeteroData

    g = torch.Generator().manual_seed(seed)
    d = HeteroData()
    y = torch.arange(n) % 3
    d["item"].x = torch.randn(n, 16, generator=g) + torch.nn.functional.one_hot(y, 16).float()
    d["item"].y = y
    d["user"].num_nodes = n // 2
    d["item", "by", "user"].edge_index = torch.stack(
        [torch.arange(n).repeat(3), torch.randint(n // 2, (3 * n,), generator=g)]
    )
    d["tag"].num_nodes = 9
    flip = torch.rand(n, generator=g) < 0.3  # a noisy tag for 30% of the items
    cls = torch.where(flip, torch.randint(3, (n,), generator=g), y)
    d["item", "has", "tag"].edge_index = torch.stack([torch.arange(n), cls * 3 + torch.randint(3, (n,), generator=g)])
    return d


METAPATHS = [["item", "user", "item"], ["item", "tag", "item"]]
SETTINGS = dict(
    model={"batching": "minibatch"},
    method={"clusters": [6, 12]},
    train={"epochs": 4, "batch_size": 96, "eval_every": "epoch", "checkpoint_every": 1000, "baselines": False},
    eval={"repeats": 4, "steps": 50, "cluster_runs": 2, "rates": [20]},
)


def main(out: str, seed: int = 0) -> None:
    from cl_domains.hetgraph import MEOW

    D.init_from_env()
    try:
        torch.set_num_threads(1)
        settings = {**SETTINGS, "train": {**SETTINGS["train"], "seed": seed}}
        est = MEOW(**settings, out=out).fit(tiny_graph(), "item", METAPATHS)
        if D.rank() == 0:
            metrics = json.loads((Path(est.run_dir_) / "metrics.json").read_text())
            losses = [v for _, v in metrics["history"]["loss"]]
            (Path(out) / "result.json").write_text(json.dumps({"final": metrics["final"], "loss": losses}))
    finally:
        D.shutdown()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 0)
