"""The relay store in SQL: :class:`SqlStore` (SQL that SQLite and PostgreSQL both
speak) and :class:`SQLiteStore`, the embedded default (one file,
``DATA_DIR/relay.sqlite3``, WAL mode). :class:`relay.postgres.PostgresStore` reuses
:class:`SqlStore`; each only supplies how statements run and how transactions lock.
The contract is :class:`relay.store.RelayStore`.
"""

from __future__ import annotations

import abc
import contextlib
import hmac
import json
import os
import sqlite3
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from .audit import GENESIS, AuditEntry, audit_time, canonical, entry_hash
from .errors import StoreError, TechnicianExists
from .events import ONCE_PER_SESSION, NewEvent, document
from .nameplates import choose_nameplate
from .queue_sql import QueueSql, queue_schema
from .records import Delivery, SessionRecord, SessionState, StoredSummary, Technician
from .self_help_sql import SelfHelpSql, self_help_schema
from .store import RelayStore
from .tokens import hash_secret, new_token, parse_token

#: File name of the SQLite database inside the data directory.
DATABASE_NAME = "relay.sqlite3"


_SCHEMA = """
CREATE TABLE IF NOT EXISTS technicians (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    token_id    TEXT NOT NULL UNIQUE,
    token_hash  TEXT NOT NULL,
    created_at  REAL NOT NULL,
    disabled    INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS sessions (
    id                   TEXT PRIMARY KEY,
    nameplate            TEXT NOT NULL,
    ticket_id            TEXT NOT NULL,
    ticket_url           TEXT,
    technician_id        TEXT NOT NULL REFERENCES technicians(id),
    state                TEXT NOT NULL,
    created_at           REAL NOT NULL,
    expires_at           REAL NOT NULL,
    paired_at            REAL,
    ended_at             REAL,
    end_reason           TEXT,
    bytes_agent_to_tech  INTEGER NOT NULL DEFAULT 0,
    bytes_tech_to_agent  INTEGER NOT NULL DEFAULT 0,
    agent_claims         INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS sessions_by_nameplate ON sessions (nameplate, created_at);
CREATE INDEX IF NOT EXISTS sessions_by_technician ON sessions (technician_id, created_at);
CREATE INDEX IF NOT EXISTS sessions_by_state ON sessions (state);
CREATE TABLE IF NOT EXISTS revocation_lists (
    organisation_key  TEXT PRIMARY KEY,
    number            INTEGER NOT NULL,
    document          TEXT NOT NULL,
    published_at      REAL NOT NULL,
    technician_id     TEXT NOT NULL REFERENCES technicians(id)
);
"""

# The audit log is append-only: triggers refuse UPDATE and DELETE, and the hash chain
# (relay.audit) shows any edit made around them. Session events are unique per session.
_HELPDESK_SCHEMA = """
CREATE TABLE IF NOT EXISTS audit_log (
    seq         INTEGER PRIMARY KEY,
    at          TEXT NOT NULL,
    event_id    TEXT NOT NULL UNIQUE,
    type        TEXT NOT NULL,
    session_id  TEXT NOT NULL,
    data        TEXT NOT NULL,
    prev_hash   TEXT NOT NULL,
    hash        TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS audit_session_events ON audit_log (session_id, type)
    WHERE type IN ('session.created', 'session.paired', 'session.ended', 'session.summary');
CREATE INDEX IF NOT EXISTS audit_by_session ON audit_log (session_id, type);
CREATE TRIGGER IF NOT EXISTS audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;
CREATE TRIGGER IF NOT EXISTS audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;
CREATE TABLE IF NOT EXISTS summaries (
    session_id   TEXT PRIMARY KEY REFERENCES sessions(id),
    summary      TEXT NOT NULL,
    uploaded_at  REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS outbox (
    id               INTEGER PRIMARY KEY,
    event_id         TEXT NOT NULL,
    event_type       TEXT NOT NULL,
    session_id       TEXT NOT NULL,
    connector        TEXT NOT NULL,
    document         TEXT NOT NULL,
    created_at       REAL NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  REAL NOT NULL,
    leased_until     REAL,
    delivered_at     REAL,
    last_error       TEXT,
    UNIQUE (event_id, connector)
);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (connector, next_attempt_at)
    WHERE delivered_at IS NULL;
CREATE INDEX IF NOT EXISTS outbox_by_session ON outbox (session_id, connector, id);
"""

_DELIVERY_COLUMNS = """
    id, event_id, event_type, session_id, connector, document, created_at, attempts,
    next_attempt_at, delivered_at, last_error
"""

