"""Paths named inside a user's files (schemas, manifests, dataset cards) stay inside their folder.

A relative path is joined to its base folder and normalised (``..`` collapsed, without touching the disk);
the result must lie under the base. Absolute paths and paths that climb out with ``..`` are refused with
one paragraph naming the file, the key or row, and the value, unless the caller passes
``allow_outside=True`` (each reader documents the recipe or schema key that sets it). Symbolic links
inside the folder are followed: they are the user's own choice. The check never opens the file, so an
error never shows what an outside file holds.

This is the lexical check for paths written in users' files; :func:`cl_domains.core.safefs.is_inside`
resolves symbolic links and guards the files of run directories.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import UserError

__all__ = ["stays_within", "inside", "is_file"]


def is_file(path: str | Path) -> bool:
    """``Path(path).is_file()`` that answers False for names the system cannot look up (too long, NUL bytes)."""
    try:
        return Path(path).is_file()
    except (OSError, ValueError):
        return False


def stays_within(path: str | Path, base: str | Path) -> bool:
    """Whether ``path`` (relative paths start from ``base``) lies under ``base`` after normalising ``..``
    (without touching the disk)."""
    base_n = os.path.normpath(os.path.abspath(os.path.expanduser(str(base))))
    full = os.path.normpath(os.path.join(base_n, str(path)))
    return full == base_n or full.startswith(base_n.rstrip(os.sep) + os.sep)


def inside(
    value: str | Path,
    base: str | Path,
    *,
    file: str | Path,
    key: str,
    allow_outside: bool = False,
    option: str | None = None,
) -> Path:
    """``base / value``, checked to stay under ``base``.

    Args:
        value: the path as the user's file writes it.
        base: the folder relative paths start from.
        file: the file that names the path (for the error).
        key: where in ``file`` the path is (``"edges.pa"``, ``"line 4, column 'path'"``).
        allow_outside: accept absolute and escaping paths as they are.
        option: the setting that allows them, named in the error's fix.

    Returns:
        The joined path (``value`` itself when absolute and allowed).

    Raises:
        UserError: an absolute path, or one that leaves ``base``, without ``allow_outside``.
    """
    raw = str(value)
    p = Path(raw).expanduser()
    if allow_outside:
        return p if p.is_absolute() else Path(base) / p
    if "\x00" in raw:
        raise UserError(f"{file}: {key} = {raw[:80]!r} holds a NUL character; it is not a path.")
    if p.is_absolute() or raw.startswith("~") or not stays_within(raw, base):
        kind = "is an absolute path" if (p.is_absolute() or raw.startswith("~")) else "leaves its folder"
        fix = f", or set {option}: true if you mean it" if option else ""
        raise UserError(
            f"{file}: {key} = {raw[:200]!r} {kind}; paths in this file must stay inside {base}. "
            f"Move the file under that folder and name it relative to it{fix}."
        )
    return Path(base) / os.path.normpath(raw)
