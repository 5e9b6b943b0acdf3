"""Heterogeneous graphs: MEOW and AdaMEOW (self-supervised node embeddings) on any PyG ``HeteroData``
(shipped: HeCo-format ACM and DBLP), evaluated with the HeCo/DMGI linear-probe and clustering protocol.

Public API::

    from cl_domains.hetgraph import MEOW, load_graph, load_heco
    m = MEOW(train={"epochs": 20}).fit(data, target="movie", metapaths=[["movie", "actor", "movie"]])
    z = m.embed(data)                       # numpy float32 [movies, 64]
    m.save("meow-movies")
    z = MEOW.load("meow-movies").embed(load_graph("movies.pt"))   # a torch.save'd HeteroData, read safely

``load_graph`` reads a ``torch.save``d ``HeteroData`` (``torch.load(weights_only=True)`` alone refuses PyG's
classes); ``load_encoder(dir)`` gives the saved torch encoder itself.
"""

from ..core.registry import register_domain
from .adameow import AdaMEOWTask
from .data import (
    SCHEMAS,
    context_incidence,
    load_graph,
    load_heco,
    metapath_counts,
    pathsim_topk,
    read_schema,
    resolve_metapath,
)
from .encoder import MEOWEncoder, prepare
from .estimator import MEOW, AdaMEOW, HetGraphEstimator, load_encoder, read_graph
from .evaluate import cluster_scores, linear_probe
from .meow import MEOWTask
from .task import HetGraphDataConfig, HetGraphEvalConfig, HetGraphModelConfig, HetGraphTask

__all__ = [
    "SCHEMAS",
    "load_heco",
    "load_graph",
    "read_graph",
    "read_schema",
    "resolve_metapath",
    "metapath_counts",
    "context_incidence",
    "pathsim_topk",
    "MEOWEncoder",
    "prepare",
    "linear_probe",
    "cluster_scores",
    "HetGraphTask",
    "MEOWTask",
    "AdaMEOWTask",
    "HetGraphEstimator",
    "MEOW",
    "AdaMEOW",
    "load_encoder",
]

register_domain("hetgraph", model=HetGraphModelConfig, data=HetGraphDataConfig, eval=HetGraphEvalConfig)
