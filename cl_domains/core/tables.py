"""Reading the user's own tables: CSV, TSV, JSON Lines and parquet (optionally gzip-compressed), with
the columns a recipe names checked up front.

Every domain that takes "a file with named columns" (sentence pairs, interaction logs, audio manifests,
regression tables) reads it here, so that a missing file, an unreadable format or a missing column is one
clear paragraph naming the file, the column, the recipe key and the fix.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Mapping

from .errors import UserError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = ["TABLE_FORMATS", "table_format", "read_table", "require_columns"]

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


def read_table(path: str | Path, *, what: str = "table", dtype: Mapping[str, object] | None = None) -> pd.DataFrame:
    """The whole table at ``path`` as a DataFrame; ``what`` names it in errors (e.g. "interaction log").

    RecBole ``.inter`` headers (``user_id:token``) lose their type suffix. Raises :class:`UserError` for a
    missing, unreadable or empty file."""
    import pandas as pd

    path = Path(path).expanduser()
    if not path.is_file():
        raise UserError(f"the {what} {path} does not exist{' (it is a folder)' if path.is_dir() else ''}.")
    fmt = table_format(path)
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
    except (ValueError, OSError, EOFError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise UserError(f"could not read the {what} {path} as {fmt}: {str(exc).splitlines()[0][:200]}") from None
    if path.suffix.lower() == ".inter" or (len(path.suffixes) > 1 and path.suffixes[-2].lower() == ".inter"):
        df.columns = [str(c).split(":", 1)[0] for c in df.columns]
    if df.empty:
        raise UserError(f"the {what} {path} has no data rows (columns: {_names(df.columns) or 'none'}).")
    return df


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
