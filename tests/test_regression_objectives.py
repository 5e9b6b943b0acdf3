"""Regression: the objective slot (``method.objective``) for SupReMix and Rank-N-Contrast. The published default
against the pre-change formula (bit for bit), every loss against a term-by-term reference and a hand-computed
anchor (values and gradients) with SupReMix's mixtures and distance weights passed through, the same structure
against core's ``Objective`` where the slot can hold it, and the refusals."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cl_domains.core.errors import UserError
from cl_domains.core.losses import contrastive_nll
from cl_domains.core.objectives import LOSSES, Objective, ObjectiveConfig
from cl_domains.core.recipe import load_recipe
from cl_domains.regression import Regressor
from cl_domains.regression.losses import (
    RnCObjective,
    RnCObjectiveConfig,
    SupReMixObjective,
    SupReMixObjectiveConfig,
    rnc_objective,
    supremix_objective,
)
from cl_domains.regression.rnc import rnc_loss
from cl_domains.regression.supremix import supremix_mixtures

AIRFOIL = "recipes/supremix_airfoil.yaml"


def batch(b=5, d=4, seed=0, levels=3):
    """A 2-view batch: rows i and i + b are views of example i (same target; targets have ties)."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(2 * b, d, generator=g, dtype=torch.float64, requires_grad=True)
    y1 = torch.randint(0, levels, (b,), generator=g).double()
    return z, torch.cat([y1, y1])


def mixtures(z, y, seed=0, n_neg=3, n_pos=2):
    return supremix_mixtures(F.normalize(z.detach(), dim=-1), y, np.random.default_rng(seed), n_neg, n_pos, window=2.0)


def pre_change_supremix(z, y, mix, temperature, distance_weight=True):
    """``supremix_loss`` as it was before the objective slot (commit 88b28eb), verbatim."""
    z = F.normalize(z, dim=-1)
    a = z.shape[0]
    not_self = ~torch.eye(a, dtype=torch.bool, device=z.device)
    same = (y[:, None] == y[None, :]) & not_self
    logits, pos, neg = z @ z.T, same, ~same & not_self
    dist = (y[:, None] - y[None, :]).abs()
    if mix is not None:
        logits = torch.cat([logits, torch.einsum("ad,amd->am", z, mix.emb)], 1)
        pos = torch.cat([pos, mix.positive & mix.valid], 1)
        neg = torch.cat([neg, ~mix.positive & mix.valid], 1)
        dist = torch.cat([dist, (y[:, None] - mix.label).abs()], 1)
    weights = 1.0 + dist if distance_weight else None
    loss = contrastive_nll(logits / temperature, pos, neg, weights, positive_agg="mean")
    return loss[pos.any(-1)].mean()


