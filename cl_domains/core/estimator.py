"""The estimator contract: one way to train, embed, evaluate, save and load a model of any domain from Python.

Every shipped method has an estimator class (``SimCSE``, ``TS2Vec``, ``MEOW``, ...), a subclass of
:class:`Estimator` registered with :func:`estimator`. They share the scikit-learn habits:

* ``__init__`` only stores its keyword arguments (``get_params()`` / ``set_params()``);
* ``fit(data, ...) -> self`` builds a recipe (the method's shipped recipe, its ``quick`` profile, then the
  ``model``/``data``/``method``/``train``/``eval`` dicts merged onto those sections, validated like a recipe file)
  and trains through :func:`cl_domains.core.train.train_recipe`, the loop ``cl-domains run`` uses;
* learned attributes end in ``_``: ``recipe_``, ``metrics_`` (the final test metrics), ``baselines_``,
  ``run_dir_``, ``task_`` (the trained task);
* ``embed(x)`` returns a numpy float32 array ``[n, dim]`` (``as_tensor=True``: a CPU torch tensor);
  ``predict(x)`` where the method has a head; ``evaluate(data)`` returns the run report's final metric keys;
* ``save(dir)`` writes the model directory of :mod:`cl_domains.core.modeldir`; ``Cls.load(dir)`` and
  :func:`load` read it back (dispatching on its manifest, never on a class path read from a file).

``out=None`` trains in a temporary run directory removed after ``fit`` (the model stays in memory; ``save`` keeps
it); ``out="runs"`` keeps the run directory under that folder exactly as ``cl-domains run --out runs`` does
(``run_dir_``).

A domain estimator overrides a few hooks: :meth:`Estimator.data_settings` (what ``data`` puts in the recipe's
``data`` section), :meth:`Estimator.build_task` (the registered task with the in-memory data),
:meth:`Estimator.embed_tensor`, :meth:`Estimator.save_files` and :meth:`Estimator.restore`.
"""

from __future__ import annotations

import difflib
import inspect
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from .errors import UserError

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from .modeldir import ModelDir
    from .recipe import Recipe
    from .task import Task

__all__ = ["Estimator", "estimator", "estimators", "estimator_class", "load", "RENAMED_KEYWORDS"]

# Old keyword names of the former per-domain entry points -> the one way to write them now.
RENAMED_KEYWORDS: dict[str, str] = {
    "steps": "train={'max_steps': N}",
    "n_iters": "train={'max_steps': N}",
    "max_steps": "train={'max_steps': N}",
    "iters": "train={'max_steps': N}",
    "epochs": "train={'epochs': E}",
    "seed": "train={'seed': S}",
    "lr": "train={'lr': LR}",
    "batch_size": "train={'batch_size': B}",
    "weight_decay": "train={'weight_decay': W}",
    "device": "train={'device': 'cpu'}",
    "threads": "train={'threads': T}",
    "method_params": "method={...} (the recipe's method section)",
    "method_options": "method={...} (the recipe's method section)",
    "overrides": "the model=, data=, method=, train=, eval= dicts",
    "backbone": "model={'backbone': ...}",
    "pooling": "model={'pooling': ...}",
    "max_len": "model={'max_len': ...}",
    "temperature": "method={'objective': {'temperature': T}}",
    "pretrained": "Cls.load(directory)",
}

_SECTIONS = ("model", "data", "method", "train", "eval")
_ESTIMATORS: dict[tuple[str, str], type[Estimator]] = {}


def estimator(domain: str, name: str, *, method: str | None = None) -> Callable[[type[Estimator]], type[Estimator]]:
    """Class decorator registering an estimator under ``(domain, name)``.

    Args:
        domain: the domain (e.g. ``"sentences"``).
        name: the estimator's registered name, saved in the manifest (usually the method name).
        method: the registry method it trains (``method.name`` of its recipes); default ``name``.

    Returns:
        The decorator; it sets ``domain``, ``estimator_name`` and ``method_name`` on the class.
    """

    def wrap(cls: type[Estimator]) -> type[Estimator]:
        cls.domain, cls.estimator_name, cls.method_name = domain, name, method or name
        _ESTIMATORS[(domain, name)] = cls
        return cls

    return wrap


