"""The objective slot in the time-series domain (issue 16): TS2Vec's hierarchical contrasts and AutoTCL's global and
local InfoNCE under each loss of ``method.objective``, against term-by-term references written by hand."""

import math

import pytest
import torch

from cl_domains.core.errors import UserError
from cl_domains.core.objectives import Objective
from cl_domains.timeseries import losses
from cl_domains.timeseries.autotcl import AutoTCLObjectiveConfig
from cl_domains.timeseries.losses import global_loss, hierarchical_loss, local_loss, paired_rows_loss
from cl_domains.timeseries.ts2vec import TS2VecObjectiveConfig


def objective(cfg, **kw):
    return Objective(cfg(**kw)).double()


def randn(*shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=torch.float64, requires_grad=True)


def anchor_term(sims: dict, pos: int, negs: list[int], loss: str) -> torch.Tensor:
    """-log of one anchor: ``sims[j]`` = its logit with candidate ``j``; ``pos`` its positive, ``negs`` the rest of
    the denominator (the positive joins it unless the loss is decoupled)."""
    denom = sum(torch.exp(sims[j]) for j in negs)
    if loss not in ("dcl", "dhel"):
        denom = denom + torch.exp(sims[pos])
    return -(sims[pos] - torch.log(denom))


def naive_paired(rows: torch.Tensor, loss: str, t: float) -> torch.Tensor:
    """TS2Vec's contrast of ``rows [G, 2N, D]`` (rows i and i +- N are the two views of one item), dot product / t:
    info_nce: the other view's rows; nt_xent: every other row; dcl: nt_xent's without the positive; dhel: the
    anchor's own view's other rows. Mean over the G * 2N anchors."""
    g, n2, _ = rows.shape
    n = n2 // 2
    terms = []
    for grp in rows:
        for i in range(n2):
            own = range(0, n) if i < n else range(n, n2)
            other = range(n, n2) if i < n else range(0, n)
            p = (i + n) % n2
            sims = {j: grp[i] @ grp[j] / t for j in range(n2)}
            negs = {
                "info_nce": [j for j in other if j != p],
                "nt_xent": [j for j in range(n2) if j not in (i, p)],
                "dcl": [j for j in range(n2) if j not in (i, p)],
                "dhel": [j for j in own if j != i],
            }[loss]
            terms.append(anchor_term(sims, p, negs, loss))
    return sum(terms) / len(terms)


def naive_hierarchical(z1, z2, loss, t, alpha=0.5):
    total, scales = 0.0, 0
    while True:
        if z1.shape[0] > 1:
            total = total + alpha * naive_paired(torch.cat([z1, z2], 0).transpose(0, 1), loss, t)
        if z1.shape[1] == 1:
            return (total + 0.0) / (scales + 1)
        total = total + (1 - alpha) * naive_paired(torch.cat([z1, z2], 1), loss, t)
        scales += 1
        z1 = torch.nn.functional.max_pool1d(z1.transpose(1, 2), 2).transpose(1, 2)
        z2 = torch.nn.functional.max_pool1d(z2.transpose(1, 2), 2).transpose(1, 2)


def grads(value, inputs):
    return torch.autograd.grad(value, inputs, retain_graph=True)


# --- the published defaults give the pre-slot values --------------------------------------------------------------


def test_ts2vec_default_objective_is_the_published_loss_and_the_slot_reproduces_it():
    a, b = randn(3, 5, 4, seed=0), randn(3, 5, 4, seed=1)
    default = objective(TS2VecObjectiveConfig)
    assert (default.loss_name, float(default.temperature())) == ("nt_xent", 1.0)
    before, after = hierarchical_loss(a, b), hierarchical_loss(a, b, objective=default)
    assert after.item() == before.item()  # the same computation: bit-for-bit
    for x, y in zip(grads(before, (a, b)), grads(after, (a, b)), strict=False):
        assert torch.equal(x, y)
    rows = torch.cat([a, b], 1)  # the temporal contrast's rows; nt_xent through the slot, group by group
    via_slot = losses._slot_groups(rows, default)
    assert via_slot.item() == pytest.approx(paired_rows_loss(rows).item(), rel=1e-12)
    torch.testing.assert_close(grads(via_slot, (a, b)), grads(paired_rows_loss(rows), (a, b)))


