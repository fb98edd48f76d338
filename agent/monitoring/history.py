"""The measurement history of an enrolled device: a small SQLite file only its owner reads.

One row per measurement: which check, when (Unix seconds), the value and the limit it
was compared with. Rows older than :data:`KEEP_DAYS` are dropped as new ones come.
The folder is made mode 0700 and the file 0600: measurements say what the machine
holds and does, which is the owner's business (and the organisation's, end to end).
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

KEEP_DAYS = 30
FILE_NAME = "measurements.sqlite3"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS measurements (
    check_id TEXT NOT NULL,
    at REAL NOT NULL,
    value REAL NOT NULL,
    limit_value REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS measurements_by_check ON measurements (check_id, at);
"""


def owner_only_directory(path: Path) -> Path:
    """Make ``path`` (and parents) and restrict it to its owner."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path, 0o700)
    return path


class MeasurementHistory:
    """The measurements of one device, in ``directory``/measurements.sqlite3."""

    def __init__(self, directory: Path) -> None:
        owner_only_directory(directory)
        self.path = directory / FILE_NAME
        # Created 0600 before SQLite opens it, so it is never readable by others.
        descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        os.close(descriptor)
        os.chmod(self.path, 0o600)
        # The device's link runs checks in a worker thread, one run after another:
        # the connection is used by one thread at a time, not always its maker.
        self._db = sqlite3.connect(self.path, check_same_thread=False)
        with self._db:
            self._db.executescript(_SCHEMA)

    def add(self, check_id: str, at: float, value: float, limit: float) -> None:
        with self._db:
            self._db.execute(
                "INSERT INTO measurements (check_id, at, value, limit_value) VALUES (?, ?, ?, ?)",
                (check_id, at, value, limit),
            )
            self._db.execute("DELETE FROM measurements WHERE at < ?", (at - KEEP_DAYS * 86400,))

    def series(self, check_id: str, since: float) -> tuple[list[float], list[float]]:
        """The times and values of ``check_id`` from ``since`` on, oldest first."""
        rows = self._db.execute(
            "SELECT at, value FROM measurements WHERE check_id = ? AND at >= ? ORDER BY at",
            (check_id, since),
        ).fetchall()
        return [row[0] for row in rows], [row[1] for row in rows]

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> MeasurementHistory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
