"""Sequential recommendation: SASRec, CL4SRec and MCLRec with leave-one-out full-ranking evaluation.

Public API (the estimator verbs of :mod:`cl_domains.core.estimator`)::

    from cl_domains.seqrec import SASRec   # or CL4SRec, MCLRec
    est = SASRec(data={"user": "user_id", "item": "item_id", "time": "timestamp"}).fit(log)  # DataFrame or file
    est.predict([["B00X", "B00Y"]], k=10)  # top-10 next items, the log's own ids in and out
    est.embed([["B00X", "B00Y"]])          # float32 [1, hidden] sequence representations
    est.save("my_model"); SASRec.load("my_model")
"""

from ..core.registry import register_domain
from . import cl4srec, mclrec, sasrec  # noqa: F401  (register the methods)
from .augment import AUGMENTATIONS, crop, insert, mask, reorder, similar_items, substitute, two_views
from .data import LeaveOneOut, Sequences, read_sequences
from .estimator import CL4SRec, MCLRec, SASRec, SeqRecEstimator
from .evaluate import evaluate_ranking, ranking_metrics, target_ranks
from .fit import fit_interactions
from .interactions import PreparedLog, prepare_interactions, read_interactions
from .model import SASRecEncoder
from .task import SeqRecDataConfig, SeqRecEvalConfig, SeqRecModelConfig, SeqRecTask

__all__ = [
    "SASRec",
    "CL4SRec",
    "MCLRec",
    "SeqRecEstimator",
    "SASRecEncoder",
    "Sequences",
    "read_sequences",
    "read_interactions",
    "prepare_interactions",
    "PreparedLog",
    "fit_interactions",
    "LeaveOneOut",
    "evaluate_ranking",
    "ranking_metrics",
    "target_ranks",
    "AUGMENTATIONS",
    "crop",
    "mask",
    "reorder",
    "insert",
    "substitute",
    "two_views",
    "similar_items",
    "SeqRecTask",
    "SeqRecDataConfig",
    "SeqRecEvalConfig",
    "SeqRecModelConfig",
]

register_domain("seqrec", model=SeqRecModelConfig, data=SeqRecDataConfig, eval=SeqRecEvalConfig)


def __getattr__(name: str):
    if name == "Prepared":
        raise AttributeError(
            "cl_domains.seqrec.Prepared is now PreparedLog (a prepared interaction log); "
            "cl_domains.slu's prepared data is PreparedSpeech."
        )
    raise AttributeError(f"module 'cl_domains.seqrec' has no attribute {name!r}")