def test_autotcl_default_objective_gives_the_core_info_nce_values():
    default = objective(AutoTCLObjectiveConfig)
    assert (default.loss_name, float(default.temperature())) == ("info_nce", 1.0)
    a, b = randn(4, 6, 3, seed=2), randn(4, 6, 3, seed=3)
    for cosine in (True, False):  # variant autotcl / ts2vec
        before, after = global_loss(a, b, normalize=cosine), global_loss(a, b, normalize=cosine, objective=default)
        assert after.item() == pytest.approx(before.item(), rel=1e-12)
        torch.testing.assert_close(grads(after, (a, b)), grads(before, (a, b)))
    z = randn(3, 70, 5, seed=4)
    before = local_loss(z, 16, generator=torch.Generator().manual_seed(7))
    after = local_loss(z, 16, generator=torch.Generator().manual_seed(7), objective=default)
    assert after.item() == pytest.approx(before.item(), rel=1e-12)
    torch.testing.assert_close(grads(after, z), grads(before, z))


# --- other losses: values and gradients against hand-written references ------------------------------------------


@pytest.mark.parametrize("loss", ["info_nce", "nt_xent", "dcl", "dhel"])
@pytest.mark.parametrize("t", [1.0, 0.5])
def test_ts2vec_hierarchical_loss_under_each_objective(loss, t, monkeypatch):
    monkeypatch.setattr(losses, "MAX_SLOT_ENTRIES", 200)  # several slot calls per contrast: packing is tested too
    a, b = randn(3, 5, 2, seed=5), randn(3, 5, 2, seed=6)
    obj = objective(TS2VecObjectiveConfig, loss=loss, temperature=t)
    ours = hierarchical_loss(a, b, objective=obj)
    ref = naive_hierarchical(a, b, loss, float(obj.temperature()))  # t as stored (a float32 log-scale)
    assert ours.item() == pytest.approx(ref.item(), rel=1e-10)
    torch.testing.assert_close(grads(ours, (a, b)), grads(ref, (a, b)))


def test_swapping_the_ts2vec_loss_changes_the_value_by_the_hand_computed_amount():
    """One group, two items, 1-d rows: row values 1, 2 (view 1) and 3, -1 (view 2), dot product, t = 1."""
    rows = torch.tensor([[[1.0], [2.0], [3.0], [-1.0]]], dtype=torch.float64)

    def nll(pos, negs):  # -log e^pos / (e^pos + sum e^negs)
        return -pos + math.log(math.exp(pos) + sum(math.exp(x) for x in negs))

    # anchors (logit with positive; other logits): row0: 3 | 2, -1; row1: -2 | 2, 6; row2: 3 | 6, -3; row3: -2 | -1, -3
    nt = (nll(3, [2, -1]) + nll(-2, [2, 6]) + nll(3, [6, -3]) + nll(-2, [-1, -3])) / 4
    info = (nll(3, [-1]) + nll(-2, [6]) + nll(3, [6]) + nll(-2, [-1])) / 4  # the other view only
    dhel = (-3 + math.log(math.exp(2)) + 2 + math.log(math.exp(2)) - 3 + math.log(math.exp(-3)) + 2 - 3) / 4
    for loss, expected in (("nt_xent", nt), ("info_nce", info), ("dhel", dhel)):
        got = paired_rows_loss(rows, objective(TS2VecObjectiveConfig, loss=loss))
        assert got.item() == pytest.approx(expected, rel=1e-12), loss
    assert info != pytest.approx(nt)


