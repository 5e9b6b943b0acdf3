"""One training loop for every domain.

A domain supplies a :class:`~cl_domains.core.task.Task` (model, deterministic batches, loss, evaluation); the loop
owns the optimiser and schedule, progress, periodic dev evaluation with best-checkpoint
selection, atomic checkpoints (weights as safetensors) and ``resume``, the NaN/inf guard, and
the run's ``metrics.json`` / plot / "ours vs paper" table.

Scale (for tasks that implement ``embed_batch`` and ``loss_from_embeddings``):

* ``train.grad_cache_chunk`` (GradCache, Gao et al. 2021): the batch is embedded in sub-batches
  without a graph, the loss is taken on the whole batch of embeddings, and each sub-batch is
  embedded again with a graph and backpropagated with its cached embedding gradient. The RNG
  state of each sub-batch is replayed, so dropout masks match (SimCSE's positives).
* Several processes (``torchrun --nproc_per_node=N``): every process draws the same global
  batch and embeds its contiguous shard; embeddings are gathered with gradient
  (:func:`~cl_domains.core.distributed.gather_with_grad`), so every process computes the loss
  over the whole global batch, and parameter gradients are averaged over processes: the
  gradient equals the single-process one. Only rank 0 evaluates, logs and checkpoints.
  A task without ``embed_batch`` trains on its shard with in-shard negatives (logged once).
"""

from __future__ import annotations

import functools
import json
import math
import os
import pickle
import random
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from safetensors import SafetensorError
from safetensors.torch import load_model, save_model
from torch import Tensor

from . import distributed as D
from .errors import TrainingDiverged, UserError
from .modeldir import write_run_model
from .modes import eval_mode
from .precision import autocast, grad_scaler, to_float32
from .progress import evaluating
from .recipe import Recipe, TrainConfig, paper_applies
from .rng import derive_seed
from .runs import (
    SMALL_MAX_BYTES,
    STATE_MAX_BYTES,
    Run,
    atomic_write_text,
    comparison_table,
    console,
    fmt_metric,
    shown_paper,
)
from .safefs import UnsafeFile, check_regular, is_inside, read_json, read_text, safe_rmtree
from .task import StepContext, Study, Task
from .validate import check_metrics

__all__ = [
    "Trainer",
    "TrainState",
    "Callback",
    "train_recipe",
    "train_task",
    "seed_everything",
    "pick_device",
    "rank_seed",
    "KEPT_START",
]


KEPT_START = "training did not improve dev; the starting model was kept"


@dataclass
class TrainState:
    """Where the loop is; saved with every checkpoint (``trainer.json``)."""

    step: int = 0  # optimiser steps taken
    epoch: int = 0
    batch: int = 0  # batches of ``epoch`` consumed
    best: float | None = None  # best dev value of the selection metric
    best_step: int | None = None
    stale: int = 0  # dev evaluations since the best (for train.patience)

    @classmethod
    def from_json(cls, data: Any, *, max_steps: int | None = None, max_epochs: int | None = None) -> TrainState:
        """The state saved in ``trainer.json``, validated: integers where integers belong (no strings, floats or
        booleans), nothing negative, ``step`` at most ``max_steps``, ``epoch`` at most ``max_epochs``, the best
        step not after the current one, a finite best value.

        Raises:
            InvalidState: (a ``TypeError`` and a ``UserError``) naming the first bad field and its value.
        """
        if not isinstance(data, dict) or set(data) - {f.name for f in fields(cls)}:
            raise InvalidState(f"not a training state: {str(data)[:200]}")
        try:
            state = cls(**_StateSchema.model_validate(data).model_dump())
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(map(str, first["loc"]))
            raise InvalidState(
                f"not a training state: {field} = {str(first.get('input'))[:60]!s} ({first['msg']})"
            ) from None
        for name, value, limit in (("step", state.step, max_steps), ("epoch", state.epoch, max_epochs)):
            if limit is not None and value > limit:
                raise InvalidState(f"not a training state: {name} = {value} is beyond this run's {limit}")
        if state.best_step is not None and state.best_step > state.step:
            raise InvalidState(f"not a training state: best_step = {state.best_step} is after step = {state.step}")
        return state


class InvalidState(UserError, TypeError):
    """A ``trainer.json`` whose loop state fails validation (a checkpoint holding it is skipped)."""


class _StateSchema(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)
    step: int = Field(0, ge=0)
    epoch: int = Field(0, ge=0)
    batch: int = Field(0, ge=0)
    best: float | None = None
    best_step: int | None = Field(None, ge=0)
    stale: int = Field(0, ge=0)


