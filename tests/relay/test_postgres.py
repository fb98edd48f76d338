"""The store contract, run against SQLite and a real PostgreSQL from Debian.

The PostgreSQL server is started by the test session (initdb into a temporary
directory); each test gets its own empty database.
"""

from __future__ import annotations

import itertools
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from relay import audit
from relay.errors import ConfigError, StoreError, TechnicianExists
from relay.events import EventType, NewEvent
from relay.records import SessionRecord, SessionState
from relay.store import RelayStore
from relay.stores import open_store
from tests.support.services import PostgresServer, postgres_server  # noqa: F401  (fixture)
from tests.support.timeouts import scaled

NOW = 1_800_000_000.0
_databases = itertools.count()


@pytest.fixture
def database_url(postgres_server: PostgresServer) -> str:  # noqa: F811
    return postgres_server.new_database(f"puente_test_{next(_databases)}")


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RelayStore]:
    if request.param == "sqlite":
        opened = open_store(tmp_path / "data", None)
    else:
        opened = open_store(None, request.getfixturevalue("database_url"))
    yield opened
    opened.close()


def test_technicians_and_tokens(store: RelayStore) -> None:
    ana, token = store.add_technician("Ana", NOW)
    store.add_technician("Bob", NOW + 1)
    assert store.authenticate(token) == ana
    assert store.authenticate(token + "x") is None
    assert store.authenticate("pt_nope_" + token.split("_", 2)[2]) is None
    with pytest.raises(TechnicianExists):
        store.add_technician("Ana", NOW)
    with pytest.raises(ValueError):
        store.add_technician("  ", NOW)
    assert [t.name for t in store.list_technicians()] == ["Ana", "Bob"]
    assert store.disable_technician("Ana") and not store.disable_technician("Ana")
    assert store.authenticate(token) is None
    assert store.list_technicians()[0].disabled


def test_session_lifecycle_and_counts(store: RelayStore) -> None:
    ana, _ = store.add_technician("Ana", NOW)
    record = store.create_session(ana, "T-1", "https://desk.example/T-1", NOW, 600)
    assert record.state is SessionState.WAITING and record.technician_name == "Ana"
    assert record.expires_at == NOW + 600 and len(record.nameplate) == 3
    assert store.find_by_nameplate(record.nameplate) == record
    assert store.get_session(record.id) == record
    assert [store.count_agent_claim(record.id) for _ in range(3)] == [1, 2, 3]
    assert store.count_agent_claim("missing") == 0
    assert store.mark_paired(record.id, NOW + 5) and not store.mark_paired(record.id, NOW + 6)
    assert store.finish_session(record.id, SessionState.ENDED, NOW + 9, "done", 100, 7)
    assert not store.finish_session(record.id, SessionState.FAILED, NOW + 10, "again", 1, 1)
    store.add_byte_counts(record.id, 5, 3)
    ended = store.get_session(record.id)
    assert ended is not None and ended.state is SessionState.ENDED
    assert (ended.paired_at, ended.ended_at, ended.end_reason) == (NOW + 5, NOW + 9, "done")
    assert (ended.bytes_agent_to_tech, ended.bytes_tech_to_agent) == (105, 10)
    with pytest.raises(ValueError):
        store.finish_session(record.id, SessionState.PAIRED, NOW, "no")


def test_listing_expiry_and_nameplate_reuse(store: RelayStore) -> None:
    ana, _ = store.add_technician("Ana", NOW)
    bob, _ = store.add_technician("Bob", NOW)
    first = store.create_session(ana, "T-1", None, NOW, 60)
    second = store.create_session(ana, "T-2", None, NOW, 60)  # same instant
    store.create_session(bob, "T-1", None, NOW, 60)
    assert [s.id for s in store.list_sessions(ana.id)] == [second.id, first.id]
    assert [s.id for s in store.list_sessions(ana.id, "T-1")] == [first.id]
    assert store.list_sessions(ana.id, limit=1)[0].id == second.id
    assert store.expire_sessions(NOW + 59) == 0
    assert store.expire_sessions(NOW + 60) == 3
    expired = store.get_session(first.id)
    assert expired is not None and expired.state is SessionState.EXPIRED
    assert expired.ended_at == NOW + 60
    # 3-digit nameplates are unique among live sessions, then widen.
    live = {store.create_session(ana, f"T-{i}", None, NOW + 100, 600).nameplate for i in range(451)}
    assert len(live) == 451 and all(len(n) == 3 for n in live)
    assert len(store.create_session(ana, "T-x", None, NOW + 100, 600).nameplate) == 4


