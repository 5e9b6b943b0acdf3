"""Class-incremental learning: task splits of class ids, a fixed-size rehearsal memory
(reservoir or herding selection) and the continual-learning metrics."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from ..core.errors import UserError
from ..core.rng import generator

__all__ = ["task_splits", "class_order", "ordered_tasks", "RehearsalMemory", "cl_metrics"]


def task_splits(n_classes: int, n_tasks: int | None = None, sizes: list[int] | None = None) -> list[list[int]]:
    """Class ids ``0..n_classes-1`` in order, cut into tasks: explicit ``sizes``, or ``n_tasks``
    equal tasks with the remainder in the first (FSC 10 tasks: 4 then 3 x 9; FSC-6: 6 then 5 x 5;
    SLURP-3: 6 x 3)."""
    if sizes is None:
        if not n_tasks or not 1 <= n_tasks <= n_classes:
            raise UserError(f"n_tasks must be between 1 and {n_classes}, got {n_tasks}.")
        base = n_classes // n_tasks
        sizes = [base + n_classes % n_tasks] + [base] * (n_tasks - 1)
    if sum(sizes) != n_classes or min(sizes) < 1:
        raise UserError(f"task sizes {sizes} must be positive and add up to the {n_classes} classes.")
    bounds = np.cumsum([0, *sizes])
    return [list(range(a, b)) for a, b in zip(bounds[:-1], bounds[1:], strict=False)]


def class_order(classes: list[str], order: str | list[str] = "seeded", seed: int = 0) -> list[int]:
    """Class ids in the order the classes arrive: ``"dataset"`` (ids ``0..n-1``), ``"seeded"`` (a permutation
    drawn from ``generator(seed, "class_order")``) or an explicit list naming every class exactly once."""
    n = len(classes)
    if order == "dataset":
        return list(range(n))
    if order == "seeded":
        return torch.randperm(n, generator=generator(seed, "class_order")).tolist()
    index = {c: i for i, c in enumerate(classes)}
    unknown = [c for c in order if c not in index]
    missing = [c for c in classes if c not in order]
    repeated = sorted({c for c in order if order.count(c) > 1})
    if unknown or missing or repeated:
        problems = [
            f"unknown {', '.join(map(repr, unknown))}" if unknown else "",
            f"missing {', '.join(map(repr, missing))}" if missing else "",
            f"repeated {', '.join(map(repr, repeated))}" if repeated else "",
        ]
        raise UserError(
            f"method.class_order must list each of the {n} classes exactly once ({'; '.join(p for p in problems if p)}); "
            f"the classes are: {', '.join(classes)}. Or set it to 'seeded' or 'dataset'."
        )
    return [index[c] for c in order]


def ordered_tasks(
    classes: list[str],
    n_tasks: int | None,
    sizes: list[int] | None = None,
    order: str | list[str] = "seeded",
    seed: int = 0,
) -> list[list[int]]:
    """The class ids of each task: :func:`task_splits` applied to :func:`class_order`."""
    ids = class_order(classes, order, seed)
    return [[ids[k] for k in task] for task in task_splits(len(classes), n_tasks, sizes)]


class RehearsalMemory:
    """A fixed budget of ``size`` training examples (indices into the training set).

    ``reservoir``: Vitter's algorithm R over the stream of examples, task after task (each seen
    example is kept with probability size / seen). ``herding``: class-balanced (``size // classes``
    per class, the remainder to the lowest class ids); within a class, examples are picked greedily
    so that the mean of the chosen features stays closest to the class mean (iCaRL, Rebuffi et al.
    2017, Alg. 4); a class's list is truncated when a new task lowers its quota.
    """

    def __init__(self, size: int, selection: str = "reservoir", seed: int = 0):
        if selection not in ("reservoir", "herding"):
            raise UserError(f"memory selection must be 'reservoir' or 'herding', got {selection!r}.")
        self.size, self.selection = size, selection
        self.rng = np.random.default_rng(seed)
        self.slots: list[int] = []  # reservoir
        self.seen = 0
        self.per_class: dict[int, list[int]] = {}  # herding, in herding order

    @property
    def indices(self) -> list[int]:
        if self.selection == "reservoir":
            return list(self.slots)
        return [i for c in sorted(self.per_class) for i in self.per_class[c]]

    def __len__(self) -> int:
        return len(self.indices)

    def add_task(self, indices: list[int], labels: list[int], features: Tensor | None = None) -> None:
        """Update with a finished task's examples (``features`` [N, D] needed by herding)."""
        if self.selection == "reservoir":
            for i in self.rng.permutation(len(indices)):
                self.seen += 1
                if len(self.slots) < self.size:
                    self.slots.append(indices[i])
                else:
                    j = int(self.rng.integers(0, self.seen))
                    if j < self.size:
                        self.slots[j] = indices[i]
            return
        if features is None:
            raise ValueError("herding needs the features of the task's examples")
        labels_t = torch.as_tensor(labels)
        for c in sorted(set(labels)):
            rows = (labels_t == c).nonzero().flatten()
            self.per_class[c] = [indices[int(rows[k])] for k in _herding_order(features[rows])]
        classes = sorted(self.per_class)
        quota = {c: self.size // len(classes) + (k < self.size % len(classes)) for k, c in enumerate(classes)}
        for c in classes:
            self.per_class[c] = self.per_class[c][: quota[c]]


def _herding_order(feats: Tensor) -> list[int]:
    """Greedy order whose running mean tracks the mean of the (L2-normalised) features."""
    x = torch.nn.functional.normalize(feats.float(), dim=-1)
    mu = x.mean(0)
    chosen: list[int] = []
    running = torch.zeros_like(mu)
    available = torch.ones(len(x), dtype=torch.bool)
    for k in range(1, len(x) + 1):
        dist = ((mu - (running + x) / k) ** 2).sum(-1).masked_fill(~available, float("inf"))
        i = int(dist.argmin())
        chosen.append(i)
        available[i] = False
        running += x[i]
    return chosen


def cl_metrics(acc: np.ndarray, test_counts: list[int]) -> dict[str, float]:
    """Continual-learning metrics from ``acc[i, j]`` = accuracy (%) on task ``j``'s test examples
    after training task ``i`` (``j <= i``), with ``test_counts[j]`` examples per task.

    * ``avg_acc`` (average incremental accuracy, Rebuffi et al. 2017): the mean over phases ``i``
      of the accuracy on all test examples of the classes seen so far (tasks ``0..i``, weighted by
      their example counts);
    * ``last_acc``: that accuracy after the last task;
    * ``forgetting`` (Chaudhry et al. 2018): mean over tasks ``j < T`` of
      ``max_{l < T} acc[l, j] - acc[T, j]`` (0 with a single task).
    """
    acc = np.asarray(acc, dtype=np.float64)
    n = np.asarray(test_counts, dtype=np.float64)
    t = acc.shape[0]
    seen = [float((acc[i, : i + 1] * n[: i + 1]).sum() / n[: i + 1].sum()) for i in range(t)]
    forgetting = float(np.mean([acc[j : t - 1, j].max() - acc[t - 1, j] for j in range(t - 1)])) if t > 1 else 0.0
    return {"avg_acc": float(np.mean(seen)), "last_acc": seen[-1], "forgetting": forgetting}