class Callback:
    """Observes the loop; every hook is a no-op by default. Raising from a hook stops training (the last
    checkpoint is kept, so the run can be resumed)."""

    def on_step_end(self, trainer: Trainer, ctx: StepContext, loss: float) -> None:
        """After each optimiser step (and its dev evaluation and checkpoint, when due)."""

    def on_evaluate(self, trainer: Trainer, split: str, metrics: dict[str, float]) -> None:
        """After each evaluation: ``split`` is ``"dev"`` or ``"test"``."""

    def on_fit_end(self, trainer: Trainer, metrics: dict[str, Any]) -> None:
        """After the run's outputs are written."""


def _batch_len(batch: Any) -> int:
    if isinstance(batch, (tuple, dict)):
        first = next(iter(batch.values())) if isinstance(batch, dict) else batch[0]
        return len(first)
    return len(batch)


def _rng_state() -> tuple:
    return torch.get_rng_state(), (torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [])


def _set_rng_state(state: tuple) -> None:
    torch.set_rng_state(state[0])
    if state[1]:
        torch.cuda.set_rng_state_all(state[1])


def seed_everything(seed: int) -> None:
    """Seed Python's, torch's and numpy's global generators.

    Args:
        seed: the recipe's ``train.seed`` (or a process's :func:`rank_seed`).
    """
    random.seed(seed)
    torch.manual_seed(seed)
    try:
        import numpy as np

        np.random.seed(seed)
    except ImportError:  # pragma: no cover
        pass


def rank_seed(seed: int, rank: int, step: int = 0) -> int:
    """The torch seed of process ``rank`` > 0 (rank 0 uses ``seed`` itself), resumed at ``step``: derived with
    :func:`cl_domains.core.rng.derive_seed`, so no (seed, rank) pair shares the stream of another seed (a formula
    such as ``seed + 1000 * rank`` gives seed 0 on rank 1 the stream of seed 1000 on rank 0).

    Args:
        seed: the recipe's ``train.seed``.
        rank: the process rank under torchrun.
        step: the step the process resumes at.

    Returns:
        The torch seed of that process.
    """
    return derive_seed(seed, "process", rank, step)


