"""Recipes: YAML files validated against a schema, with profiles and dotted overrides.

A recipe has ``name, domain, description, default_profile, model, data, method, train, eval,
paper, profiles``. ``model``/``data``/``eval`` are validated by the domain's schemas and
``method`` by the schema its ``name`` selects (see :mod:`cl_domains.core.registry`). A profile
is a partial recipe deep-merged over the base; ``--set a.b=c`` overrides are applied last.
Every unknown key or wrong type is a :class:`UserError` that names the key path.
"""

from __future__ import annotations

import copy
import difflib
import re
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Union, get_args, get_origin

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PositiveInt,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from . import registry
from .errors import UserError
from .text import short_repr  # re-exported: its home is core.text

__all__ = [
    "StrictModel",
    "TrainConfig",
    "PaperConfig",
    "paper_applies",
    "Recipe",
    "load_recipe",
    "recipe_from_dict",
    "parse_override",
    "parse_yaml",
    "read_user_text",
    "recipe_dirs",
    "short_repr",
]


MAX_RECIPE_BYTES = 1_000_000  # a recipe is a few kB; anything near this is not one
MAX_RECIPE_DEPTH = 32  # nesting levels of mappings/lists
MAX_ERRORS_SHOWN = 8


def _flat_types(annotation: Any) -> list[Any]:
    """``Optional[Annotated[int, ...]]`` -> ``[int, NoneType]``."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _flat_types(get_args(annotation)[0])
    if origin is Union or origin is types.UnionType:
        return [t for a in get_args(annotation) for t in _flat_types(a)]
    return [annotation]


class StrictModel(BaseModel):
    """Base of every recipe section: unknown keys are errors, and booleans and numbers are not
    converted into each other (``max_steps: true`` or ``eval_before: 1`` are errors, not 1 / True)."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())
    renamed: ClassVar[dict[str, str]] = {}  # old key -> new key: the old one is refused, naming the new one
    # alternative keys (one source of data or another) -> the keys that only apply with it: one given by an
    # override replaces the recipe's others (see replace_alternatives)
    alternatives: ClassVar[dict[str, tuple[str, ...]]] = {}

    @model_validator(mode="before")
    @classmethod
    def _refuse_renamed_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for old, new in cls.renamed.items():
                if old in data:
                    raise PydanticCustomError(
                        "renamed_key",
                        "the key '{old}' was renamed to '{new}': write {new}: {value}",
                        {"old": old, "new": new, "value": short_repr(data[old])},
                    )
        return data

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_number_mixups(cls, value: Any, info: ValidationInfo) -> Any:
        field = cls.model_fields.get(info.field_name or "")
        if field is None or value is None:
            return value
        kinds = [t for t in _flat_types(field.annotation) if t is not type(None)]
        if isinstance(value, bool) and bool not in kinds and (int in kinds or float in kinds):
            raise ValueError("expected a number, got a boolean (true/false)")
        if kinds == [bool] and not isinstance(value, bool):
            raise ValueError("expected true or false")
        return value