def naive(loss, z, y, mix, t, distance_weight=True):
    """The table in regression/losses.py, one anchor and one column at a time."""
    a = len(z)
    zn = F.normalize(z, dim=-1)
    view = [i >= a // 2 for i in range(a)]
    out = []
    for i in range(a):
        cols = []  # (logit, positive, negative, weight)
        for c in range(a):
            if c == i:
                continue
            is_pos, is_key = bool(y[c] == y[i]), view[c] != view[i]
            p = is_pos and (loss != "info_nce" or is_key)
            n = (not is_pos) and {"info_nce": is_key, "dhel": not is_key}.get(loss, True)
            cols.append((zn[i] @ zn[c] / t, p, n, 1 + abs(float(y[i] - y[c]))))
        for m in range(0 if mix is None else mix.emb.shape[1]):
            if mix.valid[i, m]:
                p = bool(mix.positive[i, m])
                cols.append((zn[i] @ mix.emb[i, m] / t, p, not p, 1 + abs(float(y[i] - mix.label[i, m]))))
        decoupled = loss in ("dcl", "dhel")
        den = sum(
            (c[3] if c[2] and distance_weight else 1.0) * torch.exp(c[0])
            for c in cols
            if c[2] or (c[1] and not decoupled)
        )
        terms = [torch.log(den) - c[0] for c in cols if c[1]]
        if terms:
            out.append(sum(terms) / len(terms))
    return torch.stack(out).mean()


# ----------------------------------------------------------------------------------- the published default
def test_the_default_supremix_objective_is_the_pre_change_formula_bit_for_bit():
    cfg = load_recipe(AIRFOIL, "quick").method.objective
    assert (cfg.loss, cfg.temperature, cfg.learnable_temperature) == ("supcon", 0.5, False)
    z, y = batch(b=16, d=8, seed=3, levels=6)
    z, mix = z.float(), mixtures(z.float(), y.float(), n_neg=16, n_pos=16)
    ours = SupReMixObjective(cfg)(z, y.float(), mix)
    before = pre_change_supremix(z, y.float(), mix, 0.5)
    assert ours.item() == before.item()  # float32: the same operations in the same order
    (g1,), (g2,) = torch.autograd.grad(ours, z), torch.autograd.grad(before, z)
    assert torch.equal(g1, g2)


def test_the_default_rnc_objective_is_rank_n_contrast():
    cfg = load_recipe(AIRFOIL, "quick", ["method.name=rnc"]).method.objective
    assert (cfg.loss, cfg.temperature) == ("rnc", 2.0)
    z, y = batch(b=8, seed=1, levels=5)
    assert RnCObjective(cfg)(z, y).item() == rnc_loss(z, y, 2.0).item()


# ----------------------------------------------------------------------------------- swapping the loss
@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("with_mix", [True, False])
def test_every_loss_on_supremix_structure_matches_the_reference_values_and_gradients(loss, with_mix):
    z, y = batch(b=6, d=3, seed=7)
    mix = mixtures(z, y, seed=2) if with_mix else None
    ours = supremix_objective(loss, z, y, mix, 0.3)
    ref = naive(loss, z, y, mix, 0.3)
    torch.testing.assert_close(ours, ref, rtol=1e-10, atol=1e-12)
    (g1,), (g2,) = torch.autograd.grad(ours, z), torch.autograd.grad(ref, z)
    torch.testing.assert_close(g1, g2, rtol=1e-8, atol=1e-12)


def test_one_anchor_by_hand_under_each_loss():
    # 2 examples x 2 views: rows 0, 2 (target 0) and 1, 3 (target 1); anchor 0 with one Mix-neg (target 0.2,
    # weight 1.2) and one Mix-pos (target 0, exactly the anchor's), as SupReMix builds them.
    z = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.8, 0.6], [-0.6, 0.8]], dtype=torch.float64)
    y = torch.tensor([0.0, 1.0, 0.0, 1.0], dtype=torch.float64)

    class Mix:
        emb = torch.zeros(4, 2, 2, dtype=torch.float64)
        emb[0] = torch.tensor([[0.5, 0.5], [0.9, 0.1]], dtype=torch.float64)
        label = torch.tensor([[0.2, 0.0]] * 4, dtype=torch.float64)
        positive = torch.tensor([[False, True]] * 4)
        valid = torch.tensor([[True, True], [False, False], [False, False], [False, False]])

    t = 0.5
    e = lambda s: math.exp(s / t)  # noqa: E731
    s_view, s_other_key, s_same_view, s_neg_mix, s_pos_mix = 0.8, -0.6, 0.0, 0.5, 0.9  # anchor 0 . column
    pos = [s_view, s_pos_mix]  # its other view (row 2) and its Mix-pos
    den = {
        "info_nce": e(s_view) + e(s_pos_mix) + 2 * e(s_other_key) + 1.2 * e(s_neg_mix),  # w = 1 + |0 - 1| = 2
        "nt_xent": e(s_view) + e(s_pos_mix) + 2 * e(s_other_key) + 2 * e(s_same_view) + 1.2 * e(s_neg_mix),
        "dcl": 2 * e(s_other_key) + 2 * e(s_same_view) + 1.2 * e(s_neg_mix),
        "dhel": 2 * e(s_same_view) + 1.2 * e(s_neg_mix),
    }
    den["supcon"] = den["nt_xent"]
    for loss, d in den.items():
        anchor0 = supremix_objective(loss, z, y, Mix, t, reduction="none")[0]
        assert anchor0.item() == pytest.approx(sum(math.log(d) - p / t for p in pos) / 2, rel=1e-12), loss


def test_supcon_and_nt_xent_coincide_for_supremix_and_the_others_differ():
    z, y = batch(b=8, seed=4)
    mix = mixtures(z, y, seed=4)
    values = {loss: supremix_objective(loss, z, y, mix, 0.5).item() for loss in LOSSES}
    assert values["supcon"] == values["nt_xent"]  # its positives already are the equal-target rows
    assert len({round(v, 12) for v in values.values()}) == 4


