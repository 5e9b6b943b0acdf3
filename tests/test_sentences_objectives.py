"""The objective slot in the sentence methods (issue 16): the default objective gives bit for bit the pre-slot loss
and gradients through each task's ``loss(batch, ctx)``; a swapped loss matches a hand-written reference on a tiny
fixed batch with the method's hard negatives, IPW weights and false-negative masks; bad combinations are refused."""

import csv
import math

import pytest
import torch
import torch.nn.functional as F
from conftest import write_recipe

from cl_domains.core.errors import UserError
from cl_domains.core.losses import contrastive_nll, info_nce, similarity
from cl_domains.core.objectives import LOSSES, Objective
from cl_domains.core.recipe import load_recipe
from cl_domains.core.task import StepContext
from cl_domains.sentences.losses import (
    DebCSEObjectiveConfig,
    MultiCSRObjectiveConfig,
    SimCSEObjectiveConfig,
    multicsr_objective,
)

CPU = torch.device("cpu")
CTX = StepContext(step=0, epoch=0, index=0, seed=3, device=CPU)
SLOT_LOSSES = ["info_nce", "nt_xent", "dcl", "dhel"]


# -- the default objective: the pre-slot numbers, through task.loss ------------------------------------------------
def _task(cls, tiny_backbone, tiny_data, tmp_path, method, data=None):
    path = write_recipe(tmp_path / "r.yaml", tiny_backbone, {**tiny_data, **(data or {})}, method, batch_size=8)
    task = cls(load_recipe(path), None, CPU)
    task.model.train()  # dropout on: the two SimCSE views differ; each pass below is seeded the same
    return task


def _loss_and_grads(task, fn):
    task.model.zero_grad()
    torch.manual_seed(0)
    loss = fn()
    loss.backward()
    return loss.detach(), [p.grad.clone() for p in task.encoder.parameters() if p.grad is not None]


def _same(a, b):
    (la, ga), (lb, gb) = a, b
    assert torch.equal(la, lb) and len(ga) == len(gb) > 0
    assert all(torch.equal(x, y) for x, y in zip(ga, gb, strict=False))


def _triplets_csv(data_root, tmp_path):
    from cl_domains.sentences.data import read_triplets

    path = tmp_path / "t.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["sent0", "sent1", "hard_neg"])
        w.writerows(read_triplets(data_root / "sentences/snli_devtest_triplets.csv")[:40])
    return path


@pytest.mark.parametrize("variant", ["unsup", "sup"])
def test_simcse_default_objective_is_the_pre_slot_loss(variant, tiny_backbone, tiny_data, data_root, tmp_path):
    from cl_domains.sentences.simcse import SimCSETask as SimCSE

    data = {"train": str(_triplets_csv(data_root, tmp_path))} if variant == "sup" else {}
    task = _task(SimCSE, tiny_backbone, tiny_data, tmp_path, {"name": "simcse", "variant": variant}, data)
    batch = next(iter(task.batches(0)))
    new = _loss_and_grads(task, lambda: task.loss(batch, CTX))

    def old():  # simcse.py before the slot: core.losses.info_nce at the recipe's float temperature
        z = task.embed_batch(batch, CTX)
        return info_nce(z[0], z[1], 0.05, hard_negatives=z[2] if len(z) > 2 else None)

    _same(new, _loss_and_grads(task, old))
    assert len(task.embed_batch(batch, CTX)) == (3 if variant == "sup" else 2)


def test_debcse_default_objective_is_the_pre_slot_loss(tiny_backbone, tiny_data, tmp_path):
    from cl_domains.sentences.debcse import DebCSETask as DebCSE

    method = {"name": "debcse", "positive_threshold": 0.3, "false_negative_threshold": 0.5}
    task = _task(DebCSE, tiny_backbone, tiny_data, tmp_path, method)
    batch = next(iter(task.batches(0)))
    new = _loss_and_grads(task, lambda: task.loss(batch, CTX)[0])
    positives = task.positives(batch, CTX)  # the same draw: a stream of (seed, epoch, batch)
    w = task.negative_weights(batch, positives)
    assert (w == 0).any() and (w != 1).any()  # false negatives removed, IPW weights otherwise: the test sees them

    def old():  # debcse.py before the slot
        n = len(batch)
        z = task.encoder.embed_with_grad([task.examples[i] for i in batch + positives], task.max_len)
        return info_nce(z[:n], z[n:], 0.05, neg_weights=w)

    _same(new, _loss_and_grads(task, old))


