"""The conformance cases of the estimator contract (run by ``tests/test_estimators.py``).

Each domain supplies ``tests/conformance/<domain>.py`` with ``CASES = {"<estimator name>": Case(...)}``, one case per
registered estimator (``cl_domains.core.estimator.estimators(domain)``; the name is usually the method name). Every
callable of a case receives a :class:`Ctx`: ``ctx.tmp`` (a fresh folder) and the pytest fixtures the case names in
``fixtures`` (e.g. ``ctx.tiny_backbone``). Keep every fit tiny: a few examples, a couple of steps (seconds).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

__all__ = ["Case", "Ctx"]

Ctx = SimpleNamespace  # ctx.tmp: Path, plus one attribute per fixture named in Case.fixtures


@dataclass
class Case:
    """How to exercise one estimator.

    Attributes:
        make: ``ctx -> Estimator``, unfitted, with tiny settings (``train={"max_steps": 2}``, ...).
        fit_args: ``ctx -> tuple`` of the positional arguments of ``fit`` (the data, e.g. ``(X, y)``).
        inputs: ``ctx -> x`` for ``embed`` (and ``predict`` when ``predict`` is true); ``n`` rows.
        n: the number of rows ``embed(inputs)`` returns.
        eval_data: ``ctx -> data`` given to ``evaluate``; ``None``: ``evaluate()`` (the test split trained on).
        predict: the estimator has a head: predictions must survive save/load too.
        embed_file: ``ctx -> Path`` of a file in a format the domain's ``read_inputs`` knows; when set, the case
            also checks ``cl-domains embed`` on the saved model against ``embed`` (one case per domain is enough).
        fixtures: names of pytest fixtures to put on ``ctx``.
    """

    make: Callable[[Ctx], Any]
    fit_args: Callable[[Ctx], tuple]
    inputs: Callable[[Ctx], Any]
    n: int
    eval_data: Callable[[Ctx], Any] | None = None
    predict: bool = False
    embed_file: Callable[[Ctx], Path] | None = None
    fixtures: tuple[str, ...] = ()
