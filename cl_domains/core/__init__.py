"""The shared core: losses, pairs/weights, heads, distributed gathering, training loop, recipes,
run outputs and data access. Domains build positive structures and weights and call into it."""
from .errors import TrainingDiverged, UserError
from .losses import Temperature, contrastive_nll, dcl, info_nce, masked_logsumexp, mv_dhel, mv_infonce, nt_xent, supcon

__all__ = ["UserError", "TrainingDiverged", "masked_logsumexp", "contrastive_nll", "info_nce", "nt_xent", "supcon",
           "dcl", "mv_infonce", "mv_dhel", "Temperature"]
