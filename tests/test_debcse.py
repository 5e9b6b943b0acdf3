"""DebCSE's pair construction against hand-computed cases: neighbour positives, their
inverse-propensity sampling probabilities, the seeded draw, and the weights of the negatives."""

import pytest
import torch

from cl_domains.sentences.debcse import (
    _words,
    negative_weights,
    neighbour_positives,
    positive_probabilities,
    sample_positives,
    surface_similarity,
)


def _ref():
    """Four unit vectors with cosines 0-1 .8, 2-3 .8, 1-3 .36, every other pair 0."""
    return torch.tensor([[1.0, 0.0, 0.0], [0.8, 0.6, 0.0], [0.0, 0.0, 1.0], [0.0, 0.6, 0.8]])


SENTS = ["a b c d e", "a b c", "x y", "Y x"]  # 3 has 2's words (case and order differ): a duplicate


def test_surface_similarity_by_hand():
    w = [_words(s) for s in SENTS]
    assert surface_similarity(w[0], w[1], 5, 3) == pytest.approx((3 / 5 + 3 / 5) / 2)  # jaccard .6, length .6
    assert surface_similarity(w[0], w[0], 5, 5) == 1.0
    assert surface_similarity(w[0], w[2], 5, 2) == pytest.approx((0 + 2 / 5) / 2)


def test_neighbour_positives_threshold_top_k_and_duplicates():
    ref, words = _ref(), [_words(s) for s in SENTS]
    # k=2: 0 -> 1 (.8); its second neighbour (cos 0) is below .6. 1 -> 0 (.8); 3 (.36) is below.
    # 2 and 3 are each other's nearest (.8) but have the same words: a dropout view, not a new positive.
    assert neighbour_positives(ref, words, k=2, threshold=0.6) == [[1], [0], [], []]
    assert neighbour_positives(ref, words, k=2, threshold=0.3) == [[1], [0, 3], [], [1]]
    assert neighbour_positives(ref, words, k=2, threshold=0.9) == [[], [], [], []]
    assert neighbour_positives(ref, words, k=0, threshold=0.0) == [[], [], [], []]
    # blocks of 1 row give the same answer as one block
    assert neighbour_positives(ref, words, k=2, threshold=0.3, block=1) == [[1], [0, 3], [], [1]]


def test_positive_probabilities_are_inverse_propensity():
    # candidates [[0, 1], [1, 0], [2], [3]]: surface 1 (itself) and .6 (0-1).
    surf = [torch.tensor([1.0, 0.6]), torch.tensor([1.0, 0.6]), torch.tensor([1.0]), torch.tensor([1.0])]
    # bins of width .25: the population holds 4 pairs in (.75, 1] and 2 in (.5, .75]: densities 4/6 and 2/6;
    # 1/density = 1.5 and 3, rescaled to population mean 1 (sum of density * inv = 2): .75 and 1.5.
    probs = positive_probabilities(surf, bins=4, clip=(0.2, 5.0))
    assert torch.allclose(probs[0], torch.tensor([0.75, 1.5]) / 2.25)  # 1/3 itself, 2/3 the neighbour
    assert torch.allclose(probs[1], torch.tensor([1 / 3, 2 / 3]))
    assert probs[2].tolist() == [1.0] and probs[3].tolist() == [1.0]
    # clipping at 1 caps the neighbour's weight: .75 and 1 -> 3/7, 4/7
    clipped = positive_probabilities(surf, bins=4, clip=(0.2, 1.0))
    assert torch.allclose(clipped[0], torch.tensor([3 / 7, 4 / 7]))


def test_positives_are_sampled_with_those_probabilities_and_seeded():
    cands = [[0, 1], [1, 0], [2]]
    probs = [torch.tensor([1 / 3, 2 / 3]), torch.tensor([0.9, 0.1]), torch.tensor([1.0])]
    anchors = [0, 1, 2] * 10000
    draw = sample_positives(cands, probs, anchors, torch.Generator().manual_seed(0))
    assert set(draw[2::3]) == {2}
    # 10,000 draws: the binomial standard deviation is < .005, so .015 is three of them
    assert sum(d == 1 for d in draw[0::3]) / 10000 == pytest.approx(2 / 3, abs=0.015)
    assert sum(d == 1 for d in draw[1::3]) / 10000 == pytest.approx(0.9, abs=0.01)
    assert sample_positives(cands, probs, anchors, torch.Generator().manual_seed(0)) == draw


