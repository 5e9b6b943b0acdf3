"""The extension surface of the training loop: :class:`Task` (one training), :class:`Study` (several
trainings in one run) and the :class:`StepContext` the loop hands to every step.

A method subclasses a domain's task (or :class:`Task` itself), sets ``config`` to the pydantic schema of
its recipe ``method`` section and registers with :func:`cl_domains.core.registry.method`. Every optional
hook below has a working no-op default, so a task overrides only what it needs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import Tensor, nn

from .errors import UserError
from .rng import generator

if TYPE_CHECKING:  # pragma: no cover
    from .runs import Run

__all__ = ["StepContext", "Task", "Study", "slice_examples"]


@dataclass(frozen=True)
class StepContext:
    """What the loop knows about the step being taken.

    Attributes:
        step: optimiser steps completed before this batch (0 for the first).
        epoch: the epoch of the batch (0-based).
        index: the batch's position within its epoch.
        seed: the recipe's ``train.seed``.
        device: where the model lives.
    """

    step: int
    epoch: int
    index: int
    seed: int
    device: torch.device

    def generator(self, tag: str) -> torch.Generator:
        """A CPU generator for this batch's random draws, independent of every other (tag, epoch, batch);
        see :func:`cl_domains.core.rng.generator`."""
        return generator(self.seed, tag, self.epoch, self.index)


def slice_examples(batch: Any, start: int, stop: int) -> Any:
    """Examples ``start:stop`` of a batch: a list or tensor along its first dimension, a tuple or dict
    column by column."""
    if isinstance(batch, (list, Tensor)):
        return batch[start:stop]
    if isinstance(batch, tuple):
        return tuple(x[start:stop] for x in batch)
    if isinstance(batch, dict):
        return {k: v[start:stop] for k, v in batch.items()}
    raise UserError(
        f"cannot split a batch of type {type(batch).__name__} into sub-batches (train.grad_cache_chunk or "
        "several processes): override Task.slice_batch(batch, start, stop)."
    )


class Task:
    """One training of one method on one dataset: the task owns its data and model, the loop
    (:class:`cl_domains.core.train.Trainer`) owns the optimiser, schedule, progress, evaluation schedule,
    best checkpoint, atomic checkpoints and resume, the NaN guard and the run's outputs.

    Required: ``model``, ``dev_metric``, :meth:`num_batches`, :meth:`batches`, :meth:`evaluate` and either
    :meth:`loss` or the pair :meth:`embed_batch` + :meth:`loss_from_embeddings`. Registered tasks are built
    with ``cls(recipe, data_root, device)``.
    """

    config: ClassVar[type | None] = None  # the pydantic schema of the recipe's ``method`` section
    model: nn.Module  # every trained parameter (encoder and heads), saved as safetensors
    dev_metric: str  # default dev metric for best-checkpoint selection (train.select_metric overrides)

    # ------------------------------------------------------------------ required
    def num_batches(self, epoch: int) -> int:
        """Number of batches :meth:`batches` yields for ``epoch``."""
        raise NotImplementedError(f"{type(self).__name__}.num_batches")

    def batches(self, epoch: int) -> Iterable[Any]:
        """The epoch's batches, a deterministic function of (seed, epoch): resume skips the batches already
        consumed and must see the same stream. Draw from :func:`cl_domains.core.rng.generator`."""
        raise NotImplementedError(f"{type(self).__name__}.batches")

    def loss(self, batch: Any, ctx: StepContext) -> Tensor | tuple[Tensor, dict[str, float]]:
        """The training loss of ``batch`` (and optionally named floats to log). Random draws come from
        ``ctx.generator(tag)``. The default is ``loss_from_embeddings(embed_batch(batch, ctx), batch, ctx)``."""
        if not self.has_embedding_split():
            raise NotImplementedError(f"{type(self).__name__} implements neither loss() nor embed_batch()")
        return self.loss_from_embeddings(self.embed_batch(batch, ctx), batch, ctx)

    def evaluate(self, split: str) -> dict[str, float]:
        """Metrics on ``"dev"`` (model selection; ``{}`` when there is no dev set: the last step is kept) or
        ``"test"`` (reported; keys match ``paper.metrics``). Called with the model in eval mode."""
        raise NotImplementedError(f"{type(self).__name__}.evaluate")

    # ------------------------------------------------------------------ optional
    def export(self, directory: Path) -> None:
        """Save the trained model in its domain's reusable format (default: ``model.safetensors``)."""
        from safetensors.torch import save_model

        directory.mkdir(parents=True, exist_ok=True)
        save_model(self.model, str(directory / "model.safetensors"))

    def embed_batch(self, batch: Any, ctx: StepContext) -> Tensor | tuple[Tensor, ...]:
        """Embeddings with one row per example of ``batch``, in batch order. With
        :meth:`loss_from_embeddings` it enables GradCache and global-batch negatives across processes;
        ``loss`` must then equal ``loss_from_embeddings(embed_batch(batch))``."""
        raise NotImplementedError(f"{type(self).__name__}.embed_batch")

    def loss_from_embeddings(
        self, embeddings: Tensor | tuple[Tensor, ...], batch: Any, ctx: StepContext
    ) -> Tensor | tuple[Tensor, dict[str, float]]:
        """The loss over the whole (possibly global, gathered) batch from its embeddings."""
        raise NotImplementedError(f"{type(self).__name__}.loss_from_embeddings")

    @classmethod
    def has_embedding_split(cls) -> bool:
        """True when the class overrides :meth:`embed_batch` and :meth:`loss_from_embeddings` and no subclass
        redefines :meth:`loss` below them (that subclass has a different objective)."""
        mro = [c for c in cls.__mro__ if c is not Task]

        def where(name: str) -> int | None:
            return next((i for i, c in enumerate(mro) if name in vars(c)), None)

        embed, split, loss = where("embed_batch"), where("loss_from_embeddings"), where("loss")
        if embed is None or split is None:
            return False
        return loss is None or loss >= min(embed, split)

    def slice_batch(self, batch: Any, start: int, stop: int) -> Any:
        """Examples ``start:stop`` of a batch (sub-batches of GradCache, shards of several processes)."""
        return slice_examples(batch, start, stop)

    def train_step(
        self, batch: Any, ctx: StepContext, update: Callable[[Tensor, dict[str, float]], None]
    ) -> tuple[Tensor, dict[str, float]] | None:
        """Several optimiser steps on one batch (e.g. MCLRec): call ``update(loss, extras)`` for each (the
        loop's guarded backward, clip and step) and return the loss to log. ``None`` (the default): the loop
        takes one step on :meth:`loss`."""
        return None

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """Optimisers the task keeps for parameters outside the loop's, saved in every checkpoint."""
        return {}

    def baselines(self) -> dict[str, dict[str, float]]:
        """Simple baselines' TEST metrics on the run's own data and split (see
        :mod:`cl_domains.core.baselines`), computed once before training and reported beside ours."""
        return {}

    def train_stats(self) -> dict[str, float]:
        """Counters kept while training, written to ``metrics.json["train_stats"]``."""
        return {}

    def on_fit_start(self) -> None:
        """Before the first step (also when resuming)."""

    def on_epoch_start(self, epoch: int) -> None:
        """Before the first batch of ``epoch`` (also for a resumed, partly consumed epoch)."""

    def on_step_end(self, ctx: StepContext) -> None:
        """After the optimiser step of ``ctx`` (e.g. updating a weight average)."""

    def on_evaluate(self) -> None:
        """Before every :meth:`evaluate` call (e.g. bringing a weight average up to date)."""


class Study:
    """A run made of several trainings (e.g. the strategies x seeds of a continual-learning benchmark).
    Registered like a task and built with ``cls(recipe, data_root, device)``; :meth:`run` creates the run
    directory under ``out`` with :meth:`cl_domains.core.runs.Run.create` (or continues ``run`` on resume),
    drives a :class:`~cl_domains.core.train.Trainer` for each training and writes the run's outputs."""

    config: ClassVar[type | None] = None

    def run(self, *, out: str | Path, device: torch.device, run: Run | None = None) -> Run:
        raise NotImplementedError(f"{type(self).__name__}.run")
