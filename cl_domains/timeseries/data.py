"""Readers for the time-series benchmarks (ETT/WTH forecasting CSVs, UCR-2018 TSVs) and the user's own data
(``.ts`` train/test files for classification and TSER regression, long-format tables).

Protocol (TS2Vec / AutoTCL): ETTh train/val/test = rows [0, 8640), [8640, 11520), [11520, 14400)
(ETTm the same x4); other CSVs 60/20/20 by rows. A ``StandardScaler`` is fitted on the train rows
only; 7 time covariates (minute, hour, weekday, day, day of year, month, week of year), scaled
the same way, are prepended as input channels. UCR labels map to 0..K-1 in sorted order of the
train labels; series are used as they are except the archive's non-normalised sets, which get
one global train mean/std.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..core.errors import UserError
from ..core.recipe import short_repr
from ..core.validate import check_allocation, check_finite

__all__ = [
    "Forecast",
    "Classification",
    "read_forecast",
    "read_ucr",
    "read_uea",
    "read_ts_split",
    "read_long",
    "read_long_split",
    "Regression",
    "time_covariates",
    "UNIVARIATE_TARGETS",
    "HORIZONS",
    "NON_NORMALISED_UCR",
]

UNIVARIATE_TARGETS = {"ETTh1": "OT", "ETTh2": "OT", "ETTm1": "OT", "ETTm2": "OT", "WTH": "WetBulbCelsius"}
HORIZONS = {
    "ETTh1": [24, 48, 168, 336, 720],
    "ETTh2": [24, 48, 168, 336, 720],
    "ETTm1": [24, 48, 96, 288, 672],
    "WTH": [24, 48, 168, 336, 720],
}
# UCR-2018 sets that are not z-normalised per series (TS2Vec's list, restricted to names it contains)
NON_NORMALISED_UCR = frozenset(
    {
        "AllGestureWiimoteX",
        "AllGestureWiimoteY",
        "AllGestureWiimoteZ",
        "BME",
        "Chinatown",
        "Crop",
        "EOGHorizontalSignal",
        "EOGVerticalSignal",
        "Fungi",
        "GestureMidAirD1",
        "GestureMidAirD2",
        "GestureMidAirD3",
        "GesturePebbleZ1",
        "GesturePebbleZ2",
        "GunPointAgeSpan",
        "GunPointMaleVersusFemale",
        "GunPointOldVersusYoung",
        "HouseTwenty",
        "InsectEPGRegularTrain",
        "InsectEPGSmallTrain",
        "MelbournePedestrian",
        "PickupGestureWiimoteZ",
        "PigAirwayPressure",
        "PigArtPressure",
        "PigCVP",
        "PLAID",
        "PowerCons",
        "Rock",
        "SemgHandGenderCh2",
        "SemgHandMovementCh2",
        "SemgHandSubjectCh2",
        "ShakeGestureWiimoteZ",
        "SmoothSubspace",
        "UMD",
    }
)


@dataclass
class Forecast:
    """A scaled forecasting series. ``values``: ``[T, n_cov + n_target]`` (covariates first);
    ``borders``: end rows of train / val / test; ``targets``: names of the target columns."""

    name: str
    values: np.ndarray
    n_covariates: int
    borders: tuple[int, int, int]
    targets: list[str]

    def split(self, part: str) -> np.ndarray:
        a, b, c = self.borders
        return {"train": self.values[:a], "val": self.values[a:b], "test": self.values[b:c]}[part]


@dataclass
class Classification:
    """``x_*``: ``[N, T, C]`` float32 (NaN pads shorter series); ``y_*``: ``[N]`` int in 0..K-1."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: list


def time_covariates(index: pd.DatetimeIndex) -> np.ndarray:
    """The 7 calendar features of TS2Vec's forecasting protocol, ``[T, 7]`` float."""
    return np.stack(
        [
            index.minute,
            index.hour,
            index.dayofweek,
            index.day,
            index.dayofyear,
            index.month,
            index.isocalendar().week.to_numpy(),
        ],
        axis=1,
    ).astype(np.float64)


