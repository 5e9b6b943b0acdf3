"""Mini-batch MEOW / AdaMEOW: batches of target nodes with sampled meta-path neighbourhoods.

The encoder is :class:`~cl_domains.hetgraph.encoder.MEOWEncoder` (same parameters, same exported model); only
its graph operators are replaced by sampled ones. For a batch ``B``, per meta-path ``m``:

* the 2-layer GCN becomes a 2-hop mean over ``{i} + sampled meta-path neighbours of i``
  (:class:`~cl_domains.hetgraph.sampling.MetaPathSampler`, fan-outs per hop): layer 2 at ``B``, layer 1 at
  ``S1 = B + N(B)``, fine-view inputs at ``S2 = S1 + N(S1)``;
* each context mean (``mean_{c in ctx_l(i)} h_c``) is the mean over the nodes of level ``l`` of ``i``'s sample
  tree;
* the masked view redraws a fraction ``feat_mask`` of the target features' non-zeros to zero and drops a
  fraction ``adj_mask[m]`` of the sampled neighbours, per batch;
* the coarse view is the same 2-hop mean over the neighbours of every meta-path, on the target features;
* the GCN output is standardised over the batch instead of the whole graph.

Memory per batch grows with ``|S2| <= |B| (1 + sum_m k_m)^2`` rows of ``hidden`` floats (``k_m`` the product
of meta-path ``m``'s fan-outs) and ``|B|^2`` for the contrastive logits: nothing is ``N x N``.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..core import distributed as D
from ..core.modes import eval_mode
from ..core.rng import generator
from .encoder import MEOWEncoder
from .sampling import MetaPathSampler

__all__ = ["FeatureStore", "SampledGraph", "StreamingKMeans", "estimate_minibatch_memory", "target_batches"]


class FeatureStore:
    """Row access to every node type's features: dense rows, CSR rows of sparse features, or one-hot ids
    (a type without ``x``: its input layer is an embedding table)."""

    def __init__(self, data, types):
        self.kind: dict[str, str] = {}
        self.x: dict[str, object] = {}
        self.width: dict[str, int] = {}
        for t in types:
            x = data[t].get("x")
            self.width[t] = int(x.shape[1]) if x is not None else int(data[t].num_nodes)
            if x is None:
                self.kind[t], self.x[t] = "onehot", None
            elif x.is_sparse:
                x = x.coalesce()
                i = x.indices().numpy()
                self.kind[t] = "csr"
                self.x[t] = sp.csr_matrix((x.values().float().numpy(), (i[0], i[1])), shape=tuple(x.shape))
            else:
                self.kind[t], self.x[t] = "dense", x.float()

    def rows(self, t: str, ids: Tensor, mask: float = 0.0, gen: torch.Generator | None = None) -> Tensor:
        """Feature rows ``ids`` of type ``t`` (sparse COO for sparse features); ``mask``: zero that fraction of
        the non-zeros (drawn from ``gen``)."""
        kind = self.kind[t]
        if kind == "dense":
            x = self.x[t][ids]
            if mask > 0:
                x = x * (torch.rand(x.shape, generator=gen) >= mask)
            return x
        if kind == "onehot":
            n = ids.numel()
            idx = torch.stack([torch.arange(n), ids])
            vals = torch.ones(n)
        else:
            m = self.x[t][ids.numpy()].tocoo()
            idx = torch.from_numpy(np.vstack([m.row, m.col]).astype(np.int64))
            vals = torch.from_numpy(m.data.astype(np.float32))
        if mask > 0:
            vals = vals * (torch.rand(vals.shape, generator=gen) >= mask)
        return torch.sparse_coo_tensor(idx, vals, (ids.numel(), self.width[t]), check_invariants=False)

    def linear(self, layer: nn.Linear, t: str, ids: Tensor, mask: float = 0.0, gen=None) -> Tensor:
        """``layer(x[ids])`` without building a dense block of sparse or one-hot rows."""
        if self.kind[t] == "onehot" and mask == 0:
            return layer.weight.T[ids] + layer.bias
        x = self.rows(t, ids, mask, gen)
        return torch.sparse.mm(x, layer.weight.T) + layer.bias if x.is_sparse else layer(x)


def _positions(sorted_ids: Tensor, ids: Tensor) -> tuple[Tensor, Tensor]:
    """Positions of ``ids`` in ``sorted_ids`` (``0`` where ``ids`` is ``-1``) and the mask of valid ids."""
    valid = ids >= 0
    return torch.searchsorted(sorted_ids, ids.clamp_min(0)) * valid, valid


def _union(first: Tensor, more: list[Tensor]) -> Tensor:
    ids = torch.cat([first.reshape(-1)] + [m.reshape(-1) for m in more])
    return torch.unique(ids[ids >= 0])


def _mean_agg(x: Tensor, self_pos: Tensor, nb_pos: Tensor, nb_valid: Tensor) -> Tensor:
    """Row ``r``: mean of ``x[self_pos[r]]`` and ``x[nb_pos[r, j]]`` over the valid ``j``."""
    w = nb_valid.to(x.dtype)
    s = x[self_pos] + (x[nb_pos] * w.unsqueeze(-1)).sum(1)
    return s / (1.0 + w.sum(1, keepdim=True))


class SampledGraph:
    """Sampled forward passes of a :class:`MEOWEncoder` over batches of target nodes.

    Args:
        data: the ``HeteroData``.
        target: the target node type.
        hops: per meta-path, its resolved hops.
        fanouts: per meta-path, draws per node at each hop.
        feat_mask: fraction of the target features' non-zeros zeroed in the masked view.
        adj_mask: per meta-path, fraction of sampled neighbours dropped in the masked view.
    """

    def __init__(self, data, target: str, hops, fanouts, feat_mask: float, adj_mask: list[float]):
        self.target, self.n = target, int(data[target].num_nodes)
        self.sampler = MetaPathSampler(data, hops, fanouts)
        types = {target} | {t for m in range(len(hops)) for t in self.sampler.context_types(m)}
        self.store = FeatureStore(data, types)
        self.feat_mask, self.adj_mask = feat_mask, list(adj_mask)

    def _h(self, enc: MEOWEncoder, t: str, ids: Tensor, mask: float = 0.0, gen=None) -> Tensor:
        return F.elu(enc.drop(self.store.linear(enc.fc[t], t, ids, mask, gen)))

    def _context(self, enc: MEOWEncoder, m: int, nodes: Tensor, gen: torch.Generator) -> Tensor:
        """``sum_l W_l^m mean(h over level l of the sample tree)`` for ``nodes`` (dropout as the full path)."""
        types = self.sampler.context_types(m)
        if not types:
            return torch.zeros(nodes.numel(), enc.project.in_features)
        levels = self.sampler.tree(m, nodes, gen, depth=len(types))
        out = 0
        for lin, t, ids in zip(enc.agg[m], types, levels, strict=False):
            uniq = torch.unique(ids[ids >= 0])
            h = self._h(enc, t, uniq)
            pos, valid = _positions(uniq, ids)
            w = valid.to(h.dtype)
            mean = (h[pos] * w.unsqueeze(-1)).sum(1) / w.sum(1, keepdim=True).clamp_min(1.0)
            out = out + enc.drop(lin(mean))
        return out

    def forward(self, enc: MEOWEncoder, batch: Tensor, gen: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
        """``(z, fine projection, coarse projection)`` of the target nodes ``batch``, as
        :meth:`MEOWEncoder.forward` gives for the whole graph."""
        smp, n_paths = self.sampler, len(self.sampler.paths)
        nb1 = [smp.neighbours(m, batch, gen) for m in range(n_paths)]
        s1 = _union(batch, nb1)
        nb2 = [smp.neighbours(m, s1, gen) for m in range(n_paths)]
        s2 = _union(s1, nb2)
        b_in_s1, _ = _positions(s1, batch)
        s1_in_s2, _ = _positions(s2, s1)
        p1 = [_positions(s1, nb) for nb in nb1]
        p2 = [_positions(s2, nb) for nb in nb2]
        training = enc.training
        h = self._h(enc, self.target, s2)
        h_masked = self._h(enc, self.target, s2, self.feat_mask, gen)

        def gcn(x: Tensor, l2: tuple[Tensor, Tensor], l1: tuple[Tensor, Tensor]) -> Tensor:
            g = enc.gcn
            y = g.gc1.act(_mean_agg(g.gc1.drop(x @ g.gc1.weight), s1_in_s2, *l2))
            z = _mean_agg(g.gc2.drop(y @ g.gc2.weight), b_in_s1, *l1)
            return (z - z.mean()) / torch.sqrt(z.var(unbiased=False) + 1e-5)

        def dropped(pv: tuple[Tensor, Tensor], rate: float) -> tuple[Tensor, Tensor]:
            if rate <= 0:
                return pv
            return pv[0], pv[1] & (torch.rand(pv[1].shape, generator=gen) >= rate)

        views = []
        for m in range(n_paths):
            ctx = self._context(enc, m, s2, gen)
            views.append(gcn(F.elu(h + ctx), p2[m], p1[m]))
            rate = self.adj_mask[m] if training else 0.0
            views.append(gcn(F.elu(h_masked + ctx), dropped(p2[m], rate), dropped(p1[m], rate)))
        z = enc.att([F.normalize(v, dim=1) for v in views])
        cat = [torch.cat(parts, 1) for parts in zip(*[(p[0], p[1]) for p in p2], strict=False)]
        cat1 = [torch.cat(parts, 1) for parts in zip(*[(p[0], p[1]) for p in p1], strict=False)]
        coarse = gcn(h, (cat[0], cat[1]), (cat1[0], cat1[1]))
        return z, enc.proj(z), enc.proj(coarse)

    def embed_all(self, enc: MEOWEncoder, chunk: int = 4096, seed: int = 0) -> Tensor:
        """Embeddings ``z`` of every target node, layer by layer (eval mode, fixed samples): each view's fine
        inputs for all nodes, then each GCN layer for all nodes from one draw of sampled neighbours per node, so
        the cost is ``N x (neighbours + contexts)`` rows per view, not ``N x (1 + neighbours)^2``. The GCN output is
        standardised over all nodes, as in the full-batch encoder. Memory: a few ``N x hidden`` arrays.

        Args:
            enc: the encoder; chunk: nodes per chunk of every pass; seed: the sampling seed.
        Returns:
            ``[N, hidden]`` float32.
        """
        gen = generator(seed, "embed")
        n, smp = self.n, self.sampler
        chunks = [torch.arange(s, min(s + chunk, n)) for s in range(0, n, chunk)]
        with eval_mode(enc), torch.no_grad():
            # one draw of meta-path neighbours per node and meta-path, shared by both layers and all views
            nbs = [torch.cat([smp.neighbours(m, c, gen) for c in chunks]) for m in range(len(smp.paths))]
            h = torch.cat([self._h(enc, self.target, c) for c in chunks])
            h_masked = torch.cat([self._h(enc, self.target, c, self.feat_mask, gen) for c in chunks])

            def gcn(x: Tensor, nb: Tensor) -> Tensor:
                g, valid = enc.gcn, nb >= 0
                pos = nb.clamp_min(0)
                y = x @ g.gc1.weight
                y = torch.cat([g.gc1.act(_mean_agg(y, c, pos[c], valid[c])) for c in chunks]) @ g.gc2.weight
                z = torch.cat([_mean_agg(y, c, pos[c], valid[c]) for c in chunks])
                return (z - z.mean()) / torch.sqrt(z.var(unbiased=False) + 1e-5)

            views = []
            for m, nb in enumerate(nbs):
                ctx = torch.cat([self._context(enc, m, c, gen) for c in chunks])
                views.append(F.normalize(gcn(F.elu(h + ctx), nb), dim=1))
                views.append(F.normalize(gcn(F.elu(h_masked + ctx), nb), dim=1))
                del ctx
            return enc.att(views)


def target_batches(n: int, batch_size: int, seed: int, epoch: int, world: int = 1) -> list[Tensor]:
    """The epoch's batches of target-node ids (a seeded permutation); a last batch under half the size is
    dropped, and every batch is trimmed to a multiple of ``world`` (sharded over processes)."""
    perm = torch.randperm(n, generator=generator(seed, "batches", epoch))
    out = []
    for s in range(0, n, batch_size):
        b = perm[s : s + batch_size]
        b = b[: b.numel() - b.numel() % world]
        if b.numel() >= max(2, min(batch_size, n) // 2):
            out.append(b)
    return out


class StreamingKMeans:
    """One scikit-learn ``MiniBatchKMeans`` per ``k``, updated with each batch's (global) fine projections;
    the assignments of the batch come from the updated centroids. Every process feeds the same gathered rows,
    so all hold the same centroids."""

    def __init__(self, ks: list[int], seed: int):
        from sklearn.cluster import MiniBatchKMeans

        self.models = [MiniBatchKMeans(n_clusters=k, random_state=seed + i, n_init=1) for i, k in enumerate(ks)]

    def update(self, x: Tensor) -> list[tuple[Tensor, Tensor]]:
        """``[(assignments [B], centroids [k, d])]`` after one ``partial_fit`` on ``x``."""
        from threadpoolctl import threadpool_limits

        a = np.ascontiguousarray(x.detach().float().numpy())
        out = []
        with threadpool_limits(max(torch.get_num_threads(), 1)):
            for km in self.models:
                km.partial_fit(a)
                out.append((torch.as_tensor(km.predict(a), dtype=torch.long), torch.as_tensor(km.cluster_centers_)))
        return out


def gathered_views(fine: Tensor, coarse: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Fine and coarse projections of the global batch (gathered with gradient over processes) and the global
    positions of this process's rows."""
    n_local = fine.shape[0]
    sl = D.local_slice(n_local) if D.world_size() > 1 else slice(0, n_local)
    return D.gather_with_grad(fine), D.gather_with_grad(coarse), torch.arange(sl.start, sl.stop)


