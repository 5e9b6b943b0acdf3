"""The continual strategies' interface and the CILTask phases on tiny synthetic features (no audio)."""

import numpy as np
import pytest
import torch

from cl_domains.slu import STRATEGY_CLASSES, CILTask, CoconutConfig, PreparedSpeech, SLUModelConfig, Utterances


def tiny_data(per_class=3, classes=("a", "b", "c", "d")) -> PreparedSpeech:
    g = torch.Generator().manual_seed(0)
    labels = [c for c in range(len(classes)) for _ in range(per_class)]
    texts = [f"say {classes[y]}" for y in labels]
    u = Utterances(texts, labels, ["s"] * len(labels), list(classes))
    feats = [torch.randn(12 + i % 3, 40, generator=g) for i in range(len(labels))]
    return PreparedSpeech(u, u, feats, [f.clone() for f in feats], ["<pad>", "<unk>", "say", *classes], {})


def make(strategy, order="dataset", **kw):
    cfg = CoconutConfig(n_tasks=2, class_order=order, memory_size=4, memory_batch=2, **kw)
    model = SLUModelConfig(dim=16, layers=1, heads=2, ff=32, proj_dim=8)
    return CILTask(tiny_data(), strategy, 0, cfg, model, batch_size=4, epochs=2, eval_batch=8, device="cpu")


def test_strategy_flags_and_pools():
    assert {n: (c.rehearsal, c.cumulative) for n, c in STRATEGY_CLASSES.items()} == {
        "joint": (False, True),
        "coconut": (True, False),
        "replay": (True, False),
        "finetune": (False, False),
    }
    by_task = [[0, 1], [2, 3, 4]]
    cfg = CoconutConfig()
    assert STRATEGY_CLASSES["joint"](cfg).pool(by_task, 1) == [0, 1, 2, 3, 4]
    assert STRATEGY_CLASSES["finetune"](cfg).pool(by_task, 1) == [2, 3, 4]
    assert STRATEGY_CLASSES["replay"](cfg).pool(by_task, 0) == [0, 1]


def test_class_order_sets_the_tasks():
    assert make("finetune").tasks == [[0, 1], [2, 3]]
    assert make("finetune", ["d", "a", "c", "b"]).tasks == [[3, 0], [2, 1]]
    task = make("finetune", ["d", "a", "c", "b"])
    assert task.train_by_task == [[0, 1, 2, 9, 10, 11], [3, 4, 5, 6, 7, 8]]  # examples of a and d, then b and c


@pytest.mark.parametrize("strategy", ["finetune", "replay", "coconut", "joint"])
def test_phases_batches_and_memory(strategy):
    task = make(strategy)
    assert task.num_batches(0) == 2 and task.num_batches(2) == (3 if strategy == "joint" else 2)
    task.on_epoch_start(0)
    assert task.phase == 0 and task.seen.tolist() == [True, True, False, False]
    b0 = list(task.batches(0))
    assert [x["new"].tolist() for x in b0] == [x["new"].tolist() for x in task.batches(0)]  # same seed, same stream
    assert [x["new"].tolist() for x in b0] != [x["new"].tolist() for x in task.batches(1)]
    assert sorted(i for x in b0 for i in x["new"].tolist()) == list(range(6)) and all(len(x["mem"]) == 0 for x in b0)
    loss, extras = task.loss(b0[0], None)
    assert torch.isfinite(loss) and "ce" in extras
    task.on_epoch_start(1)  # same phase: nothing happens
    assert np.isnan(task.acc).all()
    task.on_epoch_start(2)  # phase 1: accuracy row 0, memory, teacher
    assert task.phase == 1 and task.seen.all() and not np.isnan(task.acc[0, 0]) and np.isnan(task.acc[1]).all()
    rehearsal = strategy in ("replay", "coconut")
    assert len(task.memory) == (4 if rehearsal else 0) and set(task.memory.indices) <= set(range(6))
    assert (getattr(task.strategy, "teacher", None) is not None) == (strategy == "coconut")
    b1 = list(task.batches(2))
    assert all(len(x["mem"]) == (2 if rehearsal else 0) for x in b1)
    loss, extras = task.loss(b1[0], None)
    assert set(extras) == ({"ce", "mm", "nspt"} if strategy == "coconut" else {"ce"}) and torch.isfinite(loss)
    m = task.evaluate("test")
    assert not np.isnan(task.acc[np.tril_indices(2)]).any() and set(m) == {"avg_acc", "last_acc", "forgetting"}
