"""The TS2Vec encoder (Yue et al., AAAI 2022, §3.1) and the CoST trend head (Woo et al., ICLR 2022, §3.2).

``TS2VecNet``: per-timestamp input projection -> optional timestamp masking (training only) ->
a stack of residual blocks of two dilated ``same``-padded convolutions (dilation 2^i) -> dropout.
NaN timestamps (padding of ragged series) are zeroed at the input and masked.
``model.backbone`` may swap the dilated convolutions for a tsai architecture (:mod:`.tsai_backbone`).
``TrendHead``: the mean of causal Conv1d outputs with kernel sizes 1, 2, 4, ..., ``max_kernel``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .tsai_backbone import tsai_features

__all__ = ["DilatedConvEncoder", "TS2VecNet", "TrendHead", "Backbone"]


class _SameConv(nn.Module):
    def __init__(self, cin: int, cout: int, kernel: int, dilation: int):
        super().__init__()
        field = (kernel - 1) * dilation + 1
        self.conv = nn.Conv1d(cin, cout, kernel, padding=field // 2, dilation=dilation)
        self.trim = 1 if field % 2 == 0 else 0

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv(x)
        return out[..., : out.shape[-1] - self.trim] if self.trim else out


class _Block(nn.Module):
    def __init__(self, cin: int, cout: int, kernel: int, dilation: int, final: bool):
        super().__init__()
        self.conv1 = _SameConv(cin, cout, kernel, dilation)
        self.conv2 = _SameConv(cout, cout, kernel, dilation)
        self.skip = nn.Conv1d(cin, cout, 1) if cin != cout or final else None

    def forward(self, x: Tensor) -> Tensor:
        res = x if self.skip is None else self.skip(x)
        return self.conv2(F.gelu(self.conv1(F.gelu(x)))) + res


class DilatedConvEncoder(nn.Module):
    """Residual blocks with dilations 1, 2, 4, ...; ``channels[i]`` is block i's width. ``[B, C, T]``."""

    def __init__(self, cin: int, channels: list[int], kernel: int = 3):
        super().__init__()
        widths = [cin, *channels]
        self.blocks = nn.Sequential(
            *[_Block(widths[i], widths[i + 1], kernel, 2**i, i == len(channels) - 1) for i in range(len(channels))]
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.blocks(x)


class TrendHead(nn.Module):
    """CoST's trend feature disentangler: mean of causal convolutions with kernels 1..max_kernel (powers of 2).

    The mean of causal convolutions is one causal convolution whose lag-``l`` weight is the mean
    of the kernels' lag-``l`` weights (all start at lag 0), so it is computed once, by FFT
    (``O(T log T)`` instead of ``O(T * max_kernel)``); :meth:`reference` is the literal sum.
    """

    def __init__(self, dim: int, out: int, max_kernel: int = 128):
        super().__init__()
        self.kernels = [2**i for i in range(int(math.log2(max_kernel)) + 1)]
        self.convs = nn.ModuleList([nn.Conv1d(dim, out, k, padding=k - 1) for k in self.kernels])

    def reference(self, x: Tensor) -> Tensor:
        t = x.shape[-1]
        return torch.stack([conv(x)[..., :t] for conv in self.convs]).mean(0)

    def lag_kernel(self) -> Tensor:
        """``[out, in, K]``: entry ``l`` multiplies ``x[t - l]``."""
        k_max = self.kernels[-1]
        w = self.convs[0].weight.new_zeros(self.convs[0].out_channels, self.convs[0].in_channels, k_max)
        for conv, k in zip(self.convs, self.kernels, strict=False):
            w = w + F.pad(conv.weight.flip(-1), (0, k_max - k))
        return w / len(self.convs)

    def forward(self, x: Tensor, last: bool = False) -> Tensor:
        """``[B, C, T]`` -> ``[B, out, T]`` (``last``: only the last timestamp, ``[B, out, 1]``)."""
        bias = torch.stack([c.bias for c in self.convs]).mean(0)
        w = self.lag_kernel()
        t, k = x.shape[-1], w.shape[-1]
        if last:
            recent = x[..., max(0, t - k) :].flip(-1)  # lags 0, 1, ...
            return (torch.einsum("bil,oil->bo", recent, w[..., : recent.shape[-1]]) + bias).unsqueeze(-1)
        n = 1 << (t + k - 1).bit_length()
        y = torch.einsum("bif,oif->bof", torch.fft.rfft(x, n), torch.fft.rfft(w, n))
        return torch.fft.irfft(y, n)[..., :t] + bias.unsqueeze(-1)


class TS2VecNet(nn.Module):
    """``[B, T, C_in]`` -> ``[B, T, out]``; ``trend=True`` appends the CoST trend head (AutoTCL's forecasting encoder).
    ``backbone`` (``{"name": "tsai", "arch": ..., "kwargs": {...}}``) replaces the dilated convolutions
    (``depth`` and ``kernel`` then unused) with a tsai architecture's feature extractor."""

    def __init__(
        self,
        input_dims: int,
        output_dims: int = 320,
        hidden: int = 64,
        depth: int = 10,
        kernel: int = 3,
        dropout: float = 0.1,
        mask_p: float = 0.5,
        trend: bool = False,
        max_kernel: int = 128,
        backbone: dict | None = None,
    ):
        super().__init__()
        self.input_dims, self.output_dims, self.mask_p = input_dims, output_dims, mask_p
        self.input_fc = nn.Linear(input_dims, hidden)
        if backbone and backbone.get("name", "ts2vec") == "tsai":
            self.features = tsai_features(backbone["arch"], backbone.get("kwargs") or {}, hidden, output_dims)
        else:
            self.features = DilatedConvEncoder(hidden, [hidden] * depth + [output_dims], kernel)
        self.dropout = nn.Dropout(dropout)
        self.trend = TrendHead(output_dims, output_dims, max_kernel) if trend else None

    def forward(
        self, x: Tensor, mask: bool | None = None, generator: torch.Generator | None = None, last: bool = False
    ) -> Tensor:
        """``mask`` (default: ``self.training``) applies TS2Vec's binomial timestamp masking;
        ``last`` returns only the last timestamp, ``[B, 1, out]`` (causal encoding)."""
        present = ~torch.isnan(x).any(-1)
        x = torch.where(present.unsqueeze(-1), x, torch.zeros_like(x))
        h = self.input_fc(x)
        if mask is None:
            mask = self.training
        keep = present
        if mask and self.mask_p > 0:
            draw = (
                torch.rand(present.shape, generator=generator, device=x.device)
                if generator is None or generator.device == x.device
                else torch.rand(present.shape, generator=generator).to(x.device)
            )
            keep = keep & (draw >= self.mask_p)
        h = h * keep.unsqueeze(-1)
        z = self.features(h.transpose(1, 2))
        if self.trend is not None:
            z = self.trend(z, last)
        elif last:
            z = z[..., -1:]
        return self.dropout(z.transpose(1, 2))


Backbone = TS2VecNet
