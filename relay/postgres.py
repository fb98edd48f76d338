"""The relay's store in PostgreSQL, for several relay nodes sharing one database.

Same contract as :class:`relay.store.SQLiteStore` (read :class:`relay.store.RelayStore`
for what each method promises); only the SQL dialect and the locking differ.

Rules::

    connection   one connection per relay process, autocommit; calls are short
                 indexed statements made from the event loop, like SQLite's. A lost
                 connection fails the call in flight with StoreError and is
                 reopened by the next call, so a database restart costs only the
                 requests made while it was down.
    schema       created on first use, under an advisory lock so nodes starting
                 together do not race; tables mirror SQLite's, plus ``seq`` to
                 order sessions created in the same instant.
    nameplates   create_session takes a transaction-scoped advisory lock before
                 reading the live nameplates, so two nodes never hand out the same
                 one (SQLite's BEGIN IMMEDIATE, cluster-wide).
    audit log    appending takes another advisory lock, so the hash chain stays one
                 chain whichever node appends; triggers refuse UPDATE, DELETE and
                 TRUNCATE of the log, as SQLite's do.
    outbox       rows are leased (begin_delivery) with a conditional UPDATE, so two
                 nodes never deliver the same row at once.
    secrets      as in SQLite: only SHA-256 digests of token secrets are stored.
"""

from __future__ import annotations

import hmac
import json
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar
from urllib.parse import urlsplit

from .audit import GENESIS, AuditEntry, audit_time, canonical, entry_hash
from .errors import StoreError, TechnicianExists
from .events import ONCE_PER_SESSION, NewEvent, document
from .store import (
    Delivery,
    RelayStore,
    SessionRecord,
    SessionState,
    StoredSummary,
    Technician,
    choose_nameplate,
    hash_secret,
    new_token,
    parse_token,
)

try:
    import psycopg
    from psycopg import errors as pg_errors
except ImportError as exc:  # pragma: no cover - the postgres extra is missing
    from .errors import ConfigError

    raise ConfigError(
        "--database-url needs the psycopg package; install puente with the 'postgres' "
        "extra (pip install 'puente[postgres]')."
    ) from exc

T = TypeVar("T")

#: Advisory lock keys (arbitrary constants, unique to Puente).
_SCHEMA_LOCK = 0x50554E5445  # "PUNTE"
_NAMEPLATE_LOCK = 0x50554E5446
_AUDIT_LOCK = 0x50554E5447

_SCHEMA = """
CREATE TABLE IF NOT EXISTS technicians (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    token_id    TEXT NOT NULL UNIQUE,
    token_hash  TEXT NOT NULL,
    created_at  DOUBLE PRECISION NOT NULL,
    disabled    BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE TABLE IF NOT EXISTS sessions (
    id                   TEXT PRIMARY KEY,
    seq                  BIGSERIAL,
    nameplate            TEXT NOT NULL,
    ticket_id            TEXT NOT NULL,
    ticket_url           TEXT,
    technician_id        TEXT NOT NULL REFERENCES technicians(id),
    state                TEXT NOT NULL,
    created_at           DOUBLE PRECISION NOT NULL,
    expires_at           DOUBLE PRECISION NOT NULL,
    paired_at            DOUBLE PRECISION,
    ended_at             DOUBLE PRECISION,
    end_reason           TEXT,
    bytes_agent_to_tech  BIGINT NOT NULL DEFAULT 0,
    bytes_tech_to_agent  BIGINT NOT NULL DEFAULT 0,
    agent_claims         INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS sessions_by_nameplate ON sessions (nameplate, created_at);
CREATE INDEX IF NOT EXISTS sessions_by_technician ON sessions (technician_id, created_at);
CREATE INDEX IF NOT EXISTS sessions_by_state ON sessions (state);
CREATE TABLE IF NOT EXISTS revocation_lists (
    organisation_key  TEXT PRIMARY KEY,
    number            BIGINT NOT NULL,
    document          TEXT NOT NULL,
    published_at      DOUBLE PRECISION NOT NULL,
    technician_id     TEXT NOT NULL REFERENCES technicians(id)
);
CREATE TABLE IF NOT EXISTS audit_log (
    seq         BIGINT PRIMARY KEY,
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
CREATE OR REPLACE FUNCTION puente_audit_append_only() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only';
END $$;
CREATE OR REPLACE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION puente_audit_append_only();
CREATE OR REPLACE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION puente_audit_append_only();
CREATE TABLE IF NOT EXISTS summaries (
    session_id   TEXT PRIMARY KEY REFERENCES sessions(id),
    summary      TEXT NOT NULL,
    uploaded_at  DOUBLE PRECISION NOT NULL
);
CREATE TABLE IF NOT EXISTS outbox (
    id               BIGSERIAL PRIMARY KEY,
    event_id         TEXT NOT NULL,
    event_type       TEXT NOT NULL,
    session_id       TEXT NOT NULL,
    connector        TEXT NOT NULL,
    document         TEXT NOT NULL,
    created_at       DOUBLE PRECISION NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  DOUBLE PRECISION NOT NULL,
    leased_until     DOUBLE PRECISION,
    delivered_at     DOUBLE PRECISION,
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

_SELECT_SESSION = """
SELECT s.id, s.nameplate, s.ticket_id, s.ticket_url, s.technician_id, t.name, s.state,
       s.created_at, s.expires_at, s.paired_at, s.ended_at, s.end_reason,
       s.bytes_agent_to_tech, s.bytes_tech_to_agent
