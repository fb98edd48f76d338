"""Self-help and past cases in SQL (SQLite and PostgreSQL): the fixes and the rule book
an organisation published for self-help, and the outcome of every fix run.

:class:`SelfHelpSql` is a mixin of :class:`relay.sqlite_store.SqlStore`, as
:class:`relay.queue_sql.QueueSql` is: it runs its statements through the store's
``_execute``. The contract is in :class:`relay.store.RelayStore`. Nothing here
verifies a signature: the relay keeps what the organisation signed and hands it on;
agents verify it against their pinned key.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any


def self_help_schema(real: str = "REAL", serial: str = "INTEGER") -> str:
    """The tables, with ``real`` as the type of times and ``serial`` the type of an
    auto-numbered key (PostgreSQL: DOUBLE PRECISION, BIGSERIAL)."""
    return f"""
CREATE TABLE IF NOT EXISTS self_help_fixes (
    organisation_key  TEXT NOT NULL,
    fix_id            TEXT NOT NULL,
    platforms         TEXT NOT NULL,
    version           TEXT NOT NULL,
    title             TEXT NOT NULL,
    bundle            TEXT NOT NULL,
    published_at      {real} NOT NULL,
    PRIMARY KEY (organisation_key, fix_id, platforms)
);
CREATE TABLE IF NOT EXISTS self_help_rules (
    organisation_key  TEXT PRIMARY KEY,
    number            INTEGER NOT NULL,
    document          TEXT NOT NULL,
    published_at      {real} NOT NULL
);
CREATE TABLE IF NOT EXISTS fix_outcomes (
    id                {serial} PRIMARY KEY,
    recorded_at       {real} NOT NULL,
    organisation_key  TEXT NOT NULL,
    source            TEXT NOT NULL,
    reporter          TEXT NOT NULL,
    session_id        TEXT NOT NULL,
    ticket_id         TEXT NOT NULL,
    category          TEXT NOT NULL,
    problem           TEXT NOT NULL,
    fix_id            TEXT NOT NULL,
    fix_version       TEXT NOT NULL,
    exit_status       INTEGER,
    solved            INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS fix_outcomes_by_session ON fix_outcomes (session_id, source);
CREATE TABLE IF NOT EXISTS fix_figures (
    organisation_key  TEXT NOT NULL,
    problem           TEXT NOT NULL,
    category          TEXT NOT NULL,
    fix_id            TEXT NOT NULL,
    solved            INTEGER NOT NULL,
    runs              INTEGER NOT NULL,
    PRIMARY KEY (organisation_key, problem, category, fix_id)
);
"""


@dataclass(frozen=True)
class PublishedFix:
    """A signed fix bundle kept for an organisation's self-help (not verified here)."""

    organisation_key: str
    fix_id: str
    platforms: tuple[str, ...]
    version: str
    title: str
    bundle: str
    published_at: float


@dataclass(frozen=True)
class FixOutcome:
    """One fix run's outcome, for one problem it was run for.

    ``source`` is ``technician`` (``reporter``: their account id, ``session_id``: the
    session) or ``customer`` (self-help: ``reporter`` and ``session_id`` are the help
    request's id). ``solved``: the run ended with status 0 and, for a customer, they
    said "That fixed it"; a later triage that still finds the problem unsets it.
    """

    organisation_key: str
    source: str
    reporter: str
    session_id: str
    ticket_id: str
    category: str
    problem: str
    fix_id: str
    fix_version: str
    exit_status: int | None
    solved: bool


#: One row of :meth:`SelfHelpSql.outcome_figures`: problem, category, fix, solved, runs.
FigureRow = tuple[str, str, str, int, int]

_FIX_COLUMNS = "organisation_key, fix_id, platforms, version, title, bundle, published_at"


class SelfHelpSql:
    """Self-help methods of :class:`relay.store.RelayStore` in SQL."""

    def _execute(self, sql: str, params: Sequence[object] = ()) -> Any:  # supplied by the store
        raise NotImplementedError

    # fixes and rules published for self-help

    def publish_fix(self, fix: PublishedFix) -> None:
        self._execute(
            f"INSERT INTO self_help_fixes ({_FIX_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (organisation_key, fix_id, platforms) DO UPDATE SET"
            " version = excluded.version, title = excluded.title, bundle = excluded.bundle,"
            " published_at = excluded.published_at",
            (
                fix.organisation_key,
                fix.fix_id,
                ",".join(fix.platforms),
                fix.version,
                fix.title,
                fix.bundle,
                fix.published_at,
            ),
        )

    def published_fixes(self, organisation_key: str | None = None) -> list[PublishedFix]:
        where, params = "WHERE organisation_key = ?", [organisation_key]
        if organisation_key is None:
            where, params = "", []
        rows = self._execute(
            f"SELECT {_FIX_COLUMNS} FROM self_help_fixes {where}"
            " ORDER BY organisation_key, fix_id, platforms",
            params,
        ).fetchall()
        return [
            PublishedFix(
                str(r[0]),
                str(r[1]),
                tuple(str(r[2]).split(",")),
                str(r[3]),
                str(r[4]),
                str(r[5]),
                float(r[6]),
            )
            for r in rows
        ]

    def withdraw_fix(self, organisation_key: str, fix_id: str) -> int:
        cursor = self._execute(
            "DELETE FROM self_help_fixes WHERE organisation_key = ? AND fix_id = ?",
            (organisation_key, fix_id),
        )
        return int(cursor.rowcount)

    def publish_rule_book(
        self, organisation_key: str, number: int, document: str, now: float
    ) -> None:
        self._execute(
            "INSERT INTO self_help_rules (organisation_key, number, document, published_at)"
            " VALUES (?, ?, ?, ?) ON CONFLICT (organisation_key) DO UPDATE SET"
            " number = excluded.number, document = excluded.document,"
            " published_at = excluded.published_at",
            (organisation_key, number, document, now),
        )

    def rule_book(self, organisation_key: str) -> tuple[int, str] | None:
        row = self._execute(
            "SELECT number, document FROM self_help_rules WHERE organisation_key = ?",
            (organisation_key,),
        ).fetchone()
        return (int(row[0]), str(row[1])) if row else None

    # past cases

    def record_outcomes(self, outcomes: Sequence[FixOutcome], now: float) -> None:
        for o in outcomes:
            self._execute(
                "INSERT INTO fix_outcomes (recorded_at, organisation_key, source, reporter,"
                " session_id, ticket_id, category, problem, fix_id, fix_version, exit_status,"
                " solved) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    now,
                    o.organisation_key,
                    o.source,
                    o.reporter,
                    o.session_id,
                    o.ticket_id,
                    o.category,
                    o.problem,
                    o.fix_id,
                    o.fix_version,
                    o.exit_status,
                    1 if o.solved else 0,
                ),
            )
            # The figures are kept added up, so reading them costs the same however
            # many runs were ever recorded.
            self._execute(
                "INSERT INTO fix_figures (organisation_key, problem, category, fix_id, solved,"
                " runs) VALUES (?, ?, ?, ?, ?, 1) ON CONFLICT (organisation_key, problem,"
                " category, fix_id) DO UPDATE SET solved = fix_figures.solved + excluded.solved,"
                " runs = fix_figures.runs + 1",
                (o.organisation_key, o.problem, o.category, o.fix_id, 1 if o.solved else 0),
            )

    def count_outcomes(self, session_id: str, source: str) -> int:
        row = self._execute(
            "SELECT COUNT(*) FROM fix_outcomes WHERE session_id = ? AND source = ?",
            (session_id, source),
        ).fetchone()
        return int(row[0])

    def unsolve_outcomes(self, session_id: str, reporter: str, problems: Collection[str]) -> int:
        """A later triage still found ``problems``: that session's runs did not solve them."""
        changed = 0
        for problem in set(problems):
            groups = self._execute(
                "SELECT DISTINCT organisation_key, category, fix_id FROM fix_outcomes"
                " WHERE session_id = ? AND reporter = ? AND problem = ? AND solved = 1",
                (session_id, reporter, problem),
            ).fetchall()
            for organisation_key, category, fix_id in groups:
                # Each row turns once, whoever else rechecks at the same time: the
                # figures lose exactly what this statement changed.
                cursor = self._execute(
                    "UPDATE fix_outcomes SET solved = 0 WHERE session_id = ? AND reporter = ?"
                    " AND problem = ? AND organisation_key = ? AND category = ? AND fix_id = ?"
                    " AND solved = 1",
                    (session_id, reporter, problem, organisation_key, category, fix_id),
                )
                turned = int(cursor.rowcount)
                if turned:
                    self._execute(
                        "UPDATE fix_figures SET solved = solved - ? WHERE organisation_key = ?"
                        " AND problem = ? AND category = ? AND fix_id = ?",
                        (turned, organisation_key, problem, category, fix_id),
                    )
                changed += turned
        return changed

    def outcome_figures(self, organisation_key: str | None = None) -> list[FigureRow]:
        """Solved and runs per problem, category and fix; for one organisation, only its
        own rows and those of unknown organisation (technicians' runs)."""
        where, params = "WHERE organisation_key IN (?, '')", [organisation_key]
        if organisation_key is None:
            where, params = "", []
        rows = self._execute(
            "SELECT problem, category, fix_id, SUM(solved), SUM(runs) FROM fix_figures"
            f" {where} GROUP BY problem, category, fix_id ORDER BY problem, category, fix_id",
            params,
        ).fetchall()
        return [(str(r[0]), str(r[1]), str(r[2]), int(r[3]), int(r[4])) for r in rows]

    def request_category(self, session_id: str) -> str:
        """The category of the help request a session was made for ("" if none)."""
        row = self._execute(
            "SELECT category FROM help_requests WHERE session_id = ?", (session_id,)
        ).fetchone()
        return str(row[0]) if row else ""
