"""The shared core: losses, pairs/weights, heads, distributed gathering, training loop, recipes,
run outputs and data access. Domains build positive structures and weights and call into it.

The loss names below are imported on first use, so that ``cl_domains.core.errors`` (and the CLI's
``--help``) does not pull in torch."""

from .errors import TrainingDiverged, UserError

_LOSSES = (
    "Temperature",
    "contrastive_nll",
    "dcl",
    "info_nce",
    "masked_logsumexp",
    "mv_dhel",
    "mv_infonce",
    "nt_xent",
    "supcon",
)
__all__ = ["UserError", "TrainingDiverged", *_LOSSES]


def __getattr__(name: str):
    if name in _LOSSES:
        from . import losses

        return getattr(losses, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