class TrainConfig(StrictModel):
    seed: int = 42
    batch_size: int = Field(64, gt=0)
    lr: float = Field(3e-5, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    epochs: int = Field(1, gt=0)
    max_steps: int | None = Field(None, gt=0, description="stop after this many steps (overrides epochs)")
    warmup_ratio: float = Field(0.0, ge=0, le=1)
    schedule: Literal["linear", "constant", "cosine"] = "linear"
    grad_clip: float | None = Field(None, gt=0)
    eval_every: PositiveInt | Literal["epoch"] | None = Field(
        125, description="steps between dev evaluations, 'epoch', or null (end only)"
    )
    patience: int | None = Field(None, gt=0, description="stop after this many dev evaluations without improvement")
    select_metric: str | None = Field(None, description="dev metric for best-checkpoint selection")
    select_mode: Literal["max", "min"] = "max"
    checkpoint_every: int = Field(100, gt=0)
    keep_checkpoints: int = Field(
        2,
        gt=0,
        description="checkpoints kept (newest); resume falls back to an older intact one when the newest is damaged",
    )
    log_every: int = Field(10, gt=0)
    threads: int | None = Field(None, gt=0, description="torch CPU threads (default: torch's choice)")
    device: str = "auto"
    eval_before: bool = Field(True, description="score the untrained model on the test split too")
    baselines: bool = Field(True, description="score the task's baselines (e.g. the untrained backbone) beside ours")
    keep_start: bool = Field(
        True,
        description="score the starting model on dev before training and keep it when no trained checkpoint beats it",
    )
    precision: Literal["fp32", "bf16", "fp16"] = Field(
        "fp32", description="training forward passes under autocast (bf16/fp16; fp16 with a gradient scaler)"
    )
    compile: bool = Field(False, description="torch.compile the task's model before training")
    track: list[Literal["mlflow", "tensorboard"]] = Field(
        default_factory=list, description="experiment trackers: mlflow (./mlruns or MLFLOW_TRACKING_URI), tensorboard"
    )
    grad_cache_chunk: int | None = Field(
        None,
        gt=0,
        description="GradCache: embed the batch in sub-batches of this many examples without a graph, "
        "take the loss on the whole batch, then backpropagate sub-batch by sub-batch (a batch far larger than fits; "
        "needs a task with embed/loss_from_embeddings)",
    )


class PaperConfig(StrictModel):
    source: str = ""
    setting: str = ""
    metrics: dict[str, float] = Field(default_factory=dict)
    data: dict[str, Any] = Field(
        default_factory=dict,
        description="the data settings the paper's numbers are for "
        "(keys of the recipe's data section, e.g. {path: ett/ETTh1}); reports show the paper "
        "numbers only when the run's data has these values",
    )


def paper_applies(recipe: Recipe) -> tuple[bool, str]:
    """Whether the recipe's paper numbers are for the data this run uses, and why not."""
    if not recipe.paper.metrics or not recipe.paper.data:
        return True, ""
    data = recipe.data.model_dump() if hasattr(recipe.data, "model_dump") else dict(recipe.data)
    off = {k: v for k, v in recipe.paper.data.items() if data.get(k) != v}
    if not off:
        return True, ""
    return False, (
        "paper numbers not shown: they are for data "
        + ", ".join(f"{k} = {v}" for k, v in recipe.paper.data.items())
        + "; this run has "
        + ", ".join(f"{k} = {data.get(k)}" for k in off)
    )


class MatrixConfig(StrictModel):
    """How ``cl-domains matrix`` scores this recipe (see :mod:`cl_domains.core.matrix`)."""

    metric: str | None = Field(None, description="the test metric compared (default: the first paper metric)")
    temperatures: list[float] = Field(
        default_factory=list, description="temperatures tried (default: the method's own, and half and twice it)"
    )


class _RecipeFile(StrictModel):
    name: str
    domain: str
    description: str = ""
    default_profile: str | None = None
    model: dict[str, Any] = Field(default_factory=dict)
    data: dict[str, Any] = Field(default_factory=dict)
    method: dict[str, Any] = Field(default_factory=dict)
    train: TrainConfig = Field(default_factory=TrainConfig)
    eval: dict[str, Any] = Field(default_factory=dict)
    paper: PaperConfig = Field(default_factory=PaperConfig)
    profiles: dict[str, dict[str, Any]] = Field(default_factory=dict)
    matrix: MatrixConfig = Field(default_factory=MatrixConfig)


@dataclass
class Recipe:
    """A validated, fully resolved recipe."""

    name: str
    domain: str
    description: str
    profile: str | None
    model: Any
    data: Any
    method: Any
    train: TrainConfig
    eval: Any
    paper: PaperConfig
    resolved: dict[str, Any]  # the merged plain dict, as saved with a run
    source: str
    matrix: MatrixConfig = field(default_factory=MatrixConfig)

    def dump(self) -> str:
        return yaml.safe_dump(self.resolved, sort_keys=False)


class _RecipeLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses aliases (no "billion laughs"), nesting deeper than
    ``MAX_RECIPE_DEPTH`` (no recursion error) and duplicate keys (no silent "last one wins")."""

    _depth = 0

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            raise yaml.composer.ComposerError(
                None,
                None,
                f"YAML aliases (*{short_repr(event.anchor)[1:-1]}) are not allowed in recipes: write the value out",
                event.start_mark,
            )
        self._depth += 1
        try:
            if self._depth > MAX_RECIPE_DEPTH:
                raise yaml.composer.ComposerError(
                    None, None, f"nested deeper than {MAX_RECIPE_DEPTH} levels", event.start_mark
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node, deep=False):
        seen: dict[Any, int] = {}
        for key_node, _ in node.value if isinstance(node, yaml.MappingNode) else ():
            if isinstance(key_node, yaml.ScalarNode):
                key = self.construct_object(key_node)
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {short_repr(key)} (first on line {seen[key]})", key_node.start_mark
                    )
                seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep)


_BRACKETS = re.compile(r"[\[\]{}]")


def parse_yaml(text: str, where: str) -> Any:
    """YAML text from a user -> plain data, with :class:`_RecipeLoader`'s limits; any problem is
    a :class:`UserError` naming ``where`` and the line."""
    depth = 0
    for m in _BRACKETS.finditer(text):  # PyYAML's scanner is quadratic in flow nesting: refuse deep [[[ early
        depth = depth + 1 if m.group() in "[{" else max(depth - 1, 0)
        if depth > MAX_RECIPE_DEPTH:
            raise UserError(
                f"{where}, line {text.count(chr(10), 0, m.start()) + 1}: brackets nested deeper than "
                f"{MAX_RECIPE_DEPTH} levels."
            )
    try:
        return yaml.load(text, Loader=_RecipeLoader)  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise UserError(f"{where} is not valid YAML: {str(exc)[:600]}".replace("\n", " ")) from None
    except (ValueError, OverflowError, RecursionError, MemoryError) as exc:  # e.g. an integer of 10,000 digits
        raise UserError(f"{where}: unreadable value ({type(exc).__name__}: {str(exc)[:200]}).") from None


def read_user_text(path: Path, what: str, max_bytes: int) -> str:
    """A user's text file as UTF-8, refusing files over ``max_bytes`` and naming the line of a bad byte."""
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise UserError(
                f"{what} {path} is {size:,} bytes; more than the {max_bytes:,} allowed (is it the right file?)."
            )
        raw = path.read_bytes()
    except OSError as exc:
        raise UserError(f"cannot read {what} {path}: {exc.strerror or exc}.") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise UserError(
            f"{what} {path}, line {line}: not UTF-8 text (byte {raw[exc.start]:#04x} at offset "
            f"{exc.start}); save it as UTF-8."
        ) from None


def recipe_dirs() -> list[Path]:
    """Where bare recipe names are looked up: ./recipes, then the recipes shipped with the package."""
    here = Path(__file__).resolve().parents[1]
    return [Path.cwd() / "recipes", here / "recipes", here.parent / "recipes"]


def find_recipe(path: str | Path) -> Path:
    """A recipe file: the path itself, or a bare name looked up in ``recipe_dirs()``."""
    p = Path(path)
    if "\0" in str(p):
        raise UserError(f"recipe path {short_repr(str(p))} contains a NUL byte.")
    if p.is_file():
        return p
    looked = [p]
    if p.suffix not in (".yaml", ".yml") and len(p.parts) == 1:
        for d in recipe_dirs():
            cand = d / f"{p.name}.yaml"
            looked.append(cand)
            if cand.is_file():
                return cand
    raise UserError(
        f"recipe not found: {path} (looked at: {', '.join(str(x) for x in looked)}). "
        "Run `cl-domains list` to see the recipes."
    )


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"train.lr=1e-5"`` -> ``(["train", "lr"], 1e-05)``; the value is parsed as YAML."""
    if "=" not in text:
        raise UserError(f"--set expects KEY.PATH=VALUE, got {text!r} (example: --set train.lr=1e-5).")
    key, value = text.split("=", 1)
    parts = [k for k in key.strip().split(".") if k]
    if not parts:
        raise UserError(f"--set {text!r}: empty key path.")
    try:
        parsed = yaml.load(value, Loader=_RecipeLoader) if value.strip() else ""  # a SafeLoader subclass
    except (yaml.YAMLError, ValueError, OverflowError):
        parsed = value
    return parts, parsed


def _deep_merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def _set_path(d: dict, parts: list[str], value: Any) -> None:
    for k in parts[:-1]:
        if not isinstance(d.get(k), dict):
            d[k] = {}
        d = d[k]
    d[parts[-1]] = value


def replace_alternatives(section: dict, schema: type, given: set[str] | dict) -> dict:
    """``section`` without the keys that a key in ``given`` replaces: when ``given`` (the keys an override or
    an estimator's settings set) names one of ``schema.alternatives`` with a value, the recipe's other
    alternatives and the keys that only apply with them are dropped, unless given too (e.g. an interaction log
    given replaces the recipe's sequence file)."""
    groups = getattr(schema, "alternatives", {})
    if not any(k in groups and section.get(k) is not None for k in given):
        return section
    out = dict(section)
    for key, companions in groups.items():
        if key not in given:
            for k in (key, *companions):
                if k not in given:
                    out.pop(k, None)
    return out


def _fields_at(model: type | None, loc: tuple) -> list[str]:
    """Allowed keys of the (nested) pydantic model that owns ``loc[-1]``."""
    for part in loc[:-1]:
        if model is None or not (isinstance(model, type) and issubclass(model, BaseModel)):
            return []
        field = model.model_fields.get(str(part))
        model = getattr(field, "annotation", None) if field else None
    if isinstance(model, type) and issubclass(model, BaseModel):
        return sorted(model.model_fields)
    return []


def _explain(exc: ValidationError, model: type, prefix: str, where: str) -> UserError:
    lines = []
    errors = exc.errors()
    for err in errors[:MAX_ERRORS_SHOWN]:
        loc = tuple(p if isinstance(p, int) else short_repr(p)[1:-1] for p in err["loc"])
        path = ".".join(str(p) for p in (prefix, *loc) if p != "")
        if err["type"] == "extra_forbidden":
            allowed = _fields_at(model, loc)
            parent = ".".join(str(p) for p in (prefix, *loc[:-1]) if p != "") or "the top level"
            hint = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
            msg = f"unknown key '{path}'"
            if hint:
                msg += f" (did you mean '{hint[0]}'?)"
            if allowed:
                msg += f"; allowed keys under {parent}: {', '.join(allowed)}"
        elif err["type"] == "missing":
            msg = f"missing required key '{path}'"
        elif err["type"] == "renamed_key":
            msg = f"{path or 'the top level'}: {err['msg']}"
        else:
            msg = f"'{path}' = {short_repr(err.get('input'))} is invalid: {err['msg']}"
        lines.append(msg)
    if len(errors) > MAX_ERRORS_SHOWN:
        lines.append(f"and {len(errors) - MAX_ERRORS_SHOWN} more")
    return UserError(f"{where}: " + "; ".join(lines) + ".")


def _validate(model: type, data: Any, prefix: str, where: str):
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise _explain(exc, model, prefix, where) from None


def load_recipe(path: str | Path, profile: str | None = None, overrides: list[str] | tuple[str, ...] = ()) -> Recipe:
    """Load, merge the profile, apply ``--set`` overrides and validate a recipe."""
    file = find_recipe(path)
    raw = parse_yaml(read_user_text(file, "recipe", MAX_RECIPE_BYTES), f"recipe {file}")
    return recipe_from_dict(raw, profile, overrides, source=str(file))


def recipe_from_dict(
    raw: Any,
    profile: str | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    *,
    source: str = "<in memory>",
    sections: dict[str, dict[str, Any]] | None = None,
) -> Recipe:
    """A recipe from a mapping shaped like a recipe file (what in-memory entry points such as ``fit(...)`` build),
    validated exactly as :func:`load_recipe` validates a file; ``source`` names it in errors. ``sections``
    (e.g. ``{"train": {"max_steps": 10}}``, what an estimator's keyword dicts give) is deep-merged after the profile
    and before ``overrides``."""
    where = f"recipe {source}"
    if not isinstance(raw, dict):
        raise UserError(f"{where} must be a mapping of keys (name, domain, model, data, method, train, ...).")
    raw = copy.deepcopy(raw)
    base = _validate(_RecipeFile, raw, "", where)  # checks the top level before merging profiles
    profile = profile or base.default_profile
    merged = {k: v for k, v in raw.items() if k != "profiles"}
    if profile is not None:
        if profile not in base.profiles:
            choices = ", ".join(base.profiles) or "none defined"
            raise UserError(f"{where}: unknown profile {short_repr(profile)}; choose one of: {choices}.")
        merged = _deep_merge(merged, base.profiles[profile])
        where += f" (profile {profile!r})"
    given = set()  # the data keys set by the Python settings or --set: one source given replaces the other
    if sections:
        merged = _deep_merge(merged, sections)
        where += f" with the Python settings {', '.join(f'{k}=' for k in sections)}"
        given |= set(sections.get("data") or {})
    for text in overrides:
        parts, value = parse_override(text)
        _set_path(merged, parts, value)
        given |= {parts[1]} if len(parts) == 2 and parts[0] == "data" else set()
    if isinstance(merged.get("data"), dict) and isinstance(merged.get("domain"), str) and given:
        schema = registry.domain(merged["domain"]).data_schema
        merged["data"] = replace_alternatives(merged["data"], schema, given)
    if overrides:
        where += " with --set overrides"
    top = _validate(_RecipeFile, {**merged, "profiles": {}}, "", where)
    spec = registry.domain(top.domain)
    method_schema = registry.method_spec(top.domain, top.method.get("name"), where).config
    # What a run saves: loading it again (e.g. on --resume) gives the same recipe.
    resolved = {**merged, "default_profile": None, "train": top.train.model_dump()}
    return Recipe(
        name=top.name,
        domain=top.domain,
        description=top.description,
        profile=profile,
        model=_validate(spec.model_schema, top.model, "model", where),
        data=_validate(spec.data_schema, top.data, "data", where),
        method=_validate(method_schema, top.method, "method", where),
        train=top.train,
        eval=_validate(spec.eval_schema, top.eval, "eval", where),
        paper=top.paper,
        resolved=resolved,
        source=source,
        matrix=top.matrix,
    )
