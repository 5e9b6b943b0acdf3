"""Run outputs: ``runs/<recipe>-<time>/`` with the resolved config, ``metrics.json``, a log,
a PNG of the curves and a markdown table of our numbers against the paper's."""

from __future__ import annotations

import json
import os
import platform
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.console import Console

from .errors import UserError
from .recipe import Recipe

__all__ = ["Run", "atomic_write_text", "comparison_table", "fmt_metric", "shown_paper"]

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
        if (self.dir / "metrics.json").is_file():
            try:
                self.metrics = json.loads((self.dir / "metrics.json").read_text())
            except (ValueError, UnicodeDecodeError) as exc:
                raise UserError(
                    f"{self.dir / 'metrics.json'} is not valid JSON ({exc}); the run directory is damaged."
                ) from None

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
    def create(cls, out: str | Path, recipe: Recipe, *, name: str | None = None) -> "Run":
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
        return cls(d)

    @property
    def info(self) -> dict[str, Any]:
        f = self.dir / "run.json"
        return json.loads(f.read_text()) if f.is_file() else {}

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
