"""Contrastive objectives as plain functions of tensors.

Everything here is a thin definition on one kernel, :func:`masked_logsumexp`, a numerically
stable ``log sum_j w_ij * exp(l_ij)`` over the entries a boolean mask keeps. Conventions:

* ``temperature`` is explicit (a float or a tensor, e.g. :class:`Temperature`); logits are
  ``similarity / temperature``.
* ``normalize=True`` means cosine similarity (L2-normalised inputs); it is a flag, never hidden.
* Sampling decides *which* pairs count (boolean masks, see :mod:`cl_domains.core.pairs`);
  losses decide *how much* (optional per-pair weights on negatives).
* Every function returns the mean over anchors unless ``reduction="none"``.
* Big batches: every loss built on embeddings (``info_nce``, ``nt_xent``, ``supcon``, ``dcl``,
  ``mv_infonce``, ``mv_dhel``) also has a chunked path (:mod:`cl_domains.core.chunked`) with the
  same values and gradients that never stores the full logit matrix. ``chunked=None`` (default)
  picks it when the matrix would exceed ``AUTO_CHUNK_ENTRIES`` logits; ``True``/``False`` force
  it; ``chunk_size`` sets the keys per block.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .chunked import chunked_nll, label_mean_logit, use_chunks
from .pairs import labels_to_positives
from .precision import float32

__all__ = [
    "masked_logsumexp",
    "nested_logsumexp",
    "contrastive_nll",
    "info_nce",
    "nt_xent",
    "supcon",
    "dcl",
    "mv_infonce",
    "mv_dhel",
    "similarity",
    "Temperature",
    "chunked_nll",
]


def masked_logsumexp(logits: Tensor, mask: Tensor | None = None, weights: Tensor | None = None) -> Tensor:
    """``log(sum_j mask_ij * w_ij * exp(logits_ij))`` along the last dim, stable for any scale.

    Weights enter in log space (``l + log w``) and the sum is torch's fused, max-shifted
    ``logsumexp``. Rows where nothing is kept (all masked or zero weight) give ``-inf`` with a
    zero gradient (never NaN).

    Args:
        logits: ``[..., C]`` values.
        mask: bool ``[..., C]``: the entries kept (default: all).
        weights: non-negative ``[..., C]`` weights; a zero weight drops its entry.

    Returns:
        ``[...]``: the log of the masked, weighted sum of exponentials per row.
    """
    if mask is None and weights is None:
        return torch.logsumexp(logits, -1)
    if weights is not None:
        weights = weights.to(logits.dtype)
        positive = weights > 0
        mask = positive if mask is None else mask & positive
        # log w where kept, -inf elsewhere (one pass; the clamp keeps a weight's own gradient finite)
        log_w = weights.clamp_min(torch.finfo(weights.dtype).tiny).log()
        x = logits + torch.where(mask, log_w, float("-inf"))
    else:
        assert mask is not None  # both None returned above
        x = logits.masked_fill(~mask, float("-inf"))
    empty = ~mask.any(-1)
    if not bool(empty.any()):
        return torch.logsumexp(x, -1)
    x = x.masked_fill(empty.unsqueeze(-1), 0.0)  # keeps the backward of empty rows finite
    return torch.logsumexp(x, -1).masked_fill(empty, float("-inf"))


def nested_logsumexp(logits: Tensor, keys: Tensor, mask: Tensor | None = None) -> Tensor:
    """``out_ij = log sum_{k : mask_ik, keys_ik >= keys_ij} exp(logits_ik)`` for every entry: the
    nested denominators of ranking losses (Rank-N-Contrast: all ``k`` at least as far in label as
    ``j``) in ``O(C log C)`` per row through a sort and a cumulative logsumexp, instead of one
    ``[C]`` mask per ``(i, j)``. Ties in ``keys`` are all included.

    Args:
        logits: ``[A, C]`` values.
        keys: ``[A, C]`` ranking keys (e.g. label distances).
        mask: bool ``[A, C]``: the entries that may enter a sum (default: all).

    Returns:
        ``[A, C]``: the nested log-sum-exp of every entry.
    """
    x = logits if mask is None else logits.masked_fill(~mask, float("-inf"))
    order = keys.argsort(dim=-1, descending=True, stable=True)
    cumulative = torch.logcumsumexp(x.gather(-1, order), dim=-1)
    ascending = keys.gather(-1, order).flip(-1).contiguous()
    n_at_least = keys.shape[-1] - torch.searchsorted(ascending, keys.contiguous(), side="left")
    return cumulative.gather(-1, n_at_least - 1)


def _reduce(per_anchor: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return per_anchor.mean()
    if reduction == "sum":
        return per_anchor.sum()
    if reduction == "none":
        return per_anchor
    raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


@float32
def contrastive_nll(
    logits: Tensor,
    positives: Tensor,
    negatives: Tensor | None = None,
    neg_weights: Tensor | None = None,
    *,
    decoupled: bool = False,
    positive_agg: str = "mean",
) -> Tensor:
    """Per-anchor contrastive negative log-likelihood over a logit matrix ``[A, C]``.

    ``-log( e^{l_ip} / (sum_{p in P(i)} e^{l_ip} + sum_{n in N(i)} w_in e^{l_in}) )``, where the
    positive part of the denominator is dropped when ``decoupled`` (DCL, Yeh et al. 2022, eq. 6).
    ``positives`` is a long tensor ``[A]`` (one positive column per anchor, the fast path: with
    no negatives mask and no weights this is exactly cross-entropy) or a bool mask ``[A, C]``.
    Several positives per anchor: ``positive_agg="mean"`` averages the per-positive terms
    (SupCon's L_out, Khosla et al. 2020, eq. 2); ``"sum"`` puts all positives in one numerator
    (MIL-NCE style, ``-log sum_p e^{l_ip} / denominator``).
    ``negatives`` defaults to every entry that is not a positive. Anchors without a positive
    get ``nan``: callers filter them (see :func:`supcon`).

    Args:
        logits: ``[A, C]`` anchor-candidate logits (similarities over the temperature).
        positives: long ``[A]`` (one positive column per anchor) or bool ``[A, C]``.
        negatives: bool ``[A, C]``: the columns in the denominator (default: every non-positive).
        neg_weights: per-pair weights of the negative terms (same shape as the logits).
        decoupled: drop the positive from the denominator (DCL).
        positive_agg: with several positives, ``"mean"`` averages the per-positive terms (SupCon's L_out), ``"sum"`` puts them in one numerator.

    Returns:
        ``[A]``: the per-anchor loss (``nan`` for an anchor without a positive).
    """
    if positive_agg not in ("mean", "sum"):
        raise ValueError(f"positive_agg must be 'mean' or 'sum', got {positive_agg!r}")
    single = positives.dtype != torch.bool
    if single:
        idx = positives.long().unsqueeze(-1)
        pos_logit = logits.gather(-1, idx).squeeze(-1)
        if neg_weights is None and not decoupled and logits.dim() == 2:
            # cross-entropy (one fused log-softmax), or NT-Xent with a negatives mask
            x = (
                logits
                if negatives is None
                else logits.masked_fill(~negatives.bool().scatter(-1, idx, True), float("-inf"))
            )
            return F.cross_entropy(x, positives.long(), reduction="none")
    pos = F.one_hot(positives.long(), logits.shape[-1]).bool() if single else positives
    neg = ~pos if negatives is None else negatives.bool() & ~pos
    if decoupled:
        denominator = masked_logsumexp(logits, neg, neg_weights)
    else:
        weights = None if neg_weights is None else torch.where(pos, torch.ones_like(neg_weights), neg_weights)
        # pos | ~pos keeps every column: no mask to apply
        denominator = masked_logsumexp(logits, None if negatives is None else pos | neg, weights)
    if single:
        return denominator - pos_logit
    n_pos = pos.sum(-1)
    if positive_agg == "sum":
        loss = denominator - masked_logsumexp(logits, pos)
    else:
        loss = denominator - torch.where(pos, logits, torch.zeros_like(logits)).sum(-1) / n_pos.clamp_min(1)
    return loss.masked_fill(n_pos == 0, float("nan"))


@float32
def similarity(a: Tensor, b: Tensor, normalize: bool = True) -> Tensor:
    """``a @ b.T``, on L2-normalised rows when ``normalize`` (cosine similarity).

    Args:
        a: ``[N, D]`` rows.
        b: ``[M, D]`` rows.
        normalize: L2-normalise the rows first (cosine similarity).

    Returns:
        ``[N, M]`` similarities.
    """
    if normalize:
        a, b = F.normalize(a, dim=-1), F.normalize(b, dim=-1)
    return a @ b.transpose(-2, -1)


def _unit(x: Tensor, normalize: bool) -> Tensor:
    return F.normalize(x, dim=-1) if normalize else x


@float32
def info_nce(
    query: Tensor,
    key: Tensor,
    temperature: float | Tensor = 0.07,
    *,
    hard_negatives: Tensor | None = None,
    positives: Tensor | None = None,
    neg_weights: Tensor | None = None,
    symmetric: bool = False,
    normalize: bool = True,
    reduction: str = "mean",
    chunked: bool | None = None,
    chunk_size: int | None = None,
) -> Tensor:
    """InfoNCE of each ``query[i]`` against all keys (van den Oord et al. 2018; SimCSE eq. 4).

    By default ``key[i]`` is the positive of ``query[i]``. ``positives`` overrides that: a long
    tensor ``[A]`` of positive key indices (e.g. local anchors against keys gathered from every
    process) or a bool mask ``[A, K]`` for several positives per anchor. ``hard_negatives``
    (``[H, D]``, e.g. SimCSE's contradictions, eq. 5) are appended as extra keys for every anchor.
    ``neg_weights`` (``[A, K+H]``) scales each negative's term (importance-weighted negatives:
    DebCSE, MEOW, MCL). ``symmetric`` adds the key->query direction (needs ``A == K``).

    Args:
        query: ``[A, D]`` anchors.
        key: ``[K, D]`` keys; ``key[i]`` is the positive of ``query[i]`` unless ``positives`` is given.
        temperature: divides the similarities (a float, or a tensor from :class:`Temperature`).
        hard_negatives: ``[H, D]`` extra negative keys for every anchor.
        positives: long ``[A]`` key indices or bool ``[A, K]`` (several positives).
        neg_weights: ``[A, K+H]`` weights of the negative terms.
        symmetric: add the key -> query direction (needs ``A == K``).
        normalize: L2-normalise the rows first (cosine similarity).
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (one value per anchor).
        chunked: ``None`` picks the chunked path above 8192 x 8192 logits; ``True`` / ``False`` force it.
        chunk_size: keys per block on the chunked path.

    Returns:
        The loss (a scalar, or ``[A]`` (``[2A]`` when symmetric) with ``reduction="none"``).
    """
    a, k = query.shape[0], key.shape[0]
    if positives is None:
        if a != k:
            raise ValueError(f"query and key must have the same number of rows, got {a} and {k} (or pass positives=)")
        positives = torch.arange(a, device=query.device)
    if symmetric and a != k:
        raise ValueError("symmetric=True needs as many keys as queries")
    keys = key if hard_negatives is None else torch.cat([key, hard_negatives.reshape(-1, key.shape[-1])])
    q, keys = _unit(query, normalize), _unit(keys, normalize)
    pos = positives if positives.dtype != torch.bool else F.pad(positives, (0, keys.shape[0] - k), value=False)
    back_w = None if neg_weights is None or not symmetric else neg_weights[:, :k].transpose(0, 1)
    if use_chunks(chunked, a, keys.shape[0]):
        loss = chunked_nll(q / temperature, keys, positives=pos, neg_weights=neg_weights, chunk_size=chunk_size)
        if symmetric:  # key -> query: keys are the anchors, the queries the candidates
            back_pos = _back_positives(positives, k)
            back = chunked_nll(keys[:k] / temperature, q, positives=back_pos, neg_weights=back_w, chunk_size=chunk_size)
            loss = torch.cat([loss, back])
        return _reduce(loss, reduction)
    logits = (q / temperature) @ keys.transpose(0, 1)
    loss = contrastive_nll(logits, pos, neg_weights=neg_weights)
    if symmetric:  # key -> query over the K keys; the mean of the concatenation averages both ways
        back_pos = _back_positives(positives, k)
        loss = torch.cat([loss, contrastive_nll(logits[:, :k].transpose(0, 1), back_pos, neg_weights=back_w)])
    return _reduce(loss, reduction)


def _back_positives(positives: Tensor, k: int) -> Tensor:
    """Positives of the key -> query direction: the transposed structure (an index stays an
    index when it is the identity)."""
    if positives.dtype == torch.bool:
        return positives.transpose(0, 1)
    if torch.equal(positives, torch.arange(k, device=positives.device)):
        return positives
    return F.one_hot(positives.long(), k).bool().transpose(0, 1)


def _views_rows(views: Tensor | list[Tensor] | tuple[Tensor, ...]) -> Tensor:
    """``[V, N, D]`` from a tensor or a list of ``[N, D]`` views."""
    if isinstance(views, (list, tuple)):
        views = torch.stack(list(views))
    if views.dim() != 3:
        raise ValueError(f"views must be [V, N, D] or a list of [N, D] tensors, got shape {tuple(views.shape)}")
    return views


@float32
def nt_xent(
    z1: Tensor,
    z2: Tensor,
    temperature: float | Tensor = 0.5,
    *,
    normalize: bool = True,
    decoupled: bool = False,
    reduction: str = "mean",
    chunked: bool | None = None,
    chunk_size: int | None = None,
) -> Tensor:
    """NT-Xent over ``2N`` rows (SimCLR, Chen et al. 2020, eq. 1): each view's positive is the
    other view of the same item, all other ``2N-2`` rows are negatives, self-pairs excluded.

    Args:
        z1: ``[N, D]`` first views.
        z2: ``[N, D]`` second views.
        temperature: divides the similarities (a float, or a tensor from :class:`Temperature`).
        normalize: L2-normalise the rows first (cosine similarity).
        decoupled: drop the positive from the denominator (DCL).
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (one value per anchor).
        chunked: ``None`` picks the chunked path above 8192 x 8192 logits; ``True`` / ``False`` force it.
        chunk_size: keys per block on the chunked path.

    Returns:
        The loss (a scalar, or ``[2N]`` with ``reduction="none"``).
    """
    rows = _unit(torch.cat([z1, z2]), normalize)
    m = rows.shape[0]
    other_view = (torch.arange(m, device=rows.device) + m // 2) % m
    if use_chunks(chunked, m, m):
        loss = chunked_nll(
            rows / temperature,
            rows,
            positives=other_view,
            exclude=torch.arange(m, device=rows.device),
            decoupled=decoupled,
            chunk_size=chunk_size,
        )
        return _reduce(loss, reduction)
    logits = (rows / temperature) @ rows.transpose(0, 1)
    logits.diagonal().fill_(float("-inf"))  # self-pairs (in place: the matmul's backward needs only its inputs)
    if not decoupled:
        return _reduce(F.cross_entropy(logits, other_view, reduction="none"), reduction)
    idx = other_view.unsqueeze(-1)
    pos_logit = logits.gather(-1, idx).squeeze(-1)
    return _reduce(torch.logsumexp(logits.scatter(-1, idx, float("-inf")), -1) - pos_logit, reduction)


@float32
def supcon(
    embeddings: Tensor,
    labels: Tensor,
    temperature: float | Tensor = 0.1,
    *,
    normalize: bool = True,
    decoupled: bool = False,
    positive_agg: str = "mean",
    neg_weights: Tensor | None = None,
    reduction: str = "mean",
    chunked: bool | None = None,
    chunk_size: int | None = None,
) -> Tensor:
    """Supervised contrastive loss (Khosla et al. 2020, eq. 2, L_out): rows sharing a label are
    positives, every other row is a negative, self-pairs are excluded. Anchors whose label occurs
    once have no positive and are left out of the mean (never a NaN).

    Args:
        embeddings: ``[N, D]`` rows.
        labels: ``[N]`` class ids; rows sharing one are positives.
        temperature: divides the similarities (a float, or a tensor from :class:`Temperature`).
        normalize: L2-normalise the rows first (cosine similarity).
        decoupled: drop the positive from the denominator (DCL).
        positive_agg: with several positives, ``"mean"`` averages the per-positive terms (SupCon's L_out), ``"sum"`` puts them in one numerator.
        neg_weights: per-pair weights of the negative terms (same shape as the logits).
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (one value per anchor).
        chunked: ``None`` picks the chunked path above 8192 x 8192 logits; ``True`` / ``False`` force it.
        chunk_size: keys per block on the chunked path.

    Returns:
        The loss over the anchors that have a positive (a scalar), or ``[N]`` with ``nan`` for the others.
    """
    n = embeddings.shape[0]
    if labels.shape[0] != n:
        raise ValueError(f"labels has {labels.shape[0]} entries for {n} embeddings")
    z = _unit(embeddings, normalize)
    if use_chunks(chunked, n, n):
        loss = chunked_nll(
            z / temperature,
            z,
            labels=(labels, labels),
            exclude=torch.arange(n, device=z.device),
            neg_weights=neg_weights,
            decoupled=decoupled,
            positive_agg=positive_agg,
            chunk_size=chunk_size,
        )
        _, inverse, counts = torch.unique(labels, return_inverse=True, return_counts=True)
        has_pos = counts[inverse] > 1
    elif neg_weights is None and not decoupled and positive_agg == "mean":
        # self-pairs set to -inf in place; the mean positive logit from a positives mask (small
        # batches) or from per-label sums, O(N D) (large batches, N > 2 D: faster there)
        anchors = z / temperature
        logits = anchors @ z.transpose(0, 1)
        logits.diagonal().fill_(float("-inf"))
        if n <= 2 * z.shape[-1]:
            positives = labels_to_positives(labels)
            count = positives.sum(-1)
            numerator = logits.masked_fill(~positives, 0.0).sum(-1) / count.clamp_min(1)
        else:
            numerator, count = label_mean_logit(anchors, z, (labels, labels), torch.arange(n, device=z.device))
        loss = (torch.logsumexp(logits, -1) - numerator).masked_fill(count == 0, float("nan"))
        has_pos = count > 0
    else:
        logits = (z / temperature) @ z.transpose(0, 1)
        not_self = ~torch.eye(n, dtype=torch.bool, device=embeddings.device)
        positives = labels_to_positives(labels)
        loss = contrastive_nll(logits, positives, not_self, neg_weights, decoupled=decoupled, positive_agg=positive_agg)
        has_pos = positives.any(-1)
    if reduction == "none":
        return loss
    if not bool(has_pos.any()):
        return z.sum() * 0.0
    return _reduce(loss[has_pos], reduction)


@float32
def dcl(
    z1: Tensor,
    z2: Tensor,
    temperature: float | Tensor = 0.1,
    *,
    normalize: bool = True,
    reduction: str = "mean",
    chunked: bool | None = None,
    chunk_size: int | None = None,
) -> Tensor:
    """Decoupled contrastive loss (Yeh et al. 2022): NT-Xent without the positive in the denominator.

    Args:
        z1: ``[N, D]`` first views.
        z2: ``[N, D]`` second views.
        temperature: divides the similarities (a float, or a tensor from :class:`Temperature`).
        normalize: L2-normalise the rows first (cosine similarity).
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (one value per anchor).
        chunked: ``None`` picks the chunked path above 8192 x 8192 logits; ``True`` / ``False`` force it.
        chunk_size: keys per block on the chunked path.

    Returns:
        The loss (a scalar, or ``[2N]`` with ``reduction="none"``).
    """
    return nt_xent(
        z1,
        z2,
        temperature,
        normalize=normalize,
        decoupled=True,
        reduction=reduction,
        chunked=chunked,
        chunk_size=chunk_size,
    )


@float32
def mv_infonce(
    views: Tensor | list[Tensor] | tuple[Tensor, ...],
    temperature: float | Tensor = 0.2,
    *,
    normalize: bool = True,
    reduction: str = "mean",
    chunked: bool | None = None,
    chunk_size: int | None = None,
) -> Tensor:
    """MV-InfoNCE (Koromilas et al. 2025): one term per view-row ``(a, i)`` whose numerator holds
    *all* cross-view pairs of item ``i`` and whose denominator holds every other row:
    ``-log sum_{a!=b} e^{s(i_a, i_b)/t} + log sum_{(c,j)!=(a,i)} e^{s(i_a, j_c)/t}``.
    ``views``: ``[V, N, D]`` or a list of ``V`` tensors ``[N, D]``, ``V >= 2``.

    Args:
        views: ``[V, N, D]`` or a list of ``V >= 2`` tensors ``[N, D]``.
        temperature: divides the similarities (a float, or a tensor from :class:`Temperature`).
        normalize: L2-normalise the rows first (cosine similarity).
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (one value per anchor).
        chunked: ``None`` picks the chunked path above 8192 x 8192 logits; ``True`` / ``False`` force it.
        chunk_size: keys per block on the chunked path.

    Returns:
        The loss (a scalar, or ``[V*N]`` with ``reduction="none"``).
    """
    views = _views_rows(views)
    v, n, d = views.shape
    rows = views.reshape(v * n, d)  # row a*N + i is view a of item i
    cross = ~torch.eye(v, dtype=torch.bool, device=views.device).reshape(1, v * v)
    if use_chunks(chunked, v * n, v * n):
        unit = _unit(views, normalize)
        per_item = torch.einsum("and,bnd->nab", unit, unit).reshape(n, v * v) / temperature
        rows = unit.reshape(v * n, d)
        denominator = chunked_nll(
            rows / temperature,
            rows,
            exclude=torch.arange(v * n, device=rows.device),
            positive_agg="none",
            chunk_size=chunk_size,
        )
        return _reduce(denominator - masked_logsumexp(per_item, cross).repeat(v), reduction)
    logits = similarity(rows, rows, normalize) / temperature
    not_self = ~torch.eye(v * n, dtype=torch.bool, device=views.device)
    # Numerator per item: all ordered cross-view pairs (a != b), gathered into [N, V*V].
    per_item = logits.reshape(v, n, v, n).diagonal(dim1=1, dim2=3).permute(2, 0, 1).reshape(n, v * v)
    numerator = masked_logsumexp(per_item, cross).repeat(v)
    denominator = masked_logsumexp(logits, not_self)
    return _reduce(denominator - numerator, reduction)


@float32
def mv_dhel(
    views: Tensor | list[Tensor] | tuple[Tensor, ...],
    temperature: float | Tensor = 0.2,
    *,
    normalize: bool = True,
    reduction: str = "mean",
    chunked: bool | None = None,
    chunk_size: int | None = None,
) -> Tensor:
    """MV-DHEL (Koromilas et al. 2025): alignment of all cross-view pairs, uniformity within each
    view separately (decoupled): ``-log sum_{a<b} e^{s(i_a, i_b)/t} + sum_a log sum_{j!=i} e^{s(i_a, j_a)/t}``.
    One term per item; ``views`` as in :func:`mv_infonce`.

    Args:
        views: ``[V, N, D]`` or a list of ``V >= 2`` tensors ``[N, D]``.
        temperature: divides the similarities (a float, or a tensor from :class:`Temperature`).
        normalize: L2-normalise the rows first (cosine similarity).
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (one value per anchor).
        chunked: ``None`` picks the chunked path above 8192 x 8192 logits; ``True`` / ``False`` force it.
        chunk_size: keys per block on the chunked path.

    Returns:
        The loss (a scalar, or ``[N]`` with ``reduction="none"``).
    """
    views = _views_rows(views)
    v, n, _ = views.shape
    if normalize:
        views = F.normalize(views, dim=-1)
    if use_chunks(chunked, n, n):
        self_col = torch.arange(n, device=views.device)
        uniformity = sum(
            chunked_nll(x / temperature, x, exclude=self_col, positive_agg="none", chunk_size=chunk_size) for x in views
        )
    else:
        within = views @ views.transpose(1, 2) / temperature  # [V, N, N]
        not_self = ~torch.eye(n, dtype=torch.bool, device=views.device)
        uniformity = masked_logsumexp(within, not_self).sum(0)  # [N]
    pairs = torch.einsum("and,bnd->nab", views, views) / temperature  # [N, V, V]
    upper = torch.triu(torch.ones(v, v, dtype=torch.bool, device=views.device), diagonal=1)
    alignment = masked_logsumexp(pairs.reshape(n, v * v), upper.reshape(1, v * v))
    return _reduce(uniformity - alignment, reduction)


class Temperature(nn.Module):
    """A temperature, fixed or learnable. A fixed one is exactly the given float (no parameter, no state);
    learnable ones are stored as ``log(1/t)`` and clipped so that ``t >= min_value`` (CLIP's scale <= 100
    guard against collapse of the logit scale).

    Args:
        init: the starting (or fixed) temperature, > 0.
        learnable: train it (stored as ``log(1/t)``).
        min_value: the smallest temperature a learnable one may reach.
    """

    def __init__(self, init: float = 0.07, learnable: bool = False, min_value: float = 0.01):
        super().__init__()
        if init <= 0:
            raise ValueError(f"temperature must be > 0, got {init}")
        self.min_value = min_value
        self.fixed = None if learnable else float(init)
        if learnable:
            self.log_scale = nn.Parameter(torch.tensor(math.log(1.0 / init)))

    def forward(self) -> Tensor:
        if self.fixed is not None:  # a 0-dim float64 tensor: ``x / t`` is ``x / init`` in x's dtype
            return torch.tensor(self.fixed, dtype=torch.float64)
        return torch.exp(-self.log_scale.clamp(max=math.log(1.0 / self.min_value)))

    def extra_repr(self) -> str:
        return f"value={float(self()):.4g}, learnable={self.fixed is None}"
