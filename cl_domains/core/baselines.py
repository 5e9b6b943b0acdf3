"""The simple baselines every run reports beside its result, on the run's own data and split.

A task may define ``baselines() -> {name: {metric: value}}`` (test metrics with the keys of
``evaluate("test")``); the loop calls it once, before training, and writes the result to
``metrics.json["baselines"]``, ``report.md`` and ``curves.png``. The helpers here are the
domain-free pieces: persistence and ridge forecasts from raw windows, ridge with alpha chosen on
validation, 1-nearest-neighbour classification, item popularity, and MiniRocket (Dempster et al., KDD 2021:
random convolutional features + a ridge) through the optional ``aeon`` package (``pip install
"cl-domains[baselines]"``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import numpy as np

__all__ = [
    "RIDGE_ALPHAS",
    "lagged_windows",
    "last_value_forecast",
    "ridge_select",
    "nearest_neighbour_accuracy",
    "popularity_counts",
    "forecast_errors",
    "minirocket_available",
    "minirocket_predict",
]

RIDGE_ALPHAS = (0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)


def lagged_windows(x: np.ndarray, window: int) -> np.ndarray:
    """``x`` ``[T, C]`` -> ``[T, window * C]``: row t is ``x[t - window + 1 : t + 1]`` flattened (oldest first),
    zero before the start of the series (the raw input a causal encoder with that window sees)."""
    x = np.asarray(x, dtype=np.float64)
    t, c = x.shape
    padded = np.concatenate([np.zeros((window - 1, c)), x])
    idx = np.arange(t)[:, None] + np.arange(window)[None, :]
    out: np.ndarray = padded[idx].reshape(t, window * c)
    return out


def last_value_forecast(values: np.ndarray, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """Persistence: predict ``values[t]`` for each of the next ``horizon`` steps.

    Returns ``(prediction, truth)``, both ``[T - horizon, horizon * C]`` in the layout of the ridge probes'
    labels (step-major: ``values[t+1]``, then ``values[t+2]``, ...)."""
    values = np.asarray(values, dtype=np.float64)
    n = len(values) - horizon
    truth = np.stack([values[i + 1 : i + 1 + n] for i in range(horizon)], axis=1).reshape(n, -1)
    return np.tile(values[:n], (1, horizon)), truth


def forecast_errors(pred: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    err = pred - truth
    return {"mse": float((err**2).mean()), "mae": float(np.abs(err).mean())}


def ridge_select(
    train: tuple[np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray],
    tests: dict[str, np.ndarray] | None = None,
    alphas: Iterable[float] = RIDGE_ALPHAS,
    score: Callable[[np.ndarray, np.ndarray], float] | None = None,
) -> dict:
    """Ridge regression (features standardised on train, intercept) with alpha picked on validation by
    ``score(pred, truth)`` (default RMSE + MAE, TS2Vec's rule; lower is better). One eigendecomposition
    serves every alpha. Returns ``alpha``, ``val_pred`` and the predictions for each array of ``tests``."""
    x, y = np.asarray(train[0], np.float64), np.asarray(train[1], np.float64)
    squeeze = y.ndim == 1
    y = y[:, None] if squeeze else y
    mu, sd = x.mean(0), x.std(0)
    sd[sd == 0] = 1.0
    y_mu = y.mean(0)
    xs = (x - mu) / sd
    evals, evecs = np.linalg.eigh(xs.T @ xs)
    proj = evecs.T @ (xs.T @ (y - y_mu))
    score = score or (lambda p, t: math.sqrt(float(((p - t) ** 2).mean())) + float(np.abs(p - t).mean()))

    def predict(w: np.ndarray, a: np.ndarray) -> np.ndarray:
        out: np.ndarray = ((np.asarray(a, np.float64) - mu) / sd) @ w + y_mu
        return out[:, 0] if squeeze else out

    best: tuple[float, float, np.ndarray, np.ndarray] | None = None
    for alpha in alphas:
        w = evecs @ (proj / (evals + alpha)[:, None])
        pred = predict(w, val[0])
        s = score(pred, val[1])
        if best is None or s < best[0]:
            best = (s, alpha, w, pred)
    if best is None:
        raise ValueError("ridge_select needs at least one alpha")
    _, alpha, w, val_pred = best
    return {"alpha": alpha, "val_pred": val_pred, "test_pred": {k: predict(w, a) for k, a in (tests or {}).items()}}


def nearest_neighbour_accuracy(
    x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray
) -> float:
    """Accuracy of 1-NN under Euclidean distance on the raw (flattened) inputs; NaN entries count as 0."""
    a = np.nan_to_num(np.asarray(x_train, np.float64).reshape(len(x_train), -1))
    b = np.nan_to_num(np.asarray(x_test, np.float64).reshape(len(x_test), -1))
    d = (b**2).sum(1)[:, None] - 2 * b @ a.T + (a**2).sum(1)[None, :]
    return float((np.asarray(y_train)[d.argmin(1)] == np.asarray(y_test)).mean())


def popularity_counts(items: np.ndarray, n_items: int) -> np.ndarray:
    """Interactions per item id ``1..n_items`` (index 0 is item 1): the most-popular ranking's scores."""
    return np.bincount(np.asarray(items, dtype=np.int64) - 1, minlength=n_items)[:n_items].astype(np.float64)


def minirocket_available() -> bool:
    """Whether the optional ``aeon`` package (MiniRocket) is installed."""
    import importlib.util

    return importlib.util.find_spec("aeon") is not None


def minirocket_predict(
    x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, kind: str = "classify", seed: int = 0
) -> np.ndarray:
    """MiniRocket features (aeon's transform, fitted on train) and a ridge with alpha by leave-one-out CV over
    ``10^-3 .. 10^3``, the classifier of the MiniRocket paper (``kind="regress"``: a ridge regressor).

    Args:
        x_train, x_test: ``[N, T, C]`` series (NaN entries count as 0).
        y_train: class labels or regression targets.
        kind: ``"classify"`` or ``"regress"``.
        seed: the random state of the convolution biases.

    Returns:
        The predictions for ``x_test``.
    """
    from aeon.transformations.collection.convolution_based import MiniRocket
    from sklearn.linear_model import RidgeClassifierCV, RidgeCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    def layout(x: np.ndarray) -> np.ndarray:  # aeon: [N, C, T]
        return np.ascontiguousarray(np.nan_to_num(np.asarray(x, np.float64)).transpose(0, 2, 1))

    tr, te = layout(x_train), layout(x_test)
    transform = MiniRocket(random_state=seed, n_jobs=1)
    f_tr = transform.fit_transform(tr)
    f_te = transform.transform(te)
    alphas = np.logspace(-3, 3, 10)
    head = RidgeClassifierCV(alphas=alphas) if kind == "classify" else RidgeCV(alphas=alphas)
    model = make_pipeline(StandardScaler(), head).fit(f_tr, y_train)
    out: np.ndarray = model.predict(f_te)
    return out
