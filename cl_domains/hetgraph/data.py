"""HeCo-format heterogeneous graphs (ACM, DBLP) -> ``torch_geometric.data.HeteroData``, meta-path
matrices, meta-path-context incidence and PathSim top-k pruning.

Definitions (all computed from the typed edge lists, never from precomputed meta-path files):

* meta-path counts ``M = R_1 R_2 ... R_L`` (path-instance counts) for a meta-path of types
  ``t_0 .. t_L``, ``R_l`` the 0/1 incidence ``t_{l-1} -> t_l``; HeCo's boolean files are
  ``M > 0``. For DBLP's APCPA/APTPA this is ``(AP PC)(AP PC)^T`` / ``(AP PT)(AP PT)^T``; MEOW's own
  count files for them are not public, so that these equal MEOW's is an unchecked assumption.
* meta-path contexts: for every proper prefix ``t_0 .. t_l`` (``1 <= l < L``) the boolean
  reachability ``bool(R_1 ... R_l)`` (DBLP: ``nei_ap``, ``nei_apc``, ``nei_apcp = bool(AP PC CP)``, ...).
* PathSim (Sun et al. 2011, eq. 1): ``s_ij = 2 M_ij / (M_ii + M_jj)``; each row keeps its
  ``k`` highest-PathSim non-zero entries (ties: lower column first) with their counts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch

from ..core import data as core_data
from ..core.errors import UserError

__all__ = [
    "SCHEMAS",
    "GraphSchema",
    "load_heco",
    "relation",
    "metapath_counts",
    "context_incidence",
    "pathsim_topk",
    "SPLITS",
]

SPLITS = (20, 40, 60)


@dataclass(frozen=True)
class GraphSchema:
    """How a HeCo-format folder maps onto node types, relations and meta-paths."""

    target: str
    features: dict[str, str | None]  # node type -> feature file (None: one-hot identity)
    num_nodes: dict[str, int]
    edges: dict[str, tuple[str, str]]  # edge file -> (source type, destination type), one pair per line
    metapaths: dict[str, tuple[str, ...]]  # name -> node types from target back to target
    num_classes: int
    extra_files: tuple[str, ...] = field(default=())


SCHEMAS: dict[str, GraphSchema] = {
    "acm": GraphSchema(
        target="paper",
        features={"paper": "p_feat", "author": "a_feat", "subject": None},
        num_nodes={"paper": 4019, "author": 7167, "subject": 60},
        edges={"pa": ("paper", "author"), "ps": ("paper", "subject")},
        metapaths={"pap": ("paper", "author", "paper"), "psp": ("paper", "subject", "paper")},
        num_classes=3,
    ),
    "dblp": GraphSchema(
        target="author",
        features={"author": "a_feat", "paper": "p_feat", "term": "t_feat", "conference": None},
        num_nodes={"author": 4057, "paper": 14328, "term": 7723, "conference": 20},
        edges={"pa": ("paper", "author"), "pc": ("paper", "conference"), "pt": ("paper", "term")},
        metapaths={
            "apa": ("author", "paper", "author"),
            "apcpa": ("author", "paper", "conference", "paper", "author"),
            "aptpa": ("author", "paper", "term", "paper", "author"),
        },
        num_classes=4,
    ),
}


# ----------------------------------------------------------------------------- files
def _file(dataset: str, key: str, root: str | Path | None, folder: str | Path | None) -> Path:
    """A verified path: ``folder/<name>`` when the user gives a folder, else the card ``hetgraph_<dataset>/<key>``."""
    if folder is None:
        return core_data.resolve(f"hetgraph_{dataset}/{key}", root)
    folder = Path(folder).expanduser()
    matches = sorted(folder.glob(f"{key}.*"))
    if not matches:
        raise UserError(
            f"{dataset}: file '{key}.*' (npz/npy/txt) is missing from {folder}. "
            f"A HeCo-format folder needs: {', '.join(_keys(SCHEMAS[dataset]))}."
        )
    return matches[0]


def _keys(schema: GraphSchema) -> list[str]:
    feats = [f for f in schema.features.values() if f]
    splits = [f"{s}_{n}" for s in ("train", "val", "test") for n in SPLITS]
    return feats + list(schema.edges) + ["labels"] + splits


def _read_features(path: Path) -> sp.csr_matrix:
    try:
        if path.suffix == ".npz":
            try:
                return sp.csr_matrix(sp.load_npz(path), dtype=np.float32)
            except (ValueError, KeyError, TypeError, AttributeError):  # HeCo's dblp/t_feat.npz is really a .npy array
                pass
        return sp.csr_matrix(np.load(path, allow_pickle=False), dtype=np.float32)
    except Exception as exc:
        raise UserError(f"cannot read node features {path}: {exc}") from None


def _read_edges(path: Path, n_src: int, n_dst: int) -> np.ndarray:
    try:
        pairs = np.loadtxt(path, dtype=np.int64, ndmin=2)
    except (ValueError, OverflowError, EOFError, OSError) as exc:  # OSError, EOFError: a damaged .gz
        raise UserError(f"{path}: every line must be two integer node ids ({str(exc)[:200]}).") from None
    if pairs.shape[1] != 2:
        raise UserError(f"{path}: expected 2 columns per line, found {pairs.shape[1]}.")
    for col, n in ((0, n_src), (1, n_dst)):
        bad = np.flatnonzero((pairs[:, col] < 0) | (pairs[:, col] >= n))
        if bad.size:
            raise UserError(
                f"{path} line {bad[0] + 1}: node id {pairs[bad[0], col]} is out of range 0..{n - 1} (column {col + 1})."
            )
    return pairs.T


def _read_ids(path: Path, n: int) -> np.ndarray:
    try:
        ids = np.load(path, allow_pickle=False).reshape(-1).astype(np.int64)
    except (ValueError, OSError, EOFError, TypeError) as exc:
        raise UserError(f"cannot read split file {path}: {str(exc)[:200]}") from None
    if ids.size == 0 or ids.min() < 0 or ids.max() >= n:
        raise UserError(
            f"split file {path}: node ids must lie in 0..{n - 1} (the labelled nodes); "
            f"found {ids.min() if ids.size else 'none'}..{ids.max() if ids.size else ''}."
        )
    if np.unique(ids).size != ids.size:
        raise UserError(f"split file {path}: a node id occurs more than once.")
    return ids


# ----------------------------------------------------------------------------- loader
def load_heco(dataset: str, root: str | Path | None = None, folder: str | Path | None = None):
    """Read a HeCo-format dataset into a ``HeteroData``.

    Node type ``t`` gets ``x`` (float32, sparse COO when the file is sparse) and ``num_nodes``;
    relation ``(s, "to", d)`` and its reverse get ``edge_index``; the target type gets ``y`` and
    ``train_20 / val_20 / test_20`` (and 40, 60) index tensors. Files come from the dataset card
    ``hetgraph_<dataset>`` under the data root, or from ``folder`` (a HeCo ``data/<dataset>`` copy).
    """
    from torch_geometric.data import HeteroData

    if dataset not in SCHEMAS:
        raise UserError(f"unknown heterogeneous-graph dataset {dataset!r}; choose one of: {', '.join(SCHEMAS)}.")
    schema = SCHEMAS[dataset]
    data = HeteroData()
    sizes = dict(schema.num_nodes)
    for ntype, key in schema.features.items():
        if key is None:
            x = sp.identity(sizes[ntype], dtype=np.float32, format="csr")
        else:
            path = _file(dataset, key, root, folder)
            x = _read_features(path)
            if x.shape[0] != sizes[ntype]:
                raise UserError(
                    f"{path}: {x.shape[0]} rows of {ntype} features, expected {sizes[ntype]} {ntype} nodes."
                )
        data[ntype].x = _to_torch(x)
        data[ntype].num_nodes = sizes[ntype]
    for key, (src, dst) in schema.edges.items():
        ei = torch.from_numpy(_read_edges(_file(dataset, key, root, folder), sizes[src], sizes[dst]))
        data[src, "to", dst].edge_index = ei.contiguous()
        data[dst, "rev_to", src].edge_index = ei.flip(0).contiguous()
    n = sizes[schema.target]
    labels_path = _file(dataset, "labels", root, folder)
    try:
        y = np.load(labels_path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise UserError(f"cannot read labels {labels_path}: {str(exc)[:200]}") from None
    y = y.argmax(1) if y.ndim == 2 else y
    if y.shape[0] != n:
        raise UserError(
            f"labels {labels_path} has {y.shape[0]} entries but the graph has {n} {schema.target} nodes: "
            "labels and node features come from different versions of the dataset."
        )
    data[schema.target].y = torch.as_tensor(y, dtype=torch.long)
    for rate in SPLITS:
        parts = {s: _read_ids(_file(dataset, f"{s}_{rate}", root, folder), n) for s in ("train", "val", "test")}
        for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
            common = np.intersect1d(parts[a], parts[b])
            if common.size:
                raise UserError(
                    f"{dataset} split {rate}: {common.size} nodes are in both {a}_{rate} and {b}_{rate} "
                    f"(e.g. node {common[0]}); the splits must not overlap."
                )
        counts = np.bincount(y[parts["train"]].astype(np.int64), minlength=schema.num_classes)
        if counts.size != schema.num_classes or not np.all(counts == rate):
            raise UserError(
                f"{dataset}: train_{rate} should hold {rate} nodes of each of the {schema.num_classes} "
                f"classes, but has {counts.tolist()} per class under labels {labels_path}: "
                "the split files do not belong to these labels."
            )
        for s, ids in parts.items():
            data[schema.target][f"{s}_{rate}"] = torch.from_numpy(ids)
    data.dataset = dataset
    return data


def _to_torch(x: sp.spmatrix) -> torch.Tensor:
    x = x.tocoo()
    if x.nnz < 0.3 * x.shape[0] * x.shape[1]:
        idx = torch.from_numpy(np.vstack([x.row, x.col]).astype(np.int64))
        return torch.sparse_coo_tensor(idx, torch.from_numpy(x.data), x.shape, check_invariants=False).coalesce()
    return torch.from_numpy(x.toarray())


# ----------------------------------------------------------------------------- meta-paths
def relation(data, src: str, dst: str) -> sp.csr_matrix:
    """0/1 incidence ``src -> dst`` from the HeteroData's edges (either direction stored)."""
    for key in data.edge_types:
        if key[0] == src and key[2] == dst:
            ei = data[key].edge_index.numpy()
            m = sp.csr_matrix(
                (np.ones(ei.shape[1], np.float32), (ei[0], ei[1])), shape=(data[src].num_nodes, data[dst].num_nodes)
            )
            m.data[:] = 1.0  # duplicate edges count once
            return m
    raise UserError(f"the graph has no edges between {src!r} and {dst!r} (edge types: {data.edge_types}).")