def test_multicsr_default_objective_is_the_pre_slot_loss(tiny_backbone, tiny_data, data_root, tmp_path):
    from cl_domains.sentences.multicsr import MultiCSRTask as MultiCSR

    data = {"train": str(_triplets_csv(data_root, tmp_path))}
    method = {"name": "multicsr", "reference": tiny_backbone, "reference_pooling": "mean", "human_pairs": True}
    task = _task(MultiCSR, tiny_backbone, tiny_data, tmp_path, method, data)
    batch = next(iter(task.batches(0)))
    rows = [task.examples[i] for i in batch]
    n = len(rows)
    ref = task.ref[[task.ref_index[r[c]] for c in range(3) for r in rows]]
    task.cfg.false_negative_threshold = float((ref[:n] @ ref[n:].T).median())  # the random tiny BERT: about half
    keep = task.negatives_mask(rows)
    off = ~torch.eye(n, 2 * n, dtype=torch.bool)
    assert not keep[off].all() and keep[off].any()  # some negatives are masked on this batch, not all
    new = _loss_and_grads(task, lambda: task.loss(batch, CTX)[0])

    def old():  # multicsr.masked_sup_loss before the slot
        n = len(rows)
        z = task.encoder.embed_with_grad([r[c] for c in range(3) for r in rows], task.max_len)
        logits = similarity(z[:n], torch.cat([z[n : 2 * n], z[2 * n :]])) / 0.05
        return contrastive_nll(logits, torch.arange(n), negatives=keep).mean()

    _same(new, _loss_and_grads(task, old))
    # another loss goes through the anchors' mask too, and changes the value
    task.use_objective(Objective(MultiCSRObjectiveConfig(loss="nt_xent")))
    assert not torch.equal(_loss_and_grads(task, lambda: task.loss(batch, CTX)[0])[0], new[0])


# -- a swapped loss against a hand-written reference ---------------------------------------------------------------
T = 0.1


def _reference(q, k, h, loss, w=None, keep=None, keep_anchors=None):
    """Per-anchor loops in float64: the candidates of anchor i are the keys k_j, the hard negatives h_j and the
    other anchors q_j (j != i); its positive is k_i. ``w[i, j]`` weighs k_j and q_j; ``keep`` ``[n, 2n]`` /
    ``keep_anchors`` ``[n, n]`` remove negatives."""
    n = q.shape[0]
    q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
    h = F.normalize(h, dim=-1) if h is not None else q[:0]
    out = []
    for i in range(n):
        terms = []  # (logit, weight) of each negative in the denominator
        for j in range(n):
            wj = 1.0 if w is None else w[i, j]
            if j != i and loss != "dhel" and (keep is None or keep[i, j]):
                terms.append((q[i] @ k[j] / T, wj))
            if j != i and loss != "info_nce" and (keep_anchors is None or keep_anchors[i, j]):
                terms.append((q[i] @ q[j] / T, wj))
        for j in range(h.shape[0]):
            if keep is None or keep[i, n + j]:
                terms.append((q[i] @ h[j] / T, 1.0))
        pos = q[i] @ k[i] / T
        denominator = sum(wt * torch.exp(s) for s, wt in terms)
        if loss in ("info_nce", "nt_xent"):
            denominator = denominator + torch.exp(pos)
        out.append(torch.log(denominator) - pos)
    return torch.stack(out).mean()


def _inputs(n=4, d=5, hard=True):
    g = torch.Generator().manual_seed(7)
    q, k, h = (torch.randn(n, d, generator=g, dtype=torch.float64, requires_grad=True) for _ in range(3))
    return (q, k, h) if hard else (q, k, None)


def _value_and_grads(fn, inputs):
    for x in inputs:
        if x is not None:
            x.grad = None
    value = fn()
    value.backward()
    return value.detach(), [x.grad.clone() for x in inputs if x is not None]


def _close(a, b):
    (va, ga), (vb, gb) = a, b
    assert va.item() == pytest.approx(vb.item(), rel=1e-10)
    assert all(torch.allclose(x, y, rtol=1e-9, atol=1e-12) for x, y in zip(ga, gb, strict=False))


@pytest.mark.parametrize("loss", SLOT_LOSSES)
@pytest.mark.parametrize("hard", [True, False], ids=["sup", "unsup"])
def test_simcse_swapped_loss_matches_the_reference(loss, hard, tiny_backbone):
    from cl_domains.sentences.simcse import SimCSETask as SimCSE

    task = SimCSE.__new__(SimCSE)  # loss_from_embeddings only needs the objective
    task.objective = Objective(SimCSEObjectiveConfig(loss=loss, temperature=T))
    inputs = _inputs(hard=hard)
    z = tuple(x for x in inputs if x is not None)
    got = _value_and_grads(lambda: task.loss_from_embeddings(z, [0, 1, 2, 3], CTX), inputs)
    _close(got, _value_and_grads(lambda: _reference(*inputs, loss), inputs))


def test_simcse_losses_differ_as_the_reference_says():
    inputs = _inputs()
    values = {
        loss: Objective(SimCSEObjectiveConfig(loss=loss, temperature=T))(
            inputs[0], inputs[1], hard_negatives=inputs[2]
        ).item()
        for loss in SLOT_LOSSES
    }
    assert len(set(values.values())) == 4
    assert values["nt_xent"] > values["info_nce"]  # the other anchors are added to the denominator
    assert values["nt_xent"] > values["dcl"]  # the same without the positive in the denominator


