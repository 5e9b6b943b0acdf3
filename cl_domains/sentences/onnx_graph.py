"""The sentence encoder as an ONNX graph: token ids and attention mask -> the pooled embedding ``embed`` returns."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["onnx_graph"]


class _Pooled(nn.Module):
    """``forward(*token tensors)`` -> the encoder's pooling of its backbone's output (inference: no MLP head)."""

    def __init__(self, encoder: nn.Module, names: list[str]):
        super().__init__()
        self.encoder, self.names = encoder, names

    def forward(self, *tensors: Tensor) -> Tensor:
        return self.encoder.pooled(dict(zip(self.names, tensors, strict=False)), (self.encoder.pooling,))[
            self.encoder.pooling
        ]


def onnx_graph(encoder: Any):
    """The :class:`cl_domains.core.export.OnnxGraph` of a :class:`cl_domains.sentences.encoder.SentenceEncoder`.

    Args:
        encoder: the trained or loaded encoder.

    Returns:
        The graph: inputs are the tokenizer's tensors (``input_ids``, ``attention_mask``[, ``token_type_ids``]),
        ``[batch, tokens]`` int64; ``feeds`` tokenises sentences as ``encode`` does.
    """
    from ..core.export import OnnxGraph

    encoder = encoder.cpu().eval()
    example = encoder.tokenize(["an example sentence", "another one"])
    names = list(example)

    def feeds(sentences: Any) -> dict:
        sentences = [sentences] if isinstance(sentences, str) else list(sentences)
        toks = encoder.tokenizer(
            sentences, padding=True, truncation=True, max_length=encoder.max_seq_length, return_tensors="np"
        )
        return {n: toks[n].astype("int64") for n in names}

    dynamic = {n: {0: "batch", 1: "tokens"} for n in names}
    return OnnxGraph(_Pooled(encoder, names), {n: example[n].to(torch.int64) for n in names}, feeds, dynamic)
