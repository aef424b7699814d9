"""rich progress bars for long work, silenced by --quiet."""

from __future__ import annotations

import os
import sys
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


# Read when those libraries are imported, here and in worker processes (they inherit the environment).
_LIBRARY_QUIET_ENV = {
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",  # huggingface_hub's bars; transformers' too, which follow it at import
    "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
    "TRANSFORMERS_VERBOSITY": "error",
}


def quiet_libraries() -> None:
    """Only mmia's own progress shows: transformers' "Loading weights" / "Writing model shards"
    bars, datasets' and the Hub's bars and transformers' info/warning chatter are switched off,
    in this process and in the worker processes it starts. Cheap when those libraries are not
    imported yet (it only sets their environment switches)."""
    for key, value in _LIBRARY_QUIET_ENV.items():
        os.environ[key] = value
    if "huggingface_hub" in sys.modules:
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()
    if "transformers" in sys.modules:
        from transformers.utils import logging as tf_logging

        tf_logging.set_verbosity_error()
        tf_logging.disable_progress_bar()
    if "datasets" in sys.modules:
        from datasets.utils.tqdm import disable_progress_bars as disable_datasets_bars

        disable_datasets_bars()


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
