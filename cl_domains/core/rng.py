"""Seeded random streams: one independent generator per (seed, purpose, epoch, batch).

Ad-hoc formulas such as ``seed * 1000 + epoch`` collide (epoch ``e`` of one stream equals epoch ``e+1``
of another); hashing the whole key does not.
"""

from __future__ import annotations

import hashlib

import torch

__all__ = ["generator", "derive_seed"]


def derive_seed(seed: int, tag: str, *indices: int) -> int:
    """A 63-bit seed determined by ``(seed, tag, *indices)``; different keys give unrelated seeds."""
    key = "\x1f".join([str(int(seed)), tag, *(str(int(i)) for i in indices)])
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "little") >> 1


def generator(seed: int, tag: str, *indices: int, device: str | torch.device = "cpu") -> torch.Generator:
    """``torch.Generator`` seeded with :func:`derive_seed`, e.g. ``generator(seed, "shuffle", epoch)``."""
    return torch.Generator(device=device).manual_seed(derive_seed(seed, tag, *indices))