@pytest.mark.parametrize("loss", SLOT_LOSSES)
def test_debcse_weights_pass_through_every_loss(loss):
    q, k, _ = _inputs(hard=False)
    w = torch.tensor(
        [[1.0, 0.0, 1.5, 0.5], [2.0, 1.0, 0.0, 1.0], [0.5, 0.5, 1.0, 2.0], [1.0, 3.0, 0.0, 1.0]], dtype=torch.float64
    )  # the diagonal (the positive) is 1 and unused; 0 = a false negative, as DebCSE's negative_weights
    obj = Objective(DebCSEObjectiveConfig(loss=loss, temperature=T))
    got = _value_and_grads(lambda: obj(q, k, neg_weights=w), (q, k))
    _close(got, _value_and_grads(lambda: _reference(q, k, None, loss, w=w), (q, k)))
    unweighted = obj(q, k).item()
    assert not math.isclose(got[0].item(), unweighted)  # the weights matter


@pytest.mark.parametrize("loss", SLOT_LOSSES)
def test_multicsr_masks_pass_through_every_loss(loss):
    q, k, h = _inputs()
    keep = torch.ones(4, 8, dtype=torch.bool)
    keep[0, 1] = keep[2, 5] = keep[3, 0] = False  # a masked key, a masked hard negative, another key
    keep_anchors = torch.ones(4, 4, dtype=torch.bool)
    keep_anchors[1, 2] = keep_anchors[2, 1] = False
    obj = Objective(MultiCSRObjectiveConfig(loss=loss, temperature=T))
    got = _value_and_grads(lambda: multicsr_objective(obj, q, k, h, keep, keep_anchors), (q, k, h))
    ref_anchors = keep_anchors if loss != "info_nce" else None
    _close(got, _value_and_grads(lambda: _reference(q, k, h, loss, keep=keep, keep_anchors=ref_anchors), (q, k, h)))
    # nothing masked: the slot's own Objective on (anchors, positives, hard negatives)
    ones = torch.ones(4, 8, dtype=torch.bool)
    slot = Objective(MultiCSRObjectiveConfig(loss=loss, temperature=T))(q, k, hard_negatives=h)
    assert multicsr_objective(obj, q, k, h, ones).item() == pytest.approx(slot.item(), rel=1e-6)


def test_the_fixed_temperature_is_the_recipes_float():
    obj = Objective(SimCSEObjectiveConfig())
    assert obj.temperature() == 0.05 and not list(obj.parameters())
    learn = Objective(SimCSEObjectiveConfig(learnable_temperature=True))
    assert [p.shape for p in learn.parameters()] == [torch.Size([])]
    assert float(learn.temperature().detach()) == pytest.approx(0.05)


def test_a_learnable_temperature_trains_with_the_encoder(tiny_backbone, tiny_data, tmp_path):
    from cl_domains.core.train import train_recipe

    method = {"name": "simcse", "objective": {"loss": "nt_xent", "learnable_temperature": True}}
    path = write_recipe(
        tmp_path / "r.yaml", tiny_backbone, tiny_data, method, max_steps=2, eval_before=False, lr=0.05, keep_start=False
    )
    run = train_recipe(load_recipe(path), out=tmp_path / "runs")
    assert run.metrics["steps"] == 2 and "stsb_test" in run.metrics["final"]
    from safetensors.torch import load_file

    state = load_file(sorted((run.dir / "checkpoints").glob("step-*"))[-1] / "model.safetensors")
    scale = [v for key, v in state.items() if key.endswith("objective.temperature.log_scale")]
    assert len(scale) == 1 and not math.isclose(float(scale[0]), math.log(1 / 0.05), rel_tol=1e-6)  # it moved


# -- refused combinations ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("recipe", ["simcse_unsup_sts", "simcse_sup_sts", "debcse_sts", "multicsr_sts"])
def test_supcon_and_the_old_temperature_key_are_refused(recipe):
    path = f"recipes/{recipe}.yaml"
    assert load_recipe(path, "quick").method.objective.loss == "info_nce"
    with pytest.raises(UserError) as exc:
        load_recipe(path, "quick", ["method.objective.loss=supcon"])
    text = str(exc.value)
    assert "loss 'supcon' needs labels" in text and "has none" in text and "info_nce, nt_xent, dcl, dhel" in text
    with pytest.raises(UserError, match=r"the key 'temperature' was renamed to 'objective.temperature'"):
        load_recipe(path, "quick", ["method.temperature=0.1"])


def test_the_matrix_plans_simcse_unsup_with_supcon_not_applicable():
    from cl_domains.core.matrix import plan

    cells = plan(seeds=[0], profile="matrix", recipes=["recipes/simcse_unsup_sts.yaml"])
    assert {(c.loss, c.temperature) for c in cells} == {(x, t) for x in LOSSES for t in (0.05, 0.1)}
    assert all(c.metric == "stsb_test" and c.domain == "sentences" for c in cells)
    assert [(c.loss, c.temperature) for c in cells if c.own] == [("info_nce", 0.05)]
    refused = [c for c in cells if c.status == "not applicable"]
    assert {c.loss for c in refused} == {"supcon"} and "needs labels" in refused[0].note
    for profile in ("matrix", "tiny"):  # no dev set: one final evaluation on STS-B test
        r = load_recipe("recipes/simcse_unsup_sts.yaml", profile)
        assert r.data.dev is None and r.data.test == "stsb/test" and r.train.eval_every is None
