"""Names -> domains and methods, so recipes select them by name.

A domain is a subpackage of ``cl_domains`` (or of a plugin) whose ``__init__`` calls :func:`register_domain`
with the schemas of its recipe sections; a method is a :class:`~cl_domains.core.task.Task` (or
:class:`~cl_domains.core.task.Study`) class decorated with :func:`method`, its recipe schema in ``config``.
Domains are discovered: the subpackages of ``cl_domains`` and the modules named by the entry points of the
group ``cl_domains.plugins`` (an external package declares
``[project.entry-points."cl_domains.plugins"] mydomain = "my_package.mydomain"``).
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.metadata
import pkgutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from .errors import UserError
from .text import short_repr

PLUGIN_GROUP = "cl_domains.plugins"
_NOT_DOMAINS = {"core"}


class MethodSpec(NamedTuple):
    config: type  # pydantic schema of the recipe's `method` section
    cls: type  # the Task or Study class, built with cls(recipe, data_root, device)


@dataclass
class DomainSpec:
    name: str
    model_schema: type | None = None
    data_schema: type | None = None
    eval_schema: type | None = None
    methods: dict[str, MethodSpec] = field(default_factory=dict)


_REGISTRY: dict[str, DomainSpec] = {}
_plugins_loaded = False


def register_domain(name: str, *, model: type, data: type, eval: type, replace: bool = False) -> DomainSpec:
    """Declare a domain and the pydantic schemas (``core.recipe.StrictModel``) of its recipe sections
    ``model``, ``data`` and ``eval``.

    A name that is taken (a built-in domain such as ``regression``, or another plugin's) is refused with a
    :class:`UserError`, unless ``replace=True`` declares that this domain replaces it on purpose (its recipes are
    then validated by the new schemas; the methods registered so far are kept)."""
    _import_builtin(name)
    spec = _REGISTRY.setdefault(name, DomainSpec(name))
    if (
        not replace
        and spec.model_schema is not None
        and (spec.model_schema, spec.data_schema, spec.eval_schema)
        != (
            model,
            data,
            eval,
        )
    ):
        raise UserError(
            f"the domain {name!r} is registered already (by {spec.model_schema.__module__}); a plugin that means to "
            f"replace it declares so: register_domain({name!r}, ..., replace=True). Otherwise choose another name."
        )
    spec.model_schema, spec.data_schema, spec.eval_schema = model, data, eval
    return spec


def method(domain: str, *names: str, replace: bool = False):
    """Class decorator: ``@method("seqrec", "mclrec")`` registers a Task/Study class under one or more
    method names of a domain (before or after its :func:`register_domain`); ``config`` is its recipe schema.

    A method name the domain has already (e.g. a plugin's ``@method("sentences", "simcse")``) is refused with a
    :class:`UserError`, unless ``replace=True`` declares that this class replaces it on purpose."""
    if not names:
        raise TypeError("method() needs the domain and at least one method name")

    def wrap(cls: type) -> type:
        if getattr(cls, "config", None) is None:
            raise TypeError(f"{cls.__name__} needs a `config` class attribute (its recipe schema) to be registered")
        _import_builtin(domain)
        spec = _REGISTRY.setdefault(domain, DomainSpec(domain))
        for name in names:
            old = spec.methods.get(name)
            same = old is not None and (old.cls.__module__, old.cls.__qualname__) == (cls.__module__, cls.__qualname__)
            if old is not None and not same and not replace:
                raise UserError(
                    f"the {domain} method {name!r} is registered already (by {old.cls.__module__}.{old.cls.__qualname__}); "
                    f"a plugin that means to replace it declares so: @method({domain!r}, {name!r}, replace=True). "
                    "Otherwise choose another name."
                )
        for name in names:
            spec.methods[name] = MethodSpec(cls.config, cls)
        return cls

    return wrap


def _import_builtin(name: str) -> None:
    """Import the built-in domain ``name`` (if it is one) before anything else registers under its name, so that
    a plugin loaded first cannot take the name silently (inside the domain's own import this is a no-op)."""
    if name in builtin_domains():
        with contextlib.suppress(ModuleNotFoundError):  # its extra is not installed: the name is still the built-in's
            importlib.import_module(f"cl_domains.{name}")


def builtin_domains() -> list[str]:
    """The domain subpackages shipped in ``cl_domains`` (found on disk, nothing imported)."""
    package = str(Path(__file__).resolve().parents[1])  # the cl_domains folder, found without importing it
    return sorted(m.name for m in pkgutil.iter_modules([package]) if m.ispkg and m.name not in _NOT_DOMAINS)


def _plugin_entry_points() -> list[importlib.metadata.EntryPoint]:
    return list(importlib.metadata.entry_points(group=PLUGIN_GROUP))


def load_plugins() -> None:
    """Import every ``cl_domains.plugins`` entry point (once); a broken plugin is a clear error."""
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    for ep in _plugin_entry_points():
        try:
            ep.load()
        except (Exception, SystemExit) as exc:  # noqa: BLE001 - any failure of third-party code, or its exit
            what = f"exited on import (SystemExit({exc.code!r}))" if isinstance(exc, SystemExit) else "failed to load"
            detail = "" if isinstance(exc, SystemExit) else f": {type(exc).__name__}: {str(exc)[:500]}"
            raise UserError(
                f"the cl-domains plugin {ep.name!r} ({ep.value}, from the {PLUGIN_GROUP} entry points) {what}"
                f"{detail}. Fix or uninstall that package."
            ) from None


def available_domains() -> list[str]:
    """Built-in domains and those plugins declare (by entry-point name)."""
    return sorted(set(builtin_domains()) | {ep.name for ep in _plugin_entry_points()})


def domain(name: str) -> DomainSpec:
    """The registered domain ``name``, importing it (or loading plugins) on first use."""
    if name not in _REGISTRY and name in builtin_domains():
        try:
            importlib.import_module(f"cl_domains.{name}")
        except ModuleNotFoundError as exc:
            raise UserError(
                f"domain {name!r} is not available in this installation ({exc}). "
                f"Install its extra, e.g. pip install 'cl-domains[{name}]'."
            ) from exc
    if name not in _REGISTRY:
        load_plugins()
    if name not in _REGISTRY:
        raise UserError(f"domain {name!r} is not one of: {', '.join(available_domains())}.")
    if _REGISTRY[name].model_schema is None:
        raise UserError(f"domain {name!r} has methods but no register_domain({name!r}, model=, data=, eval=) call.")
    return _REGISTRY[name]


def method_spec(domain_name: str, name: Any, where: str = "recipe") -> MethodSpec:
    """The method ``name`` of a domain (plugins may add methods to built-in domains)."""
    spec = domain(domain_name)
    if name not in spec.methods:
        load_plugins()
    if not isinstance(name, str) or name not in spec.methods:
        raise UserError(
            f"{where}: 'method.name' = {short_repr(name)} is not a {domain_name} method; "
            f"choose one of: {', '.join(sorted(spec.methods))}."
        )
    return spec.methods[name]
