"""The SASRec encoder as an ONNX graph: padded item ids and lengths -> the sequence vector ``embed`` returns.

The encoder's own forward packs the real tokens (dynamic gathers that tracing would freeze); this module computes
the same blocks on the dense ``[batch, positions]`` grid, where padded positions are never attended to.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["onnx_graph"]


class _Dense(nn.Module):
    def __init__(self, encoder: nn.Module):
        super().__init__()
        self.enc = encoder.cpu().eval()

    def forward(self, items: Tensor, lengths: Tensor) -> Tensor:
        e = self.enc
        b, length = items.shape[0], items.shape[1]
        pos = torch.arange(length, device=items.device)
        x = e.norm(e.item_emb(items) + e.pos_emb(pos))
        valid = pos.unsqueeze(0) < lengths.unsqueeze(1)
        allowed = ((pos.unsqueeze(1) >= pos.unsqueeze(0)).unsqueeze(0) & valid.unsqueeze(1)).unsqueeze(1)
        hidden = x.shape[-1]
        last = (lengths - 1).clamp_min(0)
        for i, block in enumerate(e.blocks):
            q, k, v = block.qkv(x).reshape(b, length, 3, block.heads, -1).permute(2, 0, 3, 1, 4)
            mask = allowed
            if i == len(e.blocks) - 1:  # the last block: only each sequence's final position is needed
                q = torch.gather(q, 2, last.view(-1, 1, 1, 1).expand(-1, q.shape[1], 1, q.shape[3]))
                mask = torch.gather(allowed, 2, last.view(-1, 1, 1, 1).expand(-1, 1, 1, length))
                x = torch.gather(x, 1, last.view(-1, 1, 1).expand(-1, 1, hidden))
            ctx = F.scaled_dot_product_attention(q, k, v, attn_mask=mask).transpose(1, 2).reshape(b, -1, hidden)
            h = block.norm1(x + block.out(ctx))
            x = block.norm2(h + block.ff2(F.gelu(block.ff1(h))))
        return x[:, 0]


def onnx_graph(encoder: Any):
    """The :class:`cl_domains.core.export.OnnxGraph` of a :class:`cl_domains.seqrec.model.SASRecEncoder`.

    Args:
        encoder: the trained or loaded encoder.

    Returns:
        The graph: inputs ``items`` ``[batch, positions]`` int64 (internal ids ``1..n_items``, left-aligned, 0 pads;
        at most ``max_len`` positions) and ``lengths`` ``[batch]`` int64; ``feeds`` maps histories in the model's
        ids (raw ids for a model trained on a log) as ``embed`` does.
    """
    from ..core.errors import UserError
    from ..core.export import OnnxGraph
    from .model import _pad

    def feeds(histories: Any) -> dict:
        internal = [encoder._internal(h, "error") for h in histories]
        try:
            items, lengths = _pad(internal, encoder.max_len, encoder.n_items, "cpu")
        except ValueError as exc:
            raise UserError(f"histories to embed: {exc}.") from None
        return {"items": items.numpy(), "lengths": lengths.numpy()}

    example = {"items": torch.tensor([[1, 2, 0], [1, 1, 1]]), "lengths": torch.tensor([2, 3])}
    return OnnxGraph(_Dense(encoder), example, feeds, {"items": {0: "batch", 1: "positions"}, "lengths": {0: "batch"}})