@pytest.mark.parametrize("loss", [x for x in LOSSES])
def test_without_mixtures_supremix_structure_is_the_slot_on_the_two_views(loss):
    z, y = batch(b=6, d=3, seed=9)
    b = 6
    v1, v2, y1 = z[:b], z[b:], y[:b]
    obj = Objective(ObjectiveConfig.model_construct(loss=loss, temperature=0.4, learnable_temperature=False))
    w = 1 + (y1[:, None] - y1[None, :]).abs()
    kw = {"labels": y1} if loss == "supcon" else {"positives": y1[:, None] == y1[None, :]}
    slot = obj(v1, v2, neg_weights=w, symmetric=True, **kw)
    torch.testing.assert_close(supremix_objective(loss, z, y, None, obj.temperature()), slot, rtol=1e-10, atol=1e-12)


def test_info_nce_with_mixtures_is_the_slot_on_the_flattened_layout():
    z, y = batch(b=5, d=3, seed=11)
    mix = mixtures(z, y, seed=11)
    a, m = mix.emb.shape[:2]
    zn = F.normalize(z, dim=-1)
    view = torch.arange(a) >= a // 2
    keys = view[:, None] != view[None, :]
    mix_pos = torch.zeros(a, a * m, dtype=torch.bool)  # each anchor's own mixtures only
    mix_neg = torch.zeros(a, a * m, dtype=torch.bool)
    for i in range(a):
        mix_pos[i, i * m : (i + 1) * m] = mix.valid[i] & mix.positive[i]
        mix_neg[i, i * m : (i + 1) * m] = mix.valid[i] & ~mix.positive[i]
    same = y[:, None] == y[None, :]
    positives = torch.cat([same & keys, mix_pos], 1)
    negatives = torch.cat([~same & keys, mix_neg], 1)
    labels = torch.cat([y, mix.label.reshape(-1)])
    weights = 1 + (y[:, None] - labels[None, :]).abs()
    obj = Objective(ObjectiveConfig.model_construct(loss="info_nce", temperature=0.3, learnable_temperature=False))
    slot = obj(zn, torch.cat([zn, mix.emb.reshape(a * m, -1)]), positives=positives, negatives=negatives,
               neg_weights=weights, normalize=False)  # fmt: skip
    torch.testing.assert_close(supremix_objective("info_nce", z, y, mix, obj.temperature()), slot)


@pytest.mark.parametrize("loss", LOSSES)
def test_rnc_with_a_slot_loss_contrasts_the_two_views_with_equal_target_positives(loss):
    z, y = batch(b=6, d=3, seed=5)
    cfg = RnCObjectiveConfig(loss=loss, temperature=0.3)
    ours = RnCObjective(cfg)(z, y)
    ref = naive(loss, z, y, None, 0.3, distance_weight=False)  # no mixtures, no weights: the plain structure
    torch.testing.assert_close(ours, ref, rtol=1e-6, atol=1e-9)  # the slot's t is exp(-log(1/t))
    (g1,), (g2,) = torch.autograd.grad(ours, z), torch.autograd.grad(ref, z)
    torch.testing.assert_close(g1, g2, rtol=1e-5, atol=1e-9)
    assert not math.isclose(ours.item(), rnc_objective(Objective(RnCObjectiveConfig()), z, y, 0.3).item())


def test_a_learnable_temperature_gets_a_gradient():
    cfg = SupReMixObjectiveConfig(temperature=0.2, learnable_temperature=True)
    module = SupReMixObjective(cfg)
    z, y = batch(seed=2)
    module(z.float(), y.float(), mixtures(z.float(), y.float())).backward()
    (param,) = list(module.parameters())
    assert param.grad is not None and param.grad.abs().item() > 0
    assert math.isclose(float(module.temperature().detach()), 0.2, rel_tol=1e-6)


