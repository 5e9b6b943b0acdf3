"""core.objectives: every loss of the objective slot against a term-by-term reference (values and gradients),
against the named core losses it generalises, dense against chunked, and the recipe-time refusal."""

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from cl_domains.core import losses as L
from cl_domains.core.errors import UserError
from cl_domains.core.objectives import LOSSES, Objective, ObjectiveConfig, objective_config


@pytest.fixture(autouse=True)
def _float64():
    """float64 for exact comparisons, restored afterwards (the default dtype is process-wide)."""
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(before)


def naive(loss, q, k, t, positives=None, negatives=None, weights=None, hard=None, labels=None, symmetric=False):
    """The table in core/objectives.py, one anchor and one candidate at a time."""

    def direction(q, k, pos, neg, w, qlab, klab):
        a, kk = len(q), len(k)
        qn, kn = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
        hn = [] if hard is None else list(F.normalize(hard, dim=-1))
        out = []
        for i in range(a):
            cands = []  # (logit, is_positive, is_negative, weight)
            for j in range(kk):
                p = bool(qlab[i] == klab[j]) if loss == "supcon" else bool(pos[i, j])
                n = (not p) and (neg is None or bool(neg[i, j])) and loss != "dhel"
                cands.append((qn[i] @ kn[j] / t, p, n, 1.0 if w is None else w[i, j]))
            for x in hn:
                cands.append((qn[i] @ x / t, False, True, 1.0))
            if loss in ("nt_xent", "dcl", "dhel", "supcon"):
                for j in range(a):
                    if j == i:
                        continue
                    mirror = a == kk  # other queries take the keys' masks only as the keys' other view
                    if loss == "supcon":
                        p = bool(qlab[i] == qlab[j])
                    else:
                        p = mirror and pos is not None and pos.dtype == torch.bool and bool(pos[i, j])
                    n = (not p) and (neg is None or not mirror or bool(neg[i, j]))
                    cands.append((qn[i] @ qn[j] / t, p, n, 1.0 if w is None or not mirror else w[i, j]))
            decoupled = loss in ("dcl", "dhel")
            den = sum((c[3] if c[2] else 1.0) * torch.exp(c[0]) for c in cands if c[2] or (c[1] and not decoupled))
            terms = [torch.log(den) - c[0] for c in cands if c[1]]
            out.append(sum(terms) / len(terms) if terms else torch.tensor(float("nan")))
        return torch.stack(out)

    a = len(q)
    qlab, klab = (labels if isinstance(labels, tuple) else (labels, labels)) if labels is not None else (None, None)
    pos = (
        None
        if positives is None
        else (positives if positives.dtype == torch.bool else F.one_hot(positives, len(k)).bool())
    )
    if pos is None and loss != "supcon":
        pos = torch.eye(a, dtype=torch.bool)
    out = direction(q, k, pos, negatives, weights, qlab, klab)
    if symmetric:
        tr = lambda m: None if m is None else m.T  # noqa: E731
        out = torch.cat([out, direction(k, q, tr(pos), tr(negatives), tr(weights), klab, qlab)])
    out = out[~torch.isnan(out)]
    return out.mean()


def make(a=6, k=6, d=5, h=0, seed=0):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(a, d, generator=g, requires_grad=True)
    key = torch.randn(k, d, generator=g, requires_grad=True)
    hard = torch.randn(h, d, generator=g) if h else None
    return q, key, hard, g


def objective(loss, t=0.3):
    return Objective(ObjectiveConfig.model_construct(loss=loss, temperature=t, learnable_temperature=False))


STRUCTURES = ["index", "mask", "negatives", "weights", "hard", "symmetric"]


@pytest.mark.parametrize("loss,structure", list(itertools.product(LOSSES, STRUCTURES)))
@pytest.mark.parametrize("chunked", [False, True])
def test_each_loss_and_structure_matches_the_reference(loss, structure, chunked):
    q, k, hard, g = make(h=3 if structure == "hard" else 0)
    kw = {}
    if structure == "index":
        kw["positives"] = torch.tensor([1, 0, 3, 2, 5, 4])
    if structure == "mask":
        m = torch.eye(6, dtype=torch.bool)
        m[0, 1] = m[2, 4] = True
        kw["positives"] = m
    if structure == "negatives":
        kw["negatives"] = torch.rand(6, 6, generator=g) > 0.3
    if structure == "weights":
        kw["neg_weights"] = torch.rand(6, 6, generator=g) * 2
    if structure == "hard":
        kw["hard_negatives"] = hard
    if structure == "symmetric":
        kw["symmetric"] = True
    labels = torch.tensor([0, 1, 0, 2, 1, 3]) if loss == "supcon" else None
    if loss == "supcon":
        kw.pop("positives", None)
    got = objective(loss)(q, k, labels=labels, chunked=chunked, chunk_size=4, **kw)
    ref_kw = {**kw, "hard": kw.pop("hard_negatives", None), "weights": kw.pop("neg_weights", None)}
    ref_kw.pop("hard_negatives", None), ref_kw.pop("neg_weights", None)
    want = naive(loss, q, k, 0.3, labels=labels, **ref_kw)
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-10)
    g1 = torch.autograd.grad(got, (q, k))
    g2 = torch.autograd.grad(want, (q, k))
    for x, y in zip(g1, g2, strict=False):
        torch.testing.assert_close(x, y, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("chunked", [False, True])
def test_more_keys_than_queries_with_masks_and_weights(loss, chunked):
    """COCONUT's NSPT shape: 4 anchors against 7 keys, several positives, a negatives mask and weights; the
    other queries are plain negatives (supcon: positives of the same label)."""
    q, k, _, g = make(a=4, k=7)
    pos = torch.zeros(4, 7, dtype=torch.bool)
    pos[0, 0] = pos[0, 3] = pos[1, 1] = pos[2, 2] = pos[3, 2] = pos[3, 5] = True
    kw = {"negatives": torch.rand(4, 7, generator=g) > 0.3, "neg_weights": torch.rand(4, 7, generator=g) * 2}
    labels = (torch.tensor([0, 1, 0, 2]), torch.tensor([0, 1, 2, 0, 1, 2, 3])) if loss == "supcon" else None
    if loss != "supcon":
        kw["positives"] = pos
    got = objective(loss)(q, k, labels=labels, chunked=chunked, chunk_size=3, **kw)
    want = naive(loss, q, k, 0.3, positives=kw.get("positives"), negatives=kw["negatives"],
                 weights=kw["neg_weights"], labels=labels)  # fmt: skip
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-10)
    for x, y in zip(torch.autograd.grad(got, (q, k)), torch.autograd.grad(want, (q, k)), strict=False):
        torch.testing.assert_close(x, y, rtol=1e-8, atol=1e-10)


