"""The chunked (streaming) path of every loss equals the dense path: values and gradients, float64.

Block sizes are chosen so that the last block is partial and anchors' positives fall in other
blocks than the anchor itself."""

import pytest
import torch

from cl_domains.core import chunked as C
from cl_domains.core import losses as L

T = 0.1
RTOL, ATOL = 1e-6, 1e-10  # the acceptance bar; the observed error is ~1e-15


def rand(*shape, seed=0, grad=True):
    g = torch.Generator().manual_seed(seed + 7 * sum(shape))
    return torch.randn(*shape, generator=g, dtype=torch.float64).requires_grad_(grad)


def same(fn, *xs, chunk=3):
    """fn(*xs, chunked=..., chunk_size=...) with chunked True vs False: same value and gradients."""
    dense = fn(*xs, chunked=False)
    gd = torch.autograd.grad(dense.nansum(), [x for x in xs if x.requires_grad])
    stream = fn(*xs, chunked=True, chunk_size=chunk)
    gs = torch.autograd.grad(stream.nansum(), [x for x in xs if x.requires_grad])
    torch.testing.assert_close(stream, dense, rtol=RTOL, atol=ATOL, equal_nan=True)
    for a, b in zip(gs, gd, strict=False):
        torch.testing.assert_close(a, b, rtol=RTOL, atol=ATOL)
    return dense


def weights(a, c, seed=5):
    w = torch.rand(a, c, dtype=torch.float64, generator=torch.Generator().manual_seed(seed)) * 2
    w[:, 1] = 0.0  # removed negatives (false-negative filter)
    w[0, :] = 0.0  # an anchor whose negatives are all removed
    return w


@pytest.mark.parametrize("chunk", [1, 3, 4, 100])
def test_info_nce(chunk):
    same(lambda q, k, **kw: L.info_nce(q, k, T, **kw), rand(10, 6), rand(10, 6, seed=1), chunk=chunk)


@pytest.mark.parametrize("symmetric", [False, True])
def test_info_nce_hard_negatives_and_weights(symmetric):
    w = weights(7, 14)
    same(
        lambda q, k, h, **kw: L.info_nce(q, k, T, hard_negatives=h, neg_weights=w, symmetric=symmetric, **kw),
        rand(7, 5),
        rand(7, 5, seed=1),
        rand(7, 5, seed=2),
    )


@pytest.mark.parametrize("symmetric", [False, True])
def test_info_nce_several_positives_mask(symmetric):
    labels = torch.arange(9) % 3
    pos = labels[:, None] == labels[None, :]
    same(
        lambda q, k, **kw: L.info_nce(q, k, T, positives=pos, symmetric=symmetric, neg_weights=weights(9, 9), **kw),
        rand(9, 4),
        rand(9, 4, seed=1),
    )


def test_info_nce_index_positives_against_more_keys_and_symmetric_permutation():
    # local anchors against gathered keys (the distributed layout)
    same(
        lambda q, k, **kw: L.info_nce(q, k, T, positives=torch.tensor([4, 5, 6]), **kw), rand(3, 5), rand(8, 5, seed=1)
    )
    perm = torch.tensor([2, 0, 3, 1, 5, 4])
    same(lambda q, k, **kw: L.info_nce(q, k, T, positives=perm, symmetric=True, **kw), rand(6, 5), rand(6, 5, seed=1))


def test_learnable_temperature_and_unnormalised():
    t = torch.tensor(0.2, dtype=torch.float64, requires_grad=True)
    same(lambda q, k, t, **kw: L.info_nce(q, k, t, normalize=False, **kw), rand(6, 3), rand(6, 3, seed=1), t)


@pytest.mark.parametrize("decoupled", [False, True])
def test_nt_xent_and_dcl(decoupled):
    same(lambda a, b, **kw: L.nt_xent(a, b, T, decoupled=decoupled, **kw), rand(7, 5), rand(7, 5, seed=1))
    same(lambda a, b, **kw: L.dcl(a, b, T, **kw), rand(4, 5), rand(4, 5, seed=1), chunk=5)


@pytest.mark.parametrize("agg", ["mean", "sum"])
@pytest.mark.parametrize("decoupled", [False, True])
@pytest.mark.parametrize("weighted", [False, True])
def test_supcon(agg, decoupled, weighted):
    labels = torch.tensor([0, 1, 0, 2, 1, 0, 3, 2, 1, 9])  # label 3 and 9: anchors without a positive
    w = weights(10, 10) if weighted else None
    same(
        lambda z, **kw: L.supcon(z, labels, T, positive_agg=agg, decoupled=decoupled, neg_weights=w, **kw), rand(10, 4)
    )
    per_anchor = same(lambda z, **kw: L.supcon(z, labels, T, positive_agg=agg, reduction="none", **kw), rand(10, 4))
    assert per_anchor.isnan().tolist() == [lab in (3, 9) for lab in labels.tolist()]


