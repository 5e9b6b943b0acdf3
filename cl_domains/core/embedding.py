"""Batch inference from files: what ``cl-domains embed MODEL_DIR --data FILE --out FILE`` does."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .errors import UserError

__all__ = ["embed_file", "write_embeddings"]

_FORMATS = (".parquet", ".npy")


def _chunks(inputs: Any, size: int) -> list[Any] | None:
    """``inputs`` cut into pieces of ``size`` rows when it is a list or an array; ``None`` otherwise (embedded whole:
    e.g. a graph or an interaction log, whose rows are not independent)."""
    if isinstance(inputs, (list, np.ndarray)) and len(inputs) > size:
        return [inputs[i : i + size] for i in range(0, len(inputs), size)]
    return None


def write_embeddings(path: Path, ids: list, z: np.ndarray) -> None:
    """Write embeddings with their ids.

    Args:
        path: ``.parquet``: columns ``id`` and ``e0..e{d-1}`` (float32); ``.npy``: the array, and the ids one per
            line in ``<stem>.ids.txt`` beside it.
        ids: one id per row of ``z``.
        z: ``[n, d]`` float32.
    """
    if path.suffix == ".npy":
        np.save(path, z)
        path.with_suffix(".ids.txt").write_text("".join(f"{i}\n" for i in ids), encoding="utf-8")
        return
    import pandas as pd

    frame = pd.DataFrame(z, columns=[f"e{j}" for j in range(z.shape[1])])
    frame.insert(0, "id", [str(i) for i in ids])
    frame.to_parquet(path, index=False)


def embed_file(model_dir: str | Path, data: str | Path, out: str | Path, *, batch_size: int = 1024) -> np.ndarray:
    """Embed the inputs of ``data`` with the saved model of ``model_dir`` and write them to ``out``.

    Args:
        model_dir: a model directory (see :mod:`cl_domains.core.modeldir`).
        data: a file in a format the model's domain reads (its estimator's ``read_inputs``).
        out: ``.parquet`` or ``.npy`` (see :func:`write_embeddings`).
        batch_size: rows embedded at once (a progress bar shows on a terminal when there are several batches).

    Returns:
        The embeddings written.
    """
    from rich.progress import track

    from .estimator import load
    from .runs import console

    out, data = Path(out), Path(data)
    if out.suffix not in _FORMATS:
        raise UserError(f"--out {out}: write .parquet or .npy (got {out.suffix or 'no extension'}).")
    if not out.parent.is_dir():
        raise UserError(f"--out {out}: the folder {out.parent} does not exist.")
    if not data.exists():
        raise UserError(f"--data {data}: no such file or folder.")
    est = load(model_dir)
    ids, inputs = est.read_inputs(data)
    if len(ids) == 0:
        raise UserError(f"--data {data}: no inputs found.")
    pieces = _chunks(inputs, batch_size) if est.chunked_inference else None
    if pieces is None:
        z = est.embed(inputs)
    else:
        shown = track(pieces, description="embedding", console=console, disable=not console.is_terminal)
        z = np.concatenate([est.embed(p) for p in shown])
    if len(z) != len(ids):
        raise UserError(f"--data {data}: {len(ids)} ids but {len(z)} embeddings (the reader of this domain is wrong).")
    write_embeddings(out, list(ids), z)
    return z
