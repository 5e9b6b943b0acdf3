"""Sentence embeddings: SimCSE (unsupervised and supervised), DebCSE and MultiCSR, evaluated on STS.

Public API::

    from cl_domains.sentences import SimCSE, SupSimCSE, DebCSE, MultiCSR   # the estimators (fit/embed/save/load)
    from cl_domains.sentences import SentenceEncoder, evaluate_sts, find_sts_tasks, read_scored_pairs
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
from .debcse import DebCSETask
from .encoder import POOLINGS, SentenceEncoder
from .estimator import DebCSE, MultiCSR, SentenceEstimator, SimCSE, SupSimCSE
from .evaluate import evaluate_sts, sts_spearman
from .multicsr import MultiCSRTask
from .simcse import SimCSETask
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
    "SentenceTask",
    "SimCSETask",
    "DebCSETask",
    "MultiCSRTask",
    "SentenceEstimator",
    "SimCSE",
    "SupSimCSE",
    "DebCSE",
    "MultiCSR",
]

register_domain("sentences", model=SentencesModelConfig, data=SentencesDataConfig, eval=SentencesEvalConfig)


def fit(*args, **kwargs):
    """Replaced by the estimators :class:`SimCSE`, :class:`SupSimCSE`, :class:`DebCSE` and :class:`MultiCSR`."""
    from ..core.errors import UserError

    raise UserError(
        "cl_domains.sentences.fit(data, method=...) was replaced by the estimators: SimCSE(...).fit(sentences), "
        "SupSimCSE(...).fit(pairs), DebCSE(...).fit(sentences) or MultiCSR(...).fit(triplets), with the settings as "
        "recipe sections, e.g. SimCSE(train={'max_steps': 100, 'batch_size': 32}) (see docs/using.md)."
    )
