"""Recipe sections of the seqrec domain and SASRec, the task CL4SRec and MCLRec build on."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field, model_validator
from torch import Tensor

from ..core import data as core_data
from ..core.baselines import popularity_counts
from ..core.recipe import Recipe, StrictModel
from ..core.rng import generator
from ..core.task import StepContext, Task
from .augment import AUGMENTATIONS, similar_items, two_views
from .data import LeaveOneOut, read_sequences
from .evaluate import evaluate_ranking
from .interactions import PreparedLog, prepare_interactions, read_interactions
from .itemknn import ItemKNN
from .memory import check_memory, memory_estimate
from .model import SASRecEncoder

__all__ = ["SeqRecModelConfig", "SeqRecDataConfig", "SeqRecEvalConfig", "SeqRecTask", "AugmentConfig", "pad_cat"]


class SeqRecModelConfig(StrictModel):
    """The recipe's ``model`` section: the SASRec encoder's shape and dropout."""

    max_len: int = Field(50, gt=0, description="items of history the encoder sees")
    hidden: int = Field(64, gt=0)
    layers: int = Field(2, gt=0)
    heads: int = Field(2, gt=0)
    inner: int = Field(256, gt=0, description="feed-forward width")
    dropout: float = Field(0.5, ge=0, lt=1)
    attn_dropout: float = Field(0.5, ge=0, lt=1)
    init_std: float = Field(0.02, gt=0)


class SeqRecDataConfig(StrictModel):
    """Either ``sequences`` (the S3-Rec/ICLRec one-user-per-line files) or ``interactions`` (the user's own log,
    see :mod:`cl_domains.seqrec.interactions`). One given by ``--set`` (or an estimator's ``data=``) replaces the
    recipe's other, with the keys that only apply to it (``n_items``, ``k_core``)."""

    alternatives = {"sequences": ("n_items",), "interactions": ("k_core",)}

    sequences: str | None = Field(
        None, description="'<dataset>/sequences' or a path: one user per line, 'user item item ...'"
    )
    n_items: int | None = Field(None, gt=0, description="number of items (default: the largest id); sequences only")
    interactions: str | None = Field(
        None, description="interaction log: CSV/TSV/JSONL/parquet or RecBole .inter (optionally .gz), one row per event"
    )
    user: str = Field("user_id", description="the log's user column")
    item: str = Field("item_id", description="the log's item column")
    time: str | None = Field("timestamp", description="the log's time column (numbers or dates); null: file order")
    k_core: int | None = Field(None, ge=1, description="keep users and items with at least k interactions")
    memory_limit_gb: float | None = Field(
        None, gt=0, description="refuse to train when the estimated peak exceeds this (default: free memory)"
    )

    @model_validator(mode="after")
    def _one_source(self):
        if (self.sequences is None) == (self.interactions is None):
            raise ValueError("give exactly one of data.sequences (a one-user-per-line file) or data.interactions")
        if self.interactions is not None and self.n_items is not None:
            raise ValueError("data.n_items applies to data.sequences only; an interaction log counts its items")
        if self.sequences is not None and self.k_core is not None:
            raise ValueError("data.k_core applies to data.interactions only")
        return self


class SeqRecEvalConfig(StrictModel):
    """The recipe's ``eval`` section: leave-one-out full ranking (cut-offs ``ks``, history masking, user sample)."""

    batch_size: int = Field(1024, gt=0, description="users scored at once (memory: batch_size x n_items floats)")
    mask_history: bool = Field(False, description="drop already-seen items from the ranking (ICLRec); MCLRec does not")
    ks: list[int] = Field(default_factory=lambda: [5, 10, 20])
    users: int | None = Field(
        None, gt=0, description="score a fixed sample of this many users (short runs, e.g. the matrix); default: all"
    )


class AugmentConfig(StrictModel):
    """The data augmentations of a contrastive method's two views (``ops``) and their strengths (``ratios``)."""

    ops: list[Literal[tuple(AUGMENTATIONS)]] = Field(default_factory=lambda: ["crop", "mask", "reorder"])  # type: ignore[valid-type]
    ratios: dict[str, float] = Field(
        default_factory=lambda: {"crop": 0.5, "mask": 0.5, "reorder": 0.8, "insert": 0.2, "substitute": 0.2}
    )


def pad_cat(*batches: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
    """Stack ``(seqs, lengths)`` batches of different widths into one, zero-padded."""
    width = max(s.shape[1] for s, _ in batches)
    return (torch.cat([F.pad(s, (0, width - s.shape[1])) for s, _ in batches]), torch.cat([n for _, n in batches]))


class SeqRecTask(Task):
    """SASRec trained on every training prefix (next-item cross-entropy over all items, or BPR with
    one sampled negative); model selection on validation MRR@10, full-ranking test metrics."""

    dev_metric = "MRR@10"

    def __init__(self, recipe: Recipe, data_root: str | Path | None, device: torch.device, frame=None):
        """``frame``: an interaction log already in memory (a pandas DataFrame), used instead of the file
        ``data.interactions`` names (see :class:`cl_domains.seqrec.SASRec` and its siblings)."""
        self.recipe, self.cfg, self.device = recipe, recipe.method, device
        self.batch_size, self.seed = recipe.train.batch_size, recipe.train.seed
        d, m = recipe.data, recipe.model
        self.prepared: PreparedLog | None = None
        if frame is not None or d.interactions is not None:
            kw = dict(user=d.user, item=d.item, time=d.time, k_core=d.k_core)
            if frame is not None:
                self.prepared = prepare_interactions(frame, path=d.interactions or "<DataFrame>", **kw)
            else:
                self.prepared = read_interactions(d.interactions, **kw)
            seqs, source = self.prepared.sequences, f"the interaction log {d.interactions or '<DataFrame>'}"
        else:
            path = core_data.resolve(d.sequences, data_root)
            seqs, source = read_sequences(path, d.n_items), f"the sequences {path}"
        self.data = LeaveOneOut(seqs, m.max_len)
        check_memory(self.memory_estimate(), d.memory_limit_gb, device, source, self.data_summary())
        self.encoder = SASRecEncoder(
            self.data.n_items, m.max_len, m.hidden, m.layers, m.heads, m.inner, m.dropout, m.attn_dropout, m.init_std
        )
        if self.prepared is not None:
            self.encoder.set_vocabulary(self.prepared.item_ids, self.prepared.item_counts)
        self.model = self.encoder
        augment = self.augmentation()
        needs_similar = augment is not None and {"insert", "substitute"} & set(augment.ops)
        self.similar = similar_items(self.data.train_part()) if needs_similar else None

    def data_summary(self) -> str:
        s = self.data.seqs
        text = f"{s.n_users:,} users, {s.n_items:,} items, {len(s.items):,} interactions"
        notes = self.prepared.notes if self.prepared is not None else []
        return text + "".join(f"; {n}" for n in notes)

    def memory_estimate(self) -> dict[str, int]:
        """Estimated bytes of training this task (see :mod:`cl_domains.seqrec.memory`)."""
        m, s = self.recipe.model, self.data.seqs
        return memory_estimate(
            n_users=s.n_users,
            n_items=s.n_items,
            n_interactions=len(s.items),
            n_train=self.data.n_train,
            max_len=m.max_len,
            hidden=m.hidden,
            layers=m.layers,
            heads=m.heads,
            inner=m.inner,
            batch_size=self.batch_size,
            eval_batch_size=self.recipe.eval.batch_size,
            views=1 if self.augmentation() is None else 3,
        )

    def augmentation(self) -> AugmentConfig | None:
        """The data augmentations of the method's two views (``None``: no views, plain SASRec). Contrastive
        subclasses return their ``method.augment`` section; :meth:`batches` then adds ``batch["views"]``."""
        return None

    def num_batches(self, epoch: int) -> int:
        return math.ceil(self.data.n_train / self.batch_size)

    def batches(self, epoch: int):
        """Shuffled training prefixes; two augmented views per sequence when :meth:`augmentation` gives any."""
        augment = self.augmentation()
        order = torch.randperm(self.data.n_train, generator=generator(self.seed, "shuffle", epoch))
        for index, ids in enumerate(order.split(self.batch_size)):
            seqs, lengths, targets = self.data.train_batch(ids)
            batch = {"seqs": seqs, "lengths": lengths, "targets": targets}
            if augment is not None:
                batch["views"] = two_views(
                    seqs,
                    lengths,
                    augment.ops,
                    augment.ratios,
                    generator=generator(self.seed, "views", epoch, index),
                    mask_id=self.encoder.mask_id,
                    similar=self.similar,
                )
            yield batch

    def rec_loss(self, h: Tensor, targets: Tensor, ctx: StepContext) -> Tensor:
        """Next-item loss of SASRec (Kang & McAuley 2018): softmax CE over all items (MCLRec eq. 3) or BPR
        (its negatives drawn from ``ctx.generator("negatives")``)."""
        scores = self.encoder.scores(h)
        if self.cfg.loss == "ce":
            return F.cross_entropy(scores, targets - 1)
        neg = torch.randint(1, self.data.n_items, targets.shape, generator=ctx.generator("negatives")).to(h.device)
        neg = neg + (neg >= targets).long()  # uniform over items other than the target
        pos_s, neg_s = scores.gather(1, (targets - 1)[:, None]), scores.gather(1, (neg - 1)[:, None])
        return -F.logsigmoid(pos_s - neg_s).mean()

    def encode(self, *batches: tuple[Tensor, Tensor]) -> list[Tensor]:
        """One encoder pass over several ``(seqs, lengths)`` batches; one output per batch."""
        seqs, lengths = pad_cat(*batches)
        h = self.encoder(seqs.to(self.device), lengths.to(self.device))
        return list(h.split([len(n) for _, n in batches]))

    def loss(self, batch: dict, ctx: StepContext):
        (h,) = self.encode((batch["seqs"], batch["lengths"]))
        return self.rec_loss(h, batch["targets"].to(self.device), ctx)

    def evaluate(self, split: str) -> dict[str, float]:
        e = self.recipe.eval
        return evaluate_ranking(
            self.encoder,
            self.data,
            "valid" if split == "dev" else "test",
            batch_size=e.batch_size,
            mask_history=e.mask_history,
            ks=tuple(e.ks),
            users=e.users,
        )

    def baselines(self) -> dict[str, dict[str, float]]:
        """``most popular``: every user gets the items ranked by their number of training interactions
        (each user's items before the validation target); ``item-kNN``: items that co-occur with the user's
        last items in training sequences (:class:`~.itemknn.ItemKNN`). Same protocol as :meth:`evaluate`."""
        e = self.recipe.eval
        train = self.data.train_part()
        counts = torch.from_numpy(popularity_counts(train.items, self.data.n_items))
        kw = dict(batch_size=e.batch_size, mask_history=e.mask_history, ks=tuple(e.ks), users=e.users)
        return {
            "most popular": evaluate_ranking(counts, self.data, "test", **kw),  # type: ignore[arg-type]
            "item-kNN": evaluate_ranking(ItemKNN(train), self.data, "test", **kw),  # type: ignore[arg-type]
        }

    def train_stats(self) -> dict[str, float]:
        """For an interaction log: rows read, interactions the k-core filter removed, users dropped (< 3 events)."""
        p = self.prepared
        if p is None:
            return {}
        return {"log rows": p.rows_read, "k-core removed": p.k_core_removed, "users dropped": p.dropped_users}

    def export(self, directory: Path) -> None:
        self.encoder.save(directory)