FROM sessions s JOIN technicians t ON t.id = s.technician_id
"""

_DUMMY_HASH = hash_secret("no such token")


def safe_url(url: str) -> str:
    """A database URL without its password, for messages."""
    parts = urlsplit(url)
    if parts.password:
        host = parts.hostname or ""
        netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
        parts = parts._replace(netloc=netloc)
    return parts.geturl()


class PostgresStore(RelayStore):
    """The shared store of a relay cluster: one PostgreSQL database."""

    def __init__(self, url: str) -> None:
        """Connect and create the schema if needed; raise StoreError (a sentence) if impossible."""
        self._url = url
        self._conn: psycopg.Connection[Any] | None = None
        with self._connection() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
            conn.execute(_SCHEMA)  # a constant, not user input

    # connection handling

    def _connect(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed or self._conn.broken:
            if self._conn is not None:
                self._conn.close()
            try:
                self._conn = psycopg.connect(self._url, autocommit=True, connect_timeout=10)
            except psycopg.Error as exc:
                self._conn = None
                raise StoreError(
                    f"Cannot connect to PostgreSQL at {safe_url(self._url)} "
                    f"({_first_line(exc)}); check --database-url and that the database is up."
                ) from exc
        return self._conn

    def _connection(self) -> _Using:
        return _Using(self)

    def _run(self, action: Callable[[psycopg.Connection[Any]], T]) -> T:
        with self._connection() as conn:
            return action(conn)

    # technicians

    def add_technician(self, name: str, now: float) -> tuple[Technician, str]:
        name = name.strip()
        if not name or len(name) > 100 or not name.isprintable():
            raise ValueError("A technician name must be 1 to 100 printable characters.")
        token, token_id, token_hash = new_token()
        technician = Technician(id=uuid.uuid4().hex, name=name, created_at=now, disabled=False)
        try:
            self._run(
                lambda c: c.execute(
                    "INSERT INTO technicians (id, name, token_id, token_hash, created_at)"
                    " VALUES (%s, %s, %s, %s, %s)",
                    (technician.id, name, token_id, token_hash, now),
                )
            )
        except StoreError as exc:
            if isinstance(exc.__cause__, pg_errors.UniqueViolation):
                raise TechnicianExists(name) from exc.__cause__
            raise
        return technician, token

    def list_technicians(self) -> list[Technician]:
        rows = self._run(
            lambda c: c.execute(
                "SELECT id, name, created_at, disabled FROM technicians ORDER BY created_at, name"
            ).fetchall()
        )
        return [Technician(r[0], r[1], r[2], bool(r[3])) for r in rows]

    def disable_technician(self, name: str) -> bool:
        cursor = self._run(
            lambda c: c.execute(
                "UPDATE technicians SET disabled = TRUE WHERE name = %s AND NOT disabled",
                (name.strip(),),
            )
        )
        return cursor.rowcount == 1

    def authenticate(self, token: str) -> Technician | None:
        parsed = parse_token(token)
        token_id, secret = parsed if parsed else ("", "")
        row = self._run(
            lambda c: c.execute(
                "SELECT id, name, created_at, disabled, token_hash FROM technicians"
                " WHERE token_id = %s",
                (token_id,),
            ).fetchone()
        )
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

        def create(conn: psycopg.Connection[Any]) -> None:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_NAMEPLATE_LOCK,))
                live = [
                    row[0]
                    for row in conn.execute(
                        "SELECT nameplate FROM sessions"
                        " WHERE (state = 'waiting' AND expires_at > %s) OR state = 'paired'",
                        (now,),
                    )
                ]
                conn.execute(
                    "INSERT INTO sessions (id, nameplate, ticket_id, ticket_url, technician_id,"
                    " state, created_at, expires_at)"
                    " VALUES (%s, %s, %s, %s, %s, 'waiting', %s, %s)",
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

        self._run(create)
        record = self.get_session(session_id)
        if record is None:  # pragma: no cover - the row was just committed
            raise StoreError("The new session vanished from the database; check the database.")
        return record

    def get_session(self, session_id: str) -> SessionRecord | None:
        row = self._run(
            lambda c: c.execute(f"{_SELECT_SESSION} WHERE s.id = %s", (session_id,)).fetchone()
        )
        return _session(row) if row else None

    def find_by_nameplate(self, nameplate: str) -> SessionRecord | None:
        row = self._run(
            lambda c: c.execute(
                f"{_SELECT_SESSION} WHERE s.nameplate = %s"
                " ORDER BY s.created_at DESC, s.seq DESC LIMIT 1",
                (nameplate,),
            ).fetchone()
        )
        return _session(row) if row else None

    def list_sessions(
        self, technician_id: str, ticket_id: str | None = None, limit: int = 100
    ) -> list[SessionRecord]:
        query = f"{_SELECT_SESSION} WHERE s.technician_id = %s"
        params: list[object] = [technician_id]
        if ticket_id is not None:
            query += " AND s.ticket_id = %s"
            params.append(ticket_id)
        query += " ORDER BY s.created_at DESC, s.seq DESC LIMIT %s"
        params.append(limit)
        rows = self._run(lambda c: c.execute(query, params).fetchall())
        return [_session(row) for row in rows]

    def count_agent_claim(self, session_id: str) -> int:
        row = self._run(
            lambda c: c.execute(
                "UPDATE sessions SET agent_claims = agent_claims + 1 WHERE id = %s"
                " RETURNING agent_claims",
                (session_id,),
            ).fetchone()
        )
        return int(row[0]) if row else 0

    def mark_paired(self, session_id: str, now: float) -> bool:
        cursor = self._run(
            lambda c: c.execute(
                "UPDATE sessions SET state = 'paired', paired_at = %s"
                " WHERE id = %s AND state = 'waiting'",
                (now, session_id),
            )
        )
        return cursor.rowcount == 1

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
        cursor = self._run(
            lambda c: c.execute(
                "UPDATE sessions SET state = %s, ended_at = %s, end_reason = %s,"
                " bytes_agent_to_tech = bytes_agent_to_tech + %s,"
                " bytes_tech_to_agent = bytes_tech_to_agent + %s"
                " WHERE id = %s AND state IN ('waiting', 'paired')",
                (
                    str(state),
                    now,
                    reason,
                    bytes_agent_to_tech,
                    bytes_tech_to_agent,
                    session_id,
                ),
            )
        )
        return cursor.rowcount == 1

    def add_byte_counts(
        self, session_id: str, bytes_agent_to_tech: int, bytes_tech_to_agent: int
    ) -> None:
        self._run(
            lambda c: c.execute(
                "UPDATE sessions SET bytes_agent_to_tech = bytes_agent_to_tech + %s,"
                " bytes_tech_to_agent = bytes_tech_to_agent + %s WHERE id = %s",
                (bytes_agent_to_tech, bytes_tech_to_agent, session_id),
            )
        )

    def expire_sessions(self, now: float) -> int:
        cursor = self._run(
            lambda c: c.execute(
                "UPDATE sessions SET state = 'expired', ended_at = expires_at,"
                " end_reason = 'nobody joined before the code expired'"
                " WHERE state = 'waiting' AND expires_at <= %s",
                (now,),
            )
        )
        return cursor.rowcount

    # help-desk events: audit log, summaries, outbox

    def record_event(
        self, event: NewEvent, now: float, connectors: Sequence[str]
    ) -> AuditEntry | None:
        def record(conn: psycopg.Connection[Any]) -> AuditEntry | None:
            with conn.transaction():
                return _append_event(conn, event, now, connectors)

        return self._run(record)

    def store_summary(
        self, session_id: str, summary: str, now: float, event: NewEvent, connectors: Sequence[str]
    ) -> tuple[StoredSummary, bool]:
        def store(conn: psycopg.Connection[Any]) -> tuple[StoredSummary, bool]:
            with conn.transaction():
                # The audit lock also orders concurrent uploads of one session's summary.
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_AUDIT_LOCK,))
                row = conn.execute(
                    "SELECT session_id, summary, uploaded_at FROM summaries WHERE session_id = %s",
                    (session_id,),
                ).fetchone()
                if row is not None:
                    return StoredSummary(row[0], row[1], row[2]), False
                conn.execute(
                    "INSERT INTO summaries (session_id, summary, uploaded_at) VALUES (%s, %s, %s)",
                    (session_id, summary, now),
                )
                _append_event(conn, event, now, connectors)
            return StoredSummary(session_id, summary, now), True

        return self._run(store)

    def get_summary(self, session_id: str) -> StoredSummary | None:
        row = self._run(
            lambda c: c.execute(
                "SELECT session_id, summary, uploaded_at FROM summaries WHERE session_id = %s",
                (session_id,),
            ).fetchone()
        )
        return StoredSummary(row[0], row[1], row[2]) if row else None

    def audit_entries(self) -> Iterator[AuditEntry]:
        rows = self._run(
            lambda c: c.execute(
                "SELECT seq, at, event_id, type, session_id, data, prev_hash, hash"
                " FROM audit_log ORDER BY seq"
            ).fetchall()
        )
        for row in rows:
            yield AuditEntry(*row)

    def sessions_missing_event(self, event_type: str) -> list[SessionRecord]:
        reached = {
            "session.created": "TRUE",
            "session.paired": "s.paired_at IS NOT NULL",
            "session.ended": "s.state IN ('ended', 'expired', 'failed')",
        }[event_type]
        query = (
            f"{_SELECT_SESSION} WHERE {reached} AND NOT EXISTS"
            " (SELECT 1 FROM audit_log a WHERE a.session_id = s.id AND a.type = %s)"
            " ORDER BY s.created_at, s.seq"
        )
        rows = self._run(lambda c: c.execute(query, (event_type,)).fetchall())
        return [_session(row) for row in rows]

    def due_deliveries(self, connector: str, now: float, limit: int) -> list[Delivery]:
        query = (
            f"SELECT {_DELIVERY_COLUMNS} FROM outbox o"
            " WHERE o.connector = %s AND o.delivered_at IS NULL AND o.next_attempt_at <= %s"
            " AND (o.leased_until IS NULL OR o.leased_until <= %s)"
            " AND NOT EXISTS (SELECT 1 FROM outbox e WHERE e.session_id = o.session_id"
            "   AND e.connector = o.connector AND e.delivered_at IS NULL AND e.id < o.id)"
            " ORDER BY o.id LIMIT %s"
        )
        rows = self._run(lambda c: c.execute(query, (connector, now, now, limit)).fetchall())
        return [Delivery(*row) for row in rows]

    def begin_delivery(self, delivery_id: int, now: float, lease: float) -> int | None:
        row = self._run(
            lambda c: c.execute(
                "UPDATE outbox SET attempts = attempts + 1, leased_until = %s"
                " WHERE id = %s AND delivered_at IS NULL"
                " AND (leased_until IS NULL OR leased_until <= %s) RETURNING attempts",
                (now + lease, delivery_id, now),
            ).fetchone()
        )
        return int(row[0]) if row else None

    def finish_delivery(self, delivery_id: int, now: float, acknowledgement: NewEvent) -> None:
        def finish(conn: psycopg.Connection[Any]) -> None:
            with conn.transaction():
                conn.execute(
                    "UPDATE outbox SET delivered_at = %s, leased_until = NULL, last_error = NULL"
                    " WHERE id = %s",
                    (now, delivery_id),
                )
                _append_event(conn, acknowledgement, now, ())

        self._run(finish)

    def fail_delivery(self, delivery_id: int, next_attempt_at: float, error: str) -> None:
        self._run(
            lambda c: c.execute(
                "UPDATE outbox SET leased_until = NULL, next_attempt_at = %s, last_error = %s"
                " WHERE id = %s AND delivered_at IS NULL",
                (next_attempt_at, error[:500], delivery_id),
            )
        )

    def retry_deliveries_now(self, now: float) -> int:
        cursor = self._run(
            lambda c: c.execute(
                "UPDATE outbox SET next_attempt_at = LEAST(next_attempt_at, %s)"
                " WHERE delivered_at IS NULL",
                (now,),
            )
        )
        return cursor.rowcount

    def pending_deliveries(self) -> int:
        row = self._run(
            lambda c: c.execute("SELECT COUNT(*) FROM outbox WHERE delivered_at IS NULL").fetchone()
        )
        return int(row[0]) if row else 0

    def list_deliveries(self, pending_only: bool = True, limit: int = 1000) -> list[Delivery]:
        where = "WHERE delivered_at IS NULL" if pending_only else ""
        query = f"SELECT {_DELIVERY_COLUMNS} FROM outbox {where} ORDER BY id LIMIT %s"
        rows = self._run(lambda c: c.execute(query, (limit,)).fetchall())
        return [Delivery(*row) for row in rows]

    # organisation revocation lists

    def publish_revocation_list(
        self, organisation_key: str, number: int, document: str, technician_id: str, now: float
    ) -> bool:
        cursor = self._run(
            lambda c: c.execute(
                "INSERT INTO revocation_lists"
                " (organisation_key, number, document, published_at, technician_id)"
                " VALUES (%s, %s, %s, %s, %s)"
                " ON CONFLICT (organisation_key) DO UPDATE SET number = excluded.number,"
                " document = excluded.document, published_at = excluded.published_at,"
                " technician_id = excluded.technician_id"
                " WHERE excluded.number > revocation_lists.number",
                (organisation_key, number, document, now, technician_id),
            )
        )
        return cursor.rowcount == 1

    def get_revocation_list(self, organisation_key: str) -> str | None:
        row = self._run(
            lambda c: c.execute(
                "SELECT document FROM revocation_lists WHERE organisation_key = %s",
                (organisation_key,),
            ).fetchone()
        )
        return str(row[0]) if row else None

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class _Using:
    """``with store._connection() as conn``: database errors become StoreError sentences."""

    def __init__(self, store: PostgresStore) -> None:
        self._store = store

    def __enter__(self) -> psycopg.Connection[Any]:
        return self._store._connect()

    def __exit__(self, exc_type: Any, exc: BaseException | None, traceback: Any) -> None:
        if isinstance(exc, psycopg.Error):
            if isinstance(exc, pg_errors.UniqueViolation):
                raise StoreError(_first_line(exc)) from exc
            raise StoreError(
                f"The PostgreSQL database refused an operation ({_first_line(exc)}); "
                "check that it is up and reachable, then try again."
            ) from exc


def _append_event(
    conn: psycopg.Connection[Any], event: NewEvent, now: float, connectors: Sequence[str]
) -> AuditEntry | None:
    """Append to the audit chain (and queue for ``connectors``) inside an open transaction.

    The advisory lock makes appends from every node one sequence: read the head, link
    to it, insert, all before anyone else may read the head.
    """
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (_AUDIT_LOCK,))
    if event.type in ONCE_PER_SESSION:
        exists = conn.execute(
            "SELECT 1 FROM audit_log WHERE session_id = %s AND type = %s",
            (event.session_id, str(event.type)),
        ).fetchone()
        if exists:
            return None
    head = conn.execute("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
    seq, prev = (int(head[0]) + 1, str(head[1])) if head else (1, GENESIS)
    at = audit_time(now)
    event_id = "evt_" + uuid.uuid4().hex
    data = canonical(event.data)
    digest = entry_hash(prev, seq, at, event_id, str(event.type), event.session_id, data)
    conn.execute(
        "INSERT INTO audit_log (seq, at, event_id, type, session_id, data, prev_hash, hash)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
        (seq, at, event_id, str(event.type), event.session_id, data, prev, digest),
    )
    if connectors:
        doc = json.dumps(
            document(event_id, str(event.type), at, event.data, event.extra, seq, digest)
        )
        with conn.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO outbox (event_id, event_type, session_id, connector, document,"
                " created_at, next_attempt_at) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                [
                    (event_id, str(event.type), event.session_id, name, doc, now, now)
                    for name in connectors
                ],
            )
    return AuditEntry(seq, at, event_id, str(event.type), event.session_id, data, prev, digest)


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [exc.__class__.__name__])[0]


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
