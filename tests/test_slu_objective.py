"""The objective slot in the slu domain (issue 16): COCONUT's NSPT and MM terms under each loss of
``method.objective`` / ``method.mm_objective``, against term-by-term references written by hand (values and
gradients), the chunked path, and the recipe keys."""

import pytest
import torch
import torch.nn.functional as F

from cl_domains.core import chunked
from cl_domains.core.errors import UserError
from cl_domains.core.objectives import LOSSES, Objective
from cl_domains.core.recipe import load_recipe
from cl_domains.slu.config import MMObjectiveConfig, NSPTObjectiveConfig
from cl_domains.slu.losses import mm_loss, nspt_loss

LABELS = torch.tensor([5, 6, 5, 7, 6, 0, 1, 0, 2, 1])  # 5 new-task examples (classes 5-7), then 5 rehearsal ones
M = 5


def batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    student = torch.randn(len(LABELS), 6, generator=g, dtype=torch.float64, requires_grad=True)
    teacher = torch.randn(M, 6, generator=g, dtype=torch.float64, requires_grad=True)
    return student, teacher


def term(sims: dict, pos: list, negs: list, decoupled: bool) -> torch.Tensor:
    """Mean over the positives of -log(e^pos / denominator); the denominator is the negatives, plus every positive
    unless decoupled."""
    denom = sum(torch.exp(sims[j]) for j in negs)
    if not decoupled:
        denom = denom + sum(torch.exp(sims[p]) for p in pos)
    return sum(-(sims[p] - torch.log(denom)) for p in pos) / len(pos)


def naive_nspt(student, teacher, loss: str, t: float) -> torch.Tensor:
    """Per rehearsal anchor i (student row B - M + i), candidates named ("t", j) teacher row j, ("s", j) student row j:
    info_nce (published): positives = same-class teacher rows, negatives = other-class student rows (all of them);
    nt_xent/dcl: the same positives; negatives = other-class new-task rows + every other rehearsal anchor;
    dhel: only the other rehearsal anchors are negatives; supcon: positives = same-class teacher rows and same-class
    other anchors, negatives = other-class new-task rows and other-class anchors."""
    s, te = F.normalize(student, dim=-1), F.normalize(teacher, dim=-1)
    b = len(student)
    terms = []
    for i in range(M):
        row, y = b - M + i, LABELS[b - M + i]
        sims = {("t", j): s[row] @ te[j] / t for j in range(M)}
        sims.update({("s", j): s[row] @ s[j] / t for j in range(b)})
        same_t = [("t", j) for j in range(M) if LABELS[b - M + j] == y]
        new_other = [("s", j) for j in range(b - M) if LABELS[j] != y]
        anchors = [("s", j) for j in range(b - M, b) if j != row]
        if loss == "info_nce":
            pos, negs = same_t, [("s", j) for j in range(b) if LABELS[j] != y]
        elif loss in ("nt_xent", "dcl"):
            pos, negs = same_t, new_other + anchors
        elif loss == "dhel":
            pos, negs = same_t, anchors
        else:  # supcon
            pos = same_t + [a for a in anchors if LABELS[a[1]] == y]
            negs = new_other + [a for a in anchors if LABELS[a[1]] != y]
        terms.append(term(sims, pos, negs, decoupled=loss in ("dcl", "dhel")))
    return sum(terms) / len(terms)


def naive_mm(audio, text, phrase, loss: str, t: float) -> torch.Tensor:
    """Both directions; candidates of anchor i: ("k", j) the other modality's row j, ("q", j) its own modality's row j.
    info_nce: positives = same-phrase other-modality rows, negatives = the rest of them; nt_xent/dcl add the own
    modality's other rows (same phrase: positives); dhel: negatives = own modality's other-phrase rows only;
    supcon: nt_xent's (the phrase ids are the labels)."""
    n = len(audio)
    a, x = F.normalize(audio, dim=-1), F.normalize(text, dim=-1)
    terms = []
    for q, k in ((a, x), (x, a)):
        for i in range(n):
            sims = {("k", j): q[i] @ k[j] / t for j in range(n)}
            sims.update({("q", j): q[i] @ q[j] / t for j in range(n)})
            same_k = [("k", j) for j in range(n) if phrase[j] == phrase[i]]
            other_k = [("k", j) for j in range(n) if phrase[j] != phrase[i]]
            same_q = [("q", j) for j in range(n) if j != i and phrase[j] == phrase[i]]
            other_q = [("q", j) for j in range(n) if phrase[j] != phrase[i]]
            if loss == "info_nce":
                pos, negs = same_k, other_k
            elif loss == "dhel":
                pos, negs = same_k + same_q, other_q
            else:
                pos, negs = same_k + same_q, other_k + other_q
            terms.append(term(sims, pos, negs, decoupled=loss in ("dcl", "dhel")))
    return sum(terms) / len(terms)


