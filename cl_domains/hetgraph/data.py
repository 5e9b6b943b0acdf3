"""Heterogeneous graphs as ``torch_geometric.data.HeteroData``: HeCo-format folders described by a schema
file, ``torch.save``d graphs, meta-path validation, meta-path matrices, meta-path-context incidence, PathSim
top-k pruning, labels and splits.

Definitions (all computed from the typed edge lists, never from precomputed meta-path files):

* a meta-path is a list of node types (``["movie", "actor", "movie"]``: each hop is the one edge type
  between the two types, or the reverse of one) or of edge types (``[("movie", "to", "actor"), ...]``);
  it must start and end at the target node type.
* meta-path counts ``M = R_1 R_2 ... R_L`` (path-instance counts), ``R_l`` the 0/1 incidence of hop ``l``;
  HeCo's boolean files are ``M > 0``. When the second half of the path is the first half reversed this
  is computed as ``H H^T`` (``H`` the counts of the first half). For DBLP's APCPA/APTPA MEOW's own count
  files are not public, so that these equal MEOW's is an unchecked assumption.
* meta-path contexts: for every proper prefix ``t_0 .. t_l`` (``1 <= l < L``) the boolean
  reachability ``bool(R_1 ... R_l)`` (DBLP: ``nei_ap``, ``nei_apc``, ``nei_apcp = bool(AP PC CP)``, ...).
* PathSim (Sun et al. 2011, eq. 1): ``s_ij = 2 M_ij / (M_ii + M_jj)``; each row keeps its
  ``k`` highest-PathSim non-zero entries (ties: lower column first) with their counts.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
import yaml
from pydantic import Field, ValidationError

from ..core import data as core_data
from ..core.errors import UserError
from ..core.paths import inside, is_file
from ..core.recipe import StrictModel
from ..core.rng import generator
from ..core.validate import max_array_bytes

__all__ = [
    "SCHEMAS",
    "HeCoSchema",
    "read_schema",
    "load_heco",
    "load_graph",
    "resolve_metapath",
    "relation",
    "node_features",
    "metapath_counts",
    "context_incidence",
    "pathsim_topk",
    "encode_labels",
    "make_splits",
    "check_graph",
    "SPLITS",
]

SPLITS = (20, 40, 60)
EdgeType = tuple[str, str, str]
Hop = tuple[EdgeType, bool]  # (stored edge type, walked against its direction)
MetaPath = Sequence[str | Sequence[str]]


# ----------------------------------------------------------------------------- schema files
class NodeSpec(StrictModel):
    count: int | None = Field(None, gt=0, description="number of nodes (default: rows of the feature file)")
    features: str | None = Field(None, description="feature file (none: one-hot identity features)")


class HeCoSchema(StrictModel):
    """A HeCo-format folder: which files make which node types, edges, labels and splits."""

    name: str = ""
    card: str | None = Field(None, description="a dataset card whose file keys the names below are")
    folder: str | None = Field(None, description="folder of the files (default: the schema file's folder)")
    target: str
    nodes: dict[str, NodeSpec]
    edges: dict[str, tuple[str, str]] = Field(description="edge file -> (source type, destination type)")
    labels: str | None = Field(None, description="label file of the target nodes (none: embeddings only)")
    splits: list[int] = Field(default_factory=list, description="label rates with train/val/test_<rate> files")
    metapaths: dict[str, list[str]] = Field(default_factory=dict, description="default meta-paths, by name")
    allow_outside: bool = Field(
        False,
        description="accept an absolute 'folder' or one outside the schema file's folder (file names always stay "
        "inside 'folder')",
    )


SCHEMA_BYTES = 1 << 20  # a schema names a few files and types: anything larger is not one


def read_schema(path: str | Path) -> HeCoSchema:
    """A schema file (YAML) of a HeCo-format folder, checked: node types of edges and meta-paths exist."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise UserError(f"schema file {path} does not exist.")
    if path.stat().st_size > SCHEMA_BYTES:
        raise UserError(
            f"schema file {path} is {path.stat().st_size:,} bytes, over the {SCHEMA_BYTES:,} a graph schema may have; "
            "is it the right file?"
        )
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"schema file {path} cannot be read as UTF-8 text ({type(exc).__name__}).") from None
    try:
        schema = HeCoSchema.model_validate(yaml.safe_load(text))
    except (yaml.YAMLError, ValidationError) as exc:
        raise UserError(
            f"schema file {path} is not a valid graph schema ({str(exc)[:400]}). It needs 'target', 'nodes' "
            "(type: {count, features}), 'edges' (file: [source type, destination type]), optional 'labels', "
            "'splits', 'metapaths'."
        ) from None
    if schema.folder is None and schema.card is None:
        schema.folder = str(path.parent)
    elif schema.folder is not None:
        where = path.parent
        schema.folder = str(
            inside(
                schema.folder,
                where,
                file=path,
                key="folder",
                allow_outside=schema.allow_outside,
                option="allow_outside",
            )
        )
    if schema.card is None:  # file names are looked up in the folder: each must stay inside it
        for key in _keys(schema):
            inside(key, schema.folder, file=path, key=f"file {key!r}")
    types = set(schema.nodes)
    for where, names in [("target", [schema.target])] + [(f"edges.{k}", v) for k, v in schema.edges.items()]:
        bad = [t for t in names if t not in types]
        if bad:
            raise UserError(
                f"schema file {path}: {where} names node type {bad[0]!r}, not among nodes: {sorted(types)}."
            )
    for name, spec in schema.nodes.items():
        if spec.count is None and spec.features is None:
            raise UserError(f"schema file {path}: node type {name!r} needs 'count' (it has no 'features' file).")
    return schema