def _chain(data, types: tuple[str, ...], boolean: bool) -> sp.csr_matrix:
    m = relation(data, types[0], types[1])
    for a, b in zip(types[1:-1], types[2:]):
        m = m @ relation(data, a, b)
        if boolean:
            m.data[:] = 1.0
    return m.tocsr()


def metapath_counts(data, types: tuple[str, ...]) -> sp.csr_matrix:
    """Path-instance counts of a symmetric meta-path: ``H H^T`` with ``H`` the counts of its first half."""
    half = len(types) // 2
    if len(types) % 2 == 0 or tuple(reversed(types)) != tuple(types):
        raise UserError(f"meta-path {'-'.join(types)} must be symmetric with an odd number of node types.")
    h = _chain(data, types[: half + 1], boolean=False)
    return (h @ h.T).tocsr()


def context_incidence(data, types: tuple[str, ...]) -> list[tuple[str, sp.csr_matrix]]:
    """The meta-path contexts: ``[(last type, bool(R_1..R_l))]`` for every proper prefix of the meta-path."""
    return [(types[k], _chain(data, types[: k + 1], boolean=True)) for k in range(1, len(types) - 1)]


def pathsim_topk(counts: sp.csr_matrix, k: int, chunk: int = 512) -> sp.csr_matrix:
    """Keep, per row, the ``k`` non-zero entries of highest PathSim (their counts as values)."""
    counts = counts.tocsr().astype(np.float32)
    diag = counts.diagonal()
    rows, cols, vals = [], [], []
    for start in range(0, counts.shape[0], chunk):
        block = counts[start : start + chunk].toarray()
        r = np.arange(start, start + block.shape[0])
        denom = diag[r, None] + diag[None, :]
        sim = np.where(block > 0, 2 * block / np.where(denom > 0, denom, 1), -1.0)
        kk = min(k, sim.shape[1])
        # stable descending sort keeps lower column ids first among ties
        top = np.argsort(-sim, axis=1, kind="stable")[:, :kk]
        keep = np.take_along_axis(sim, top, 1) > 0
        ri = np.repeat(r[:, None], kk, 1)[keep]
        ci = top[keep]
        rows.append(ri)
        cols.append(ci)
        vals.append(block[ri - start, ci])
    out = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=counts.shape)
    out.sort_indices()
    return out
