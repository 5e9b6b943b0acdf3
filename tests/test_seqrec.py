"""Sequential recommendation: split, augmentations, metrics, SASRec, MCLRec's update, recipes."""

import gzip
import json
import math

import pytest
import torch
from conftest import full_and_resumed
from toy_task import CTX

from cl_domains.core.errors import UserError
from cl_domains.seqrec import (
    LeaveOneOut,
    SASRecEncoder,
    crop,
    insert,
    mask,
    ranking_metrics,
    read_sequences,
    reorder,
    similar_items,
    substitute,
    target_ranks,
    two_views,
)
from cl_domains.seqrec.mclrec import margin_regulariser

TINY = "1 1 2 3 4 5\n2 6 7 8\n3 2 9 4 1\n"


@pytest.fixture
def tiny(tmp_path):
    p = tmp_path / "tiny.txt"
    p.write_text(TINY)
    return p


def rows(seqs, lengths):
    return [s[:n].tolist() for s, n in zip(seqs, lengths, strict=False)]


def test_leave_one_out_on_hand_written_file(tiny):
    s = read_sequences(tiny)
    assert (s.n_users, s.n_items, len(s.items)) == (3, 9, 12)
    d = LeaveOneOut(s, max_len=50)
    assert d.n_train == 3  # user 1: [1]->2, [1,2]->3; user 2: none; user 3: [2]->9
    seqs, lengths, targets = d.train_batch(torch.arange(3))
    assert rows(seqs, lengths) == [[1], [1, 2], [2]] and targets.tolist() == [2, 3, 9]
    seqs, lengths, targets = d.eval_batch(torch.arange(3), "valid")
    assert rows(seqs, lengths) == [[1, 2, 3], [6], [2, 9]] and targets.tolist() == [4, 7, 4]
    seqs, lengths, targets = d.eval_batch(torch.arange(3), "test")
    assert rows(seqs, lengths) == [[1, 2, 3, 4], [6, 7], [2, 9, 4]] and targets.tolist() == [5, 8, 1]
    short = LeaveOneOut(s, max_len=2)
    seqs, lengths, _ = short.eval_batch(torch.arange(3), "test")
    assert rows(seqs, lengths) == [[3, 4], [6, 7], [9, 4]]  # the most recent max_len items
    row, item = d.history(torch.tensor([0, 2]), "test")
    assert list(zip(row.tolist(), item.tolist(), strict=False)) == [
        (0, 1),
        (0, 2),
        (0, 3),
        (0, 4),
        (1, 2),
        (1, 9),
        (1, 4),
    ]
    assert [d.train_part().user(u).tolist() for u in range(3)] == [[1, 2, 3], [6], [2, 9]]


def test_gz_and_real_beauty_counts(tmp_path, tiny, data_root):
    gz = tmp_path / "tiny.txt.gz"
    gz.write_bytes(gzip.compress(TINY.encode()))
    assert read_sequences(gz).items.tolist() == read_sequences(tiny).items.tolist()
    s = read_sequences(data_root / "seqrec/Amazon_Beauty.txt.gz", n_items=12101)
    assert (s.n_users, s.n_items, len(s.items)) == (22363, 12101, 198502)
    d = LeaveOneOut(s)
    assert d.n_train == 198502 - 3 * 22363 and math.ceil(d.n_train / 256) == 514


@pytest.mark.parametrize(
    "text, n_items, message",
    [
        ("1 1 2 x\n", None, "line 1: expected integers"),
        ("1 1 2 3\n2 4 5\n", None, "line 2: user 2 has 2 item(s)"),
        ("1 1 0 3\n", None, "item id 0 is out of range"),
        ("1 1 2 3\n2 4 5 12\n", 10, "line 2: item id 12 is out of range"),
        ("1 1 2 3\n1 4 5 6\n", None, "user 1 appears twice"),
        ("\n\n", None, "no user sequences"),
    ],
)
def test_malformed_files_name_the_problem(tmp_path, text, n_items, message):
    p = tmp_path / "bad.txt"
    p.write_text(text)
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")) as e:
        read_sequences(p, n_items)
    assert str(p) in str(e.value)


