"""Meta-path neighbourhood sampling from per-relation CSR adjacency (no meta-path product matrix is built).

A meta-path ``t0 -r1-> t1 -r2-> ... -rL-> t0`` is walked hop by hop: from each node, ``fanouts[l]`` neighbours
are drawn uniformly with replacement along relation ``r_{l+1}``. The sample tree of a node has
``prod(fanouts[:l+1])`` nodes at level ``l`` (of type ``t_{l+1}``); its last level is the node's sampled
meta-path neighbours, the levels before it sample its meta-path contexts. A dead end (no neighbour along a
hop) is ``-1`` and stays ``-1`` below. Memory: the relations' edges (two int64 arrays each), nothing per
meta-path.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["CSR", "MetaPathSampler", "default_fanouts"]


class CSR:
    """Out-neighbours of one hop ``((src, rel, dst), reversed)``: ``indptr [n_from + 1]``, ``indices [E]``."""

    def __init__(self, data, hop):
        (src, rel, dst), rev = hop
        ei = data[src, rel, dst].edge_index.cpu()
        a, b = (ei[1], ei[0]) if rev else (ei[0], ei[1])
        n_from = int(data[dst if rev else src].num_nodes)
        self.to_type = src if rev else dst
        order = torch.argsort(a, stable=True)
        self.indices = b[order].contiguous()
        self.indptr = torch.zeros(n_from + 1, dtype=torch.long)
        self.indptr[1:] = torch.cumsum(torch.bincount(a, minlength=n_from), 0)

    @property
    def degree(self) -> Tensor:
        return self.indptr[1:] - self.indptr[:-1]

    def sample(self, nodes: Tensor, fanout: int, gen: torch.Generator) -> Tensor:
        """``[len(nodes), fanout]`` neighbours drawn uniformly with replacement; ``-1`` for a node that is
        ``-1`` or has no neighbour."""
        ok = nodes >= 0
        u = nodes.clamp_min(0)
        start, deg = self.indptr[u], self.indptr[u + 1] - self.indptr[u]
        r = torch.rand(nodes.shape[0], fanout, generator=gen)
        pick = start[:, None] + (r * deg[:, None]).long()
        valid = ok[:, None] & (deg[:, None] > 0)
        out = self.indices[pick.clamp(max=max(self.indices.numel() - 1, 0))] if self.indices.numel() else pick
        return torch.where(valid, out, torch.full_like(out, -1))


def default_fanouts(hops: list[tuple]) -> list[int]:
    """5 draws at the first hop, one at every later hop: five random walks along the meta-path."""
    return [5] + [1] * (len(hops) - 1)


class MetaPathSampler:
    """Sample trees of target nodes along each meta-path.

    Args:
        data: the ``HeteroData``.
        hops: per meta-path, its resolved hops (:func:`~cl_domains.hetgraph.data.resolve_metapath`).
        fanouts: per meta-path, the draws per node at each hop (``len(fanouts[m]) == len(hops[m])``).
    """

    def __init__(self, data, hops: list[tuple], fanouts: list[list[int]]):
        cache: dict = {}
        self.paths = []
        for path in hops:
            csrs = []
            for hop in path:
                if hop not in cache:
                    cache[hop] = CSR(data, hop)
                csrs.append(cache[hop])
            self.paths.append(csrs)
        self.fanouts = [list(f) for f in fanouts]
        self.edges_bytes = sum(c.indices.numel() * 8 + c.indptr.numel() * 8 for c in cache.values())

    def neighbours_per_node(self, m: int) -> int:
        return math.prod(self.fanouts[m])

    def tree(self, m: int, nodes: Tensor, gen: torch.Generator, depth: int | None = None) -> list[Tensor]:
        """Levels ``0 .. depth-1`` (default: every hop) of the sample trees of ``nodes``: level ``l`` is
        ``[len(nodes), prod(fanouts[:l+1])]`` node ids of the type the ``l+1``-th hop reaches."""
        levels, cur = [], nodes
        for csr, f in list(zip(self.paths[m], self.fanouts[m], strict=False))[: depth if depth is not None else None]:
            nxt = csr.sample(cur.reshape(-1), f, gen).reshape(nodes.shape[0], -1)
            levels.append(nxt)
            cur = nxt
        return levels

    def neighbours(self, m: int, nodes: Tensor, gen: torch.Generator) -> Tensor:
        """Sampled meta-path neighbours ``[len(nodes), prod(fanouts[m])]`` (target ids, ``-1`` for none)."""
        return self.tree(m, nodes, gen)[-1]

    def context_types(self, m: int) -> list[str]:
        """Node types of the meta-path's contexts (every hop's end but the last)."""
        return [c.to_type for c in self.paths[m][:-1]]
