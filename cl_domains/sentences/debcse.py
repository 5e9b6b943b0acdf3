"""DebCSE (Miao et al., 2023): contrastive sentence embeddings trained on pairs chosen by
inverse-propensity-weighted (IPW) sampling over surface and semantic similarity.

The paper's code is not public and only its abstract is available here; it says SimCSE-style
pair rules bring their own biases (sentence length, word frequency / lexical overlap, false
negatives) and that DebCSE removes them "by an inverse propensity weighted sampling method to
select high-quality positive and negative pairs according to both the surface and semantic
similarity between sentences". Every concrete choice below is ours and is a recipe option:

1. **Semantic similarity** ``sem(a, b)``: cosine of mean-pooled embeddings of the *starting*
   backbone, frozen and computed once over the training sentences (no extra model or data).
2. **Surface similarity** ``surf(a, b) = (jaccard(words_a, words_b) + min(len)/max(len)) / 2``
   on lower-cased word tokens: lexical overlap and length agreement, the two biases named.
3. **Positive candidates** of an anchor: itself (the SimCSE dropout view, ``surf = 1``) and its
   ``neighbours`` nearest sentences by ``sem`` whose similarity is at least ``positive_threshold``.
4. **Positive propensity** ``e(surf)``: histogram density of ``surf`` over all candidate pairs,
   i.e. how likely a naive rule is to produce a pair of that surface similarity. A positive is
   sampled per anchor and epoch with probability ``∝ 1 / e(surf)`` (clipped to ``ipw_clip``):
   surface-identical dropout pairs stop dominating, semantically close but lexically and
   length-different pairs are drawn more often (length and lexical-overlap bias).
5. **Negatives**: the other in-batch keys (as in SimCSE), each weighted by ``1 / e_neg(surf)`` where
   ``e_neg`` is the surface-similarity density of random sentence pairs, so rare surface-similar
   negatives count more and the easy length/lexical cue counts less; rows are rescaled to mean 1.
   Keys with ``sem >= false_negative_threshold`` to the anchor get weight 0 (false-negative bias).
6. **Objective**: importance-weighted InfoNCE (``method.objective``, default ``info_nce @ t=0.05`` as in
   SimCSE, through the objective slot with ``neg_weights``; see :mod:`.losses`), [CLS] with the train-only MLP head.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

import torch
from pydantic import Field

from ..core.pairs import inverse_propensity_weights, normalize_row_weights
from ..core.recipe import StrictModel
from ..core.registry import method
from ..core.rng import generator
from ..core.runs import console
from ..core.task import StepContext
from .losses import DebCSEObjectiveConfig, Objective
from .task import SentenceTask

__all__ = [
    "DebCSETask",
    "DebCSEConfig",
    "negative_weights",
    "neighbour_positives",
    "positive_probabilities",
    "sample_positives",
    "surface_similarity",
]

_WORD = re.compile(r"\w+")


class DebCSEConfig(StrictModel):
    name: Literal["debcse"] = "debcse"
    objective: DebCSEObjectiveConfig = Field(default_factory=DebCSEObjectiveConfig)
    neighbours: int = Field(4, ge=0, description="semantic neighbours per sentence considered as positives")
    positive_threshold: float = Field(0.6, ge=-1, le=1, description="min reference cosine of a neighbour positive")
    false_negative_threshold: float = Field(
        0.8, ge=-1, le=1, description="in-batch keys at least this similar get weight 0"
    )
    bins: int = Field(10, ge=2, description="histogram bins of the propensity estimates")
    ipw_clip: tuple[float, float] = (0.2, 5.0)
    weight_negatives: bool = Field(True, description="IPW weights on in-batch negatives (False: uniform)")

    renamed = {"temperature": "objective.temperature"}


def _words(s: str) -> frozenset[str]:
    return frozenset(_WORD.findall(s.lower()))


def surface_similarity(words_a, words_b, len_a: int, len_b: int) -> float:
    """``(jaccard + length ratio) / 2`` in [0, 1]; identical sentences give 1."""
    union = len(words_a | words_b)
    jac = len(words_a & words_b) / union if union else 1.0
    ratio = min(len_a, len_b) / max(len_a, len_b, 1)
    return (jac + ratio) / 2


def neighbour_positives(
    ref: torch.Tensor, words: list[frozenset[str]], k: int, threshold: float, block: int = 1024
) -> list[list[int]]:
    """Each sentence's neighbour positives (item 3): among its ``k`` nearest other sentences by
    the cosine of the L2-normalised reference embeddings ``ref``, those with cosine
    ``>= threshold`` whose word set differs from its own (an exact duplicate is a dropout view
    again), nearest first."""
    n = len(ref)
    nbrs: list[list[int]] = [[] for _ in range(n)]
    if k <= 0 or n < 2:
        return nbrs
    for start in range(0, n, block):
        sims = ref[start : start + block] @ ref.T
        rows = torch.arange(sims.shape[0])
        sims[rows, rows + start] = -2.0  # not itself
        top = sims.topk(min(k, n - 1), dim=1)
        for r in range(sims.shape[0]):
            a = start + r
            for s, b in zip(top.values[r].tolist(), top.indices[r].tolist(), strict=False):
                if s >= threshold and words[b] != words[a]:
                    nbrs[a].append(b)
    return nbrs


def positive_probabilities(surf: list[torch.Tensor], bins: int, clip: tuple[float, float]) -> list[torch.Tensor]:
    """Sampling probabilities of each anchor's positive candidates (item 4): ``surf[a]`` holds the
    surface similarity of anchor ``a`` to each candidate; the propensity is the histogram density
    of surface similarity over all candidate pairs, and a candidate is drawn ``∝ 1 / propensity``
    (clipped)."""
    population = torch.cat(surf)
    probs = []
    for s in surf:
        w = inverse_propensity_weights(s, population, bins, clip)
        probs.append(w / w.sum())
    return probs


def sample_positives(
    cands: list[list[int]], probs: list[torch.Tensor], anchors: list[int], g: torch.Generator
) -> list[int]:
    """One positive per anchor, drawn from its candidates with ``probs`` (seeded by ``g``)."""
    return [cands[a][int(torch.multinomial(probs[a], 1, generator=g))] for a in anchors]


def negative_weights(
    sem: torch.Tensor,
    surf: torch.Tensor | None,
    neg_reference: torch.Tensor,
    false_negative_threshold: float,
    bins: int,
    clip: tuple[float, float],
) -> torch.Tensor:
    """``[B, B]`` weights of the in-batch negatives (item 5): anchor ``i`` against key ``j``.
    ``sem`` is their reference cosine, ``surf`` their surface similarity (``None``: uniform
    weights) and ``neg_reference`` the surface similarities of random sentence pairs. A key with
    ``sem >= false_negative_threshold`` gets 0; the others ``1 / e_neg(surf)`` (clipped), each row
    rescaled to mean 1 over its kept keys. The diagonal (the positive) is 1 and unused."""
    b = sem.shape[0]
    not_diag = ~torch.eye(b, dtype=torch.bool, device=sem.device)
    keep = not_diag & (sem < false_negative_threshold)
    w = torch.ones_like(sem) if surf is None else inverse_propensity_weights(surf, neg_reference, bins, clip)
    w = normalize_row_weights(w.to(sem.dtype), keep)
    return w.masked_fill(~not_diag, 1.0)


@method("sentences", "debcse")
class DebCSETask(SentenceTask):
    config = DebCSEConfig

    def build_examples(self, path: Path) -> list[str]:
        return self.read_sentences(path)

    def __init__(self, recipe, data_root, device, examples=None):
        super().__init__(recipe, data_root, device, examples)
        self.use_objective(Objective(self.cfg.objective))
        sents = self.examples
        self.words = [_words(s) for s in sents]
        self.lens = [len(_WORD.findall(s)) for s in sents]
        console.print(f"DebCSE: reference embeddings of {len(sents)} sentences (frozen start model, mean pooling)…")
        self.ref = self._reference_embeddings(sents)
        self.cands, self.cand_probs = self._positive_candidates()
        g = generator(self.seed, "debcse_negative_reference")
        i = torch.randint(len(sents), (20000,), generator=g).tolist()
        j = torch.randint(len(sents), (20000,), generator=g).tolist()
        self.neg_reference = torch.tensor([self._surf(a, b) for a, b in zip(i, j, strict=False) if a != b])
        n_nb = sum(len(c) - 1 for c in self.cands)
        self.stats = {"neighbour_positives": n_nb, "anchors_with_neighbours": sum(len(c) > 1 for c in self.cands)}
        console.print(
            f"DebCSE: {n_nb} neighbour positives for {self.stats['anchors_with_neighbours']} of {len(sents)} anchors"
        )

    def _surf(self, a: int, b: int) -> float:
        return surface_similarity(self.words[a], self.words[b], self.lens[a], self.lens[b])

    def _reference_embeddings(self, sents: list[str]) -> torch.Tensor:
        pooling, self.encoder.pooling = self.encoder.pooling, "mean"
        try:
            return self.encoder.encode(
                sents, batch_size=self.recipe.eval.batch_size, normalize=True, progress="DebCSE reference embeddings"
            )
        finally:
            self.encoder.pooling = pooling

    def _positive_candidates(self) -> tuple[list[list[int]], list[torch.Tensor]]:
        cfg = self.cfg
        nbrs = neighbour_positives(self.ref, self.words, cfg.neighbours, cfg.positive_threshold)
        cands = [[a, *nbrs[a]] for a in range(len(nbrs))]
        surf = [torch.tensor([self._surf(a, c) for c in cs]) for a, cs in enumerate(cands)]
        return cands, positive_probabilities(surf, cfg.bins, tuple(cfg.ipw_clip))

    def positives(self, anchors: list[int], ctx: StepContext) -> list[int]:
        """The batch's IPW-sampled positives (item 4), drawn from a stream of their own per (seed, epoch, batch)."""
        return sample_positives(self.cands, self.cand_probs, anchors, ctx.generator("debcse_positives"))

    def negative_weights(self, anchors: list[int], keys: list[int]) -> torch.Tensor:
        cfg = self.cfg
        sem = self.ref[anchors] @ self.ref[keys].T
        surf = torch.tensor([[self._surf(a, k) for k in keys] for a in anchors]) if cfg.weight_negatives else None
        return negative_weights(
            sem, surf, self.neg_reference, cfg.false_negative_threshold, cfg.bins, tuple(cfg.ipw_clip)
        )

    def loss(self, batch: list[int], ctx: StepContext):
        anchors, positives = batch, self.positives(batch, ctx)
        n = len(anchors)
        z = self.encoder.embed_with_grad([self.examples[i] for i in anchors + positives], self.max_len)
        w = self.negative_weights(anchors, positives).to(z.device)
        loss = self.objective(z[:n], z[n:], neg_weights=w)  # item 6: IPW-weighted negatives
        return loss, {"self_positives": sum(a == p for a, p in zip(anchors, positives, strict=False)) / n}
