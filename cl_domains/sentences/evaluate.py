"""STS evaluation: cosine similarity of the two sentences' embeddings, Spearman x100 against gold."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from scipy.stats import spearmanr

from .data import StsPairs
from .encoder import SentenceEncoder

__all__ = ["evaluate_sts", "evaluate_sts_poolings", "sts_spearman"]


def _spearman(emb: torch.Tensor, index: dict[str, int], pairs: StsPairs) -> float:
    a = emb[[index[s] for s in pairs.s1]]
    b = emb[[index[s] for s in pairs.s2]]
    cos = (a * b).sum(-1).numpy()
    return float(spearmanr(cos, pairs.scores).statistic * 100)


def sts_spearman(encoder: SentenceEncoder, pairs: StsPairs, batch_size: int = 128) -> float:
    """Spearman x100 between cosine similarities and gold scores (SimCSE/SentEval protocol)."""
    unique = list(dict.fromkeys(pairs.s1 + pairs.s2))  # encode each distinct sentence once
    emb = encoder.encode(unique, batch_size=batch_size, normalize=True)
    return _spearman(emb, {s: i for i, s in enumerate(unique)}, pairs)


def _with_avg(scores: dict[str, float]) -> dict[str, float]:
    if len(scores) > 1:
        scores["avg"] = float(np.mean(list(scores.values())))
    return scores


def evaluate_sts(encoder: SentenceEncoder, tasks: Sequence[StsPairs], batch_size: int = 128) -> dict[str, float]:
    """Per-task Spearman and their average (``avg``) when there are several tasks."""
    return _with_avg({t.name: sts_spearman(encoder, t, batch_size) for t in tasks})


def evaluate_sts_poolings(
    encoder: SentenceEncoder, tasks: Sequence[StsPairs], poolings: Sequence[str], batch_size: int = 128
) -> dict[str, dict[str, float]]:
    """:func:`evaluate_sts` for each of ``poolings`` from one encoding pass (pooling -> scores)."""
    unique = list(dict.fromkeys(s for t in tasks for s in t.s1 + t.s2))
    index = {s: i for i, s in enumerate(unique)}
    embs = encoder.encode_poolings(unique, poolings, batch_size=batch_size, normalize=True)
    return {p: _with_avg({t.name: _spearman(embs[p], index, t) for t in tasks}) for p in poolings}
