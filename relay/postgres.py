"""The relay's store in PostgreSQL, for several relay nodes sharing one database.

Same contract and the same SQL as :class:`relay.sqlite_store.SQLiteStore` (both are
:class:`relay.sqlite_store.SqlStore`; read :class:`relay.store.RelayStore` for what each method
promises); this module only supplies the connection, the schema and the locking.

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

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import urlsplit

from .errors import StoreError
from .queue_sql import queue_schema
from .self_help_sql import self_help_schema
from .sqlite_store import SqlStore

try:
    import psycopg
    from psycopg import errors as pg_errors
except ImportError as exc:  # pragma: no cover - the postgres extra is missing
    from .errors import ConfigError

    raise ConfigError(
        "--database-url needs the psycopg package; install puente with the 'postgres' "
        "extra (pip install 'puente[postgres]')."
    ) from exc

#: Advisory lock keys (arbitrary constants, unique to Puente).
_SCHEMA_LOCK = 0x50554E5445  # "PUNTE"
_NAMEPLATE_LOCK = 0x50554E5446
_AUDIT_LOCK = 0x50554E5447
_LOCKS = {"nameplates": _NAMEPLATE_LOCK, "audit": _AUDIT_LOCK}

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


def safe_url(url: str) -> str:
    """A database URL without its password, for messages."""
    parts = urlsplit(url)
    if parts.password:
        host = parts.hostname or ""
        netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
        parts = parts._replace(netloc=netloc)
    return parts.geturl()


class PostgresStore(SqlStore):
    """The shared store of a relay cluster: one PostgreSQL database."""

    _ORDER = "seq"

    def __init__(self, url: str) -> None:
        """Connect and create the schema if needed; raise StoreError (a sentence) if impossible."""
        self._url = url
        self._conn: psycopg.Connection[Any] | None = None
        with self._errors():
            conn = self._connect()
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
                conn.execute(_SCHEMA)  # a constant, not user input
                conn.execute(queue_schema("DOUBLE PRECISION"))  # the help queue's tables
                conn.execute(self_help_schema("DOUBLE PRECISION", "BIGSERIAL"))  # self-help's

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

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        """Database errors become StoreError sentences (the cause kept for callers)."""
        try:
            yield
        except psycopg.Error as exc:
            if isinstance(exc, pg_errors.UniqueViolation):
                raise StoreError(_first_line(exc)) from exc
            raise StoreError(
                f"The PostgreSQL database refused an operation ({_first_line(exc)}); "
                "check that it is up and reachable, then try again."
            ) from exc

    def _execute(self, sql: str, params: Sequence[object] = ()) -> Any:
        with self._errors():
            return self._connect().execute(sql.replace("?", "%s"), params)

    def _executemany(self, sql: str, rows: Sequence[Sequence[object]]) -> None:
        with self._errors(), self._connect().cursor() as cursor:
            cursor.executemany(sql.replace("?", "%s"), rows)

    @contextlib.contextmanager
    def _transaction(self, lock: str) -> Iterator[None]:
        with self._errors(), self._connect().transaction():
            self._lock(lock)
            yield

    def _lock(self, lock: str) -> None:
        """A transaction-scoped advisory lock: held until commit, re-entrant."""
        self._execute("SELECT pg_advisory_xact_lock(?)", (_LOCKS[lock],))

    def _is_duplicate(self, exc: BaseException) -> bool:
        return isinstance(exc.__cause__, pg_errors.UniqueViolation)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [exc.__class__.__name__])[0]