def _schema_dir() -> Path:
    return Path(core_data.card_dirs()[1]) / "hetgraph"


SCHEMAS: dict[str, HeCoSchema] = {p.stem: read_schema(p) for p in sorted(_schema_dir().glob("*.yaml"))}


# ----------------------------------------------------------------------------- files
def _file(schema: HeCoSchema, key: str, root: str | Path | None, folder: str | Path | None) -> Path:
    """A verified path: ``folder/<key>`` (or ``<key>.*``) for a folder, else the card's file ``<card>/<key>``."""
    folder = folder if folder is not None else schema.folder
    if folder is None:
        return core_data.resolve(f"{schema.card}/{key}", root)
    folder = Path(folder).expanduser()
    inside(key, folder, file=schema.name or "graph schema", key=f"file {key!r}")
    if is_file(folder / key):
        return folder / key
    try:
        matches = sorted(folder.glob(f"{key}.*"))
    except (OSError, ValueError):
        matches = []
    if not matches:
        raise UserError(
            f"{schema.name or 'graph'}: file '{key[:200]}.*' (npz/npy/txt) is missing from {folder}. "
            f"A HeCo-format folder needs: {', '.join(_keys(schema))}."
        )
    return matches[0]


def _keys(schema: HeCoSchema) -> list[str]:
    feats = [s.features for s in schema.nodes.values() if s.features]
    splits = [f"{s}_{n}" for s in ("train", "val", "test") for n in schema.splits]
    return feats + list(schema.edges) + ([schema.labels] if schema.labels else []) + splits


def _read_features(path: Path) -> sp.csr_matrix:
    x = None
    try:
        if path.suffix == ".npz":
            # HeCo's dblp/t_feat.npz is really a .npy array
            with contextlib.suppress(ValueError, KeyError, TypeError, AttributeError):
                x = sp.csr_matrix(sp.load_npz(path), dtype=np.float32)
        if x is None:
            x = sp.csr_matrix(np.load(path, allow_pickle=False), dtype=np.float32)
    except Exception as exc:
        raise UserError(f"cannot read node features {path}: {_no_content(exc)}") from None
    bad = ~np.isfinite(x.data)
    if bad.any():
        row = int(np.searchsorted(x.indptr, np.flatnonzero(bad)[0], side="right") - 1)
        raise UserError(
            f"node features {path}: a NaN or infinite value in row {row} (node {row}; "
            f"{int(bad.sum()):,} values in all). Impute or drop them before training."
        )
    return x


