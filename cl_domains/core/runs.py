"""Run outputs: ``runs/<recipe>-<time>/`` with the resolved config, ``metrics.json``, a log,
a PNG of the curves and a markdown table of our numbers against the paper's."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from rich.console import Console

from .errors import UserError
from .recipe import Recipe
from .safefs import KIB, MIB, UnsafeFile, check_regular, is_inside, read_json

__all__ = ["Run", "RunInfo", "atomic_write_text", "comparison_table", "fmt_metric", "shown_paper"]

#: size limits of the state files read back from a run directory
STATE_MAX_BYTES = 256 * MIB  # metrics.json, trainer.json (loss histories grow with the steps)
SMALL_MAX_BYTES = 64 * KIB  # run.json, cell.json, the lock's info, checkpoints/latest
LOCK_NAME, LOCK_INFO = ".lock", ".lock.json"
#: the entries a run writes into its directory: on resume each must be what it claims, and inside the directory
_RUN_FILES = ("metrics.json", "train.log", "report.md", "curves.png", "run.json", "config.yaml", LOCK_NAME, LOCK_INFO)
_RUN_FOLDERS = ("checkpoints", "best", "model", "strategies")
_HELD: dict[Path, Any] = {}  # run directory -> the FileLock this process holds on it

console = Console(stderr=True)


def atomic_write_text(path: Path, text: str) -> None:
    """Write via a temporary file and ``os.replace``: readers never see half a file."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


