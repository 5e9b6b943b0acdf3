"""Recipe schemas of the ``slu`` domain: ``model``, ``data``, ``eval`` and the ``coconut`` method section."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ..core.objectives import objective_config
from ..core.recipe import StrictModel

__all__ = [
    "STRATEGIES",
    "SLUModelConfig",
    "SLUDataConfig",
    "SLUEvalConfig",
    "CoconutConfig",
    "NSPTObjectiveConfig",
    "MMObjectiveConfig",
]

STRATEGIES = ("joint", "coconut", "replay", "finetune")


class SLUModelConfig(StrictModel):
    """The recipe's ``model`` section: the speech encoder's width, depth and heads, and the contrastive projection."""

    dim: int = Field(96, gt=0)
    layers: int = Field(2, gt=0)
    heads: int = Field(4, gt=0)
    ff: int = Field(192, gt=0)
    dropout: float = Field(0.1, ge=0, lt=1)
    proj_dim: int = Field(64, gt=0, description="contrastive projection / text embedding size")


class SLUDataConfig(StrictModel):
    """The recipe's ``data`` section: the corpus format, its two splits, real or synthesised audio, subsets."""

    format: Literal["fsc", "massive", "slurp", "manifest"] = Field(
        ...,
        description="fsc csv, MASSIVE jsonl, SLURP jsonl, or manifest: your own recordings listed in a "
        "CSV/TSV/JSONL/parquet table (audio path, label, optional speaker and transcript)",
    )
    train: str = Field(..., description="'<card>/<file>' or a path")
    test: str = Field(..., description="evaluation split ('<card>/<file>' or a path)")
    audio_root: str | None = Field(
        None,
        description="folder of the real recordings (FSC release folder, SLURP slurp_real/, or the folder "
        "that a manifest's relative paths start from); null: synthesise speech with espeak-ng (fsc, massive, "
        "slurp) or the manifest's own folder (manifest)",
    )
    allow_outside: bool = Field(
        False,
        description="manifest: accept absolute audio paths and relative ones that leave the audio folder "
        "(by default every path must stay inside data.audio_root, or the manifest's folder)",
    )
    audio_column: str = Field("path", description="manifest: column of the audio file paths")
    label_column: str = Field("label", description="manifest: column of the class names")
    speaker_column: str | None = Field(
        "speaker", description="manifest: column of the speaker ids (used when present; null: none)"
    )
    text_column: str | None = Field(
        "transcript",
        description="manifest: column of the transcripts (used when present, by the MM loss; null: none)",
    )
    synth_seed: int = Field(0, description="seed of the speaker -> voice map and of the subsets")
    train_speakers: int | None = Field(None, gt=0, description="keep this many training speakers (seeded)")
    test_speakers: int | None = Field(None, gt=0)
    max_train: int | None = Field(None, gt=0, description="keep this many training utterances (seeded)")
    max_test: int | None = Field(None, gt=0)
    synth_voices: list[int] = Field(
        default_factory=lambda: [40, 8],
        description="corpora without speaker ids (MASSIVE): number of synthetic training / evaluation voices",
    )
    cache_dir: str | None = Field(None, description="synthetic audio and feature cache (default: user cache)")
    workers: int = Field(2, gt=0, description="synthesis processes")


# COCONUT's published terms (both InfoNCE-form, cosine / 0.1): NSPT's class labels are its positives, so supcon applies;
# MM's positives are utterances of the same transcript (the transcript ids are its labels)
NSPTObjectiveConfig = objective_config("coconut", "info_nce", 0.1, labels=True)
MMObjectiveConfig = objective_config("coconut_mm", "info_nce", 0.1, labels=True)
NSPTObjectiveConfig.__doc__ = "COCONUT's ``method.objective``: the loss of the NSPT term (published: InfoNCE, t = 0.1)."
MMObjectiveConfig.__doc__ = "COCONUT's ``method.mm_objective``: the audio-text MM term (published: InfoNCE, t = 0.1)."


class SLUEvalConfig(StrictModel):
    """The recipe's ``eval`` section: utterances scored at once."""

    batch_size: int = Field(256, gt=0)


class CoconutConfig(StrictModel):
    """The ``method`` section of the class-incremental study: strategies and seeds, the task split and class order,
    the rehearsal memory, and COCONUT's NSPT / MM / KD terms."""

    name: Literal["coconut"] = "coconut"
    renamed = {"temperature": "objective.temperature", "mm_temperature": "mm_objective.temperature"}

    strategies: list[Literal["joint", "coconut", "replay", "finetune"]] = Field(
        default_factory=lambda: list(STRATEGIES)
    )
    seeds: list[int] | None = Field(
        default_factory=lambda: [0, 1, 2], description="seeds of every strategy; null: train.seed alone"
    )
    n_tasks: int = Field(6, gt=0)
    task_sizes: list[int] | None = None
    class_order: Literal["seeded", "dataset"] | list[str] = Field(
        "seeded",
        description="order in which classes arrive, cut into tasks: 'seeded' (a permutation drawn from "
        "class_order_seed), 'dataset' (the class ids of the corpus: FSC class-id order, SLURP alphabetical, "
        "manifest labels sorted) or the list of every class name",
    )
    class_order_seed: int = Field(0, description="seed of the 'seeded' class order (the same for every strategy)")
    memory_size: int | None = Field(None, gt=0, description="rehearsal examples (default: memory_fraction of train)")
    memory_fraction: float = Field(0.01, gt=0, le=1)
    memory_selection: Literal["reservoir", "herding"] = "reservoir"
    memory_batch: int | None = Field(
        None, gt=0, description="rehearsal examples added to each batch (default: batch size)"
    )
    nspt_weight: float = Field(
        0.1, ge=0, description="weight of the NSPT loss (supervised contrastive on rehearsal samples)"
    )
    mm_weight: float = Field(0.1, ge=0, description="weight of the MM loss (audio-text contrastive)")
    kd_weight: float = Field(0.0, ge=0, description="optional logit distillation on rehearsal samples")
    objective: NSPTObjectiveConfig = Field(
        default_factory=NSPTObjectiveConfig, description="the loss of the NSPT term (slu/losses.py: nspt_loss)"
    )
    mm_objective: MMObjectiveConfig = Field(
        default_factory=MMObjectiveConfig, description="the loss of the MM term (slu/losses.py: mm_loss)"
    )
    kd_temperature: float = Field(2.0, gt=0)