@pytest.mark.parametrize("loss", ["nt_xent", "dcl", "dhel"])
def test_autotcl_global_loss_under_each_objective(loss):
    a, b = randn(4, 6, 3, seed=8), randn(4, 6, 3, seed=9)
    obj = objective(AutoTCLObjectiveConfig, loss=loss, temperature=0.5)
    ours, t = global_loss(a, b, objective=obj), float(obj.temperature())
    pa = torch.nn.functional.normalize(a.max(1).values, dim=1)
    pb = torch.nn.functional.normalize(b.max(1).values, dim=1)
    rows = torch.cat([pa, pb])[None]  # the two views of 4 series: the same structure as TS2Vec's rows
    # the global term is one direction (view 1 -> view 2): only the first 4 anchors of the naive symmetric form
    n = 4
    terms = []
    for i in range(n):
        sims = {j: rows[0, i] @ rows[0, j] / t for j in range(2 * n)}
        negs = {
            "nt_xent": [j for j in range(2 * n) if j not in (i, i + n)],
            "dcl": [j for j in range(2 * n) if j not in (i, i + n)],
            "dhel": [j for j in range(n) if j != i],
        }[loss]
        terms.append(anchor_term(sims, i + n, negs, loss))
    ref = sum(terms) / n
    assert ours.item() == pytest.approx(ref.item(), rel=1e-10)
    torch.testing.assert_close(grads(ours, (a, b)), grads(ref, (a, b)))


@pytest.mark.parametrize("loss", ["info_nce", "nt_xent", "dcl", "dhel"])
def test_autotcl_local_loss_passes_its_segment_masks_to_each_objective(loss):
    """The local term's structure (next segment positive, segments two or more away negative, ``k - 3`` per row)
    reaches the slot intact: with query = key = the segments, the other-query columns repeat the keys, so
    nt_xent = info_nce + log 2, dcl = decoupled info_nce + log 2, dhel = decoupled info_nce (module docstring)."""
    k = 6
    obj = objective(AutoTCLObjectiveConfig, loss=loss, temperature=0.5)
    t = float(obj.temperature())
    z = randn(2, 20, 3, seed=10)
    start = int(torch.randint(0, 20 - 3 * k + 1, (1,), generator=torch.Generator().manual_seed(11)))
    ours = local_loss(
        z,
        k,
        generator=torch.Generator().manual_seed(11),
        objective=obj,
    )
    terms = []
    for series in z:
        seg = [
            torch.nn.functional.normalize(series[start + 3 * j : start + 3 * j + 3].max(0).values, dim=0)
            for j in range(k)
        ]
        for i in range(k):
            p = i + 1 if i < k - 1 else i - 1
            negs = [j for j in range(k) if abs(i - j) >= 2 and (i, j) not in ((0, 2), (k - 1, k - 3))]
            assert len(negs) == k - 3
            s = {j: seg[i] @ seg[j] / t for j in range(k)}
            neg_sum = sum(torch.exp(s[j]) for j in negs)
            terms.append(
                {
                    "info_nce": -s[p] + torch.log(torch.exp(s[p]) + neg_sum),
                    "nt_xent": -s[p] + torch.log(2 * torch.exp(s[p]) + 2 * neg_sum),
                    "dcl": -s[p] + torch.log(2 * neg_sum),
                    "dhel": -s[p] + torch.log(neg_sum),
                }[loss]
            )
    ref = sum(terms) / len(terms)
    assert ours.item() == pytest.approx(ref.item(), rel=1e-10)
    torch.testing.assert_close(grads(ours, z), grads(ref, z))


# --- recipes: the slot's keys, refusals, and a task trained with a swapped objective ---------------------------------


@pytest.mark.parametrize("recipe", ["ts2vec_ett", "autotcl_ett", "autotcl_ucr"])
def test_supcon_is_refused_at_recipe_validation(recipe):
    from cl_domains.core.recipe import load_recipe

    with pytest.raises(UserError, match=r"method.objective.*'supcon' needs labels and (ts2vec|autotcl) has none"):
        load_recipe(f"recipes/{recipe}.yaml", "quick", ["method.objective.loss=supcon"])


