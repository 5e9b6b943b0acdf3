"""SASRec (Kang & McAuley, 2018), trained on next-item prediction alone: the baseline."""

from __future__ import annotations

from typing import Literal

from ..core.recipe import StrictModel
from ..core.registry import method
from .task import SeqRecTask

__all__ = ["SASRecConfig", "SASRecTask"]


class SASRecConfig(StrictModel):
    """The ``method`` section of SASRec: the next-item loss (``ce`` over all items, or ``bpr``)."""

    name: Literal["sasrec"] = "sasrec"
    loss: Literal["ce", "bpr"] = "ce"


@method("seqrec", "sasrec")
class SASRecTask(SeqRecTask):
    """Plain SASRec (next-item loss only): the baseline of the contrastive methods."""

    config = SASRecConfig
