"""Progress on the terminal: bars with the time left (training, embedding, the matrix), a spinner while a split is
scored, and ``--quiet``. When the output is not a terminal no bar is drawn and the log lines say how far work got.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from .runs import console

__all__ = ["bars_shown", "quiet_output", "progress_bar", "evaluating"]


def bars_shown() -> bool:
    """Whether bars are drawn: the output is a terminal and not muted by ``--quiet``."""
    return console.is_terminal and not console.quiet


@contextlib.contextmanager
def quiet_output(quiet: bool) -> Iterator[None]:
    """``--quiet``: no bar, spinner or log line on the console while inside (files such as ``train.log`` are still
    written; errors are printed by the CLI on its own console)."""
    before = console.quiet
    console.quiet = quiet or before
    try:
        yield
    finally:
        console.quiet = before


@contextlib.contextmanager
def progress_bar(description: str, total: int) -> Iterator[Callable[[], None]]:
    """A bar of ``total`` units with the elapsed and remaining time; yields ``advance()`` (thread-safe).

    Args:
        description: the bar's label.
        total: units of work (e.g. matrix cells).
    """
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, disable=not bars_shown()) as bar:
        tid = bar.add_task(description, total=total)
        yield lambda: bar.advance(tid)


@contextlib.contextmanager
def evaluating(split: str) -> Iterator[None]:
    """A spinner while ``split`` is scored (nothing when bars are not shown, or below the training bar, which
    stays on screen meanwhile)."""
    from rich.errors import LiveError

    status = console.status(f"scoring {split}", spinner="dots") if bars_shown() else None
    if status is not None:
        try:
            status.start()
        except LiveError:  # another live display (the training bar) is active
            status = None
    try:
        yield
    finally:
        if status is not None:
            status.stop()
