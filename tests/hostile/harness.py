"""The hostile-input harness: run ``cl-domains`` in a child process under hard limits and check how it ends.

Every hostile case must end with exit 0, 2 (a user error: one paragraph, no traceback) or 130 (interrupted),
within the child's time and memory bounds, and change nothing outside its own run or output folder (a sentinel
folder is hashed before and after). Cases that need no process call the functions directly and expect a
``UserError``; a representative sample goes through :func:`run_cli`.
"""

from __future__ import annotations

import hashlib
import os
import resource
import subprocess
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

#: the bounds every child runs under (also stated in docs/reliability.md)
MEMORY_BYTES = 6 * 1024**3  # address space (RLIMIT_AS): torch alone maps ~1-2 GiB
CPU_SECONDS = 60  # RLIMIT_CPU
WALL_SECONDS = 60  # the parent kills the child after this
ALLOWED_EXITS = (0, 2, 130)


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str
    args: tuple[str, ...] = ()

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def _limits(memory: int, cpu: int):
    def apply() -> None:  # in the child, before exec
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    return apply


def run_cli(
    *args: object,
    cwd: str | Path | None = None,
    env: dict[str, str] | None = None,
    stdin: str | None = None,
    memory: int = MEMORY_BYTES,
    cpu: int = CPU_SECONDS,
    wall: float = WALL_SECONDS,
) -> Result:
    """``cl-domains ARGS`` in a child process with ``RLIMIT_AS = memory``, ``RLIMIT_CPU = cpu`` and a wall
    timeout; a child that overruns the wall time is killed and reported with exit code -9.

    Args:
        args: the command line after ``cl-domains``.
        cwd: the child's working folder (default: the repository).
        env: variables added to the environment (the repository is on ``PYTHONPATH``, one OpenMP thread).
        stdin: text fed to the child's standard input (default: nothing, closed).
        memory, cpu, wall: the bounds.

    Returns:
        The exit code, standard output and standard error.
    """
    cmd = [sys.executable, "-m", "cl_domains.cli", *map(str, args)]
    environ = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "COLUMNS": "200",
        "OMP_NUM_THREADS": "1",
        "HF_HUB_OFFLINE": "1",
        **(env or {}),
    }
    try:
        p = subprocess.run(
            cmd,
            input=stdin or "",
            capture_output=True,
            text=True,
            errors="replace",
            timeout=wall,
            env=environ,
            cwd=cwd or REPO,
            preexec_fn=_limits(memory, cpu),
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else exc.stdout or ""
        err = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else exc.stderr or ""
        return Result(-9, out, err + f"\n[harness: killed after {wall} s]", tuple(map(str, args)))
    return Result(p.returncode, p.stdout, p.stderr, tuple(map(str, args)))


def run_many(commands: Sequence[Sequence[object]], *, workers: int = 2, **kwargs) -> list[Result]:
    """:func:`run_cli` for each command line, ``workers`` children at a time (results in order)."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda args: run_cli(*args, **kwargs), commands))


def error_paragraph(text: str) -> str:
    """The user-error message: from the last line starting with ``error:`` (``Error:`` for usage errors) to the
    end."""
    lines = text.rstrip().splitlines()
    start = max((i for i, line in enumerate(lines) if line.lower().startswith("error:")), default=None)
    return "\n".join(lines[start:]) if start is not None else ""


def assert_clean_exit(result: Result, *, codes: Sequence[int] = ALLOWED_EXITS, contains: str | None = None) -> None:
    """The case ended as promised: an allowed exit code, no traceback, and for exit 2 one paragraph starting
    with ``error:`` (no blank line inside); ``contains`` must appear in the output when given."""
    where = f"cl-domains {' '.join(result.args)} -> {result.code}\n{result.output[-3000:]}"
    assert result.code in codes, where
    assert "Traceback" not in result.output, where
    if result.code == 2:
        message = error_paragraph(result.stderr)
        assert message, where
        assert "\n\n" not in message and "\n \n" not in message, where
    if contains is not None:
        assert contains in result.output, where


def tree_digest(folder: str | Path) -> str:
    """A hash of everything under ``folder``: names, kinds, modes, file contents and link targets."""
    folder = Path(folder)
    h = hashlib.sha256()
    for root, dirs, files in os.walk(folder, followlinks=False):
        dirs.sort()
        for name in sorted(dirs + files):
            p = Path(root) / name
            st = os.lstat(p)
            h.update(f"{p.relative_to(folder)}\0{st.st_mode}\0".encode())
            if os.path.islink(p):
                h.update(os.readlink(p).encode())
            elif p.is_file():
                h.update(p.read_bytes())
    return h.hexdigest()


def make_sentinel(folder: str | Path) -> Path:
    """A folder of files a hostile case must leave alone (including ``step-*`` folders, which pruning deletes
    in run directories): returns the folder."""
    folder = Path(folder)
    for rel in ("notes.txt", "step-0000001/model.safetensors", "step-0000002/trainer.json", "deep/a/b.txt"):
        f = folder / rel
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(f"sentinel {rel}\n")
    return folder