def _borders(name: str, n: int) -> tuple[int, int, int]:
    if name.startswith("ETTh"):
        b = (12 * 30 * 24, 16 * 30 * 24, 20 * 30 * 24)
    elif name.startswith("ETTm"):
        b = (12 * 30 * 24 * 4, 16 * 30 * 24 * 4, 20 * 30 * 24 * 4)
    else:
        b = (int(n * 0.6), int(n * 0.8), n)
    if b[2] > n:
        raise UserError(f"{name}: the file has {n} rows but its split needs {b[2]} (train/val/test end at {b}).")
    return b


def _scale(x: np.ndarray, train_end: int) -> np.ndarray:
    mean = x[:train_end].mean(0)
    std = x[:train_end].std(0)
    return (x - mean) / np.where(std > 0, std, 1.0)


def read_forecast(
    path: str | Path, name: str | None = None, *, univariate: bool = True, target: str | None = None
) -> Forecast:
    """An ETT/WTH-layout CSV (``date`` + numeric columns, ``.gz`` accepted) -> :class:`Forecast`.

    ``name`` (default: the file stem, e.g. ``ETTh1``) picks the split rule and the univariate
    target; ``target`` overrides the target column.
    """
    path = Path(path)
    name = name or path.name.split(".")[0]
    try:
        df = pd.read_csv(path)
    except Exception as exc:
        raise UserError(f"{path}: cannot be read as CSV ({str(exc)[:300]}).") from None
    if "date" not in df.columns:
        raise UserError(
            f"{path}: no 'date' column; columns are {short_repr(list(df.columns))} "
            "(expected the ETT/Informer layout: date, then numeric columns)."
        )
    try:
        index = pd.DatetimeIndex(pd.to_datetime(df.pop("date")))
    except Exception as exc:
        raise UserError(f"{path}: the 'date' column is not parseable as dates ({str(exc)[:300]}).") from None
    if univariate:
        target = target or UNIVARIATE_TARGETS.get(name)
        if target is None:
            raise UserError(
                f"{path}: no default univariate target for {name!r}; set data.target to one of {short_repr(list(df.columns))}."
            )
        if target not in df.columns:
            raise UserError(f"{path}: target column {target!r} not found; columns are {short_repr(list(df.columns))}.")
        df = df[[target]]
    bad = [c for c in df.columns if not pd.api.types.is_numeric_dtype(df[c])]
    if bad:
        raise UserError(f"{path}: column(s) {short_repr(bad)} are not numeric.")
    values = df.to_numpy(np.float64)
    if np.isnan(values).any():
        r, c = np.argwhere(np.isnan(values))[0]
        raise UserError(
            f"{path}: missing value (NaN) in column {df.columns[c]!r} at data row {r + 2} "
            f"({int(np.isnan(values).sum())} in all); fill or drop them first."
        )
    check_finite(
        values, what="series values", file=path, columns=[str(c) for c in df.columns], first_row=2, row_name="line"
    )
    borders = _borders(name, len(values))
    values = values[: borders[2]]
    cov = time_covariates(index[: borders[2]])
    both = np.concatenate([_scale(cov, borders[0]), _scale(values, borders[0])], axis=1).astype(np.float32)
    return Forecast(name, both, cov.shape[1], borders, list(df.columns))