def test_old_autotcl_keys_are_refused_naming_the_new_ones():
    from cl_domains.core.recipe import load_recipe

    with pytest.raises(UserError, match=r"'temperature' was renamed to 'objective.temperature'"):
        load_recipe("recipes/autotcl_ett.yaml", "quick", ["method.temperature=0.5"])
    with pytest.raises(UserError, match=r"objective: ts2vec .* is now the key 'variant': write variant: ts2vec") as e:
        load_recipe("recipes/autotcl_ucr.yaml", "quick", ["method.objective=ts2vec"])
    assert "e.g. objective: {loss: info_nce, temperature: 1.0}." in str(e.value)
    from cl_domains.timeseries import TSEncoder

    with pytest.raises(UserError, match=r"method: objective: ts2vec .* write variant: ts2vec"):
        TSEncoder(method={"name": "autotcl", "objective": "ts2vec"}).fit(torch.zeros(4, 20).numpy())
    r = load_recipe("recipes/autotcl_ucr.yaml", "quick")
    assert (r.method.variant, r.method.objective.loss, r.method.objective.temperature) == ("ts2vec", "info_nce", 1.0)
    r = load_recipe("recipes/ts2vec_ett.yaml", "quick")
    assert (r.method.objective.loss, r.method.objective.temperature) == ("nt_xent", 1.0)
    r = load_recipe("recipes/autotcl_ett.yaml", "matrix")  # the domain's matrix recipe
    assert (r.method.variant, r.method.objective.loss, r.method.objective.temperature) == ("auto", "info_nce", 1.0)
    assert r.data.kind == "forecast"  # auto: AutoTCL's own terms
    assert r.matrix.metric == "mse" and r.matrix.temperatures == [1.0, 0.2]


@pytest.mark.parametrize("name", ["ts2vec", "autotcl"])
def test_a_learnable_temperature_of_a_swapped_objective_gets_gradients(name, data_root):
    from cl_domains.core.recipe import load_recipe
    from cl_domains.core.registry import method_spec
    from cl_domains.core.task import StepContext

    tiny = ["model.depth=1", "model.hidden=16", "model.output_dims=16", "data.horizons=[4, 8]", "eval.padding=8"]
    r = load_recipe(
        f"recipes/{name}_ett.yaml",
        "quick",
        tiny
        + [
            "method.objective.loss=dcl",
            "method.objective.temperature=0.5",
            "method.objective.learnable_temperature=true",
        ],
    )
    task = method_spec("timeseries", name).cls(r, data_root, torch.device("cpu"))
    temp = task.model["objective"].temperature.log_scale
    assert isinstance(temp, torch.nn.Parameter) and any(p is temp for p in task.model.parameters())
    batch = next(iter(task.batches(0)))
    out = task.loss(batch, StepContext(step=1, epoch=0, index=0, seed=r.train.seed, device=torch.device("cpu")))
    loss = out[0] if isinstance(out, tuple) else out
    loss.backward()
    assert torch.isfinite(loss) and temp.grad is not None and temp.grad.abs().item() > 0


def test_the_matrix_plans_the_domains_recipe_and_marks_supcon_not_applicable():
    from cl_domains.core.matrix import plan

    cells = plan(recipes=["autotcl_ett"], seeds=[0])
    shipped = {c.name for c in plan(domains=["timeseries"], seeds=[0])}  # the recipes with a "matrix" profile
    assert shipped == {"autotcl_ett"}
    assert {(c.loss, c.temperature) for c in cells if c.own} == {("info_nce", 1.0)}
    assert {c.metric for c in cells} == {"mse"} and len(cells) == 5 * 2
    refused = [c for c in cells if c.status == "not applicable"]
    assert {c.loss for c in refused} == {"supcon"} and "needs labels and autotcl has none" in refused[0].note
