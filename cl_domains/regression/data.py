"""Readers and published splits of the regression benchmarks, and loaders for the user's own data: a table
(:func:`load_table`, through ``core.tables``), a folder in the PBP layout (:func:`load_uci_pbp`) or in-memory
arrays (:func:`from_arrays`; series ``[n, length, channels]`` too).

Every loader returns a :class:`RegressionData` with train/dev/test :class:`Split` s. Features are
arrays (tabular: ``[n, d]``; series: ``[n, window]`` or ``[n, length, channels]``) or sentence pairs
(STS-B-DIR); targets are float64 ``[n]``. Inputs are checked on the way in: a missing target column, an index
past the data, NaN features or a constant target are :class:`UserError` s that name the file and the column.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..core.data import open_text
from ..core.errors import UserError
from ..core.recipe import short_repr
from ..core.tables import read_table, require_columns
from ..core.validate import LARGEST

__all__ = [
    "Split",
    "RegressionData",
    "check_xy",
    "load_airfoil",
    "load_uci_pbp",
    "load_stsb_dir",
    "stsb_shot_groups",
    "load_exchange",
    "load_table",
    "from_arrays",
    "pbp_splits",
    "SHOTS",
]

SHOTS = ("many", "medium", "few")


@dataclass
class Split:
    x: object  # np.ndarray [n, d] / [n, window], or (s1, s2) lists of sentences
    y: np.ndarray
    shot: np.ndarray | None = None  # "many" | "medium" | "few" per row, where the benchmark defines it
    offset: np.ndarray | None = None  # a known baseline per row: models regress y - offset (series: last value)

    def __len__(self) -> int:
        return len(self.y)


@dataclass
class RegressionData:
    name: str
    kind: str  # "tabular" | "pairs" | "series"
    train: Split
    dev: Split
    test: Split
    feature_names: list[str] = field(default_factory=list)
    target_name: str = "target"
    scaler: tuple[np.ndarray, np.ndarray] | None = None  # training mean, std: prepare() applies them to new x

    def prepare(self, x: np.ndarray) -> np.ndarray:
        """New raw inputs in the form the model was trained on (series: gaps filled; both: standardised)."""
        x = np.asarray(x, dtype=np.float64)
        if self.kind == "series" and x.ndim == 2:
            x = x[..., None]
        want = np.shape(self.train.x)[1:]
        want = (*want, 1) if self.kind == "series" and len(want) == 1 else want  # [n, window]: one channel
        if x.shape[1:] != want:
            raise UserError(
                f"inputs of shape {x.shape} do not match the training inputs [n, {', '.join(map(str, want))}]; "
                "give the same columns (series: the same length and channels) as in training."
            )
        if self.kind == "series":
            x = _fill_series(x, "input")
        if self.scaler is None:
            return x.astype(np.float32)
        mu, sd = self.scaler
        return ((x - mu) / sd).astype(np.float32)


def check_xy(
    x: np.ndarray,
    y: np.ndarray,
    where: str,
    feature_names: list[str] | None = None,
    target: str = "target",
    lines: np.ndarray | None = None,
) -> None:
    """Refuse NaN/inf features or targets, values whose square overflows (``|v| > 1e150``) and a constant
    target, naming the column and rows (``lines[i]``: the 1-based file line of row ``i``, when the rows come
    from a file)."""
    names = feature_names or [f"column {j}" for j in range(x.shape[1] if x.ndim == 2 else 1)]
    unit = "file lines" if lines is not None else "rows"

    def at(rows: np.ndarray) -> list[int]:
        rows = np.unique(rows)[:5]
        return (lines[rows] if lines is not None else rows).tolist()

    with np.errstate(invalid="ignore"):
        bad = ~(np.abs(x) <= LARGEST)
    if bad.any():
        rows, cols = np.nonzero(bad.reshape(len(x), -1))
        col = names[cols[0]] if x.ndim == 2 else "window"
        raise UserError(
            f"{where}: feature {col!r} has NaN/inf values ({int(bad.sum())} cells, first at {unit} {at(rows)}); "
            f"|value| > {LARGEST:g} counts too (its square overflows). Impute or drop them before training."
        )
    with np.errstate(invalid="ignore"):
        bad_y = ~(np.abs(y) <= LARGEST)
    if bad_y.any():
        rows = np.nonzero(bad_y)[0]
        raise UserError(
            f"{where}: target {target!r} has NaN/inf values at {unit} {at(rows)}{' …' if len(rows) > 5 else ''} "
            f"(|value| > {LARGEST:g} counts too: its squared error overflows). Drop those rows or rescale the target."
        )
    if len(y) and np.ptp(y) == 0:
        raise UserError(
            f"{where}: target {target!r} is constant ({y[0]:g} on all {len(y)} rows): there is nothing "
            "to regress. Check the target column."
        )


def _scaler(train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Training mean and std per column (series: per channel, over rows and time); constant columns keep std 1."""
    axes = (0, 1) if train.ndim == 3 else 0
    mu, sd = train.mean(axes), train.std(axes)
    return mu, np.where(sd > 0, sd, 1.0)


