"""Reader for the ``.ts`` files of the UCR / UEA / TSER archives (the format aeon and sktime read and write).

A file is a header of ``@key value`` lines (``@problemName``, ``@timeStamps``, ``@missing``, ``@univariate``,
``@dimensions``, ``@equalLength``, ``@seriesLength``, ``@classLabel true <labels>`` or ``@targetLabel true``),
then ``@data`` and one case per line: the values of each dimension comma-separated, dimensions separated by
``:``, the class label or numeric target last. ``?`` is a missing value; ``#`` starts a comment line;
``.gz`` files are read as well. Files with ``@timeStamps true`` (``(t,v)`` pairs) are not supported.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from ..core.errors import UserError
from ..core.recipe import short_repr
from ..core.validate import check_allocation, check_finite

__all__ = ["read_ts"]

_BOOL = {"true": True, "false": False}


def _open(path: Path):
    return gzip.open(path, "rt", encoding="utf-8") if path.name.endswith(".gz") else open(path, encoding="utf-8")


def _flag(path: Path, lineno: int, key: str, value: str) -> bool:
    v = value.split()[0].lower() if value.split() else ""
    if v not in _BOOL:
        raise UserError(
            f"{path}, line {lineno}: @{key} must be 'true' or 'false', got {short_repr(value)}; fix the header."
        )
    return _BOOL[v]


def read_ts(path: str | Path) -> tuple[np.ndarray, np.ndarray | None, dict]:
    """A ``.ts`` file -> ``(X, y, meta)``.

    ``X``: ``[n, T, d]`` float64, shorter series NaN-padded at the end (``T``: the longest series) and ``?``
    read as NaN. ``y``: the class labels as strings (``@classLabel true``), the float targets
    (``@targetLabel true``, TSER regression), or ``None`` when the file has no labels. ``meta``: ``problem_name``,
    ``dimensions``, ``equal_length``, ``series_length`` (header value or ``None``), ``class_labels`` (the
    header's list or ``None``), ``task`` (``"classify"``, ``"regress"`` or ``None``), ``lengths`` (``[n]``
    per-case length) and ``missing`` (the header flag).

    Every malformed case (wrong number of dimensions, dimensions of different lengths, a length other than
    ``@seriesLength`` when ``@equalLength true``, a non-numeric value, an undeclared label) is a
    :class:`~cl_domains.core.errors.UserError` naming the file and the line.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise UserError(f"{path}: no such .ts file; check the path (a UCR/UEA/TSER archive file, e.g. X_TRAIN.ts).")
    header: dict[str, str] = {}
    cases: list[np.ndarray] = []
    labels: list[str] = []
    meta: dict = {}
    in_data = False
    try:
        with _open(path) as fh:
            for lineno, raw in enumerate(fh, 1):
                line = raw.strip()
                if not line or line.startswith("#"):
                    continue
                if not in_data:
                    if not line.startswith("@"):
                        raise UserError(
                            f"{path}, line {lineno}: expected a header line '@key value' before @data, got "
                            f"{line[:60]!r}; a .ts file starts with its @problemName ... @data header."
                        )
                    key, _, value = line[1:].partition(" ")
                    key = key.lower()
                    if key == "data":
                        meta = _header(path, lineno, header)
                        in_data = True
                    else:
                        header[key] = (value.strip(), lineno)
                    continue
                x, label = _case(path, lineno, line, meta)
                cases.append(x)
                if label is not None:
                    labels.append(label)
    except (UnicodeDecodeError, OSError, EOFError, zlib.error) as exc:
        raise UserError(
            f"{path}: cannot be read as a text .ts file ({type(exc).__name__}: {str(exc)[:200]}); "
            "give a UTF-8 .ts file, or a .ts.gz that gunzips to one."
        ) from None
    if not in_data:
        raise UserError(f"{path}: no '@data' line; the header must end with @data, followed by one case per line.")
    if not cases:
        raise UserError(f"{path}: no cases after @data; add one line per series.")
    lengths = np.array([len(c) for c in cases])
    d = meta["dimensions"] or cases[0].shape[1]
    longest = int(lengths.argmax())
    check_allocation(
        8.0 * len(cases) * int(lengths.max()) * d,
        what=f"padding all {len(cases):,} series to the longest one ({int(lengths.max()):,} steps, case "
        f"{longest + 1}; the median is {int(np.median(lengths)):,})",
        file=path,
        fix="Check that case, or cut the series to a common length",
    )
    X = np.full((len(cases), int(lengths.max()), d), np.nan)
    for i, c in enumerate(cases):
        X[i, : len(c)] = c
    y: np.ndarray | None = None
    if meta["task"] == "classify":
        y = np.array(labels, dtype=str)
    elif meta["task"] == "regress":
        y = check_finite(
            np.array(labels, dtype=np.float64),
            what="the targets (after the last ':')",
            file=path,
            row_name="case",
            fix="Each case needs a finite numeric target; fix or remove those cases.",
        )
    meta["lengths"] = lengths
    if meta["dimensions"] is None:
        meta["dimensions"] = d
    meta.pop("_dims_seen", None)
    meta.pop("_len_seen", None)
    return X, y, meta