@pytest.mark.parametrize("method,loss", [("supremix", "dcl"), ("rnc", "info_nce")])
def test_a_swapped_objective_trains_end_to_end_and_a_learnable_temperature_moves(method, loss):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 3))
    y = x @ np.array([2.0, -1.0, 0.5]) + 0.1 * rng.normal(size=120)
    learnable = {"name": method, "objective": {"loss": loss, "temperature": 0.3, "learnable_temperature": True}}
    model = Regressor(method=learnable, train={"epochs": 3, "batch_size": 32, "lr": 0.01}).fit(x, y)
    objective = model.task_.model["objective"]  # in the model: optimised and checkpointed with it
    assert objective.cfg.loss == loss and type(objective).__name__.lower().startswith(method)
    assert {"mae", "rmse"} <= set(model.metrics_) and model.predict(x[:7]).shape == (7,)
    assert abs(float(objective.temperature().detach()) - 0.3) > 1e-4
    fixed = {"name": method, "objective": {"loss": loss, "temperature": 0.3}}
    fixed = Regressor(method=fixed, train={"epochs": 1, "batch_size": 32}).fit(x, y)
    assert "objective" not in fixed.task_.model and fixed.task_.objective.cfg.loss == loss  # checkpoints as before


# ----------------------------------------------------------------------------------- recipe validation
@pytest.mark.parametrize(
    "overrides,message",
    [
        (["method.supremix.temperature=0.3"], "method.supremix: the key 'temperature' was renamed to "
         "'method.objective.temperature'"),
        (["method.rnc.temperature=3"], "the key 'rnc' was renamed to 'method.objective'"),
        (["method.name=l1", "method.objective.loss=dcl"], "method 'l1' has no contrastive term, so no "
         "method.objective"),
        (["method.objective.loss=rnc"], "'method.objective.loss' = 'rnc' is invalid"),
        (["method.objective.loss=triplet"], "'method.objective.loss' = 'triplet' is invalid"),
        (["method.objective.temperature=0"], "'method.objective.temperature' = 0 is invalid"),
    ],
)  # fmt: skip
def test_incompatible_objectives_are_refused_at_recipe_validation(overrides, message):
    with pytest.raises(UserError) as err:
        load_recipe(AIRFOIL, "quick", overrides)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_every_slot_loss_applies_to_both_contrastive_methods_and_supcon_reads_the_targets():
    for loss in LOSSES:
        for name in ("supremix", "rnc"):
            r = load_recipe(AIRFOIL, "quick", [f"method.name={name}", f"method.objective.loss={loss}"])
            assert r.method.objective.loss == loss
    assert SupReMixObjectiveConfig.has_labels and RnCObjectiveConfig.has_labels
    # a method without labels would refuse supcon in one line (the slot's rule, here on a label-free schema)
    with pytest.raises(ValueError, match="loss 'supcon' needs labels and this method has none"):
        ObjectiveConfig(loss="supcon")


# ----------------------------------------------------------------------------------- the matrix recipe
def test_the_airfoil_recipe_is_the_domains_matrix_recipe():
    from cl_domains.core.matrix import plan

    cells = plan(seeds=[0], profile="matrix", recipes=[AIRFOIL])
    assert {(c.loss, c.temperature) for c in cells} == {(x, t) for x in LOSSES for t in (0.5, 0.1)}
    assert [(c.loss, c.temperature) for c in cells if c.own] == [("supcon", 0.5)]
    assert {c.metric for c in cells} == {"rmse"} and {c.status for c in cells} == {"todo"}
    tiny, quick = load_recipe(AIRFOIL, "tiny"), load_recipe(AIRFOIL, "quick")
    assert load_recipe(AIRFOIL, "matrix").train == quick.train and tiny.train.epochs == 5


@pytest.mark.integration
def test_one_tiny_matrix_cell_of_each_kind(tmp_path, data_root):
    import csv

    from cl_domains.core.matrix import plan, run_matrix

    cells = plan(losses=["supcon", "dhel"], temperatures=[0.1], seeds=[0], profile="tiny", recipes=[AIRFOIL])
    run_matrix(cells, tmp_path, data_root=str(data_root), log=lambda m: None)
    rows = {r["loss"]: r for r in csv.DictReader((tmp_path / "matrix.csv").open())}
    assert {r["status"] for r in rows.values()} == {"done"}
    values = {loss: float(r["value"]) for loss, r in rows.items()}
    assert all(0 < v < 10 for v in values.values()) and values["supcon"] != values["dhel"]  # airfoil rmse, dB