def _no_content(exc: BaseException) -> str:
    """An exception's first line with quoted text removed: a reader's error must not echo the file."""
    import re

    return re.sub(r"'[^']*'|\"[^\"]*\"", "'…'", str(exc).splitlines()[0] if str(exc) else type(exc).__name__)[:200]


def _read_edges(path: Path, n_src: int, n_dst: int) -> np.ndarray:
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "input contained no data": the check below says it
            pairs = np.loadtxt(path, dtype=np.int64, ndmin=2)
    except (ValueError, OverflowError, EOFError, OSError) as exc:  # OSError, EOFError: a damaged .gz
        raise UserError(f"{path}: every line must be two integer node ids ({_no_content(exc)}).") from None
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
        raise UserError(f"cannot read split file {path}: {_no_content(exc)}") from None
    if ids.size == 0 or ids.min() < 0 or ids.max() >= n:
        raise UserError(
            f"split file {path}: node ids must lie in 0..{n - 1} (the labelled nodes); "
            f"found {ids.min() if ids.size else 'none'}..{ids.max() if ids.size else ''}."
        )
    if np.unique(ids).size != ids.size:
        raise UserError(f"split file {path}: a node id occurs more than once.")
    return ids


def _read_labels(path: Path) -> np.ndarray:
    """A ``.npy`` (class ids, one-hot rows or strings) or a text file with one label per line."""
    try:
        if path.suffix == ".npy":
            y = np.load(path, allow_pickle=False)
            return y.argmax(1) if y.ndim == 2 else y
        labels = np.array([line.strip() for line in path.read_text().splitlines() if line.strip()])
        return labels.astype(np.int64) if all(v.lstrip("-").isdigit() for v in labels) else labels
    except (ValueError, OSError, EOFError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read labels {path}: {_no_content(exc)}") from None


# ----------------------------------------------------------------------------- loaders
def load_heco(dataset: str | Path, root: str | Path | None = None, folder: str | Path | None = None):
    """Read a HeCo-format dataset into a ``HeteroData``.

    ``dataset`` is a shipped schema (``"acm"``, ``"dblp"``: files from the dataset card under the data root,
    or from ``folder``, a HeCo ``data/<dataset>`` copy) or the path of a schema file (:class:`HeCoSchema`).
    Node type ``t`` gets ``x`` (float32, sparse COO when the file is sparse; one-hot identity without a
    feature file) and ``num_nodes``; edge file ``(s, d)`` gives ``(s, "to", d)`` and ``(d, "rev_to", s)``;
    the target type gets ``y`` (class ids 0..C-1; string or 1-based labels are mapped in sorted order, the
    names kept in ``classes``) and ``train_<r> / val_<r> / test_<r>`` index tensors for the schema's splits.
    """
    from torch_geometric.data import HeteroData

    if str(dataset) in SCHEMAS:
        schema = SCHEMAS[str(dataset)]
    elif str(dataset).endswith((".yaml", ".yml")):
        schema = read_schema(dataset)
    else:
        raise UserError(
            f"unknown heterogeneous-graph dataset {str(dataset)!r}; choose one of: {', '.join(SCHEMAS)}, "
            "or give the path of a schema file (.yaml) describing a HeCo-format folder."
        )
    data = HeteroData()
    sizes: dict[str, int] = {}
    for ntype, spec in schema.nodes.items():
        if spec.features is None:
            x = sp.identity(spec.count, dtype=np.float32, format="csr")
        else:
            path = _file(schema, spec.features, root, folder)
            x = _read_features(path)
            if spec.count is not None and x.shape[0] != spec.count:
                raise UserError(f"{path}: {x.shape[0]} rows of {ntype} features, expected {spec.count} {ntype} nodes.")
        sizes[ntype] = x.shape[0]
        data[ntype].x = _to_torch(x)
        data[ntype].num_nodes = sizes[ntype]
    for key, (src, dst) in schema.edges.items():
        ei = torch.from_numpy(_read_edges(_file(schema, key, root, folder), sizes[src], sizes[dst]))
        data[src, "to", dst].edge_index = ei.contiguous()
        data[dst, "rev_to", src].edge_index = ei.flip(0).contiguous()
    target, n = schema.target, sizes[schema.target]
    if schema.labels is None:
        return data
    labels_path = _file(schema, schema.labels, root, folder)
    raw = _read_labels(labels_path)
    if raw.shape[0] != n:
        raise UserError(
            f"labels {labels_path} has {raw.shape[0]} entries but the graph has {n} {target} nodes: "
            "labels and node features come from different versions of the dataset."
        )
    y, classes = encode_labels(raw, str(labels_path))
    data[target].y = y
    data[target].classes = classes
    for rate in schema.splits:
        parts = {s: _read_ids(_file(schema, f"{s}_{rate}", root, folder), n) for s in ("train", "val", "test")}
        for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
            common = np.intersect1d(parts[a], parts[b])
            if common.size:
                raise UserError(
                    f"{schema.name} split {rate}: {common.size} nodes are in both {a}_{rate} and {b}_{rate} "
                    f"(e.g. node {common[0]}); the splits must not overlap."
                )
        num_classes = len(classes)
        counts = np.bincount(y.numpy()[parts["train"]], minlength=num_classes)
        if not np.all(counts == rate):
            raise UserError(
                f"{schema.name}: train_{rate} should hold {rate} nodes of each of the {num_classes} "
                f"classes, but has {counts.tolist()} per class under labels {labels_path}: "
                "the split files do not belong to these labels."
            )
        for s, ids in parts.items():
            data[target][f"{s}_{rate}"] = torch.from_numpy(ids)
    data.dataset = schema.name
    return data


def load_graph(path: str | Path, trust_pickle: bool = False):
    """A ``torch.save``d ``HeteroData``, loaded with ``torch.load(weights_only=True)`` and PyG's storage classes
    allow-listed (tensors, numbers, strings, lists, dicts: no code runs). A file holding other objects (numpy
    arrays, custom classes) loads only with ``trust_pickle=True`` (``data.trust_pickle``): a full unpickle, which
    can run code, so only for files you trust. This is how to read a saved graph in Python (a plain
    ``torch.load(path, weights_only=True)`` refuses PyG's classes): ``MEOW.load(model_dir).embed(load_graph(path))``."""
    import pickle

    from torch_geometric.data import HeteroData
    from torch_geometric.data.storage import BaseStorage, EdgeStorage, GlobalStorage, NodeStorage

    path = Path(path).expanduser()
    if not path.is_file():
        raise UserError(f"graph file {path} does not exist (expected a torch.save'd torch_geometric HeteroData).")
    allowed = [HeteroData, BaseStorage, NodeStorage, EdgeStorage, GlobalStorage]
    try:
        if trust_pickle:
            data = torch.load(path, weights_only=False, map_location="cpu")
        else:
            with torch.serialization.safe_globals(allowed):
                data = torch.load(path, weights_only=True, map_location="cpu")
    except pickle.UnpicklingError as exc:
        if trust_pickle:
            raise UserError(f"cannot read graph file {path} with torch.load: {str(exc)[:300]}") from None
        known = {
            f"{c.__module__}.{c.__qualname__}"
            for c in allowed + torch.serialization.get_safe_globals()
            if isinstance(c, type)
        }
        try:
            unsafe = sorted(set(torch.serialization.get_unsafe_globals_in_checkpoint(path)) - known)
        except Exception:  # noqa: BLE001 - not a readable checkpoint at all
            raise UserError(
                f"cannot read graph file {path} with torch.load: it is damaged or not a torch.save'd file."
            ) from None
        unsafe = ", ".join(unsafe) if unsafe else "objects a safe load refuses"
        raise UserError(
            f"graph file {path} holds {unsafe}, which only a full unpickle can read (and unpickling can run code). "
            "If you trust the file, set data.trust_pickle: true in the recipe (load_graph(path, trust_pickle=True) "
            "from Python); otherwise save the HeteroData with tensors, numbers and strings only."
        ) from None
    except Exception as exc:
        raise UserError(f"cannot read graph file {path} with torch.load: {str(exc)[:300]}") from None
    if not isinstance(data, HeteroData):
        raise UserError(
            f"graph file {path} holds a {type(data).__name__}, not a torch_geometric HeteroData: "
            "save one with torch.save(data, path)."
        )
    check_graph(data, f"graph file {path}")
    return data


def _declared_nodes(data, ntype: str) -> int | None:
    """The node count a type declares (``num_nodes``, else rows of ``x``), never inferred from edge ids."""
    s = data[ntype]
    if "num_nodes" in s:
        return int(s["num_nodes"])
    x = s.get("x")
    return int(x.size(0)) if isinstance(x, torch.Tensor) and x.dim() >= 1 else None


def check_graph(data, where: str = "the graph") -> None:
    """Check a ``HeteroData`` before anything is sized from it: every node type declares its count
    (``num_nodes`` or ``x``), counts fit the memory budget, edge ids are integers inside their node types'
    ranges, and node features are finite. Raises :class:`UserError` naming the type and the first bad id."""
    budget = max_array_bytes()
    counts = {}
    for ntype in data.node_types:
        n = _declared_nodes(data, ntype)
        if n is not None and (n < 0 or 24 * n > budget):
            raise UserError(
                f"{where}: node type {ntype!r} declares {n:,} nodes; sizing it needs about {24 * n / 2**30:,.1f} GiB, "
                f"over the reader's limit of {budget / 2**30:g} GiB. Fix num_nodes, or raise CL_DOMAINS_MAX_ARRAY_GB."
            )
        counts[ntype] = n
        x = data[ntype].get("x")
        if isinstance(x, torch.Tensor) and x.is_floating_point():
            vals = x.coalesce().values() if x.is_sparse else x
            if not torch.isfinite(vals).all():
                if x.is_sparse:
                    row = int(x.coalesce().indices()[0][~torch.isfinite(vals)][0])
                else:
                    row = int(torch.nonzero(~torch.isfinite(x.reshape(len(x), -1)).any(1))[0])
                raise UserError(
                    f"{where}: node features {ntype}.x hold a NaN or infinite value at node {row}. "
                    "Impute or drop them before training."
                )
    for etype in data.edge_types:
        ei = data[etype].get("edge_index")
        if ei is None:
            continue
        if not isinstance(ei, torch.Tensor) or ei.dim() != 2 or ei.size(0) != 2 or ei.is_floating_point():
            raise UserError(
                f"{where}: edge type {etype} has an edge_index of shape {tuple(getattr(ei, 'shape', ()))}; "
                "it must be an integer tensor [2, edges]."
            )
        for side, ntype in ((0, etype[0]), (1, etype[2])):
            n = counts.get(ntype)
            if n is None:
                raise UserError(
                    f"{where}: node type {ntype!r} (of edge type {etype}) has neither x nor num_nodes; "
                    f"set data[{ntype!r}].num_nodes so edge ids can be checked."
                )
            ids = ei[side]
            bad = (ids < 0) | (ids >= n)
            if ids.numel() and bad.any():
                k = int(torch.nonzero(bad)[0])
                raise UserError(
                    f"{where}: edge {k} of {etype} names {ntype} node {int(ids[k]):,}, outside 0..{n - 1} "
                    f"({int(bad.sum()):,} edges like it). Fix the edge ids or num_nodes."
                )


def _to_torch(x: sp.spmatrix) -> torch.Tensor:
    x = x.tocoo()
    if x.nnz < 0.3 * x.shape[0] * x.shape[1]:
        idx = torch.from_numpy(np.vstack([x.row, x.col]).astype(np.int64))
        return torch.sparse_coo_tensor(idx, torch.from_numpy(x.data), x.shape, check_invariants=False).coalesce()
    return torch.from_numpy(x.toarray())


def node_features(data, ntype: str) -> torch.Tensor:
    """``data[ntype].x`` as float32, or one-hot identity features (sparse) for a node type without ``x``."""
    x = data[ntype].get("x")
    if x is None:
        n = data[ntype].num_nodes
        idx = torch.arange(n).repeat(2, 1)
        return torch.sparse_coo_tensor(idx, torch.ones(n), (n, n), check_invariants=False).coalesce()
    return x.float()


# ----------------------------------------------------------------------------- labels and splits
def encode_labels(y: Any, where: str) -> tuple[torch.Tensor, list]:
    """Class ids ``0..C-1`` and the class names (sorted) of integer, 1-based or string labels."""
    arr = y.cpu().numpy() if isinstance(y, torch.Tensor) else np.asarray(y)
    if arr.ndim == 2 and arr.shape[1] > 1:  # one-hot rows
        arr = arr.argmax(1)
    arr = arr.reshape(-1)
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            raise UserError(f"labels {where}: class labels must be integers or strings; found non-integer values.")
        arr = arr.astype(np.int64)
    if arr.dtype.kind not in "iuUSO":
        raise UserError(f"labels {where}: class labels must be integers or strings, not {arr.dtype}.")
    classes, codes = np.unique(arr.astype(str) if arr.dtype.kind == "O" else arr, return_inverse=True)
    if len(classes) < 2:
        raise UserError(f"labels {where}: only one class ({classes[0]!r}); a probe needs at least two.")
    return torch.as_tensor(codes.reshape(-1), dtype=torch.long), classes.tolist()


def make_splits(y: torch.Tensor, rate: int, seed: int, held_out: int = 1000) -> tuple[torch.Tensor, ...]:
    """Seeded stratified split: ``rate`` training nodes per class; of the rest (shuffled) ``held_out`` validation
    and ``held_out`` test nodes (half each when fewer remain), HeCo's protocol for graphs without split files."""
    g = generator(seed, "split", rate)
    train = []
    for c in range(int(y.max()) + 1):
        idx = torch.nonzero(y == c).view(-1)
        if idx.numel() <= rate:
            raise UserError(
                f"class {c} has {idx.numel()} labelled nodes, not more than {rate}: a split with {rate} training "
                f"nodes per class leaves none to test. Lower eval.rates (e.g. eval.rates=[{max(1, idx.numel() // 2)}])."
            )
        train.append(idx[torch.randperm(idx.numel(), generator=g)[:rate]])
    train = torch.cat(train).sort().values
    rest = torch.ones(y.numel(), dtype=torch.bool)
    rest[train] = False
    rest = torch.nonzero(rest).view(-1)
    rest = rest[torch.randperm(rest.numel(), generator=g)]
    n_val = min(held_out, rest.numel() // 2)
    n_test = min(held_out, rest.numel() - n_val)
    return train, rest[:n_val].sort().values, rest[n_val : n_val + n_test].sort().values


# ----------------------------------------------------------------------------- meta-paths
def _show(path: MetaPath) -> str:
    return "-".join(p if isinstance(p, str) else "/".join(p) for p in path)


def resolve_metapath(data, path: MetaPath, target: str | None = None) -> tuple[Hop, ...]:
    """Validate a meta-path (node types or edge types) against ``data.metadata()``; its hops as
    ``(stored edge type, reversed)``. Node-type hops use the one edge type between the two types, else the
    reverse of the one edge type the other way round."""
    node_types, edge_types = data.metadata()
    edge_types = [tuple(e) for e in edge_types]
    if isinstance(path, str) or len(path) < 2:
        raise UserError(f"meta-path {path!r} must be a list of at least two node types (or of edge types).")
    hops: list[Hop] = []
    if all(isinstance(p, str) for p in path):
        for t in path:
            if t not in node_types:
                raise UserError(
                    f"meta-path {_show(path)}: node type {t!r} is not in the graph (node types: {', '.join(node_types)})."
                )
        for a, b in zip(path, path[1:], strict=False):
            fwd = [e for e in edge_types if e[0] == a and e[2] == b]
            back = [e for e in edge_types if e[0] == b and e[2] == a]
            found = [(e, False) for e in fwd] or [(e, True) for e in back]
            if not found:
                raise UserError(
                    f"meta-path {_show(path)}: the graph has no edge type between {a!r} and {b!r} "
                    f"(edge types: {edge_types})."
                )
            if len(found) > 1:
                raise UserError(
                    f"meta-path {_show(path)}: several edge types join {a!r} and {b!r} ({[e for e, _ in found]}); "
                    "give the meta-path as a list of edge types instead."
                )
            hops.append(found[0])
    else:
        for e in path:
            if isinstance(e, str) or len(e) != 3 or tuple(e) not in edge_types:
                raise UserError(
                    f"meta-path {_show(path)}: edge type {tuple(e) if not isinstance(e, str) else e!r} is not in the "
                    f"graph (edge types: {edge_types}); give node types or (source, relation, destination) triples."
                )
        for e, f in zip(path, path[1:], strict=False):
            if e[2] != f[0]:
                raise UserError(
                    f"meta-path {_show(path)}: edge type {tuple(e)} ends at {e[2]!r} but {tuple(f)} starts at {f[0]!r}."
                )
        hops = [(tuple(e), False) for e in path]
    start, end = _end(hops[0], 0), _end(hops[-1], 2)
    target = target or start
    if start != target or end != target:
        raise UserError(
            f"meta-path {_show(path)} goes from {start!r} to {end!r}: a meta-path must start and end at the "
            f"target node type {target!r}."
        )
    return tuple(hops)


def _end(hop: Hop, side: int) -> str:
    (src, _, dst), rev = hop
    return (dst if rev else src) if side == 0 else (src if rev else dst)


def _hops(data, path) -> tuple[Hop, ...]:
    if len(path) and isinstance(path[0], tuple) and len(path[0]) == 2 and isinstance(path[0][1], bool):
        return tuple(path)  # already resolved
    return resolve_metapath(data, path)


def relation(data, hop: Hop) -> sp.csr_matrix:
    """0/1 incidence of one hop (duplicate edges count once)."""
    (src, rel, dst), rev = hop
    ei = data[src, rel, dst].edge_index.cpu().numpy()
    shape = (data[src].num_nodes, data[dst].num_nodes)
    if rev:
        ei, shape = ei[::-1], shape[::-1]
    m = sp.csr_matrix((np.ones(ei.shape[1], np.float32), (ei[0], ei[1])), shape=shape)
    m.data[:] = 1.0
    return m


def _chain(mats: list[sp.csr_matrix], boolean: bool) -> sp.csr_matrix:
    m = mats[0]
    for r in mats[1:]:
        m = m @ r
        if boolean:
            m.data[:] = 1.0
    return m.tocsr()


def metapath_counts(data, path: MetaPath) -> sp.csr_matrix:
    """Path-instance counts ``R_1 ... R_L`` of a meta-path from and to the target type (``H H^T`` when its
    second half walks its first half back)."""
    rels = [relation(data, h) for h in _hops(data, path)]
    half = len(rels) // 2
    mirrored = len(rels) % 2 == 0 and all(
        rels[-1 - i].shape == rels[i].T.shape and (rels[-1 - i] != rels[i].T).nnz == 0 for i in range(half)
    )
    if mirrored:
        h = _chain(rels[:half], boolean=False)
        return (h @ h.T).tocsr()
    return _chain(rels, boolean=False)


def context_incidence(data, path: MetaPath) -> list[tuple[str, sp.csr_matrix]]:
    """The meta-path contexts: ``[(node type, bool(R_1..R_l))]`` for every proper prefix of the meta-path."""
    hops = _hops(data, path)
    rels = [relation(data, h) for h in hops]
    return [(_end(hops[k - 1], 2), _chain(rels[:k], boolean=True)) for k in range(1, len(hops))]


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