# bytes per row of S2 alive in a batch step: per meta-path two fine views of width d (input, GCN layer outputs,
# dropout masks, gradients) ~ 12 d floats, plus the context means; measured on the synthetic benchmark graph
ROW_FLOATS_PER_PATH = 24


def estimate_minibatch_memory(
    data, target: str, hops: list[tuple], fanouts: list[list[int]], batch_size: int, hidden: int, world: int = 1
) -> dict[str, float]:
    """Estimated peak bytes of mini-batch training, without building anything large.

    Args:
        data: the ``HeteroData``; target: the target type; hops: resolved meta-paths.
        fanouts: per meta-path, draws per hop; batch_size: target nodes per (global) batch; hidden: width.
        world: processes (each holds the graph, and embeds ``batch_size / world`` nodes).
    Returns:
        bytes of ``graph`` (edges as CSR and features), ``params`` (weights, gradients and Adam state; a type
        without features is an embedding table), ``batch`` (one step's activations and logits), ``embed``
        (layer-wise inference of every target node) and their sum ``total`` (per process).
    """
    types = {target} | {(e[0][2] if not e[1] else e[0][0]) for path in hops for e in path}
    edges = sum(int(data[e].edge_index.shape[1]) for e in data.edge_types)
    graph = 2 * 16.0 * edges  # CSR per direction used: indices + argsort scratch
    params = 0.0
    for t in types:
        x = data[t].get("x")
        n_t = int(data[t].num_nodes)
        if x is None:
            params += 4 * 4.0 * n_t * hidden
        else:
            graph += 12.0 * x._nnz() if x.is_sparse else 4.0 * x.numel()
            params += 4 * 4.0 * (x.shape[1] if x.dim() > 1 else 1) * hidden
    n = int(data[target].num_nodes)
    local = max(batch_size // max(world, 1), 1)
    k = sum(math.prod(f) for f in fanouts)
    s2 = min(local * (1 + k) ** 2, n)
    ctx = sum(math.prod(f[: i + 1]) for f in fanouts for i in range(len(f) - 1))
    batch = 4.0 * s2 * hidden * (ROW_FLOATS_PER_PATH * len(hops) + 4) + 4.0 * s2 * (k + ctx) * 3 * hidden
    batch += 8 * 4.0 * local * batch_size  # the [local, global] logits, weights and gradients
    embed = 4.0 * n * hidden * 12  # layer-wise inference: the views, the inputs and a layer's outputs, N x hidden each
    return {"graph": graph, "params": params, "batch": batch, "embed": embed, "total": graph + params + batch + embed}


def _sample_gen(ctx) -> torch.Generator:
    """This batch's sampling stream, distinct per process."""
    return generator(ctx.seed, "sample", ctx.epoch, ctx.index, D.rank())


def meow_batch_loss(task, batch: Tensor, ctx) -> tuple[Tensor, dict[str, float]]:
    """MEOW's loss on a batch: coarse anchors of this process against the fine projections of the global batch,
    negatives weighted by streaming k-means clusterings of the global batch, plus ProtoNCE on the global batch."""
    from .losses import cluster_weights, proto_nce

    cfg = task.cfg
    _, fine, coarse = task.sampled.forward(task.encoder, batch, _sample_gen(ctx))
    fine_g, coarse_g, rows = gathered_views(fine, coarse)
    need = cfg.weighted or cfg.proto_weight > 0
    clusterings = task.stream_kmeans.update(fine_g) if need else []
    weights = cluster_weights([a for a, _ in clusterings])[rows] if cfg.weighted else None
    nce = task.objective(coarse, fine_g, positives=rows, neg_weights=weights)
    extras = {"nce": float(nce.detach())}
    loss = nce
    if cfg.proto_weight > 0:
        t = cfg.objective.temperature
        proto = sum(proto_nce(coarse_g, a, c, t) for a, c in clusterings) / len(clusterings)
        loss = loss + cfg.proto_weight * proto
        extras["proto"] = float(proto.detach())
    return loss, extras


def adameow_batch_loss(task, batch: Tensor, ctx) -> tuple[Tensor, dict[str, float]]:
    """AdaMEOW's loss on a batch: fine anchors of this process against the coarse projections of the global
    batch, negatives weighted by the pair-weight MLP."""
    _, fine, coarse = task.sampled.forward(task.encoder, batch, _sample_gen(ctx))
    _, coarse_g, rows = gathered_views(fine, coarse)
    w = task.weights(fine, coarse_g)
    loss = task.objective(fine, coarse_g, positives=rows, neg_weights=w)
    return loss, {"mean_weight": float(w.detach().mean())}


def batch_nce(task, batches: int = 4) -> float:
    """Unweighted coarse-vs-fine InfoNCE over the first ``batches`` batches of epoch 0 (no gradient, eval mode)."""
    vals = []
    with torch.no_grad():
        for i, b in enumerate(target_batches(task.sampled.n, task.recipe.train.batch_size, task.seed, 0)[:batches]):
            _, fine, coarse = task.sampled.forward(task.encoder, b, generator(task.seed, "dev", i))
            vals.append(float(task.objective(coarse, fine)))
    return float(np.mean(vals))
