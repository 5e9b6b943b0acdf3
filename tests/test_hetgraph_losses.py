"""MEOW / AdaMEOW objectives against naive references: cluster weights by hand, the weighted InfoNCE
term by term (tests/reference.py), the chunked pair-weight MLP against the N x N x d MLP, ProtoNCE
and the probe's F1 against sklearn."""

import pytest
import reference as ref
import torch
from sklearn.metrics import f1_score

from cl_domains.core.losses import info_nce
from cl_domains.hetgraph.adameow import PairWeights
from cl_domains.hetgraph.evaluate import batched_f1, linear_probe
from cl_domains.hetgraph.meow import cluster_weights, kmeans, proto_nce


def rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).requires_grad_()


def test_cluster_weights_by_hand():
    c1 = torch.tensor([0, 0, 1, 1])
    c2 = torch.tensor([0, 1, 1, 1])
    w = cluster_weights([c1, c2])
    # pair (0,1): same in c1 only -> 2-1; (2,3): same in both -> 0; (0,2): never -> 2
    expected = torch.tensor([[0, 1, 2, 2], [1, 0, 1, 1], [2, 1, 0, 0], [2, 1, 0, 0]], dtype=torch.float32)
    assert torch.equal(w, expected)


def test_meow_weighted_infonce_matches_reference():
    q, k = rand(7, 5, seed=1), rand(7, 5, seed=2)
    w = cluster_weights([torch.tensor([0, 0, 1, 1, 2, 2, 2]), torch.tensor([0, 1, 1, 1, 2, 0, 2])]).double()
    ours = info_nce(q, k, 0.4, neg_weights=w)
    naive = ref.info_nce(q, k, 0.4, w=w)
    torch.testing.assert_close(ours, naive, rtol=1e-10, atol=1e-10)
    g1 = torch.autograd.grad(ours, (q, k))
    g2 = torch.autograd.grad(ref.info_nce(q, k, 0.4, w=w), (q, k))
    for a, b in zip(g1, g2, strict=False):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("chunk", [1, 3, 64])
def test_chunked_pair_weights_equal_the_naive_mlp(chunk):
    torch.manual_seed(0)
    pw = PairWeights(6, 4, chunk).double()
    a, b = rand(9, 6, seed=3), rand(9, 6, seed=4)
    mlp = torch.nn.Sequential(pw.l1, torch.nn.Tanh(), pw.l2, torch.nn.Sigmoid())
    naive = mlp(a.unsqueeze(1) + b.unsqueeze(0)).squeeze(-1)  # the N x N x d input, built explicitly
    ours = pw(a, b)
    torch.testing.assert_close(ours, naive, rtol=1e-12, atol=1e-12)
    r = torch.randn(9, 9, dtype=torch.float64)
    params = (a, b, *pw.parameters())
    for x, y in zip(
        torch.autograd.grad((ours * r).sum(), params), torch.autograd.grad((naive * r).sum(), params), strict=False
    ):
        torch.testing.assert_close(x, y, rtol=1e-10, atol=1e-12)


def test_adameow_loss_matches_reference_loop():
    torch.manual_seed(1)
    pw = PairWeights(5, 16, 2).double()
    f, c = rand(6, 5, seed=5), rand(6, 5, seed=6)
    w = pw(f, c)
    ours = info_nce(f, c, 0.9, neg_weights=w)
    wl = [[pw.l2(torch.tanh(pw.l1(f[i] + c[j]))).sigmoid().squeeze() for j in range(6)] for i in range(6)]
    torch.testing.assert_close(ours, ref.info_nce(f, c, 0.9, w=wl), rtol=1e-10, atol=1e-10)


def test_chunked_weights_memory_is_bounded():
    """The [rows, N, hidden] activations are not kept for backward: the saved graph stays O(N^2)."""
    pw = PairWeights(64, 16, 128)
    a = torch.randn(1024, 64, requires_grad=True)
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t.numel()) or t, lambda t: t):
        w = pw(a, a)
    assert w.shape == (1024, 1024)
    assert max(saved) <= 1024 * 1024  # a [1024, 1024, 16] activation would be 16x larger


def test_proto_nce_matches_formula():
    v = torch.nn.functional.normalize(rand(8, 4, seed=7), dim=1)
    assign = torch.tensor([0, 0, 1, 1, 1, 2, 2, 0])
    cent = rand(3, 4, seed=8).detach()
    ours = proto_nce(v, assign, cent, 0.5)
    cn = torch.nn.functional.normalize(cent, dim=1)
    n = torch.bincount(assign).double()
    dist = torch.stack([sum((v[i] - cn[s]).norm() for i in range(8) if assign[i] == s) for s in range(3)])
    phi = dist / n / torch.log(n + 10)
    phi = phi.clamp(torch.quantile(phi, 0.1), torch.quantile(phi, 0.9))
    phi = 0.5 * phi / phi.mean()
    naive = (
        sum(
            -torch.log(
                torch.exp(v[i] @ cn[assign[i]] / phi[assign[i]])
                / sum(torch.exp(v[i] @ cn[s] / phi[s]) for s in range(3))
            )
            for i in range(8)
        )
        / 8
    )
    torch.testing.assert_close(ours, naive, rtol=1e-8, atol=1e-10)


def test_kmeans_finds_separated_clusters():
    x = torch.cat([torch.randn(50, 4) * 0.01 + i * 5 for i in range(3)])
    assign, cent = kmeans(x, 3, seed=0)
    assert cent.shape == (3, 4) and len(set(assign.tolist())) == 3
    for i in range(3):
        assert len(set(assign[i * 50 : (i + 1) * 50].tolist())) == 1


def test_batched_f1_equals_sklearn():
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 4, (300,), generator=g)
    pred = torch.randint(0, 4, (5, 300), generator=g)
    pred[0, :] = 0  # classes never predicted: F1 0 for them, as sklearn
    ma, mi = batched_f1(pred, y, 4)
    for r in range(5):
        assert ma[r].item() == pytest.approx(f1_score(y, pred[r], average="macro", zero_division=0), abs=1e-6)
        assert mi[r].item() == pytest.approx(f1_score(y, pred[r], average="micro"), abs=1e-6)


def test_linear_probe_on_separable_embeddings():
    g = torch.Generator().manual_seed(0)
    y = torch.arange(3).repeat(400)
    z = torch.nn.functional.one_hot(y, 3).float() * 3 + torch.randn(1200, 3, generator=g) * 0.5
    idx = torch.randperm(1200, generator=g)
    res = linear_probe(z, y, idx[:60], idx[60:560], idx[560:1060], repeats=4, steps=100, lr=0.05)
    assert res["macro_f1"].shape == (4,) and res["macro_f1"].min() > 95 and res["auc"].min() > 99
    noise = linear_probe(
        torch.randn(1200, 3, generator=g), y, idx[:60], idx[60:560], idx[560:1060], repeats=4, steps=100
    )
    assert noise["macro_f1"].mean() < 45  # chance is 33
