"""Spoken language understanding: class-incremental intent / scenario classification on FSC and
SLURP (COCONUT, Cappellazzo et al. 2024) with real recordings, espeak-ng speech synthesised from the
transcripts, or your own recordings listed in a manifest.

Public API (the estimator verbs of :mod:`cl_domains.core.estimator`)::

    from cl_domains.slu import COCONUT   # or ExperienceReplay, FineTuning, JointTraining
    est = COCONUT().fit("my_commands/train.csv", test="my_commands/test.csv")  # manifests, DataFrames or lists
    est.predict(["turn_on_the_lights.wav"])   # -> ["lights_on"]
    est.embed(["turn_on_the_lights.wav"])     # float32 [1, model.dim] utterance vectors
    est.save("my_model"); COCONUT.load("my_model")
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
from .estimator import COCONUT, ExperienceReplay, FineTuning, JointTraining, SLUEstimator
from .features import log_mel, mel_filterbank
from .losses import mm_loss, nspt_loss
from .model import SLUModel
from .prepare import PreparedSpeech, prepare
from .strategies import STRATEGY_CLASSES, Strategy
from .study import CILStudy
from .synth import Voice, assign_voices, synthesize
from .task import CILTask

register_domain("slu", model=SLUModelConfig, data=SLUDataConfig, eval=SLUEvalConfig)


__all__ = [
    "COCONUT",
    "ExperienceReplay",
    "FineTuning",
    "JointTraining",
    "SLUEstimator",
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
    "PreparedSpeech",
    "nspt_loss",
    "mm_loss",
    "prepare",
]


def __getattr__(name: str):
    if name == "Prepared":
        raise AttributeError(
            "cl_domains.slu.Prepared is now PreparedSpeech (both splits with their features); "
            "cl_domains.seqrec's prepared log is PreparedLog."
        )
    raise AttributeError(f"module 'cl_domains.slu' has no attribute {name!r}")
