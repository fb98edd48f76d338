"""Choosing the relay's store: SQLite in the data directory, or PostgreSQL.

Rules::

    database_url None          SQLiteStore(data_dir): one file, one host (several relay
                               processes on that host may share it).
    postgresql://... URL       PostgresStore(url): shared by any number of relay nodes.
    any other URL              ConfigError naming --database-url.
"""

from __future__ import annotations

from pathlib import Path

from .errors import ConfigError
from .sqlite_store import SQLiteStore
from .store import RelayStore


def open_store(data_dir: str | Path | None, database_url: str | None) -> RelayStore:
    """Open the store the settings name; raise ConfigError or StoreError (sentences)."""
    if not database_url:
        if data_dir is None:
            raise ConfigError(
                "The relay needs --data-dir (PUENTE_DATA_DIR) for its SQLite database, "
                "or --database-url (PUENTE_DATABASE_URL) for PostgreSQL."
            )
        return SQLiteStore(data_dir)
    if not database_url.startswith(("postgresql://", "postgres://")):
        raise ConfigError(
            "--database-url must be a PostgreSQL URL such as "
            "postgresql://puente:PASSWORD@db.internal/puente; leave it out to use SQLite."
        )
    from .postgres import PostgresStore

    return PostgresStore(database_url)
