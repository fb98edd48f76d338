"""Enrolled devices' tables, in SQL that SQLite and PostgreSQL both run.

Enrolment tokens, enrolled devices, the alert book (pair states, owed ticket actions,
tickets), the sealed details, the published updates and the delivery lease live in the
relay's SQLite file (``DATA_DIR/relay.sqlite3``), or, when the relay runs with
``--database-url``, in the PostgreSQL database its sessions and help queue already
share across nodes. The books (:mod:`relay.enrolment`, :mod:`relay.alert_book`,
:mod:`relay.presence`, :mod:`relay.device_updates`) write one SQL for both through a
:class:`DeviceConnection` (``?`` placeholders); this module supplies the connections,
the schema and the rules that keep nodes from both winning.

Rules::

    where         DeviceDatabase.for_relay: --database-url (postgresql://) if given,
                  else the SQLite file in --data-dir.
    connections   one per user, never shared between threads at once: the event
                  loop's books, the delivery worker, each presence pass. A lost
                  PostgreSQL connection fails the call in flight (StoreError, a
                  sentence) and is opened again by the next call.
    transactions  SQLite: BEGIN IMMEDIATE, one writer at a time across processes.
                  PostgreSQL: READ COMMITTED; what decides a change is either a row
                  locked first (SELECT ... FOR UPDATE, ``for_update``) or the
                  condition of the UPDATE itself, judged against the row as it is
                  when the update runs (a compare-and-set). So:
    tokens        a use is spent by UPDATE ... SET uses = uses + 1 WHERE uses <
                  uses_allowed AND NOT withdrawn AND not expired: two nodes redeeming
                  the last use at once, one gets the row, the other none.
    alerts        a (device, check) pair's row is made if missing, then locked FOR
                  UPDATE before its state is read: one alert per device and check,
                  and each result counted once, whichever nodes see the results.
    delivery      the alert book's owed actions are delivered by one node at a
                  time: the holder of the lease row ``alert-delivery`` (Lease),
                  taken by a conditional upsert when it is free or lapsed and renewed
                  while its holder lives. A node that dies stops renewing; the next
                  takes over when the lease lapses; the actions wait in their table.
    schema        made on first use (PostgreSQL: under an advisory lock, so nodes
                  starting together do not race).
"""

from __future__ import annotations

import abc
import contextlib
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from .errors import ConfigError, StoreError

#: Advisory lock taken while PostgreSQL's device tables are made ("PUNTE" + 0x10).
_SCHEMA_LOCK = 0x50554E5455


def device_schema(real: str, blob: str, serial: str) -> str:
    """Every device table. ``real``: the type of times; ``blob``: of raw keys;
    ``serial``: an auto-numbered primary key."""
    return f"""
CREATE TABLE IF NOT EXISTS enrolment_tokens (
    token_id TEXT PRIMARY KEY,
    secret_hash TEXT NOT NULL,
    created_at {real} NOT NULL,
    expires_at {real} NOT NULL,
    uses_allowed INTEGER NOT NULL,
    uses INTEGER NOT NULL DEFAULT 0,
    withdrawn INTEGER NOT NULL DEFAULT 0,
    policy TEXT
);
CREATE TABLE IF NOT EXISTS enrolled_devices (
    device_id TEXT PRIMARY KEY,
    public_key {blob} NOT NULL UNIQUE,
    token_id TEXT NOT NULL,
    enrolled_at {real} NOT NULL,
    last_seen {real},
    online INTEGER NOT NULL DEFAULT 0,
    policy TEXT,
    update_seen INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS alert_pairs (
    device TEXT NOT NULL,
    check_id TEXT NOT NULL,
    state TEXT NOT NULL,
    failures INTEGER NOT NULL,
    alert_id TEXT,
    severity TEXT NOT NULL,
    last_comment_at {real},
    quiet_repeats INTEGER NOT NULL,
    last_report {real},
    PRIMARY KEY (device, check_id)
);
CREATE TABLE IF NOT EXISTS alert_actions (
    id {serial},
    alert_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    device TEXT NOT NULL,
    check_id TEXT NOT NULL,
    severity TEXT NOT NULL,
    failures INTEGER NOT NULL,
    repeats INTEGER NOT NULL,
    at {real} NOT NULL,
    delivered_at {real},
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    note TEXT
);
CREATE INDEX IF NOT EXISTS alert_actions_pending ON alert_actions (delivered_at, id);
CREATE TABLE IF NOT EXISTS alert_tickets (
    alert_id TEXT PRIMARY KEY,
    ticket TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS alert_book_upgrades (
    name TEXT PRIMARY KEY
);
CREATE TABLE IF NOT EXISTS device_details (
    device_id TEXT NOT NULL,
    check_id TEXT NOT NULL,
    at INTEGER NOT NULL,
    status TEXT NOT NULL,
    sealed TEXT NOT NULL,
    PRIMARY KEY (device_id, check_id)
);
CREATE TABLE IF NOT EXISTS device_publications (
    id {serial},
    token_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    document TEXT NOT NULL,
    published_at {real} NOT NULL
);
CREATE INDEX IF NOT EXISTS device_publications_by_token
    ON device_publications (token_id, kind, name, id);
CREATE TABLE IF NOT EXISTS device_leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    until {real} NOT NULL
);
"""


