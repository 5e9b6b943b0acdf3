"""Continual strategies as small objects with one interface: which examples a phase trains on, whether a
rehearsal memory is kept and mixed into the batches, what happens when a phase starts, and the terms added
to the cross-entropy over the classes seen so far."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, ClassVar, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..core.objectives import Objective
from .config import CoconutConfig
from .losses import mm_loss, nspt_loss

if TYPE_CHECKING:  # pragma: no cover
    from .model import SLUModel
    from .prepare import Prepared

__all__ = ["Strategy", "FineTune", "Replay", "Joint", "Coconut", "STRATEGY_CLASSES", "make_strategy", "TaskView"]


class TaskView(Protocol):
    """What a strategy reads from the task that drives it (:class:`cl_domains.slu.task.CILTask`)."""

    model: SLUModel
    data: Prepared
    device: torch.device
    phase: int
    train_text: Tensor  # transcript id of each training example

    def inputs(self, idx: Tensor, feats: list[Tensor]) -> tuple[Tensor, Tensor]: ...

    def classes_before(self, phase: int) -> Tensor: ...


class Strategy:
    """Fine-tuning behaviour; subclasses change what they need.

    Attributes:
        name: the strategy's name in ``method.strategies``.
        rehearsal: keep a rehearsal memory, update it at each task boundary and add
            ``memory_batch`` of its examples to every batch.
        cumulative: train each phase on the data of every task seen so far (joint training).
    """

    name: ClassVar[str] = "finetune"
    rehearsal: ClassVar[bool] = False
    cumulative: ClassVar[bool] = False

    def __init__(self, cfg: CoconutConfig):
        self.cfg = cfg
        self.objectives = nn.ModuleDict()  # the contrastive terms' objectives (a learnable temperature trains)

    def pool(self, by_task: list[list[int]], phase: int) -> list[int]:
        """Training example indices of ``phase``."""
        return [i for t in range(phase + 1) for i in by_task[t]] if self.cumulative else list(by_task[phase])

    def start_phase(self, task: TaskView, phase: int) -> None:
        """Called when ``phase`` begins (after the classes of the phase are marked seen)."""

    def loss(
        self, task: TaskView, batch: dict, h: Tensor, logits: Tensor, y: Tensor, ce: Tensor
    ) -> tuple[Tensor, dict[str, float]]:
        """The training loss from the cross-entropy ``ce`` over the classes seen so far, the encoder's pooled
        output ``h`` and the ``logits`` of ``batch`` (new examples, then rehearsal ones), and values to log."""
        return ce, {"ce": float(ce.detach())}


class FineTune(Strategy):
    """The current task's data only (the lower bound)."""

    name = "finetune"


class Joint(Strategy):
    """All data of the tasks seen so far (the upper bound)."""

    name = "joint"
    cumulative = True


class Replay(Strategy):
    """Experience replay: the current task's data plus rehearsal examples in every batch."""

    name = "replay"
    rehearsal = True


class Coconut(Replay):
    """COCONUT: replay + L_NSPT on the rehearsal examples against the previous phase's teacher + L_MM
    (audio-text) on the new examples, optionally logit KD on the rehearsal examples."""

    name = "coconut"

    def __init__(self, cfg: CoconutConfig):
        super().__init__(cfg)
        self.teacher: SLUModel | None = None
        self.objectives.update({"nspt": Objective(cfg.objective), "mm": Objective(cfg.mm_objective)})

    def start_phase(self, task: TaskView, phase: int) -> None:
        if phase > 0:
            self.teacher = copy.deepcopy(task.model).eval().requires_grad_(False)

    def loss(self, task, batch, h, logits, y, ce):
        cfg, n_new = self.cfg, len(batch["new"])
        z = task.model.project(h)
        total, extras = ce, {"ce": float(ce.detach())}
        if cfg.mm_weight and task.data.has_text:
            # L_MM: symmetric audio-text InfoNCE on the new task's data; same transcript = positives
            text = task.model.encode_text([task.data.train.texts[int(i)] for i in batch["new"]])
            mm = mm_loss(self.objectives["mm"], z[:n_new], text, task.train_text[batch["new"]].to(task.device))
            total, extras["mm"] = total + cfg.mm_weight * mm, float(mm.detach())
        if self.teacher is not None and len(batch["mem"]):
            with torch.no_grad():
                h_t, logits_t = self.teacher(*task.inputs(batch["mem"], task.data.train_feats))  # rehearsal samples
                z_t = self.teacher.project(h_t)
            if cfg.nspt_weight:
                nspt = nspt_loss(self.objectives["nspt"], z, y, z_t)
                total, extras["nspt"] = total + cfg.nspt_weight * nspt, float(nspt.detach())
            if cfg.kd_weight:
                old, t = task.classes_before(task.phase), cfg.kd_temperature
                # optional logit KD on rehearsal samples (Hinton et al. 2015), scaled by t^2
                p_s, p_t = F.log_softmax(logits[n_new:, old] / t, -1), F.softmax(logits_t[:, old] / t, -1)
                kd = F.kl_div(p_s, p_t, reduction="batchmean") * t * t
                total, extras["kd"] = total + cfg.kd_weight * kd, float(kd.detach())
        return total, extras


STRATEGY_CLASSES: dict[str, type[Strategy]] = {s.name: s for s in (Joint, Coconut, Replay, FineTune)}


def make_strategy(name: str, cfg: CoconutConfig) -> Strategy:
    return STRATEGY_CLASSES[name](cfg)