def grads(value, inputs):
    return torch.autograd.grad(value, inputs, retain_graph=True)


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("t", [0.1, 0.5])
def test_nspt_under_each_loss_follows_the_reference(loss, t):
    student, teacher = batch()
    ours = nspt_loss(Objective(NSPTObjectiveConfig(loss=loss, temperature=t)), student, LABELS, teacher)
    ref = naive_nspt(student, teacher, loss, t)
    assert float(ours) == pytest.approx(float(ref), rel=1e-10)
    for g, r in zip(grads(ours, [student, teacher]), grads(ref, [student, teacher]), strict=False):
        torch.testing.assert_close(g, r)


def test_the_published_nspt_objective_and_swapping_it_changes_the_value():
    student, teacher = batch(1)
    values = {
        loss: float(nspt_loss(Objective(NSPTObjectiveConfig(loss=loss)), student, LABELS, teacher)) for loss in LOSSES
    }
    assert NSPTObjectiveConfig().loss == "info_nce" and NSPTObjectiveConfig().temperature == 0.1
    assert len({round(v, 8) for v in values.values()}) == len(LOSSES)  # every loss gives its own value


@pytest.mark.parametrize("loss", LOSSES)
def test_mm_under_each_loss_follows_the_reference(loss):
    g = torch.Generator().manual_seed(2)
    audio = torch.randn(6, 4, generator=g, dtype=torch.float64, requires_grad=True)
    text = torch.randn(6, 4, generator=g, dtype=torch.float64, requires_grad=True)
    phrase = torch.tensor([0, 1, 0, 2, 3, 1])
    ours = mm_loss(Objective(MMObjectiveConfig(loss=loss, temperature=0.2)), audio, text, phrase)
    ref = naive_mm(audio, text, phrase, loss, 0.2)
    assert float(ours) == pytest.approx(float(ref), rel=1e-10)
    for g1, g2 in zip(grads(ours, [audio, text]), grads(ref, [audio, text]), strict=False):
        torch.testing.assert_close(g1, g2)


@pytest.mark.parametrize("loss", LOSSES)
def test_the_chunked_path_gives_the_same_nspt(loss, monkeypatch):
    student, teacher = batch(3)
    obj = Objective(NSPTObjectiveConfig(loss=loss))
    whole = nspt_loss(obj, student, LABELS, teacher)
    monkeypatch.setattr(chunked, "AUTO_CHUNK_ENTRIES", 4)  # forces the chunked kernel at this size
    assert chunked.use_chunks(None, M, len(LABELS) + M)
    parts = nspt_loss(obj, student, LABELS, teacher)
    assert float(parts) == pytest.approx(float(whole), rel=1e-10)
    torch.testing.assert_close(grads(parts, [student])[0], grads(whole, [student])[0])


def test_learnable_temperatures_train_with_the_model():
    from cl_domains.slu.config import CoconutConfig
    from cl_domains.slu.strategies import make_strategy

    cfg = CoconutConfig(objective={"loss": "dcl", "learnable_temperature": True})
    strategy = make_strategy("coconut", cfg)
    assert [n for n, _ in strategy.objectives.named_parameters()] == ["nspt.temperature.log_scale"]
    assert not list(make_strategy("coconut", CoconutConfig()).objectives.parameters())  # fixed: no state


def test_recipe_keys_old_names_and_unknown_losses():
    recipe = load_recipe("recipes/coconut_fsc.yaml", "quick")
    assert (recipe.method.objective.loss, recipe.method.objective.temperature) == ("info_nce", 0.1)
    assert recipe.method.mm_objective.loss == "info_nce"
    swapped = load_recipe("recipes/coconut_fsc.yaml", "quick", ["method.objective.loss=supcon"])
    assert swapped.method.objective.loss == "supcon"  # NSPT has class labels
    with pytest.raises(UserError, match="objective.temperature"):
        load_recipe("recipes/coconut_fsc.yaml", "quick", ["method.temperature=0.2"])
    with pytest.raises(UserError, match="triplet"):
        load_recipe("recipes/coconut_fsc.yaml", "quick", ["method.objective.loss=triplet"])
