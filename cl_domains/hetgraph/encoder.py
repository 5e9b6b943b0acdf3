"""MEOW's encoders (Yu & Li, SDM 2023, Sec. 4; AdaMEOW, TKDE 2024): per-type input layers,
meta-path-context aggregation (fine-grained view), a shared 2-layer GCN, semantic attention,
the coarse view and the shared projection. :meth:`MEOWEncoder.embed` is the public API: a
trained encoder maps a ``HeteroData`` (same schema) to target-node embeddings.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..core.errors import UserError
from ..core.modes import eval_mode
from .data import SCHEMAS, context_incidence, metapath_counts, node_features, pathsim_topk, resolve_metapath

__all__ = ["GraphInputs", "prepare", "MEOWEncoder", "GCN", "SemanticAttention"]


def _sparse(m: sp.spmatrix) -> Tensor:
    """A torch operand for ``adj @ x``: dense when over 1% full (CPU sparse matmul is slower then), else sparse COO."""
    if m.nnz > 0.01 * m.shape[0] * m.shape[1]:
        return torch.from_numpy(np.asarray(m.toarray(), dtype=np.float32))
    m = m.tocoo()
    idx = torch.from_numpy(np.vstack([m.row, m.col]).astype(np.int64))
    return torch.sparse_coo_tensor(
        idx, torch.from_numpy(m.data.astype(np.float32)), m.shape, check_invariants=False
    ).coalesce()


def _sym_norm(a: sp.spmatrix) -> sp.csr_matrix:
    """``D^-1/2 A D^-1/2`` with ``D`` the row sums (the GCN normalisation, Kipf & Welling 2017, eq. 2)."""
    deg = np.asarray(a.sum(1)).reshape(-1)
    inv = np.where(deg > 0, deg, 1.0) ** -0.5 * (deg > 0)
    d = sp.diags(inv.astype(np.float32))
    return (d @ a @ d).tocsr()


def _row_norm(a: sp.spmatrix) -> sp.csr_matrix:
    deg = np.asarray(a.sum(1)).reshape(-1)
    return (sp.diags((1.0 / np.where(deg > 0, deg, 1.0)).astype(np.float32)) @ a).tocsr()


@dataclass
class GraphInputs:
    """Everything a forward pass needs, derived once from a ``HeteroData``."""

    feats: dict[str, Tensor]  # node type -> features (sparse COO or dense)
    masked_target: Tensor  # target features with a fraction of their non-zeros zeroed
    adjs: list[Tensor]  # per meta-path: PathSim-pruned, count-weighted, symmetric-normalised
    masked_adjs: list[Tensor]  # per meta-path: a fraction of the pruned edges dropped, + I, normalised
    contexts: list[list[tuple[str, Tensor]]]  # per meta-path: (context type, row-normalised incidence)
    coarse_adj: Tensor  # mean of the normalised meta-path adjacencies


def used_types(target: str, hops: list[tuple]) -> set[str]:
    """Node types a set of resolved meta-paths touches (their features enter the encoder)."""
    return {target} | {t for path in hops for (src, _, dst), _ in path for t in (src, dst)}


def prepare(
    data,
    metapaths: dict[str, list],
    nei_max: list[int],
    feat_mask: float,
    adj_mask: list[float],
    seed: int,
    target: str | None = None,
) -> GraphInputs:
    """Meta-path graphs (PathSim top-k), contexts and the fixed masked copies (seeded, as in MEOW). Meta-paths
    are node-type or edge-type lists (see :func:`~cl_domains.hetgraph.data.resolve_metapath`), all from and to
    ``target`` (default: where the first one starts)."""
    if len(nei_max) != len(metapaths) or len(adj_mask) != len(metapaths):
        raise UserError(
            f"model.nei_max and model.adj_mask need one value per meta-path ({', '.join(metapaths)}); "
            f"got {len(nei_max)} and {len(adj_mask)}."
        )
    rng = np.random.default_rng(seed)
    if target is None:
        first = next(iter(metapaths.values()))[0]
        target = first if isinstance(first, str) else first[0]
    hops = [resolve_metapath(data, p, target) for p in metapaths.values()]
    adjs, masked, contexts, norm_sum = [], [], [], None
    for path, k, drop in zip(hops, nei_max, adj_mask, strict=False):
        top = pathsim_topk(metapath_counts(data, path), k)
        norm = _sym_norm(top)
        adjs.append(_sparse(norm))
        norm_sum = norm if norm_sum is None else norm_sum + norm
        # edge masking (MEOW's augmentation): drop a fraction of the non-self-loop edges, add I
        off = sp.triu(top, 1) + sp.tril(top, -1)
        off = off.tocoo()
        keep = rng.permutation(off.nnz)[int(drop * off.nnz) :]
        kept = sp.csr_matrix((np.ones(keep.size, np.float32), (off.row[keep], off.col[keep])), shape=top.shape)
        masked.append(_sparse(_sym_norm(kept + sp.identity(top.shape[0], np.float32, format="csr"))))
        contexts.append([(t, _sparse(_row_norm(inc))) for t, inc in context_incidence(data, path)])
    x = node_features(data, target)
    xm = x.coalesce() if x.is_sparse else x.clone()
    vals = xm.values().clone() if x.is_sparse else xm.view(-1)
    nz = torch.nonzero(vals).view(-1)
    drop = torch.from_numpy(rng.permutation(nz.numel())[: int(feat_mask * nz.numel())])
    vals[nz[drop]] = 0.0
    if x.is_sparse:
        xm = torch.sparse_coo_tensor(xm.indices(), vals, xm.shape, check_invariants=False).coalesce()
    used = used_types(target, hops)
    feats = {t: node_features(data, t) for t in data.node_types if t in used}
    return GraphInputs(feats, xm.float(), adjs, masked, contexts, _sparse((norm_sum / len(metapaths)).tocsr()))


def _linear(layer: nn.Linear, x: Tensor) -> Tensor:
    if x.is_sparse:
        return torch.sparse.mm(x, layer.weight.t()) + layer.bias
    return layer(x)


def _mm(a: Tensor, x: Tensor) -> Tensor:
    return torch.sparse.mm(a, x) if a.is_sparse else a @ x


class GraphConv(nn.Module):
    """``act(A (dropout(X W)))``: one GCN layer on a normalised sparse adjacency."""

    def __init__(self, d_in: int, d_out: int, dropout: float, act: bool):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(d_in, d_out).uniform_(-(d_out**-0.5), d_out**-0.5))
        self.drop = nn.Dropout(dropout)
        self.act = nn.PReLU() if act else nn.Identity()

    def forward(self, x: Tensor, adj: Tensor) -> Tensor:
        return self.act(_mm(adj, self.drop(x @ self.weight)))


class GCN(nn.Module):
    """Two GCN layers, the output standardised over the whole matrix (LayerNorm over [N, d], no affine)."""

    def __init__(self, dim: int, dropout: float):
        super().__init__()
        self.gc1, self.gc2 = GraphConv(dim, dim, dropout, True), GraphConv(dim, dim, dropout, False)

    def forward(self, x: Tensor, adj: Tensor) -> Tensor:
        z = self.gc2(self.gc1(x, adj), adj)
        return (z - z.mean()) / torch.sqrt(z.var(unbiased=False) + 1e-5)


class SemanticAttention(nn.Module):
    """HAN's semantic-level attention (Wang et al. 2019, eqs. 7-9): ``beta = softmax_m(mean_i q^T tanh(W z_i^m + b))``."""

    def __init__(self, dim: int):
        super().__init__()
        self.fc = nn.Linear(dim, dim)
        nn.init.xavier_normal_(self.fc.weight, gain=1.414)
        self.q = nn.Parameter(nn.init.xavier_normal_(torch.empty(1, dim), gain=1.414))

    def forward(self, views: list[Tensor]) -> Tensor:
        scores = torch.stack([(torch.tanh(self.fc(v)).mean(0) * self.q).sum() for v in views])
        beta = torch.softmax(scores, 0)
        return sum(b * v for b, v in zip(beta, views, strict=False))


