"""How much memory a seqrec training needs, checked before the model is built.

The estimate is deliberately simple (float32 everywhere, Adam's two moments, the largest transient blocks):

- sequences: 8 bytes per interaction plus 16 per training prefix and 24 per user (flat arrays and offsets);
- model: every parameter 4 times (weights, gradient, two Adam moments); the item table dominates;
- one training step: the ``batch x n_items`` logits three times (scores, softmax, gradient) plus the
  encoder's activations (three sequences per example for contrastive methods);
- one evaluation block: ``eval.batch_size x n_items`` scores (12 bytes each: float32 scores and the
  comparisons; the most-popular baseline ranks in float64).

The peak is sequences + model + the larger of a training step and an evaluation block, plus a fixed
allowance for the runtime.
"""

from __future__ import annotations

import os

import torch

from ..core.errors import UserError

__all__ = ["memory_estimate", "available_memory", "check_memory", "RUNTIME_BYTES"]

RUNTIME_BYTES = 300 * 2**20  # torch, numpy and the interpreter


def memory_estimate(
    *,
    n_users: int,
    n_items: int,
    n_interactions: int,
    n_train: int,
    max_len: int,
    hidden: int,
    layers: int,
    heads: int,
    inner: int,
    batch_size: int,
    eval_batch_size: int,
    views: int = 1,
) -> dict[str, int]:
    """Bytes per part (``sequences``, ``model``, ``train step``, ``eval block``) and their ``peak``."""
    params = (n_items + 2 + max_len) * hidden + layers * (4 * hidden * hidden + 2 * hidden * inner + 10 * hidden)
    window = min(max_len, max(1, round(n_interactions / max(n_users, 1))))  # typical padded width of a batch
    activations = views * batch_size * window * layers * (10 * hidden + 2 * inner + 2 * heads * window) * 4
    parts = {
        "sequences": 8 * n_interactions + 16 * n_train + 24 * n_users,
        "model": 16 * params,
        "train step": 12 * batch_size * n_items + activations,
        "eval block": 12 * eval_batch_size * n_items,
    }
    parts["peak"] = parts["sequences"] + parts["model"] + max(parts["train step"], parts["eval block"]) + RUNTIME_BYTES
    return parts


def available_memory(device: torch.device) -> int | None:
    """Free memory where training happens: the GPU's free memory, else the machine's available RAM."""
    device = torch.device(device)
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _gb(n: int) -> str:
    return f"{n / 1e9:,.2f} GB"


def check_memory(parts: dict[str, int], limit_gb: float | None, device: torch.device, source: str, size: str) -> None:
    """Raise :class:`UserError` before training when the estimated peak exceeds ``limit_gb`` (default: the
    free memory of ``device``)."""
    limit = int(limit_gb * 1e9) if limit_gb is not None else available_memory(device)
    if limit is None or parts["peak"] <= limit:
        return
    detail = ", ".join(f"{name} {_gb(v)}" for name, v in parts.items() if name != "peak")
    where = "data.memory_limit_gb" if limit_gb is not None else f"free memory on {device}"
    raise UserError(
        f"{source} ({size}) needs about {_gb(parts['peak'])} to train ({detail}), more than the "
        f"{_gb(limit)} available ({where}). Lower train.batch_size or eval.batch_size, filter the log "
        "(data.k_core), lower model.hidden, or train on a machine with more memory."
    )