_SQLITE_SCHEMA = device_schema("REAL", "BLOB", "INTEGER PRIMARY KEY AUTOINCREMENT")
_POSTGRES_SCHEMA = device_schema("DOUBLE PRECISION", "BYTEA", "BIGSERIAL PRIMARY KEY")

#: Columns added after a table was first made: (table, column, definition).
_ADDED_COLUMNS = (
    ("alert_actions", "note", "TEXT"),  # failure actions
    ("enrolled_devices", "policy", "TEXT"),  # updates (relay.device_updates)
    ("enrolled_devices", "update_seen", "INTEGER NOT NULL DEFAULT 0"),
)


class DeviceConnection(abc.ABC):
    """One connection to the device tables; ``?`` placeholders in every dialect."""

    #: Appended to a SELECT that reads a row the transaction is about to change.
    for_update = ""

    @abc.abstractmethod
    def execute(self, sql: str, params: Sequence[object] = ()) -> Any:
        """Run one statement; its cursor (fetchone, fetchall, rowcount, iteration)."""

    @abc.abstractmethod
    def executemany(self, sql: str, rows: Sequence[Sequence[object]]) -> None:
        """Run one statement for each of ``rows``."""

    @abc.abstractmethod
    def transaction(self) -> contextlib.AbstractContextManager[None]:
        """Committed when the block ends, rolled back on any error (see module rules)."""

    @abc.abstractmethod
    def is_duplicate(self, exc: BaseException) -> bool:
        """Whether ``exc`` is the database refusing a second copy of a unique value."""

    @abc.abstractmethod
    def make_schema(self) -> None:
        """Create the device tables where missing."""

    @abc.abstractmethod
    def close(self) -> None: ...


class DeviceDatabase:
    """Where a relay keeps its enrolled devices: a SQLite file or a PostgreSQL URL."""

    def __init__(self, *, path: Path | None = None, url: str | None = None) -> None:
        if (path is None) == (url is None):
            raise ValueError("a device database is a SQLite path or a PostgreSQL URL")
        self.path = path
        self.url = url
        self._schema_made = False

    @classmethod
    def of(cls, where: Path | str | DeviceDatabase) -> DeviceDatabase:
        """``where`` as a database: a path is a SQLite file, a postgresql:// URL PostgreSQL."""
        if isinstance(where, DeviceDatabase):
            return where
        if isinstance(where, str) and where.startswith(("postgresql://", "postgres://")):
            return cls(url=where)
        return cls(path=Path(where))

    @classmethod
    def for_relay(cls, data_dir: str | Path | None, database_url: str | None) -> DeviceDatabase:
        """The relay's: its PostgreSQL database when it has one, else its SQLite file."""
        from .sqlite_store import DATABASE_NAME

        if database_url:
            if not database_url.startswith(("postgresql://", "postgres://")):
                raise ConfigError(
                    "--database-url must be a PostgreSQL URL such as "
                    "postgresql://puente:PASSWORD@db.internal/puente; leave it out to use SQLite."
                )
            return cls(url=database_url)
        if data_dir is None:
            raise ConfigError(
                "Enrolled devices need the relay's store: --data-dir (PUENTE_DATA_DIR) for "
                "SQLite, or --database-url (PUENTE_DATABASE_URL) for PostgreSQL."
            )
        return cls(path=Path(data_dir) / DATABASE_NAME)

    @property
    def is_postgres(self) -> bool:
        return self.url is not None

    def connect(self, *, thread_safe: bool = False) -> DeviceConnection:
        """A new connection (the schema made on the first). ``thread_safe``: it may be
        used from a thread other than its maker's, one thread at a time."""
        if self.url is not None:
            connection: DeviceConnection = _PostgresConnection(self.url)
        else:
            assert self.path is not None
            connection = _SQLiteConnection(self.path, thread_safe)
        if not self._schema_made:
            try:
                connection.make_schema()
            except BaseException:
                connection.close()
                raise
            self._schema_made = True
        return connection

    def __repr__(self) -> str:
        if self.url is not None:
            from .postgres import safe_url

            return f"DeviceDatabase({safe_url(self.url)!r})"
        return f"DeviceDatabase({str(self.path)!r})"


