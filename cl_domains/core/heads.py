"""Projection heads shared by the domains."""

from __future__ import annotations

from typing import cast

from torch import Tensor, nn

__all__ = ["MLPHead", "ProjectionHead"]


class MLPHead(nn.Module):
    """SimCSE's pooler head: ``tanh(W x + b)`` (Gao et al. 2021, sec. 6.3), same width in and out."""

    def __init__(self, dim: int):
        super().__init__()
        self.dense = nn.Linear(dim, dim)
        self.activation = nn.Tanh()

    def forward(self, x: Tensor) -> Tensor:
        return cast(Tensor, self.activation(self.dense(x)))


class ProjectionHead(nn.Module):
    """SimCLR-style projector: ``Linear -> BatchNorm -> ReLU -> Linear`` (hidden defaults to dim_in)."""

    def __init__(self, dim_in: int, dim_out: int = 128, hidden: int | None = None, batch_norm: bool = True):
        super().__init__()
        hidden = hidden or dim_in
        self.net = nn.Sequential(
            nn.Linear(dim_in, hidden),
            nn.BatchNorm1d(hidden) if batch_norm else nn.Identity(),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, dim_out),
        )

    def forward(self, x: Tensor) -> Tensor:
        return cast(Tensor, self.net(x))
