"""rich progress bars for long work, silenced by --quiet."""

from __future__ import annotations

from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

_state = {"quiet": False}
console = Console(stderr=True)


def set_quiet(quiet: bool) -> None:
    _state["quiet"] = quiet


def is_quiet() -> bool:
    return _state["quiet"]


class _Bar:
    def __init__(self, progress: Progress | None, task):
        self._progress, self._task = progress, task

    def advance(self, n: int = 1) -> None:
        if self._progress is not None:
            self._progress.advance(self._task, n)


@contextmanager
def progress_bar(description: str, total: int | None, unit: str = "samples"):
    """A bar with count, rate (`unit`/s) and time left; a no-op when quiet."""
    if _state["quiet"]:
        yield _Bar(None, None)
        return
    columns = [
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    ]
    with Progress(*columns, console=console, transient=False) as prog:
        task = prog.add_task(description, total=total, rate="")

        class _Rated(_Bar):
            def advance(self, n: int = 1) -> None:
                prog.advance(task, n)
                speed = prog.tasks[0].speed
                if speed:
                    prog.update(task, rate=f"{speed:.1f} {unit}/s")

        yield _Rated(prog, task)


def track(iterable, description: str, total: int | None = None, unit: str = "items"):
    """Iterate with a progress bar."""
    if total is None and hasattr(iterable, "__len__"):
        total = len(iterable)
    with progress_bar(description, total, unit) as bar:
        for item in iterable:
            yield item
            bar.advance()


def info(message: str) -> None:
    if not _state["quiet"]:
        console.print(message)
