"""The shared core: losses, pairs/weights, heads, distributed gathering, training loop, recipes,
run outputs and data access. Domains build positive structures and weights and call into it.

The names below are imported on first use, so that ``cl_domains.core.errors`` (and the CLI's
``--help``) does not pull in torch."""

from typing import Any

from .errors import TrainingDiverged, UserError

_LAZY = {
    **dict.fromkeys(
        (
            "Temperature",
            "contrastive_nll",
            "dcl",
            "info_nce",
            "masked_logsumexp",
            "mv_dhel",
            "mv_infonce",
            "nt_xent",
            "supcon",
        ),
        "losses",
    ),
    **dict.fromkeys(("Task", "Study", "StepContext"), "task"),
    **dict.fromkeys(("method", "register_domain"), "registry"),
    **dict.fromkeys(("Callback", "TrainState", "train_recipe", "train_task"), "train"),
    **dict.fromkeys(("Objective", "ObjectiveConfig", "objective_config"), "objectives"),
    "Estimator": "estimator",
    "eval_mode": "modes",
    "generator": "rng",
    "StrictModel": "recipe",
}
__all__ = ["UserError", "TrainingDiverged", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
