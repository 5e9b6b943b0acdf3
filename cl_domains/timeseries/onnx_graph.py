"""The time-series encoder as an ONNX graph: raw series ``[N, T, C]`` -> the max-pooled embedding ``embed`` returns
(the training data's standardisation and the NaN padding handled inside the graph)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

__all__ = ["onnx_graph"]


class _DirectTrend(nn.Module):
    """The trend head computed by its literal convolutions (its FFT form has no ONNX operator); same values."""

    def __init__(self, head: nn.Module):
        super().__init__()
        self.head = head

    def forward(self, x: Tensor, last: bool = False) -> Tensor:
        return self.head.reference(x)


class _Pooled(nn.Module):
    def __init__(self, net: nn.Module, scaler: tuple | None):
        super().__init__()
        self.net = copy.deepcopy(net).cpu().eval()
        if self.net.trend is not None:
            self.net.trend = _DirectTrend(self.net.trend)
        mean, std = scaler if scaler is not None else (np.zeros(1), np.ones(1))
        self.register_buffer("mean", torch.as_tensor(np.asarray(mean), dtype=torch.float32))
        self.register_buffer("std", torch.as_tensor(np.asarray(std), dtype=torch.float32))

    def forward(self, series: Tensor) -> Tensor:
        x = (series - self.mean) / self.std
        z = self.net(x, mask=False)
        present = ~torch.isnan(x).all(-1, keepdim=True)
        return z.masked_fill(~present, float("-inf")).max(1).values


def onnx_graph(net: nn.Module, scaler: tuple | None, panel: Callable[[Any], np.ndarray]):
    """The :class:`cl_domains.core.export.OnnxGraph` of a fitted time-series encoder.

    Args:
        net: the trained :class:`cl_domains.timeseries.networks.TS2VecNet`.
        scaler: ``(mean, std)`` of the training series (``None``: inputs are not standardised).
        panel: raw inputs -> the checked, unscaled ``[N, T, C]`` array.

    Returns:
        The graph: input ``series`` ``[batch, time, channels]`` float32, raw (NaN pads a shorter series).
    """
    from ..core.export import OnnxGraph

    module = _Pooled(net, scaler)
    example = torch.randn(2, 16, net.input_dims)

    def feeds(x: Any) -> dict:
        return {"series": np.ascontiguousarray(panel(x), dtype=np.float32)}

    return OnnxGraph(module, {"series": example}, feeds, {"series": {0: "batch", 1: "time"}})
