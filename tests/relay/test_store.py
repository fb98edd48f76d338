"""The relay's SQLite store, token handling, nameplate allocation and rate limiter."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from relay.errors import StoreError, TechnicianExists
from relay.nameplates import choose_nameplate, nameplate_digits
from relay.ratelimit import SlidingWindowLimiter
from relay.records import SessionState
from relay.sqlite_store import DATABASE_NAME, SQLiteStore
from relay.tokens import hash_secret, parse_token

NOW = 1_800_000_000.0


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    store = SQLiteStore(tmp_path / "data")
    yield store
    store.close()


def test_database_file_uses_wal(store: SQLiteStore, tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "data" / DATABASE_NAME)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()


def test_token_shape_and_only_hash_stored(store: SQLiteStore, tmp_path: Path) -> None:
    technician, token = store.add_technician("Ana", NOW)
    prefix, token_id, secret = token.split("_", 2)
    assert prefix == "pt" and token_id and len(secret) >= 40
    db = sqlite3.connect(tmp_path / "data" / DATABASE_NAME)
    row = db.execute("SELECT token_hash FROM technicians WHERE id = ?", (technician.id,)).fetchone()
    dump = "\n".join(db.iterdump())
    db.close()
    assert row[0] == hash_secret(secret)
    assert secret not in dump


def test_authenticate(store: SQLiteStore) -> None:
    ana, ana_token = store.add_technician("Ana", NOW)
    _, bob_token = store.add_technician("Bob", NOW)
    assert store.authenticate(ana_token) == ana
    bob = store.authenticate(bob_token)
    assert bob is not None and bob.name == "Bob"
    prefix, token_id, secret = ana_token.split("_", 2)
    assert store.authenticate(f"{prefix}_{token_id}_{secret}x") is None
    assert store.authenticate(f"{prefix}_{token_id}_") is None
    assert store.authenticate("pt_unknown_" + secret) is None
    assert store.authenticate("garbage") is None
    assert store.authenticate("") is None


def test_disabled_technician_cannot_authenticate(store: SQLiteStore) -> None:
    _, token = store.add_technician("Ana", NOW)
    assert store.disable_technician("Ana")
    assert not store.disable_technician("Ana")  # already removed
    assert store.authenticate(token) is None
    assert [t.disabled for t in store.list_technicians()] == [True]


def test_technician_names_are_unique_and_sane(store: SQLiteStore) -> None:
    store.add_technician("Ana", NOW)
    with pytest.raises(TechnicianExists):
        store.add_technician("Ana", NOW)
    with pytest.raises(ValueError):
        store.add_technician("   ", NOW)
    with pytest.raises(ValueError):
        store.add_technician("bad\nname", NOW)


def test_parse_token() -> None:
    assert parse_token("pt_abc_se_cret") == ("abc", "se_cret")
    assert parse_token("xx_abc_secret") is None
    assert parse_token("pt_abc") is None


def test_session_lifecycle(store: SQLiteStore) -> None:
    ana, _ = store.add_technician("Ana", NOW)
    record = store.create_session(ana, "T-1", "https://desk.example/T-1", NOW, 600)
    assert len(record.id) == 32 and record.state is SessionState.WAITING
    assert len(record.nameplate) == 3 and record.nameplate.isdigit()
    assert record.expires_at == NOW + 600 and record.technician_name == "Ana"
    assert store.find_by_nameplate(record.nameplate) == record
    assert store.count_agent_claim(record.id) == 1
    assert store.count_agent_claim(record.id) == 2
    assert store.mark_paired(record.id, NOW + 1)
    assert not store.mark_paired(record.id, NOW + 1)
    assert store.finish_session(record.id, SessionState.ENDED, NOW + 5, "done", 10, 20)
    assert not store.finish_session(record.id, SessionState.FAILED, NOW + 6, "again")
    done = store.get_session(record.id)
    assert done is not None
    assert done.state is SessionState.ENDED and done.end_reason == "done"
    assert (done.paired_at, done.ended_at) == (NOW + 1, NOW + 5)
    assert (done.bytes_agent_to_tech, done.bytes_tech_to_agent) == (10, 20)
    with pytest.raises(ValueError):
        store.finish_session(record.id, SessionState.PAIRED, NOW, "not a finish")


def test_list_sessions_newest_first_and_filtered(store: SQLiteStore) -> None:
    ana, _ = store.add_technician("Ana", NOW)
    bob, _ = store.add_technician("Bob", NOW)
    first = store.create_session(ana, "T-1", None, NOW, 600)
    second = store.create_session(ana, "T-2", None, NOW + 1, 600)
    store.create_session(bob, "T-1", None, NOW + 2, 600)
    assert [s.id for s in store.list_sessions(ana.id)] == [second.id, first.id]
    assert [s.id for s in store.list_sessions(ana.id, "T-1")] == [first.id]


def test_expiry(store: SQLiteStore) -> None:
    ana, _ = store.add_technician("Ana", NOW)
    record = store.create_session(ana, "T-1", None, NOW, 600)
    assert record.state_at(NOW + 599) is SessionState.WAITING
    assert record.state_at(NOW + 600) is SessionState.EXPIRED
    assert store.expire_sessions(NOW + 599) == 0
    assert store.expire_sessions(NOW + 600) == 1
    expired = store.get_session(record.id)
    assert expired is not None and expired.state is SessionState.EXPIRED


def test_nameplates_unique_among_live_sessions(store: SQLiteStore) -> None:
    ana, _ = store.add_technician("Ana", NOW)
    plates = [store.create_session(ana, f"T-{i}", None, NOW, 600).nameplate for i in range(300)]
    assert len(set(plates)) == 300
    assert all(len(p) == 3 and p[0] != "0" for p in plates)


def test_nameplates_widen_when_half_the_space_is_live() -> None:
    three_digit = [str(n) for n in range(100, 550)]  # exactly half of 900
    assert nameplate_digits(three_digit) == 3
    assert nameplate_digits([*three_digit, "550"]) == 4
    plate = choose_nameplate([*three_digit, "550"])
    assert len(plate) == 4
    assert len(choose_nameplate(three_digit)) == 3
    assert choose_nameplate(three_digit) not in three_digit


def test_store_refuses_unusable_data_dir(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(StoreError, match="--data-dir"):
        SQLiteStore(blocker)


def test_sliding_window_limiter() -> None:
    limiter = SlidingWindowLimiter(3, window=60)
    assert [limiter.allow("ip", 0.0 + i) for i in range(4)] == [True, True, True, False]
    assert limiter.allow("other", 3.0)
    assert not limiter.allow("ip", 59.9)
    assert limiter.allow("ip", 60.0)  # the first event left the window
    limiter.prune(200.0)
    assert len(limiter) == 0