def test_revocation_lists_keep_the_newest(store: RelayStore) -> None:
    ana, _ = store.add_technician("Ana", NOW)
    assert store.get_revocation_list("org-key") is None
    assert store.publish_revocation_list("org-key", 2, '{"n": 2}', ana.id, NOW)
    assert not store.publish_revocation_list("org-key", 1, '{"n": 1}', ana.id, NOW)
    assert not store.publish_revocation_list("org-key", 2, '{"n": "2b"}', ana.id, NOW)
    assert store.get_revocation_list("org-key") == '{"n": 2}'
    assert store.publish_revocation_list("org-key", 3, '{"n": 3}', ana.id, NOW)
    assert store.get_revocation_list("org-key") == '{"n": 3}'
    assert store.get_revocation_list("other") is None


def test_two_nodes_never_hand_out_the_same_nameplate(database_url: str) -> None:
    """Several stores (as several relay nodes) creating sessions at the same time."""
    stores = [open_store(None, database_url) for _ in range(4)]
    ana, _ = stores[0].add_technician("Ana", NOW)
    made: list[str] = []

    def create(store: RelayStore) -> None:
        for i in range(60):
            made.append(store.create_session(ana, f"T-{i}", None, NOW, 600).nameplate)

    threads = [threading.Thread(target=create, args=(s,)) for s in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(scaled(60))
    for store in stores:
        store.close()
    assert len(made) == 240 and len(set(made)) == 240


def test_a_lost_connection_fails_one_call_and_then_reconnects(
    postgres_server: PostgresServer,  # noqa: F811
    database_url: str,
) -> None:
    import psycopg

    store = open_store(None, database_url)
    ana, token = store.add_technician("Ana", NOW)
    database = database_url.rsplit("/", 1)[1]
    with psycopg.connect(postgres_server.url(), autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = %s AND pid <> pg_backend_pid()",
            (database,),
        )
    with pytest.raises(StoreError, match="check that it is up"):
        store.list_technicians()
    assert store.authenticate(token) == ana  # the next call reconnected
    store.close()


def test_unreachable_or_wrong_database_urls_are_sentences(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match=r"Cannot connect to PostgreSQL at postgresql://u:\*\*\*@"):
        open_store(None, "postgresql://u:hunter2@127.0.0.1:1/puente")
    with pytest.raises(ConfigError, match="must be a PostgreSQL URL"):
        open_store(None, "mysql://db/puente")
    with pytest.raises(ConfigError, match="needs --data-dir"):
        open_store(None, None)


def test_cli_manages_technicians_in_postgres(database_url: str) -> None:
    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "relay.cli",
                "technician",
                *args,
                "--database-url",
                database_url,
            ],
            capture_output=True,
            text=True,
            timeout=scaled(30),
        )

    added = cli("add", "Ana Lopez")
    assert added.returncode == 0, added.stderr
    token = added.stdout.strip().splitlines()[-1]
    listed = cli("list")
    assert "Ana Lopez\tactive" in listed.stdout
    store = open_store(None, database_url)
    assert store.authenticate(token) is not None
    store.close()


# ---------------------------------------------------------------------------
# help-desk events: audit chain, summaries, outbox (both stores)
# ---------------------------------------------------------------------------


def event(kind: EventType, session_id: str, **data: object) -> NewEvent:
    return NewEvent(kind, session_id, {"session_id": session_id, **data})


def test_audit_chain_and_once_per_session_events(store: RelayStore) -> None:
    ana, _ = store.add_technician("Ana", NOW)
    record = store.create_session(ana, "T-1", None, NOW, 600)
    first = store.record_event(event(EventType.SESSION_CREATED, record.id), NOW, ("webhook",))
    assert first is not None and first.seq == 1 and first.prev_hash == audit.GENESIS
    assert (
        store.record_event(event(EventType.SESSION_CREATED, record.id), NOW, ("webhook",)) is None
    )
    second = store.record_event(event(EventType.SESSION_PAIRED, record.id), NOW + 1, ())
    assert second is not None and second.prev_hash == first.hash
    entries = list(store.audit_entries())
    assert [e.seq for e in entries] == [1, 2]
    assert audit.verify(entries).ok
    assert [s.id for s in store.sessions_missing_event("session.ended")] == []
    store.finish_session(record.id, SessionState.ENDED, NOW + 2, "done")
    assert [s.id for s in store.sessions_missing_event("session.ended")] == [record.id]
    assert store.sessions_missing_event("session.paired") == []


