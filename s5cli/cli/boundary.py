"""The single error boundary: S5Error -> `error: <path>: <problem>` on stderr, exit 2."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import typer

from s5cli.console import console
from s5cli.errors import S5Error

F = TypeVar("F", bound=Callable[..., Any])

_state = {"debug": False}


def set_debug(debug: bool) -> None:
    """Show tracebacks of user errors too (--debug)."""
    _state["debug"] = debug


def fail(message: str) -> None:
    """Print one error line on stderr and exit 2."""
    # No markup, no wrapping: a path with brackets or a long message stays one line.
    console.print(f"error: {message}", markup=False, highlight=False, soft_wrap=True, style="red")
    raise typer.Exit(code=2)


def guarded(func: F) -> F:
    """Wrap a command so that user errors exit 2 with one line and no traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except S5Error as exc:
            if _state["debug"]:
                raise
            fail(exc.message)
        except KeyboardInterrupt:
            console.print("interrupted", markup=False)
            sys.exit(130)
        except MemoryError:
            if _state["debug"]:
                raise
            fail("out of memory; try a smaller --batch-size or --tile-size")
        except OSError as exc:
            # A full disk or a permission problem is the user's to fix, not a bug.
            if _state["debug"] or exc.errno is None:
                raise
            where = exc.filename or ""
            fail(f"{where}: {exc.strerror}" if where else str(exc.strerror))
        return None

    return wrapper  # type: ignore[return-value]
