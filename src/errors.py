"""Errors a user can meet, each with one message that says what is wrong and how to fix it.

Entry scripts catch `UserError`, print its message on one line and exit with status 2, so a
user never reads a traceback from deep inside pandas or torch for a mistake in their input.
"""
from __future__ import annotations

import os
from pathlib import Path


class UserError(Exception):
    """A problem with the user's input (data, config, command line), not a bug."""


class DataError(UserError, ValueError):
    """A data file does not match the expected schema or values."""

    def __init__(self, path: Path | str, problem: str, column: str | None = None,
                 row: int | None = None, fix: str | None = None) -> None:
        self.path, self.column, self.row = str(path), column, row
        where = [f"file {path}"]
        if column is not None:
            where.append(f"column {column!r}")
        if row is not None:
            where.append(f"row {row}")
        message = f"{', '.join(where)}: {problem}"
        if fix:
            message += f". Fix: {fix}"
        super().__init__(message)


class ConfigError(UserError, ValueError):
    """A config key is missing, unknown or has a value we cannot use."""


class SubmissionError(UserError, ValueError):
    """A submission zip would be rejected or scored wrongly by the leaderboard."""


class WriteError(UserError, OSError):
    """A file could not be written (a full disk, a file size limit, a missing folder). Also an
    OSError, so code that catches those still does; strerror is the system's reason."""

    def __init__(self, path: str | os.PathLike, err: OSError) -> None:
        reason = err.strerror or str(err).splitlines()[0]
        folder = os.path.dirname(os.path.abspath(path))
        super().__init__(f"cannot write {path}: {reason}. Fix: check that {folder} exists, is "
                         f"writable and has room")
        self.strerror = reason
