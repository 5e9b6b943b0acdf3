"""Reading the user's own tables: CSV, TSV, JSON Lines and parquet (optionally gzip-compressed), with
the columns a recipe names checked up front.

Every domain that takes "a file with named columns" (sentence pairs, interaction logs, audio manifests,
regression tables) reads it here, so that a missing file, an unreadable format or a missing column is one
clear paragraph naming the file, the column, the recipe key and the fix.
"""

from __future__ import annotations

import difflib
import zlib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import UserError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = ["TABLE_FORMATS", "MAX_CELL", "table_format", "read_table", "require_columns"]

MAX_CELL = 1 << 20  # characters in one text cell: a longer one is a damaged file, not data

TABLE_FORMATS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".inter": "tsv",  # RecBole atomic files: tab-separated, typed headers (``user_id:token``)
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
}


def table_format(path: Path) -> str:
    """``csv | tsv | jsonl | parquet`` from the file name (a trailing ``.gz`` is allowed)."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    fmt = TABLE_FORMATS.get(suffixes[-1] if suffixes else "")
    if fmt is None:
        raise UserError(
            f"{path}: cannot tell the table format from its name; use one of the extensions "
            f"{', '.join(sorted(TABLE_FORMATS))} (optionally followed by .gz)."
        )
    return fmt


def _names(columns: Iterable) -> str:
    names = [str(c) for c in columns]
    return ", ".join(names[:20]) + (f" and {len(names) - 20} more" if len(names) > 20 else "")


def read_table(
    path: str | Path, *, what: str = "table", dtype: Mapping[str, object] | None = None, max_cell: int = MAX_CELL
) -> pd.DataFrame:
    """The whole table at ``path`` as a DataFrame; ``what`` names it in errors (e.g. "interaction log").

    RecBole ``.inter`` headers (``user_id:token``) lose their type suffix. Raises :class:`UserError` for a
    missing, unreadable, damaged (gzip) or empty file, and for a text cell longer than ``max_cell``
    characters (readers copy cells into fixed-width arrays, so one huge cell would multiply memory)."""
    import pandas as pd

    path = Path(path).expanduser()
    if not path.is_file():
        raise UserError(f"the {what} {path} does not exist{' (it is a folder)' if path.is_dir() else ''}.")
    fmt = table_format(path)
    if fmt != "parquet":
        _check_lines(path, what, max_cell)
    try:
        if fmt == "parquet":
            df = pd.read_parquet(path)
        elif fmt == "jsonl":
            df = pd.read_json(path, lines=True, dtype=dtype or True)
        else:
            df = pd.read_csv(
                path, sep="\t" if fmt == "tsv" else ",", dtype=dtype, keep_default_na=False, na_values=[""]
            )
    except ImportError as exc:
        raise UserError(f"reading {path} needs a parquet engine: pip install pyarrow ({exc}).") from None
    except (ValueError, OSError, EOFError, UnicodeDecodeError, zlib.error, pd.errors.ParserError) as exc:
        raise UserError(f"could not read the {what} {path} as {fmt}: {str(exc).splitlines()[0][:200]}") from None
    if path.suffix.lower() == ".inter" or (len(path.suffixes) > 1 and path.suffixes[-2].lower() == ".inter"):
        df.columns = [str(c).split(":", 1)[0] for c in df.columns]
    if df.empty:
        raise UserError(f"the {what} {path} has no data rows (columns: {_names(df.columns) or 'none'}).")
    _check_cells(df, path, what, max_cell)
    return df


def _check_lines(path: Path, what: str, max_cell: int) -> None:
    """Refuse a text table with a line longer than ``max_cell`` characters before parsing it: the scan reads
    the file in blocks and stops at the first such line, so a huge line costs no more than the limit."""
    import gzip
    import re
    import zlib

    inner = re.compile(rb"[^\n]{%d}" % (max_cell + 1))
    line, run = 1, 0  # line: 1-based number of the current line; run: its bytes so far
    try:
        with gzip.open(path, "rb") if path.name.lower().endswith(".gz") else open(path, "rb") as f:
            while block := f.read(1 << 20):
                first = block.find(b"\n")
                if first < 0:
                    run += len(block)
                elif run + first > max_cell:
                    break
                elif len(block) > max_cell and (m := inner.search(block, first + 1)):
                    line += block.count(b"\n", 0, m.start())
                    break
                else:
                    line += block.count(b"\n")
                    run = len(block) - block.rfind(b"\n") - 1
                if run > max_cell:
                    break
            else:
                return
    except (OSError, EOFError, zlib.error) as exc:
        raise UserError(
            f"could not read the {what} {path}: {str(exc).splitlines()[0][:200] if str(exc) else exc!r}"
        ) from None
    raise UserError(
        f"the {what} {path}: a line near line {line:,} is longer than {max_cell:,} bytes; the file is damaged or "
        "not a table (one huge id or cell would multiply the memory of the whole column). Fix or remove that line."
    )


def _check_cells(df: pd.DataFrame, path: Path, what: str, max_cell: int) -> None:
    import pandas as pd

    for name in df.columns:
        col = df[name]
        if not (col.dtype == object or pd.api.types.is_string_dtype(col.dtype)):
            continue
        lengths = col.map(lambda v: len(v) if isinstance(v, (str, bytes)) else 0).to_numpy()
        if lengths.size and lengths.max() > max_cell:
            row = int(lengths.argmax())
            raise UserError(
                f"the {what} {path}: column {str(name)[:80]!r}, data row {row + 1} holds a cell of "
                f"{int(lengths[row]):,} characters, over the limit of {max_cell:,}; the file is damaged or the "
                "column is not what the recipe names. Fix that row or point the recipe at the right column."
            )


def require_columns(
    df: pd.DataFrame, path: str | Path, columns: Mapping[str, str | None], *, what: str = "table"
) -> None:
    """Check that every named column exists: ``columns`` maps a recipe key (e.g. ``data.time``) to the
    column it names (``None``: not used). The error names the file, the column, close matches and the key."""
    have = [str(c) for c in df.columns]
    for key, name in columns.items():
        if name is None or name in df.columns:
            continue
        hint = difflib.get_close_matches(str(name), have, n=1)
        raise UserError(
            f"the {what} {path} has no column {name!r} (named by {key}){f'; did you mean {hint[0]!r}?' if hint else ''}. "
            f"Its columns: {_names(have)}. Set {key} to one of them."
        )
