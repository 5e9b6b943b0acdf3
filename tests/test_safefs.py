"""core.safefs: regular files only, size limits, containment, deletion never through a link."""

import os
import time

import pytest

from cl_domains.core.errors import UserError
from cl_domains.core.safefs import UnsafeFile, is_inside, read_json, read_regular, read_text, safe_rmtree


def test_read_regular_refuses_fifo_symlink_folder_and_large_files_without_blocking(tmp_path):
    (tmp_path / "ok.json").write_text('{"a": 1}')
    assert read_json(tmp_path / "ok.json", 100) == {"a": 1}
    os.mkfifo(tmp_path / "fifo")
    t = time.monotonic()
    with pytest.raises(UnsafeFile, match="FIFO"):
        read_regular(tmp_path / "fifo", 100)
    assert time.monotonic() - t < 2
    (tmp_path / "link").symlink_to(tmp_path / "ok.json")
    with pytest.raises(UnsafeFile, match="symbolic link"):
        read_regular(tmp_path / "link", 100)
    with pytest.raises(UnsafeFile, match="folder"):
        read_regular(tmp_path, 100)
    (tmp_path / "big").write_bytes(b"x" * 101)
    with pytest.raises(UnsafeFile, match="101 bytes"):
        read_regular(tmp_path / "big", 100)
    (tmp_path / "latin").write_bytes(b"caf\xe9")
    with pytest.raises(UserError, match="not UTF-8"):
        read_text(tmp_path / "latin", 100)
    (tmp_path / "bad.json").write_text("{nope")
    with pytest.raises(ValueError, match="not valid JSON"):
        read_json(tmp_path / "bad.json", 100)
    with pytest.raises(UnsafeFile, match="does not exist"):
        read_regular(tmp_path / "missing", 100)


def test_is_inside_follows_dotdot_and_links(tmp_path):
    base, outside = tmp_path / "base", tmp_path / "outside"
    base.mkdir(), outside.mkdir()
    (base / "out").symlink_to(outside)
    assert is_inside(base / "a" / "b", base) and is_inside(base, base)
    assert not is_inside(base / ".." / "outside", base)
    assert not is_inside(base / "out" / "x", base)
    assert not is_inside("/etc/passwd", base)


def test_safe_rmtree_never_deletes_through_a_link_or_outside_base(tmp_path):
    base, outside = tmp_path / "run", tmp_path / "precious"
    (outside / "step-0000001").mkdir(parents=True)
    (outside / "step-0000001" / "keep").write_text("x")
    base.mkdir()
    (base / "checkpoints").symlink_to(outside)
    assert not safe_rmtree(base / "checkpoints" / "step-0000001", base)  # real folder, reached through a link
    assert not safe_rmtree(base / "checkpoints", base)  # the link itself
    assert not safe_rmtree(outside, base)
    assert (outside / "step-0000001" / "keep").is_file()
    (base / "own" / "inner").mkdir(parents=True)
    (base / "own" / "inner" / "escape").symlink_to(outside)
    assert safe_rmtree(base / "own", base)
    assert not (base / "own").exists() and (outside / "step-0000001" / "keep").is_file()
    assert not safe_rmtree(base / "gone", base)
