"""The exceptions that the CLI turns into `error: <path>: <problem>` and exit code 2."""

from __future__ import annotations

from os import PathLike


class S5Error(Exception):
    """A user-facing error: bad input, bad config or a refused output (exit 2, no traceback)."""

    def __init__(self, problem: str, path: str | PathLike[str] | None = None) -> None:
        self.problem = problem
        self.path = None if path is None else str(path)
        super().__init__(self.message)

    @property
    def message(self) -> str:
        """The one-line message, `<path>: <problem>` when a path is known."""
        return f"{self.path}: {self.problem}" if self.path else self.problem


class InputError(S5Error):
    """A file or value given by the user is missing, unreadable or malformed."""


class ConfigError(S5Error):
    """A configuration file or option is invalid: unknown key, wrong type, missing file."""


class OutputExistsError(S5Error):
    """An output path exists and `--overwrite` was not given."""

    def __init__(self, path: str | PathLike[str]) -> None:
        super().__init__("exists and won't be overwritten without --overwrite", path)


class UntrustedFileError(InputError):
    """A file (checkpoint) carries content that would execute code when loaded."""