def _hop_count(path: list) -> int:
    """Hops of a meta-path given as node types (one fewer than the types) or as edge types."""
    return len(path) - 1 if isinstance(path[0], str) else len(path)


class MEOWEncoder(nn.Module):
    """Fine-grained view (MEOW eq. 2-4): ``h_i^m = ELU(h_i + sum_l W_l^m mean_{c in ctx_l^m(i)} h_c)``
    for every meta-path ``m`` and for a copy with masked target features, each encoded by the shared
    GCN on the pruned (resp. edge-masked) meta-path graph and fused by semantic attention into ``z``
    (eq. 5; the evaluated embedding). Coarse view (eq. 1): the GCN on the mean meta-path adjacency of
    the target features. Projection (eq. 6): shared ``tanh(Linear)``, L2-normalised."""

    def __init__(
        self,
        target: str,
        metapaths: dict[str, list],
        feat_dims: dict[str, int],
        hidden: int = 64,
        dropout: float = 0.2,
        nei_max: list[int] | None = None,
        feat_mask: float = 0.3,
        adj_mask: list[float] | None = None,
        mask_seed: int = 0,
    ):
        super().__init__()
        self.target = target
        self.metapaths = {
            name: [p if isinstance(p, str) else list(p) for p in path] for name, path in metapaths.items()
        }
        self.config = dict(
            target=target,
            metapaths=self.metapaths,
            feat_dims=feat_dims,
            hidden=hidden,
            dropout=dropout,
            nei_max=list(nei_max or []),
            feat_mask=feat_mask,
            adj_mask=list(adj_mask or []),
            mask_seed=mask_seed,
        )
        self.fc = nn.ModuleDict({t: nn.Linear(d, hidden) for t, d in feat_dims.items()})
        for lin in self.fc.values():
            nn.init.xavier_normal_(lin.weight, gain=1.414)
        self.agg = nn.ModuleList(
            [
                nn.ModuleList([nn.Linear(hidden, hidden, bias=False) for _ in range(_hop_count(path) - 1)])
                for path in self.metapaths.values()
            ]
        )
        self.drop = nn.Dropout(dropout)
        self.gcn = GCN(hidden, dropout)
        self.att = SemanticAttention(hidden)
        self.project = nn.Linear(hidden, hidden)
        self._cache: tuple[int, GraphInputs] | None = None

    @classmethod
    def from_config(cls, config: dict) -> MEOWEncoder:
        """An encoder from its saved ``config`` (also the older form naming a shipped ``dataset``)."""
        config = dict(config)
        if "dataset" in config:
            schema = SCHEMAS[config.pop("dataset")]
            config.update(target=schema.target, metapaths=schema.metapaths)
        return cls(**config)

    def inputs(self, data) -> GraphInputs:
        """The derived inputs of ``data`` (cached for the last graph seen)."""
        if self._cache is None or self._cache[0] != id(data):
            c = self.config
            self._cache = (
                id(data),
                prepare(data, self.metapaths, c["nei_max"], c["feat_mask"], c["adj_mask"], c["mask_seed"], self.target),
            )
        return self._cache[1]

    def forward(self, g: GraphInputs) -> tuple[Tensor, Tensor, Tensor]:
        """``(z, fine projection, coarse projection)``; ``z`` is the fused fine view."""
        target = self.target
        h = {t: F.elu(self.drop(_linear(self.fc[t], x))) for t, x in g.feats.items()}
        h_masked = F.elu(self.drop(_linear(self.fc[target], g.masked_target)))
        views = []
        for m, ctx in enumerate(g.contexts):
            agg = sum(self.drop(lin(_mm(inc, h[t]))) for lin, (t, inc) in zip(self.agg[m], ctx, strict=False))
            views.append(self.gcn(F.elu(h[target] + agg), g.adjs[m]))
            views.append(self.gcn(F.elu(h_masked + agg), g.masked_adjs[m]))
        z = self.att([F.normalize(v, dim=1) for v in views])
        coarse = self.gcn(h[target], g.coarse_adj)
        return z, self.proj(z), self.proj(coarse)

    def proj(self, z: Tensor) -> Tensor:
        return F.normalize(torch.tanh(self.project(z)), dim=1)

    def embed(self, data) -> Tensor:
        """Target-node embeddings of a ``HeteroData`` with this encoder's node types and meta-paths, in eval mode."""
        with eval_mode(self):
            return self(self.inputs(data))[0]


