"""Progress output: on a terminal (a pty) the training and embedding bars are drawn; in a pipe they are not and the
log lines say how far training got; ``--quiet`` draws and logs nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import cl_domains

BAR = "━"  # rich's bar character
ROOT = Path(cl_domains.__file__).parents[1]

pytestmark = pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal")


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("TTY_INTERACTIVE", "TTY_COMPATIBLE", "NO_COLOR")}
    pythonpath = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    return {**env, "PYTHONPATH": pythonpath, "OMP_NUM_THREADS": "1", "TERM": "xterm-256color", "COLUMNS": "120"}


def _cli(*args: str, tty: bool) -> str:
    """The output (stdout and stderr) of ``cl-domains ARGS``, on a pseudo-terminal or through a pipe."""
    cmd = [sys.executable, "-m", "cl_domains.cli", *args]
    if not tty:
        done = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stdout + done.stderr
    master, slave = os.openpty()
    proc = subprocess.Popen(cmd, stdout=slave, stderr=slave, stdin=subprocess.DEVNULL, env=_env())
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    assert proc.wait(timeout=120) == 0, b"".join(chunks).decode(errors="replace")
    return b"".join(chunks).decode(errors="replace")


def _series(path: Path, n: int = 6, length: int = 24) -> Path:
    rows = [",".join(f"{(i * 7 + t) % 5 * 0.3:.2f}" for t in range(length)) + ":1" for i in range(n)]
    head = ["@problemName T", "@univariate true", "@equalLength true", f"@seriesLength {length}", "@classLabel true 1"]
    path.write_text("\n".join([*head, "@data", *rows]) + "\n")
    return path


def test_bars_on_a_terminal_none_in_a_pipe_nothing_when_quiet(tmp_path):
    run = ["run", "autotcl_ucr", "-p", "tiny", "--set", "train.log_every=1", "--out", str(tmp_path / "runs")]
    shown = _cli(*run, tty=True)
    assert BAR in shown and "autotcl_ucr" in shown  # the training bar, named by the recipe
    assert "step 1/" not in shown  # on a terminal the bar replaces the step log lines
    model = next((tmp_path / "runs").iterdir()) / "model"
    data = _series(tmp_path / "x.ts")
    embed = ["embed", str(model), "--data", str(data), "--batch-size", "2"]
    on_tty = _cli(*embed, "--out", str(tmp_path / "a.npy"), tty=True)
    assert BAR in on_tty and "embedding" in on_tty
    piped = _cli(*embed, "--out", str(tmp_path / "b.npy"), tty=False)
    assert BAR not in piped and "\x1b[" not in piped  # no bar, no terminal control codes
    quiet = _cli(*embed, "--out", str(tmp_path / "c.npy"), "--quiet", tty=True)
    assert BAR not in quiet and "embedding" not in quiet


def test_training_in_a_pipe_logs_lines_instead_of_a_bar(tmp_path):
    piped = _cli("run", "autotcl_ucr", "-p", "tiny", "--set", "train.log_every=1", "--out", str(tmp_path), tty=False)
    assert "step 1/" in piped and BAR not in piped