def test_supcon_without_any_positive():
    z = rand(5, 3)
    loss = L.supcon(z, torch.arange(5), T, chunked=True)
    loss.backward()
    assert loss.item() == 0.0 and torch.isfinite(z.grad).all()


@pytest.mark.parametrize("v,n", [(2, 5), (3, 4)])
def test_multi_view(v, n):
    same(lambda x, **kw: L.mv_infonce(x, T, **kw), rand(v, n, 4))
    same(lambda x, **kw: L.mv_dhel(x, T, **kw), rand(v, n, 4))


@pytest.mark.parametrize("agg", ["mean", "sum"])
@pytest.mark.parametrize("decoupled", [False, True])
def test_chunked_nll_matches_contrastive_nll_with_masks_and_weight_gradients(agg, decoupled):
    """The kernel itself, with a dense positives mask, a negatives mask and weights that require grad."""
    a, c = 6, 11
    q, k = rand(a, 4), rand(c, 4, seed=1)
    g = torch.Generator().manual_seed(3)
    pos = torch.rand(a, c, generator=g) < 0.25
    pos[:, 0] = True
    neg = torch.rand(a, c, generator=g) < 0.8
    w = (torch.rand(a, c, generator=g, dtype=torch.float64) + 0.1).requires_grad_(True)
    dense = L.contrastive_nll(q @ k.T, pos, neg, w, decoupled=decoupled, positive_agg=agg)
    stream = C.chunked_nll(
        q, k, positives=pos, negatives=neg, neg_weights=w, decoupled=decoupled, positive_agg=agg, chunk_size=4
    )
    torch.testing.assert_close(stream, dense, rtol=RTOL, atol=ATOL)
    for x, y in zip(
        torch.autograd.grad(stream.sum(), [q, k, w]), torch.autograd.grad(dense.sum(), [q, k, w]), strict=False
    ):
        torch.testing.assert_close(x, y, rtol=RTOL, atol=ATOL)


def test_denominator_only_equals_masked_logsumexp():
    q, k = rand(5, 3), rand(8, 3, seed=1)
    mask = torch.rand(5, 8, generator=torch.Generator().manual_seed(0)) < 0.6
    torch.testing.assert_close(
        C.chunked_nll(q, k, negatives=mask, positive_agg="none", chunk_size=3),
        L.masked_logsumexp(q @ k.T, mask),
        rtol=RTOL,
        atol=ATOL,
    )


def test_denominator_only_with_positives_given():
    """positive_agg='none' returns the log-sum-exp over positives and negatives (decoupled: negatives)."""
    q, k = rand(5, 3), rand(7, 3, seed=1)
    idx = torch.tensor([1, 0, 3, 6, 2])
    pos = torch.nn.functional.one_hot(idx, 7).bool()
    for decoupled in (False, True):
        expect = L.masked_logsumexp(q @ k.T, ~pos if decoupled else None)
        for p in (idx, pos):
            got = C.chunked_nll(q, k, positives=p, decoupled=decoupled, positive_agg="none", chunk_size=2)
            torch.testing.assert_close(got, expect, rtol=RTOL, atol=ATOL)


def test_automatic_selection_by_size(monkeypatch):
    calls = []
    real = L.chunked_nll
    monkeypatch.setattr(L, "chunked_nll", lambda *a, **kw: calls.append(1) or real(*a, **kw))
    q, k = rand(20, 4), rand(20, 4, seed=1)
    L.info_nce(q, k, T)
    assert not calls  # 400 logits: dense
    monkeypatch.setattr(C, "AUTO_CHUNK_ENTRIES", 399)
    L.info_nce(q, k, T)
    assert calls  # above the threshold: chunked
    calls.clear()
    L.info_nce(q, k, T, chunked=False)
    assert not calls


def test_float32_large_scale_is_finite_and_close():
    q = torch.randn(300, 16) * 50
    k = q + 0.1 * torch.randn(300, 16)
    dense = L.info_nce(q, k, 0.01, normalize=False, chunked=False)
    stream = L.info_nce(q, k, 0.01, normalize=False, chunked=True, chunk_size=64)
    assert torch.isfinite(stream)
    torch.testing.assert_close(stream, dense, rtol=1e-4, atol=1e-4)


def test_bad_inputs():
    with pytest.raises(ValueError, match="positives= or labels="):
        C.chunked_nll(torch.randn(3, 2), torch.randn(3, 2))
    with pytest.raises(ValueError, match=r"neg_weights must have shape \(3, 4\)"):
        C.chunked_nll(torch.randn(3, 2), torch.randn(4, 2), positives=torch.arange(3), neg_weights=torch.ones(3, 3))
