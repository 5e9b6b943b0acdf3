"""Regression metrics: MAE, MSE, RMSE, GM (geometric mean of |error|), Pearson and Spearman,
overall and per shot group (DIR benchmarks: Yang et al. 2021)."""

from __future__ import annotations

import numpy as np
from scipy.stats import pearsonr, spearmanr

from .data import SHOTS

__all__ = ["regression_metrics", "metrics_by_shot"]


def regression_metrics(pred: np.ndarray, target: np.ndarray) -> dict[str, float]:
    pred, target = np.asarray(pred, np.float64).ravel(), np.asarray(target, np.float64).ravel()
    err = np.abs(pred - target)
    mse = float(np.mean(err**2))
    out = {
        "mae": float(err.mean()),
        "mse": mse,
        "rmse": float(np.sqrt(mse)),
        # GM as in DIR: exp(mean log |e|), with |e| floored so that one exact hit does not give 0
        "gm": float(np.exp(np.mean(np.log(np.maximum(err, 1e-12))))),
    }
    constant = np.ptp(pred) == 0 or np.ptp(target) == 0
    out["pearson"] = 0.0 if constant else float(pearsonr(pred, target).statistic)
    out["spearman"] = 0.0 if constant else float(spearmanr(pred, target).statistic)
    return out


def metrics_by_shot(pred: np.ndarray, target: np.ndarray, shot: np.ndarray | None) -> dict[str, float]:
    """Overall metrics, plus ``<shot>_<metric>`` for each many/medium/few group present."""
    out = regression_metrics(pred, target)
    if shot is None:
        return out
    for group in SHOTS:
        keep = shot == group
        if keep.sum() >= 2:
            out.update({f"{group}_{k}": v for k, v in regression_metrics(pred[keep], target[keep]).items()})
    return out
