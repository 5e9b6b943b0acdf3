"""COCONUT's two contrastive terms: the method builds their structure, the recipe's objective
(``method.objective`` for NSPT, ``method.mm_objective`` for MM; :class:`~cl_domains.core.objectives.Objective`)
applies its loss to it. The published loss of both is ``info_nce`` at temperature 0.1."""

from __future__ import annotations

import torch
from torch import Tensor

from ..core.objectives import Objective
from ..core.pairs import labels_to_positives

__all__ = ["nspt_loss", "mm_loss"]


def nspt_loss(objective: Objective, student: Tensor, labels: Tensor, teacher: Tensor) -> Tensor:
    """L_NSPT (COCONUT, negative-student positive-teacher) of a batch whose last ``len(teacher)`` rows are
    rehearsal examples: ``student [B, D]`` the model's embeddings of the batch (new-task examples first),
    ``labels [B]`` its classes, ``teacher [M, D]`` the previous model's embeddings of the M rehearsal examples.

    Each rehearsal anchor's positives are the teacher's embeddings of the rehearsal examples of its class, its
    negatives the student's embeddings of the batch examples of other classes (published form, ``info_nce``:
    SupCon L_out, Khosla et al. 2020 eq. 2, over these candidates). Losses with query columns (``nt_xent``,
    ``dcl``, ``dhel``, ``supcon``) take the other rehearsal anchors from the query block instead of the key
    columns, where the core makes them negatives (``supcon``: a positive when of the same class)."""
    m = len(teacher)
    anchors, anchor_labels = student[-m:], labels[-m:]
    keep = len(student) if objective.loss_name == "info_nce" else len(student) - m
    keys, key_labels = torch.cat([teacher, student[:keep]]), torch.cat([anchor_labels, labels[:keep]])
    teacher_pos = labels_to_positives(anchor_labels, exclude_self=False)  # [m, m]: same class, itself included
    student_neg = ~labels_to_positives(anchor_labels, labels[:keep])  # [m, keep]: other classes
    positives = torch.cat([teacher_pos, torch.zeros_like(student_neg)], 1)
    negatives = torch.cat([torch.zeros_like(teacher_pos), student_neg], 1)
    return objective(anchors, keys, positives=positives, negatives=negatives, labels=(anchor_labels, key_labels))


def mm_loss(objective: Objective, audio: Tensor, text: Tensor, phrase_ids: Tensor) -> Tensor:
    """L_MM (COCONUT, multimodal audio-text contrastive, CLIP-style): both directions between audio and transcript
    embeddings; utterances of the same transcript are positives (``supcon``: the transcript ids are the labels)."""
    same = labels_to_positives(phrase_ids, exclude_self=False)
    return objective(audio, text, positives=same, labels=phrase_ids, symmetric=True)
