"""Spoken language understanding: class-incremental intent / scenario classification on FSC and
SLURP (COCONUT, Cappellazzo et al. 2024) with real recordings, espeak-ng speech synthesised from the
transcripts, or your own recordings listed in a manifest.

Public API::

    from cl_domains.slu import SLUModel, read_wav
    model = SLUModel.load("runs/<run>/strategies/coconut-seed0/model")
    model.predict([read_wav("turn_on_the_lights.wav")])   # -> ["activate|lights|none"]
"""

from ..core.registry import register_domain
from .config import STRATEGIES, CoconutConfig, SLUDataConfig, SLUEvalConfig, SLUModelConfig
from .continual import RehearsalMemory, cl_metrics, class_order, ordered_tasks, task_splits
from .data import (
    FSC_INTENTS,
    SLURP_SCENARIOS,
    Utterances,
    read_fsc_csv,
    read_manifest,
    read_massive_jsonl,
    read_slurp_jsonl,
    read_wav,
)
from .features import log_mel, mel_filterbank
from .losses import mm_loss, nspt_loss
from .model import SLUModel
from .prepare import Prepared, prepare
from .strategies import STRATEGY_CLASSES, Strategy
from .study import CILStudy
from .synth import Voice, assign_voices, synthesize
from .task import CILTask

register_domain("slu", model=SLUModelConfig, data=SLUDataConfig, eval=SLUEvalConfig)


__all__ = [
    "FSC_INTENTS",
    "SLURP_SCENARIOS",
    "Utterances",
    "read_fsc_csv",
    "read_manifest",
    "read_massive_jsonl",
    "read_slurp_jsonl",
    "read_wav",
    "log_mel",
    "mel_filterbank",
    "SLUModel",
    "Voice",
    "assign_voices",
    "synthesize",
    "RehearsalMemory",
    "cl_metrics",
    "class_order",
    "ordered_tasks",
    "task_splits",
    "CILStudy",
    "CoconutConfig",
    "SLUDataConfig",
    "SLUEvalConfig",
    "SLUModelConfig",
    "STRATEGIES",
    "STRATEGY_CLASSES",
    "Strategy",
    "CILTask",
    "Prepared",
    "nspt_loss",
    "mm_loss",
    "prepare",
]
