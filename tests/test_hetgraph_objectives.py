"""MEOW / AdaMEOW on the objective slot: the published default equals the pre-slot weighted InfoNCE, the other
losses follow hand-written references with the methods' own weights passed through (values and gradients), and
the recipe refuses what the methods cannot take (supcon without labels, the old temperature key)."""

import math

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from cl_domains.core.errors import UserError
from cl_domains.core.losses import info_nce
from cl_domains.core.objectives import Objective
from cl_domains.core.recipe import load_recipe
from cl_domains.hetgraph import MEOW
from cl_domains.hetgraph.adameow import AdaMEOWConfig, PairWeights
from cl_domains.hetgraph.losses import cluster_weights, views_nce
from cl_domains.hetgraph.meow import MEOWConfig

N, D = 6, 4


def rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).requires_grad_()


def meow_weights():
    """Cluster weights of two clusterings of 6 nodes: 0 (same cluster twice), 1 or 2."""
    return cluster_weights([torch.tensor([0, 0, 1, 1, 2, 2]), torch.tensor([0, 1, 1, 1, 2, 0])]).double()


def objective(cfg_cls, **kw):
    return Objective(cfg_cls(**kw).objective).double()


def tau(obj):
    """The objective's temperature as it computes it: core.Temperature keeps log(1/t) in float32, so 0.4 comes
    back as 0.39999998 (1 float32 ulp; see the report): references use this value."""
    return float(obj.temperature())


def reference(loss, q, k, t, w):
    """Per-anchor loop over unit vectors: key i is the positive of query i; negatives are the other keys (and for
    nt_xent / dcl / dhel the other queries), each scaled by w[i, j]."""
    q, k = torch.nn.functional.normalize(q, dim=1), torch.nn.functional.normalize(k, dim=1)
    total = 0
    for i in range(len(q)):
        pos = torch.exp(q[i] @ k[i] / t)
        keys = sum(w[i, j] * torch.exp(q[i] @ k[j] / t) for j in range(len(q)) if j != i)
        queries = sum(w[i, j] * torch.exp(q[i] @ q[j] / t) for j in range(len(q)) if j != i)
        den = {
            "info_nce": pos + keys,
            "nt_xent": pos + keys + queries,
            "dcl": keys + queries,
            "dhel": queries,
        }[loss]
        total = total - torch.log(pos / den)
    return total / len(q)


@pytest.mark.parametrize("cfg_cls", [MEOWConfig, AdaMEOWConfig])
def test_default_objective_is_the_published_weighted_infonce(cfg_cls):
    """The default (info_nce @ 0.4) gives the pre-slot loss, core.info_nce(..., 0.4, neg_weights=w), value and
    gradients, with MEOW's cluster weights and with AdaMEOW's learned weights (gradients into the weight MLP)."""
    cfg = cfg_cls()
    assert (cfg.objective.loss, cfg.objective.temperature, cfg.objective.learnable_temperature) == (
        "info_nce",
        0.4,
        False,
    )
    q, k = rand(N, D, seed=1), rand(N, D, seed=2)
    torch.manual_seed(0)
    pw = PairWeights(D, 8, 4).double()
    obj = objective(cfg_cls)
    assert tau(obj) == pytest.approx(0.4, rel=1e-7)
    for w in (meow_weights(), pw(q, k), None):
        ours = views_nce(obj, q, k, w)
        torch.testing.assert_close(ours, info_nce(q, k, 0.4, neg_weights=w), rtol=1e-7, atol=0)
        before = info_nce(q, k, tau(obj), neg_weights=w)
        torch.testing.assert_close(ours, before, rtol=1e-12, atol=1e-12)
        params = (q, k, *pw.parameters()) if w is not None and w.requires_grad else (q, k)
        for a, b in zip(
            torch.autograd.grad(ours, params, retain_graph=True), torch.autograd.grad(before, params), strict=False
        ):
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("loss", ["info_nce", "nt_xent", "dcl", "dhel"])
def test_swapped_objective_follows_the_reference_with_meow_weights(loss):
    q, k, w = rand(N, D, seed=3), rand(N, D, seed=4), meow_weights()
    obj = objective(MEOWConfig, objective={"loss": loss, "temperature": 0.3})
    ours = views_nce(obj, q, k, w)
    naive = reference(loss, q, k, tau(obj), w)
    torch.testing.assert_close(ours, naive, rtol=1e-10, atol=1e-12)
    for a, b in zip(torch.autograd.grad(ours, (q, k)), torch.autograd.grad(naive, (q, k)), strict=False):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)


