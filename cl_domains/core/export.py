"""ONNX export of a saved model: one graph from the model's inputs to the embedding ``embed`` returns.

``cl-domains export MODEL_DIR --format onnx`` (or :func:`export_onnx`) loads the model directory, asks its estimator
for an :class:`OnnxGraph` (the domain's hook :meth:`cl_domains.core.estimator.Estimator.onnx_graph`: the module to
trace, example inputs, and how raw inputs become the graph's inputs), traces it with ``torch.onnx.export`` and checks
the file with ``onnx.checker``. Preprocessing that is tensor arithmetic (pooling, input scaling, normalisation) is
inside the graph; tokenisation and id lookup stay in Python (:meth:`OnnxGraph.feeds`).

Needs the ``export`` extra: ``pip install 'cl-domains[export]'`` (``onnx``, ``onnxruntime``).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import UserError

__all__ = ["FORMATS", "OPSET", "OnnxGraph", "export_onnx", "onnx_runner", "onnx_embed", "require_export"]

FORMATS = ("onnx",)
OPSET = 17
OUTPUT = "embedding"


@dataclass
class OnnxGraph:
    """What a domain hands to the exporter.

    Attributes:
        module: ``forward(*inputs) -> [batch, dim]`` float32, in eval mode: the embedding exactly as ``embed``
            returns it.
        inputs: example inputs by graph input name, in ``forward``'s argument order.
        feeds: raw inputs (what ``embed`` accepts) -> ``{input name: numpy array}`` for onnxruntime.
        dynamic: ``{input name: {axis: axis name}}``; default: axis 0 of every input is ``batch``.
    """

    module: Any
    inputs: dict[str, Any]
    feeds: Callable[[Any], dict[str, np.ndarray]]
    dynamic: dict[str, dict[int, str]] = field(default_factory=dict)


def require_export() -> None:
    """Raise a :class:`UserError` naming the extra to install when ``onnx`` or ``onnxruntime`` is missing."""
    missing = [m for m in ("onnx", "onnxruntime") if importlib.util.find_spec(m) is None]
    if missing:
        raise UserError(
            f"ONNX export needs {' and '.join(missing)}, which is not installed: pip install 'cl-domains[export]'."
        )


def export_onnx(model_dir: str | Path, out: str | Path | None = None, *, opset: int = OPSET) -> Path:
    """Export a saved model as one ONNX graph (inputs -> embedding).

    Args:
        model_dir: a folder written by ``Estimator.save`` (or a run's ``model/`` folder).
        out: the ``.onnx`` file to write (default: ``MODEL_DIR/model.onnx``).
        opset: the ONNX opset.

    Returns:
        The path written. Its graph has one output, ``embedding`` (``[batch, dim]`` float32).

    Raises:
        UserError: the export extra is missing, the directory is not a model, or its domain has no export.
    """
    require_export()
    import warnings

    import onnx
    import torch

    from .estimator import load

    est = load(model_dir)
    graph = est.onnx_graph()
    path = Path(out) if out is not None else Path(model_dir) / "model.onnx"
    if path.suffix != ".onnx":
        raise UserError(f"--out {path}: the ONNX file name must end in .onnx.")
    path.parent.mkdir(parents=True, exist_ok=True)
    names = list(graph.inputs)
    dynamic = {n: graph.dynamic.get(n, {0: "batch"}) for n in names}
    module = graph.module.eval()
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer notes about Python values captured as constants
            torch.onnx.export(
                module,
                tuple(graph.inputs.values()),
                str(path),
                input_names=names,
                output_names=[OUTPUT],
                dynamic_axes={**dynamic, OUTPUT: {0: "batch"}},
                opset_version=opset,
                dynamo=False,
            )
    except (RuntimeError, torch.onnx.errors.OnnxExporterError) as exc:
        raise UserError(
            f"{model_dir}: this {type(est).__name__} model could not be exported to ONNX ({str(exc).splitlines()[0]})."
        ) from None
    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    meta = {"domain": est.domain, "estimator": est.estimator_name, "inputs": ",".join(names)}
    for k, v in meta.items():
        model.metadata_props.add(key=f"cl_domains.{k}", value=str(v))
    onnx.save(model, str(path))
    return path


def onnx_runner(path: str | Path, threads: int | None = None) -> Any:
    """An ``onnxruntime.InferenceSession`` on the CPU for an exported file.

    Args:
        path: the ``.onnx`` file.
        threads: intra-op threads (``None``: onnxruntime's default).

    Returns:
        The runner.
    """
    require_export()
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if threads is not None:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def onnx_embed(runner: Any, graph: OnnxGraph, x: Any) -> np.ndarray:
    """Embeddings of raw inputs ``x`` through an exported graph.

    Args:
        runner: from :func:`onnx_runner`.
        graph: the estimator's :class:`OnnxGraph` (its ``feeds`` turn ``x`` into the graph's inputs).
        x: what the estimator's ``embed`` accepts.

    Returns:
        ``[n, dim]`` float32.
    """
    return np.asarray(runner.run([OUTPUT], graph.feeds(x))[0], dtype=np.float32)
