"""Progress bars for the CLI's long work (``semcache tune``): each phase a rich bar with a count,
elapsed time and an estimate of the time left, on stderr so a command's own output stays clean."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class PhaseBars:
    """One bar per phase; a new phase completes the one before (``semcache.decision.tuning.Progress``)."""

    def __init__(self, progress: Progress) -> None:
        self._progress = progress
        self._task: TaskID | None = None

    def begin(self, what: str, total: int | None) -> None:
        """Start a phase of ``total`` steps (None: unknown)."""
        self.finish()
        self._task = self._progress.add_task(what, total=total)

    def advance(self, steps: int) -> None:
        """Count ``steps`` more steps of the current phase."""
        if self._task is not None:
            self._progress.advance(self._task, steps)

    def finish(self) -> None:
        """Mark the current phase done (a phase of unknown length at the count it reached)."""
        if self._task is not None:
            task = next(t for t in self._progress.tasks if t.id == self._task)
            done = task.total if task.total is not None else task.completed
            self._progress.update(self._task, total=done, completed=done)


@contextmanager
def phase_bars(console: Console | None = None) -> Iterator[PhaseBars]:
    """Show phase bars while the block runs."""
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console or Console(stderr=True)) as progress:
        bars = PhaseBars(progress)
        yield bars
        bars.finish()
