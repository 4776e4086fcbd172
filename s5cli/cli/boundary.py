"""The single error boundary: S5Error and usage errors -> one line `error: ...` on stderr, exit 2.

Ctrl-C and SIGTERM (s5cli/interrupts.py) stop a command through the same clean-ups and exit 130 / 143.

`guarded` wraps every command where it is registered (cli/__init__.py); `OneLineUsageErrors` is the app's
group class, so that Typer's usage errors (unknown command or option, a value that is not a number)
are one line too, instead of a multi-line box, and the global -v/-q/--debug work after the command.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import typer
from typer.core import TyperGroup

from s5cli.console import console
from s5cli.errors import S5Error
from s5cli.interrupts import Terminated, exit_code, terminate_as_interrupt

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


# What allocators say when a request cannot be met: torch's CPU allocator raises a plain RuntimeError.
_ALLOCATION_FAILURES = ("can't allocate memory", "out of memory", "not enough memory")


def _out_of_memory(exc: BaseException) -> bool:
    """True for an allocation failure: MemoryError, torch's OutOfMemoryError or an allocator's RuntimeError."""
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":
        return True
    return isinstance(exc, RuntimeError) and any(text in str(exc) for text in _ALLOCATION_FAILURES)


def guarded(func: F) -> F:
    """Wrap a command so that user errors exit 2 with one line and no traceback; SIGTERM cleans up like Ctrl-C."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            with terminate_as_interrupt():
                return func(*args, **kwargs)
        except S5Error as exc:
            if _state["debug"]:
                raise
            fail(exc.message)
        except KeyboardInterrupt as exc:  # Ctrl-C or SIGTERM: the clean-ups ran on the way out
            console.print("terminated" if isinstance(exc, Terminated) else "interrupted", markup=False)
            sys.exit(exit_code(exc))
        except (MemoryError, RuntimeError) as exc:
            if _state["debug"] or not _out_of_memory(exc):
                raise
            fail("out of memory; try a smaller --batch-size or --tile-size (or a smaller model)")
        except OSError as exc:
            # A full disk or a permission problem is the user's to fix, not a bug.
            if _state["debug"] or exc.errno is None:
                raise
            where = exc.filename or ""
            fail(f"{where}: {exc.strerror}" if where else str(exc.strerror))
        return None

    return wrapper  # type: ignore[return-value]


# The app's own options, also accepted after the command name (moved in front of it).
_GLOBAL_FLAGS = ("-v", "-vv", "-vvv", "--verbose", "-q", "-qq", "--quiet", "--debug")


def _hoist_global_flags(args: list[str]) -> list[str]:
    """`s5 predict ... -q` -> `s5 -q predict ...`: global flags may follow the command (not after `--`)."""
    if "--" in args:
        head, tail = args[: args.index("--")], args[args.index("--") :]
    else:
        head, tail = args, []
    flags = [a for a in head[1:] if a in _GLOBAL_FLAGS]
    if not head or head[0].startswith("-") or not flags:
        return args
    rest = [head[0], *(a for a in head[1:] if a not in _GLOBAL_FLAGS)]
    return [*flags, *rest, *tail]


def _plain_flags(group: Any) -> None:
    """Show on/off flags as flags in --help: no `<bool>` type column (the option's name is the whole story)."""
    commands = [group, *getattr(group, "commands", {}).values()]
    for command in commands:
        for param in command.params:
            if getattr(param, "is_flag", False) and not getattr(param, "count", False):
                param.metavar = ""


class OneLineUsageErrors(TyperGroup):
    """The app's group: usage errors print one line and exit 2, like every other error."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        """Run the app; in standalone mode, exit with the command's code."""
        argv = _hoist_global_flags(list(sys.argv[1:] if args is None else args))
        _plain_flags(self)
        if not standalone_mode:
            return super().main(argv, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            code = super().main(argv, prog_name, complete_var, standalone_mode=False, **extra)
        except typer.Abort:
            console.print("aborted", markup=False)
            sys.exit(1)
        except Exception as exc:
            exit_code = getattr(exc, "exit_code", None)
            if not hasattr(exc, "format_message") or not isinstance(exit_code, int):
                raise
            text = exc.format_message()
            if type(exc).__name__ == "NoArgsIsHelpError":  # `s5` alone: the help, as Typer shows it
                typer.echo(text, err=True)
                sys.exit(0)
            ctx = getattr(exc, "ctx", None)
            where = ctx.command_path if ctx is not None else "s5"
            line = " ".join(text.split())  # one line, whatever the message held
            console.print(
                f"error: {where}: {line} (see {where} --help)",
                markup=False,
                highlight=False,
                soft_wrap=True,
                style="red",
            )
            sys.exit(exit_code if exit_code else 2)
        sys.exit(code if isinstance(code, int) else 0)
