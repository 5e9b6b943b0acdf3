"""Encoders of the regression domain: an MLP for tables (and for sentence-pair features), a small
1-D convolutional encoder for series windows, and the sentence-pair featuriser for STS-B-DIR."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

__all__ = ["MLPEncoder", "TemporalEncoder", "pair_features"]


class MLPEncoder(nn.Module):
    """``Linear -> ReLU -> Dropout`` blocks; the output is the last hidden layer (the representation)."""

    def __init__(self, dim_in: int, hidden: list[int], dropout: float = 0.0):
        super().__init__()
        layers: list[nn.Module] = []
        for h in hidden:
            layers += [nn.Linear(dim_in, h), nn.ReLU(), nn.Dropout(dropout)]
            dim_in = h
        self.net = nn.Sequential(*layers)
        self.dim = dim_in

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class TemporalEncoder(nn.Module):
    """Series window ``[B, W]`` (or ``[B, W, channels_in]``) -> representation ``[B, dim]``.

    The window is made relative to its last value (so the convolutions see the shape, not the level);
    three strided 1-D convolutions and a linear map embed that shape, a linear map embeds the level,
    and an MLP merges both. Compact on purpose (exchange-rate windows, small TSER sets); the time-series
    domain's encoders can replace it."""

    def __init__(self, window: int, channels: int = 32, dim: int = 128, dropout: float = 0.0, channels_in: int = 1):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv1d(channels_in, channels, 7, stride=2, padding=3),
            nn.GELU(),
            nn.Conv1d(channels, channels, 5, stride=2, padding=2),
            nn.GELU(),
            nn.Conv1d(channels, channels, 5, stride=2, padding=2),
            nn.GELU(),
        )
        with torch.no_grad():
            flat = self.conv(torch.zeros(1, channels_in, window)).numel()
        self.shape = nn.Linear(flat, dim)
        self.level = nn.Linear(channels_in, dim)
        self.merge = nn.Sequential(nn.ReLU(), nn.Dropout(dropout), nn.Linear(dim, dim), nn.ReLU())
        self.dim = dim

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim == 2:
            x = x.unsqueeze(-1)
        last = x[:, -1:]  # [B, 1, C]
        shape = self.shape(self.conv((x - last).transpose(1, 2)).flatten(1))
        return self.merge(shape + self.level(last.squeeze(1)))


def pair_features(
    s1: list[str], s2: list[str], backbone: str, cache_dir: Path | None = None, batch_size: int = 128
) -> np.ndarray:
    """``[u, v, |u - v|, u * v]`` of the frozen sentence encoder's mean-pooled embeddings ``u, v``
    (the InferSent/DIR pair representation), cached on disk by backbone and text."""
    from ..sentences.encoder import SentenceEncoder

    key = hashlib.sha256("\x1e".join([backbone, *s1, "\x1f", *s2]).encode()).hexdigest()[:24]
    cached = cache_dir / f"pairs-{key}.npy" if cache_dir is not None else None
    if cached is not None and cached.is_file():
        return np.load(cached)
    enc = SentenceEncoder.from_pretrained(backbone, pooling="mean")
    unique = sorted(set(s1) | set(s2))
    emb = enc.encode(unique, batch_size=batch_size, progress="encoding sentences").numpy()
    pos = {s: i for i, s in enumerate(unique)}
    u, v = emb[[pos[s] for s in s1]], emb[[pos[s] for s in s2]]
    feats = np.concatenate([u, v, np.abs(u - v), u * v], 1).astype(np.float32)
    if cached is not None:
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_suffix(".tmp.npy")
        np.save(tmp, feats)
        tmp.replace(cached)
    return feats
