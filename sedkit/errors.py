"""Errors that sedkit reports to users as one clear message (exit code 2, no traceback)."""

from __future__ import annotations


class UserError(Exception):
    """A mistake in the user's input: recipe, data file, command line, plugin choice.

    The CLI prints ``str(error)`` on one or more lines prefixed with ``sedkit: error:`` and exits
    with :attr:`exit_code`. The message must name the file, line or key at fault.
    """

    exit_code = 2

    def __init__(self, message: str, *, problems: list[str] | None = None):
        self.problems = list(problems or [])
        super().__init__(message)


class InputFileError(UserError):
    """A data file that cannot be used: names the file and, where known, the line."""

    def __init__(self, path: object, message: str, *, line: int | None = None):
        self.path = str(path)
        self.line = line
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {message}")
