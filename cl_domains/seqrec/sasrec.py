"""SASRec (Kang & McAuley, 2018), trained on next-item prediction alone: the baseline."""

from __future__ import annotations

from typing import Literal

from ..core.recipe import StrictModel
from ..core.registry import register_method
from .task import SeqRecTask

__all__ = ["SASRecConfig"]


class SASRecConfig(StrictModel):
    name: Literal["sasrec"] = "sasrec"
    loss: Literal["ce", "bpr"] = "ce"


@register_method("seqrec", "sasrec", SASRecConfig)
def build(recipe, data_root, device) -> SeqRecTask:
    return SeqRecTask(recipe, data_root, device)
