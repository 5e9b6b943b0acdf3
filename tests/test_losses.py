"""Every loss against a naive loop-over-anchors reference: values and gradients, float64."""

import math

import pytest
import reference as ref
import torch
import torch.nn.functional as F

from cl_domains.core import losses as L
from cl_domains.core.pairs import inverse_propensity_weights, labels_to_positives, normalize_row_weights

SHAPES = [(3, 4), (8, 16), (17, 5)]
T = 0.1


def rand(*shape, seed=0):
    g = torch.Generator().manual_seed(seed + sum(shape))
    return torch.randn(*shape, generator=g, dtype=torch.float64).requires_grad_(True)


def grads(fn, *xs):
    out = fn(*xs)
    return out.detach(), torch.autograd.grad(out, xs)


def assert_same(ours, naive, *xs):
    v1, g1 = grads(ours, *xs)
    v2, g2 = grads(naive, *xs)
    torch.testing.assert_close(v1, v2, rtol=1e-10, atol=1e-10)
    for a, b in zip(g1, g2, strict=False):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-10)


def test_hand_computed_info_nce():
    # Two anchors on orthogonal axes, keys equal to the anchors, t = 1:
    # loss = -log(e^1 / (e^1 + e^0)) = log(1 + e^-1) for each anchor.
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert L.info_nce(q, q.clone(), 1.0).item() == pytest.approx(math.log(1 + math.exp(-1)), abs=1e-7)
    # Swapped keys: the positive has cosine 0, the negative cosine 1: loss = -log(e^0 / (e^0 + e^1)).
    k = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    assert L.info_nce(q, k, 1.0).item() == pytest.approx(math.log(1 + math.e), abs=1e-7)
    # Weighted negatives: w = 0 removes the negative, loss 0.
    w = torch.zeros(2, 2)
    assert L.info_nce(q, q.clone(), 1.0, neg_weights=w).item() == pytest.approx(0.0, abs=1e-7)


def test_masked_logsumexp_matches_naive_and_is_stable():
    x = torch.randn(5, 7, dtype=torch.float64)
    m = torch.rand(5, 7) > 0.3
    m[0] = False  # an empty row
    w = torch.rand(5, 7, dtype=torch.float64)
    out = L.masked_logsumexp(x, m, w)
    for i in range(5):
        terms = [w[i, j] * math.exp(x[i, j]) for j in range(7) if m[i, j]]
        expect = math.log(sum(terms)) if terms else -math.inf
        assert out[i].item() == pytest.approx(expect, rel=1e-12)
    big = torch.tensor([[1e4, 1e4 - 1.0, -1e4]], dtype=torch.float64, requires_grad=True)
    val = L.masked_logsumexp(big)
    assert val.item() == pytest.approx(1e4 + math.log(1 + math.exp(-1)), rel=1e-12)
    val.backward()
    assert torch.isfinite(big.grad).all()
    e = torch.zeros(1, 3, dtype=torch.float64, requires_grad=True)
    r = L.masked_logsumexp(e, torch.zeros(1, 3, dtype=torch.bool))
    assert r.item() == -math.inf
    r.sum().clamp_min(-1.0).backward()
    assert torch.isfinite(e.grad).all()


def test_info_nce_equals_cross_entropy_on_cosine_logits():
    q, k = rand(9, 6), rand(9, 6, seed=1)
    logits = F.normalize(q, dim=-1) @ F.normalize(k, dim=-1).T / T
    torch.testing.assert_close(L.info_nce(q, k, T), F.cross_entropy(logits, torch.arange(9)))


@pytest.mark.parametrize("n,d", SHAPES)
def test_info_nce(n, d):
    assert_same(lambda q, k: L.info_nce(q, k, T), lambda q, k: ref.info_nce(q, k, T), rand(n, d), rand(n, d, seed=1))


@pytest.mark.parametrize("n,d", SHAPES)
def test_info_nce_hard_negatives(n, d):
    assert_same(
        lambda q, k, h: L.info_nce(q, k, T, hard_negatives=h),
        lambda q, k, h: ref.info_nce(q, k, T, hard=h),
        rand(n, d),
        rand(n, d, seed=1),
        rand(n, d, seed=2),
    )


@pytest.mark.parametrize("n,d", SHAPES)
def test_info_nce_weighted_negatives(n, d):
    w = torch.rand(n, 2 * n, dtype=torch.float64, generator=torch.Generator().manual_seed(3)) * 2
    w[:, 0] = 0.0  # a removed negative (false-negative filter)
    assert_same(
        lambda q, k, h: L.info_nce(q, k, T, hard_negatives=h, neg_weights=w),
        lambda q, k, h: ref.info_nce(q, k, T, hard=h, w=w),
        rand(n, d),
        rand(n, d, seed=1),
        rand(n, d, seed=2),
    )


@pytest.mark.parametrize("n,d", SHAPES)
def test_info_nce_several_positives(n, d):
    labels = torch.arange(n) % 3
    pos = labels[:, None] == labels[None, :]
    assert_same(
        lambda q, k: L.info_nce(q, k, T, positives=pos),
        lambda q, k: ref.info_nce(q, k, T, pos=pos.tolist()),
        rand(n, d),
        rand(n, d, seed=1),
    )


