"""Past cases on the technician's machine: a cache of the organisation's figures and a
record of this technician's own runs, in a small local SQLite file.

The organisation's past cases live at the relay (:mod:`technician.past_cases` reads
and reports them); this file keeps the relay's last figures (:meth:`OutcomeStore.cache_figures`)
and, as a fallback when the relay cannot be reached, this technician's own runs.

Every fix run from the session console is recorded with the session and ticket, for
each problem the last triage of that session suggested it for (or with an empty
problem when it ran without triage). A run counts as *solved* when it exited with
status 0; when the same session triages again afterwards, a problem that is still
there turns its runs into "not solved". :meth:`OutcomeStore.history` feeds
:func:`technician.triage.rank`.

The file lives in the technician's data folder (``PUENTE_OUTCOMES`` or
``--outcomes`` to choose another); it never leaves the technician's machine.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Collection, Iterable, Mapping
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS fix_outcomes (
    id           INTEGER PRIMARY KEY,
    recorded_at  REAL NOT NULL,
    session_id   TEXT NOT NULL,
    ticket_id    TEXT NOT NULL,
    problem      TEXT NOT NULL,
    fix_id       TEXT NOT NULL,
    fix_version  TEXT NOT NULL,
    exit_status  INTEGER,            -- NULL: stopped by its time limit
    solved       INTEGER NOT NULL,   -- 1: exit 0 and (if re-checked) the problem was gone
    rechecked    INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS outcomes_by_problem ON fix_outcomes (problem, fix_id);
CREATE INDEX IF NOT EXISTS outcomes_by_session ON fix_outcomes (session_id);
CREATE TABLE IF NOT EXISTS relay_figures (
    problem      TEXT NOT NULL,
    fix_id       TEXT NOT NULL,
    solved       INTEGER NOT NULL,
    runs         INTEGER NOT NULL,
    fetched_at   REAL NOT NULL,
    PRIMARY KEY (problem, fix_id)
);
"""


def default_outcomes_path() -> Path:
    if os.environ.get("PUENTE_OUTCOMES"):
        return Path(os.environ["PUENTE_OUTCOMES"])
    if os.name == "nt":
        base = Path(os.environ.get("APPDATA", Path.home() / "AppData" / "Roaming")) / "Puente"
    else:
        data = os.environ.get("XDG_DATA_HOME")
        base = (Path(data) if data else Path.home() / ".local" / "share") / "puente"
    return base / "outcomes.sqlite3"


class OutcomeStore:
    """Fix outcomes per problem. Raises OSError/sqlite3.Error only when opening fails."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        # Used by one console at a time, from its worker threads in turn.
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(_SCHEMA)

    def record(
        self,
        *,
        session_id: str,
        ticket_id: str,
        problems: Iterable[str],
        fix_id: str,
        fix_version: str,
        exit_status: int | None,
        now: float,
    ) -> None:
        """One row per problem the fix was run for (``[""]`` when unknown)."""
        solved = 1 if exit_status == 0 else 0
        rows = [
            (now, session_id, ticket_id, problem, fix_id, fix_version, exit_status, solved)
            for problem in (list(problems) or [""])
        ]
        self._db.executemany(
            "INSERT INTO fix_outcomes (recorded_at, session_id, ticket_id, problem, fix_id, "
            "fix_version, exit_status, solved) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )

    def recheck(self, session_id: str, present: Collection[str]) -> int:
        """A later triage of the session: runs whose problem is still present did not solve it."""
        changed = 0
        for problem in set(present):
            cursor = self._db.execute(
                "UPDATE fix_outcomes SET solved = 0, rechecked = 1 "
                "WHERE session_id = ? AND problem = ?",
                (session_id, problem),
            )
            changed += cursor.rowcount
        self._db.execute(
            "UPDATE fix_outcomes SET rechecked = 1 WHERE session_id = ? AND rechecked = 0",
            (session_id,),
        )
        return changed

    def history(self, problems: Iterable[str]) -> dict[str, dict[str, tuple[int, int]]]:
        """``{problem: {fix_id: (solved, runs)}}`` for the given problems."""
        result: dict[str, dict[str, tuple[int, int]]] = {}
        for problem in set(problems):
            rows = self._db.execute(
                "SELECT fix_id, SUM(solved), COUNT(*) FROM fix_outcomes WHERE problem = ? "
                "GROUP BY fix_id",
                (problem,),
            ).fetchall()
            result[problem] = {fix: (int(solved), int(runs)) for fix, solved, runs in rows}
        return result

    def cache_figures(
        self, figures: Mapping[str, Mapping[str, tuple[int, int]]], now: float
    ) -> None:
        """Keep the relay's figures (all of them, replacing the last ones kept)."""
        rows = [
            (problem, fix, solved, runs, now)
            for problem, fixes in figures.items()
            for fix, (solved, runs) in fixes.items()
        ]
        self._db.execute("BEGIN")
        try:
            self._db.execute("DELETE FROM relay_figures")
            self._db.executemany(
                "INSERT INTO relay_figures (problem, fix_id, solved, runs, fetched_at)"
                " VALUES (?, ?, ?, ?, ?)",
                rows,
            )
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def cached_figures(
        self, problems: Iterable[str]
    ) -> dict[str, dict[str, tuple[int, int]]] | None:
        """The relay's last figures for ``problems``, or None if none were ever kept."""
        if self._db.execute("SELECT COUNT(*) FROM relay_figures").fetchone()[0] == 0:
            return None
        result: dict[str, dict[str, tuple[int, int]]] = {}
        for problem in set(problems):
            rows = self._db.execute(
                "SELECT fix_id, solved, runs FROM relay_figures WHERE problem = ?", (problem,)
            ).fetchall()
            result[problem] = {fix: (int(solved), int(runs)) for fix, solved, runs in rows}
        return result

    def close(self) -> None:
        self._db.close()
