"""Errors that the CLI turns into one clear line and exit status 2 (unusable input)."""

from __future__ import annotations

from pathlib import Path


class MmiaError(Exception):
    """Base class for errors mmia reports to the user without a traceback."""

    exit_code = 1


class InputError(MmiaError):
    """Unusable input: a missing file, a malformed row, an unknown label, media that does not decode.

    The message always names the file and, where there is one, the row (1-based data row; for
    CSV and JSONL this is the line's data row, the header not counted).
    """

    exit_code = 2

    def __init__(self, message: str, path: str | Path | None = None, row: int | None = None):
        self.path = str(path) if path is not None else None
        self.row = row
        self.reason = message
        where = ""
        if self.path is not None:
            where = f"{self.path}"
            if row is not None:
                where += f", row {row}"
            where += ": "
        super().__init__(f"{where}{message}")


class ModelNotFoundError(MmiaError):
    """A model could not be loaded from a local directory (and downloads are off)."""

    exit_code = 2
