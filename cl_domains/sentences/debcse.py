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
6. **Objective**: importance-weighted InfoNCE (``core.losses.info_nce`` with ``neg_weights``),
   temperature 0.05 as in SimCSE, [CLS] with the train-only MLP head.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

import torch
from pydantic import Field

from ..core.losses import info_nce
from ..core.pairs import inverse_propensity_weights, normalize_row_weights
from ..core.recipe import StrictModel
from ..core.registry import register_method
from ..core.runs import console
from .data import read_corpus
from .task import SentenceTask

__all__ = ["DebCSEConfig", "DebCSE", "surface_similarity"]

_WORD = re.compile(r"\w+")


class DebCSEConfig(StrictModel):
    name: Literal["debcse"] = "debcse"
    temperature: float = Field(0.05, gt=0)
    neighbours: int = Field(4, ge=0, description="semantic neighbours per sentence considered as positives")
    positive_threshold: float = Field(0.6, ge=-1, le=1, description="min reference cosine of a neighbour positive")
    false_negative_threshold: float = Field(0.8, ge=-1, le=1, description="in-batch keys at least this similar get weight 0")
    bins: int = Field(10, ge=2, description="histogram bins of the propensity estimates")
    ipw_clip: tuple[float, float] = (0.2, 5.0)
    weight_negatives: bool = Field(True, description="IPW weights on in-batch negatives (False: uniform)")


def _words(s: str) -> frozenset[str]:
    return frozenset(_WORD.findall(s.lower()))


def surface_similarity(words_a, words_b, len_a: int, len_b: int) -> float:
    """``(jaccard + length ratio) / 2`` in [0, 1]; identical sentences give 1."""
    union = len(words_a | words_b)
    jac = len(words_a & words_b) / union if union else 1.0
    ratio = min(len_a, len_b) / max(len_a, len_b, 1)
    return (jac + ratio) / 2


class DebCSE(SentenceTask):
    def build_examples(self, path: Path) -> list[str]:
        return read_corpus(path)

    def __init__(self, recipe, data_root, device):
        super().__init__(recipe, data_root, device)
        cfg = self.cfg
        sents = self.examples
        self.words = [_words(s) for s in sents]
        self.lens = [len(_WORD.findall(s)) for s in sents]
        console.print(f"DebCSE: reference embeddings of {len(sents)} sentences (frozen start model, mean pooling)…")
        self.ref = self._reference_embeddings(sents)
        self.cands, self.cand_probs = self._positive_candidates()
        g = torch.Generator().manual_seed(self.seed + 7)
        i = torch.randint(len(sents), (20000,), generator=g).tolist()
        j = torch.randint(len(sents), (20000,), generator=g).tolist()
        self.neg_reference = torch.tensor([self._surf(a, b) for a, b in zip(i, j) if a != b])
        n_nb = sum(len(c) - 1 for c in self.cands)
        self.stats = {"neighbour_positives": n_nb, "anchors_with_neighbours": sum(len(c) > 1 for c in self.cands)}
        console.print(f"DebCSE: {n_nb} neighbour positives for {self.stats['anchors_with_neighbours']} of {len(sents)} anchors")

    def _surf(self, a: int, b: int) -> float:
        return surface_similarity(self.words[a], self.words[b], self.lens[a], self.lens[b])

    def _reference_embeddings(self, sents: list[str]) -> torch.Tensor:
        pooling, self.encoder.pooling = self.encoder.pooling, "mean"
        try:
            return self.encoder.encode(sents, batch_size=self.recipe.eval.batch_size, normalize=True,
                                       progress="DebCSE reference embeddings")
        finally:
            self.encoder.pooling = pooling

    def _positive_candidates(self) -> tuple[list[list[int]], list[torch.Tensor]]:
        cfg, ref = self.cfg, self.ref
        n = len(ref)
        nbrs: list[list[int]] = [[] for _ in range(n)]
        if cfg.neighbours > 0:
            for start in range(0, n, 1024):
                sims = ref[start:start + 1024] @ ref.T
                rows = torch.arange(sims.shape[0])
                sims[rows, rows + start] = -2.0  # not itself
                top = sims.topk(min(cfg.neighbours, n - 1), dim=1)
                for r in range(sims.shape[0]):
                    a = start + r
                    for s, b in zip(top.values[r].tolist(), top.indices[r].tolist()):
                        # an exact duplicate is a dropout view again, not a new positive
                        if s >= cfg.positive_threshold and self.words[b] != self.words[a]:
                            nbrs[a].append(b)
        cands = [[a, *nbrs[a]] for a in range(n)]
        surf = [torch.tensor([self._surf(a, c) for c in cs]) for a, cs in enumerate(cands)]
        population = torch.cat(surf)
        probs = []
        for s in surf:
            w = inverse_propensity_weights(s, population, cfg.bins, tuple(cfg.ipw_clip))
            probs.append(w / w.sum())
        return cands, probs

    def batches(self, epoch: int):
        g = torch.Generator().manual_seed(self.seed * 1000 + epoch + 1)
        for anchors in super().batches(epoch):
            pos = [self.cands[a][int(torch.multinomial(self.cand_probs[a], 1, generator=g))] for a in anchors]
            yield anchors, pos

    def negative_weights(self, anchors: list[int], keys: list[int]) -> torch.Tensor:
        cfg = self.cfg
        b = len(anchors)
        not_diag = ~torch.eye(b, dtype=torch.bool)
        sem = self.ref[anchors] @ self.ref[keys].T
        keep = not_diag & (sem < cfg.false_negative_threshold)
        if cfg.weight_negatives:
            surf = torch.tensor([[self._surf(a, k) for k in keys] for a in anchors])
            w = inverse_propensity_weights(surf, self.neg_reference, cfg.bins, tuple(cfg.ipw_clip))
        else:
            w = torch.ones(b, b)
        w = normalize_row_weights(w, keep)
        return w.masked_fill(~not_diag, 1.0)  # the diagonal is the positive; its weight is unused

    def loss(self, batch):
        anchors, positives = batch
        n = len(anchors)
        z = self.encoder.embed([self.examples[i] for i in anchors + positives], self.max_len)
        w = self.negative_weights(anchors, positives).to(z.device)
        loss = info_nce(z[:n], z[n:], self.cfg.temperature, neg_weights=w)
        return loss, {"self_positives": sum(a == p for a, p in zip(anchors, positives)) / n}


@register_method("sentences", "debcse", DebCSEConfig)
def build(recipe, data_root, device) -> DebCSE:
    return DebCSE(recipe, data_root, device)
