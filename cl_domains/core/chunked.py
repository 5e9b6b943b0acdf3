"""Memory-bounded contrastive NLL: the logit matrix is streamed in column blocks, never stored.

For anchors ``Q [A, D]`` (already divided by the temperature) and keys ``K [C, D]`` the logits
are ``l = Q @ K.T``. The forward pass visits ``K`` block by block and keeps only per-anchor
running sums: an online log-sum-exp of the denominator (``logaddexp`` of block log-sum-exps)
and the numerator (mean of positive logits, or their log-sum-exp). The backward pass recomputes
each block from the saved per-anchor statistics and accumulates ``dQ`` and ``dK``: with
``p_ij = w_ij exp(l_ij - lse_i)`` on the denominator set and ``r_ij`` the numerator weights
(``1/|P(i)|`` or the positives' softmax), ``dL_i/dl_ij = p_ij - r_ij``. Memory is
``O(A * chunk)`` instead of ``O(A * C)``; values and gradients equal the dense path in
:mod:`cl_domains.core.losses` (tested in float64).

The positive/negative structure is given compactly so that it needs no ``[A, C]`` tensor
either: positive column indices, label vectors, an excluded column per anchor (the anchor
itself); dense ``[A, C]`` masks and weights are accepted too and sliced per block.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import torch
from torch import Tensor

from .precision import float32

__all__ = ["chunked_nll", "label_mean_logit", "AUTO_CHUNK_ENTRIES", "use_chunks"]

# The dense path is used up to this many logits (8192 x 8192 float32 = 256 MiB per copy).
AUTO_CHUNK_ENTRIES = 8192 * 8192
_BLOCK_ENTRIES = 1 << 24  # default block: about this many logits (64 MiB float32)


def use_chunks(chunked: bool | None, anchors: int, keys: int) -> bool:
    """The flag when given, else chunked iff the logit matrix would exceed ``AUTO_CHUNK_ENTRIES``.

    Args:
        chunked: the caller's flag (``None``: decide by size).
        anchors: the number of anchor rows.
        keys: the number of key columns.

    Returns:
        Whether to take the chunked path.
    """
    return anchors * keys > AUTO_CHUNK_ENTRIES if chunked is None else bool(chunked)


@dataclass
class _Pairs:
    """Which entries of ``[A, C]`` are positives, negatives (and their weights), block by block."""

    pos_index: Tensor | None  # [A] long: the positive column of each anchor
    pos_mask: Tensor | None  # [A, C] bool
    labels: tuple[Tensor, Tensor] | None  # ([A], [C]): positives share a label
    exclude: Tensor | None  # [A] long: a column that is neither positive nor negative (self)
    neg_mask: Tensor | None  # [A, C] bool: restricts the negatives
    neg_weights: Tensor | None  # [A, C]: per-negative weights (<= 0 removes the pair)
    decoupled: bool

    def block(self, j0: int, j1: int, a: int, device: torch.device) -> tuple[Tensor, Tensor, Tensor | None]:
        """``(positives, denominator set, log-weights or None)`` for columns ``j0:j1``."""
        cols = torch.arange(j0, j1, device=device)
        pos = torch.zeros(a, j1 - j0, dtype=torch.bool, device=device)
        if self.pos_index is not None:
            pos |= self.pos_index[:, None] == cols
        if self.pos_mask is not None:
            pos |= self.pos_mask[:, j0:j1]
        if self.labels is not None:
            pos |= self.labels[0][:, None] == self.labels[1][None, j0:j1]
        neg = ~pos
        if self.exclude is not None:
            valid = self.exclude[:, None] != cols
            pos &= valid
            neg &= valid
        if self.neg_mask is not None:
            neg &= self.neg_mask[:, j0:j1]
        logw = None
        if self.neg_weights is not None:
            w = self.neg_weights[:, j0:j1]
            kept = w > 0
            neg &= kept
            logw = torch.where(neg, w.clamp_min(torch.finfo(w.dtype).tiny).log(), torch.zeros_like(w))
        return pos, (neg if self.decoupled else pos | neg), logw


class _ChunkedNLL(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, q: Tensor, k: Tensor, weights: Tensor | None, pairs: _Pairs, agg: str, chunk: int) -> Tensor:
        a, c = q.shape[0], k.shape[0]
        neg_inf = torch.full((a,), float("-inf"), dtype=q.dtype, device=q.device)
        den, num_lse = neg_inf.clone(), neg_inf.clone()
        num_sum = torch.zeros(a, dtype=q.dtype, device=q.device)
        n_pos = torch.zeros(a, dtype=torch.long, device=q.device)
        for j0 in range(0, c, chunk):
            j1 = min(j0 + chunk, c)
            logits = q @ k[j0:j1].T
            pos, keep, logw = pairs.block(j0, j1, a, q.device)
            x = logits if logw is None else logits + logw
            den = torch.logaddexp(den, torch.logsumexp(x.masked_fill(~keep, float("-inf")), -1))
            if agg == "mean":
                num_sum += torch.where(pos, logits, 0.0).sum(-1)
            elif agg == "sum":
                num_lse = torch.logaddexp(num_lse, torch.logsumexp(logits.masked_fill(~pos, float("-inf")), -1))
            if agg != "none":
                n_pos += pos.sum(-1)
        if agg == "none":
            loss = den
        else:
            num = num_sum / n_pos.clamp_min(1) if agg == "mean" else num_lse
            loss = (den - num).masked_fill(n_pos == 0, float("nan"))
        ctx.save_for_backward(q, k, weights, den, num_lse, n_pos)
        ctx.pairs, ctx.agg, ctx.chunk = pairs, agg, chunk
        return loss

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, Tensor | None, Tensor | None, None, None, None]:
        q, k, weights, den, num_lse, n_pos = ctx.saved_tensors
        pairs, agg, chunk = ctx.pairs, ctx.agg, ctx.chunk
        a, c = q.shape[0], k.shape[0]
        # As in the dense path: anchors without a positive (nan) pass no gradient, an empty
        # denominator (-inf) passes none through the denominator.
        g = grad if agg == "none" else torch.where(n_pos > 0, grad, 0.0)
        finite = torch.isfinite(den)
        g_den, den = torch.where(finite, g, 0.0), torch.where(finite, den, 0.0)
        inv_n = 1.0 / n_pos.clamp_min(1).to(q.dtype)
        num_lse = torch.where(torch.isfinite(num_lse), num_lse, 0.0)
        need_q, need_k = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        need_w = weights is not None and ctx.needs_input_grad[2]
        dq = torch.zeros_like(q) if need_q else None
        dk = torch.empty_like(k) if need_k else None
        dw = torch.zeros_like(weights) if need_w else None
        for j0 in range(0, c, chunk):
            j1 = min(j0 + chunk, c)
            kb = k[j0:j1]
            logits = q @ kb.T
            pos, keep, logw = pairs.block(j0, j1, a, q.device)
            x = logits if logw is None else logits + logw
            p = torch.exp(x - den[:, None]).masked_fill_(~keep, 0.0)  # softmax of the denominator
            p *= g_den[:, None]
            if dw is not None:  # need_w; d lse / d w_ij = exp(l_ij - lse_i) = p_ij / w_ij on kept negatives
                wb = weights[:, j0:j1]
                dw[:, j0:j1] = torch.where(keep & ~pos & (wb > 0), p / wb.clamp_min(torch.finfo(wb.dtype).tiny), 0.0)
            if agg == "mean":
                p -= pos * (inv_n * g)[:, None]
            elif agg == "sum":
                p -= torch.exp(logits - num_lse[:, None]).masked_fill_(~pos, 0.0) * g[:, None]
            if dq is not None:
                dq.addmm_(p, kb)
            if dk is not None:
                torch.mm(p.T, q, out=dk[j0:j1])
        return dq, dk, dw, None, None, None


class _ChunkedLSE(torch.autograd.Function):
    """``log sum_j exp(q_i . k_j)`` over all columns but a few given per row (the fast path)."""

    @staticmethod
    def forward(ctx: Any, q: Tensor, k: Tensor, drop: tuple[Tensor, ...], chunk: int) -> Tensor:
        lse = torch.full((q.shape[0],), float("-inf"), dtype=q.dtype, device=q.device)
        for j0 in range(0, k.shape[0], chunk):
            lse = torch.logaddexp(lse, torch.logsumexp(_dropped(q @ k[j0 : j0 + chunk].T, drop, j0), -1))
        ctx.save_for_backward(q, k, lse)
        ctx.drop, ctx.chunk = drop, chunk
        return lse

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, Tensor, None, None]:
        q, k, lse = ctx.saved_tensors
        finite = torch.isfinite(lse)  # an empty row passes no gradient (as masked_logsumexp)
        g, lse = torch.where(finite, grad, 0.0), torch.where(finite, lse, 0.0)
        dq, dk = torch.zeros_like(q), torch.empty_like(k)
        for j0 in range(0, k.shape[0], ctx.chunk):
            kb = k[j0 : j0 + ctx.chunk]
            p = torch.exp(_dropped(q @ kb.T, ctx.drop, j0).sub_(lse[:, None])).mul_(g[:, None])
            dq.addmm_(p, kb)
            torch.mm(p.T, q, out=dk[j0 : j0 + ctx.chunk])
        return dq, dk, None, None


def _dropped(logits: Tensor, drop: tuple[Tensor, ...], j0: int) -> Tensor:
    """``logits`` (a block of columns from ``j0``) with ``-inf`` at each row's dropped columns."""
    for cols in drop:
        rows = ((cols >= j0) & (cols < j0 + logits.shape[1])).nonzero().squeeze(-1)
        logits[rows, cols[rows] - j0] = float("-inf")
    return logits


