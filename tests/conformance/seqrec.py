"""Conformance cases of the seqrec estimators: a 30-user random log, 2 training steps of a 1-layer encoder."""

from __future__ import annotations

import numpy as np
import pandas as pd

from cl_domains.seqrec import CL4SRec, MCLRec, SASRec

from . import Case

TINY = {
    "model": {"hidden": 16, "layers": 1, "heads": 2, "inner": 32, "max_len": 8},
    "train": {"max_steps": 2, "batch_size": 16, "eval_every": None, "eval_before": False, "checkpoint_every": 2},
}
HISTORIES = [["i001", "i002"], ["i003"], ["i010", "i004", "i010"]]


def log(n_users: int = 30, n_items: int = 25, seed: int = 0) -> pd.DataFrame:
    """Six events per user, string ids, numeric times."""
    g = np.random.default_rng(seed)
    rows = [(f"u{u}", f"i{i:03d}", t) for u in range(n_users) for t, i in enumerate(g.integers(0, n_items, 6))]
    return pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])


def log_file(ctx) -> str:
    path = ctx.tmp / "log.csv"
    log().to_csv(path, index=False)
    return path


def case(cls, **kw) -> Case:
    return Case(
        make=lambda ctx: cls(**TINY),
        fit_args=lambda ctx: (log(),),
        inputs=lambda ctx: HISTORIES,
        n=len(HISTORIES),
        predict=True,
        **kw,
    )


CASES = {
    "sasrec": case(SASRec, embed_file=log_file, eval_data=lambda ctx: log()),
    "cl4srec": case(CL4SRec),
    "mclrec": case(MCLRec),
}
