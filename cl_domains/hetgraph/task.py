"""Recipe sections of the heterogeneous-graph domain and the task its methods share (full batch or mini-batch), built from a recipe
(``data.dataset`` / ``data.path``) or on an in-memory graph (``graph=``, what the estimators of
:mod:`cl_domains.hetgraph.estimator` pass)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field, PositiveInt

from ..core import distributed as D
from ..core.errors import UserError
from ..core.objectives import Objective
from ..core.recipe import Recipe, StrictModel
from ..core.task import Task
from .data import (
    SCHEMAS,
    SPLITS,
    check_graph,
    encode_labels,
    load_graph,
    load_heco,
    make_splits,
    node_features,
    resolve_metapath,
)
from .encoder import MEOWEncoder, estimate_memory, used_types
from .evaluate import cluster_scores, linear_probe
from .minibatch import SampledGraph, StreamingKMeans, batch_nce, estimate_minibatch_memory, target_batches
from .sampling import default_fanouts

__all__ = ["HetGraphModelConfig", "HetGraphDataConfig", "HetGraphEvalConfig", "HetGraphTask"]

GiB = 2**30


class HetGraphModelConfig(StrictModel):
    hidden: int = Field(64, gt=0)
    dropout: float = Field(0.2, ge=0, lt=1)
    nei_max: list[int] | None = Field(None, description="PathSim top-k per meta-path (default 50 each)")
    feat_mask: float = Field(
        0.3, ge=0, lt=1, description="fraction of target feature non-zeros zeroed in the masked copy"
    )
    adj_mask: list[float] | None = Field(
        None, description="fraction of pruned meta-path edges dropped, per meta-path (default 0.2 each)"
    )
    mask_seed: int = 0
    memory_limit_gib: float = Field(24.0, gt=0, description="refuse a graph whose estimated peak memory exceeds this")
    batching: Literal["auto", "full", "minibatch"] = Field(
        "auto",
        description="full: the whole graph each step (N x N terms); minibatch: train.batch_size target nodes with "
        "sampled meta-path neighbourhoods; auto: full when its memory estimate fits model.memory_limit_gib",
    )
    fanouts: list[list[PositiveInt]] | None = Field(
        None,
        description="minibatch: per meta-path, neighbours drawn per node at each hop (default 5 at the first hop, "
        "1 after: five random walks)",
    )
    embed_chunk: int = Field(4096, gt=0, description="minibatch: target nodes per chunk when embedding every node")


class HetGraphDataConfig(StrictModel):
    dataset: str | None = Field(None, description="a shipped graph: acm or dblp (schema cards datasets/hetgraph/)")
    path: str | None = Field(
        None, description="a torch.save'd HeteroData (.pt) or the schema file (.yaml) of a HeCo-format folder"
    )
    folder: str | None = Field(None, description="a HeCo-format data/<dataset> folder instead of the card's files")
    target: str | None = Field(None, description="node type to embed (default: the schema's)")
    metapaths: list[list[str | list[str]]] | None = Field(
        None, description="meta-paths from and to the target: lists of node types or of [src, relation, dst]"
    )
    trust_pickle: bool = Field(
        False,
        description="data.path .pt: unpickle fully (can run code: only files you trust) when a safe load refuses it",
    )


class HetGraphEvalConfig(StrictModel):
    lr: float = Field(0.01, gt=0, description="linear probe Adam learning rate (HeCo: acm 0.05, dblp 0.01)")
    weight_decay: float = Field(0.0, ge=0)
    repeats: int = Field(50, gt=0)
    steps: int = Field(200, gt=0)
    rates: list[PositiveInt] = Field(
        default_factory=lambda: list(SPLITS), description="labelled nodes per class of the probe's training split"
    )
    dev_repeats: int = Field(2, gt=0, description="probe repeats of the per-checkpoint validation score")
    cluster_runs: int = Field(10, gt=0)


def load_data(d: HetGraphDataConfig, data_root, graph=None) -> tuple[Any, str, dict[str, list]]:
    """The recipe's graph (or the in-memory ``graph``: its shipped schema, if any, then the recipe's ``target`` and
    ``metapaths``), target node type and meta-paths (named)."""
    schema = None
    if graph is not None:
        data, schema = graph, SCHEMAS.get(str(getattr(graph, "dataset", None)))
    elif (d.dataset is None) == (d.path is None):
        raise UserError(
            "recipe data: give exactly one of data.dataset (a shipped graph: "
            f"{', '.join(SCHEMAS)}) and data.path (a torch.save'd HeteroData .pt, or a HeCo-format schema .yaml)."
        )
    elif d.dataset is not None:
        if d.dataset not in SCHEMAS:
            raise UserError(f"data.dataset {d.dataset!r} is not a shipped graph; choose one of: {', '.join(SCHEMAS)}.")
        schema, data = SCHEMAS[d.dataset], load_heco(d.dataset, data_root, d.folder)
    elif d.path.endswith((".yaml", ".yml")):
        from .data import read_schema

        schema = read_schema(d.path)
        data = load_heco(d.path, data_root, d.folder)
    else:
        data = load_graph(d.path, trust_pickle=d.trust_pickle)
    target = d.target or (schema.target if schema else None)
    metapaths = d.metapaths if d.metapaths is not None else (list(schema.metapaths.values()) if schema else None)
    if target is None or not metapaths:
        where, how = (
            ("the graph given to fit", "target= and metapaths= to fit")
            if graph is not None
            else (f"data.path {d.path}", "data.target and data.metapaths")
        )
        raise UserError(
            f"{where}: give {how} (target: a node type of {', '.join(data.node_types)}; meta-paths: e.g. "
            "[[target, other, target]])."
        )
    names = list(schema.metapaths) if schema and d.metapaths is None else None
    return data, target, _named(metapaths, names)


def _named(metapaths, names=None) -> dict[str, list]:
    if isinstance(metapaths, dict):
        return dict(metapaths)
    if isinstance(metapaths, (str, tuple)) or not metapaths or isinstance(metapaths[0], str):
        raise UserError(f"metapaths must be a list of meta-paths (each a list of node types), got {metapaths!r}.")
    out = {}
    for i, p in enumerate(metapaths):
        name = "-".join(t if isinstance(t, str) else t[1] for t in p) if p else str(i)
        out[name if name not in out else f"{name}#{i}"] = list(p)
    return out


class HetGraphTask(Task):
    """Full-batch training (one batch per epoch: the whole graph, ``None`` as the batch) or mini-batch training
    (``model.batching``; batches of target-node ids, see :mod:`.minibatch`). Model selection on
    the validation Macro-F1 of a small linear probe (mean over the label rates); a graph without labels is
    selected on the negative InfoNCE of the two views instead and reports embeddings only."""

    dev_metric = "val_macro_f1"
    gathers_negatives = True  # mini-batch losses gather the global batch's keys themselves (several processes)

    def __init__(self, recipe: Recipe | None = None, data_root=None, device: torch.device | None = None, *, graph=None):
        self.device = device
        if recipe is None:
            return
        data, target, metapaths = load_data(recipe.data, data_root, graph)
        self._setup(recipe, data, target, metapaths)

    # ------------------------------------------------------------------ set-up
    def _setup(self, recipe: Recipe, data, target: str, metapaths: dict[str, list]) -> None:
        self.recipe, self.cfg, self.seed = recipe, recipe.method, recipe.train.seed
        self.data, self.target = data, target
        check_graph(data)  # node counts, edge ids and features checked before anything is sized from them
        if target not in data.node_types:
            raise UserError(
                f"target node type {target!r} is not in the graph (node types: {', '.join(data.node_types)})."
            )
        hops = [resolve_metapath(data, p, target) for p in metapaths.values()]
        m, n = recipe.model, data[target].num_nodes
        nei_max = m.nei_max if m.nei_max is not None else [50] * len(metapaths)
        adj_mask = m.adj_mask if m.adj_mask is not None else [0.2] * len(metapaths)
        need = estimate_memory(data, target, hops, nei_max)
        self.batching = m.batching
        if m.batching == "auto":
            fits = need["total"] <= m.memory_limit_gib * GiB
            self.batching = "full" if fits and D.world_size() == 1 else "minibatch"
        if self.batching == "full" and D.world_size() > 1:
            raise UserError(
                f"model.batching: full trains on one process; with {D.world_size()} processes use "
                "model.batching: minibatch (train.batch_size target nodes, sharded over the processes)."
            )
        if self.batching == "full" and need["total"] > m.memory_limit_gib * GiB:
            parts = ", ".join(f"{k} {v / GiB:.1f}" for k, v in need.items() if k != "total")
            raise UserError(
                f"the graph is too large for full-batch {recipe.method.name}: {n} {target} nodes need an estimated "
                f"{need['total'] / GiB:.1f} GiB ({parts} GiB), over model.memory_limit_gib = {m.memory_limit_gib:g}. "
                "Use model.batching: minibatch (or auto), a subgraph with fewer target nodes (the N x N contrastive "
                "terms grow quadratically), or raise model.memory_limit_gib if the machine has the memory."
            )
        fanouts = None
        if self.batching == "minibatch":
            fanouts = _fanouts(m.fanouts, hops, list(metapaths))
            self._check_minibatch(recipe, data, target, hops, fanouts, need["total"])
        self._labels(recipe)
        used = used_types(target, hops)
        feat_dims = {t: _width(data, t) for t in data.node_types if t in used}
        self.model = self.encoder = MEOWEncoder(
            target, metapaths, feat_dims, m.hidden, m.dropout, nei_max, m.feat_mask, adj_mask, m.mask_seed
        )
        self.graph = self.sampled = None
        if self.batching == "full":
            self.graph = self.encoder.inputs(data)
        else:
            self.sampled = SampledGraph(data, target, hops, fanouts, m.feat_mask, adj_mask)
            ks = getattr(recipe.method, "clusters", None)
            self.stream_kmeans = StreamingKMeans(ks, self.seed) if ks else None
        # every hetgraph method's config has ``objective`` (the contrastive term of its two views, .losses)
        self.objective = Objective(recipe.method.objective)
        self.build_heads()
        if recipe.method.objective.learnable_temperature:  # the temperature trains with the model
            self.model = torch.nn.ModuleDict({"model": self.model, "objective": self.objective})

    def _check_minibatch(self, recipe: Recipe, data, target: str, hops, fanouts, full: float) -> None:
        """Refuse, before anything large is built, a mini-batch setting over the memory limit or too small a
        batch for the method's clusterings."""
        m, bs = recipe.model, recipe.train.batch_size
        need = estimate_minibatch_memory(data, target, hops, fanouts, bs, m.hidden, D.world_size())
        if need["total"] > m.memory_limit_gib * GiB:
            parts = ", ".join(f"{k} {v / GiB:.2f}" for k, v in need.items() if k != "total")
            raise UserError(
                f"the graph is too large for mini-batch {recipe.method.name} at these settings: "
                f"{data[target].num_nodes} {target} nodes need an estimated {need['total'] / GiB:.1f} GiB ({parts} GiB; "
                f"full batch: {full / GiB:.1f} GiB), over model.memory_limit_gib = {m.memory_limit_gib:g}. "
                "Lower train.batch_size or model.fanouts (the batch term grows with batch x (1 + neighbours)^2), "
                "or give the featureless node types features (each is an N x model.hidden embedding table)."
            )
        ks = getattr(recipe.method, "clusters", None) or []
        if ks and max(ks) > bs:
            raise UserError(
                f"method.clusters {ks}: mini-batch k-means needs train.batch_size ({bs}) >= the largest k; "
                "raise train.batch_size or lower method.clusters."
            )

    def _labels(self, recipe: Recipe) -> None:
        """``self.y`` (class ids or None) and ``self.splits[rate] = (train, val, test)``: the graph's own
        ``train_<rate>`` ... index tensors where present, else seeded stratified splits."""
        s, n = self.data[self.target], self.data[self.target].num_nodes
        self.y, self.splits = None, {}
        if s.get("y") is None:
            self.dev_metric = "neg_nce"
            return
        self.y, self.classes = encode_labels(s.y, f"{self.target}.y")
        if self.y.numel() != n:
            raise UserError(f"{self.target}.y has {self.y.numel()} labels but the graph has {n} {self.target} nodes.")
        for r in recipe.eval.rates:
            given = [s.get(f"{part}_{r}") for part in ("train", "val", "test")]
            self.splits[r] = tuple(given) if all(g is not None for g in given) else make_splits(self.y, r, self.seed)

    def build_heads(self) -> None:
        """Methods add trained modules beyond the encoder here."""

    # ------------------------------------------------------------------ loop
    def num_batches(self, epoch: int) -> int:
        return 1 if self.sampled is None else len(self._target_batches(epoch))

    def batches(self, epoch: int):
        if self.sampled is None:
            yield None  # the batch is the whole graph (``self.graph``); the epoch comes from the step context
        else:
            yield from self._target_batches(epoch)

    def _target_batches(self, epoch: int) -> list[torch.Tensor]:
        return target_batches(self.sampled.n, self.recipe.train.batch_size, self.seed, epoch, D.world_size())

    def embeddings(self) -> torch.Tensor:
        if self.sampled is not None:
            return self.sampled.embed_all(self.encoder, self.recipe.model.embed_chunk, self.seed)
        return self.encoder.embed(self.data)

    def evaluate(self, split: str) -> dict[str, float]:
        if self.y is None and self.sampled is not None:
            nce = batch_nce(self)
            return {"neg_nce": -nce} if split == "dev" else {"nce": nce}
        if self.y is None:
            with torch.no_grad():
                _, fine, coarse = self.encoder(self.graph)
                nce = float(self.objective(coarse, fine))  # unweighted: the methods' weights are training aids
            return {"neg_nce": -nce} if split == "dev" else {"nce": nce}
        e, z = self.recipe.eval, self.embeddings()
        if split == "dev":
            scores = [self._probe(z, r, e.dev_repeats)["val_macro_f1"].mean() for r in e.rates]
            return {"val_macro_f1": float(np.mean(scores))}
        return self.test_scores(z)

    def _probe(self, z: torch.Tensor, rate: int, repeats: int) -> dict:
        """The recipe's linear probe on ``z`` at ``rate`` labels per class, ``repeats`` times."""
        e = self.recipe.eval
        return linear_probe(
            z,
            self.y,
            *self.splits[rate],
            repeats=repeats,
            steps=e.steps,
            lr=e.lr,
            weight_decay=e.weight_decay,
            seed=self.seed,
        )

    def test_scores(self, z: torch.Tensor) -> dict[str, float]:
        """The reported test metrics of node embeddings ``z``: the linear probe at every label rate, KMeans."""
        e = self.recipe.eval
        out: dict[str, float] = {}
        for r in e.rates:
            res = self._probe(z, r, e.repeats)
            for k in ("macro_f1", "micro_f1", "auc"):
                out[f"{k}_{r}"] = float(res[k].mean())
                out[f"{k}_{r}_std"] = float(res[k].std())
        out.update(cluster_scores(z, self.y, e.cluster_runs, self.seed))
        return out

    def baselines(self) -> dict[str, dict[str, float]]:
        """``untrained encoder`` (called before training: the encoder at its seeded initialisation) and
        ``raw features`` (the target nodes' input features, same probe and clustering); none without labels."""
        if self.y is None:
            return {}
        x = node_features(self.data, self.target) if self.graph is None else self.graph.feats[self.target]
        if x.is_sparse and x.shape[0] * x.shape[1] > 2**28:  # a dense copy would not fit: no raw baseline
            return {"untrained encoder": self.test_scores(self.embeddings())}
        raw = (x.to_dense() if x.is_sparse else x).float()
        return {"untrained encoder": self.test_scores(self.embeddings()), "raw features": self.test_scores(raw)}

    def export(self, directory: Path) -> None:
        """The model directory of :mod:`cl_domains.hetgraph.modelfiles` (``MEOW.load(directory)`` reads it)."""
        from .modelfiles import write_model

        write_model(self, directory)


def _fanouts(given, hops, names: list[str]) -> list[list[int]]:
    """``model.fanouts`` checked against the meta-paths' hop counts, or the defaults."""
    if given is None:
        return [default_fanouts(h) for h in hops]
    if len(given) != len(hops) or any(len(f) != len(h) for f, h in zip(given, hops, strict=False)):
        want = ", ".join(f"{n}: {len(h)}" for n, h in zip(names, hops, strict=False))
        raise UserError(
            f"model.fanouts {given}: give one list per meta-path with one draw count per hop (hops: {want})."
        )
    return [list(f) for f in given]


def _width(data, ntype: str) -> int:
    x = data[ntype].get("x")
    return int(x.shape[1]) if x is not None else int(data[ntype].num_nodes)