def test_a_hand_computed_case():
    """Two items, orthogonal unit vectors, t = 1: info_nce = log(e + 1) - 1 for the identity positives."""
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    got = objective("info_nce", 1.0)(q, q.clone())
    assert got.item() == pytest.approx(math.log(math.e + 1) - 1)
    # dhel: numerator e^1 (the other view), denominator only the other query (e^0): 0 - 1
    assert objective("dhel", 1.0)(q, q.clone()).item() == pytest.approx(-1.0)
    # nt_xent: denominator e^1 + e^0 (the other key) + e^0 (the other query)
    assert objective("nt_xent", 1.0)(q, q.clone()).item() == pytest.approx(math.log(math.e + 2) - 1)


def test_the_slot_reproduces_the_named_core_losses():
    q, k, hard, g = make(a=8, k=8, h=3)
    w = torch.rand(8, 11, generator=g)
    torch.testing.assert_close(objective("info_nce")(q, k), L.info_nce(q, k, 0.3))
    torch.testing.assert_close(
        objective("info_nce")(q, k, hard_negatives=hard), L.info_nce(q, k, 0.3, hard_negatives=hard)
    )
    torch.testing.assert_close(
        objective("info_nce")(q, k, neg_weights=w[:, :8]), L.info_nce(q, k, 0.3, neg_weights=w[:, :8])
    )
    torch.testing.assert_close(objective("nt_xent")(q, k, symmetric=True), L.nt_xent(q, k, 0.3))
    torch.testing.assert_close(objective("dcl")(q, k, symmetric=True), L.dcl(q, k, 0.3))
    labels = torch.tensor([0, 1, 0, 2, 1, 3, 3, 4])
    torch.testing.assert_close(
        objective("supcon")(q, k, labels=labels, symmetric=True),
        L.supcon(torch.cat([q, k]), torch.cat([labels, labels]), 0.3),
    )


def test_the_chunked_path_is_taken_at_a_size_that_forces_it(monkeypatch):
    """Above AUTO_CHUNK_ENTRIES logits the compact structures never build [A, C]; the values stay equal."""
    from cl_domains.core import chunked

    q, k, _, _ = make(a=300, k=300, d=8)
    dense = {n: objective(n)(q, k, labels=torch.arange(300) % 7, chunked=False) for n in LOSSES}
    monkeypatch.setattr(chunked, "AUTO_CHUNK_ENTRIES", 1000)
    calls = []
    real = chunked.chunked_nll
    monkeypatch.setattr("cl_domains.core.objectives.chunked_nll", lambda *a, **kw: calls.append(1) or real(*a, **kw))
    for n in LOSSES:
        torch.testing.assert_close(objective(n)(q, k, labels=torch.arange(300) % 7), dense[n])
    assert len(calls) == len(LOSSES)


def test_recipe_refuses_supcon_without_labels_and_keeps_published_defaults():
    MCL = objective_config("mclrec", "nt_xent", 1.0)
    assert MCL().loss == "nt_xent" and MCL().temperature == 1.0
    with pytest.raises(Exception, match="loss 'supcon' needs labels and mclrec has none.*choose one of: info_nce"):
        MCL(loss="supcon")
    Sup = objective_config("coconut", "supcon", 0.1, labels=True)
    assert Sup(loss="supcon").loss == "supcon"
    from cl_domains.core.recipe import _validate

    with pytest.raises(UserError, match=r"method.objective.*needs labels"):
        _validate(MCL, {"loss": "supcon"}, "method.objective", "recipe r.yaml")


def test_learnable_temperature_is_a_parameter():
    obj = Objective(ObjectiveConfig(loss="info_nce", temperature=0.1, learnable_temperature=True))
    assert [n for n, _ in obj.named_parameters()] == ["temperature.log_scale"]
    q, k, _, _ = make()
    obj(q, k).backward()
    assert obj.temperature.log_scale.grad is not None