def pick_device(name: str) -> torch.device:
    """The device named by ``train.device``.

    Args:
        name: ``"auto"`` (CUDA when available, else CPU) or a torch device name (``"cpu"``, ``"cuda:1"``).

    Returns:
        The torch device.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _schedule(cfg: TrainConfig, total: int):
    warm = int(cfg.warmup_ratio * total)

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / max(warm, 1)
        if cfg.schedule == "constant":
            return 1.0
        progress = (step - warm) / max(total - warm, 1)
        if cfg.schedule == "cosine":
            return 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
        return max(0.0, 1.0 - progress)

    return factor


class Trainer:
    """The training loop of every domain: optimiser and schedule, progress, dev evaluation and the best checkpoint,
    atomic checkpoints and resume, the non-finite guard, and the run's metrics, plots and report.

    Args:
        recipe: the resolved recipe (its ``train`` section drives the loop).
        task: the built task (data, model, loss, evaluation).
        run: the run directory to write.
        device: the device (default: ``train.device``).
        callbacks: observers of steps, evaluations and the end.
    """

    def __init__(
        self,
        recipe: Recipe,
        task: Task,
        run: Run,
        *,
        device: torch.device | None = None,
        callbacks: Sequence[Callback] = (),
    ):
        self.recipe, self.task, self.run = recipe, task, run
        self.callbacks = list(callbacks)
        self.cfg = recipe.train
        self.device = device or pick_device(self.cfg.device)
        self.select = self.cfg.select_metric or task.dev_metric
        named = [(n, p) for n, p in task.model.named_parameters() if p.requires_grad]
        groups = [  # a learnable temperature (core.losses.Temperature) is not pulled towards 1 by weight decay
            {"params": [p for n, p in named if not n.endswith("log_scale")]},
            {"params": [p for n, p in named if n.endswith("log_scale")], "weight_decay": 0.0},
        ]
        self.optimizer = torch.optim.AdamW(
            [g for g in groups if g["params"]], lr=self.cfg.lr, weight_decay=self.cfg.weight_decay
        )
        per_epoch = [task.num_batches(e) for e in range(self.cfg.epochs)]
        self.total = min(self.cfg.max_steps or sum(per_epoch), sum(per_epoch))
        if self.total == 0:
            raise UserError("the training data yields no batch (check data size against train.batch_size).")
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, _schedule(self.cfg, self.total))
        self.amp = functools.partial(autocast, self.cfg.precision, self.device)  # train.precision
        self.scaler = grad_scaler(self.cfg.precision, self.device)
        if self.cfg.compile:
            task.model.compile()  # in place: parameter names (checkpoints) are unchanged
        self.state = TrainState()
        self.ckpt_dir = run.dir / "checkpoints"
        self._last_loss = float("nan")
        self.main = D.rank() == 0
        self.embedding_path = task.has_embedding_split()
        if self.cfg.grad_cache_chunk and not self.embedding_path:
            raise UserError(
                f"train.grad_cache_chunk = {self.cfg.grad_cache_chunk} needs a task with embed_batch() and "
                f"loss_from_embeddings(); {type(task).__name__} has only loss()."
            )

    # ---------------------------------------------------------------- checkpoints
    def _save_checkpoint(self) -> None:
        """Write ``checkpoints/step-N`` completely (weights as safetensors, optimiser and RNG state as
        tensors loadable with ``weights_only=True``, loop state as JSON), move the ``latest`` pointer
        atomically and keep the newest ``train.keep_checkpoints`` (rank 0)."""
        if not self.main:
            return
        self._check_ckpt_dir()
        self.ckpt_dir.mkdir(exist_ok=True)
        name = f"step-{self.state.step:07d}"
        final = self.ckpt_dir / name
        tmp = self.ckpt_dir / f".{name}.tmp"
        safe_rmtree(tmp, self.run.dir)
        if os.path.lexists(tmp):  # a file or a link where our temporary folder goes
            os.unlink(tmp)
        tmp.mkdir()
        save_model(self.task.model, str(tmp / "model.safetensors"))
        torch.save(
            {
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "torch_rng": torch.get_rng_state(),
                "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
                "python_rng": random.getstate(),
                "task_optimizers": {k: o.state_dict() for k, o in self.task.optimizers().items()},
            },
            tmp / "trainer.pt",
        )
        (tmp / "trainer.json").write_text(json.dumps({"state": asdict(self.state), "metrics": self.run.metrics}))
        _clear(final, self.run.dir)
        os.replace(tmp, final)
        _clear(self.ckpt_dir / "latest", self.run.dir)
        atomic_write_text(self.ckpt_dir / "latest", name)
        for old in _checkpoints(self.ckpt_dir)[self.cfg.keep_checkpoints :]:
            safe_rmtree(old, self.run.dir)  # never through a link, never outside the run directory

    def _check_ckpt_dir(self) -> None:
        """``checkpoints/`` must be a folder inside the run directory: nothing is read, written or pruned through
        a link that leads elsewhere."""
        d = self.ckpt_dir
        if os.path.lexists(d) and (not is_inside(d, self.run.dir) or not d.is_dir()):
            where = f"a link to {os.path.realpath(d)}, outside the run directory" if d.is_symlink() else "not a folder"
            raise UserError(
                f"{d} is {where}: checkpoints are only read, written and deleted inside {self.run.dir}. "
                "Replace it with the folder itself."
            )

    def _load_checkpoint(self) -> None:
        """Load the newest intact checkpoint of this run (only ``checkpoints/step-N`` folders are
        considered: ``latest`` is a hint, never a path), saying which one and why others were skipped."""
        self._check_ckpt_dir()
        found = _checkpoints(self.ckpt_dir)
        if not found:
            raise UserError(
                f"cannot resume {self.run.dir}: it has no checkpoint yet (no {self.ckpt_dir}/step-*). "
                "Start the run again."
            )
        try:
            hint = read_text(self.ckpt_dir / "latest", SMALL_MAX_BYTES, base=self.run.dir).strip()[:64]
        except UnsafeFile:
            hint = ""
        if hint and hint != found[0].name:
            self.run.log(
                f"checkpoints/latest names {hint!r}, not the newest checkpoint folder {found[0].name}: "
                "using the folders, newest first"
            )
        problems = []
        for ckpt in found:
            try:
                self._restore(ckpt)
            except (
                OSError,
                EOFError,
                ValueError,
                RuntimeError,
                KeyError,
                TypeError,
                pickle.UnpicklingError,
                SafetensorError,
            ) as exc:
                problems.append(f"{ckpt.name}: {_brief(exc)}")
                self.run.log(f"checkpoint {ckpt.name} is unusable ({_brief(exc)}); trying an older one")
                continue
            why = f" (newer ones unusable: {'; '.join(problems)})" if problems else ""
            self.run.log(f"resumed from {ckpt.name} (step {self.state.step}/{self.total}){why}")
            return
        raise UserError(
            f"cannot resume {self.run.dir}: no intact checkpoint ({'; '.join(problems)}). Start the run again."
        )

    def _restore(self, ckpt: Path) -> None:
        """Read every file of ``ckpt`` before changing anything, then apply it."""
        base = self.run.dir
        if not os.path.lexists(ckpt / "trainer.json") and (ckpt / "trainer.pt").is_file():
            raise ValueError(
                "written by an older cl-domains (loop state pickled in trainer.pt; not loaded, "
                "as unpickling can run code)"
            )
        info = read_json(ckpt / "trainer.json", STATE_MAX_BYTES, base=base)
        if (
            not isinstance(info, dict)
            or not isinstance(info.get("state"), dict)
            or not isinstance(info.get("metrics"), dict)
        ):
            raise TypeError("trainer.json lacks state/metrics")
        state = TrainState.from_json(info["state"], max_steps=self.total, max_epochs=self.cfg.epochs)
        if f"step-{state.step:07d}" != ckpt.name:
            raise InvalidState(f"trainer.json says step {state.step}, in the folder {ckpt.name}")
        if state.epoch < self.cfg.epochs and state.batch > self.task.num_batches(state.epoch):
            raise InvalidState(f"trainer.json: batch {state.batch} is beyond epoch {state.epoch}'s batches")
        history = info["metrics"].get("history")
        if not isinstance(history, dict) or not all(isinstance(history.get(k), list) for k in ("loss", "dev")):
            raise InvalidState("trainer.json: metrics.history lacks its loss and dev lists")
        check_regular(ckpt / "trainer.pt", base=base)
        check_regular(ckpt / "model.safetensors", base=base)
        saved = torch.load(ckpt / "trainer.pt", map_location="cpu", weights_only=True)
        missing = set(self.task.optimizers()) - set(saved["task_optimizers"])
        if missing:
            raise KeyError(f"no state for the task optimisers {sorted(missing)}")
        load_model(self.task.model, str(ckpt / "model.safetensors"), device=str(self.device))
        self.optimizer.load_state_dict(saved["optimizer"])
        self.scheduler.load_state_dict(saved["scheduler"])
        self.state = state
        self.run.metrics = info["metrics"]
        torch.set_rng_state(saved["torch_rng"])
        if saved["cuda_rng"]:
            torch.cuda.set_rng_state_all(saved["cuda_rng"])
        random.setstate(_as_tuples(saved["python_rng"]))
        for k, o in self.task.optimizers().items():
            o.load_state_dict(saved["task_optimizers"][k])
        if D.rank() > 0:  # the saved stream is rank 0's; other ranks continue their own
            torch.manual_seed(rank_seed(self.cfg.seed, D.rank(), self.state.step))

    # ---------------------------------------------------------------- evaluation
    def _evaluate(self, split: str) -> dict[str, float]:
        self.task.on_evaluate()
        with eval_mode(self.task.model, no_grad=False), evaluating(split):
            metrics = self.task.evaluate(split)
        for callback in self.callbacks:
            callback.on_evaluate(self, split, metrics)
        return metrics

    def _evaluate_dev(self) -> None:
        if not self.main:
            return
        t = time.time()
        metrics = self._evaluate("dev")
        step = self.state.step
        if not metrics:  # no dev set: nothing to select on, the last step is kept
            if not self.run.metrics.get("no_dev"):
                self.run.metrics["no_dev"] = True
                self.run.log("no dev metrics (no dev set): the model of the last step is kept")
            return
        self.run.metrics["history"]["dev"].append([step, metrics])
        if self.select not in metrics:
            raise UserError(f"train.select_metric {self.select!r} is not among the dev metrics: {', '.join(metrics)}.")
        value = metrics[self.select]
        better = self.state.best is None or (
            value > self.state.best if self.cfg.select_mode == "max" else value < self.state.best
        )
        candidate = step > 0 or self.cfg.keep_start  # step 0: the starting model, scored before training
        if better and candidate:
            self.state.best, self.state.best_step, self.state.stale = value, step, 0
            best = self.run.dir / "best"
            best.mkdir(exist_ok=True)
            tmp = best / ".model.safetensors.tmp"
            save_model(self.task.model, str(tmp))
            os.replace(tmp, best / "model.safetensors")
        elif step > 0:
            self.state.stale = self.state.stale + 1
        mark = " (best)" if better and candidate else ""
        self.run.log(f"step {step}: dev {self.select} = {value:.4f}{mark} [{time.time() - t:.1f}s]")

    # ---------------------------------------------------------------- the loop
    def _diagnose(self, loss: Tensor, extras: dict[str, float]) -> TrainingDiverged:
        bad = [n for n, p in self.task.model.named_parameters() if not torch.isfinite(p).all()]
        recent = [round(v, 4) for _, v in self.run.metrics["history"]["loss"][-5:]]
        return TrainingDiverged(
            f"training stopped: the loss became {loss.item()} at step {self.state.step + 1} "
            f"(epoch {self.state.epoch}, lr {self.scheduler.get_last_lr()[0]:.3g}). Recent losses: {recent or 'none'}; "
            f"{'non-finite weights in ' + ', '.join(bad[:5]) if bad else 'all weights are still finite'}; "
            f"batch statistics: {extras or 'n/a'}. No checkpoint was written for this step; the last good one is kept. "
            "Usual causes: a learning rate too high (try --set train.lr=<smaller>), a temperature too small, "
            "or empty/degenerate inputs in the batch."
        )

    def fit(self, *, resume: bool = False) -> dict[str, Any]:
        cfg, task, run = self.cfg, self.task, self.run
        task.model.to(self.device)
        if resume:
            self._load_checkpoint()
        else:
            seed_everything(cfg.seed)
            shown, note = paper_applies(self.recipe)
            run.metrics.update(
                {
                    "recipe": self.recipe.name,
                    "profile": self.recipe.profile,
                    "select_metric": self.select,
                    "paper": {**self.recipe.paper.model_dump(), "shown": shown, "note": note},
                    "history": {"loss": [], "dev": []},
                    "before": {},
                    "baselines": {},
                }
            )
            if cfg.eval_before and self.main:
                t = time.time()
                run.metrics["before"] = self._evaluate("test")
                run.log(f"before training (test): {_short(run.metrics['before'])} [{time.time() - t:.1f}s]")
            if cfg.baselines and self.main:  # once per run: kept in the checkpoints' metrics on resume
                t = time.time()
                with eval_mode(task.model, no_grad=False):
                    run.metrics["baselines"] = task.baselines()
                for name, values in run.metrics["baselines"].items():
                    run.log(f"baseline {name} (test): {_short(values)}")
                if run.metrics["baselines"]:
                    run.log(f"baselines computed [{time.time() - t:.1f}s]")
            if cfg.keep_start:  # the starting model is the first candidate for the best checkpoint
                self._evaluate_dev()
            # Seeded again so that the training stream does not depend on eval_before, baselines or keep_start.
            seed_everything(cfg.seed)
            if D.rank() > 0:  # e.g. different dropout masks on every process
                torch.manual_seed(rank_seed(cfg.seed, D.rank()))
        if D.world_size() > 1:
            self._check_world()
        start = time.time()
        task.on_fit_start()
        task.model.train()
        columns = (
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
        )
        with Progress(*columns, console=console, disable=not (console.is_terminal and self.main)) as bar:
            pid = bar.add_task(self.recipe.name, total=self.total, completed=self.state.step, info="")
            while self.state.step < self.total and self.state.epoch < cfg.epochs:
                task.on_epoch_start(self.state.epoch)
                for i, batch in enumerate(task.batches(self.state.epoch)):
                    if i < self.state.batch:
                        continue  # consumed before the checkpoint we resumed from
                    ctx = StepContext(self.state.step, self.state.epoch, i, cfg.seed, self.device)
                    self._train_step(batch, ctx)
                    self.state.batch = i + 1
                    task.on_step_end(ctx)
                    bar.update(pid, completed=self.state.step, info=f"loss {self._last_loss:.4f}")
                    self._after_step(end_of_epoch=i + 1 == task.num_batches(self.state.epoch))
                    for callback in self.callbacks:
                        callback.on_step_end(self, ctx, self._last_loss)
                    if self.state.step >= self.total or self._out_of_patience():
                        break
                else:
                    self.state.epoch += 1
                    self.state.batch = 0
                    continue
                break
        run.metrics["train_seconds"] = run.metrics.get("train_seconds", 0.0) + time.time() - start
        return self._finish()

    def _check_world(self) -> None:
        ws = D.world_size()
        if self.cfg.batch_size % ws:
            raise UserError(f"train.batch_size = {self.cfg.batch_size} must be divisible by the {ws} processes.")
        for p in self.task.model.parameters():  # same start everywhere (what DDP does at construction)
            torch.distributed.broadcast(p.data, 0)
        if not self.embedding_path and not getattr(self.task, "gathers_negatives", False):
            self.run.log(
                f"{type(self.task).__name__} has no embed_batch(): each of the {ws} processes trains on its shard "
                "with in-shard negatives (the loss differs from one process on the global batch)."
            )

    @staticmethod
    def _loss_out(out) -> tuple[Tensor, dict]:
        return out if isinstance(out, tuple) else (out, {})

    def _backward(self, batch: Any, ctx: StepContext) -> tuple[Tensor, dict]:
        """Loss of ``batch`` and its parameter gradients (in ``.grad``, averaged over processes)."""
        ws = D.world_size()
        if ws > 1:
            n = _batch_len(batch)
            if n % ws:
                raise UserError(
                    f"a batch of {n} examples cannot be split over {ws} processes (drop the last partial batch)."
                )
            local = self.task.slice_batch(batch, D.rank() * n // ws, (D.rank() + 1) * n // ws)
        else:
            local = batch
        if not self.embedding_path or (ws == 1 and not self.cfg.grad_cache_chunk):  # the plain step
            loss, extras = self._loss_out(self.task.loss(local, ctx))
            self._check(loss, extras)
            self.scaler.scale(loss).backward()
        elif self.cfg.grad_cache_chunk:
            loss, extras = self._grad_cache_backward(batch, local, self.cfg.grad_cache_chunk, ctx)
        else:
            emb = self.task.embed_batch(local, ctx)
            parts = emb if isinstance(emb, tuple) else (emb,)
            full = tuple(D.gather_with_grad(x) for x in parts)
            loss, extras = self._loss_out(
                self.task.loss_from_embeddings(full if isinstance(emb, tuple) else full[0], batch, ctx)
            )
            self._check(loss, extras)
            self.scaler.scale(loss).backward()
        D.average_gradients(self.task.model.parameters())
        return loss, extras

    def _grad_cache_backward(self, batch: Any, local: Any, chunk: int, ctx: StepContext) -> tuple[Tensor, dict]:
        task, n = self.task, _batch_len(local)
        bounds = [(s, min(s + chunk, n)) for s in range(0, n, chunk)]
        states, parts = [], []
        with torch.no_grad():  # 1. embeddings without a graph
            for s, e in bounds:
                states.append(_rng_state())
                out = task.embed_batch(task.slice_batch(local, s, e), ctx)
                parts.append(out if isinstance(out, tuple) else (out,))
        after = _rng_state()
        as_tuple = isinstance(out, tuple)
        leaves = tuple(
            to_float32(torch.cat(cols)).requires_grad_(True) for cols in zip(*parts, strict=False)
        )  # the loss in fp32+
        full = tuple(D.gather_with_grad(x) for x in leaves)
        # 2. the loss on the whole (global) batch, gradients w.r.t. the embeddings
        loss, extras = self._loss_out(task.loss_from_embeddings(full if as_tuple else full[0], batch, ctx))
        self._check(loss, extras)
        self.scaler.scale(loss).backward()
        for (s, e), state in zip(bounds, states, strict=False):  # 3. re-embed each sub-batch with a graph, same RNG
            _set_rng_state(state)
            out = task.embed_batch(task.slice_batch(local, s, e), ctx)
            outs = out if as_tuple else (out,)
            torch.autograd.backward(outs, [x.grad[s:e].to(o.dtype) for x, o in zip(leaves, outs, strict=False)])
        _set_rng_state(after)
        return loss.detach(), extras

    def _check(self, loss: Tensor, extras: dict) -> None:
        if not torch.isfinite(loss):
            raise self._diagnose(loss, extras)

    def _out_of_patience(self) -> bool:
        if not self.cfg.patience:
            return False
        stop = self.state.stale >= self.cfg.patience
        if D.world_size() > 1:
            stop = D.broadcast_object(stop)  # rank 0 evaluates; every rank stops with it
        if stop:
            self.run.log(
                f"early stop: no dev improvement in {self.cfg.patience} evaluations (best at step {self.state.best_step})"
            )
            return True
        return False

    def _train_step(self, batch: Any, ctx: StepContext) -> None:
        with self.amp():
            own = self.task.train_step(batch, ctx, self._update)  # several optimiser steps per batch (MCLRec)
        if own is not None:
            loss, extras = own
        else:
            with self.amp():
                loss, extras = self._backward(batch, ctx)
            self._apply(extras)
        self.scheduler.step()
        self.state.step += 1
        self._last_loss = float(loss.detach()) if self.embedding_path else D.all_mean(float(loss.detach()))
        self.run.metrics["history"]["loss"].append([self.state.step, self._last_loss])

    def _update(self, loss: Tensor, extras: dict[str, float] | None = None) -> None:
        """One optimiser step on a loss the task computed itself: check, backward, average, clip, apply."""
        extras = extras or {}
        self._check(loss, extras)
        self.scaler.scale(loss).backward()
        D.average_gradients(self.task.model.parameters())
        self._apply(extras)

    def _apply(self, extras: dict[str, float]) -> None:
        """Clip, check the gradients and apply them to the loop's parameters."""
        self.scaler.unscale_(self.optimizer)  # fp16: the true gradients (a no-op otherwise)
        if self.cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.task.model.parameters(), self.cfg.grad_clip)
        grads = [p.grad for p in self.task.model.parameters() if p.grad is not None]
        if hasattr(torch.nn.utils, "get_total_norm"):  # torch >= 2.6: the largest |g|, fused; finite iff all are
            grads_ok = bool(torch.isfinite(torch.nn.utils.get_total_norm(grads, float("inf"))))
        else:
            grads_ok = all(torch.isfinite(g).all() for g in grads)
        if not grads_ok and not self.scaler.is_enabled():  # fp16: the scaler skips the step and lowers its scale
            raise self._diagnose(torch.tensor(float("nan")), {**extras, "note": "non-finite gradients"})
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)

    def _after_step(self, end_of_epoch: bool = False) -> None:
        step, cfg = self.state.step, self.cfg
        if step % cfg.log_every == 0 and not console.is_terminal:
            self.run.log(
                f"step {step}/{self.total} loss {self._last_loss:.4f} lr {self.scheduler.get_last_lr()[0]:.3g}"
            )
        due = end_of_epoch if cfg.eval_every == "epoch" else bool(cfg.eval_every) and step % cfg.eval_every == 0
        if due and step < self.total:
            self._evaluate_dev()
        if step % cfg.checkpoint_every == 0 and step < self.total:
            self._save_checkpoint()

    def _finish(self) -> dict[str, Any]:
        task, run = self.task, self.run
        task.model.eval()  # training is over
        if not self.main:
            run.metrics["steps"] = self.state.step
            return run.metrics
        self._evaluate_dev()
        stats = task.train_stats()  # counters kept while training, before the best checkpoint replaces the weights
        if stats:
            run.metrics["train_stats"] = stats
            run.log(f"training statistics: {_short(stats)}")
        best = run.dir / "best" / "model.safetensors"
        if best.is_file() and not best.is_symlink():
            load_model(task.model, str(best), device=str(self.device))
            if self.state.best_step == 0:
                run.metrics["kept_start"] = True
                run.log(f"{KEPT_START} ({self.select} = {self.state.best:.4f} before training)")
            else:
                run.log(
                    f"using the best dev checkpoint: step {self.state.best_step} ({self.select} = {self.state.best:.4f})"
                )
        after = self._evaluate("test")
        check_metrics(after, where=f"{self.recipe.name}: test")  # NaN/inf fails the run instead of being reported
        run.metrics.update(
            {
                "final": after,
                "best_step": self.state.best_step,
                "best_dev": self.state.best,
                "steps": self.state.step,
            }
        )
        task.export(run.dir / "model")
        write_run_model(run.dir / "model", self.recipe, run.metrics)
        self._save_checkpoint()
        run.save_metrics()
        run.plot()
        paper = self.recipe.paper
        table = comparison_table(
            run.metrics.get("before", {}),
            after,
            shown_paper(run.metrics),
            f"paper ({paper.setting or paper.source})",
            run.metrics.get("baselines"),
        )
        note = run.metrics.get("paper", {}).get("note")
        if run.metrics.get("kept_start"):
            note = KEPT_START + (f"; {note}" if note else "")
        text = f"# {self.recipe.name} ({self.recipe.profile or 'default'})\n\n{table}\n" + (
            f"\n{note}.\n" if note else ""
        )
        atomic_write_text(run.dir / "report.md", text)
        run.log("results:\n" + table + (f"\n{note}." if note else ""))
        for callback in self.callbacks:
            callback.on_fit_end(self, run.metrics)
        return run.metrics


