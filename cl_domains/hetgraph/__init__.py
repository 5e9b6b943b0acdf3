"""Heterogeneous graphs: MEOW and AdaMEOW (self-supervised node embeddings) on any PyG ``HeteroData``
(shipped: HeCo-format ACM and DBLP), evaluated with the HeCo/DMGI linear-probe and clustering protocol.

Public API::

    from cl_domains.hetgraph import MEOW, load_heco, load_encoder
    z = MEOW(epochs=20).fit(data, target="movie", metapaths=[["movie", "actor", "movie"]]).embed(data)
    z = load_encoder("runs/meow_acm-.../model").embed(load_heco("acm"))   # [4019, 64]
"""

from ..core.registry import register_domain
from .adameow import AdaMEOW
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
from .evaluate import cluster_scores, linear_probe
from .meow import MEOW
from .task import HetGraphDataConfig, HetGraphEvalConfig, HetGraphModelConfig, HetGraphTask, load_encoder

__all__ = [
    "SCHEMAS",
    "load_heco",
    "load_graph",
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
    "load_encoder",
    "MEOW",
    "AdaMEOW",
]

register_domain("hetgraph", model=HetGraphModelConfig, data=HetGraphDataConfig, eval=HetGraphEvalConfig)
