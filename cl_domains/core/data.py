"""Data access: the data root, dataset cards, sha256 checks, fetching, and clear errors.

Data root: ``--data-root``, else ``$CL_DOMAINS_DATA``, else ``../shared/data`` beside a source checkout,
else a per-user cache directory.
Every dataset has a card ``datasets/<name>.yaml``: its files (path under the root, sha256,
rows), official source, licence and, where one exists, how to fetch it. A card's file paths are relative
and stay inside the data root (absolute paths and ``..`` that climbs out are refused); downloads are
http(s) only, and archive members are read only when they are regular files with a name inside the archive. Recipes name data as
``"<card>/<file key>"`` (e.g. ``stsb/test``) or as a path to the user's own file.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
import urllib.request
import zipfile
from functools import cache
from pathlib import Path

import yaml
from pydantic import Field, field_validator

from .errors import UserError
from .paths import stays_within
from .recipe import StrictModel

__all__ = [
    "DataFile",
    "FetchSource",
    "DatasetCard",
    "data_root",
    "cards",
    "card",
    "resolve",
    "verify",
    "fetch",
    "sha256sum",
    "open_text",
    "UserText",
]

ENV = "CL_DOMAINS_DATA"


class DataFile(StrictModel):
    path: str
    sha256: str | None = None
    rows: int | None = None
    plain_sha256: str | None = Field(
        None,
        description="for a .gz file: sha256 of its content; a decompressed copy "
        "at the path without .gz is accepted in its place",
    )
    note: str = ""

    @field_validator("path")
    @classmethod
    def _stays_in_root(cls, v: str) -> str:
        if Path(v).is_absolute() or v.startswith("~") or "\x00" in v or not stays_within(v, "/root"):
            raise ValueError(f"file path {v!r} must be relative to the data root and stay inside it (no '..' out)")
        return v


class FetchSource(StrictModel):
    url: str
    sha256: str | None = None
    archive: str | None = Field(None, description="tar.gz | zip | gz; None = the file itself")
    members: dict[str, str] = Field(default_factory=dict, description="archive member -> file key")

    @field_validator("url")
    @classmethod
    def _http_only(cls, v: str) -> str:
        try:
            _check_url(v)
        except UserError as exc:
            raise ValueError(str(exc)) from None
        return v


def _check_url(url: str) -> None:
    """Only ``http://`` and ``https://`` downloads (no ``file://``, ``ftp://`` or other schemes)."""
    from urllib.parse import urlparse

    scheme = urlparse(url).scheme.lower()
    if scheme not in ("http", "https") or not urlparse(url).netloc:
        raise UserError(f"download URL {url[:200]!r} is not an http(s) URL; only http:// and https:// are fetched.")


class DatasetCard(StrictModel):
    name: str
    domain: str
    title: str
    description: str = ""
    license: str
    source: str
    citation: str = ""
    format: str = ""
    files: dict[str, DataFile]
    fetch: list[FetchSource] = Field(default_factory=list)
    how_to_get: str = ""


def checkout_data() -> Path | None:
    """``shared/data`` beside a source checkout of this package (the layout of this project's workspace)."""
    root = Path(__file__).resolve().parents[2]
    candidate = root.parent / "shared" / "data"
    return candidate if (root / "pyproject.toml").is_file() and candidate.is_dir() else None


def data_root(explicit: str | Path | None = None) -> tuple[Path, str]:
    """The data root and where it came from (for error messages): ``--data-root``, else
    ``$CL_DOMAINS_DATA``, else ``../shared/data`` beside the checkout when it exists, else the user cache."""
    if explicit:
        return Path(explicit).expanduser(), "--data-root"
    if os.environ.get(ENV):
        return Path(os.environ[ENV]).expanduser(), f"${ENV}"
    if (beside := checkout_data()) is not None:
        return beside, "shared/data beside the checkout (set --data-root or $CL_DOMAINS_DATA to change)"
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("cl-domains")) / "data", "the default cache (set --data-root or $CL_DOMAINS_DATA)"


CARDS_ENV = "CL_DOMAINS_CARDS"


def card_dirs() -> list[Path]:
    """Where dataset cards are read from: the folders in ``$CL_DOMAINS_CARDS`` (``os.pathsep``-separated; the
    user's own cards, first), then the package's ``cards/`` and the checkout's ``datasets/``."""
    pkg = Path(__file__).resolve().parents[1]
    extra = [Path(p).expanduser() for p in os.environ.get(CARDS_ENV, "").split(os.pathsep) if p]
    return [*extra, pkg / "cards", pkg.parent / "datasets"]


def cards() -> dict[str, DatasetCard]:
    """Every known dataset card by name (the first folder of :func:`card_dirs` that has a name wins)."""
    return _read_cards(tuple(card_dirs()))


@cache
def _read_cards(dirs: tuple[Path, ...]) -> dict[str, DatasetCard]:
    found: dict[str, DatasetCard] = {}
    for d in dirs:
        for f in sorted(d.glob("*.yaml")) if d.is_dir() else []:
            try:
                c = DatasetCard.model_validate(yaml.safe_load(f.read_text()))
            except Exception as exc:  # a broken card: say which file
                raise UserError(f"dataset card {f} is invalid: {exc}") from None
            found.setdefault(c.name, c)
    return found


