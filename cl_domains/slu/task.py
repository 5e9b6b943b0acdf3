"""Recipe schemas, data preparation and the class-incremental study (strategies x seeds).

A run of ``coconut_fsc`` / ``coconut_slurp`` prepares the audio once (real recordings, or espeak-ng
speech synthesised from the transcripts), computes log-mel features once, then trains every
strategy of ``method.strategies`` for every seed of ``method.seeds``. Each such training is one
:class:`CILTask` driven by the core :class:`~cl_domains.core.train.Trainer`: its epochs run task
after task (``train.epochs`` per task), and at each task boundary the task records a row of the
accuracy matrix, updates the rehearsal memory and snapshots the teacher.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import math
import shutil
import time
from pathlib import Path
from typing import Literal, Optional

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor

from ..core import data as core_data
from ..core.errors import UserError
from ..core.losses import contrastive_nll, info_nce
from ..core.pairs import labels_to_positives
from ..core.recipe import PaperConfig, Recipe, StrictModel
from ..core.registry import method
from ..core.runs import Run, atomic_write_text
from ..core.task import StepContext, Study, Task
from ..core.train import Trainer
from .continual import RehearsalMemory, cl_metrics, task_splits
from .data import Utterances, read_fsc_csv, read_massive_jsonl, read_slurp_jsonl
from .features import features_for
from .model import SLUModel, pad_features
from .synth import assign_voices, manifest_digest, synthesize

__all__ = [
    "SLUModelConfig",
    "SLUDataConfig",
    "SLUEvalConfig",
    "CoconutConfig",
    "Prepared",
    "prepare",
    "CILTask",
    "CILStudy",
    "STRATEGIES",
    "nspt_loss",
    "mm_loss",
]

STRATEGIES = ("joint", "coconut", "replay", "finetune")


class SLUModelConfig(StrictModel):
    dim: int = Field(96, gt=0)
    layers: int = Field(2, gt=0)
    heads: int = Field(4, gt=0)
    ff: int = Field(192, gt=0)
    dropout: float = Field(0.1, ge=0, lt=1)
    proj_dim: int = Field(64, gt=0, description="contrastive projection / text embedding size")


class SLUDataConfig(StrictModel):
    format: Literal["fsc", "massive", "slurp"] = Field(..., description="fsc csv, MASSIVE jsonl or SLURP jsonl")
    train: str = Field(..., description="'<card>/<file>' or a path")
    test: str = Field(..., description="evaluation split ('<card>/<file>' or a path)")
    audio_root: Optional[str] = Field(
        None,
        description="folder of the real recordings (FSC release folder, SLURP "
        "slurp_real/); null: synthesise speech with espeak-ng",
    )
    synth_seed: int = Field(0, description="seed of the speaker -> voice map and of the subsets")
    train_speakers: Optional[int] = Field(None, gt=0, description="keep this many training speakers (seeded)")
    test_speakers: Optional[int] = Field(None, gt=0)
    max_train: Optional[int] = Field(None, gt=0, description="keep this many training utterances (seeded)")
    max_test: Optional[int] = Field(None, gt=0)
    synth_voices: list[int] = Field(
        default_factory=lambda: [40, 8],
        description="corpora without speaker ids (MASSIVE): number of synthetic training / evaluation voices",
    )
    cache_dir: Optional[str] = Field(None, description="synthetic audio and feature cache (default: user cache)")
    workers: int = Field(2, gt=0, description="synthesis processes")


class SLUEvalConfig(StrictModel):
    batch_size: int = Field(256, gt=0)


class CoconutConfig(StrictModel):
    name: Literal["coconut"] = "coconut"
    strategies: list[Literal["joint", "coconut", "replay", "finetune"]] = Field(
        default_factory=lambda: list(STRATEGIES)
    )
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2])
    n_tasks: int = Field(6, gt=0)
    task_sizes: Optional[list[int]] = None
    memory_size: Optional[int] = Field(None, gt=0, description="rehearsal examples (default: memory_fraction of train)")
    memory_fraction: float = Field(0.01, gt=0, le=1)
    memory_selection: Literal["reservoir", "herding"] = "reservoir"
    memory_batch: Optional[int] = Field(
        None, gt=0, description="rehearsal examples added to each batch (default: batch size)"
    )
    nspt_weight: float = Field(
        0.1, ge=0, description="weight of the NSPT loss (supervised contrastive on rehearsal samples)"
    )
    mm_weight: float = Field(0.1, ge=0, description="weight of the MM loss (audio-text contrastive)")
    kd_weight: float = Field(0.0, ge=0, description="optional logit distillation on rehearsal samples")
    temperature: float = Field(0.1, gt=0, description="NSPT temperature")
    mm_temperature: float = Field(0.1, gt=0)
    kd_temperature: float = Field(2.0, gt=0)


def _cache_root(cfg: SLUDataConfig) -> Path:
    if cfg.cache_dir:
        return Path(cfg.cache_dir).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("cl-domains")) / "slu"


def _read(cfg: SLUDataConfig, ref: str, data_root) -> Utterances:
    path = core_data.resolve(ref, data_root)
    if cfg.format == "fsc":
        return read_fsc_csv(path, cfg.audio_root)
    if cfg.format == "massive":
        return read_massive_jsonl(path)
    return read_slurp_jsonl(path, cfg.audio_root)


def _subset(u: Utterances, speakers: int | None, max_rows: int | None, rng: np.random.Generator) -> Utterances:
    keep = np.arange(len(u))
    if speakers is not None:
        names = sorted(set(u.speakers))
        if speakers < len(names):
            chosen = set(names[i] for i in rng.choice(len(names), speakers, replace=False))
            keep = np.array([i for i in keep if u.speakers[i] in chosen])
    if max_rows is not None and max_rows < len(keep):
        keep = np.sort(rng.choice(keep, max_rows, replace=False))
    return u.subset(keep.tolist()) if len(keep) < len(u) else u


@dataclasses.dataclass
class Prepared:
    """Both splits with their features (``[T_i, 40]`` fp16 per utterance)."""

    train: Utterances
    test: Utterances
    train_feats: list[Tensor]
    test_feats: list[Tensor]
    vocab: list[str]
    info: dict


def prepare(cfg: SLUDataConfig, data_root=None, log=print) -> Prepared:
    """Read the splits, take the subsets, synthesise speech if there are no recordings, and compute
    (or load) the cached log-mel features."""
    from .data import tokenize

    t0 = time.time()
    rng = np.random.default_rng(cfg.synth_seed)
    train = _subset(_read(cfg, cfg.train, data_root), cfg.train_speakers, cfg.max_train, rng)
    test = _subset(_read(cfg, cfg.test, data_root), cfg.test_speakers, cfg.max_test, rng)
    info: dict = {"train_utterances": len(train), "test_utterances": len(test)}
    if cfg.audio_root is None:
        if cfg.format == "massive":  # no speaker ids: each record gets one of N synthetic voices
            for u, tag, n in ((train, "train", cfg.synth_voices[0]), (test, "eval", cfg.synth_voices[1])):
                u.speakers = [f"{tag}{k}" for k in rng.integers(0, n, len(u))]
        voices = assign_voices(train.speakers, test.speakers, cfg.synth_seed)
        spec = json.dumps(
            {
                "format": cfg.format,
                "seed": cfg.synth_seed,
                "rows": sorted(
                    {(v.key, t) for u in (train, test) for t, s in zip(u.texts, u.speakers) for v in [voices[s]]}
                ),
            }
        )
        folder = _cache_root(cfg) / f"synth-{cfg.format}-{hashlib.sha256(spec.encode()).hexdigest()[:16]}"
        t = time.time()
        out = synthesize({"train": train, "test": test}, voices, folder, workers=cfg.workers, log=log)
        train, test = out["train"], out["test"]
        info.update(
            synth_dir=str(folder),
            synth_seconds=round(time.time() - t, 1),
            manifest_sha256=manifest_digest(folder),
            voices=len({voices[s] for s in train.speakers}),
            eval_voices=len({voices[s] for s in test.speakers}),
        )
    t = time.time()
    feats = []
    for u in (train, test):
        files = sorted(set(u.audio))
        row = (
            (lambda i: f"row {i + 2}") if cfg.format == "fsc" else (lambda i: f"utterance {i + 1}")
        )  # csv: header = row 1
        where = {f: f"{u.source}, {row(i)}" for i, f in reversed(list(enumerate(u.audio)))}
        unique = features_for(files, _cache_root(cfg) / "features", [where[f] for f in files], log=log)
        pos = {f: i for i, f in enumerate(files)}
        feats.append([unique[pos[f]] for f in u.audio])
    info["feature_seconds"] = round(time.time() - t, 1)
    info["prepare_seconds"] = round(time.time() - t0, 1)
    vocab = ["<pad>", "<unk>", *sorted({w for u in (train, test) for x in u.texts for w in tokenize(x)})]
    return Prepared(train, test, feats[0], feats[1], vocab, info)


class CILTask(Task):
    """One strategy x seed: the core Task protocol over ``n_tasks x epochs`` epochs.

    Every strategy trains with cross-entropy over the classes seen so far (class-incremental:
    logits of future classes are masked). ``finetune``: the current task's data only. ``replay``:
    plus ``memory_batch`` rehearsal examples per batch. ``coconut``: replay + NSPT + MM (+ KD).
    ``joint``: all data of the tasks seen so far (the upper bound).
    """

    dev_metric = "acc_seen"

    def __init__(
        self,
        data: Prepared,
        strategy: str,
        seed: int,
        method: CoconutConfig,
        model_cfg: SLUModelConfig,
        batch_size: int,
        epochs: int,
        eval_batch: int,
        device,
    ):
        self.data, self.strategy, self.seed, self.cfg = data, strategy, seed, method
        self.batch_size, self.epochs, self.eval_batch, self.device = (
            batch_size,
            epochs,
            eval_batch,
            torch.device(device),
        )
        torch.manual_seed(seed)
        self.model = SLUModel(data.train.classes, data.vocab, **model_cfg.model_dump()).to(self.device)
        n_classes = len(data.train.classes)
        self.tasks = task_splits(n_classes, method.n_tasks, method.task_sizes)
        self.train_labels = torch.tensor(data.train.labels)
        self.train_lengths = torch.tensor([f.shape[0] for f in data.train_feats])
        self.test_labels = torch.tensor(data.test.labels)
        self.train_by_task = _by_task(data.train.labels, self.tasks)
        self.test_by_task = _by_task(data.test.labels, self.tasks)
        empty = [t for t in range(len(self.tasks)) if not self.train_by_task[t] or not self.test_by_task[t]]
        if empty:
            raise UserError(f"task(s) {empty} have no training or test examples: use more data or fewer tasks.")
        size = method.memory_size or max(1, round(method.memory_fraction * len(data.train)))
        self.memory = RehearsalMemory(size, method.memory_selection, seed)
        self.phase = -1
        self.teacher: SLUModel | None = None
        self.acc = np.full((len(self.tasks), len(self.tasks)), np.nan)
        self.seen = torch.zeros(n_classes, dtype=torch.bool, device=self.device)
        self.text_ids = {t: i for i, t in enumerate(sorted(set(data.train.texts)))}
        self.train_text = torch.tensor([self.text_ids[t] for t in data.train.texts])

    # ---------------------------------------------------------------- phases
    def _pool(self, phase: int) -> list[int]:
        if self.strategy == "joint":
            return [i for t in range(phase + 1) for i in self.train_by_task[t]]
        return self.train_by_task[phase]

    def _enter(self, phase: int) -> None:
        if phase == self.phase:
            return
        if self.phase >= 0:
            self._end_phase()
        self.phase = phase
        self.seen[[c for t in range(phase + 1) for c in self.tasks[t]]] = True
        if self.strategy == "coconut" and phase > 0:
            self.teacher = copy.deepcopy(self.model).eval().requires_grad_(False)

    def _end_phase(self) -> None:
        """Accuracy row of the finished phase, then the memory update with its examples."""
        p = self.phase
        for j in range(p + 1):
            self.acc[p, j] = self._accuracy(self.test_by_task[j])
        if self.strategy in ("replay", "coconut") and p < len(self.tasks) - 1:  # no task follows the last
            idx = self.train_by_task[p]
            feats = self._embed(idx) if self.memory.selection == "herding" else None
            self.memory.add_task(idx, [int(self.train_labels[i]) for i in idx], feats)

    # ---------------------------------------------------------------- Task protocol
    def num_batches(self, epoch: int) -> int:
        return math.ceil(len(self._pool(epoch // self.epochs)) / self.batch_size)

    def batches(self, epoch: int):
        phase = epoch // self.epochs
        self._enter(phase)
        g = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
        pool = torch.tensor(self._pool(phase))
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
            if self.strategy in ("replay", "coconut") and len(memory):
                mem = memory[torch.randperm(len(memory), generator=g)[:m]]
            yield {"new": chunks[k], "mem": mem}

    def _inputs(self, idx: Tensor, feats: list[Tensor]) -> tuple[Tensor, Tensor]:
        x, lengths = pad_features([feats[int(i)] for i in idx])
        return x.to(self.device), lengths.to(self.device)

    def _logits(self, logits: Tensor) -> Tensor:
        return logits.masked_fill(~self.seen, float("-inf"))  # class-incremental: only classes seen so far

    def loss(self, batch: dict, ctx: StepContext):
        idx = torch.cat([batch["new"], batch["mem"]])
        y = self.train_labels[idx].to(self.device)
        h, logits = self.model(*self._inputs(idx, self.data.train_feats))
        ce = F.cross_entropy(self._logits(logits), y)
        if self.strategy != "coconut":
            return ce, {"ce": float(ce.detach())}
        cfg, n_new = self.cfg, len(batch["new"])
        z = self.model.project(h)
        total, extras = ce, {"ce": float(ce.detach())}
        if cfg.mm_weight:
            # L_MM (COCONUT, multimodal loss): symmetric audio-text InfoNCE on the new task's data;
            # utterances of the same transcript are positives of each other
            text = self.model.encode_text([self.data.train.texts[int(i)] for i in batch["new"]])
            mm = mm_loss(z[:n_new], text, self.train_text[batch["new"]].to(self.device), cfg.mm_temperature)
            total, extras["mm"] = total + cfg.mm_weight * mm, float(mm.detach())
        if self.teacher is not None and len(batch["mem"]):
            with torch.no_grad():
                h_t, logits_t = self.teacher(*self._inputs(batch["mem"], self.data.train_feats))  # rehearsal samples
                z_t = self.teacher.project(h_t)
            if cfg.nspt_weight:
                nspt = nspt_loss(z[n_new:], y[n_new:], z_t, y[n_new:], z, y, cfg.temperature)
                total, extras["nspt"] = total + cfg.nspt_weight * nspt, float(nspt.detach())
            if cfg.kd_weight:
                old = self.teacher_seen
                t = cfg.kd_temperature  # optional logit KD on rehearsal samples (Hinton et al. 2015)
                kd = (
                    F.kl_div(
                        F.log_softmax(logits[n_new:, old] / t, -1),
                        F.softmax(logits_t[:, old] / t, -1),
                        reduction="batchmean",
                    )
                    * t
                    * t
                )
                total, extras["kd"] = total + cfg.kd_weight * kd, float(kd.detach())
        return total, extras

    @property
    def teacher_seen(self) -> Tensor:
        return torch.tensor([c for t in range(self.phase) for c in self.tasks[t]], device=self.device)

    @torch.no_grad()
    def _predict(self, idx: list[int]) -> Tensor:
        was = self.model.training
        self.model.eval()
        out = []
        for s in range(0, len(idx), self.eval_batch):
            _, logits = self.model(*self._inputs(torch.tensor(idx[s : s + self.eval_batch]), self.data.test_feats))
            out.append(self._logits(logits).argmax(-1).cpu())
        self.model.train(was)
        return torch.cat(out)

    def _accuracy(self, idx: list[int]) -> float:
        return float((self._predict(idx) == self.test_labels[idx]).float().mean() * 100)

    @torch.no_grad()
    def _embed(self, idx: list[int]) -> Tensor:
        was = self.model.training
        self.model.eval()
        out = [
            self.model(*self._inputs(torch.tensor(idx[s : s + self.eval_batch]), self.data.train_feats))[0].cpu()
            for s in range(0, len(idx), self.eval_batch)
        ]
        self.model.train(was)
        return torch.cat(out)

    def evaluate(self, split: str) -> dict[str, float]:
        if split == "dev":  # accuracy on the test examples of the classes seen so far
            return {"acc_seen": self._accuracy([i for t in range(self.phase + 1) for i in self.test_by_task[t]])}
        if np.isnan(self.acc[-1, -1]):
            self._end_phase()
        return cl_metrics(self.acc, [len(x) for x in self.test_by_task])

    def export(self, directory: Path) -> None:
        self.model.save(directory)


def nspt_loss(
    anchors: Tensor,
    anchor_labels: Tensor,
    teacher_keys: Tensor,
    teacher_labels: Tensor,
    student_keys: Tensor,
    student_labels: Tensor,
    temperature: float,
) -> Tensor:
    """L_NSPT (COCONUT, negative-student positive-teacher): SupCon (Khosla et al. 2020, eq. 2, L_out)
    of each rehearsal anchor (student embedding) whose positives are the teacher's embeddings of
    the rehearsal examples of its class and whose negatives are the student's embeddings of the
    batch examples of other classes; cosine similarity / temperature."""
    keys = F.normalize(torch.cat([teacher_keys, student_keys]), dim=-1)
    logits = F.normalize(anchors, dim=-1) @ keys.T / temperature
    positives = torch.cat(
        [
            labels_to_positives(anchor_labels, teacher_labels),
            torch.zeros(len(anchors), len(student_keys), dtype=torch.bool, device=anchors.device),
        ],
        1,
    )
    negatives = torch.cat(
        [
            torch.zeros(len(anchors), len(teacher_keys), dtype=torch.bool, device=anchors.device),
            ~labels_to_positives(anchor_labels, student_labels),
        ],
        1,
    )
    return contrastive_nll(logits, positives, negatives).mean()


def mm_loss(audio: Tensor, text: Tensor, phrase_ids: Tensor, temperature: float) -> Tensor:
    """L_MM (COCONUT, multimodal audio-text contrastive, CLIP-style): symmetric InfoNCE between
    audio and transcript embeddings; utterances of the same transcript are positives."""
    same = labels_to_positives(phrase_ids, exclude_self=False)
    return info_nce(audio, text, temperature, positives=same, symmetric=True)


def _mean_std(xs: list[float]) -> tuple[float, float]:
    a = np.asarray(xs, dtype=np.float64)
    return float(a.mean()), float(a.std(ddof=1)) if len(a) > 1 else 0.0


@method("slu", "coconut")
class CILStudy(Study):
    """Every strategy x seed of a recipe, then the side-by-side table and the per-task plot."""

    config = CoconutConfig

    def __init__(self, recipe: Recipe, data_root, device=None):
        self.recipe, self.data_root = recipe, data_root

    def run(self, *, out, device, run: Run | None = None) -> Run:
        """Train every strategy x seed; with ``run`` (resume), finished trainings are kept and an
        unfinished one starts again (its rehearsal memory and teacher live in memory, not in checkpoints)."""
        recipe, cfg = self.recipe, self.recipe.method
        resume = run is not None
        run = run or Run.create(out, recipe)
        run.log(
            f"{'resuming' if resume else 'starting'} {recipe.name} (profile {recipe.profile}) in {run.dir} on {device}"
        )
        t0 = time.time()
        data = prepare(recipe.data, self.data_root, log=run.log)
        run.log(f"data: {json.dumps(data.info)}")
        results: dict[str, list[dict]] = {}
        n_tasks = len(task_splits(len(data.train.classes), cfg.n_tasks, cfg.task_sizes))
        for strategy in cfg.strategies:
            for seed in cfg.seeds:
                t = time.time()
                train = recipe.train.model_copy(
                    update={
                        "seed": seed,
                        "epochs": recipe.train.epochs * n_tasks,
                        "eval_before": False,
                        "eval_every": None,
                        "patience": None,
                    }
                )
                sub = dataclasses.replace(
                    recipe,
                    train=train,
                    name=f"{recipe.name}/{strategy}-seed{seed}",
                    paper=PaperConfig(source="see the study's report.md"),
                )
                sub_dir = run.dir / "strategies" / f"{strategy}-seed{seed}"
                done = sub_dir / "result.json"
                if done.is_file():
                    results.setdefault(strategy, []).append(json.loads(done.read_text()))
                    run.log(f"{strategy} seed {seed}: finished before, kept")
                    continue
                if sub_dir.exists():
                    shutil.rmtree(sub_dir)
                sub_dir.mkdir(parents=True)
                (sub_dir / "config.yaml").write_text(sub.dump())
                sub_run = Run(sub_dir)
                task = CILTask(
                    data,
                    strategy,
                    seed,
                    cfg,
                    recipe.model,
                    train.batch_size,
                    recipe.train.epochs,
                    recipe.eval.batch_size,
                    device,
                )
                Trainer(sub, task, sub_run, device=device).fit()
                final = sub_run.metrics["final"]
                result = {"seed": seed, **final, "acc_matrix": task.acc.tolist(), "seconds": round(time.time() - t, 1)}
                atomic_write_text(done, json.dumps(result))
                results.setdefault(strategy, []).append(result)
                run.log(
                    f"{strategy} seed {seed}: "
                    + ", ".join(f"{k} {final[k]:.2f}" for k in final)
                    + f" [{time.time() - t:.0f}s]"
                )
        self._write(run, data, results, time.time() - t0)
        return run

    def _write(self, run: Run, data: Prepared, results: dict, seconds: float) -> None:
        recipe = self.recipe
        summary = {
            s: {k: _mean_std([r[k] for r in rs]) for k in ("avg_acc", "last_acc", "forgetting")}
            for s, rs in results.items()
        }
        tasks = task_splits(len(data.test.classes), recipe.method.n_tasks, recipe.method.task_sizes)
        counts = [len(x) for x in _by_task(data.test.labels, tasks)]
        run.metrics.update(
            {
                "recipe": recipe.name,
                "profile": recipe.profile,
                "paper": recipe.paper.model_dump(),
                "data": data.info,
                "final": {f"{s}/{k}": v[0] for s, m in summary.items() for k, v in m.items()},
                "std": {f"{s}/{k}": v[1] for s, m in summary.items() for k, v in m.items()},
                "runs": results,
                "test_counts": counts,
                "wall_seconds": round(seconds, 1),
            }
        )
        run.save_metrics()
        plot_study(run.dir / "curves.png", results, counts, title=f"{recipe.name} ({recipe.profile})")
        table = study_table(summary, recipe.paper, len(next(iter(results.values()))))
        atomic_write_text(
            run.dir / "report.md",
            f"# {recipe.name} ({recipe.profile or 'default'})\n\n{table}\n\n"
            f"Data: {json.dumps(data.info)}. Wall time {seconds:.0f}s.\n",
        )
        run.log("results:\n" + table)


def _by_task(labels: list[int], tasks: list[list[int]]) -> list[list[int]]:
    """Example indices of each task (by the task of their class)."""
    task_of = {c: t for t, cs in enumerate(tasks) for c in cs}
    out: list[list[int]] = [[] for _ in tasks]
    for i, y in enumerate(labels):
        out[task_of[y]].append(i)
    return out


def seen_accuracy(acc: np.ndarray, counts: list[int]) -> list[float]:
    """Accuracy on the classes seen so far after each phase (the curve whose mean is avg_acc)."""
    acc, n = np.asarray(acc, dtype=np.float64), np.asarray(counts, dtype=np.float64)
    return [float((acc[i, : i + 1] * n[: i + 1]).sum() / n[: i + 1].sum()) for i in range(len(acc))]


def study_table(summary: dict, paper: PaperConfig, n_seeds: int) -> str:
    """Markdown: one row per strategy, mean ± std over seeds, and the paper's numbers where known."""
    rows = [
        "| strategy | avg incremental acc | last acc | forgetting | paper avg acc | paper last acc |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for s, m in summary.items():
        cells = [f"{m[k][0]:.2f} ± {m[k][1]:.2f}" for k in ("avg_acc", "last_acc", "forgetting")]
        p = [paper.metrics.get(f"{s}/{k}") for k in ("avg_acc", "last_acc")]
        rows.append(
            f"| {s} | " + " | ".join(cells) + " | " + " | ".join("—" if v is None else f"{v:.2f}" for v in p) + " |"
        )
    return (
        "\n".join(rows)
        + f"\n\nmean ± std over {n_seeds} seed(s); paper: {paper.source}"
        + (f" ({paper.setting})" if paper.setting else "")
    )


def plot_study(path: Path, results: dict, counts: list[int], title: str = "") -> None:
    """Left: accuracy on the classes seen so far after each task (mean ± std over seeds).
    Right: accuracy on each task's classes after the last task."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4))
    width = 0.8 / max(len(results), 1)
    for k, (s, rs) in enumerate(results.items()):
        curves = np.array([seen_accuracy(np.array(r["acc_matrix"]), counts) for r in rs])
        x = np.arange(1, curves.shape[1] + 1)
        ax1.plot(x, curves.mean(0), marker="o", label=s)
        ax1.fill_between(x, curves.mean(0) - curves.std(0), curves.mean(0) + curves.std(0), alpha=0.2)
        last = np.array([np.array(r["acc_matrix"])[-1] for r in rs])
        ax2.bar(x + (k - (len(results) - 1) / 2) * width, last.mean(0), width, yerr=last.std(0), label=s)
    ax1.set(title="accuracy on the classes seen so far", xlabel="after task", ylabel="accuracy (%)")
    ax2.set(title="per-task accuracy after the last task", xlabel="task", ylabel="accuracy (%)")
    ax1.legend(fontsize=8)
    ax2.legend(fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