_SESSION_COLUMNS = """
    s.id, s.nameplate, s.ticket_id, s.ticket_url, s.technician_id, t.name, s.state,
    s.created_at, s.expires_at, s.paired_at, s.ended_at, s.end_reason,
    s.bytes_agent_to_tech, s.bytes_tech_to_agent
"""

_SELECT_SESSION = (
    f"SELECT {_SESSION_COLUMNS} FROM sessions s JOIN technicians t ON t.id = s.technician_id"
)

# A stand-in digest compared when a token id is unknown, so a miss costs the same as a hit.
_DUMMY_HASH = hash_secret("no such token")


class SqlStore(SelfHelpSql, QueueSql, RelayStore):
    """Every method of :class:`RelayStore`, in SQL both SQLite and PostgreSQL speak.

    A dialect supplies how statements run (:meth:`_execute`, ``?`` placeholders), what a
    transaction is and which locks it takes (:meth:`_transaction`, :meth:`_lock`), which
    error means a duplicate, and :attr:`_ORDER`, the column that orders rows created in
    the same instant.
    """

    #: Column breaking ties between sessions created at the same time, in insertion order.
    _ORDER = "rowid"

    @abc.abstractmethod
    def _execute(self, sql: str, params: Sequence[object] = ()) -> Any:
        """Run one statement (``?`` placeholders); return its cursor."""

    @abc.abstractmethod
    def _executemany(self, sql: str, rows: Sequence[Sequence[object]]) -> None:
        """Run one statement (``?`` placeholders) for each of ``rows``."""

    @abc.abstractmethod
    def _transaction(self, lock: str) -> contextlib.AbstractContextManager[None]:
        """A transaction holding ``lock`` ("nameplates" or "audit") until it ends;
        committed when the block ends, rolled back on any error."""

    def _lock(self, lock: str) -> None:
        """Take ``lock`` again inside an open transaction (a dialect whose transactions
        hold every lock at once does nothing)."""

    @abc.abstractmethod
    def _is_duplicate(self, exc: BaseException) -> bool:
        """Whether ``exc`` is the database refusing a duplicate of a unique value."""

    # technicians

    def add_technician(self, name: str, now: float) -> tuple[Technician, str]:
        name = name.strip()
        if not name or len(name) > 100 or not name.isprintable():
            raise ValueError("A technician name must be 1 to 100 printable characters.")
        token, token_id, token_hash = new_token()
        technician = Technician(id=uuid.uuid4().hex, name=name, created_at=now, disabled=False)
        try:
            self._execute(
                "INSERT INTO technicians (id, name, token_id, token_hash, created_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (technician.id, name, token_id, token_hash, now),
            )
        except Exception as exc:
            if self._is_duplicate(exc):
                raise TechnicianExists(name) from exc
            raise
        return technician, token

    def list_technicians(self) -> list[Technician]:
        rows = self._execute(
            "SELECT id, name, created_at, disabled FROM technicians ORDER BY created_at, name"
        ).fetchall()
        return [Technician(r[0], r[1], r[2], bool(r[3])) for r in rows]

    def disable_technician(self, name: str) -> bool:
        cursor = self._execute(
            "UPDATE technicians SET disabled = ? WHERE name = ? AND disabled = ?",
            (True, name.strip(), False),
        )
        return bool(cursor.rowcount == 1)

    def authenticate(self, token: str) -> Technician | None:
        parsed = parse_token(token)
        token_id, secret = parsed if parsed else ("", "")
        row = self._execute(
            "SELECT id, name, created_at, disabled, token_hash FROM technicians WHERE token_id = ?",
            (token_id,),
        ).fetchone()
        stored = row[4] if row else _DUMMY_HASH
        matches = hmac.compare_digest(stored, hash_secret(secret))
        if not row or not parsed or not matches or row[3]:
            return None
        return Technician(row[0], row[1], row[2], False)

    # sessions

    def create_session(
        self, technician: Technician, ticket_id: str, ticket_url: str | None, now: float, ttl: float
    ) -> SessionRecord:
        session_id = uuid.uuid4().hex
        # The lock is held before the live nameplates are read, so two relay processes
        # sharing the database cannot hand out the same nameplate.
        with self._transaction("nameplates"):
            live = [
                row[0]
                for row in self._execute(
                    "SELECT nameplate FROM sessions"
                    " WHERE (state = 'waiting' AND expires_at > ?) OR state = 'paired'",
                    (now,),
                ).fetchall()
            ]
            self._execute(
                "INSERT INTO sessions (id, nameplate, ticket_id, ticket_url, technician_id,"
                " state, created_at, expires_at) VALUES (?, ?, ?, ?, ?, 'waiting', ?, ?)",
                (
                    session_id,
                    choose_nameplate(live),
                    ticket_id,
                    ticket_url,
                    technician.id,
                    now,
                    now + ttl,
                ),
            )
        record = self.get_session(session_id)
        if record is None:  # pragma: no cover - the row was just committed
            raise StoreError("The new session vanished from the database; check the database.")
        return record

    def get_session(self, session_id: str) -> SessionRecord | None:
        row = self._execute(f"{_SELECT_SESSION} WHERE s.id = ?", (session_id,)).fetchone()
        return _session(row) if row else None

    def find_by_nameplate(self, nameplate: str) -> SessionRecord | None:
        row = self._execute(
            f"{_SELECT_SESSION} WHERE s.nameplate = ?"
            f" ORDER BY s.created_at DESC, s.{self._ORDER} DESC LIMIT 1",
            (nameplate,),
        ).fetchone()
        return _session(row) if row else None

    def list_sessions(
        self, technician_id: str, ticket_id: str | None = None, limit: int = 100
    ) -> list[SessionRecord]:
        query = f"{_SELECT_SESSION} WHERE s.technician_id = ?"
        params: list[object] = [technician_id]
        if ticket_id is not None:
            query += " AND s.ticket_id = ?"
            params.append(ticket_id)
        query += f" ORDER BY s.created_at DESC, s.{self._ORDER} DESC LIMIT ?"
        params.append(limit)
        return [_session(row) for row in self._execute(query, params).fetchall()]

    def count_agent_claim(self, session_id: str) -> int:
        row = self._execute(
            "UPDATE sessions SET agent_claims = agent_claims + 1 WHERE id = ? RETURNING agent_claims",
            (session_id,),
        ).fetchone()
        return int(row[0]) if row else 0

    def agent_claims(self, session_id: str) -> int:
        row = self._execute(
            "SELECT agent_claims FROM sessions WHERE id = ?", (session_id,)
        ).fetchone()
        return int(row[0]) if row else 0

    def mark_paired(self, session_id: str, now: float) -> bool:
        cursor = self._execute(
            "UPDATE sessions SET state = 'paired', paired_at = ? WHERE id = ? AND state = 'waiting'",
            (now, session_id),
        )
        return bool(cursor.rowcount == 1)

    def finish_session(
        self,
        session_id: str,
        state: SessionState,
        now: float,
        reason: str,
        bytes_agent_to_tech: int = 0,
        bytes_tech_to_agent: int = 0,
    ) -> bool:
        if not state.finished:
            raise ValueError(f"{state} is not a finished state")
        cursor = self._execute(
            "UPDATE sessions SET state = ?, ended_at = ?, end_reason = ?,"
            " bytes_agent_to_tech = bytes_agent_to_tech + ?,"
            " bytes_tech_to_agent = bytes_tech_to_agent + ?"
            " WHERE id = ? AND state IN ('waiting', 'paired')",
            (str(state), now, reason, bytes_agent_to_tech, bytes_tech_to_agent, session_id),
        )
        return bool(cursor.rowcount == 1)

    def add_byte_counts(
        self, session_id: str, bytes_agent_to_tech: int, bytes_tech_to_agent: int
    ) -> None:
        self._execute(
            "UPDATE sessions SET bytes_agent_to_tech = bytes_agent_to_tech + ?,"
            " bytes_tech_to_agent = bytes_tech_to_agent + ? WHERE id = ?",
            (bytes_agent_to_tech, bytes_tech_to_agent, session_id),
        )

    def expire_sessions(self, now: float) -> int:
        cursor = self._execute(
            "UPDATE sessions SET state = 'expired', ended_at = expires_at,"
            " end_reason = 'nobody joined before the code expired'"
            " WHERE state = 'waiting' AND expires_at <= ?",
            (now,),
        )
        return int(cursor.rowcount)

    # help-desk events

    def record_event(
        self, event: NewEvent, now: float, connectors: Sequence[str]
    ) -> AuditEntry | None:
        with self._transaction("audit"):
            return self._append_event(event, now, connectors)

    def _append_event(
        self, event: NewEvent, now: float, connectors: Sequence[str]
    ) -> AuditEntry | None:
        """Append inside an open transaction; the audit lock makes appends from every
        process one chain: read the head, link to it, insert, before anyone else reads."""
        self._lock("audit")
        if event.type in ONCE_PER_SESSION:
            exists = self._execute(
                "SELECT 1 FROM audit_log WHERE session_id = ? AND type = ?",
                (event.session_id, str(event.type)),
            ).fetchone()
            if exists:
                return None
        head = self._execute("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
        seq, prev = (int(head[0]) + 1, str(head[1])) if head else (1, GENESIS)
        at = audit_time(now)
        event_id = "evt_" + uuid.uuid4().hex
        data = canonical(event.data)
        digest = entry_hash(prev, seq, at, event_id, str(event.type), event.session_id, data)
        self._execute(
            "INSERT INTO audit_log (seq, at, event_id, type, session_id, data, prev_hash, hash)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (seq, at, event_id, str(event.type), event.session_id, data, prev, digest),
        )
        if connectors:
            doc = json.dumps(
                document(event_id, str(event.type), at, event.data, event.extra, seq, digest)
            )
            self._executemany(
                "INSERT INTO outbox (event_id, event_type, session_id, connector, document,"
                " created_at, next_attempt_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (event_id, str(event.type), event.session_id, name, doc, now, now)
                    for name in connectors
                ],
            )
        return AuditEntry(seq, at, event_id, str(event.type), event.session_id, data, prev, digest)

    def store_summary(
        self, session_id: str, summary: str, now: float, event: NewEvent, connectors: Sequence[str]
    ) -> tuple[StoredSummary, bool]:
        # The audit lock also orders concurrent uploads of one session's summary.
        with self._transaction("audit"):
            existing = self.get_summary(session_id)
            if existing is not None:
                return existing, False
            self._execute(
                "INSERT INTO summaries (session_id, summary, uploaded_at) VALUES (?, ?, ?)",
                (session_id, summary, now),
            )
            self._append_event(event, now, connectors)
        return StoredSummary(session_id, summary, now), True

    def get_summary(self, session_id: str) -> StoredSummary | None:
        row = self._execute(
            "SELECT session_id, summary, uploaded_at FROM summaries WHERE session_id = ?",
            (session_id,),
        ).fetchone()
        return StoredSummary(row[0], row[1], row[2]) if row else None

    def audit_entries(self) -> Iterator[AuditEntry]:
        rows = self._execute(
            "SELECT seq, at, event_id, type, session_id, data, prev_hash, hash"
            " FROM audit_log ORDER BY seq"
        ).fetchall()
        for row in rows:
            yield AuditEntry(*row)

    def sessions_missing_event(self, event_type: str) -> list[SessionRecord]:
        reached = {
            "session.created": "TRUE",
            "session.paired": "s.paired_at IS NOT NULL",
            "session.ended": "s.state IN ('ended', 'expired', 'failed')",
        }[event_type]
        rows = self._execute(
            f"{_SELECT_SESSION} WHERE {reached} AND NOT EXISTS"
            " (SELECT 1 FROM audit_log a WHERE a.session_id = s.id AND a.type = ?)"
            f" ORDER BY s.created_at, s.{self._ORDER}",
            (event_type,),
        ).fetchall()
        return [_session(row) for row in rows]

    def due_deliveries(self, connector: str, now: float, limit: int) -> list[Delivery]:
        rows = self._execute(
            f"SELECT {_DELIVERY_COLUMNS} FROM outbox o"
            " WHERE o.connector = ? AND o.delivered_at IS NULL AND o.next_attempt_at <= ?"
            " AND (o.leased_until IS NULL OR o.leased_until <= ?)"
            " AND NOT EXISTS (SELECT 1 FROM outbox e WHERE e.session_id = o.session_id"
            "   AND e.connector = o.connector AND e.delivered_at IS NULL AND e.id < o.id)"
            " ORDER BY o.id LIMIT ?",
            (connector, now, now, limit),
        ).fetchall()
        return [Delivery(*row) for row in rows]

    def begin_delivery(self, delivery_id: int, now: float, lease: float) -> int | None:
        row = self._execute(
            "UPDATE outbox SET attempts = attempts + 1, leased_until = ?"
            " WHERE id = ? AND delivered_at IS NULL"
            " AND (leased_until IS NULL OR leased_until <= ?) RETURNING attempts",
            (now + lease, delivery_id, now),
        ).fetchone()
        return int(row[0]) if row else None

    def finish_delivery(self, delivery_id: int, now: float, acknowledgement: NewEvent) -> None:
        with self._transaction("audit"):
            self._execute(
                "UPDATE outbox SET delivered_at = ?, leased_until = NULL, last_error = NULL"
                " WHERE id = ?",
                (now, delivery_id),
            )
            self._append_event(acknowledgement, now, ())

    def fail_delivery(self, delivery_id: int, next_attempt_at: float, error: str) -> None:
        self._execute(
            "UPDATE outbox SET leased_until = NULL, next_attempt_at = ?, last_error = ?"
            " WHERE id = ? AND delivered_at IS NULL",
            (next_attempt_at, error[:500], delivery_id),
        )

    def retry_deliveries_now(self, now: float) -> int:
        cursor = self._execute(
            "UPDATE outbox SET next_attempt_at = CASE WHEN next_attempt_at > ? THEN ?"
            " ELSE next_attempt_at END WHERE delivered_at IS NULL",
            (now, now),
        )
        return int(cursor.rowcount)

    def pending_deliveries(self) -> int:
        row = self._execute("SELECT COUNT(*) FROM outbox WHERE delivered_at IS NULL").fetchone()
        return int(row[0]) if row else 0

    def list_deliveries(self, pending_only: bool = True, limit: int = 1000) -> list[Delivery]:
        where = "WHERE delivered_at IS NULL" if pending_only else ""
        rows = self._execute(
            f"SELECT {_DELIVERY_COLUMNS} FROM outbox {where} ORDER BY id LIMIT ?", (limit,)
        ).fetchall()
        return [Delivery(*row) for row in rows]

    # organisation revocation lists

    def publish_revocation_list(
        self, organisation_key: str, number: int, document: str, technician_id: str, now: float
    ) -> bool:
        cursor = self._execute(
            "INSERT INTO revocation_lists"
            " (organisation_key, number, document, published_at, technician_id)"
            " VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (organisation_key) DO UPDATE SET number = excluded.number,"
            " document = excluded.document, published_at = excluded.published_at,"
            " technician_id = excluded.technician_id"
            " WHERE excluded.number > revocation_lists.number",
            (organisation_key, number, document, now, technician_id),
        )
        return bool(cursor.rowcount == 1)

    def get_revocation_list(self, organisation_key: str) -> str | None:
        row = self._execute(
            "SELECT document FROM revocation_lists WHERE organisation_key = ?",
            (organisation_key,),
        ).fetchone()
        return str(row[0]) if row else None


