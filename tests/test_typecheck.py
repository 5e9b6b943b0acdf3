"""The project's mypy settings (pyproject.toml, run on cl_domains/core by scripts/test) reject a function that
returns a value of the wrong type, and accept the same function written correctly."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("mypy")
PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def _mypy(tmp_path: Path, source: str) -> subprocess.CompletedProcess:
    module = tmp_path / "sample.py"
    module.write_text(source)
    cmd = [sys.executable, "-m", "mypy", "--config-file", str(PYPROJECT), "--cache-dir", str(tmp_path / "cache")]
    return subprocess.run([*cmd, str(module)], capture_output=True, text=True, timeout=120)


def test_mypy_settings_catch_a_wrong_return_type(tmp_path):
    wrong = _mypy(tmp_path, 'def width(name: str) -> int:\n    return name + "px"\n')
    assert wrong.returncode == 1, wrong.stdout + wrong.stderr
    assert "Incompatible return value type" in wrong.stdout and "[return-value]" in wrong.stdout
    partly_typed = _mypy(tmp_path, "def width(name) -> int:\n    return len(name)\n")
    assert partly_typed.returncode == 1 and "[no-untyped-def]" in partly_typed.stdout  # disallow_incomplete_defs
    right = _mypy(tmp_path, "def width(name: str) -> int:\n    return len(name)\n")
    assert right.returncode == 0, right.stdout + right.stderr
