"""Reading and deleting files that a user (or a damaged disk) may have put in our folders.

Run directories, matrix folders and users' data folders are untrusted input: a file may be a FIFO (opening it
blocks forever), a device, a symbolic link to somewhere else, or far larger than expected. These helpers open
only regular files, within a size limit, and delete only inside a given base folder, never through a link.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path
from typing import Any

from .errors import UserError

__all__ = [
    "UnsafeFile",
    "is_inside",
    "require_inside",
    "check_regular",
    "read_regular",
    "read_text",
    "read_json",
    "safe_rmtree",
]

KIB, MIB = 1024, 1024 * 1024


class UnsafeFile(UserError, ValueError):
    """A file that is not a regular file, is too large, leaves its folder or cannot be decoded.
    A :class:`UserError` (the CLI prints it as one paragraph) and a ``ValueError`` (callers that skip damaged
    state, such as checkpoints, catch it with the other decoding errors)."""


def is_inside(path: str | Path, base: str | Path) -> bool:
    """Whether ``path`` stays under ``base`` once both are resolved (``..`` and every symbolic link followed).

    Args:
        path: a path, absolute or relative to the current folder.
        base: the folder it must stay in.

    Returns:
        True when the resolved ``path`` is ``base`` itself or below it.
    """
    try:
        resolved = Path(path).resolve()
        root = Path(base).resolve()
    except (OSError, RuntimeError):  # a symlink loop
        return False
    return resolved == root or root in resolved.parents


def require_inside(path: str | Path, base: str | Path, *, what: str = "path") -> Path:
    """``path`` resolved, or a :class:`UserError` when it leaves ``base``.

    Args:
        path: the path to check (relative paths are taken as they stand; join them to ``base`` first).
        base: the folder it must stay in.
        what: how the error names the path (e.g. "the manifest row 3's audio").

    Returns:
        The resolved path.
    """
    if not is_inside(path, base):
        raise UnsafeFile(f"{what} {path} leaves its folder {base}; only paths inside it are read.")
    return Path(path).resolve()


def check_regular(path: str | Path, *, base: str | Path | None = None, max_bytes: int | None = None) -> int:
    """Refuse anything but a regular file that is not a symbolic link (and stays under ``base``, when given).

    Args:
        path: the file.
        base: the folder it must stay in (its parent folders may be links inside that folder).
        max_bytes: the largest size accepted, or None for no limit.

    Returns:
        The file's size in bytes.

    Raises:
        UnsafeFile: a link, FIFO, device, folder, missing file, file outside ``base`` or file over ``max_bytes``.
    """
    path = Path(path)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise UnsafeFile(f"{path} does not exist.") from None
    except OSError as exc:
        raise UnsafeFile(f"cannot read {path}: {exc.strerror or exc}.") from None
    _check_stat(path, st, max_bytes)
    if base is not None and not is_inside(path, base):
        raise UnsafeFile(f"{path} leaves the folder {base}; it is not read.")
    return st.st_size


def _check_stat(path: Path, st: os.stat_result, max_bytes: int | None) -> None:
    if stat.S_ISLNK(st.st_mode):
        raise UnsafeFile(f"{path} is a symbolic link; it is not followed (put the file itself there).")
    if not stat.S_ISREG(st.st_mode):
        kind = "a folder" if stat.S_ISDIR(st.st_mode) else "a FIFO" if stat.S_ISFIFO(st.st_mode) else "not a file"
        raise UnsafeFile(f"{path} is {kind}, not a regular file; it is not read.")
    if max_bytes is not None and st.st_size > max_bytes:
        raise UnsafeFile(f"{path} has {st.st_size:,} bytes, more than the {max_bytes:,} expected; it is not read.")


def read_regular(path: str | Path, max_bytes: int, *, base: str | Path | None = None) -> bytes:
    """The bytes of a regular file, opened without following a final symbolic link and without blocking.

    Args:
        path: the file.
        max_bytes: the largest size accepted.
        base: the folder it must stay in, or None.

    Returns:
        The file's content.

    Raises:
        UnsafeFile: see :func:`check_regular`; also when the file grows past ``max_bytes`` while being read.
    """
    path = Path(path)
    if base is not None and not is_inside(path, base):
        raise UnsafeFile(f"{path} leaves the folder {base}; it is not read.")
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise UnsafeFile(f"{path} does not exist.") from None
    except OSError as exc:  # ELOOP: the final component is a symbolic link
        if os.path.islink(path):
            raise UnsafeFile(f"{path} is a symbolic link; it is not followed (put the file itself there).") from None
        raise UnsafeFile(f"cannot read {path}: {exc.strerror or exc}.") from None
    try:
        _check_stat(path, os.fstat(fd), max_bytes)
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read(max_bytes + 1)
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        raise UnsafeFile(f"{path} has more than the {max_bytes:,} bytes expected; it is not read.")
    return data


def read_text(path: str | Path, max_bytes: int, *, base: str | Path | None = None) -> str:
    """:func:`read_regular` decoded as UTF-8 (an :class:`UnsafeFile` naming the file when it is not)."""
    data = read_regular(path, max_bytes, base=base)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UnsafeFile(f"{path} is not UTF-8 text (byte {exc.start}); it is not read.") from None


def read_json(path: str | Path, max_bytes: int, *, base: str | Path | None = None) -> Any:
    """:func:`read_text` parsed as JSON (an :class:`UnsafeFile` naming the file and the position when it is not)."""
    text = read_text(path, max_bytes, base=base)
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise UnsafeFile(f"{path} is not valid JSON ({str(exc)[:120]}).") from None


def safe_rmtree(path: str | Path, base: str | Path) -> bool:
    """Delete the folder ``path`` only when it is a real folder (not a link) inside ``base``.

    Links inside the folder are removed as links; what they point to is left alone.

    Args:
        path: the folder to delete.
        base: the folder that must contain it (e.g. the run directory).

    Returns:
        True when something was deleted; False when ``path`` did not exist, was a link or left ``base``
        (nothing is deleted then).
    """
    path = Path(path)
    try:
        st = os.lstat(path)
    except OSError:
        return False
    if not stat.S_ISDIR(st.st_mode):  # a link (to a folder or not) or a file: not ours to delete as a tree
        return False
    if not is_inside(path, base):
        return False
    shutil.rmtree(path, ignore_errors=True)
    return True
