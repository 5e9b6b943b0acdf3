"""Time series: TS2Vec and AutoTCL, evaluated by ridge forecasting (ETT, WTH), SVM classification (UCR, .ts)
and ridge extrinsic regression (TSER .ts files, long tables).

Public API::

    from cl_domains.timeseries import TS2Vec, AutoTCL, TSEncoder, read_forecast, read_long, read_ts, read_ucr

``TS2Vec`` / ``AutoTCL`` (or ``TSEncoder(method=...)``) are the estimators: ``fit``, ``embed``, ``evaluate``,
``save`` / ``load``; ``TS2VecTask`` / ``AutoTCLTask`` are their training tasks (what a recipe runs).
"""

from ..core.registry import register_domain
from .autotcl import AutoTCLTask
from .data import Classification, Forecast, Regression, read_forecast, read_long, read_ucr, read_uea
from .encoder import AutoTCL, TS2Vec, TSEncoder
from .losses import hierarchical_loss
from .networks import TrendHead, TS2VecNet
from .task import TimeseriesDataConfig, TimeseriesEvalConfig, TimeseriesModelConfig, TimeseriesTask
from .ts2vec import TS2VecTask
from .ts_format import read_ts

__all__ = [
    "TSEncoder",
    "read_forecast",
    "read_ucr",
    "read_uea",
    "read_ts",
    "read_long",
    "Regression",
    "Forecast",
    "Classification",
    "hierarchical_loss",
    "TS2VecNet",
    "TrendHead",
    "TimeseriesTask",
    "TS2Vec",
    "AutoTCL",
    "TS2VecTask",
    "AutoTCLTask",
]

register_domain("timeseries", model=TimeseriesModelConfig, data=TimeseriesDataConfig, eval=TimeseriesEvalConfig)