def test_info_nce_symmetric_is_mean_of_both_directions():
    q, k = rand(6, 4), rand(6, 4, seed=1)
    both = L.info_nce(q, k, T, symmetric=True)
    torch.testing.assert_close(both, (ref.info_nce(q, k, T) + ref.info_nce(k, q, T)) / 2)


def test_info_nce_without_normalisation_uses_dot_products():
    q, k = rand(5, 3), rand(5, 3, seed=1)
    torch.testing.assert_close(L.info_nce(q, k, 0.5, normalize=False), F.cross_entropy(q @ k.T / 0.5, torch.arange(5)))


@pytest.mark.parametrize("n,d", SHAPES)
@pytest.mark.parametrize("decoupled", [False, True])
def test_nt_xent_and_dcl(n, d, decoupled):
    ours = (lambda a, b: L.dcl(a, b, T)) if decoupled else (lambda a, b: L.nt_xent(a, b, T))
    assert_same(ours, lambda a, b: ref.nt_xent(a, b, T, decoupled), rand(n, d), rand(n, d, seed=1))


@pytest.mark.parametrize("n,d", SHAPES)
@pytest.mark.parametrize("agg", ["mean", "sum"])
def test_supcon(n, d, agg):
    labels = torch.tensor([i % max(1, (n - 1) // 2) for i in range(n - 1)] + [99])  # the last label is a singleton
    assert_same(
        lambda z: L.supcon(z, labels, T, positive_agg=agg), lambda z: ref.supcon(z, labels.tolist(), T, agg), rand(n, d)
    )


def test_supcon_no_positive_anywhere_is_zero_not_nan():
    z = rand(4, 3)
    loss = L.supcon(z, torch.arange(4), T)
    loss.backward()
    assert loss.item() == 0.0 and torch.isfinite(z.grad).all()


@pytest.mark.parametrize("v,n,d", [(2, 4, 3), (3, 5, 4), (4, 3, 6)])
def test_mv_infonce(v, n, d):
    views = rand(v, n, d)
    assert_same(lambda x: L.mv_infonce(x, T), lambda x: ref.mv_infonce(x, T), views)


@pytest.mark.parametrize("v,n,d", [(2, 4, 3), (3, 5, 4), (5, 3, 6)])
def test_mv_dhel(v, n, d):
    views = rand(v, n, d)
    assert_same(lambda x: L.mv_dhel(x, T), lambda x: ref.mv_dhel(x, T), views)


def test_mv_infonce_with_two_views_is_nt_xent_minus_log2():
    a, b = rand(6, 5), rand(6, 5, seed=1)
    # both orders of the one cross-view pair sit in the numerator: e^s + e^s = 2 e^s
    torch.testing.assert_close(L.mv_infonce([a, b], T), L.nt_xent(a, b, T) - math.log(2))


def test_float32_large_scale_is_finite():
    q = torch.randn(64, 32) * 100
    loss = L.info_nce(q, q + 0.01 * torch.randn(64, 32), 0.01, normalize=False)
    assert torch.isfinite(loss)


def test_learnable_temperature_gets_gradient_and_is_clipped():
    t = L.Temperature(0.05, learnable=True, min_value=0.01)
    q, k = torch.randn(8, 4), torch.randn(8, 4)
    L.info_nce(q, k, t()).backward()
    assert t.log_scale.grad is not None and t.log_scale.grad.abs() > 0
    with torch.no_grad():
        t.log_scale.fill_(50.0)
    assert t().item() == pytest.approx(0.01)
    fixed = L.Temperature(0.05)
    assert not any(p.requires_grad for p in fixed.parameters()) and fixed().item() == pytest.approx(0.05)
    with pytest.raises(ValueError):
        L.Temperature(0.0)


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match="same number of rows"):
        L.info_nce(torch.randn(3, 2), torch.randn(4, 2))
    with pytest.raises(ValueError, match="labels"):
        L.supcon(torch.randn(3, 2), torch.arange(4))
    with pytest.raises(ValueError, match="V, N, D"):
        L.mv_dhel(torch.randn(3, 2))


def test_pairs_helpers():
    labels = torch.tensor([0, 1, 0, 2])
    pos = labels_to_positives(labels)
    assert pos.tolist() == [[False, False, True, False], [False] * 4, [True, False, False, False], [False] * 4]
    w = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    m = torch.tensor([[True, True, False], [True, True, True]])
    out = normalize_row_weights(w, m)
    assert out[0].tolist() == pytest.approx([2 / 3, 4 / 3, 0.0]) and out[1].tolist() == [0.0, 0.0, 0.0]
    # IPW: a value in a bin holding 3/4 of the reference gets 1/(3/4), one holding 1/4 gets 4, then E_ref[w] = 1
    reference = torch.tensor([0.05, 0.05, 0.05, 0.95])
    w = inverse_propensity_weights(torch.tensor([0.01, 0.99]), reference, bins=2, clip=(0.0, 100.0))
    assert w.tolist() == pytest.approx([0.5 * 4 / 3, 0.5 * 4])
    assert (0.75 * w[0] + 0.25 * w[1]).item() == pytest.approx(1.0)
