"""``with eval_mode(model):`` -- evaluation mode for a block, every module's mode restored afterwards."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext

import torch
from torch import nn

__all__ = ["eval_mode"]


@contextmanager
def eval_mode(model: nn.Module, *, no_grad: bool = True) -> Iterator[nn.Module]:
    """Put ``model`` in eval mode (and, by default, disable autograd) for the block; on exit, even by an
    exception, each submodule gets back the mode it had."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        with torch.no_grad() if no_grad else nullcontext():
            yield model
    finally:
        for m, training in modes:
            m.training = training