def test_summaries_are_kept_once(store: RelayStore) -> None:
    ana, _ = store.add_technician("Ana", NOW)
    record = store.create_session(ana, "T-1", None, NOW, 600)
    summary_event = event(EventType.SESSION_SUMMARY, record.id)
    stored, first = store.store_summary(record.id, '{"a": 1}', NOW, summary_event, ("webhook",))
    assert first and stored.summary == '{"a": 1}'
    again, first = store.store_summary(record.id, '{"a": 2}', NOW + 1, summary_event, ("webhook",))
    assert not first and again == stored and store.get_summary(record.id) == stored
    assert store.get_summary("nope") is None
    assert [e.type for e in store.audit_entries()] == ["session.summary"]


def test_outbox_leases_retries_and_delivers_in_order(store: RelayStore) -> None:
    ana, _ = store.add_technician("Ana", NOW)
    record = store.create_session(ana, "T-1", None, NOW, 600)
    for kind in (EventType.SESSION_CREATED, EventType.SESSION_PAIRED):
        store.record_event(event(kind, record.id), NOW, ("webhook", "rt"))
    assert store.pending_deliveries() == 4
    due = store.due_deliveries("webhook", NOW, 10)
    assert [d.event_type for d in due] == ["session.created"]  # the next waits its turn
    row = due[0]
    assert store.begin_delivery(row.id, NOW, 30) == 1
    assert store.begin_delivery(row.id, NOW + 1, 30) is None  # leased by someone else
    store.fail_delivery(row.id, NOW + 100, "HTTP 503")
    assert store.due_deliveries("webhook", NOW + 50, 10) == []
    assert store.retry_deliveries_now(NOW + 50) == 4
    assert store.begin_delivery(row.id, NOW + 50, 30) == 2
    ack = NewEvent(EventType.DELIVERY_ACKNOWLEDGED, record.id, {"event_id": row.event_id})
    store.finish_delivery(row.id, NOW + 51, ack)
    assert [d.event_type for d in store.due_deliveries("webhook", NOW + 51, 10)] == [
        "session.paired"
    ]
    assert store.pending_deliveries() == 3
    listed = store.list_deliveries(pending_only=False)
    assert len(listed) == 4 and listed[0].delivered_at == NOW + 51
    assert listed[0].attempts == 2 and listed[0].last_error is None
    assert audit.verify(list(store.audit_entries())).ok


def test_postgres_audit_log_is_append_only(database_url: str) -> None:
    import psycopg

    store = open_store(None, database_url)
    ana, _ = store.add_technician("Ana", NOW)
    record = store.create_session(ana, "T-1", None, NOW, 600)
    store.record_event(event(EventType.SESSION_CREATED, record.id), NOW, ())
    store.close()
    with psycopg.connect(database_url, autocommit=True) as conn:
        for statement in (
            "UPDATE audit_log SET data = '{}'",
            "DELETE FROM audit_log",
            "TRUNCATE audit_log",
        ):
            with pytest.raises(psycopg.Error, match="append-only"):
                conn.execute(statement)  # type: ignore[arg-type]


def test_nodes_appending_at_once_keep_one_chain(database_url: str) -> None:
    stores = [open_store(None, database_url) for _ in range(4)]
    ana, _ = stores[0].add_technician("Ana", NOW)
    records = [stores[0].create_session(ana, f"T-{i}", None, NOW, 600) for i in range(40)]

    def append(store: RelayStore, part: list[SessionRecord]) -> None:
        for record in part:
            store.record_event(event(EventType.SESSION_CREATED, record.id), NOW, ("webhook",))

    threads = [
        threading.Thread(target=append, args=(s, records[i::4])) for i, s in enumerate(stores)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(scaled(60))
    entries = list(stores[0].audit_entries())
    for store in stores:
        store.close()
    assert len(entries) == 40 and audit.verify(entries).ok