class SQLiteStore(SqlStore):
    """The embedded store: one SQLite file in WAL mode, safe to share with CLI processes."""

    def __init__(self, data_dir: str | Path) -> None:
        """Open (creating if needed) ``data_dir/relay.sqlite3``; raise StoreError if impossible."""
        directory = Path(data_dir)
        try:
            directory.mkdir(parents=True, exist_ok=True)
            # Owner only: the store holds token hashes, tickets and addresses. The
            # database and its -wal/-shm files are created with the process umask,
            # so it is narrowed while they are made and their modes set after.
            with contextlib.suppress(PermissionError):  # a folder someone else made
                directory.chmod(0o700)
            previous = os.umask(0o077)
            try:
                # isolation_level=None: autocommit, with explicit BEGIN IMMEDIATE where a
                # read and a write must not interleave with another process.
                self._db = sqlite3.connect(directory / DATABASE_NAME, isolation_level=None)
                self._db.execute("PRAGMA journal_mode=WAL")
            finally:
                os.umask(previous)
            for name in (DATABASE_NAME, DATABASE_NAME + "-wal", DATABASE_NAME + "-shm"):
                with contextlib.suppress(FileNotFoundError):
                    (directory / name).chmod(0o600)
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.execute("PRAGMA busy_timeout=5000")
            self._db.executescript(_SCHEMA)
            self._db.executescript(_HELPDESK_SCHEMA)
            self._db.executescript(queue_schema())
            self._db.executescript(self_help_schema())
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(
                f"Cannot open the relay database in {str(directory)!r} ({exc}); "
                "check that --data-dir points to a writable directory."
            ) from exc

    def _execute(self, sql: str, params: Sequence[object] = ()) -> sqlite3.Cursor:
        return self._db.execute(sql, params)

    def _executemany(self, sql: str, rows: Sequence[Sequence[object]]) -> None:
        self._db.executemany(sql, rows)

    @contextlib.contextmanager
    def _transaction(self, lock: str) -> Iterator[None]:
        """BEGIN IMMEDIATE ... COMMIT: the database's one write lock serves every ``lock``."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def _is_duplicate(self, exc: BaseException) -> bool:
        return isinstance(exc, sqlite3.IntegrityError)

    def close(self) -> None:
        self._db.close()


def _session(row: Any) -> SessionRecord:
    return SessionRecord(
        id=row[0],
        nameplate=row[1],
        ticket_id=row[2],
        ticket_url=row[3],
        technician_id=row[4],
        technician_name=row[5],
        state=SessionState(row[6]),
        created_at=row[7],
        expires_at=row[8],
        paired_at=row[9],
        ended_at=row[10],
        end_reason=row[11],
        bytes_agent_to_tech=row[12],
        bytes_tech_to_agent=row[13],
    )