def test_negative_weights_by_hand():
    # 3 anchors x 3 keys; key 0 is a false negative of anchor 1 (reference cosine .9 >= .8)
    sem = torch.tensor([[1.0, 0.1, 0.2], [0.9, 1.0, 0.3], [0.2, 0.3, 1.0]])
    surf = torch.tensor([[1.0, 0.2, 0.8], [0.7, 1.0, 0.2], [0.8, 0.8, 1.0]])
    # random pairs: 3 of 4 below .5 -> densities .75 / .25, 1/density 4/3 and 4, rescaled (sum 2): 2/3 and 2
    neg_reference = torch.tensor([0.1, 0.1, 0.1, 0.9])
    w = negative_weights(sem, surf, neg_reference, 0.8, bins=2, clip=(0.2, 5.0))
    expected = torch.tensor(
        [
            [1.0, 0.5, 1.5],  # 2/3 and 2, row mean 4/3 -> .5, 1.5
            [0.0, 1.0, 1.0],  # false negative 0; the one kept key (2/3) rescaled to 1
            [1.0, 1.0, 1.0],
        ]
    )  # 2 and 2 -> 1, 1
    assert torch.allclose(w, expected)
    # uniform weights keep only the false-negative rule
    assert torch.allclose(
        negative_weights(sem, None, neg_reference, 0.8, bins=2, clip=(0.2, 5.0)),
        torch.tensor([[1.0, 1.0, 1.0], [0.0, 1.0, 1.0], [1.0, 1.0, 1.0]]),
    )
    # clip at 1: row 0 is 2/3 and 1, mean 5/6 -> .8 and 1.2
    assert torch.allclose(
        negative_weights(sem, surf, neg_reference, 0.8, bins=2, clip=(0.2, 1.0))[0], torch.tensor([1.0, 0.8, 1.2])
    )
    # a threshold above every cosine masks nothing
    assert negative_weights(sem, surf, neg_reference, 0.95, bins=2, clip=(0.2, 5.0))[1, 0] > 0


def _stub(seed: int, n: int = 200):
    """What DebCSE.positives and SentenceTask.epoch_order read: every anchor has n uniform candidates."""
    from types import SimpleNamespace

    return SimpleNamespace(
        seed=seed, examples=list(range(n)), cands=[list(range(n))] * n, cand_probs=[torch.full((n,), 1 / n)] * n
    )


def test_positive_draws_and_the_next_epochs_shuffle_are_different_streams():
    """Issue 19: the positives of epoch e were drawn with seed * 1000 + e + 1, the seed of epoch e + 1's shuffle,
    so both were the same random numbers. Now each has its own hashed (seed, purpose, epoch, batch) stream."""
    from cl_domains.core.rng import generator
    from cl_domains.core.task import StepContext
    from cl_domains.sentences.debcse import DebCSETask as DebCSE
    from cl_domains.sentences.task import SentenceTask

    stub, anchors = _stub(42), list(range(64))
    cpu = torch.device("cpu")
    for epoch in range(3):
        shuffle_next = generator(42, "shuffle", epoch + 1)
        # the shuffle of epoch e + 1 is that stream
        assert torch.equal(SentenceTask.epoch_order(stub, epoch + 1), torch.randperm(200, generator=shuffle_next))
        ctx = StepContext(step=0, epoch=epoch, index=0, seed=42, device=cpu)
        positives = DebCSE.positives(stub, anchors, ctx)
        assert positives == DebCSE.positives(stub, anchors, ctx)  # seeded: a resumed batch draws the same
        replay = sample_positives(stub.cands, stub.cand_probs, anchors, generator(42, "shuffle", epoch + 1))
        assert positives != replay  # what the old code drew: the shuffle's numbers
        assert ctx.generator("debcse_positives").initial_seed() != generator(42, "shuffle", epoch + 1).initial_seed()
    # two batches of one epoch draw differently
    c0, c1 = (StepContext(step=i, epoch=0, index=i, seed=42, device=cpu) for i in (0, 1))
    assert DebCSE.positives(stub, anchors, c0) != DebCSE.positives(stub, anchors, c1)
