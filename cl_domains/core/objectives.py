"""The objective slot: a method's contrastive term, chosen in its recipe (``method.objective``).

A method builds its own contrastive structure -- which keys are positives of which query, which are
negatives, how much each negative weighs, extra hard negatives, labels -- and hands it to
:class:`Objective`, which applies the loss the recipe names. Every loss is a contrastive NLL on the one
kernel (:func:`~cl_domains.core.losses.contrastive_nll`, or :func:`~cl_domains.core.chunked.chunked_nll`
for large batches) over the candidate columns ``[keys | hard negatives | other queries]``:

==========  ===============================================  ===========================================
loss        candidates in the denominator                    reference
==========  ===============================================  ===========================================
info_nce    positives + keys + hard negatives                van den Oord et al. 2018; SimCSE eq. 4
nt_xent     info_nce's + the other queries (self excluded)   SimCLR, Chen et al. 2020, eq. 1
dcl         nt_xent's without the positives                  Yeh et al. 2022, eq. 6 (decoupled)
dhel        hard negatives + the other queries only          Koromilas et al. 2024 (DHEL): uniformity
                                                             within the query view, decoupled
supcon      nt_xent's; positives = same label                Khosla et al. 2020, eq. 2 (L_out)
==========  ===============================================  ===========================================

``negatives`` / ``neg_weights`` (``[A, K]``) restrict / weight the key columns; when queries and keys
are the two views of the same items (``A == K``) the same positives, mask and weights apply to the
other-query columns (``q_j`` is a positive of ``q_i`` when ``k_j`` is; the query itself never counts).
When ``A != K`` (e.g. COCONUT's rehearsal anchors against teacher and student keys) every other query is a
negative of weight 1 (for ``supcon``: a positive when it has the same label).
``symmetric`` adds the key -> query direction.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from pydantic import Field, model_validator
from torch import Tensor, nn

from .chunked import chunked_nll, use_chunks
from .losses import Temperature, contrastive_nll
from .recipe import StrictModel

__all__ = ["LOSSES", "ObjectiveConfig", "Objective", "objective_config"]

LOSSES = ("info_nce", "nt_xent", "dcl", "dhel", "supcon")
LossName = Literal["info_nce", "nt_xent", "dcl", "dhel", "supcon"]


class ObjectiveConfig(StrictModel):
    """``method.objective``: which contrastive loss, at which temperature."""

    loss: LossName = "info_nce"
    temperature: float = Field(0.05, gt=0)
    learnable_temperature: bool = Field(False, description="learn log(1/t) (clipped at t >= 0.01), as CLIP")

    has_labels: ClassVar[bool] = False  # set by objective_config(): does the method hand labels to the loss?
    method_name: ClassVar[str] = "this method"

    @model_validator(mode="after")
    def _applies(self):
        if self.loss == "supcon" and not self.has_labels:
            others = ", ".join(x for x in LOSSES if x != "supcon")
            raise ValueError(
                f"loss 'supcon' needs labels and {self.method_name} has none (its positives are views of one "
                f"example); choose one of: {others}"
            )
        return self


def objective_config(method: str, loss: str, temperature: float, *, labels: bool = False) -> type[ObjectiveConfig]:
    """The ``objective`` schema of a method: its published loss and temperature as defaults, and whether
    it has labels (``supcon`` is refused without them).

    Args:
        method: the method's name (names the schema class and its errors).
        loss: the published loss, one of ``LOSSES``.
        temperature: the published temperature.
        labels: whether the method has labels (``supcon`` is refused without them).

    Returns:
        A :class:`ObjectiveConfig` subclass, the type of the method schema's ``objective`` field.
    """
    return type(
        f"{method.title().replace('_', '')}ObjectiveConfig",
        (ObjectiveConfig,),
        {
            "__annotations__": {"loss": LossName, "temperature": float},
            "loss": loss,
            "temperature": Field(temperature, gt=0),
            "has_labels": labels,
            "method_name": method,
            "__module__": ObjectiveConfig.__module__,
        },
    )


def _as_mask(positives: Tensor, columns: int) -> Tensor:
    return positives if positives.dtype == torch.bool else F.one_hot(positives.long(), columns).bool()


class Objective(nn.Module):
    """The contrastive loss named by an :class:`ObjectiveConfig`, on a method's own structure.

    Args:
        cfg: the recipe's ``method.objective`` (loss, temperature, learnable_temperature).
    """

    def __init__(self, cfg: ObjectiveConfig):
        super().__init__()
        self.cfg = cfg
        self.loss_name = cfg.loss
        self.temperature = Temperature(cfg.temperature, learnable=cfg.learnable_temperature)

    def extra_repr(self) -> str:
        return f"loss={self.loss_name}"

    def forward(
        self,
        query: Tensor,
        key: Tensor,
        *,
        positives: Tensor | None = None,
        negatives: Tensor | None = None,
        neg_weights: Tensor | None = None,
        hard_negatives: Tensor | None = None,
        labels: Tensor | tuple[Tensor, Tensor] | None = None,
        symmetric: bool = False,
        normalize: bool = True,
        reduction: str = "mean",
        chunked: bool | None = None,
        chunk_size: int | None = None,
    ) -> Tensor:
        """The loss of ``query[A, D]`` against ``key[K, D]``.

        Args:
            query: ``[A, D]`` anchors.
            key: ``[K, D]`` keys.
            positives: long ``[A]`` (the positive key of each query; default ``arange(A)``) or bool ``[A, K]``.
            negatives: bool ``[A, K]``: which keys may be negatives (default: all but the positives).
            neg_weights: ``[A, K]`` weights of the negative keys (e.g. DebCSE's IPW, MEOW's cluster weights).
            hard_negatives: ``[H, D]`` extra negatives for every query (e.g. SimCSE's contradictions).
            labels: ``[A]`` (queries and keys share labels, ``A == K``) or ``(query_labels, key_labels)``;
                ``supcon`` only: same label = positive.
            symmetric: add the key -> query direction (needs ``A == K``).
            normalize: L2-normalise the rows first (cosine similarity).
            reduction: ``"mean"``, ``"sum"`` or ``"none"``.
            chunked: ``None`` decides by size; ``True`` / ``False`` force the chunked path.
            chunk_size: keys per block on the chunked path.

        Returns:
            the mean over anchors (both directions when symmetric), or per anchor with ``reduction="none"``.
        """
        a, k = query.shape[0], key.shape[0]
        if symmetric and a != k:
            raise ValueError(f"symmetric=True needs as many keys as queries, got {a} and {k}")
        t = self.temperature()
        if normalize:
            query, key = F.normalize(query, dim=-1), F.normalize(key, dim=-1)
            hard_negatives = None if hard_negatives is None else F.normalize(hard_negatives, dim=-1)
        qlab: Tensor | None = None
        klab: Tensor | None = None
        if self.loss_name == "supcon":
            if labels is None:
                raise ValueError("loss 'supcon' needs labels=")
            qlab, klab = labels if isinstance(labels, tuple) else (labels, labels)
        if positives is None and qlab is None:
            if a != k:
                raise ValueError(f"query and key have {a} and {k} rows: pass positives=")
            positives = torch.arange(a, device=query.device)
        loss = self._direction(
            query, key, positives, negatives, neg_weights, hard_negatives, qlab, klab, t, chunked, chunk_size
        )
        if symmetric:
            back = None if positives is None else _as_mask(positives, k).transpose(0, 1)
            if (
                positives is not None  # so is back
                and positives.dtype != torch.bool
                and torch.equal(positives, torch.arange(a).to(positives))
            ):
                back = positives  # the identity stays an index

            def tr(m: Tensor | None) -> Tensor | None:
                return None if m is None else m.transpose(0, 1)

            back_loss = self._direction(
                key, query, back, tr(negatives), tr(neg_weights), hard_negatives, klab, qlab, t, chunked, chunk_size
            )
            loss = torch.cat([loss, back_loss])
        return _reduce(loss, reduction, has_nan=self.loss_name == "supcon", anchor=query)

    def _direction(
        self,
        q: Tensor,
        k: Tensor,
        positives: Tensor | None,
        negatives: Tensor | None,
        weights: Tensor | None,
        hard: Tensor | None,
        qlab: Tensor | None,
        klab: Tensor | None,
        t: Tensor,
        chunked: bool | None,
        chunk_size: int | None,
    ) -> Tensor:
        """Per-anchor loss of ``q`` against the candidate columns ``[k | hard | q]``."""
        name = self.loss_name
        a, kk = q.shape[0], k.shape[0]
        h = 0 if hard is None else hard.shape[0]
        with_queries = name in ("nt_xent", "dcl", "dhel", "supcon")
        blocks = [k] + ([hard] if hard is not None and h else []) + ([q] if with_queries else [])
        keys = torch.cat(blocks) if len(blocks) > 1 else k
        c = keys.shape[0]
        dev = q.device
        self_col = torch.arange(a, device=dev) + kk + h  # the query itself among the candidates
        index = positives is not None and positives.dtype != torch.bool
        mirror = with_queries and a == kk  # queries and keys are two views of the same items
        identity = positives is not None and index and a == kk and torch.equal(positives, torch.arange(a, device=dev))
        one_positive = index and (not mirror or identity)  # no query column is a positive
        simple = name in ("info_nce", "nt_xent", "dcl") and one_positive and negatives is None and weights is None
        plain_supcon = name == "supcon" and negatives is None and weights is None and h == 0
        if use_chunks(chunked, a, c) and (simple or plain_supcon):  # compact structures: nothing [A, C] is built
            if name == "supcon":
                assert qlab is not None and klab is not None  # forward() requires labels for supcon
                return chunked_nll(
                    q / t, keys, labels=(qlab, torch.cat([klab, qlab])), exclude=self_col, chunk_size=chunk_size
                )
            exclude = self_col if with_queries else None
            return chunked_nll(
                q / t, keys, positives=positives, exclude=exclude, decoupled=name == "dcl", chunk_size=chunk_size
            )
        # masks over all candidate columns
        pos_q: Tensor | None
        if name == "supcon":
            assert qlab is not None and klab is not None
            pos_k = qlab[:, None] == klab[None, :]
            pos_q = qlab[:, None] == qlab[None, :]
        else:
            assert positives is not None  # forward() defaults it when there are no labels
            pos_k = _as_mask(positives, kk)
            pos_q = pos_k if mirror else None  # q_j is a positive of q_i when k_j is
        not_self = ~torch.eye(a, dtype=torch.bool, device=dev)
        neg_k = ~pos_k if negatives is None else negatives.bool() & ~pos_k
        if name == "dhel":
            neg_k = torch.zeros_like(neg_k)  # the other view is not in DHEL's uniformity term
        parts_pos = [pos_k]
        parts_neg = [neg_k]
        parts_w = [weights if weights is not None else torch.ones(a, kk, device=dev, dtype=q.dtype)]
        if h:
            parts_pos.append(torch.zeros(a, h, dtype=torch.bool, device=dev))
            parts_neg.append(torch.ones(a, h, dtype=torch.bool, device=dev))
            parts_w.append(torch.ones(a, h, device=dev, dtype=q.dtype))
        if with_queries:
            pq = (pos_q & not_self) if pos_q is not None else torch.zeros(a, a, dtype=torch.bool, device=dev)
            # the key masks and weights carry over to the other queries only when they are the keys' other view
            nq = not_self & ~pq if negatives is None or not mirror else negatives.bool() & not_self & ~pq
            wq = weights if weights is not None and mirror else torch.ones(a, a, device=dev, dtype=q.dtype)
            parts_pos.append(pq)
            parts_neg.append(nq)
            parts_w.append(wq)
        pos, neg = torch.cat(parts_pos, 1), torch.cat(parts_neg, 1)
        w = torch.cat(parts_w, 1) if weights is not None else None
        decoupled = name in ("dcl", "dhel")
        if use_chunks(chunked, a, c):
            return chunked_nll(
                q / t, keys, positives=pos, negatives=neg, neg_weights=w, decoupled=decoupled, chunk_size=chunk_size
            )
        logits = (q / t) @ keys.transpose(0, 1)
        if one_positive and name != "supcon" and not decoupled and w is None:
            # one positive per anchor: the cross-entropy fast path with a negatives mask
            assert positives is not None
            return contrastive_nll(logits, positives, neg)
        return contrastive_nll(logits, pos, neg, w, decoupled=decoupled)


def _reduce(loss: Tensor, reduction: str, *, has_nan: bool, anchor: Tensor) -> Tensor:
    if reduction == "none":
        return loss
    if has_nan:  # supcon: anchors whose label occurs once have no positive and are left out
        keep = ~torch.isnan(loss)
        if not bool(keep.any()):
            return anchor.sum() * 0.0
        loss = loss[keep]
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
