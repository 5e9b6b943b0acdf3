"""Sentence embeddings: SimCSE (unsupervised and supervised), DebCSE and MultiCSR, evaluated on STS.

Public API::

    from cl_domains.sentences import SentenceEncoder, evaluate_sts, find_sts_tasks, fit, read_scored_pairs
"""

from ..core.registry import register_domain
from .data import (
    StsPairs,
    find_sts_tasks,
    read_corpus,
    read_scored_pairs,
    read_sick,
    read_sts_year,
    read_stsb,
    read_text_columns,
    read_triplets,
)
from .debcse import DebCSE
from .encoder import POOLINGS, SentenceEncoder
from .evaluate import evaluate_sts, sts_spearman
from .inmemory import fit
from .multicsr import MultiCSR
from .simcse import SimCSE
from .task import SentencesDataConfig, SentencesEvalConfig, SentencesModelConfig, SentenceTask

__all__ = [
    "SentenceEncoder",
    "POOLINGS",
    "evaluate_sts",
    "sts_spearman",
    "StsPairs",
    "find_sts_tasks",
    "read_stsb",
    "read_sts_year",
    "read_sick",
    "read_corpus",
    "read_triplets",
    "read_scored_pairs",
    "read_text_columns",
    "fit",
    "SentenceTask",
    "SimCSE",
    "DebCSE",
    "MultiCSR",
]

register_domain("sentences", model=SentencesModelConfig, data=SentencesDataConfig, eval=SentencesEvalConfig)