def estimators(domain: str | None = None) -> dict[tuple[str, str], type[Estimator]]:
    """The registered estimators, importing the domain(s) first.

    Args:
        domain: one domain, or ``None`` for every available domain.

    Returns:
        ``{(domain, estimator name): class}``.
    """
    from . import registry

    for d in [domain] if domain else registry.available_domains():
        registry.domain(d)
    return {k: v for k, v in _ESTIMATORS.items() if domain is None or k[0] == domain}


def estimator_class(domain: str, name: str) -> type[Estimator]:
    """The estimator registered as ``(domain, name)`` (``name``: an estimator or a method name).

    Raises:
        UserError: no such estimator.
    """
    found = estimators(domain)
    if (domain, name) in found:
        return found[(domain, name)]
    by_method = [c for (_, _), c in found.items() if c.method_name == name]
    if by_method:
        return by_method[0]
    raise UserError(
        f"no {domain} estimator named {name!r}; the {domain} estimators are: {', '.join(sorted(n for _, n in found))}."
    )


def load(directory: str | Path) -> Estimator:
    """A saved model of any domain, as the estimator class its manifest names.

    Args:
        directory: a folder written by :meth:`Estimator.save` (or a run's ``model/`` folder).

    Returns:
        The fitted estimator (``embed``/``predict``/``evaluate`` work; ``task_`` is ``None``).
    """
    return Estimator.load(directory)