def label_mean_logit(
    anchors: Tensor, keys: Tensor, labels: tuple[Tensor, Tensor], exclude: Tensor | None
) -> tuple[Tensor, Tensor]:
    """Mean positive logit per anchor from per-label key sums, O((A + C) D): the positives of
    anchor ``i`` are the keys with its label, less its excluded column. Returns (mean, count).

    Args:
        anchors: ``[A, D]`` anchors, already divided by the temperature.
        keys: ``[C, D]`` keys.
        labels: ``(anchor_labels [A], key_labels [C])``.
        exclude: long ``[A]``: one column per anchor left out (itself), or ``None``.

    Returns:
        ``(mean positive logit [A], positive count [A])``.
    """
    ids = torch.unique(torch.cat(labels), return_inverse=True)[1]
    a_id, k_id = ids[: len(labels[0])], ids[len(labels[0]) :]
    sums = keys.new_zeros(int(ids.max()) + 1, keys.shape[1]).index_add(0, k_id, keys)[a_id]
    count = torch.bincount(k_id, minlength=int(ids.max()) + 1)[a_id]
    if exclude is not None:
        same = k_id[exclude] == a_id
        sums = sums - keys[exclude] * same[:, None]
        count = count - same.long()
    return (anchors * sums).sum(-1) / count.clamp_min(1), count


