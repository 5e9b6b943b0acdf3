"""Conformance cases of the time-series estimators: a two-class ``.ts`` pair of a few short series, 2 steps."""

from __future__ import annotations

import numpy as np

from cl_domains.timeseries import AutoTCL, TS2Vec
from cl_domains.timeseries.ts_format import read_ts
from conformance import Case

TINY = {
    "model": {"depth": 1, "hidden": 8, "output_dims": 8},
    "train": {"max_steps": 2, "eval_every": 2, "batch_size": 4},
}


def _write(path, n: int, seed: int) -> None:
    """Class a: a slow sine, class b: a fast one (16 steps, one dimension)."""
    rng = np.random.default_rng(seed)
    t = np.arange(16)
    rows = []
    for i in range(n):
        lab = "ab"[i % 2]
        x = np.sin((0.2 if lab == "a" else 0.9) * t + rng.uniform(0, 6)) + 0.1 * rng.normal(size=16)
        rows.append(",".join(f"{v:.4f}" for v in x) + f":{lab}")
    head = ["@problemName Toy", "@univariate true", "@equalLength true", "@seriesLength 16", "@classLabel true a b"]
    path.write_text("\n".join([*head, "@data", *rows]) + "\n")


def _files(ctx):
    train, test = ctx.tmp / "toy_TRAIN.ts", ctx.tmp / "toy_TEST.ts"
    if not train.exists():
        _write(train, 12, 0)
        _write(test, 6, 1)
    return train, test


def _case(cls, embed_file: bool = False) -> Case:
    return Case(
        make=lambda ctx: cls(data={"test": str(_files(ctx)[1])}, **TINY),
        fit_args=lambda ctx: (str(_files(ctx)[0]),),
        inputs=lambda ctx: read_ts(_files(ctx)[1])[0],
        n=6,
        embed_file=(lambda ctx: _files(ctx)[1]) if embed_file else None,
    )


CASES = {"ts2vec": _case(TS2Vec, embed_file=True), "autotcl": _case(AutoTCL)}