# ---------------------------------------------------------------- augmentations
@pytest.fixture
def batch():
    seqs = torch.tensor(
        [
            [5, 6, 7, 8, 9, 10, 11, 12, 13, 14],
            [3, 4, 0, 0, 0, 0, 0, 0, 0, 0],
            [9, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            [1, 2, 3, 4, 5, 0, 0, 0, 0, 0],
        ]
    )
    return seqs, torch.tensor([10, 2, 1, 5])


def is_contiguous_sub(sub, full):
    return any(full[i : i + len(sub)] == sub for i in range(len(full) - len(sub) + 1))


@pytest.mark.parametrize("op", ["crop", "mask", "reorder", "insert", "substitute"])
def test_augmentations_leave_input_untouched(batch, op):
    seqs, lengths = batch
    before = (seqs.clone(), lengths.clone())
    fn = {"crop": crop, "mask": mask, "reorder": reorder, "insert": insert, "substitute": substitute}[op]
    similar = torch.arange(20).roll(1)
    out, n = fn(seqs, lengths, 0.5, generator=torch.Generator().manual_seed(0), mask_id=99, similar=similar)
    assert torch.equal(seqs, before[0]) and torch.equal(lengths, before[1])
    assert out.data_ptr() != seqs.data_ptr() and n.data_ptr() != lengths.data_ptr()
    assert rows(out, n)[2] == [9]  # length-1 sequences unchanged
    assert (out[torch.arange(out.shape[1]) >= n[:, None]] == 0).all()  # padding stays zero


def test_augmentation_semantics(batch):
    seqs, lengths = batch
    full = rows(seqs, lengths)
    for seed in range(20):
        g = torch.Generator().manual_seed(seed)
        c, cn = crop(seqs, lengths, 0.5, generator=g)
        assert cn.tolist() == [5, 1, 1, 2]
        assert all(is_contiguous_sub(s, f) for s, f in zip(rows(c, cn), full, strict=False))
        m, mn = mask(seqs, lengths, 0.5, mask_id=99, generator=g)
        assert mn.tolist() == lengths.tolist() and ((m == 99).sum(1)).tolist() == [5, 1, 0, 2]
        assert all(a in (b, 99) for r, f in zip(rows(m, mn), full, strict=False) for a, b in zip(r, f, strict=False))
        r, rn = reorder(seqs, lengths, 0.8, generator=g)
        for got, f in zip(rows(r, rn), full, strict=False):
            assert sorted(got) == sorted(f)
            moved = [i for i, (a, b) in enumerate(zip(got, f, strict=False)) if a != b]
            assert not moved or moved[-1] - moved[0] < int(0.8 * len(f))  # only inside one block of floor(0.8 n)
        similar = torch.arange(20) + 100
        s_, sn = substitute(seqs, lengths, 0.5, similar=similar, generator=g)
        assert ((s_ >= 100).sum(1)).tolist() == [5, 1, 0, 2]
        i_, in_ = insert(seqs, lengths, 0.5, similar=similar, generator=g)
        assert in_.tolist() == [10, 3, 1, 7]  # row 0 grew to 15 and keeps its most recent 10
        for got, f in zip(rows(i_, in_), full, strict=False):
            originals = [x for x in got if x < 100]
            assert originals == f[len(f) - len(originals) :]
            assert all(x - 100 == got[i + 1] for i, x in enumerate(got) if x >= 100)  # inserted before its own item


def test_two_views_use_different_operations(batch):
    seqs, lengths = batch
    (a, an), (b, bn) = two_views(
        seqs,
        lengths,
        ["crop", "mask"],
        {"crop": 0.5, "mask": 0.5},
        generator=torch.Generator().manual_seed(1),
        mask_id=99,
    )
    for _r1, n1, _r2, n2, n in zip(a, an, b, bn, lengths, strict=False):
        if n > 1:  # exactly one view is a crop (shorter), the other a mask (same length)
            assert sorted([int(n1), int(n2)]) == [int(0.5 * n), int(n)]


def test_similar_items_from_co_occurrence(tiny):
    sim = similar_items(LeaveOneOut(read_sequences(tiny)).train_part())
    # training parts: [1,2,3], [6], [2,9]: item 9 only co-occurs with 2; item 6 with nothing
    assert sim[9] == 2 and sim[6] == 6 and sim[0] == 0 and sim[1] in (2, 3)


# ---------------------------------------------------------------- metrics
def test_metrics_on_hand_computed_ranking():
    scores = torch.tensor([[0.1, 0.5, 0.3, 0.9], [0.8, 0.2, 0.1, 0.0]])
    higher, tied = target_ranks(scores.clone(), torch.tensor([2, 0]))
    assert higher.tolist() == [2, 0] and tied.tolist() == [0, 0]
    m = ranking_metrics(higher, (1, 3), tied)
    assert m["HR@1"] == 0.5 and m["HR@3"] == 1.0
    assert m["NDCG@3"] == pytest.approx((1 / math.log2(4) + 1) / 2)
    assert m["MRR@3"] == pytest.approx((1 / 3 + 1) / 2) and m["MRR@1"] == 0.5
    masked, _ = target_ranks(scores.clone(), torch.tensor([2, 0]), (torch.tensor([0, 0]), torch.tensor([3, 2])))
    assert masked.tolist() == [1, 0]  # item 3 (score .9) was already seen; the target itself never is dropped


def test_ties_are_ranked_in_expectation():
    # target 1 ties with items 2 and 3 below one higher item: places 1, 2, 3 (0-based) equally likely
    higher, tied = target_ranks(torch.tensor([[0.9, 0.5, 0.5, 0.5, 0.1]]), torch.tensor([1]))
    assert higher.tolist() == [1] and tied.tolist() == [2]
    m = ranking_metrics(higher, (1, 2, 5), tied)
    assert m["HR@1"] == 0 and m["HR@2"] == pytest.approx(1 / 3) and m["HR@5"] == 1
    assert m["NDCG@5"] == pytest.approx(sum(1 / math.log2(r + 2) for r in (1, 2, 3)) / 3)
    assert m["MRR@2"] == pytest.approx((1 / 2) / 3)


def test_a_constant_score_model_gets_chance_level_metrics(tiny):
    """A collapsed model (one score for every item) must not look perfect: HR@k = k / n_items exactly."""
    from cl_domains.seqrec import evaluate_ranking

    data = LeaveOneOut(read_sequences(tiny, n_items=40))
    m = evaluate_ranking(torch.zeros(40), data, "test", ks=(5, 10))
    assert m["HR@5"] == pytest.approx(5 / 40) and m["HR@10"] == pytest.approx(10 / 40)
    assert m["MRR@10"] == pytest.approx(sum(1 / (r + 1) for r in range(10)) / 40)
    model = SASRecEncoder(40, 8, 8, 1, 1, 8, 0.0, 0.0)
    with torch.no_grad():
        model.item_emb.weight.zero_()  # every item embedding equal: every score ties
    assert evaluate_ranking(model, data, "test", ks=(10,))["HR@10"] == pytest.approx(10 / 40)


# ---------------------------------------------------------------- model
def test_sasrec_packed_last_position_forward_matches_full_grid():
    torch.manual_seed(0)
    model = SASRecEncoder(30, max_len=6, hidden=16, heads=2, inner=32).eval()
    seqs = torch.tensor([[1, 2, 3, 4, 5, 6], [7, 8, 0, 0, 0, 0], [9, 0, 0, 0, 0, 0]])
    lengths = torch.tensor([6, 2, 1])
    fast = model(seqs, lengths)
    # reference: every block on the full padded grid, then read the last real position
    b, length = seqs.shape
    pos = torch.arange(length)
    valid = pos < lengths[:, None]
    slots = torch.arange(b * length)
    x = model.norm(model.item_emb(seqs.flatten()) + model.pos_emb(slots % length))
    allowed = ((pos[:, None] >= pos) & valid[:, None, :]).unsqueeze(1)
    for block in model.blocks:
        x = block(x, slots, (b, length), allowed, None)
    ref = x.view(b, length, -1)[torch.arange(b), lengths - 1]
    torch.testing.assert_close(fast, ref)
    alone = torch.cat([model(seqs[i : i + 1, :n], lengths[i : i + 1]) for i, n in enumerate(lengths.tolist())])
    torch.testing.assert_close(fast, alone, rtol=1e-5, atol=1e-5)  # padding changes nothing


def test_length_groups_give_the_same_vectors():
    torch.manual_seed(0)
    model = SASRecEncoder(50, max_len=12, hidden=16, heads=2, inner=32).eval()
    lengths = torch.randint(1, 13, (300,))
    seqs = torch.randint(1, 51, (300, 12)) * (torch.arange(12) < lengths[:, None])
    torch.testing.assert_close(model(seqs, lengths, groups=4), model(seqs, lengths, groups=1), rtol=1e-5, atol=1e-5)


def test_recommend_and_reload(tmp_path):
    torch.manual_seed(0)
    model = SASRecEncoder(12, max_len=5, hidden=8, heads=2, inner=16)
    top = model.recommend([1, 2, 3], k=4)
    assert top.shape == (4,) and not set(top.tolist()) & {1, 2, 3} and all(1 <= i <= 12 for i in top.tolist())
    assert model.recommend([[1], [4, 5, 6, 7, 8, 9, 10]], k=3).shape == (2, 3)
    model.save(tmp_path / "m")
    again = SASRecEncoder.load(tmp_path / "m")
    torch.testing.assert_close(again.embed([[3, 1]]), model.embed([[3, 1]]))
    with pytest.raises(ValueError, match="out of range"):
        model.recommend([13], k=2)


# ---------------------------------------------------------------- MCLRec
def naive_margin_regulariser(a, b):
    rows_ = torch.cat([a, b])
    n2, n = rows_.shape[0], a.shape[0]
    pos_terms, neg_terms = [], []
    for i in range(n2):
        j = (i + n) % n2
        p = rows_[i] @ rows_[j]
        negs = [rows_[i] @ rows_[k] for k in range(n2) if k not in (i, j)]
        hardest = max(negs)
        o_min, o_max = min(p, hardest), max(p, hardest)
        pos_terms.append(torch.clamp(p - o_min, min=0))
        neg_terms += [torch.clamp(o_max - s, min=0) for s in negs]
    return torch.stack(pos_terms).mean() + torch.stack(neg_terms).mean()


def test_margin_regulariser_matches_naive_value_and_gradient():
    torch.manual_seed(0)
    a = torch.randn(5, 4, dtype=torch.float64, requires_grad=True)
    b = torch.randn(5, 4, dtype=torch.float64, requires_grad=True)
    got, ref = margin_regulariser(a, b), naive_margin_regulariser(a, b)
    torch.testing.assert_close(got, ref)
    ga = torch.autograd.grad(got, (a, b))
    gr = torch.autograd.grad(ref, (a, b))
    for x, y in zip(ga, gr, strict=False):
        torch.testing.assert_close(x, y)


def seqrec_recipe(tmp_path, data, method, **train):
    import yaml

    from cl_domains.core.recipe import load_recipe

    r = {
        "name": "tiny_seqrec",
        "domain": "seqrec",
        "model": {"max_len": 8, "hidden": 16, "layers": 1, "heads": 2, "inner": 32},
        "data": {"sequences": str(data)},
        "method": method,
        "train": {
            "batch_size": 16,
            "lr": 1e-2,
            "max_steps": 6,
            "eval_every": 3,
            "checkpoint_every": 3,
            "seed": 1,
            "schedule": "constant",
            "log_every": 3,
            **train,
        },
        "eval": {"batch_size": 32},
        "paper": {"metrics": {"HR@10": 0.05}},
    }
    p = tmp_path / "r.yaml"
    p.write_text(yaml.safe_dump(r))
    return load_recipe(p)


@pytest.fixture
def small_file(tmp_path):
    g = torch.Generator().manual_seed(0)
    lines = [
        " ".join([str(u)] + [str(int(i)) for i in torch.randperm(40, generator=g)[: int(n)] + 1])
        for u, n in enumerate(torch.randint(3, 12, (60,), generator=g).tolist(), 1)
    ]
    p = tmp_path / "small.txt"
    p.write_text("\n".join(lines) + "\n")
    return p


def test_mclrec_three_steps_touch_only_their_parameters(tmp_path, small_file):
    from cl_domains.core.registry import domain

    recipe = seqrec_recipe(tmp_path, small_file, {"name": "mclrec", "cl2_weight": 0.5, "cl1_weight": 0.1})
    task = domain("seqrec").methods["mclrec"][1](recipe, None, torch.device("cpu"))
    encoder_params = [p for p in task.model.parameters() if p.requires_grad]
    assert {id(p) for p in encoder_params} == {id(p) for p in task.encoder.parameters()}  # loop sees the encoder only
    opt = torch.optim.Adam(encoder_params, lr=1e-2)
    snaps = []

    def snapshot():
        return (
            [p.detach().clone() for p in task.encoder.parameters()],
            [p.detach().clone() for p in task.augmenters.parameters()],
        )

    def update(loss, extras=None):
        loss.backward()
        assert all(p.grad is None for p in task.augmenters.parameters())  # frozen during encoder steps
        before = snapshot()
        opt.step()
        opt.zero_grad()
        snaps.append((before, snapshot()))

    def changed(a, b):
        return any(not torch.equal(x, y) for x, y in zip(a, b, strict=False))

    start = snapshot()
    task.train_step(next(iter(task.batches(0))), CTX, update)
    (before1, after1), (before3, after3) = snaps
    assert not changed(start[0], before1[0]) and not changed(start[1], before1[1])
    assert changed(before1[0], after1[0]) and not changed(before1[1], after1[1])  # step 1: encoder only
    assert not changed(after1[0], before3[0]) and changed(after1[1], before3[1])  # step 2: augmenters only
    assert changed(before3[0], after3[0]) and not changed(before3[1], after3[1])  # step 3: encoder only
    assert all(not p.requires_grad for p in task.augmenters.parameters())


def test_views_come_from_the_augmentation_hook_and_batches_from_hashed_streams(tmp_path, small_file):
    from cl_domains.core.registry import domain
    from cl_domains.core.rng import generator

    def build(method):
        return domain("seqrec").methods[method["name"]][1](
            seqrec_recipe(tmp_path, small_file, method), None, torch.device("cpu")
        )

    plain, cl = build({"name": "sasrec"}), build({"name": "cl4srec", "augment": {"ops": ["crop", "mask"]}})
    assert plain.augmentation() is None and cl.augmentation().ops == ["crop", "mask"]
    assert "views" not in next(iter(plain.batches(0))) and "views" in next(iter(cl.batches(0)))
    first = [b["targets"].tolist() for b in plain.batches(0)]
    assert first == [b["targets"].tolist() for b in plain.batches(0)]  # a function of (seed, epoch)
    assert first != [b["targets"].tolist() for b in plain.batches(1)]
    order = torch.randperm(plain.data.n_train, generator=generator(1, "shuffle", 0))
    assert (
        first[0] == plain.data.train_batch(order[:16])[2].tolist()
    )  # the stream is rng.generator(seed, "shuffle", epoch)


def test_evaluation_restores_every_modules_mode(tiny):
    from cl_domains.seqrec import evaluate_ranking

    model = SASRecEncoder(9, 8, 8, 1, 1, 8).train()
    model.blocks[0].eval()  # a submodule deliberately frozen in eval mode
    evaluate_ranking(model, LeaveOneOut(read_sequences(tiny)), "test", ks=(5,))
    assert model.training and model.norm.training and not model.blocks[0].training


@pytest.mark.parametrize(
    "method",
    [
        {"name": "sasrec"},
        {"name": "sasrec", "loss": "bpr"},
        {"name": "cl4srec"},
        {"name": "mclrec", "augment": {"ops": ["insert", "substitute", "crop"]}},
    ],
)
def test_each_method_trains_exports_and_resumes(tmp_path, small_file, method):
    """Interrupted at step 4 and resumed == uninterrupted (final metrics and loss curve), with the most-popular
    baseline computed once, on the same test split."""

    recipe = seqrec_recipe(tmp_path, small_file, method)
    full_run, resumed = full_and_resumed(recipe, tmp_path, 4)
    full, run_dir = full_run.metrics, resumed.dir
    m = json.loads((run_dir / "metrics.json").read_text())
    assert m["steps"] == 6 and set(m["final"]) >= {"HR@10", "NDCG@10", "MRR@10"}
    assert m["final"] == pytest.approx(full["final"], abs=1e-9)
    assert [v for _, v in m["history"]["loss"]] == pytest.approx([v for _, v in full["history"]["loss"]], abs=1e-6)
    pop = m["baselines"]["most popular"]
    assert (
        set(pop) == set(m["final"])
        and all(math.isfinite(v) for v in pop.values())
        and pop == full["baselines"]["most popular"]
    )
    assert "| before training | most popular | item-kNN | ours |" in (run_dir / "report.md").read_text()
    model = SASRecEncoder.load(run_dir / "model")
    assert model.recommend([1, 2, 3], k=5).shape == (5,)


# ---------------------------------------------------------------- recipes (benchmark regression)
# Quick profiles on Beauty, seed 2020 (benchmarks/results/quick/<recipe>.json; ties ranked in expectation): test
# HR@10 / NDCG@10 of ours; the most-popular ranking on the same split scores .01131 / .00531 (random: .0008).
# SASRec beats most-popular 2.1x / 2.3x and CL4SRec by 22% / 23%; MCLRec's 150 steps LOSE to it (.00966 / .00472),
# while still 13x above its untrained encoder (.00076). Seed spread, measured for SASRec only (seeds 2020 / 1: HR@10
# .0236 / .0221, NDCG@10 .0124 / .0114, about 6%): the SASRec margin (1.5x most popular) sits > 5 such spreads below
# ours. CL4SRec (seeds 2020 / 1: HR@10 .0138 / .0130, NDCG@10 .0065 / .0065) beats it by 15-23%: its margin, 1.05x,
# is about 2.5 spreads below the mean. The band around the stored value is 20% (> 3 spreads).
# Re-measured after the shuffle/views/negatives streams became core.rng.generator (issue 19; before: SASRec
# .02357 / .01238, CL4SRec .01382 / .00654, MCLRec .009659 / .004718 -- all inside the 20% band).
QUICK = {
    "sasrec_beauty": {"HR@10": 0.02303, "NDCG@10": 0.01163},
    "cl4srec_beauty": {"HR@10": 0.01382, "NDCG@10": 0.007006},
    "mclrec_beauty": {"HR@10": 0.01064, "NDCG@10": 0.004872},
}
MARGIN = {"sasrec_beauty": 1.5, "cl4srec_beauty": 1.05}  # ours >= MARGIN x most popular; MCLRec: no claim
MOST_POPULAR = {"HR@10": 0.01131, "NDCG@10": 0.005309}
UNTRAINED_HR10 = 0.0007602


@pytest.mark.integration
@pytest.mark.benchmark
@pytest.mark.parametrize(
    "recipe",
    [
        "sasrec_beauty",
        pytest.param("cl4srec_beauty", marks=pytest.mark.slow),
        pytest.param("mclrec_beauty", marks=pytest.mark.slow),
    ],
)
def test_quick_profile_against_most_popular(recipe, tmp_path, data_root):
    from cl_domains.core.recipe import load_recipe
    from cl_domains.core.train import train_recipe

    # the stored numbers' budget: SASRec's quick profile now trains up to 3 epochs (patience 1); CI keeps 500 steps
    budget = ["train.max_steps=500", "train.eval_every=250", "train.patience=null"] if recipe == "sasrec_beauty" else []
    run = train_recipe(
        load_recipe(f"recipes/{recipe}.yaml", "quick", ["train.eval_before=false", *budget]),
        out=tmp_path,
        data_root=data_root,
    )
    final, pop = run.metrics["final"], run.metrics["baselines"]["most popular"]
    for metric, value in MOST_POPULAR.items():
        assert pop[metric] == pytest.approx(value, rel=1e-3)  # the same split and protocol as the stored numbers
    for metric, value in QUICK[recipe].items():
        assert final[metric] == pytest.approx(value, rel=0.2), (
            f"{recipe}: {metric} {final[metric]:.4f} vs stored {value}"
        )
        if recipe in MARGIN:
            assert final[metric] >= MARGIN[recipe] * pop[metric], (
                f"{recipe}: {metric} {final[metric]:.4f} vs most popular {pop[metric]:.4f}"
            )
    assert final["HR@10"] > 5 * UNTRAINED_HR10
    assert "| most popular | item-kNN | ours |" in (run.dir / "report.md").read_text()