_CKPT = re.compile(r"step-\d{7}")


def _checkpoints(directory: Path) -> list[Path]:
    """The run's checkpoint folders, newest first (names ``step-NNNNNNN`` only)."""
    if not directory.is_dir():
        return []
    found = [p for p in directory.iterdir() if _CKPT.fullmatch(p.name) and p.is_dir() and not p.is_symlink()]
    return sorted(found, key=lambda p: p.name, reverse=True)


def _clear(path: Path, base: Path) -> None:
    """Make room for ``path`` (inside the checked ``checkpoints/``): a folder is deleted (never through a link),
    a file, FIFO or link is unlinked (what a link points to is left alone)."""
    if not safe_rmtree(path, base) and os.path.lexists(path):
        os.unlink(path)


def _brief(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text[:200]}"


def _as_tuples(x: Any) -> Any:
    """``random.setstate`` needs tuples where a round trip may give lists."""
    return tuple(_as_tuples(v) for v in x) if isinstance(x, (list, tuple)) else x


def _short(metrics: dict[str, float]) -> str:
    return ", ".join(f"{k} {fmt_metric(v)}" for k, v in metrics.items())


def train_recipe(
    recipe: Recipe | None = None,
    *,
    out: str | Path = "runs",
    data_root: str | Path | None = None,
    resume: str | Path | None = None,
    callbacks: Sequence[Callback] = (),
    build: Callable[[Recipe, torch.device], Task] | None = None,
) -> Run:
    """Build the recipe's task and train it in a new run directory, or resume ``resume`` (a run dir).
    ``build(recipe, device)`` replaces the registered class's ``cls(recipe, data_root, device)`` (an estimator's
    task on in-memory data); seeding, threads and processes are the same either way.

    A run directory is trained by one process at a time: a second ``train_recipe`` (or ``cl-domains run
    --resume``) on a directory in use raises a :class:`UserError` naming the holder.

    Args:
        recipe: the resolved recipe (``None`` with ``resume``).
        out: the folder of new run directories.
        data_root: the data root (default: ``--data-root`` / ``$CL_DOMAINS_DATA`` / the cache).
        resume: a run directory to continue from its newest intact checkpoint.
        callbacks: observers of steps, evaluations and the end.
        build: ``build(recipe, device) -> Task`` in place of the registered class.

    Returns:
        The finished run (``run.dir``, ``run.metrics``).
    """
    from . import registry
    from .recipe import load_recipe

    if resume is None and recipe is None:
        raise UserError("give a recipe or a run directory to resume.")
    held = Run.held()
    threads = torch.get_num_threads()
    owns_group = False
    try:
        if resume is not None:
            run: Run | None = _open_for_resume(Path(resume))
            if os.environ.get("RANK", "0") == "0":  # under torchrun, rank 0 holds the directory for every rank
                run.lock()
            recipe = load_recipe(run.config_path)
            try:
                recipe.profile = run.info.get("profile")
            except UserError as exc:
                run.log(f"{exc} Its profile label is unknown; resuming from config.yaml, which holds every setting.")
                recipe.profile = None
        else:
            run = None  # created once the task is built, so bad data leaves no empty run directory
            Run.check_out(out)  # but a wrong --out is said before the data loads
        cls = registry.method_spec(recipe.domain, recipe.method.name).cls
        device = pick_device(recipe.train.device)
        if recipe.train.threads:
            torch.set_num_threads(recipe.train.threads)
        owns_group = D.init_from_env()
        seed_everything(recipe.train.seed)  # heads are initialised while the task is built
        task = build(recipe, device) if build is not None else cls(recipe, data_root, device)
        if isinstance(task, Study):  # several trainings in one run (e.g. strategies x seeds)
            return task.run(out=out, device=device, run=run)
        return train_task(recipe, task, out=out, run=run, device=device, callbacks=callbacks)
    finally:
        _release(held)  # the run directories claimed here (a resumed one, those created by a study)
        torch.set_num_threads(threads)  # a recipe's thread count must not outlive its run (tests, notebooks)
        if owns_group:
            D.shutdown()