class _SQLiteConnection(DeviceConnection):
    def __init__(self, path: Path, thread_safe: bool) -> None:
        self._db = sqlite3.connect(
            path, isolation_level=None, timeout=30, check_same_thread=not thread_safe
        )
        self._db.execute("PRAGMA journal_mode=WAL")

    def make_schema(self) -> None:
        self._db.executescript(_SQLITE_SCHEMA)
        for table, column, definition in _ADDED_COLUMNS:  # a database made by an older relay
            columns = {row[1] for row in self._db.execute(f"PRAGMA table_info({table})")}
            if column not in columns:
                self._db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {definition}")

    def execute(self, sql: str, params: Sequence[object] = ()) -> Any:
        return self._db.execute(sql, params)

    def executemany(self, sql: str, rows: Sequence[Sequence[object]]) -> None:
        self._db.executemany(sql, rows)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def is_duplicate(self, exc: BaseException) -> bool:
        return isinstance(exc, sqlite3.IntegrityError)

    def close(self) -> None:
        self._db.close()


class _PostgresConnection(DeviceConnection):
    for_update = " FOR UPDATE"

    def __init__(self, url: str) -> None:
        try:
            import psycopg
        except ImportError as exc:  # pragma: no cover - the postgres extra is missing
            raise ConfigError(
                "--database-url needs the psycopg package; install puente with the "
                "'postgres' extra (pip install 'puente[postgres]')."
            ) from exc
        self._psycopg = psycopg
        self._url = url
        self._conn: Any = None
        self._depth = 0
        self._open()

    def _open(self) -> Any:
        from .postgres import safe_url

        if self._conn is None or self._conn.closed or self._conn.broken:
            if self._depth:  # a transaction cannot go on over a new connection
                raise StoreError("The connection to PostgreSQL was lost in a transaction.")
            if self._conn is not None:
                self._conn.close()
            try:
                self._conn = self._psycopg.connect(self._url, autocommit=True, connect_timeout=10)
            except self._psycopg.Error as exc:
                self._conn = None
                raise StoreError(
                    f"Cannot connect to PostgreSQL at {safe_url(self._url)} "
                    f"({_first_line(exc)}); check --database-url and that the database is up."
                ) from exc
        return self._conn

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except self._psycopg.Error as exc:
            if isinstance(exc, self._psycopg.errors.UniqueViolation):
                raise StoreError(_first_line(exc)) from exc
            raise StoreError(
                f"The PostgreSQL database refused an operation ({_first_line(exc)}); "
                "check that it is up and reachable, then try again."
            ) from exc

    def make_schema(self) -> None:
        with self._errors(), self._open().transaction():
            self._conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
            self._conn.execute(_POSTGRES_SCHEMA)  # a constant, not user input
            for table, column, definition in _ADDED_COLUMNS:
                self._conn.execute(
                    f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {column} {definition}"
                )

    def execute(self, sql: str, params: Sequence[object] = ()) -> Any:
        with self._errors():
            return self._open().execute(sql.replace("?", "%s"), params)

    def executemany(self, sql: str, rows: Sequence[Sequence[object]]) -> None:
        if not rows:
            return
        with self._errors(), self._open().cursor() as cursor:
            cursor.executemany(sql.replace("?", "%s"), rows)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        with self._errors(), self._open().transaction():
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1

    def is_duplicate(self, exc: BaseException) -> bool:
        cause = exc.__cause__ if isinstance(exc, StoreError) else exc
        return isinstance(cause, self._psycopg.errors.UniqueViolation)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [exc.__class__.__name__])[0]


class Lease:
    """A named lease held by one relay process at a time (module rule ``delivery``).

    ``take`` succeeds when the lease is free, lapsed, or already ours, and then holds
    it for ``seconds`` more; whoever holds it renews it by taking it again before it
    lapses.
    """

    def __init__(self, connection: DeviceConnection, name: str, holder: str) -> None:
        self._db = connection
        self.name = name
        self.holder = holder

    def take(self, now: float, seconds: float) -> bool:
        cursor = self._db.execute(
            "INSERT INTO device_leases (name, holder, until) VALUES (?, ?, ?) "
            "ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until = excluded.until "
            "WHERE device_leases.until <= ? OR device_leases.holder = excluded.holder",
            (self.name, self.holder, now + seconds, now),
        )
        return bool(cursor.rowcount == 1)

    def release(self) -> None:
        """Let the next holder take it at once (a node stopping cleanly)."""
        self._db.execute(
            "DELETE FROM device_leases WHERE name = ? AND holder = ?", (self.name, self.holder)
        )

    def holder_now(self, now: float) -> str | None:
        row = self._db.execute(
            "SELECT holder FROM device_leases WHERE name = ? AND until > ?", (self.name, now)
        ).fetchone()
        return None if row is None else str(row[0])
