"""One console for the whole tool: verbosity, messages on stderr and rich progress bars."""

from __future__ import annotations

import logging
import os
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TypeVar

from rich.console import Console
from rich.logging import RichHandler
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

T = TypeVar("T")

# Messages and bars go to stderr so that `--json` output on stdout stays machine-readable.
console = Console(stderr=True, highlight=False)
log = logging.getLogger("s5cli")

_state = {"verbosity": 0}


def set_verbosity(verbose: int = 0, quiet: int = 0) -> None:
    """Set the verbosity from -v/-q counts (rio habit: level = 30 - 10 * (v - q))."""
    level = max(10, min(50, 30 - 10 * (verbose - quiet)))
    _state["verbosity"] = verbose - quiet
    log.setLevel(level)
    if not log.handlers:
        handler = RichHandler(console=console, show_time=False, show_path=False, markup=False)
        log.addHandler(handler)
        log.propagate = False
    for handler in log.handlers:
        handler.setLevel(level)


def is_quiet() -> bool:
    """True under -q."""
    return _state["verbosity"] < 0


def show_progress() -> bool:
    """Bars only on an interactive terminal, never under -q or in CI."""
    if is_quiet() or os.environ.get("CI") or os.environ.get("S5_NO_PROGRESS"):
        return False
    return sys.stderr.isatty()


def info(message: str) -> None:
    """Print a status line on stderr unless -q."""
    if not is_quiet():
        console.print(message, markup=False, soft_wrap=True)  # one line per message, whatever the width


def warn(message: str) -> None:
    """Print a warning on stderr (shown also under -q: it may change how output is read)."""
    console.print(f"warning: {message}", markup=False, style="yellow", soft_wrap=True)


def show_warning_line(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: object = None,
    line: object = None,
) -> None:
    """`warnings.showwarning` in our form: one `warning:` line, without the source line Python adds."""
    del category, filename, lineno, file, line
    warn(" ".join(str(message).split()))


def one_line_warnings() -> None:
    """Show the warnings libraries raise (pyogrio, torch's DataLoader, ...) as one line each, like ours."""
    warnings.showwarning = show_warning_line


def _new_progress(unit: str) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
        disable=not show_progress(),
    )


class ProgressBar:
    """A handle on one rich task: `advance(n)` and an optional rate text (e.g. megapixels/s)."""

    def __init__(self, progress: Progress, task_id: int) -> None:
        self._progress = progress
        self._task = task_id

    def advance(self, n: float = 1) -> None:
        """Advance the bar by n units."""
        self._progress.advance(self._task, n)

    def set_rate(self, text: str) -> None:
        """Show a free-form rate text next to the bar."""
        self._progress.update(self._task, rate=text)


@contextmanager
def progress_bar(description: str, total: float | None = None, unit: str = "it") -> Iterator[ProgressBar]:
    """A progress bar for a long loop; silent when bars are off."""
    progress = _new_progress(unit)
    with progress:
        task_id = progress.add_task(description, total=total, rate="")
        yield ProgressBar(progress, task_id)