@float32
def chunked_nll(
    anchors: Tensor,
    keys: Tensor,
    *,
    positives: Tensor | None = None,
    labels: tuple[Tensor, Tensor] | None = None,
    exclude: Tensor | None = None,
    negatives: Tensor | None = None,
    neg_weights: Tensor | None = None,
    decoupled: bool = False,
    positive_agg: str = "mean",
    chunk_size: int | None = None,
) -> Tensor:
    """Per-anchor contrastive NLL of the logits ``anchors @ keys.T``, streamed over key blocks.

    Same definition as :func:`cl_domains.core.losses.contrastive_nll` (anchors must already be
    divided by the temperature). Positives: ``positives`` (long ``[A]`` column indices or bool
    ``[A, C]``) and/or ``labels = (anchor_labels, key_labels)``; ``exclude`` (long ``[A]``) drops
    one column per anchor from everything (the anchor itself). ``negatives`` (bool ``[A, C]``)
    restricts the negatives, ``neg_weights`` (``[A, C]``) weights them. ``positive_agg``:
    ``"mean"`` (SupCon L_out), ``"sum"`` (one numerator) or ``"none"`` (returns the denominator's
    log-sum-exp only, e.g. a uniformity term). ``chunk_size``: keys per block (default: about
    2^24 logits per block).

    Args:
        anchors: ``[A, D]`` anchors, already divided by the temperature.
        keys: ``[C, D]`` keys.
        positives: long ``[A]`` column indices or bool ``[A, C]``.
        labels: ``(anchor_labels, key_labels)``: same label = positive.
        exclude: long ``[A]``: one column per anchor dropped from everything.
        negatives: bool ``[A, C]``: the columns that may be negatives.
        neg_weights: per-pair weights of the negative terms (same shape as the logits).
        decoupled: drop the positive from the denominator (DCL).
        positive_agg: ``"mean"``, ``"sum"`` or ``"none"`` (the denominator's log-sum-exp only).
        chunk_size: keys per block (default: about 2^24 logits per block).

    Returns:
        ``[A]``: the per-anchor loss, equal to the dense path's in value and gradient.
    """
    if positive_agg not in ("mean", "sum", "none"):
        raise ValueError(f"positive_agg must be 'mean', 'sum' or 'none', got {positive_agg!r}")
    a, c = anchors.shape[0], keys.shape[0]
    pos_index = pos_mask = None
    if positives is not None:
        if positives.dtype == torch.bool:
            pos_mask = positives
        else:
            pos_index = positives.long()
    for name, t in (("positives", pos_mask), ("negatives", negatives), ("neg_weights", neg_weights)):
        if t is not None and tuple(t.shape) != (a, c):
            raise ValueError(f"{name} must have shape {(a, c)} (anchors x keys), got {tuple(t.shape)}")
    if positive_agg != "none" and pos_index is None and pos_mask is None and labels is None:
        raise ValueError("give positives= or labels= (or positive_agg='none' for the denominator only)")
    chunk = max(1, min(chunk_size or max(256, _BLOCK_ENTRIES // max(a, 1)), c))
    if negatives is None and neg_weights is None and pos_mask is None:
        # Fast path: the denominator drops a few columns per row; the numerator needs no block.
        drop = tuple(d for d in (exclude, pos_index if decoupled else None) if d is not None)
        if positive_agg == "none" and (labels is None or not decoupled):
            return cast(Tensor, _ChunkedLSE.apply(anchors, keys, drop, chunk))
        if pos_index is not None and labels is None:
            num = (anchors * keys[pos_index]).sum(-1)
            return cast(Tensor, _ChunkedLSE.apply(anchors, keys, drop, chunk)) - num
        if pos_index is None and labels is not None and positive_agg == "mean" and not decoupled:
            num, count = label_mean_logit(anchors, keys, labels, exclude)
            return (cast(Tensor, _ChunkedLSE.apply(anchors, keys, drop, chunk)) - num).masked_fill(
                count == 0, float("nan")
            )
    pairs = _Pairs(
        pos_index,
        pos_mask,
        labels,
        exclude,
        None if negatives is None else negatives.bool(),
        None if neg_weights is None else neg_weights.to(anchors.dtype),
        decoupled,
    )
    weights = pairs.neg_weights if neg_weights is not None and neg_weights.requires_grad else None
    return cast(Tensor, _ChunkedNLL.apply(anchors, keys, weights, pairs, positive_agg, chunk))