def _read_tsv(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        df = pd.read_csv(path, sep="\t", header=None)
    except Exception as exc:
        raise UserError(f"{path}: cannot be read as a UCR TSV ({str(exc)[:300]}).") from None
    if df.shape[1] < 2:
        raise UserError(f"{path}: expected a label column then the series values, got {df.shape[1]} column(s).")
    labels = df.pop(0).to_numpy()
    try:
        x = df.to_numpy(np.float64)
    except ValueError as exc:
        raise UserError(f"{path}: non-numeric series values ({str(exc)[:300]}).") from None
    check_finite(
        x,
        what="series values",
        file=path,
        row_name="line",
        allow_nan=True,
        fix="Write missing values as NaN; infinite values are not data.",
    )
    return labels, x


def read_ucr(folder: str | Path, name: str | None = None) -> Classification:
    """``<folder>/<Name>_TRAIN.tsv[.gz]`` and ``_TEST`` -> :class:`Classification` (``C = 1``).

    Varying-length sets are NaN-padded on the right, as in the archive; a series that is all NaN
    is an error.
    """
    folder = Path(folder)
    name = name or folder.name
    parts = {}
    for split in ("TRAIN", "TEST"):
        cands = [folder / f"{name}_{split}.tsv", folder / f"{name}_{split}.tsv.gz"]
        f = next((c for c in cands if c.is_file()), None)
        if f is None:
            raise UserError(f"UCR set {name!r}: neither {cands[0]} nor {cands[1].name} exists.")
        parts[split] = _read_tsv(f)
        empty = np.isnan(parts[split][1]).all(1)
        if empty.any():
            raise UserError(f"{f}: series on line {int(np.argmax(empty)) + 1} has no values.")
    (ytr, xtr), (yte, xte) = parts["TRAIN"], parts["TEST"]
    if xtr.shape[1] != xte.shape[1]:
        width = max(xtr.shape[1], xte.shape[1])
        xtr, xte = (np.pad(x, ((0, 0), (0, width - x.shape[1])), constant_values=np.nan) for x in (xtr, xte))
    classes = sorted(np.unique(ytr).tolist())
    lookup = {c: i for i, c in enumerate(classes)}
    unknown = sorted(set(np.unique(yte).tolist()) - set(classes))
    if unknown:
        raise UserError(f"UCR set {name!r}: test labels {unknown[:5]} never occur in the train file.")
    if name in NON_NORMALISED_UCR:
        mean, std = np.nanmean(xtr), np.nanstd(xtr)
        xtr, xte = (xtr - mean) / std, (xte - mean) / std
    return Classification(
        name,
        xtr[..., None].astype(np.float32),
        np.array([lookup[v] for v in ytr]),
        xte[..., None].astype(np.float32),
        np.array([lookup[v] for v in yte]),
        classes,
    )


def read_uea(name: str) -> Classification:
    """A UEA set shipped inside the aeon or sktime wheel (BasicMotions, JapaneseVowels), ``[N, T, C]``."""
    loaders = []
    try:
        from aeon.datasets import load_classification as _aeon

        loaders.append(lambda split: _aeon(name, split=split))
    except ImportError:
        pass
    try:
        from sktime.datasets import load_UCR_UEA_dataset as _sk

        loaders.append(lambda split: _sk(name, split=split, return_type="numpy3D"))
    except ImportError:
        pass
    if not loaders:
        raise UserError(f"UEA set {name!r} needs aeon or sktime installed (pip install aeon); neither is.")
    xs, ys = [], []
    for split in ("train", "test"):
        x, y = loaders[0](split)
        xs.append(np.asarray(x, np.float32).transpose(0, 2, 1))
        ys.append(np.asarray(y))
    classes = sorted(np.unique(ys[0]).tolist())
    lookup = {c: i for i, c in enumerate(classes)}
    return Classification(
        name, xs[0], np.array([lookup[v] for v in ys[0]]), xs[1], np.array([lookup[v] for v in ys[1]]), classes
    )


@dataclass
class Regression:
    """Extrinsic regression (TSER): ``x_*`` ``[N, T, C]`` float32 (NaN pads shorter series), ``y_*`` ``[N]`` float."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def _scale_panel(xtr: np.ndarray, xte: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean/std over all train timestamps (TS2Vec's UEA protocol), applied to both splits."""
    mean, std = np.nanmean(xtr, axis=(0, 1)), np.nanstd(xtr, axis=(0, 1))
    std = np.where(std > 0, std, 1.0)
    return ((xtr - mean) / std).astype(np.float32), ((xte - mean) / std).astype(np.float32)


def _width(x: np.ndarray, t: int) -> np.ndarray:
    return np.pad(x, ((0, 0), (0, t - x.shape[1]), (0, 0)), constant_values=np.nan) if x.shape[1] < t else x


def read_ts_split(train: str | Path, test: str | Path, kind: str = "classify") -> Classification | Regression:
    """A ``.ts`` train and test file (:func:`~cl_domains.timeseries.ts_format.read_ts`) -> :class:`Classification`
    (``kind="classify"``, labels mapped to 0..K-1 in sorted order of the train labels) or :class:`Regression`
    (``kind="regress"``, ``@targetLabel true``). Channels are scaled with the train mean/std."""
    from .ts_format import read_ts

    (xtr, ytr, mtr), (xte, yte, mte) = read_ts(train), read_ts(test)
    want = {"classify": "classLabel", "regress": "targetLabel"}[kind]
    for path, meta in ((train, mtr), (test, mte)):
        if meta["task"] != kind:
            raise UserError(
                f"{path}: data.kind is {kind!r} but the header has no '@{want} true'; "
                f"use a file with @{want} true or set data.kind to "
                f"{'regress' if meta['task'] == 'regress' else 'classify'}."
                if meta["task"]
                else f"{path}: data.kind is {kind!r} but the file has no labels (no '@{want} true' in its header)."
            )
    return _panel_split(mtr["problem_name"], train, test, (xtr, ytr), (xte, yte), kind)


def _panel_split(name: str, train, test, tr: tuple, te: tuple, kind: str) -> Classification | Regression:
    """Train/test panels (NaN-padded ``[n, T, d]``) and labels -> one padded width, train-fitted scaling."""
    (xtr, ytr), (xte, yte) = tr, te
    if xtr.shape[2] != xte.shape[2]:
        raise UserError(
            f"{test}: {xte.shape[2]} dimension(s) but the train file {train} has {xtr.shape[2]}; "
            "train and test must have the same dimensions."
        )
    t = max(xtr.shape[1], xte.shape[1])
    xtr, xte = _scale_panel(_width(xtr, t), _width(xte, t))
    if kind == "regress":
        for path, y in ((train, ytr), (test, yte)):
            check_finite(
                y,
                what="the regression targets",
                file=path,
                row_name="series",
                fix="Every series needs a finite numeric target; fix or remove those series.",
            )
        return Regression(name, xtr, ytr, xte, yte)
    classes = sorted(np.unique(ytr).tolist())
    unknown = sorted(set(np.unique(yte).tolist()) - set(classes))
    if unknown:
        raise UserError(f"{test}: test labels {unknown[:5]} never occur in the train file {train}.")
    lookup = {c: i for i, c in enumerate(classes)}
    return Classification(
        name, xtr, np.array([lookup[v] for v in ytr]), xte, np.array([lookup[v] for v in yte]), classes
    )


def _plain(v):
    return v.item() if isinstance(v, np.generic) else v


def read_long(
    frame,
    *,
    id: str = "series",
    time: str = "time",
    value: str | list[str] = "value",
    label: str | None = None,
    path: str | Path | None = None,
    keys: str = "",
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """A long-format table (one row per series and time step) -> ``(X [n, T, d], y, ids)``.

    ``frame``: a pandas DataFrame or a file :func:`cl_domains.core.tables.read_table` reads (CSV, TSV,
    JSONL, parquet). Series come in sorted ``id`` order, steps in ``time`` order; ``value`` names one
    column per dimension; shorter series are NaN-padded at the end. ``label`` (optional) is a per-series
    column (class or target), constant within a series; ``y`` is ``None`` without it. ``keys`` prefixes the
    argument names in errors (``"data."`` when a recipe names the columns).
    """
    from ..core.tables import read_table, require_columns

    if not isinstance(frame, pd.DataFrame):
        path = Path(frame)
        frame = read_table(path, what="long-format series table")
    where = str(path) if path is not None else "the long-format frame"
    values = [value] if isinstance(value, str) else list(value)
    require_columns(
        frame,
        where,
        {
            f"{keys}id": id,
            f"{keys}time": time,
            **{f"{keys}value[{k}]" if len(values) > 1 else f"{keys}value": v for k, v in enumerate(values)},
            f"{keys}label": label,
        },
        what="long-format series table",
    )
    bad = [v for v in values if not pd.api.types.is_numeric_dtype(frame[v])]
    if bad:
        raise UserError(f"{where}: value column(s) {short_repr(bad)} are not numeric; convert or drop them first.")
    dup = frame.duplicated([id, time])
    if dup.any():
        row = frame[dup].iloc[0]
        raise UserError(
            f"{where}: series {_plain(row[id])!r} has two rows at time {_plain(row[time])!r} (columns {id!r}, {time!r}); "
            "keep one row per series and time step."
        )
    check_finite(
        frame[values].to_numpy(np.float64),
        what="series values",
        file=where,
        columns=values,
        row_name="data row",
        allow_nan=True,
        fix="Leave missing steps empty (NaN); infinite values are not data.",
    )
    if pd.api.types.is_numeric_dtype(frame[time]):
        check_finite(
            frame[time].to_numpy(np.float64),
            what=f"the time column {time!r}",
            file=where,
            row_name="data row",
            fix="Times must be finite numbers or dates; fix those rows.",
        )
    df = frame.sort_values([id, time], kind="stable")
    groups = df.groupby(id, sort=True)
    ids = np.array(list(groups.groups))
    lengths = groups.size().to_numpy()
    check_allocation(
        8.0 * len(ids) * int(lengths.max()) * len(values),
        what=f"padding all {len(ids):,} series to the longest one ({int(lengths.max()):,} steps)",
        file=where,
        fix="Check the id column (data.id), or cut the series to a common length",
    )
    X = np.full((len(ids), int(lengths.max()), len(values)), np.nan)
    pos = groups.cumcount().to_numpy()
    X[groups.ngroup().to_numpy(), pos] = df[values].to_numpy(np.float64)
    y = None
    if label is not None:
        n_labels = groups[label].nunique(dropna=False)
        if (n_labels > 1).any():
            sid = n_labels.index[int(np.argmax(n_labels.to_numpy() > 1))]
            raise UserError(
                f"{where}: series {_plain(sid)!r} has {int(n_labels[sid])} different values in the label column "
                f"{label!r}; a label belongs to the whole series, so give it one value."
            )
        y = groups[label].first().to_numpy()
    return X, y, ids


def read_long_split(
    train: str | Path, test: str | Path, kind: str, *, id: str, time: str, value: list[str], label: str
) -> Classification | Regression:
    """Train and test long tables (:func:`read_long`, columns named by the recipe's ``data.id`` / ``time`` /
    ``value`` / ``label``) -> :class:`Classification` or :class:`Regression` (numeric labels)."""
    parts = []
    for path in (train, test):
        x, y, _ = read_long(path, id=id, time=time, value=value, label=label, path=path, keys="data.")
        if kind == "regress":
            try:
                y = y.astype(np.float64)
            except (TypeError, ValueError):
                raise UserError(
                    f"{path}: the label column {label!r} (data.label) is not numeric; kind regress needs a number "
                    "per series (or set data.kind: classify)."
                ) from None
        else:
            y = y.astype(str)
        parts.append((x, y))
    return _panel_split(Path(train).name.split(".")[0], train, test, parts[0], parts[1], kind)
