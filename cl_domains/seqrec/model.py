"""SASRec (Kang & McAuley, 2018) as a sequence encoder, with a recommend API.

Post-LN transformer blocks as in RecBole's SASRec (the MCLRec code base): item + position
embeddings, LayerNorm, dropout, then per block ``LN(x + drop(MHA(x)))`` and
``LN(h + drop(W2 gelu(W1 h)))``, causal attention over the items seen so far.

Speed: sequences are short (Beauty averages 8.9 items against a window of 50), so the position-wise
layers run on the packed real tokens only, a large batch is encoded in a few groups of similar
length (attention and its dropout then cost ~width^2 of each group, not of the longest sequence),
and the last block computes its query only at each sequence's final position, the one whose
output represents the sequence.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_model, save_model
from torch import Tensor, nn

from ..core.errors import UserError
from ..core.modes import eval_mode

__all__ = ["SASRecEncoder"]


class _Block(nn.Module):
    def __init__(self, hidden: int, heads: int, inner: int, dropout: float, attn_dropout: float, eps: float):
        super().__init__()
        if hidden % heads:
            raise ValueError(f"hidden size {hidden} is not divisible by {heads} heads")
        self.heads, self.attn_dropout = heads, attn_dropout
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.out = nn.Linear(hidden, hidden)
        self.norm1 = nn.LayerNorm(hidden, eps=eps)
        self.ff1 = nn.Linear(hidden, inner)
        self.ff2 = nn.Linear(inner, hidden)
        self.norm2 = nn.LayerNorm(hidden, eps=eps)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor, slots: Tensor, shape: tuple[int, int], allowed: Tensor, last: Tensor | None) -> Tensor:
        """``x``: packed tokens ``[N, H]`` living at ``slots`` of a ``B x L`` grid; ``allowed``:
        ``[B, 1, L, L]`` attention mask. With ``last`` (packed index of each sequence's final
        token) only those queries are computed and ``[B, H]`` is returned."""
        (b, length), hidden = shape, x.shape[1]
        grid = x.new_zeros(b * length, 3 * hidden).index_copy(0, slots, self.qkv(x))
        q, k, v = grid.view(b, length, 3, self.heads, hidden // self.heads).permute(2, 0, 3, 1, 4)
        if last is not None:
            ends = slots[last] % length
            q = q[torch.arange(b), :, ends].unsqueeze(2)  # [B, heads, 1, d]
            allowed = allowed[torch.arange(b), :, ends].unsqueeze(2)
            x = x[last]
        ctx = F.scaled_dot_product_attention(
            q, k, v, attn_mask=allowed, dropout_p=self.attn_dropout if self.training else 0.0
        )
        ctx = ctx.transpose(1, 2).reshape(b, -1, hidden)
        ctx = ctx[:, 0] if last is not None else ctx.reshape(b * length, hidden)[slots]
        h = self.norm1(x + self.drop(self.out(ctx)))
        return self.norm2(h + self.drop(self.ff2(F.gelu(self.ff1(h)))))


class SASRecEncoder(nn.Module):
    """Self-attentive sequential recommender. Item ids are ``1..n_items``; 0 pads and
    ``n_items + 1`` is the mask token of the mask augmentation. A model trained on an interaction log also
    knows the user's raw item ids (:meth:`set_vocabulary`)."""

    item_ids: list[str] | None = None  # raw id of internal item j + 1 at index j
    item_counts: list[int] | None = None  # interactions per item in the training log (cold-start ranking)

    def __init__(
        self,
        n_items: int,
        max_len: int = 50,
        hidden: int = 64,
        layers: int = 2,
        heads: int = 2,
        inner: int = 256,
        dropout: float = 0.5,
        attn_dropout: float = 0.5,
        init_std: float = 0.02,
        eps: float = 1e-12,
    ):
        super().__init__()
        self.config = dict(
            n_items=n_items,
            max_len=max_len,
            hidden=hidden,
            layers=layers,
            heads=heads,
            inner=inner,
            dropout=dropout,
            attn_dropout=attn_dropout,
            init_std=init_std,
            eps=eps,
        )
        self.n_items, self.max_len = n_items, max_len
        self.item_emb = nn.Embedding(n_items + 2, hidden, padding_idx=0)
        self.pos_emb = nn.Embedding(max_len, hidden)
        self.norm = nn.LayerNorm(hidden, eps=eps)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(_Block(hidden, heads, inner, dropout, attn_dropout, eps) for _ in range(layers))
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, std=init_std)
            if isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    @property
    def mask_id(self) -> int:
        return self.n_items + 1

    def forward(self, seqs: Tensor, lengths: Tensor, groups: int = 4) -> Tensor:
        """Left-aligned, zero-padded ``seqs [B, L]`` -> one vector per sequence ``[B, H]`` (its last position).
        Batches of 128+ rows are encoded in ``groups`` length-sorted groups (same result, less padding)."""
        if seqs.shape[1] > self.max_len:
            raise ValueError(
                f"sequences of length {seqs.shape[1]} exceed max_len {self.max_len}; keep the last {self.max_len} items"
            )
        if len(lengths) < 128 or groups < 2:
            return self._encode(seqs, lengths)
        order = lengths.argsort()
        out = self.item_emb.weight.new_empty(len(lengths), self.item_emb.embedding_dim)
        parts = [self._encode(seqs[idx, : int(lengths[idx[-1]])], lengths[idx]) for idx in order.chunk(groups)]
        return out.index_put((order,), torch.cat(parts))

    def _encode(self, seqs: Tensor, lengths: Tensor) -> Tensor:
        b, length = seqs.shape
        pos = torch.arange(length, device=seqs.device)
        valid = pos < lengths.unsqueeze(1)
        slots = valid.flatten().nonzero().squeeze(1)
        x = self.item_emb(seqs.flatten()[slots]) + self.pos_emb(slots % length)
        x = self.drop(self.norm(x))
        allowed = (pos.unsqueeze(1) >= pos) & valid[:, None, :]  # causal, real keys only
        allowed = allowed.unsqueeze(1)
        last = torch.cumsum(lengths, 0) - 1
        for i, block in enumerate(self.blocks):
            x = block(x, slots, (b, length), allowed, last if i == len(self.blocks) - 1 else None)
        return x

    def item_vectors(self) -> Tensor:
        """Output embeddings of items ``1..n_items`` (row ``j`` is item ``j + 1``)."""
        return self.item_emb.weight[1 : self.n_items + 1]

    def scores(self, h: Tensor) -> Tensor:
        """Dot-product scores of sequence vectors against every item: ``[B, n_items]``."""
        return h @ self.item_vectors().T

    # ------------------------------------------------------------------ the user's own item ids
    def set_vocabulary(self, item_ids, counts=None) -> None:
        """Name the items with the user's raw ids (``item_ids[j]`` is internal item ``j + 1``; ``counts``: their
        interactions, the cold-start ranking). :meth:`embed` and :meth:`recommend` then speak raw ids."""
        ids = [str(x) for x in item_ids]
        if len(ids) != self.n_items:
            raise ValueError(f"{len(ids)} item ids for a model of {self.n_items} items")
        self.item_ids = ids
        self.item_counts = None if counts is None else [int(c) for c in counts]
        self._index = {x: j + 1 for j, x in enumerate(ids)}

    def _internal(self, history, unknown: str) -> list[int]:
        if self.item_ids is None:
            return list(history)
        out = []
        for x in history:
            j = self._index.get(str(x))
            if j is not None:
                out.append(j)
            elif unknown != "skip":
                raise UserError(
                    f"item {str(x)!r} is not one of the model's {self.n_items:,} items (it was not in the training "
                    "log, or k-core filtering removed it). Remove it from the history, or pass unknown='skip' to "
                    "ignore unknown items (a history with no known item gets the most popular items)."
                )
        return out

    @torch.no_grad()
    def embed(self, histories: list[list]) -> Tensor:
        """Sequence embeddings for item histories (oldest first; the last ``max_len`` are used), in the
        user's raw ids when the model has a vocabulary, else internal ids ``1..n_items``."""
        return self.embed_internal([self._internal(h, "error") for h in histories])

    @torch.no_grad()
    def recommend(self, history: list | list[list], k: int = 10, exclude_seen: bool = True, unknown: str = "error"):
        """Top-``k`` next items for one history or a list of histories (oldest item first).

        With a vocabulary (a model trained on an interaction log) histories and answers are the user's raw ids
        (``list[str]``, a list of lists for several histories); an unknown item raises :class:`UserError`, or
        with ``unknown="skip"`` is ignored, and a history left empty gets the most popular items (cold start).
        Without one, ids are ``1..n_items`` and the answer is a tensor.

        ``k`` must be a positive integer. The answer holds at most ``k`` items per history: with
        ``exclude_seen`` an item of the history is never recommended, so when fewer than ``k`` items are unseen
        every answer has as many items as the history with the fewest unseen items leaves (possibly none)."""
        if unknown not in ("error", "skip"):
            raise UserError(f"recommend(unknown={unknown!r}): use 'error' or 'skip'.")
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise UserError(f"recommend(k={k!r}): k is the number of items to return, a positive integer.")
        many = bool(history) and isinstance(history[0], (list, tuple))
        histories = [self._internal(h, unknown) for h in (history if many else [history])]
        k = min(int(k), self.n_items)
        if exclude_seen:  # never pad an answer with seen items: every history keeps k unseen ones at most
            k = min([k] + [self.n_items - len({i for i in h if 1 <= i <= self.n_items}) for h in histories])
        known = [row for row, h in enumerate(histories) if h]
        if self.item_ids is None or len(known) == len(histories):
            top = self._top(histories, k, exclude_seen)
        else:  # cold start: the histories with no known item get the most popular items
            counts = torch.tensor(self.item_counts or [0] * self.n_items, dtype=torch.float)
            top = counts.topk(k).indices.add(1).repeat(len(histories), 1)
            if known:
                top[known] = self._top([histories[r] for r in known], k, exclude_seen).cpu()
        if self.item_ids is None:
            return top if many else top[0]
        named = [[self.item_ids[j - 1] for j in row] for row in top.tolist()]
        return named if many else named[0]

    def _top(self, histories: list[list[int]], k: int, exclude_seen: bool) -> Tensor:
        scores = self.scores(self.embed_internal(histories))
        if exclude_seen:
            for row, h in enumerate(histories):
                scores[row, torch.as_tensor(h, dtype=torch.long) - 1] = float("-inf")
        return scores.topk(k, dim=1).indices + 1

    @torch.no_grad()
    def embed_internal(self, histories: list[list[int]]) -> Tensor:
        """:meth:`embed` for internal ids ``1..n_items``."""
        seqs, lengths = _pad(histories, self.max_len, self.n_items, self.item_emb.weight.device)
        with eval_mode(self):
            return self(seqs, lengths)

    def save(self, directory: str | Path) -> None:
        """``model.safetensors``, ``config.json`` and, with a vocabulary, ``items.json`` (raw ids and counts)."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        save_model(self, str(d / "model.safetensors"))
        (d / "config.json").write_text(json.dumps({"architecture": "SASRecEncoder", **self.config}, indent=2))
        if self.item_ids is not None:
            (d / "items.json").write_text(json.dumps({"items": self.item_ids, "counts": self.item_counts}))

    @classmethod
    def load(cls, directory: str | Path) -> SASRecEncoder:
        d = Path(directory)
        cfg = json.loads((d / "config.json").read_text())
        cfg.pop("architecture", None)
        model = cls(**cfg)
        load_model(model, str(d / "model.safetensors"))
        if (d / "items.json").is_file():
            vocab = json.loads((d / "items.json").read_text())
            model.set_vocabulary(vocab["items"], vocab.get("counts"))
        return model.eval()


def _pad(histories: list[list[int]], max_len: int, n_items: int, device) -> tuple[Tensor, Tensor]:
    if not histories or any(len(h) == 0 for h in histories):
        raise ValueError("every history needs at least one item")
    tails = [list(h)[-max_len:] for h in histories]
    bad = [i for t in tails for i in t if not 1 <= i <= n_items]
    if bad:
        raise ValueError(f"item id {bad[0]} is out of range 1..{n_items}")
    seqs = torch.zeros(len(tails), max(map(len, tails)), dtype=torch.long)
    for row, t in enumerate(tails):
        seqs[row, : len(t)] = torch.as_tensor(t)
    return seqs.to(device), torch.tensor([len(t) for t in tails], device=device)
