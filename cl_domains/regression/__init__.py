"""Regression: SupReMix (mixup-made hard pairs), Rank-N-Contrast and plain L1/MSE training on
tables (UCI Airfoil, Concrete, Energy, or the user's own CSV/parquet), sentence pairs (STS-B-DIR)
and series windows (exchange rate).

Your own data: ``data.dataset: table | pbp`` with ``data.path`` (a table, a PBP folder), or in memory with the
estimators (``SupReMix().fit(X, y)``; ``RankNContrast``, ``L1Regressor``; :func:`fit` is a shortcut).

Public API::

    from cl_domains.regression import SupReMix, RankNContrast, L1Regressor, Regressor, fit, load_table
    from cl_domains.regression import supremix_mixtures, supremix_loss, SupReMixLoss, rnc_loss
"""

from ..core.registry import register_domain
from .api import L1Regressor, RankNContrast, Regressor, SupReMix, fit
from .data import (
    RegressionData,
    Split,
    from_arrays,
    load_airfoil,
    load_exchange,
    load_stsb_dir,
    load_table,
    load_uci_pbp,
    stsb_shot_groups,
)
from .encoder import MLPEncoder, TemporalEncoder
from .losses import RnCObjective, SupReMixObjective, rnc_objective, supremix_objective
from .metrics import metrics_by_shot, regression_metrics
from .rnc import rnc_loss
from .supremix import Mixtures, SupReMixLoss, supremix_loss, supremix_mixtures
from .task import (
    METHODS,
    L1Task,
    RegressionDataConfig,
    RegressionEvalConfig,
    RegressionMethodConfig,
    RegressionModelConfig,
    RegressionTask,
    RnCTask,
    SupReMixTask,
)

register_domain("regression", model=RegressionModelConfig, data=RegressionDataConfig, eval=RegressionEvalConfig)

__all__ = [
    "fit",
    "Regressor",
    "SupReMix",
    "RankNContrast",
    "L1Regressor",
    "from_arrays",
    "SupReMixLoss",
    "supremix_mixtures",
    "supremix_loss",
    "Mixtures",
    "rnc_loss",
    "supremix_objective",
    "rnc_objective",
    "SupReMixObjective",
    "RnCObjective",
    "RegressionTask",
    "SupReMixTask",
    "RnCTask",
    "L1Task",
    "RegressionMethodConfig",
    "METHODS",
    "RegressionData",
    "Split",
    "load_airfoil",
    "load_uci_pbp",
    "load_stsb_dir",
    "load_exchange",
    "load_table",
    "stsb_shot_groups",
    "MLPEncoder",
    "TemporalEncoder",
    "regression_metrics",
    "metrics_by_shot",
]