def _header(path: Path, data_line: int, header: dict[str, tuple[str, int]]) -> dict:
    def flag(key: str, default: bool | None) -> bool | None:
        if key not in header:
            return default
        value, lineno = header[key]
        return _flag(path, lineno, key, value)

    if flag("timestamps", False):
        raise UserError(
            f"{path}, line {header['timestamps'][1]}: @timeStamps true ((t,v) pairs) is not supported; "
            "write the series as plain comma-separated values (@timeStamps false)."
        )
    dims = None
    for key in ("dimensions", "dimension"):
        if key in header:
            dims = _positive_int(header, key, path)
    if flag("univariate", None) is True:
        if dims not in (None, 1):
            raise UserError(
                f"{path}, line {header['univariate'][1]}: @univariate true but @dimensions {dims}; "
                "set @univariate false for multivariate data."
            )
        dims = 1
    length = _positive_int(header, "serieslength", path) if "serieslength" in header else None
    task, classes = None, None
    if flag("classlabel", False):
        task = "classify"
        classes = header["classlabel"][0].split()[1:]
        if not classes:
            raise UserError(
                f"{path}, line {header['classlabel'][1]}: @classLabel true lists no labels; "
                "write them after 'true', e.g. '@classLabel true 1 2'."
            )
    if flag("targetlabel", False):
        if task:
            raise UserError(
                f"{path}, line {header['targetlabel'][1]}: both @classLabel true and @targetLabel true; "
                "a file is either classification or regression."
            )
        task = "regress"
    return {
        "problem_name": header.get("problemname", (path.name.split(".")[0], 0))[0],
        "dimensions": dims,
        "equal_length": flag("equallength", False),
        "series_length": length,
        "class_labels": classes,
        "task": task,
        "missing": flag("missing", False),
    }


def _case(path: Path, lineno: int, line: str, meta: dict) -> tuple[np.ndarray, str | None]:
    parts = line.split(":")
    label = None
    if meta["task"]:
        if len(parts) < 2:
            raise UserError(
                f"{path}, line {lineno}: no label; with @{'classLabel' if meta['task'] == 'classify' else 'targetLabel'} "
                "true each case ends with ':<label>'."
            )
        label = parts.pop().strip()
        if meta["task"] == "classify" and label not in meta["class_labels"]:
            raise UserError(
                f"{path}, line {lineno}: class label {short_repr(label)} is not among @classLabel "
                f"{' '.join(meta['class_labels'])}; add it to the header or fix the case."
            )
        if meta["task"] == "regress":
            try:
                float(label)
            except ValueError:
                raise UserError(
                    f"{path}, line {lineno}: target {short_repr(label)} is not a number; @targetLabel true needs a numeric "
                    "target after the last ':'."
                ) from None
    expected = meta["dimensions"] or meta.setdefault("_dims_seen", len(parts))
    if len(parts) != expected:
        where = "@dimensions" if meta["dimensions"] else "the first case"
        raise UserError(
            f"{path}, line {lineno}: {len(parts)} dimension(s) but {where} has {expected}; each case needs "
            "one comma-separated series per dimension, separated by ':' (label last)."
        )
    dims = []
    for k, part in enumerate(parts):
        try:
            dims.append(np.array([np.nan if v.strip() == "?" else float(v) for v in part.split(",")]))
        except ValueError as exc:
            raise UserError(
                f"{path}, line {lineno}, dimension {k + 1}: non-numeric value ({str(exc)[:120]}); values are numbers or '?'."
            ) from None
    for k, v in enumerate(dims):
        if np.isinf(v).any():
            raise UserError(
                f"{path}, line {lineno}, dimension {k + 1}: infinite value at step {int(np.argmax(np.isinf(v))) + 1}; "
                "write missing values as '?'."
            )
    lens = [len(v) for v in dims]
    if len(set(lens)) > 1:
        raise UserError(
            f"{path}, line {lineno}: the dimensions have different lengths {lens}; every dimension of a case "
            "must have the same number of values (pad the shorter ones with '?')."
        )
    if meta["equal_length"]:
        want = meta["series_length"] or meta.setdefault("_len_seen", lens[0])
        if lens[0] != want:
            where = "@seriesLength" if meta["series_length"] else "the first case"
            raise UserError(
                f"{path}, line {lineno}: series of length {lens[0]} but {where} is {want} (@equalLength true); "
                "fix the case, or set @equalLength false for series of different lengths."
            )
    return np.stack(dims, axis=1), label


_HEADER_NAMES = {"serieslength": "seriesLength"}


def _positive_int(header: dict, key: str, path) -> int:
    """A header value that must be a positive integer (``@dimensions``, ``@seriesLength``)."""
    value, lineno = header[key]
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number <= 0:
        raise UserError(
            f"{path}, line {lineno}: @{_HEADER_NAMES.get(key, key)} must be a positive integer, got {short_repr(value)}; "
            "fix the header."
        )
    return number
