"""Conformance cases of the regression estimators: 60 rows of a linear table, one epoch."""

from __future__ import annotations

import numpy as np

from cl_domains.regression import L1Regressor, RankNContrast, SupReMix
from conformance import Case

TINY = {"train": {"epochs": 1, "batch_size": 16, "eval_every": 2}, "model": {"hidden": [16], "projection": 8}}


def _xy():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 3)) * [1.0, 10.0, 0.1] + 5
    return x, x @ np.array([1.0, 0.2, 3.0]) + 0.1 * rng.normal(size=60)


def _table(ctx):
    path = ctx.tmp / "inputs.csv"
    x = _xy()[0][:7]
    path.write_text("a,b,c\n" + "".join(",".join(repr(float(v)) for v in row) + "\n" for row in x))
    return path


def _case(cls, embed_file: bool = False) -> Case:
    return Case(
        make=lambda ctx: cls(**TINY),
        fit_args=lambda ctx: _xy(),
        inputs=lambda ctx: _xy()[0][:7],
        n=7,
        predict=True,
        embed_file=_table if embed_file else None,
    )


CASES = {"supremix": _case(SupReMix, embed_file=True), "rnc": _case(RankNContrast), "l1": _case(L1Regressor)}
