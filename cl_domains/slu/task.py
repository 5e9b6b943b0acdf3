"""One strategy x seed of a class-incremental study as a core :class:`~cl_domains.core.task.Task`.

Its epochs run task after task (``train.epochs`` per task); at each task boundary it records a row of
the accuracy matrix, updates the rehearsal memory and lets the strategy start the next phase (COCONUT
snapshots its teacher there).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..core.errors import UserError
from ..core.modes import eval_mode
from ..core.rng import generator
from ..core.task import StepContext, Task
from .config import CoconutConfig, SLUModelConfig
from .continual import RehearsalMemory, cl_metrics, ordered_tasks
from .model import SLUModel, pad_features
from .prepare import PreparedSpeech
from .strategies import Strategy, make_strategy

__all__ = ["CILTask", "examples_by_task"]


def examples_by_task(labels: list[int], tasks: list[list[int]]) -> list[list[int]]:
    """Example indices of each task (by the task of their class)."""
    task_of = {c: t for t, cs in enumerate(tasks) for c in cs}
    out: list[list[int]] = [[] for _ in tasks]
    for i, y in enumerate(labels):
        out[task_of[y]].append(i)
    return out


class CILTask(Task):
    """One strategy x seed: the core Task protocol over ``n_tasks x epochs`` epochs.

    Every strategy trains with cross-entropy over the classes seen so far (class-incremental: logits
    of future classes are masked); the :class:`~cl_domains.slu.strategies.Strategy` decides the data of
    each phase, the rehearsal memory and the added terms.
    """

    dev_metric = "acc_seen"
    model: SLUModel
    recipe = None  # the training's recipe, when a study runs it (export then writes a model directory)

    def __init__(
        self,
        data: PreparedSpeech,
        strategy: str | Strategy,
        seed: int,
        method: CoconutConfig,
        model_cfg: SLUModelConfig,
        batch_size: int,
        epochs: int,
        eval_batch: int,
        device,
    ):
        self.data, self.seed, self.cfg = data, seed, method
        self.strategy = make_strategy(strategy, method) if isinstance(strategy, str) else strategy
        self.batch_size, self.epochs, self.eval_batch = batch_size, epochs, eval_batch
        self.device = torch.device(device)
        torch.manual_seed(seed)
        self.model = SLUModel(data.train.classes, data.vocab, **model_cfg.model_dump()).to(self.device)
        if any(p.requires_grad for p in self.strategy.objectives.parameters()):  # a learnable temperature trains
            self.model.add_module("objectives", self.strategy.objectives.to(self.device))
        n_classes = len(data.train.classes)
        self.tasks = ordered_tasks(
            data.train.classes, method.n_tasks, method.task_sizes, method.class_order, method.class_order_seed
        )
        self.train_labels = torch.tensor(data.train.labels)
        self.train_lengths = torch.tensor([f.shape[0] for f in data.train_feats])
        self.test_labels = torch.tensor(data.test.labels)
        self.train_by_task = examples_by_task(data.train.labels, self.tasks)
        self.test_by_task = examples_by_task(data.test.labels, self.tasks)
        empty = [t for t in range(len(self.tasks)) if not self.train_by_task[t] or not self.test_by_task[t]]
        if empty:
            raise UserError(
                f"task(s) {empty} (classes {[[data.train.classes[c] for c in self.tasks[t]] for t in empty]}) have no "
                "training or test examples: use more data, fewer tasks (method.n_tasks) or another method.class_order."
            )
        size = method.memory_size or max(1, round(method.memory_fraction * len(data.train)))
        self.memory = RehearsalMemory(size, method.memory_selection, seed)
        self.phase = -1
        self.acc = np.full((len(self.tasks), len(self.tasks)), np.nan)
        self.phase_weights: list[dict[str, Tensor]] = []  # the model after each phase (CPU copies)
        self.seen = torch.zeros(n_classes, dtype=torch.bool, device=self.device)
        self.text_ids = {t: i for i, t in enumerate(sorted(set(data.train.texts)))}
        self.train_text = torch.tensor([self.text_ids[t] for t in data.train.texts])

    # ---------------------------------------------------------------- phases
    def classes_before(self, phase: int) -> Tensor:
        """Class ids of the tasks before ``phase``."""
        return torch.tensor([c for t in range(phase) for c in self.tasks[t]], device=self.device)

    def on_epoch_start(self, epoch: int) -> None:
        phase = epoch // self.epochs
        if phase == self.phase:
            return
        if self.phase >= 0:
            self._end_phase()
        self.phase = phase
        self.seen[[c for t in range(phase + 1) for c in self.tasks[t]]] = True
        self.strategy.start_phase(self, phase)

    def _end_phase(self) -> None:
        """Accuracy row of the finished phase, then the memory update with its examples."""
        p = self.phase
        for j in range(p + 1):
            self.acc[p, j] = self._accuracy(self.test_by_task[j])
        self.phase_weights.append({k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()})
        if self.strategy.rehearsal and p < len(self.tasks) - 1:  # no task follows the last
            idx = self.train_by_task[p]
            feats = self._embed(idx) if self.memory.selection == "herding" else None
            self.memory.add_task(idx, [int(self.train_labels[i]) for i in idx], feats)

    # ---------------------------------------------------------------- Task protocol
    def num_batches(self, epoch: int) -> int:
        return math.ceil(len(self.strategy.pool(self.train_by_task, epoch // self.epochs)) / self.batch_size)

    def batches(self, epoch: int):
        g = generator(self.seed, "batches", epoch)
        pool = torch.tensor(self.strategy.pool(self.train_by_task, epoch // self.epochs))
        pool = pool[torch.randperm(len(pool), generator=g)]
        # length buckets: sort each run of 8 batches by length, cut, then shuffle the batches (less padding)
        b, chunks = self.batch_size, []
        for s in range(0, len(pool), 8 * b):
            group = pool[s : s + 8 * b]
            group = group[torch.argsort(self.train_lengths[group], stable=True)]
            chunks += [group[k : k + b] for k in range(0, len(group), b)]
        memory = torch.tensor(self.memory.indices, dtype=torch.long)
        m = self.cfg.memory_batch or self.batch_size
        for k in torch.randperm(len(chunks), generator=g).tolist():
            mem = torch.zeros(0, dtype=torch.long)
            if self.strategy.rehearsal and len(memory):
                mem = memory[torch.randperm(len(memory), generator=g)[:m]]
            yield {"new": chunks[k], "mem": mem}

    def inputs(self, idx: Tensor, feats: list[Tensor]) -> tuple[Tensor, Tensor]:
        """Padded features and lengths of examples ``idx`` of ``feats``, on the device."""
        x, lengths = pad_features([feats[int(i)] for i in idx])
        return x.to(self.device), lengths.to(self.device)

    def _logits(self, logits: Tensor) -> Tensor:
        return logits.masked_fill(~self.seen, float("-inf"))  # class-incremental: only classes seen so far

    def loss(self, batch: dict, ctx: StepContext):
        idx = torch.cat([batch["new"], batch["mem"]])
        y = self.train_labels[idx].to(self.device)
        h, logits = self.model(*self.inputs(idx, self.data.train_feats))
        ce = F.cross_entropy(self._logits(logits), y)
        return self.strategy.loss(self, batch, h, logits, y, ce)

    def _predict(self, idx: list[int]) -> Tensor:
        out = []
        with eval_mode(self.model):
            for s in range(0, len(idx), self.eval_batch):
                _, logits = self.model(*self.inputs(torch.tensor(idx[s : s + self.eval_batch]), self.data.test_feats))
                out.append(self._logits(logits).argmax(-1).cpu())
        return torch.cat(out)

    def _accuracy(self, idx: list[int]) -> float:
        return float((self._predict(idx) == self.test_labels[idx]).float().mean() * 100)

    def _embed(self, idx: list[int]) -> Tensor:
        with eval_mode(self.model):
            return torch.cat(
                [
                    self.model(*self.inputs(torch.tensor(idx[s : s + self.eval_batch]), self.data.train_feats))[0].cpu()
                    for s in range(0, len(idx), self.eval_batch)
                ]
            )

    def evaluate(self, split: str) -> dict[str, float]:
        if split == "dev":  # accuracy on the test examples of the classes seen so far
            return {"acc_seen": self._accuracy([i for t in range(self.phase + 1) for i in self.test_by_task[t]])}
        if np.isnan(self.acc[-1, -1]):
            self._end_phase()
        return cl_metrics(self.acc, [len(x) for x in self.test_by_task])

    def export(self, directory: Path) -> None:
        """``SLUModel.save`` files, and with ``recipe`` set (the study sets it) the model directory that
        ``cl_domains.load`` reads (see :mod:`cl_domains.slu.estimator`)."""
        self.model.save(directory)
        if self.recipe is not None:
            write_task_model(directory, self.recipe, self)


def write_task_model(directory: Path, recipe: Any, task: CILTask) -> None:
    """The model directory of one trained strategy (a study's ``strategies/<strategy>-seed<k>/model``), loadable
    with ``cl_domains.load``: the manifest's domain fields and ``phases.safetensors`` beside ``SLUModel.save``'s
    files (the run then adds its metrics)."""
    from ..core.estimator import estimators
    from ..core.modeldir import make_manifest, write_model_dir

    cls = next(c for c in estimators("slu").values() if c.strategy == task.strategy.name)
    phases = {
        f"{p}.{k}": v.detach().cpu().clone()
        for p, w in enumerate(task.phase_weights)
        for k, v in w.items()
        if not k.startswith("objectives.")  # training-only modules (a learnable temperature)
    }
    manifest = make_manifest(
        recipe,
        estimator=cls.estimator_name,
        embedding_dim=int(task.model.config["dim"]),
        slu_model=dict(task.model.config),
        tasks=[list(t) for t in task.tasks],
        strategy=task.strategy.name,
    )
    manifest["files"] = {"model.safetensors": "tensors", "config.json": "json"}
    write_model_dir(directory, manifest, {"phases.safetensors": phases})
