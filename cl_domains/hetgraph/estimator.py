"""The hetgraph estimators :class:`MEOW` and :class:`AdaMEOW`: train on a heterogeneous graph, embed its target
nodes, score the embeddings with the run report's probe and clustering, save and load the model directory.

::

    from cl_domains.hetgraph import MEOW, load_heco

    m = MEOW(train={"epochs": 40}).fit(load_heco("acm"))  # the recipe's target and meta-paths
    z = m.embed()                                         # numpy float32 [4019, 64]: the graph trained on
    m.save("meow-acm")
    z2 = MEOW.load("meow-acm").embed(load_heco("acm"))    # == z

A saved ``HeteroData`` is read with :func:`cl_domains.hetgraph.load_graph` (``torch.load(weights_only=True)`` alone
refuses PyG's classes); ``fit``, ``embed`` and ``evaluate`` also take the path itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from ..core.errors import UserError
from ..core.estimator import Estimator, estimator
from ..core.modes import eval_mode
from ..core.objectives import Objective
from .data import SCHEMAS, load_graph, load_heco, read_schema
from .encoder import MEOWEncoder
from .modelfiles import ENCODER_FILE, WEIGHTS_FILE, encoder_settings, state_of, trained_modules, write_model
from .task import HetGraphEvalConfig, HetGraphModelConfig, HetGraphTask, _named

__all__ = ["HetGraphEstimator", "MEOW", "AdaMEOW", "read_graph", "write_model", "load_encoder"]


def read_graph(data: Any, *, trust_pickle: bool = False):
    """A ``HeteroData`` from what ``fit``/``embed``/``evaluate`` accept.

    Args:
        data: a ``HeteroData``; a shipped graph's name (``"acm"``, ``"dblp"``); the path of a ``torch.save``d
            ``HeteroData`` (``.pt``, read by :func:`~cl_domains.hetgraph.load_graph`); a HeCo-format schema file
            (``.yaml``) or a folder holding one schema file.
        trust_pickle: passed to :func:`~cl_domains.hetgraph.load_graph` (a full unpickle: only files you trust).

    Returns:
        The graph.
    """
    from torch_geometric.data import HeteroData

    if isinstance(data, HeteroData):
        return data
    if not isinstance(data, (str, Path)):
        raise UserError(
            f"expected a torch_geometric HeteroData or the path of one (.pt, or a schema .yaml), not {type(data).__name__}."
        )
    if str(data) in SCHEMAS:
        return load_heco(str(data))
    path = _schema_file(Path(data).expanduser())
    return load_heco(path) if path.suffix in (".yaml", ".yml") else load_graph(path, trust_pickle=trust_pickle)


def _schema_file(path: Path) -> Path:
    """``path``, or the one schema file (``*.yaml``) of a folder."""
    if not path.is_dir():
        return path
    found = sorted(path.glob("*.yaml")) + sorted(path.glob("*.yml"))
    if len(found) != 1:
        raise UserError(
            f"{path} is a folder: it needs exactly one schema file (*.yaml) describing its HeCo-format files, "
            f"found {len(found)}."
        )
    return found[0]


def _source_settings(data: Any) -> dict[str, Any]:
    """The recipe ``data`` keys of a graph given by name or path (``{}`` for an in-memory graph)."""
    if isinstance(data, (str, Path)):
        if str(data) in SCHEMAS:
            return {"dataset": str(data), "path": None}
        return {"dataset": None, "path": str(_schema_file(Path(data).expanduser()))}
    return {"dataset": None, "path": None}


def _plain(metapaths: dict[str, list] | list) -> list[list]:
    values = metapaths.values() if isinstance(metapaths, dict) else metapaths
    return [[p if isinstance(p, str) else list(p) for p in path] for path in values]


def _schema_metapaths(source: dict[str, Any]) -> tuple[str | None, list | None]:
    """Target and meta-paths of a recipe ``data`` section given by ``dataset`` or a schema ``path`` (else ``None``)."""
    schema = None
    if source.get("dataset") in SCHEMAS:
        schema = SCHEMAS[source["dataset"]]
    elif str(source.get("path") or "").endswith((".yaml", ".yml")):
        schema = read_schema(source["path"])
    if schema is None:
        return None, None
    return schema.target, _plain(schema.metapaths)


class _either:
    """A method that receives the instance when called on one, else the class (``read_inputs``)."""

    def __init__(self, f):
        self.f = f

    def __get__(self, obj, owner):
        return self.f.__get__(obj if obj is not None else owner)


class HetGraphEstimator(Estimator):
    """Node embeddings of a heterogeneous graph (base of :class:`MEOW` and :class:`AdaMEOW`).

    Settings are the recipe's (see :class:`cl_domains.core.estimator.Estimator`): ``recipe=`` a shipped recipe
    name or YAML path (default: the method's ACM recipe, profile ``quick``), ``model=``/``data=``/``method=``/
    ``train=``/``eval=`` dicts merged onto its sections (e.g. ``train={"epochs": 20}``,
    ``model={"nei_max": [30]}``, ``method={"objective": {"loss": "dcl"}}``, ``eval={"rates": [20]}``); ``out=``
    ``None`` trains in a temporary run directory, a folder keeps the run there (``run_dir_``).

    Learned attributes: ``encoder_`` (the :class:`~cl_domains.hetgraph.MEOWEncoder`), ``objective_``,
    ``recipe_``, ``metrics_`` (the run's final test metrics), ``baselines_``, ``task_`` (the trained task, holding
    the graph trained on, its labels and splits; ``None`` after :meth:`load`). There is no prediction head:
    ``predict`` is refused; the embeddings feed your own classifier (the report's probe is in ``evaluate``).
    """

    default_recipe: ClassVar[str] = ""
    renamed: ClassVar[dict[str, str]] = {}  # filled below from the recipe sections' fields
    chunked_inference: ClassVar[bool] = False  # a graph is embedded whole (its nodes' rows depend on each other)

    # ------------------------------------------------------------------ training
    def fit(self, data: Any = None, target: str | None = None, metapaths: Any = None, **kwargs: Any):
        """Train on a heterogeneous graph through the loop of ``cl-domains run``.

        Args:
            data: a ``HeteroData`` in memory, a shipped graph's name, the path of a ``torch.save``d ``HeteroData``
                (``.pt``), a HeCo-format schema file (``.yaml``) or a folder holding one; ``None``: the recipe's
                own graph (ACM for the default recipe).
            target: the node type to embed (default: the recipe's ``data.target``, else the graph's schema's).
            metapaths: meta-paths from and to ``target``: lists of node types or of ``(src, relation, dst)`` edge
                types, or a dict naming them (default: the recipe's, else the schema's). The recipe's per-meta-path
                ``model.nei_max`` / ``model.adj_mask`` apply to its own meta-paths only: with other meta-paths they
                default to 50 / 0.2 each unless ``model=`` sets them.

        Returns:
            ``self``, fitted.
        """
        if kwargs:
            key = next(iter(kwargs))
            hint = {"out": f"{type(self).__name__}(out=...)"}.get(key) or self.renamed.get(key)
            raise UserError(
                f"{type(self).__name__}.fit(): unknown keyword {key!r}"
                + (f"; write {hint}." if hint else "; fit takes data, target and metapaths.")
            )
        return super().fit(data, target, metapaths)

    def data_settings(self, data: Any, target: str | None = None, metapaths: Any = None) -> dict[str, Any]:
        """The recipe ``data`` keys ``fit(data, target, metapaths)`` implies (a path or name is read like a recipe's
        ``data.path`` / ``data.dataset``; an in-memory graph sets neither)."""
        settings = {} if data is None else _source_settings(data)
        # an in-memory graph of a shipped schema (load_heco) brings that schema's target and meta-paths
        self._fit_dataset = getattr(data, "dataset", None) if not isinstance(data, (str, Path)) else None
        if target is not None:
            settings["target"] = target
        if metapaths is not None:
            settings["metapaths"] = _plain(_named(metapaths))
        return settings

    def build_recipe(self, data_settings: dict[str, Any] | None = None):
        """The recipe of :meth:`fit` (see :meth:`cl_domains.core.estimator.Estimator.build_recipe`); the recipe's
        per-meta-path lists are dropped when ``fit`` trains on other meta-paths."""
        recipe = super().build_recipe(data_settings)
        if not data_settings or self._same_metapaths(recipe, data_settings):
            return recipe
        given = self.model or {}
        reset = {k: None for k in ("nei_max", "adj_mask") if k not in given}
        if not reset:
            return recipe
        saved = self.model
        self.model = {**reset, **given}
        try:
            return super().build_recipe(data_settings)
        finally:
            self.model = saved

    def _same_metapaths(self, recipe, settings: dict[str, Any]) -> bool:
        base = super().build_recipe()
        base_paths = base.data.metapaths or _schema_metapaths(base.data.model_dump())[1]
        source = recipe.data.model_dump()
        if source.get("dataset") is None and source.get("path") is None:  # in memory
            source["dataset"] = getattr(self, "_fit_dataset", None)
        paths = settings.get("metapaths") or recipe.data.metapaths or _schema_metapaths(source)[1]
        return paths is None or (base_paths is not None and _plain(paths) == _plain(base_paths))

    def build_task(self, recipe, device, data: Any, *args: Any, **kwargs: Any) -> HetGraphTask:
        """The method's registered task, on the in-memory graph (a name or path is read by the recipe's loader)."""
        from torch_geometric.data import HeteroData

        from ..core import registry

        cls = registry.method_spec("hetgraph", recipe.method.name).cls
        return cls(recipe, None, device, graph=data if isinstance(data, HeteroData) else None)

    def after_fit(self, task: HetGraphTask) -> None:
        """Keep the trained modules (the task stays in ``task_``)."""
        self.model_ = task.model
        self._restore_modules(trained_modules(task), encoder_settings(task.encoder, task.data))

    def _restore_modules(self, modules: dict[str, nn.Module], settings: dict[str, Any]) -> None:
        self.encoder_ = modules["encoder"].eval()
        self.objective_ = modules["objective"].eval()
        self.modules_ = modules
        self.graph_schema_ = settings

    # ------------------------------------------------------------------ inference
    def _graph(self, data: Any):
        if data is None:
            if getattr(self, "task_", None) is None:
                raise UserError(
                    f"{type(self).__name__}: give the graph (a loaded model keeps no graph; e.g. load_heco('acm'))."
                )
            return self.task_.data
        graph = read_graph(data)
        self._check_graph(graph)
        return graph

    def _check_graph(self, graph) -> None:
        """The graph has the node types the encoder reads, with the feature widths it was trained on."""
        s = self.graph_schema_
        for ntype, width in s["feat_dims"].items():
            if ntype not in graph.node_types:
                raise UserError(
                    f"the graph has no node type {ntype!r}, which the {type(self).__name__} model reads "
                    f"(trained on node types {', '.join(s['node_types'])}; this graph has {', '.join(graph.node_types)})."
                )
            x = graph[ntype].get("x")
            have = int(x.shape[1]) if x is not None else int(graph[ntype].num_nodes)
            if have != width:
                what = "features" if x is not None else "nodes and no features (one-hot identity)"
                raise UserError(
                    f"node type {ntype!r} has {have} {what}; the {type(self).__name__} model was trained on width "
                    f"{width} (features of {width} columns, or {width} nodes without features)."
                )

    def embed(self, data: Any = None, *, as_tensor: bool = False):
        """Embeddings of the target nodes (``target`` of the model), in node order.

        Args:
            data: a graph with the trained node types, feature widths and meta-path edge types (a ``HeteroData``,
                a shipped graph's name or a path as in :meth:`fit`); ``None``: the graph trained on.
            as_tensor: return a CPU ``torch.Tensor`` instead of a numpy array.

        Returns:
            ``numpy.ndarray`` float32 ``[number of target nodes, hidden]``.
        """
        self._check_fitted()
        return super().embed(self._graph(data), as_tensor=as_tensor)

    def embed_tensor(self, x: Any) -> torch.Tensor:
        """The encoder's target-node embeddings of a graph (eval mode); the graph a mini-batch model trained on is
        embedded layer by layer with sampled neighbourhoods, as its evaluation was."""
        task = getattr(self, "task_", None)
        if task is not None and getattr(task, "sampled", None) is not None and x is task.data:
            return task.embeddings()
        return self.encoder_.embed(x)

    def embedding_dim(self) -> int:
        """The encoder's width (``model.hidden``)."""
        return int(self.encoder_.config["hidden"])

    def evaluate(self, data: Any = None) -> dict[str, float]:
        """The run report's final metrics on a graph: the linear probe at every ``eval.rates`` label rate
        (``macro_f1_<r>``, ``micro_f1_<r>``, ``auc_<r>`` and their ``_std``) and KMeans ``nmi`` / ``ari``, on the
        graph's own ``train_<r>``/``val_<r>``/``test_<r>`` splits or seeded stratified ones; ``nce`` (the views'
        InfoNCE) for a graph without labels.

        Args:
            data: a graph as in :meth:`embed` whose target nodes have ``y``; ``None``: the graph trained on
                (then equal to ``metrics_``).

        Returns:
            ``{metric: value}`` (x100 for the scores).
        """
        self._check_fitted()
        graph = self._graph(data)
        task = HetGraphTask()
        task.recipe, task.seed, task.data, task.target = self.recipe_, self.recipe_.train.seed, graph, self.target_
        task._labels(self.recipe_)
        if task.y is None:
            with torch.no_grad(), eval_mode(self.encoder_):
                _, fine, coarse = self.encoder_(self.encoder_.inputs(graph))
                return {"nce": float(self.objective_(coarse, fine))}
        return task.test_scores(self.embed_tensor(graph).detach())

    @property
    def target_(self) -> str:
        """The embedded node type."""
        return self.encoder_.target

    # ------------------------------------------------------------------ saving
    def save_files(self, directory: Path) -> tuple[dict[str, dict], dict[str, Any], dict[str, Any]]:
        """``model.safetensors`` (every trained module by role) and ``encoder.json`` (what embedding needs)."""
        return {WEIGHTS_FILE: state_of(self.modules_)}, {ENCODER_FILE: self.graph_schema_}, {"target": self.target_}

    def restore(self, model_dir) -> None:
        """Rebuild the encoder, the objective and the method's heads from a model directory."""
        settings = model_dir.json(ENCODER_FILE)
        init = {k: v for k, v in settings.items() if k not in ("node_types", "edge_types")}
        modules = {"encoder": MEOWEncoder.from_config(init), "objective": Objective(self.recipe_.method.objective)}
        modules.update(self.heads(self.recipe_))
        state = model_dir.tensors(WEIGHTS_FILE)
        for role, module in modules.items():
            part = {k[len(role) + 1 :]: v for k, v in state.items() if k.startswith(role + ".")}
            try:
                module.load_state_dict(part, strict=True)
            except RuntimeError as exc:
                raise UserError(
                    f"{model_dir.path / WEIGHTS_FILE}: the {role} weights do not fit {ENCODER_FILE} "
                    f"({str(exc).splitlines()[0][:200]}); the model directory is damaged."
                ) from None
        self._restore_modules(modules, settings)

    def heads(self, recipe) -> dict[str, nn.Module]:
        """The method's trained modules beyond the encoder and objective, built from ``recipe`` (none)."""
        return {}

    # ------------------------------------------------------------------ cl-domains embed
    @_either
    def read_inputs(self, path: str | Path) -> tuple[list[int], Any]:
        """A graph file for ``cl-domains embed``: ids are the target nodes' indices 0..n-1.

        Args:
            path: a ``.pt`` ``HeteroData`` or a schema file / folder (see :func:`read_graph`).

        Returns:
            ``(ids, graph)``.
        """
        graph = read_graph(path)
        target = self.target_ if isinstance(self, HetGraphEstimator) else _file_target(graph, path)
        if target not in graph.node_types:
            raise UserError(f"{path}: the graph has no node type {target!r} (the model's target).")
        return list(range(int(graph[target].num_nodes))), graph


def _file_target(graph, path) -> str:
    """The target of a graph read without a model: the schema's, else the one node type with labels."""
    p = Path(str(path))
    if str(path) in SCHEMAS:
        return SCHEMAS[str(path)].target
    if _schema_file(p).suffix in (".yaml", ".yml"):
        return read_schema(_schema_file(p)).target
    labelled = [t for t in graph.node_types if graph[t].get("y") is not None]
    if len(labelled) != 1:
        raise UserError(f"{path}: cannot tell the target node type without a model; load the model first.")
    return labelled[0]


def _section_hints() -> dict[str, str]:
    """The keywords the former ``MEOW(**kw)`` accepted, each pointing at its recipe section."""
    from .adameow import AdaMEOWConfig
    from .meow import MEOWConfig

    hints = {}
    for section, schemas in (
        ("eval", [HetGraphEvalConfig]),
        ("method", [MEOWConfig, AdaMEOWConfig]),
        ("model", [HetGraphModelConfig]),
    ):
        for schema in schemas:
            for key in schema.model_fields:
                if key != "name":
                    hints[key] = f"{section}={{{key!r}: ...}}"
    return hints


@estimator("hetgraph", "meow")
class MEOW(HetGraphEstimator):
    """MEOW (Yu & Li, SDM 2023): coarse- vs fine-grained meta-path views, cluster-weighted negatives and a
    prototypical term; default recipe ``meow_acm`` (profile ``quick``). See :class:`HetGraphEstimator`."""

    default_recipe = "meow_acm"


@estimator("hetgraph", "adameow")
class AdaMEOW(HetGraphEstimator):
    """AdaMEOW (Yu et al., TKDE 2024): MEOW's encoder with learned pair weights on the negatives; default recipe
    ``adameow_acm`` (profile ``quick``). See :class:`HetGraphEstimator`."""

    default_recipe = "adameow_acm"

    def heads(self, recipe) -> dict[str, nn.Module]:
        """The pair-weight MLP (``weights``)."""
        from .adameow import PairWeights

        return {"weights": PairWeights(recipe.model.hidden, recipe.method.weight_hidden, recipe.method.chunk)}


HetGraphEstimator.renamed = {**Estimator.renamed, **_section_hints()}


def load_encoder(directory: str | Path) -> MEOWEncoder:
    """The torch encoder of a saved model (``est.save(dir)`` or a run's ``model/``), for use inside torch code:
    ``load_encoder(d).embed(graph)`` is a tensor. ``MEOW.load(d)`` (or ``cl_domains.load(d)``) gives the estimator.

    Args:
        directory: the model directory.

    Returns:
        The :class:`~cl_domains.hetgraph.MEOWEncoder` in eval mode.
    """
    from ..core.estimator import load

    old = Path(directory)
    if not (old / "cl_domains.json").exists() and (old / "config.json").is_file():  # a run of cl-domains 0.1.0
        import json

        from safetensors.torch import load_model

        enc = MEOWEncoder.from_config(json.loads((old / "config.json").read_text()))
        load_model(enc, str(old / "encoder.safetensors"))
        return enc.eval()
    est = load(directory)
    if not isinstance(est, HetGraphEstimator):
        raise UserError(f"{directory} holds a {est.domain} model, not a heterogeneous-graph encoder.")
    return est.encoder_
