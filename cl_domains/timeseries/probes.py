"""Encoding and linear-probe evaluation (the TS2Vec / AutoTCL protocol; ridge on series for TSER regression).

Forecasting: a causal per-timestamp representation (each timestamp encoded from the window of
the ``padding`` steps before it), a ridge regression from the representation at ``t`` to the
next ``H`` target values, alpha chosen on the validation split; MSE/MAE on the scaled values.
Classification: the representation max-pooled over the series, an RBF SVM with C grid-searched
by 5-fold cross-validation when every class has enough train series.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from ..core.errors import UserError

__all__ = [
    "encode_causal",
    "encode_series",
    "forecast_samples",
    "ridge_probe",
    "svm_probe",
    "regression_probe",
    "RIDGE_ALPHAS",
    "SVM_CS",
]

RIDGE_ALPHAS = (0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)
SVM_CS = (1e-4, 1e-3, 1e-2, 1e-1, 1, 10, 100, 1000, 10000, np.inf)
SVM_MAX_ITER = 1_000_000  # a hard margin (C = inf) on inseparable features never converges: libsvm stops here


@torch.no_grad()
def encode_causal(net: nn.Module, x: np.ndarray, padding: int = 200, batch_size: int = 256) -> np.ndarray:
    """``x``: ``[T, C]`` -> ``[T, D]``; row t sees only ``x[t - padding : t + 1]`` (NaN before the start)."""
    device = next(net.parameters()).device
    xt = torch.as_tensor(x, dtype=torch.float32)
    padded = torch.cat([torch.full((padding, xt.shape[1]), float("nan")), xt])
    windows = padded.unfold(0, padding + 1, 1).transpose(1, 2)  # [T, padding+1, C]
    out = [
        net(windows[i : i + batch_size].to(device), mask=False, last=True)[:, -1].cpu()
        for i in range(0, len(windows), batch_size)
    ]
    return torch.cat(out).numpy()


@torch.no_grad()
def encode_series(net: nn.Module, x: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """``x``: ``[N, T, C]`` -> ``[N, D]``, max-pooled over each series' timestamps."""
    device = next(net.parameters()).device
    out = []
    for i in range(0, len(x), batch_size):
        xb = torch.as_tensor(x[i : i + batch_size], dtype=torch.float32, device=device)
        z = net(xb, mask=False)
        present = ~torch.isnan(xb).all(-1, keepdim=True)
        out.append(z.masked_fill(~present, float("-inf")).max(1).values.cpu())
    return torch.cat(out).numpy()


def forecast_samples(
    reprs: np.ndarray, values: np.ndarray, horizon: int, drop: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Features ``reprs[t]`` and labels ``values[t+1 : t+1+horizon]`` (flattened) for every t with a full horizon."""
    n = len(values) - horizon
    if n <= drop:
        raise UserError(
            f"horizon {horizon} is too long for a split of {len(values)} steps "
            f"(needs more than {horizon + drop}); use a shorter horizon."
        )
    labels = np.stack([values[i + 1 : i + 1 + n] for i in range(horizon)], axis=1)
    return reprs[drop:n], labels[drop:].reshape(n - drop, -1)


def ridge_probe(
    train: tuple[np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict[str, float]:
    """Ridge with alpha from :data:`RIDGE_ALPHAS` picked on validation by RMSE + MAE (TS2Vec's protocol);
    returns val (and test) MSE/MAE."""
    from sklearn.linear_model import Ridge

    best = None
    for alpha in RIDGE_ALPHAS:
        model = Ridge(alpha=alpha).fit(*train)
        err = model.predict(val[0]) - val[1]
        mse, mae = float((err**2).mean()), float(np.abs(err).mean())
        if best is None or math.sqrt(mse) + mae < best[0]:
            best = (math.sqrt(mse) + mae, alpha, mse, mae, model)
    _, alpha, mse, mae, model = best
    out = {"alpha": alpha, "val_mse": mse, "val_mae": mae}
    if test is not None:
        pred = model.predict(test[0])
        out.update(mse=float(((pred - test[1]) ** 2).mean()), mae=float(np.abs(pred - test[1]).mean()))
    return out


def svm_probe(
    train: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray] | None = None
) -> dict[str, float]:
    """RBF SVM; C by 5-fold grid search unless the train set is tiny (then C = inf, hard margin).

    Returns ``cv_acc`` (5-fold accuracy on train, for model selection) and ``acc`` on test when given.
    """
    from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_score
    from sklearn.svm import SVC

    x, y = train
    counts = np.bincount(y)
    folds = int(min(5, counts[counts > 0].min()))
    if len(y) // len(counts) < 5 or len(y) < 50:
        clf, c = SVC(C=np.inf, gamma="scale", max_iter=SVM_MAX_ITER), float("inf")
    else:
        search = GridSearchCV(SVC(gamma="scale", max_iter=SVM_MAX_ITER), {"C": list(SVM_CS)}, cv=5, n_jobs=1).fit(x, y)
        c = float(search.best_params_["C"])
        clf = SVC(C=c, gamma="scale", max_iter=SVM_MAX_ITER)
    cv = (
        float(cross_val_score(clf, x, y, cv=StratifiedKFold(folds, shuffle=True, random_state=0)).mean())
        if folds >= 2
        else float("nan")
    )
    out = {"cv_acc": cv, "C": c}
    if test is not None:
        out["acc"] = float((clf.fit(x, y).predict(test[0]) == test[1]).mean())
    return out


def regression_probe(
    train: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray] | None = None
) -> dict[str, float]:
    """Ridge with alpha from :data:`RIDGE_ALPHAS` by 5-fold CV RMSE on train. Features are standardised once with
    the statistics of all training rows (no target is involved), as the final model is: per-fold statistics let a
    column that is almost constant on a fold's rows (e.g. the zero-filled end of the few longer series) blow up
    on its held-out rows.

    Returns ``alpha``, ``cv_rmse`` and ``cv_r2`` (out-of-fold predictions at that alpha, for model selection)
    and ``rmse`` / ``mae`` on test when given.
    """
    from sklearn.linear_model import Ridge
    from sklearn.metrics import r2_score
    from sklearn.model_selection import GridSearchCV, KFold, cross_val_predict

    x, y = np.asarray(train[0], np.float64), np.asarray(train[1], np.float64)
    if len(y) < 4:
        raise UserError(f"regression needs at least 4 train series for its cross-validated ridge, got {len(y)}.")
    mean, std = x.mean(0), x.std(0)
    std = np.where(std > 0, std, 1.0)
    x = (x - mean) / std
    folds = KFold(min(5, len(y)), shuffle=True, random_state=0)
    search = GridSearchCV(Ridge(), {"alpha": list(RIDGE_ALPHAS)}, cv=folds, scoring="neg_root_mean_squared_error")
    search.fit(x, y)
    alpha = float(search.best_params_["alpha"])
    oof = cross_val_predict(Ridge(alpha=alpha), x, y, cv=folds)
    out = {"alpha": alpha, "cv_rmse": float(np.sqrt(((oof - y) ** 2).mean())), "cv_r2": float(r2_score(y, oof))}
    if test is not None:
        pred = search.best_estimator_.predict((np.asarray(test[0], np.float64) - mean) / std)
        err = pred - np.asarray(test[1], np.float64)
        out.update(rmse=float(np.sqrt((err**2).mean())), mae=float(np.abs(err).mean()))
    return out
