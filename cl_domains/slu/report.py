"""The study's markdown table and its two-panel plot (strategies x seeds of a class-incremental run)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..core.recipe import PaperConfig
from ..core.runs import fmt_metric

__all__ = ["mean_std", "seen_accuracy", "study_table", "plot_study"]

METRICS = ("avg_acc", "last_acc", "forgetting")


def mean_std(xs: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    a = np.asarray(xs, dtype=np.float64)
    return float(a.mean()), float(a.std(ddof=1)) if len(a) > 1 else 0.0


def seen_accuracy(acc: np.ndarray, counts: list[int]) -> list[float]:
    """Accuracy on the classes seen so far after each phase (the curve whose mean is avg_acc)."""
    acc, n = np.asarray(acc, dtype=np.float64), np.asarray(counts, dtype=np.float64)
    return [float((acc[i, : i + 1] * n[: i + 1]).sum() / n[: i + 1].sum()) for i in range(len(acc))]


def study_table(summary: dict, paper: PaperConfig, n_seeds: int, paper_metrics: dict | None = None) -> str:
    """Markdown: one row per strategy, mean ± std over seeds, and the paper's numbers where known
    (``paper_metrics``, default ``paper.metrics``; empty when they are for other data)."""
    shown = paper.metrics if paper_metrics is None else paper_metrics
    rows = [
        "| strategy | avg incremental acc | last acc | forgetting | paper avg acc | paper last acc |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for s, m in summary.items():
        cells = [f"{m[k][0]:.2f} ± {m[k][1]:.2f}" for k in METRICS]
        p = [fmt_metric(shown.get(f"{s}/{k}")) for k in ("avg_acc", "last_acc")]
        rows.append(f"| {s} | " + " | ".join(cells + p) + " |")
    return (
        "\n".join(rows)
        + f"\n\nmean ± std over {n_seeds} seed(s); paper: {paper.source}"
        + (f" ({paper.setting})" if paper.setting else "")
    )


def plot_study(path: Path, results: dict, counts: list[int], title: str = "") -> None:
    """Left: accuracy on the classes seen so far after each task (mean ± std over seeds).
    Right: accuracy on each task's classes after the last task."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4))
    width = 0.8 / max(len(results), 1)
    for k, (s, rs) in enumerate(results.items()):
        curves = np.array([seen_accuracy(np.array(r["acc_matrix"]), counts) for r in rs])
        x = np.arange(1, curves.shape[1] + 1)
        ax1.plot(x, curves.mean(0), marker="o", label=s)
        ax1.fill_between(x, curves.mean(0) - curves.std(0), curves.mean(0) + curves.std(0), alpha=0.2)
        last = np.array([np.array(r["acc_matrix"])[-1] for r in rs])
        ax2.bar(x + (k - (len(results) - 1) / 2) * width, last.mean(0), width, yerr=last.std(0), label=s)
    ax1.set(title="accuracy on the classes seen so far", xlabel="after task", ylabel="accuracy (%)")
    ax2.set(title="per-task accuracy after the last task", xlabel="task", ylabel="accuracy (%)")
    ax1.legend(fontsize=8)
    ax2.legend(fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