class Estimator:
    """Base of every domain estimator (see the module docstring for the contract).

    Args:
        recipe: a shipped recipe name or a YAML path: the starting settings (default: the method's shipped
            recipe, ``default_recipe``).
        profile: the recipe profile (default: ``quick`` for the shipped recipe, the recipe's own default when
            ``recipe`` is given).
        out: ``None``: train in a temporary run directory removed after ``fit``; a folder: keep the run
            directory there (``run_dir_``), as ``cl-domains run --out`` does.
        model: merged onto the recipe's ``model`` section (validated by the recipe schema).
        data: merged onto the recipe's ``data`` section.
        method: merged onto the recipe's ``method`` section; a string is short for ``{"name": ...}``.
        train: merged onto the recipe's ``train`` section. Training length is ``train={"max_steps": N}`` (or
            ``{"epochs": E}``), the seed ``train={"seed": s}`` (default 0 with the shipped recipe; a recipe given
            explicitly keeps its own seed).
        eval: merged onto the recipe's ``eval`` section.
    """

    domain: ClassVar[str] = ""
    estimator_name: ClassVar[str] = ""
    method_name: ClassVar[str] = ""
    default_recipe: ClassVar[str] = ""  # the shipped recipe used when recipe=None
    default_profile: ClassVar[str] = "quick"
    default_seed: ClassVar[int] = 0
    renamed: ClassVar[dict[str, str]] = RENAMED_KEYWORDS  # a domain may extend it
    # cl-domains embed may embed a list/array of inputs in chunks (with a progress bar): set False where the rows of
    # one call interact (e.g. batches sorted by length) so that chunks would not equal one call exactly
    chunked_inference: ClassVar[bool] = True

    # learned attributes, set by fit() or load()
    recipe_: Recipe  # the resolved recipe trained
    task_: Task | None  # the trained task (None after load)
    run_dir_: Path | None  # the kept run directory (None with out=None, or after load)
    metrics_: dict[str, float]  # the final test metrics of the run report
    baselines_: dict[str, dict[str, float]]  # the baselines' test metrics on the same data
    paper_: dict[str, float]  # the paper's numbers, when they are for the data trained on

    def __init__(
        self,
        *,
        recipe: str | Path | None = None,
        profile: str | None = None,
        out: str | Path | None = None,
        model: dict | None = None,
        data: dict | None = None,
        method: dict | str | None = None,
        train: dict | None = None,
        eval: dict | None = None,
        **unknown: Any,
    ):
        self._refuse(unknown)
        self.recipe, self.profile, self.out = recipe, profile, out
        self.model, self.data, self.method, self.train, self.eval = model, data, method, train, eval

    # ------------------------------------------------------------------ parameters
    @classmethod
    def _param_names(cls) -> list[str]:
        names: list[str] = []
        for klass in reversed(cls.__mro__):
            init = vars(klass).get("__init__")
            if init is None or klass is object:
                continue
            for p in inspect.signature(init).parameters.values():
                if p.kind is p.KEYWORD_ONLY and p.name not in names:
                    names.append(p.name)
        return names

    def _refuse(self, unknown: dict[str, Any], where: str = "()") -> None:
        for key in unknown:
            if key in self.renamed:
                raise UserError(
                    f"{type(self).__name__}{where}: the keyword {key!r} is not accepted; write {self.renamed[key]}."
                )
            hint = difflib.get_close_matches(key, self._param_names(), n=1)
            raise UserError(
                f"{type(self).__name__}{where}: unknown keyword {key!r}"
                + (f" (did you mean {hint[0]!r}?)" if hint else "")
                + f"; the keywords are: {', '.join(self._param_names())}."
            )

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor's keyword arguments (scikit-learn convention).

        Returns:
            ``{name: value}`` for every keyword of ``__init__``.
        """
        return {name: getattr(self, name, None) for name in self._param_names()}

    def set_params(self, **params: Any) -> Estimator:
        """Change constructor arguments; unknown or renamed names are refused like in ``__init__``.

        Returns:
            ``self``.
        """
        names = self._param_names()
        self._refuse({k: v for k, v in params.items() if k not in names})
        for k, v in params.items():
            setattr(self, k, v)
        return self

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items() if v is not None)
        return f"{type(self).__name__}({shown})"

    # ------------------------------------------------------------------ the recipe
    def build_recipe(self, data_settings: dict[str, Any] | None = None) -> Recipe:
        """The resolved recipe ``fit`` trains: the starting recipe and profile, then ``data_settings`` (from
        :meth:`data_settings`) and the section dicts, validated by the recipe schema.

        Args:
            data_settings: settings of the ``data`` section derived from ``fit``'s data (applied before ``data=``).

        Returns:
            A :class:`cl_domains.core.recipe.Recipe`.
        """
        from .recipe import MAX_RECIPE_BYTES, _deep_merge, find_recipe, parse_yaml, read_user_text, recipe_from_dict

        explicit = self.recipe is not None
        name = self.recipe if explicit else self.default_recipe
        if not name:
            raise UserError(f"{type(self).__name__} has no default recipe: give recipe=<name or YAML path>.")
        file = find_recipe(name)
        raw = parse_yaml(read_user_text(file, "recipe", MAX_RECIPE_BYTES), f"recipe {file}")
        if not isinstance(raw, dict):
            raise UserError(f"recipe {file} must be a mapping of keys (name, domain, model, data, method, train, ...).")
        profile = self.profile or (None if explicit else self.default_profile)
        sections: dict[str, Any] = {}
        if not explicit:
            sections["train"] = {"seed": self.default_seed}
        if data_settings:
            sections["data"] = dict(data_settings)
        for key in _SECTIONS:
            value = getattr(self, key)
            if value is None:
                continue
            if key == "method" and isinstance(value, str):
                value = {"name": value}
            if not isinstance(value, dict):
                raise UserError(
                    f"{type(self).__name__}({key}=...) must be a dict of recipe keys (e.g. {key}={{...}}), "
                    f"not {type(value).__name__}."
                )
            sections[key] = _deep_merge(sections.get(key, {}), value)
        wanted = sections.get("method", {}).get("name")
        if self.method_name and wanted is not None and wanted != self.method_name:
            raise UserError(
                f"{type(self).__name__} trains the method {self.method_name!r}, not {wanted!r}: use the estimator "
                f"of {wanted!r} (cl_domains.core.estimator.estimator_class({self.domain!r}, {wanted!r}))."
            )
        recipe = recipe_from_dict(raw, profile, source=str(file), sections=sections)
        if self.domain and recipe.domain != self.domain:
            raise UserError(
                f"recipe {file} is a {recipe.domain} recipe; {type(self).__name__} is a {self.domain} estimator."
            )
        if self.method_name and recipe.method.name != self.method_name:
            raise UserError(
                f"recipe {file} trains {recipe.method.name!r}; {type(self).__name__} trains {self.method_name!r}."
            )
        return recipe

    # ------------------------------------------------------------------ hooks for a domain
    def data_settings(self, data: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """Settings of the recipe's ``data`` section that ``fit(data, ...)`` implies (e.g. a path the domain's
        readers know). Default: ``{}`` for ``data=None`` (the recipe's own data)."""
        if data is None:
            return {}
        raise UserError(f"{type(self).__name__}.fit() does not accept data of type {type(data).__name__}.")

    def build_task(self, recipe: Recipe, device: torch.device, data: Any, *args: Any, **kwargs: Any) -> Task:
        """The task to train: the registered task class of the recipe's method, built on the in-memory ``data``.
        Default: ``cls(recipe, None, device)`` (the data is in the recipe)."""
        from . import registry

        task: Task = registry.method_spec(recipe.domain, recipe.method.name).cls(recipe, None, device)
        return task

    def after_fit(self, task: Task) -> None:
        """Keep what inference needs from the trained ``task`` (default: ``model_ = task.model``)."""
        self.model_ = task.model

    def embed_tensor(self, x: Any) -> torch.Tensor:
        """Embeddings of ``x`` as a torch tensor ``[n, dim]`` (any device, any float dtype)."""
        raise NotImplementedError(f"{type(self).__name__}.embed_tensor")

    def embedding_dim(self) -> int | None:
        """The width of :meth:`embed`'s rows, saved in the manifest (``None``: unknown)."""
        return None

    def onnx_graph(self) -> Any:
        """The module ``cl-domains export --format onnx`` traces (a :class:`cl_domains.core.export.OnnxGraph`).
        Default: no export for this estimator (a :class:`UserError`)."""
        raise UserError(
            f"{type(self).__name__} has no ONNX export; the sentence, time-series and sequential-recommendation "
            "encoders have one."
        )

    def save_files(self, directory: Path) -> tuple[dict[str, dict], dict[str, Any], dict[str, Any]]:
        """What :meth:`save` writes besides the manifest and card. A domain may write files itself (e.g. a
        sentence-transformers folder) and return the rest.

        Returns:
            ``(tensors, extras, fields)``: ``{file: {name: tensor}}`` written as safetensors, ``{file: obj}``
            written as JSON, and extra manifest fields. Default: ``model_``'s state dict as ``model.safetensors``.
        """
        state = {k: v.detach().cpu().contiguous() for k, v in self.model_.state_dict().items()}
        return {"model.safetensors": state}, {}, {}

    def restore(self, model_dir: ModelDir) -> None:
        """Rebuild the fitted state (e.g. ``model_``) from a :class:`cl_domains.core.modeldir.ModelDir`."""
        raise NotImplementedError(f"{type(self).__name__}.restore")

    # ------------------------------------------------------------------ the verbs
    def fit(self, data: Any = None, *args: Any, **kwargs: Any) -> Estimator:
        """Train on ``data`` (the domain's in-memory form or a file its readers know; ``None``: the recipe's data)
        through the same loop as ``cl-domains run``.

        Returns:
            ``self``, with ``recipe_``, ``metrics_``, ``baselines_``, ``run_dir_`` and ``task_`` set.
        """
        from .runs import shown_paper
        from .train import train_recipe

        self._refuse({k: v for k, v in kwargs.items() if k in self.renamed}, ".fit()")
        recipe = self.build_recipe(self.data_settings(data, *args, **kwargs))
        built = []

        def build(recipe: Recipe, device: torch.device) -> Task:
            built.append(self.build_task(recipe, device, data, *args, **kwargs))
            return built[-1]

        with tempfile.TemporaryDirectory(prefix="cl_domains_fit_") as tmp:
            run = train_recipe(recipe, out=self.out if self.out is not None else tmp, build=build)
            self.run_dir_ = run.dir if self.out is not None else None
            metrics = run.metrics
        self.recipe_ = recipe
        self.task_ = built[-1]
        self.metrics_ = dict(metrics.get("final", {}))
        self.baselines_ = {k: dict(v) for k, v in metrics.get("baselines", {}).items()}
        self.paper_ = dict(shown_paper(metrics))
        self.after_fit(self.task_)
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "recipe_"):
            raise UserError(
                f"this {type(self).__name__} is not fitted yet: call fit(...) or {type(self).__name__}.load(dir)."
            )

    def embed(self, x: Any, *, as_tensor: bool = False) -> Any:
        """Embeddings of ``x`` (the domain's inputs), one row per input in input order.

        Args:
            x: the inputs (see the domain's documentation).
            as_tensor: return a CPU ``torch.Tensor`` instead of a numpy array.

        Returns:
            ``numpy.ndarray`` of float32, shape ``[n, dim]`` (or the same values as a tensor).
        """
        import torch

        self._check_fitted()
        with torch.no_grad():
            z = self.embed_tensor(x)
        z = z.detach().to("cpu", torch.float32)
        return z if as_tensor else z.numpy()

    def predict(self, x: Any) -> Any:
        """Predictions of the method's head (regression values, intents, ...)."""
        raise UserError(f"{type(self).__name__} has no prediction head; use embed(x).")

    def evaluate(self, data: Any = None) -> dict[str, float]:
        """Metrics with the same keys as the run report's final metrics.

        Args:
            data: ``None``: the test split of the data trained on (needs the trained task); a domain estimator
                may accept its own data forms.

        Returns:
            ``{metric: value}``.
        """
        from .modes import eval_mode

        self._check_fitted()
        if data is not None:
            raise UserError(f"{type(self).__name__}.evaluate() takes no data; it scores the test split of the recipe.")
        task = self.task_
        if task is None:
            raise UserError(
                f"{type(self).__name__}.evaluate() scores the test split with the trained task; a loaded model has "
                "none."
            )
        with eval_mode(task.model):
            return dict(task.evaluate("test"))

    def manifest(self) -> dict[str, Any]:
        """The manifest fields this estimator saves (see :func:`cl_domains.core.modeldir.make_manifest`)."""
        from .modeldir import make_manifest

        self._check_fitted()
        return make_manifest(
            self.recipe_,
            estimator=self.estimator_name,
            embedding_dim=self.embedding_dim(),
            metrics=self.metrics_,
            baselines=self.baselines_,
            paper=self.paper_,
        )

    def save(self, directory: str | Path) -> Path:
        """Write the model directory: weights, what inference needs, ``cl_domains.json`` and the model card.

        Args:
            directory: created if needed; files of the same names are replaced.

        Returns:
            The directory.
        """
        from .modeldir import write_model_dir

        self._check_fitted()
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        tensors, extras, fields = self.save_files(directory)
        write_model_dir(directory, {**self.manifest(), **fields}, tensors, extras)
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> Estimator:
        """A fitted estimator from a saved model directory (the class its manifest names).

        Args:
            directory: a folder written by :meth:`save` or a run's ``model/`` folder.

        Returns:
            The estimator, ready to ``embed``/``predict``.

        Raises:
            UserError: a missing or damaged directory, or a model of another estimator than ``cls``.
        """
        from .modeldir import read_model_dir
        from .recipe import recipe_from_dict

        md = read_model_dir(directory)
        m = md.manifest
        target = estimator_class(m["domain"], m.get("estimator") or m["method"])
        if not issubclass(target, cls):
            raise UserError(
                f"{md.path} holds a {m['domain']} {target.__name__} model, not a {cls.__name__}: "
                f"load it with {target.__name__}.load or cl_domains.load."
            )
        obj = target()
        obj.recipe_ = recipe_from_dict(m["recipe"], source=str(md.path / "cl_domains.json"))
        obj.task_ = None
        obj.run_dir_ = None
        obj.metrics_ = dict(m.get("metrics", {}))
        obj.baselines_ = dict(m.get("baselines", {}))
        obj.paper_ = dict(m.get("paper", {}))
        obj.restore(md)
        return obj

    # ------------------------------------------------------------------ own-data inputs (cl-domains embed)
    @classmethod
    def read_inputs(cls, path: str | Path) -> tuple[list[str], Any]:
        """Inputs to embed from a file in one of the domain's formats (``cl-domains embed``).

        Returns:
            ``(ids, inputs)``: one id per input row and what :meth:`embed` accepts.
        """
        raise UserError(f"{cls.__name__} cannot read inputs from files yet.")
