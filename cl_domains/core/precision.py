"""Mixed precision and compilation for the training loop (``train.precision``, ``train.compile``).

``bf16`` / ``fp16`` run the task's forward passes under ``torch.autocast``; ``fp16`` also scales the loss with a
gradient scaler (steps with non-finite gradients are skipped and the scale lowered, as torch's scaler does).
Contrastive losses are computed in float32 whatever the autocast state (:func:`float32`): their logits are
similarities divided by a small temperature, where bf16's 8-bit mantissa would shift the loss and its gradients.
Parameters, optimiser state and evaluation stay in float32.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, TypeVar

import torch

__all__ = ["PRECISIONS", "autocast", "grad_scaler", "float32", "to_float32"]

PRECISIONS = ("fp32", "bf16", "fp16")
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
F = TypeVar("F", bound=Callable[..., Any])


def autocast(precision: str, device: torch.device) -> AbstractContextManager:
    """The autocast context of a training forward pass.

    Args:
        precision: ``fp32`` (no autocast), ``bf16`` or ``fp16``.
        device: the training device.

    Returns:
        A context manager.
    """
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=_DTYPES[precision])


def grad_scaler(precision: str, device: torch.device) -> torch.amp.GradScaler:
    """A gradient scaler, enabled for ``fp16`` only (elsewhere its methods pass through)."""
    return torch.amp.GradScaler(device.type, enabled=precision == "fp16")


def to_float32(x: Any) -> Any:
    """``x`` with every half-precision tensor (also inside tuples, lists and dicts) cast to float32."""
    if isinstance(x, torch.Tensor):
        return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
    if isinstance(x, (tuple, list)):
        return type(x)(to_float32(v) for v in x)
    if isinstance(x, dict):
        return {k: to_float32(v) for k, v in x.items()}
    return x


def _device_type(args: tuple, kwargs: dict) -> str | None:
    for v in (*args, *kwargs.values()):
        if isinstance(v, torch.Tensor):
            return v.device.type
    return None


def float32(fn: F) -> F:
    """Decorate a loss: under autocast it runs with autocast off on float32 inputs (a no-op without autocast)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        dev = _device_type(args, kwargs)
        if dev is None or not torch.is_autocast_enabled(dev):
            return fn(*args, **kwargs)
        with torch.autocast(dev, enabled=False):
            return fn(*to_float32(args), **to_float32(kwargs))

    return wrapper  # type: ignore[return-value]
