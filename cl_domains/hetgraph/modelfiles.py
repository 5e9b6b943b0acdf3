"""The files of a saved hetgraph model: ``model.safetensors`` (every trained module, keys prefixed by role) and
``encoder.json`` (what embedding needs), written for a trained task (a run's ``model/`` folder) and read back by
:class:`cl_domains.hetgraph.estimator.HetGraphEstimator`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from .encoder import MEOWEncoder

__all__ = ["ENCODER_FILE", "WEIGHTS_FILE", "trained_modules", "state_of", "encoder_settings", "write_model"]

ENCODER_FILE = "encoder.json"  # the encoder's settings: target, meta-paths, feature widths, the graph's schema
WEIGHTS_FILE = "model.safetensors"


def trained_modules(task) -> dict[str, nn.Module]:
    """The trained modules of a task by role: ``encoder``, ``objective`` and the method's heads."""
    mods = {"encoder": task.encoder, "objective": task.objective}
    if isinstance(getattr(task, "weights", None), nn.Module):
        mods["weights"] = task.weights
    return mods


def state_of(modules: dict[str, nn.Module]) -> dict[str, torch.Tensor]:
    """One flat state dict: ``<role>.<parameter>``."""
    return {f"{role}.{k}": v.detach().cpu() for role, m in modules.items() for k, v in m.state_dict().items()}


def encoder_settings(encoder: MEOWEncoder, graph) -> dict[str, Any]:
    """The encoder's constructor settings and the node and edge types of the graph it was trained on."""
    node_types, edge_types = graph.metadata()
    return {**encoder.config, "node_types": list(node_types), "edge_types": [list(e) for e in edge_types]}


def write_model(task, directory: str | Path) -> Path:
    """Write the model directory of a trained task (a run's ``model/`` folder; :meth:`HetGraphEstimator.save`).

    Args:
        task: a trained :class:`~cl_domains.hetgraph.task.HetGraphTask`.
        directory: the folder (created).

    Returns:
        The directory: ``model.safetensors`` (``encoder.*``, ``objective.*``, AdaMEOW's ``weights.*``),
        ``encoder.json`` (target, meta-paths, feature widths, the graph's node and edge types), ``cl_domains.json``
        and the model card (``README.md``).
    """
    from ..core.modeldir import make_manifest, write_model_dir

    # the estimators are registered under their method's name (MEOW: meow, AdaMEOW: adameow)
    manifest = make_manifest(task.recipe, embedding_dim=task.recipe.model.hidden)
    return write_model_dir(
        directory,
        {**manifest, "target": task.target},
        {WEIGHTS_FILE: state_of(trained_modules(task))},
        {ENCODER_FILE: encoder_settings(task.encoder, task.data)},
    )