class Run:
    """One run directory. ``metrics`` is the content of ``metrics.json``."""

    def __init__(self, directory: Path):
        self.dir = Path(directory)
        self.muted = False  # set on the non-zero ranks of a multi-process run: only rank 0 writes the log
        self.metrics: dict[str, Any] = {}
        f = self.dir / "metrics.json"
        if os.path.lexists(f):
            try:
                metrics = read_json(f, STATE_MAX_BYTES, base=self.dir)
            except UnsafeFile as exc:
                raise UserError(f"{exc} The run directory is damaged.") from None
            if not isinstance(metrics, dict):
                raise UserError(
                    f"{f} holds a {type(metrics).__name__}, not the run's metrics; the run directory is damaged."
                )
            self.metrics = metrics

    latest_created: Path | None = (
        None  # the last directory :meth:`create` made in this process (the CLI names it on Ctrl-C)
    )

    @staticmethod
    def check_out(out: str | Path) -> Path:
        """``out`` must be a folder or not exist yet (checked before any data is loaded)."""
        out = Path(out)
        for p in (out, *out.parents):
            if p.exists():
                if not p.is_dir():
                    raise UserError(f"--out {out}: {p} is a file, not a folder; give a folder for the run directories.")
                break
        return out

    @classmethod
    def create(cls, out: str | Path, recipe: Recipe, *, name: str | None = None) -> Run:
        """A new ``<out>/<recipe>-<time>[-N]``: ``mkdir`` without ``exist_ok`` claims the name, so
        processes starting together get distinct folders. With ``name`` (e.g. a study's sub-run
        ``strategies/coconut-seed0``): exactly ``<out>/<name>``, which must not exist yet."""
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        parent = cls.check_out(out)
        if name is not None:
            d = parent / name
            if not _claim(d):
                raise UserError(f"the run folder {d} exists already.")
        else:
            base = parent / f"{recipe.name}-{stamp}"
            names = (base if i == 1 else base.with_name(f"{base.name}-{i}") for i in range(1, 10_000))
            d = next((c for c in names if _claim(c)), None)
            if d is None:
                raise UserError(f"could not find a free run folder name next to {base} (9,999 taken).")
        Run.latest_created = d
        (d / "config.yaml").write_text(recipe.dump())
        info = {
            "recipe": recipe.name,
            "source": recipe.source,
            "profile": recipe.profile,
            "started": stamp,
            "python": platform.python_version(),
            "host": platform.node(),
        }
        atomic_write_text(d / "run.json", json.dumps(info, indent=2))
        run = cls(d)
        run.lock()
        return run

    @property
    def info(self) -> dict[str, Any]:
        """``run.json`` validated (:class:`RunInfo`); empty when absent, a :class:`UserError` naming the file when
        it is damaged."""
        f = self.dir / "run.json"
        if not os.path.lexists(f):
            return {}
        from pydantic import ValidationError

        data = read_json(f, SMALL_MAX_BYTES, base=self.dir)
        try:
            return RunInfo.model_validate(data).model_dump(exclude_none=True)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(map(str, first["loc"])) or "top level"
            raise UnsafeFile(f"{f} is not a run description ({where}: {first['msg']}).") from None

    def check_layout(self) -> None:
        """Before resuming: every entry the run writes is a regular file or folder (no FIFO, device or other
        surprise) and no link leads out of the run directory (so nothing is read, written or deleted outside it).

        Raises:
            UserError: naming the entry and what it is.
        """
        for name in (*_RUN_FILES, *_RUN_FOLDERS):
            p = self.dir / name
            if not os.path.lexists(p):
                continue
            if not is_inside(p, self.dir):
                raise UserError(
                    f"{p} is a link to {os.path.realpath(p)}, outside the run directory {self.dir}: a run only reads, "
                    "writes and deletes inside its directory. Replace the link with the folder or file itself."
                )
            ok = p.is_dir() if name in _RUN_FOLDERS else p.is_file()
            if not ok:
                kind = "folder" if name in _RUN_FOLDERS else "regular file"
                raise UserError(f"{p} is not a {kind}; the run directory is damaged (move that entry away).")

    def lock(self) -> bool:
        """Claim the run directory for this process (a lock file, released when the process ends in any way);
        its holder is written next to it. Returns False when this process holds it already.

        Raises:
            UserError: another process holds it (naming its pid, host and command), or the lock file is not a
                regular file.
        """
        from filelock import FileLock, Timeout

        key = self.dir.resolve()
        if key in _HELD:
            return False
        path = self.dir / LOCK_NAME
        if os.path.lexists(path):
            check_regular(path, base=self.dir)
        lock = FileLock(str(path), timeout=0, thread_local=False)
        try:
            lock.acquire(timeout=0)
        except Timeout:
            raise UserError(
                f"the run directory {self.dir} is in use by {self._holder()}; wait until it ends or stop it: "
                "two processes must not train one run directory."
            ) from None
        except OSError as exc:
            raise UserError(f"cannot lock the run directory {self.dir}: {exc.strerror or exc}.") from None
        _HELD[key] = lock
        holder = {"pid": os.getpid(), "host": platform.node(), "since": time.strftime("%Y-%m-%d %H:%M:%S")}
        atomic_write_text(self.dir / LOCK_INFO, json.dumps({**holder, "command": " ".join(sys.argv)[:500]}))
        return True

    def _holder(self) -> str:
        try:
            info = read_json(self.dir / LOCK_INFO, SMALL_MAX_BYTES, base=self.dir)
            pid, host = int(info["pid"]), str(info["host"])[:100]
            since, command = str(info.get("since", "?"))[:40], str(info.get("command", ""))[:200]
        except (UserError, KeyError, TypeError, ValueError):
            return "another process (its pid is not recorded)"
        return f"pid {pid} on host {host} since {since}" + (f" ({command})" if command else "")

    def unlock(self) -> None:
        """Release the claim of :meth:`lock` (nothing when this process does not hold it)."""
        Run.release(self.dir)

    @staticmethod
    def release(directory: Path) -> None:
        """Release this process's claim on the run directory ``directory`` (see :meth:`lock`)."""
        key = Path(directory).resolve()
        lock = _HELD.pop(key, None)
        if lock is not None:
            with contextlib.suppress(OSError):
                os.unlink(key / LOCK_INFO)
            lock.release()

    @staticmethod
    def held() -> set[Path]:
        """The run directories this process holds (see :meth:`lock`)."""
        return set(_HELD)

    @property
    def config_path(self) -> Path:
        return self.dir / "config.yaml"

    def log(self, message: str, *, echo: bool = True) -> None:
        if self.muted:
            return
        line = f"[{time.strftime('%H:%M:%S')}] {message}"
        with open(self.dir / "train.log", "a") as f:
            f.write(line + "\n")
        if echo:
            console.print(line, markup=False, highlight=False)

    def save_metrics(self) -> None:
        atomic_write_text(self.dir / "metrics.json", json.dumps(self.metrics, indent=2, sort_keys=True))

    def plot(self) -> Path:
        """``curves.png``: training loss and dev metric against step, and the test metrics before
        training, of each baseline, after training and in the paper (for the paper's data) side by side."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        hist = self.metrics.get("history", {})
        fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(15, 4))
        loss = hist.get("loss", [])
        if loss:
            ax1.plot([s for s, _ in loss], [v for _, v in loss], lw=1)
        ax1.set(title="training loss", xlabel="step", ylabel="loss")
        key = self.metrics.get("select_metric")
        dev = [(s, m) for s, m in hist.get("dev", []) if key in m]
        if dev:
            ax2.plot([s for s, _ in dev], [m.get(key) for _, m in dev], marker="o")
            if self.metrics.get("best_step"):
                ax2.axvline(self.metrics["best_step"], ls=":", color="grey", label="best checkpoint")
                ax2.legend(fontsize=8)
        ax2.set(title=f"dev {key or ''}" if dev else "no dev set", xlabel="step")
        after = self.metrics.get("final", {})
        paper = shown_paper(self.metrics)
        names = [n for n in dict.fromkeys([*after, *paper]) if not n.endswith("_std")]  # spreads are not bars
        groups = [
            ("before", self.metrics.get("before", {})),
            *self.metrics.get("baselines", {}).items(),
            ("ours", after),
            ("paper", paper),
        ]
        groups = [(label, values) for label, values in groups if values]
        width = 0.8 / max(len(groups), 1)
        for j, (label, values) in enumerate(groups):
            offset = (j - (len(groups) - 1) / 2) * width
            xs = [i + offset for i, n in enumerate(names) if n in values]
            bars = ax3.bar(xs, [values[n] for n in names if n in values], width=width, label=label)
            ax3.bar_label(bars, fmt="%.3g", fontsize=6)
        ax3.set_xticks(
            range(len(names)),
            names,
            rotation=45 if len(names) > 6 else 0,
            ha="right" if len(names) > 6 else "center",
            fontsize=7,
        )
        ax3.set(title="test metrics")
        if groups:  # a run with no test metrics (e.g. unlabelled series) has nothing to label
            ax3.legend(fontsize=8)
        fig.suptitle(self.dir.name, fontsize=9)
        fig.tight_layout()
        out = self.dir / "curves.png"
        fig.savefig(out, dpi=110)
        plt.close(fig)
        return out


class RunInfo(BaseModel):
    """``run.json``: what a run directory was started from (the profile is the only field resuming uses)."""

    model_config = ConfigDict(extra="allow", strict=True)
    recipe: str | None = Field(None, max_length=500)
    source: str | None = Field(None, max_length=4096)
    profile: str | None = Field(None, max_length=200)
    started: str | None = Field(None, max_length=100)
    python: str | None = Field(None, max_length=100)
    host: str | None = Field(None, max_length=500)


def fmt_metric(v: Any) -> str:
    """Four significant digits (78.56, 0.04462), or a dash for a missing value."""
    return f"{v:.4g}" if isinstance(v, (int, float)) else "—"


def shown_paper(metrics: dict[str, Any]) -> dict[str, float]:
    """The paper's metrics of a run's ``metrics.json``, empty when they are for other data (``paper.shown``)."""
    paper = metrics.get("paper", {})
    return paper.get("metrics", {}) if paper.get("shown", True) else {}


def comparison_table(
    before: dict[str, float],
    after: dict[str, float],
    paper: dict[str, float],
    paper_label: str = "paper",
    baselines: dict[str, dict[str, float]] | None = None,
) -> str:
    """Markdown table: one row per metric, columns before training / each baseline / ours / paper
    (empty columns are left out, except ours)."""
    names = list(dict.fromkeys([*after, *paper]))
    cols = [("before training", before), *(baselines or {}).items(), ("ours", after), (paper_label, paper)]
    cols = [(label, values) for label, values in cols if values or label == "ours"]
    rows = ["| metric | " + " | ".join(label for label, _ in cols) + " |", "|---|" + "---:|" * len(cols)]
    for n in names:
        rows.append(f"| {n} | " + " | ".join(fmt_metric(values.get(n)) for _, values in cols) + " |")
    return "\n".join(rows)


def _claim(path: Path) -> bool:
    """Create ``path`` (and its parents); False when it exists already (another run took the name)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.mkdir()
    except FileExistsError:
        return False
    except OSError as exc:
        raise UserError(f"cannot create the run folder {path}: {exc.strerror or exc}.") from None
    return True
