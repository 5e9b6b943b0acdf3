"""COCONUT's two contrastive terms on top of :mod:`cl_domains.core.losses`."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..core.losses import contrastive_nll, info_nce
from ..core.pairs import labels_to_positives

__all__ = ["nspt_loss", "mm_loss"]


def nspt_loss(
    anchors: Tensor,
    anchor_labels: Tensor,
    teacher_keys: Tensor,
    teacher_labels: Tensor,
    student_keys: Tensor,
    student_labels: Tensor,
    temperature: float,
) -> Tensor:
    """L_NSPT (COCONUT, negative-student positive-teacher): SupCon (Khosla et al. 2020, eq. 2, L_out)
    of each rehearsal anchor (student embedding) whose positives are the teacher's embeddings of
    the rehearsal examples of its class and whose negatives are the student's embeddings of the
    batch examples of other classes; cosine similarity / temperature."""
    keys = F.normalize(torch.cat([teacher_keys, student_keys]), dim=-1)
    logits = F.normalize(anchors, dim=-1) @ keys.T / temperature
    none_t = torch.zeros(len(anchors), len(teacher_keys), dtype=torch.bool, device=anchors.device)
    none_s = torch.zeros(len(anchors), len(student_keys), dtype=torch.bool, device=anchors.device)
    positives = torch.cat([labels_to_positives(anchor_labels, teacher_labels), none_s], 1)
    negatives = torch.cat([none_t, ~labels_to_positives(anchor_labels, student_labels)], 1)
    return contrastive_nll(logits, positives, negatives).mean()


def mm_loss(audio: Tensor, text: Tensor, phrase_ids: Tensor, temperature: float) -> Tensor:
    """L_MM (COCONUT, multimodal audio-text contrastive, CLIP-style): symmetric InfoNCE between
    audio and transcript embeddings; utterances of the same transcript are positives."""
    same = labels_to_positives(phrase_ids, exclude_self=False)
    return info_nce(audio, text, temperature, positives=same, symmetric=True)
