"""seqrec on the objective slot: CL4SRec's and MCLRec's contrastive terms (``method.objective``), the renamed keys,
and the fixed user sample of short evaluations."""

import math

import pytest
import torch
import yaml
from test_seqrec import seqrec_recipe, small_file  # noqa: F401  (small_file: a fixture)
from toy_task import CTX

from cl_domains.core.errors import UserError
from cl_domains.core.losses import nt_xent
from cl_domains.core.objectives import Objective
from cl_domains.core.recipe import load_recipe, recipe_from_dict
from cl_domains.core.registry import domain
from cl_domains.seqrec import LeaveOneOut
from cl_domains.seqrec.evaluate import _ranks, eval_users, evaluate_ranking, ranking_metrics
from cl_domains.seqrec.losses import CL4SRecObjective, MCLRecObjective, view_contrast
from cl_domains.seqrec.mclrec import margin_regulariser


def views(n=4, d=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    a, b = torch.randn(n, d, generator=g), torch.randn(n, d, generator=g)
    return a.requires_grad_(), b.requires_grad_()


def naive(a, b, loss, t):
    """Hand-written per-anchor loops over raw dot products (no normalisation), both directions:
    anchor x_i, positive y_i; info_nce: denominator over y; nt_xent: over y and the other x;
    dcl: nt_xent's without the positive; dhel: the other x only."""
    terms = []
    for x, y in ((a, b), (b, a)):
        for i in range(len(x)):
            pos = x[i] @ y[i] / t
            cross = [x[i] @ y[j] / t for j in range(len(y))]
            same = [x[i] @ x[j] / t for j in range(len(x)) if j != i]
            others = [c for j, c in enumerate(cross) if j != i]
            den = {"info_nce": cross, "nt_xent": cross + same, "dcl": others + same, "dhel": same}[loss]
            terms.append(torch.logsumexp(torch.stack(den), 0) - pos)
    return torch.stack(terms).mean()


def test_published_objectives_are_nt_xent_at_t1_and_equal_the_old_formula():
    for schema in (CL4SRecObjective, MCLRecObjective):
        cfg = schema()
        assert (cfg.loss, cfg.temperature, cfg.learnable_temperature) == ("nt_xent", 1.0, False)
        a, b = views()
        got = view_contrast(Objective(cfg), a, b)
        ga = torch.autograd.grad(got, (a, b))
        ref = nt_xent(a, b, 1.0, normalize=False)  # the pre-slot call of both methods
        assert float(got.detach()) == pytest.approx(float(ref.detach()), abs=1e-6)
        for x, y in zip(ga, torch.autograd.grad(ref, (a, b)), strict=False):
            assert torch.allclose(x, y, atol=1e-6)


@pytest.mark.parametrize("loss", ["info_nce", "nt_xent", "dcl", "dhel"])
@pytest.mark.parametrize("t", [1.0, 0.5])
def test_each_loss_matches_a_hand_written_reference(loss, t):
    a, b = views()
    got = view_contrast(Objective(CL4SRecObjective(loss=loss, temperature=t)), a, b)
    ref = naive(a, b, loss, t)
    assert float(got.detach()) == pytest.approx(float(ref.detach()), rel=1e-5)
    for x, y in zip(torch.autograd.grad(got, (a, b)), torch.autograd.grad(ref, (a, b)), strict=False):
        assert torch.allclose(x, y, atol=1e-6)


def test_hand_computed_two_by_one():
    """N = 2, D = 1: a = [1, 0], b = [1, 1], t = 1. Anchor a0: positive a0.b0 = 1, cross {1, 1}, same {0}.
    info_nce: log(2e) - 1 = log 2; nt_xent: log(2e + 1) - 1; dcl: log(e + 1) - 1; dhel: log(1) - 1 = -1."""
    a, b = torch.tensor([[1.0], [0.0]]), torch.tensor([[1.0], [1.0]])
    e = math.e
    # per anchor: a0 (above), a1: pos 0, cross {0, 0}, same {0}; b0: pos 1, cross {1, 0}, same {1};
    # b1: pos 0, cross {1, 0}, same {1}
    expected = {
        "info_nce": [math.log(2 * e) - 1, math.log(2), math.log(e + 1) - 1, math.log(e + 1)],
        "nt_xent": [math.log(2 * e + 1) - 1, math.log(3), math.log(2 * e + 1) - 1, math.log(2 * e + 1)],
        "dcl": [math.log(e + 1) - 1, math.log(2), math.log(e + 1) - 1, math.log(2 * e)],
        "dhel": [-1.0, 0.0, 0.0, 1.0],
    }
    for loss, per_anchor in expected.items():
        got = view_contrast(Objective(CL4SRecObjective(loss=loss)), a, b)
        assert float(got) == pytest.approx(sum(per_anchor) / 4, abs=1e-6), loss


def test_swapped_objective_reaches_cl4srec_and_mclrec_losses(tmp_path, small_file):  # noqa: F811
    """The task's contrastive terms are the chosen loss on its own views (no dropout, so the views re-encode
    identically): CL4SRec's ``cl`` and MCLRec's L_cl2 + gamma R against the reference on the same tensors."""

    def build(method):
        task = domain("seqrec").methods[method["name"]][1](
            seqrec_recipe(tmp_path, small_file, method), None, torch.device("cpu")
        )
        task.model.eval()  # dropout off
        return task

    for loss, t in (("nt_xent", 1.0), ("info_nce", 0.5), ("dcl", 0.7)):
        task = build({"name": "cl4srec", "objective": {"loss": loss, "temperature": t}})
        batch = next(iter(task.batches(0)))
        _, extras = task.loss(batch, CTX)
        _, h1, h2 = task.encode((batch["seqs"], batch["lengths"]), *batch["views"])
        assert extras["cl"] == pytest.approx(float(naive(h1, h2, loss, t).detach()), rel=1e-4)

        mcl = build({"name": "mclrec", "objective": {"loss": loss, "temperature": t}, "regularizer_weight": 0.3})
        batch = next(iter(mcl.batches(0)))
        _, h1, h2 = mcl.encode((batch["seqs"], batch["lengths"]), *batch["views"])
        z1, z2 = mcl.augmenters[0](h1), mcl.augmenters[1](h2)
        pairs = ((z1, z2), (h1, z2), (h2, z1))
        ref = sum(naive(x, y, loss, t) for x, y in pairs) + 0.3 * sum(margin_regulariser(x, y) for x, y in pairs)
        assert float(mcl.l_cl2(h1, h2).detach()) == pytest.approx(float(ref.detach()), rel=1e-4)


def test_learnable_temperature_trains_with_the_encoder_only(tmp_path, small_file):  # noqa: F811
    """CL4SRec and MCLRec hand their temperature to the loop's optimiser; MCLRec's augmenter step leaves no
    gradient on it for the next encoder step."""
    task = domain("seqrec").methods["cl4srec"][1](
        seqrec_recipe(tmp_path, small_file, {"name": "cl4srec", "objective": {"learnable_temperature": True}}),
        None,
        torch.device("cpu"),
    )
    assert any(p is task.objective.temperature.log_scale for p in task.model.parameters())
    mcl = domain("seqrec").methods["mclrec"][1](
        seqrec_recipe(tmp_path, small_file, {"name": "mclrec", "objective": {"learnable_temperature": True}}),
        None,
        torch.device("cpu"),
    )
    scale = mcl.objective.temperature.log_scale
    params = [p for p in mcl.model.parameters() if p.requires_grad]
    assert any(p is scale for p in params)
    opt = torch.optim.SGD(params, lr=0.1)
    seen = []

    def update(loss, extras=None):
        assert scale.grad is None  # nothing left over from the augmenter step
        loss.backward()
        seen.append(float(scale.grad))
        opt.step()
        opt.zero_grad()

    before = float(scale.detach())
    mcl.train_step(next(iter(mcl.batches(0))), CTX, update)
    assert len(seen) == 2 and all(g != 0 for g in seen) and float(scale.detach()) != before


def recipe_dict(name):
    return yaml.safe_load(open(f"recipes/{name}.yaml").read())


@pytest.mark.parametrize(
    "name, old, value, new",
    [
        ("cl4srec_beauty", "cl_weight", 0.1, "contrastive_weight"),
        ("cl4srec_beauty", "temperature", 1.0, "objective.temperature"),
        ("mclrec_beauty", "temperature", 1.0, "objective.temperature"),
    ],
)
def test_old_keys_are_refused_naming_the_new_one(name, old, value, new):
    raw = recipe_dict(name)
    raw["method"][old] = value
    with pytest.raises(UserError) as e:
        recipe_from_dict(raw, "quick", source=f"recipes/{name}.yaml")
    msg = str(e.value)
    assert f"recipes/{name}.yaml" in msg and f"'{old}' was renamed to '{new}'" in msg and "\n" not in msg


@pytest.mark.parametrize("name", ["cl4srec_beauty", "mclrec_beauty", "cl4srec_toys", "mclrec_toys"])
def test_supcon_is_refused_and_shipped_recipes_keep_the_published_objective(name):
    r = load_recipe(f"recipes/{name}.yaml", "quick")
    assert (r.method.objective.loss, r.method.objective.temperature) == ("nt_xent", 1.0)
    if name.startswith("cl4srec"):
        assert r.method.contrastive_weight == 0.1
    with pytest.raises(UserError) as e:
        load_recipe(f"recipes/{name}.yaml", "quick", ["method.objective.loss=supcon"])
    msg = str(e.value)
    assert "'supcon' needs labels" in msg and r.method.name in msg and "nt_xent" in msg


def test_matrix_profiles_and_block():
    r = load_recipe("recipes/cl4srec_beauty.yaml", "matrix")
    assert r.matrix.metric == "NDCG@10" and r.matrix.temperatures == [1.0, 0.5]
    assert r.train.max_steps == 250 and r.eval.users == 5000 and not r.train.eval_before
    tiny = load_recipe("recipes/cl4srec_beauty.yaml", "tiny")
    assert tiny.train.max_steps == 1 and tiny.eval.users == 300


def test_eval_users_is_a_fixed_sorted_sample_and_metrics_are_its_subset(tmp_path, small_file):  # noqa: F811
    from cl_domains.seqrec import read_sequences

    assert torch.equal(eval_users(7), torch.arange(7)) and torch.equal(eval_users(7, 9), torch.arange(7))
    s = eval_users(60, 20)
    assert len(s) == 20 and len(set(s.tolist())) == 20 and torch.equal(s, s.sort().values)
    assert torch.equal(s, eval_users(60, 20)) and int(s.min()) >= 0 and int(s.max()) < 60
    data = LeaveOneOut(read_sequences(small_file), 8)
    counts = torch.arange(data.n_items, dtype=torch.float64)  # a fixed score vector: item id order
    higher, tied = _ranks(counts, data, "test", 7, False, torch.arange(60))
    got = evaluate_ranking(counts, data, "test", batch_size=7, users=20, ks=(5, 10))
    assert got == pytest.approx(ranking_metrics(higher[s], (5, 10), tied[s]), abs=1e-12)
    assert got != pytest.approx(evaluate_ranking(counts, data, "test", batch_size=7, ks=(5, 10)), abs=1e-12)


def test_matrix_plan_of_the_cl4srec_recipe():
    from cl_domains.core.matrix import plan

    cells = plan(recipes=["recipes/cl4srec_beauty.yaml"], profile="tiny", seeds=[0])
    assert {(c.loss, c.temperature) for c in cells} == {
        (x, t) for x in ("info_nce", "nt_xent", "dcl", "dhel", "supcon") for t in (1.0, 0.5)
    }
    assert [(c.loss, c.temperature) for c in cells if c.own] == [("nt_xent", 1.0)]
    assert all(c.metric == "NDCG@10" and c.domain == "seqrec" for c in cells)
    refused = [c for c in cells if c.status == "not applicable"]
    assert {c.loss for c in refused} == {"supcon"} and all("needs labels" in c.note for c in refused)
