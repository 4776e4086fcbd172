"""The exceptions that the CLI turns into `error: <path>: <problem>` and exit code 2."""

from __future__ import annotations

import re
from os import PathLike

# C0 control characters (newlines, tabs, NUL ...) and DEL: shown as escapes so that a message stays one line.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def printable(text: str) -> str:
    r"""Text that prints as one line in any UTF-8 terminal: non-UTF-8 bytes and control characters escaped.

    A path with bytes that are not UTF-8 reaches Python as a str holding surrogates (PEP 383); they are
    shown as the bytes they stand for (`\xff`), never passed to a UTF-8 writer that would refuse them.
    """
    try:
        text = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a surrogate that is not an escaped byte
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


def _worker_line(text: str, cls: type) -> str:
    """Our one-line message out of a DataLoader worker's formatted traceback (its `module.Class: message` line)."""
    prefixes = (f"{cls.__module__}.{cls.__qualname__}: ", f"{cls.__qualname__}: ")
    lines = text.rstrip().splitlines() or [""]
    for line in reversed(lines):
        if line.startswith(prefixes):
            return line.split(": ", 1)[1]
    return lines[-1]


class S5Error(Exception):
    """A user-facing error: bad input, bad config or a refused output (exit 2, no traceback)."""

    def __init__(
        self, problem: str = "", path: str | PathLike[str] | None = None, *, message: str | None = None
    ) -> None:
        if message is not None:
            # torch.utils.data re-raises an exception of a DataLoader worker as `type(exc)(message=text)`, the
            # text being "Caught ... in DataLoader worker" plus the whole traceback: keep our one line.
            problem, path = _worker_line(message, type(self)), None
        self.problem = problem
        self.path = None if path is None else str(path)
        super().__init__(self.message)

    @property
    def message(self) -> str:
        """The one-line message, `<path>: <problem>` when a path is known."""
        text = f"{self.path}: {self.problem}" if self.path else self.problem
        return printable(text)


class InputError(S5Error):
    """A file or value given by the user is missing, unreadable or malformed."""


class ConfigError(S5Error):
    """A configuration file or option is invalid: unknown key, wrong type, missing file."""


class OutputExistsError(S5Error):
    """An output path exists and `--overwrite` was not given."""

    def __init__(self, path: str | PathLike[str] = "", *, message: str | None = None) -> None:
        if message is not None:
            super().__init__(message=message)
        else:
            super().__init__("exists and won't be overwritten without --overwrite", path)


class UntrustedFileError(InputError):
    """A file (checkpoint) carries content that would execute code when loaded."""