def test_swapping_changes_the_value_as_the_reference_says():
    """On one fixed batch the four losses differ, by what the extra / missing denominator terms say."""
    q, k, w = rand(N, D, seed=5), rand(N, D, seed=6), meow_weights()
    vals = {
        loss: float(views_nce(objective(MEOWConfig, objective={"loss": loss}), q, k, w).detach())
        for loss in ("info_nce", "nt_xent", "dcl", "dhel")
    }
    # nt_xent = info_nce's denominator + the other queries; dcl = nt_xent's without the positive
    assert vals["nt_xent"] > vals["info_nce"] and vals["nt_xent"] > vals["dcl"] and len(set(vals.values())) == 4
    # a single-term case by hand: 2 nodes, weight 1, orthogonal views -> info_nce = log(1 + e^{(0 - 1)/t})
    q2 = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    t = 0.5
    got = views_nce(objective(MEOWConfig, objective={"temperature": t}), q2, q2.clone(), torch.ones(2, 2).double())
    assert float(got) == pytest.approx(math.log(1 + math.exp(-1 / t)), rel=1e-7)
    # dhel on it: only the other query, similarity 0 -> -1/t + log(e^0)
    got = views_nce(objective(MEOWConfig, objective={"loss": "dhel", "temperature": t}), q2, q2.clone(), None)
    assert float(got) == pytest.approx(-1 / t, rel=1e-7)


def test_zero_weights_remove_pairs():
    """MEOW's w_ij = 0 (same cluster in every clustering): the pair leaves the denominator, as if absent."""
    q, k = rand(3, D, seed=7), rand(3, D, seed=8)
    w = torch.tensor([[0, 0, 1], [0, 0, 1], [1, 1, 0]], dtype=torch.float64)  # nodes 0 and 1 always together
    for loss in ("info_nce", "nt_xent"):
        obj = objective(MEOWConfig, objective={"loss": loss})
        ours = views_nce(obj, q, k, w)
        torch.testing.assert_close(ours, reference(loss, q, k, tau(obj), w), rtol=1e-10, atol=1e-12)
        changed = views_nce(objective(MEOWConfig, objective={"loss": loss}), q, k, torch.ones(3, 3).double())
        assert float(changed.detach()) > float(ours.detach())


@pytest.mark.parametrize("cfg_cls", [MEOWConfig, AdaMEOWConfig])
def test_supcon_and_the_old_temperature_key_are_refused(cfg_cls):
    with pytest.raises(ValidationError, match=r"loss 'supcon' needs labels and (ada)?meow has none"):
        cfg_cls(objective={"loss": "supcon"})
    with pytest.raises(ValidationError, match=r"the key 'temperature' was renamed to 'objective.temperature'"):
        cfg_cls(temperature=0.4)


def test_recipes_take_the_objective_and_refuse_supcon():
    r = load_recipe("recipes/meow_dblp.yaml", "quick", ["method.objective.loss=dcl"])
    assert (r.method.objective.loss, r.method.objective.temperature) == ("dcl", 0.9)
    with pytest.raises(UserError, match=r"method\.objective.*supcon.*needs labels.*choose one of: info_nce"):
        load_recipe("recipes/adameow_acm.yaml", "quick", ["method.objective.loss=supcon"])
    with pytest.raises(UserError, match=r"renamed to 'objective.temperature'"):
        load_recipe("recipes/meow_acm.yaml", "quick", ["method.temperature=0.5"])


def test_learnable_temperature_is_a_parameter():
    obj = Objective(MEOWConfig(objective={"learnable_temperature": True, "temperature": 0.4}).objective)
    assert [n for n, _ in obj.named_parameters()] == ["temperature.log_scale"]
    assert float(obj.temperature().detach()) == pytest.approx(0.4)


def test_python_fit_with_a_swapped_learnable_objective(tmp_path):
    """MEOW(objective=...) from Python: dcl with a learnable temperature trains it (it moves off 0.4) and the run's
    config records the objective."""
    from test_hetgraph_own_data import TINY, movies

    data = movies()
    m = MEOW(
        train={"epochs": 3, "eval_every": 3, "threads": 1, "lr": 1e-2},
        method={"clusters": [3, 6], "objective": {"loss": "dcl", "learnable_temperature": True}},
        model={"nei_max": [20]},
        eval=TINY,
    )
    m.fit(data, target="movie", metapaths=[["movie", "actor", "movie"]])
    assert m.objective_.loss_name == "dcl" and m.task_.model["objective"] is m.objective_
    assert abs(float(m.objective_.temperature().detach()) - 0.4) > 1e-4  # float32 rounding of 0.4: 2e-8
    objective = m.recipe_.resolved["method"]["objective"]
    assert objective["loss"] == "dcl" and objective["learnable_temperature"] is True
    assert np.isfinite(m.embed(data)).all()
    # the learned temperature is saved with the model
    again = MEOW.load(m.save(tmp_path / "model"))
    assert float(again.objective_.temperature()) == float(m.objective_.temperature())