# N x N float32 arrays alive at the peak of a MEOW / AdaMEOW step (logits, their softmax and gradients, the
# cluster or pair weights and their comparisons): MEOW on a 10k-node synthetic graph peaked at 2.57 GiB RSS,
# about 5 such arrays beyond the interpreter (benchmarks/hetgraph_scale.py); 8 leaves a margin
DENSE_PER_STEP = 8


def estimate_memory(data, target: str, hops: list[tuple], nei_max: list[int]) -> dict[str, float]:
    """Estimated peak bytes of preparing and training on ``data``, without building anything large:
    ``prepare`` (the sparse meta-path count matrices, bounded by ``sum_j deg_j^2`` over the middle hop's
    nodes, 12 bytes a non-zero) and ``train`` (``DENSE_PER_STEP`` N x N float32 arrays, plus the normalised
    meta-path graphs, dense above 1% fill)."""
    n = int(data[target].num_nodes)
    counts = 0.0
    for path in hops:
        half = len(path) // 2
        # walks through the middle node: sum over middle nodes of (paths reaching it)^2 bounds the nnz of H H^T
        deg = np.ones(n)
        for (src, rel, dst), rev in path[:half]:
            ei = data[src, rel, dst].edge_index
            a, b = (ei[1], ei[0]) if rev else (ei[0], ei[1])
            size = data[dst if not rev else src].num_nodes
            deg = np.bincount(b.numpy(), weights=deg[a.numpy()], minlength=size)
        counts += min(float((deg**2).sum()), float(n) * n) * 12
    counts += 512 * n * 28.0  # pathsim_topk's dense row block, its PathSim and argsort
    adjs = 0.0
    for k in nei_max:
        nnz = min(n * k, n * n)
        adjs += 2 * (4.0 * n * n if nnz > 0.01 * n * n else 20.0 * nnz)
    total_k = min(sum(nei_max) * n, n * n)
    adjs += 4.0 * n * n if total_k > 0.01 * n * n else 20.0 * total_k
    train = DENSE_PER_STEP * 4.0 * n * n + adjs
    return {"prepare": counts, "train": train, "total": max(counts, train)}
