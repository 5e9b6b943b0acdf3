"""Sequential recommendation: SASRec, CL4SRec and MCLRec with leave-one-out full-ranking evaluation.

Public API::

    from cl_domains.seqrec import SASRecEncoder, read_sequences, LeaveOneOut, evaluate_ranking
    model = SASRecEncoder.load("runs/<run>/model"); model.recommend([12, 7, 301], k=10)

    from cl_domains.seqrec import fit_interactions  # the user's own log (user, item, time), raw ids in and out
    model = fit_interactions(df, user="user_id", item="item_id", time="timestamp"); model.recommend(["B00X"], k=10)
"""

from ..core.registry import register_domain
from . import sasrec  # noqa: F401  (registers the method)
from .augment import AUGMENTATIONS, crop, insert, mask, reorder, similar_items, substitute, two_views
from .cl4srec import CL4SRec
from .data import LeaveOneOut, Sequences, read_sequences
from .evaluate import evaluate_ranking, ranking_metrics, target_ranks
from .fit import fit_interactions
from .interactions import Prepared, prepare_interactions, read_interactions
from .mclrec import MCLRec
from .model import SASRecEncoder
from .task import SeqRecDataConfig, SeqRecEvalConfig, SeqRecModelConfig, SeqRecTask

__all__ = [
    "SASRecEncoder",
    "Sequences",
    "read_sequences",
    "read_interactions",
    "prepare_interactions",
    "Prepared",
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
    "CL4SRec",
    "MCLRec",
]

register_domain("seqrec", model=SeqRecModelConfig, data=SeqRecDataConfig, eval=SeqRecEvalConfig)
