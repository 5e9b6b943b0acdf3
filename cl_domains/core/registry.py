"""Names -> builders, so recipes select domains and methods by name.

A domain module registers one :class:`DomainSpec`; each of its methods registers a builder
``build(recipe, data_root, device) -> Task`` and the pydantic model of its ``method`` section.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable

from .errors import UserError

DOMAINS = ("sentences", "timeseries", "hetgraph", "seqrec", "slu", "regression")


@dataclass
class DomainSpec:
    name: str
    model_schema: type
    data_schema: type
    eval_schema: type
    methods: dict[str, tuple[type, Callable[..., Any]]] = field(default_factory=dict)


_REGISTRY: dict[str, DomainSpec] = {}


def register_domain(name: str, model_schema: type, data_schema: type, eval_schema: type) -> DomainSpec:
    """Declare a domain and the pydantic schemas of its recipe sections ``model``, ``data``, ``eval``."""
    spec = _REGISTRY.setdefault(name, DomainSpec(name, model_schema, data_schema, eval_schema))
    spec.model_schema, spec.data_schema, spec.eval_schema = model_schema, data_schema, eval_schema
    return spec


def register_method(domain: str, name: str, schema: type):
    """Decorator: ``@register_method("sentences", "simcse", SimCSEConfig)`` on a builder."""

    def wrap(builder):
        _REGISTRY[domain].methods[name] = (schema, builder)
        return builder

    return wrap


def domain(name: str) -> DomainSpec:
    if name not in DOMAINS:
        raise UserError(f"domain {name!r} is not one of: {', '.join(DOMAINS)}.")
    if name not in _REGISTRY:
        try:
            importlib.import_module(f"cl_domains.{name}")
        except ModuleNotFoundError as exc:
            raise UserError(
                f"domain {name!r} is not available in this installation ({exc}). "
                f"Install its extra, e.g. pip install 'cl-domains[{name}]'."
            ) from exc
    if name not in _REGISTRY:
        raise UserError(f"domain {name!r} is not implemented yet in this version of cl-domains.")
    return _REGISTRY[name]
