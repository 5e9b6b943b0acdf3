"""AutoTCL's parametric augmentation (Zheng et al., ICLR 2024, "Parametric Augmentation for Time
Series Contrastive Learning", §3: factorisation x = x* + Δx and the mask-based instantiation).

A small dilated-conv network reads ``x`` and gives, per timestamp, the logit of the informative
mask ``h(x)`` (sampled with a Gumbel-sigmoid, hard or soft) and the invariant transform ``g(x)``
(a sigmoid, elementwise and therefore invertible); the view is ``v = g(x) * h(x) * x``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .networks import DilatedConvEncoder

__all__ = ["Augmenter", "gumbel_sigmoid", "mmd", "mask_size_penalty", "temporal_consistency"]


def gumbel_sigmoid(
    logits: Tensor, tau: float = 1.0, hard: bool = True, generator: torch.Generator | None = None
) -> Tensor:
    """Binary-concrete relaxation of Bernoulli(sigmoid(logits)); ``hard``: 0/1 forward, soft gradient."""
    u = torch.rand(logits.shape, generator=generator).to(logits.device).clamp(1e-6, 1 - 1e-6)
    soft = torch.sigmoid((logits + torch.log(u) - torch.log1p(-u)) / tau)
    if not hard:
        return soft
    return (soft > 0.5).to(soft.dtype) - soft.detach() + soft


class Augmenter(nn.Module):
    """``[B, T, C]`` -> (view ``v``, mask ``h`` ``[B, T, 1]``, transform ``g`` ``[B, T, C]``)."""

    def __init__(self, input_dims: int, hidden: int = 16, depth: int = 3, tau: float = 1.0, hard: bool = True):
        super().__init__()
        self.input_fc = nn.Linear(input_dims, hidden)
        self.features = DilatedConvEncoder(hidden, [hidden] * depth, 3)
        self.mask_head = nn.Linear(hidden, 1)
        self.transform_head = nn.Linear(hidden, input_dims)
        self.tau, self.hard = tau, hard

    def forward(self, x: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor, Tensor]:
        present = ~torch.isnan(x)
        x0 = torch.where(present, x, torch.zeros_like(x))
        f = self.features(self.input_fc(x0).transpose(1, 2)).transpose(1, 2)
        h = gumbel_sigmoid(self.mask_head(f), self.tau, self.hard, generator)  # informative-part mask h(x)
        g = torch.sigmoid(self.transform_head(f))  # invariant (invertible) transform g(x)
        v = g * h * x0  # the view v = g(x) ⊙ h(x) ⊙ x
        return torch.where(present, v, x), h, g


def mmd(a: Tensor, b: Tensor) -> Tensor:
    """Squared maximum mean discrepancy with a Gaussian kernel (median-heuristic bandwidth), ``[N, D]`` each."""
    both = torch.cat([a, b])
    d2 = torch.cdist(both, both).pow(2)
    bandwidth = d2.detach()[d2.detach() > 0].median().clamp_min(1e-6) if (d2 > 0).any() else d2.new_ones(())
    k = torch.exp(-d2 / bandwidth)
    n = a.shape[0]
    return k[:n, :n].mean() + k[n:, n:].mean() - 2 * k[:n, n:].mean()


def mask_size_penalty(h: Tensor, target: float = 0.4) -> Tensor:
    """AutoTCL's regulariser on the size of the kept part: ``relu(mean(h) - target)``."""
    return F.relu(h.mean() - target)


def temporal_consistency(h: Tensor) -> Tensor:
    """Neighbouring timestamps should agree on being informative: ``mean |h_t - h_{t-1}|``."""
    return (h[:, 1:] - h[:, :-1]).abs().mean() if h.shape[1] > 1 else h.sum() * 0.0