def _standardise(train: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    """z-score with the training split's statistics (constant columns are only centred)."""
    mu, sd = _scaler(train)
    return [((a - mu) / sd).astype(np.float32) for a in (train, *others)]


def _tabular(
    name: str,
    x: np.ndarray,
    y: np.ndarray,
    idx: dict[str, np.ndarray],
    where: str,
    feature_names: list[str],
    target: str,
    lines: np.ndarray | None = None,
) -> RegressionData:
    check_xy(x, y, where, feature_names, target, lines)
    tr, dv, te = (idx[k] for k in ("train", "dev", "test"))
    check_xy(x[tr], y[tr], f"{where} (training split)", feature_names, target, None if lines is None else lines[tr])
    xs = _standardise(x[tr], x[dv], x[te])
    return RegressionData(
        name,
        "tabular",
        Split(xs[0], y[tr]),
        Split(xs[1], y[dv]),
        Split(xs[2], y[te]),
        feature_names,
        target,
        _scaler(x[tr]),
    )


AIRFOIL_FEATURES = ["frequency", "angle_of_attack", "chord_length", "velocity", "displacement_thickness"]


def load_airfoil(data_file: str | Path, splits_file: str | Path, seed: int = 0) -> RegressionData:
    """UCI Airfoil Self-Noise with C-Mixup's split for ``seed`` (0-4): 1003 train / 300 dev / 200 test."""
    arr = _read_numeric(Path(data_file), 6, sep="\t")
    try:
        splits = json.loads(Path(splits_file).read_text(encoding="utf-8"))["splits"]
    except (ValueError, KeyError, TypeError, OSError) as exc:
        raise UserError(
            f"{splits_file}: not a splits file ({type(exc).__name__}: {str(exc)[:200]}); expected JSON "
            '{"splits": {"<seed>": {"train": [...], "valid": [...], "test": [...]}}}.'
        ) from None
    if str(seed) not in splits:
        raise UserError(
            f"{splits_file}: no split for seed {seed}; available: {', '.join(sorted(splits))} (set data.split)."
        )
    s = splits[str(seed)]
    idx = {"train": np.asarray(s["train"]), "dev": np.asarray(s["valid"]), "test": np.asarray(s["test"])}
    return _tabular("uci_airfoil", arr[:, :5], arr[:, 5], idx, str(data_file), AIRFOIL_FEATURES, "sound_pressure_db")


def _read_numeric(path: Path, columns: int | None, sep: str | None = None) -> np.ndarray:
    rows = []
    with open_text(path) as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            parts = line.replace(",", " ").split() if sep is None else line.strip().split(sep)
            try:
                vals = [float(p) for p in parts]
            except ValueError:
                raise UserError(f"{path}, line {n}: expected numbers, got {line.strip()[:80]!r}") from None
            if columns is not None and len(vals) != columns:
                raise UserError(f"{path}, line {n}: expected {columns} columns, got {len(vals)}")
            columns = len(vals)
            rows.append(vals)
    if not rows:
        raise UserError(f"{path} holds no rows.")
    return np.asarray(rows, dtype=np.float64)


def _read_indices(path: Path, limit: int, what: str, fix: str) -> np.ndarray:
    """The 0-based integer indices of an index file (one or more per line), each checked to be below ``limit``."""
    if not path.is_file():
        raise UserError(f"{path} is missing: {fix}")
    out = []
    with open_text(path) as f:
        for n, line in enumerate(f, 1):
            for tok in line.replace(",", " ").split():
                try:
                    v = float(tok)
                except ValueError:
                    raise UserError(f"{path}, line {n}: expected an integer index, got {tok[:40]!r}.") from None
                if v != int(v) or not 0 <= v < limit:
                    raise UserError(
                        f"{path}, line {n}: index {tok} is not one of the {limit} {what} (0-based: 0-{limit - 1}). "
                        "PBP index files hold 0-based positions into data.txt: fix the file, or put it beside the "
                        "data.txt it was made for."
                    )
                out.append(int(v))
    if not out:
        raise UserError(f"{path} holds no index.")
    return np.asarray(out, dtype=np.int64)


def pbp_splits(folder: str | Path) -> int:
    """How many train/test splits a PBP folder has: ``n_splits.txt`` if present, else the ``index_train_<k>.txt``
    files found."""
    folder = Path(folder)
    f = folder / "n_splits.txt"
    if f.is_file():
        try:
            return int(f.read_text().split()[0])
        except (ValueError, IndexError):
            raise UserError(f"{f}, line 1: expected the number of splits (an integer).") from None
    return len(list(folder.glob("index_train_*.txt")))


def load_uci_pbp(
    folder: str | Path, split: int = 0, dev_fraction: float = 0.1, name: str | None = None
) -> RegressionData:
    """A UCI dataset in the PBP / MC-dropout layout (``data.txt``, ``index_{features,target}.txt``,
    ``index_{train,test}_<k>.txt``, optional ``n_splits.txt``; ``folder`` or its ``data/`` subfolder, as in the
    ``UCI_Datasets/<name>/data`` archives): split ``k`` (the standard 20 are 90/10). The
    benchmark has no validation split: the last ``dev_fraction`` of a seeded shuffle of the training rows is
    held out for model selection (the test rows are never seen before the end)."""
    folder = Path(folder)
    if not (folder / "data.txt").is_file() and (folder / "data" / "data.txt").is_file():  # UCI_Datasets/<name>/
        name, folder = name or folder.name, folder / "data"
    layout = (
        "a PBP folder holds data.txt (whitespace-separated numbers), index_features.txt, index_target.txt and "
        "index_train_<k>.txt / index_test_<k>.txt per split k (0-based row and column numbers)"
    )
    if not (folder / "data.txt").is_file():
        raise UserError(f"{folder} has no data.txt; {layout}. Set data.path to such a folder.")
    n_splits = pbp_splits(folder)
    if not 0 <= split < max(n_splits, 1) or not (folder / f"index_train_{split}.txt").is_file():
        have = f"0-{n_splits - 1}" if n_splits else "none"
        raise UserError(f"{folder}: split {split} does not exist (splits: {have}); set data.split. ({layout}.)")
    arr = _read_numeric(folder / "data.txt", None)
    rows, cols = arr.shape
    fix = f"{layout}."
    feats = _read_indices(folder / "index_features.txt", cols, "columns of data.txt", fix)
    target = int(_read_indices(folder / "index_target.txt", cols, "columns of data.txt", fix)[0])
    if target in feats:
        raise UserError(
            f"{folder / 'index_features.txt'}: lists the target column {target} (index_target.txt) among the "
            "features; remove it."
        )
    train = _read_indices(folder / f"index_train_{split}.txt", rows, "rows of data.txt", fix)
    test = _read_indices(folder / f"index_test_{split}.txt", rows, "rows of data.txt", fix)
    shared = np.intersect1d(train, test)
    if len(shared):
        raise UserError(
            f"{folder}: index_train_{split}.txt and index_test_{split}.txt share {len(shared)} rows (e.g. "
            f"{shared[:5].tolist()}); a test row must not be trained on. Fix the split files."
        )
    perm = np.random.RandomState(split).permutation(len(train))
    n_dev = int(round(dev_fraction * len(train)))
    idx = {"train": np.sort(train[perm[n_dev:]]), "dev": np.sort(train[perm[:n_dev]]), "test": test}
    return _tabular(
        name or folder.name,
        arr[:, feats],
        arr[:, target],
        idx,
        str(folder / "data.txt"),
        [f"x{j}" for j in feats],
        f"column {target}",
        np.arange(rows) + 1,
    )


# ------------------------------------------------------------------------------------------ STS-B-DIR
# Upstream (YyzHarry/imbalanced-regression, sts-b-dir) hard-codes the shot groups over 50 bins of
# width 0.1 on [0, 5]; SupReMix's code keeps the same lists for its own split.
_MANY_BINS = frozenset([0, 49, *range(10, 49, 2)])
_MEDIUM_BINS = frozenset([2, 4, 6, 8, 27, 35, 37])


def stsb_shot_groups(scores: np.ndarray) -> np.ndarray:
    """many / medium / few per score, by its 0.1-wide bin (score 5.0 falls in bin 49)."""
    bins = np.clip(np.floor(np.asarray(scores) * 10 + 1e-6).astype(int), 0, 49)
    return np.array(["many" if b in _MANY_BINS else "medium" if b in _MEDIUM_BINS else "few" for b in bins])


def _read_stsb_dir(path: Path) -> tuple[list[str], list[str], np.ndarray]:
    with open_text(path) as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    if not rows or "score" not in rows[0] or "sentence1" not in rows[0]:
        raise UserError(
            f"{path}, line 1: expected a GLUE STS-B header with sentence1, sentence2, score; "
            f"got {rows[0][:10] if rows else 'an empty file'}"
        )
    h = rows[0]
    i1, i2, isc = h.index("sentence1"), h.index("sentence2"), h.index("score")
    s1, s2, y = [], [], []
    for n, r in enumerate(rows[1:], 2):
        if len(r) != len(h):
            raise UserError(f"{path}, line {n}: expected {len(h)} tab-separated columns, got {len(r)}")
        try:
            y.append(float(r[isc]))
        except ValueError:
            raise UserError(f"{path}, line {n}: score {r[isc]!r} is not a number") from None
        s1.append(r[i1])
        s2.append(r[i2])
    return s1, s2, np.asarray(y)


def load_stsb_dir(train: str | Path, dev: str | Path, test: str | Path, name: str = "stsb_dir") -> RegressionData:
    """STS-B-DIR sentence pairs (scores 0-5) with many/medium/few shot groups on dev and test."""
    parts = []
    for p in (train, dev, test):
        s1, s2, y = _read_stsb_dir(Path(p))
        check_xy(np.zeros((len(y), 1)), y, str(p), target="score")
        parts.append(Split((s1, s2), y, stsb_shot_groups(y)))
    return RegressionData(name, "pairs", *parts, ["sentence1", "sentence2"], "score")


# ------------------------------------------------------------------------------------------ exchange rate
def load_exchange(
    path: str | Path,
    window: int = 168,
    horizon: int = 12,
    fractions: tuple[float, float] = (0.6, 0.2),
    max_train: int | None = None,
) -> RegressionData:
    """Exchange rates (7588 days x 8 currencies), C-Mixup's protocol: every column divided by its
    max |value|, chronological 60/20/20 split of the days, input = the last ``window`` values, target
    = the value ``horizon`` steps after the window's last step. Channel-independent: each currency's
    window is one sample with a scalar target (one shared model for the 8 series), so the RMSE over
    all samples equals the RMSE over all (time, currency) entries of the multi-output task. Each
    sample's ``offset`` is its window's last value: models regress the change over the horizon
    (metrics are on the rate itself; predicting the offset is the persistence baseline)."""
    path = Path(path)
    arr = _read_numeric(path, None)
    check_xy(arr, arr[:, 0], str(path))
    scale = np.abs(arr).max(0)
    arr = arr / np.where(scale > 0, scale, 1.0)
    n = len(arr)
    a, b = int(fractions[0] * n), int((fractions[0] + fractions[1]) * n)

    def windows(lo: int, hi: int) -> Split:
        # A sample's target day t lies in [lo, hi); its window ends horizon days before it.
        ts = np.arange(max(lo, window + horizon - 1), hi)
        ends = ts - horizon + 1  # window = arr[end - window : end]
        idx = ends[:, None] + np.arange(-window, 0)[None, :]
        x = arr[idx].transpose(0, 2, 1).reshape(-1, window)  # [len(ts) * 8, window], series-major per day
        y = arr[ts].reshape(-1)
        return Split(x.astype(np.float32), y, offset=x[:, -1].astype(np.float64))

    tr, dv, te = windows(0, a), windows(a, b), windows(b, n)
    if max_train is not None and max_train < len(tr):  # the most recent days: keeps it chronological
        tr = Split(tr.x[-max_train:], tr.y[-max_train:], offset=tr.offset[-max_train:])
    return RegressionData("exchange_rate", "series", tr, dv, te, [f"t-{window - i}" for i in range(window)], "rate")


# ------------------------------------------------------------------------------------------ user tables
def _names(columns) -> str:
    """``a, b, c`` (at most 30 names of at most 60 characters: a message, not a dump)."""
    names = [str(c) if len(str(c)) <= 60 else str(c)[:57] + "..." for c in list(columns)[:30]]
    return ", ".join(names) + (f", ... ({len(columns)} in all)" if len(columns) > 30 else "")


def load_table(
    path: str | Path,
    target: str,
    features: list[str] | None = None,
    split: int = 0,
    dev_fraction: float = 0.1,
    test_fraction: float = 0.2,
) -> RegressionData:
    """Any CSV/TSV/parquet table with a named numeric ``target``; ``features`` defaults to all other
    columns (all must be numeric). Rows are split at random (seeded by ``split``) into
    train/dev/test by the given fractions."""
    import pandas as pd

    path = Path(path)
    df = read_table(path, what="regression table")
    require_columns(df, path, {"data.target": target}, what="regression table")
    features = list(features) if features else [c for c in df.columns if c != target]
    require_columns(df, path, {f"data.features[{i}]": c for i, c in enumerate(features)}, what="regression table")
    if target in features:
        raise UserError(f"{path}: the target {target!r} is also listed among data.features.")
    for c in [*features, target]:
        if not pd.api.types.is_numeric_dtype(df[c]):
            raise UserError(
                f"{path}: column {short_repr(c)} is not numeric (e.g. {short_repr(df[c].iloc[0])}); encode or drop it "
                "(set data.features)."
            )
    x = df[features].to_numpy(np.float64)
    y = df[target].to_numpy(np.float64)
    n = len(y)
    idx = _random_split(n, split, dev_fraction, test_fraction, str(path))
    # file lines of the rows: the header is line 1 (exact unless the file has blank or multi-line rows)
    return _tabular(path.stem, x, y, idx, str(path), [str(c) for c in features], target, np.arange(n) + 2)


def _random_split(n: int, split: int, dev_fraction: float, test_fraction: float, where: str) -> dict[str, np.ndarray]:
    """Rows split at random (seeded by ``split``) into train/dev/test; ``test_fraction`` 0: no test rows."""
    n_test, n_dev = int(round(test_fraction * n)), int(round(dev_fraction * n))
    if n - n_test - n_dev < 2 or n_dev < 1 or (test_fraction > 0 and n_test < 1):
        raise UserError(
            f"{where}: {n} rows are too few for a train/dev/test split with data.dev_fraction {dev_fraction} "
            f"and data.test_fraction {test_fraction}."
        )
    perm = np.random.RandomState(split).permutation(n)
    return {"test": perm[:n_test], "dev": perm[n_test : n_test + n_dev], "train": perm[n_test + n_dev :]}


# ------------------------------------------------------------------------------------------ series (.ts, arrays)
def _fill_series(x: np.ndarray, where: str) -> np.ndarray:
    """``[n, T, d]`` with NaN gaps and padding -> every gap filled with the channel's previous value (leading
    gaps with its first value); a series with a channel that has no value at all is refused."""
    x = np.array(x, dtype=np.float64)
    if x.ndim != 3:
        raise UserError(f"{where}: series must be an array [n, length, channels]; got shape {x.shape}.")
    seen = np.isfinite(x)
    empty = ~seen.any(1)
    if empty.any():
        row, ch = np.argwhere(empty)[0]
        raise UserError(
            f"{where}: series {row} has no value in channel {ch} ({int(empty.any(1).sum())} series like it); "
            "drop those series."
        )
    t = np.arange(x.shape[1])[None, :, None]
    last = np.maximum.accumulate(np.where(seen, t, -1), axis=1)  # index of the latest observed step
    first = seen.argmax(1)[:, None, :]
    take = np.where(last >= 0, last, first)
    return np.take_along_axis(x, take, 1)


def _series(
    name: str,
    x: np.ndarray,
    y: np.ndarray,
    idx: dict[str, np.ndarray],
    where: str,
    target: str = "target",
    test: tuple[np.ndarray, np.ndarray] | None = None,
) -> RegressionData:
    """Series ``[n, T, d]`` (NaN-padded) + targets -> standardised splits; ``test``: separate test series."""
    x = _fill_series(x, where)
    check_xy(x.reshape(len(x), -1), y, where, target=target)
    parts = {k: (x[v], y[v]) for k, v in idx.items()}
    if test is not None:
        if test[0].shape[1:] != x.shape[1:]:
            raise UserError(
                f"{where}: the test series have length x channels {test[0].shape[1:]}, the training series "
                f"{x.shape[1:]}; pad or cut them to one shape."
            )
        parts["test"] = test
    scaler = _scaler(parts["train"][0])
    mu, sd = scaler
    splits = {k: Split(((a - mu) / sd).astype(np.float32), b) for k, (a, b) in parts.items()}
    names = [f"t{i}" for i in range(x.shape[1])]
    return RegressionData(name, "series", splits["train"], splits["dev"], splits["test"], names, target, scaler)


def _numbers(a, name: str) -> np.ndarray:
    """``a`` as float64, or a :class:`UserError` naming the row and column of the first non-number."""
    try:
        return np.asarray(a, dtype=np.float64)
    except (ValueError, TypeError):
        pass
    try:
        obj = np.asarray(a, dtype=object)
    except ValueError:
        obj = None
    if obj is None or obj.dtype != object or any(isinstance(v, (list, tuple, np.ndarray)) for v in obj.reshape(-1)):
        raise UserError(f"fit(X, y): {name} is ragged (rows of different lengths); give a rectangular array.") from None
    for index in np.ndindex(obj.shape):
        v = obj[index]
        try:
            float(v)
        except (ValueError, TypeError):
            parts = ("row", "step", "channel") if len(index) == 3 else ("row", "column")
            where = ", ".join(f"{p} {i}" for p, i in zip(parts, index, strict=False))
            raise UserError(
                f"fit(X, y): {name} {where} holds {short_repr(v)}, not a number; encode or drop that column."
            ) from None
    raise UserError(f"fit(X, y): {name} cannot be read as numbers.")  # pragma: no cover - defensive


def from_arrays(
    x: np.ndarray,
    y: np.ndarray,
    *,
    dev_fraction: float = 0.1,
    test_fraction: float = 0.0,
    split: int = 0,
    name: str = "arrays",
    feature_names: list[str] | None = None,
) -> RegressionData:
    """In-memory data: ``x [n, d]`` (a table) or ``[n, T, d]`` (series, NaN gaps allowed). Rows are split at
    random (seed ``split``); ``test_fraction`` 0 makes the dev rows the test split too (the run's final metrics
    are then dev metrics)."""
    x, y = _numbers(x, "X"), _numbers(y, "y").ravel()
    if len(x) != len(y):
        raise UserError(f"fit(X, y): X has {len(x)} rows and y {len(y)}; give one target per row.")
    if x.ndim not in (2, 3):
        raise UserError(f"fit(X, y): X must be [n, features] or series [n, length, channels]; got shape {x.shape}.")
    idx = _random_split(len(y), split, dev_fraction, test_fraction, "fit(X, y)")
    if test_fraction == 0:
        idx["test"] = idx["dev"]
    if x.ndim == 3:
        return _series(name, x, y, idx, "fit(X, y)")
    names = feature_names or [f"x{j}" for j in range(x.shape[1])]
    return _tabular(name, x, y, idx, "fit(X, y)", names, "target")