def card(name: str) -> DatasetCard:
    all_cards = cards()
    if name not in all_cards:
        raise UserError(f"unknown dataset {name!r}; known datasets: {', '.join(sorted(all_cards))}.")
    return all_cards[name]


def sha256sum(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@cache
def _checked(path: str, size: int, mtime: float) -> str:
    return sha256sum(Path(path))


def _file_status(c: DatasetCard, key: str, root: Path) -> tuple[Path, str]:
    entry = c.files[key]
    p, expect = root / entry.path, entry.sha256
    plain = p.with_suffix("")
    if not p.is_file() and entry.plain_sha256 and p.suffix == ".gz" and plain.is_file():
        p, expect = plain, entry.plain_sha256
    if not p.is_file():
        return p, "missing"
    if expect is None:
        return p, "unverified"
    st = p.stat()
    actual = _checked(str(p), st.st_size, st.st_mtime)
    return p, "ok" if actual == expect else f"corrupt (sha256 {actual[:12]}…, expected {expect[:12]}…)"


def _how_to_get(c: DatasetCard) -> str:
    if c.fetch:
        return f"run `cl-domains data fetch {c.name}` (downloads from {c.fetch[0].url})"
    return c.how_to_get or f"get it from {c.source}"


def resolve(ref: str, root: str | Path | None = None) -> Path:
    """A recipe's data reference -> a verified file path.

    ``"<card>/<key>"`` is looked up under the data root and checked against the card's sha256;
    an existing path is the user's own file and is used as it is.
    """
    as_path = Path(ref).expanduser()
    name, _, key = ref.partition("/")
    if name not in cards() or as_path.exists():
        if as_path.exists():
            return as_path
        raise UserError(
            f"data {ref!r} is neither a file nor '<dataset>/<file>' with a known dataset "
            f"(known: {', '.join(sorted(cards()))})."
        )
    c = card(name)
    if key not in c.files:
        raise UserError(f"dataset {name!r} has no file {key!r}; its files: {', '.join(c.files)}.")
    base, origin = data_root(root)
    path, status = _file_status(c, key, base)
    if status == "missing":
        raise UserError(
            f"dataset {name!r}: file {path} is missing (data root {base}, from {origin}). "
            f"To fix: point --data-root or ${ENV} at the folder holding '{c.files[key].path}', or {_how_to_get(c)}."
        )
    if status.startswith("corrupt"):
        raise UserError(
            f"dataset {name!r}: file {path} is {status}; refusing to use it. "
            f"To fix: delete it and {_how_to_get(c)}, or restore the original file."
        )
    return path


def verify(name: str, root: str | Path | None = None) -> list[tuple[str, Path, str]]:
    """``[(file key, path, status)]`` with status ok | missing | corrupt (...) | unverified."""
    c = card(name)
    base, _ = data_root(root)
    return [(key, *_file_status(c, key, base)) for key in c.files]


def _download(url: str, dest: Path) -> None:
    _check_url(url)
    try:
        with urllib.request.urlopen(url, timeout=60) as r, open(dest, "wb") as f:
            shutil.copyfileobj(r, f)
    except OSError as exc:
        raise UserError(f"download of {url} failed ({exc}). Check the network, or place the files by hand.") from None


def fetch(name: str, root: str | Path | None = None, *, force: bool = False) -> list[Path]:
    """Download a dataset from its official source into the data root, checking every sha256."""
    c = card(name)
    base, _ = data_root(root)
    if not c.fetch:
        raise UserError(f"dataset {name!r} has no public download: {c.how_to_get or c.source}")
    written = []
    for src in c.fetch:
        targets = {k: base / c.files[k].path for k in (src.members.values() or c.files)}
        if not force and all(_file_status(c, k, base)[1] == "ok" for k in targets):
            continue
        with tempfile.TemporaryDirectory() as tmp:
            blob = Path(tmp) / "download"
            _download(src.url, blob)
            if src.sha256 and sha256sum(blob) != src.sha256:
                raise UserError(f"download of {src.url} has the wrong sha256; not used.")
            for member, key in src.members.items() or [(None, k) for k in targets]:
                data = _extract(blob, src.archive, member, src.url)
                out, entry = targets[key], c.files[key]
                digest = hashlib.sha256(data).hexdigest()
                if entry.plain_sha256 and digest == entry.plain_sha256 and out.suffix == ".gz":
                    out = out.with_suffix("")  # the decompressed content: kept as plain text
                elif entry.sha256 and digest != entry.sha256:
                    raise UserError(f"{name}: {member or src.url} does not match its card's sha256; not written.")
                out.parent.mkdir(parents=True, exist_ok=True)
                tmp_out = out.with_suffix(out.suffix + ".part")
                tmp_out.write_bytes(data)
                os.replace(tmp_out, out)
                written.append(out)
    return written


_FILTER_ERROR = getattr(tarfile, "FilterError", ())  # Python without tarfile's extraction filters: no such error


def _extract(blob: Path, archive: str | None, member: str | None, url: str = "the download") -> bytes:
    """The bytes of ``member`` of the downloaded archive (the whole file without an archive). Only a regular
    file whose name stays inside the archive is read (tarfile's ``data`` filter rules; no links); a damaged
    archive or a missing member is a :class:`UserError` naming the download."""
    import gzip
    import zlib

    if archive is None:
        return blob.read_bytes()
    if archive not in ("gz", "tar.gz", "zip"):
        raise UserError(f"unknown archive type {archive!r} for {url}; use tar.gz, zip or gz.")
    if member is not None and (Path(member).is_absolute() or not stays_within(member, "/archive")):
        raise UserError(f"archive member {member!r} of {url} leaves the archive's folder; refusing it.")
    try:
        if archive == "gz":
            return gzip.decompress(blob.read_bytes())
        if member is None:
            raise UserError(f"the card names no member of the {archive} archive {url} to read; list it under members.")
        if archive == "tar.gz":
            with tarfile.open(blob, "r:gz") as t:
                entry = t.getmember(member)
                if hasattr(tarfile, "data_filter"):
                    entry = tarfile.data_filter(entry, "/archive")
                f = t.extractfile(entry) if entry.isfile() else None
                if f is None:
                    raise UserError(f"archive member {member!r} of {url} is not a regular file (a link or folder).")
                return f.read()
        with zipfile.ZipFile(blob) as z:
            zinfo = z.getinfo(member)
            mode = zinfo.external_attr >> 16
            if zinfo.is_dir() or (mode and (mode & 0o170000) not in (0, 0o100000)):
                raise UserError(f"archive member {member!r} of {url} is not a regular file (a link or folder).")
            return z.read(zinfo)
    except KeyError:
        raise UserError(
            f"archive member {member!r} is not in the download {url}; the card's members are wrong."
        ) from None
    except _FILTER_ERROR as exc:
        raise UserError(f"archive member {member!r} of {url} is refused: {exc}.") from None
    except (tarfile.TarError, zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
        raise UserError(
            f"the download {url} is not a valid {archive} archive ({type(exc).__name__}: {str(exc)[:200]}); "
            "it is damaged or truncated: run `cl-domains data fetch` again."
        ) from None


class UserText:
    """A user's text file (``.gz`` accepted) read line by line as UTF-8. Within ``with``, a read or
    parse problem (bad UTF-8, a damaged gzip, a ``csv`` error, an unreadable file) becomes a
    :class:`UserError` naming the file and the 1-based line it happened on. Iterate it, or pass it
    to ``csv.reader`` like an open file."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.line = 0  # lines handed out so far
        self._f = None

    def __enter__(self) -> UserText:  # noqa: PYI034
        try:
            self._f = self._open("rt")
        except OSError as exc:
            raise UserError(f"cannot read {self.path}: {exc.strerror or exc}.") from None
        return self

    def __exit__(self, kind, exc, tb) -> None:
        if self._f is not None:
            self._f.close()
        if exc is None or isinstance(exc, UserError):
            return
        import csv
        import zlib

        at = f"{self.path}, line {max(self.line, 1)}"
        if isinstance(exc, UnicodeDecodeError):
            raise UserError(f"{self._bad_utf8()}: not UTF-8 text; is it a binary file? Save text as UTF-8.") from None
        if isinstance(exc, (EOFError, zlib.error)) or type(exc).__name__ == "BadGzipFile":
            raise UserError(
                f"{self.path}: damaged or truncated gzip data after line {self.line} ({exc}); "
                "download or compress the file again."
            ) from None
        if isinstance(exc, csv.Error):
            raise UserError(f"{at}: {exc}.") from None
        if isinstance(exc, OSError):
            raise UserError(f"cannot read {self.path} (line {self.line}): {exc.strerror or exc}.") from None

    def __iter__(self):
        return self

    def _open(self, mode: str):
        if str(self.path).endswith(".gz"):
            import gzip

            return gzip.open(self.path, mode, **({"encoding": "utf-8"} if mode == "rt" else {}))
        return open(self.path, mode, **({"encoding": "utf-8"} if mode == "rt" else {}))

    def _bad_utf8(self) -> str:
        """``"<file>, line N (byte 0x.. at column C)"`` of the first undecodable byte (text is
        decoded in blocks, so the line is found again in binary)."""
        try:
            with self._open("rb") as f:
                for n, raw in enumerate(f, 1):
                    try:
                        raw.decode("utf-8")
                    except UnicodeDecodeError as exc:
                        return f"{self.path}, line {n} (byte {raw[exc.start]:#04x} at column {exc.start + 1})"
        except Exception:  # noqa: BLE001, S110 - only a more precise message is lost
            pass
        return f"{self.path}, near line {self.line + 1}"

    def __next__(self) -> str:
        text = next(self._f)
        self.line += 1
        return text

    def readline(self) -> str:
        try:
            return next(self)
        except StopIteration:
            return ""

    def read(self) -> str:
        return "".join(self)


def open_text(path: str | Path) -> UserText:
    """Open ``.txt`` or ``.gz`` text as UTF-8 (see :class:`UserText`)."""
    return UserText(path)