def _open_for_resume(directory: Path) -> Run:
    """The run directory to resume, checked: a folder with a regular ``config.yaml``, its entries what they claim
    and none a link out of it."""
    if not directory.is_dir():
        raise UserError(f"cannot resume {directory}: no such run directory.")
    run = Run(directory)
    if not run.config_path.is_file():
        raise UserError(f"cannot resume {directory}: it is not a run directory (no config.yaml).")
    run.check_layout()
    check_regular(run.config_path, base=run.dir, max_bytes=STATE_MAX_BYTES)
    return run


def _release(held: set[Path]) -> None:
    """Release the run directories locked since ``held`` was taken (:meth:`Run.held`)."""
    for directory in Run.held() - held:
        Run.release(directory)


def train_task(
    recipe: Recipe,
    task: Task,
    *,
    out: str | Path = "runs",
    run: Run | None = None,
    device: torch.device | None = None,
    callbacks: Sequence[Callback] = (),
) -> Run:
    """Train a built task in a new run directory under ``out``, or resume ``run`` (an existing
    one). Under torchrun, rank 0 creates the directory and every rank uses it.

    Args:
        recipe: the resolved recipe.
        task: the built task.
        out: the folder of new run directories.
        run: an existing run directory to resume, or ``None``.
        device: the device (default: ``train.device``).
        callbacks: observers of steps, evaluations and the end.

    Returns:
        The finished run (``run.dir``, ``run.metrics``).
    """
    resume = run is not None
    held = Run.held()
    if resume:
        run.check_layout()
        if D.rank() == 0:
            run.lock()
    try:
        return _train_task(recipe, task, run, out, device, callbacks)
    finally:
        _release(held)


def _train_task(
    recipe: Recipe,
    task: Task,
    run: Run | None,
    out: str | Path,
    device: torch.device | None,
    callbacks: Sequence[Callback],
) -> Run:
    resume = run is not None
    if run is not None and "final" in run.metrics:  # finished: resuming must not evaluate or write again
        console.print(
            f"{run.dir} is finished ({run.metrics.get('steps', '?')} steps; results in "
            f"{run.dir / 'report.md'}): nothing to resume, nothing changed.",
            markup=False,
            highlight=False,
        )
        return run
    if run is None:
        path = Run.create(out, recipe).dir if D.rank() == 0 else None
        run = Run(D.broadcast_object(path))
    run.muted = D.rank() != 0
    device = device or pick_device(recipe.train.device)
    world = f" x {D.world_size()} processes" if D.world_size() > 1 else ""
    run.log(
        f"{'resuming' if resume else 'starting'} {recipe.name} (profile {recipe.profile}) in {run.dir} on {device}{world}"
    )
    from .tracking import trackers

    Trainer(recipe, task, run, device=device, callbacks=[*callbacks, *trackers(recipe)]).fit(resume=resume)
    return run
