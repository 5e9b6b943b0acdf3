"""STS evaluation: cosine similarity of the two sentences' embeddings, Spearman x100 against gold."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from scipy.stats import spearmanr

from .data import StsPairs
from .encoder import SentenceEncoder

__all__ = ["sts_spearman", "evaluate_sts"]


def sts_spearman(encoder: SentenceEncoder, pairs: StsPairs, batch_size: int = 128) -> float:
    """Spearman x100 between cosine similarities and gold scores (SimCSE/SentEval protocol)."""
    unique = list(dict.fromkeys(pairs.s1 + pairs.s2))  # encode each distinct sentence once
    index = {s: i for i, s in enumerate(unique)}
    emb = encoder.encode(unique, batch_size=batch_size, normalize=True)
    a = emb[[index[s] for s in pairs.s1]]
    b = emb[[index[s] for s in pairs.s2]]
    cos = (a * b).sum(-1).numpy()
    return float(spearmanr(cos, pairs.scores).statistic * 100)


def evaluate_sts(encoder: SentenceEncoder, tasks: Sequence[StsPairs], batch_size: int = 128) -> dict[str, float]:
    """Per-task Spearman and their average (``avg``) when there are several tasks."""
    scores = {t.name: sts_spearman(encoder, t, batch_size) for t in tasks}
    if len(scores) > 1:
        scores["avg"] = float(np.mean(list(scores.values())))
    return scores
