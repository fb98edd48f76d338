"""Enrolled devices' storage (relay.device_sql) on SQLite and on a real PostgreSQL: the
same books, and the rules that keep relay nodes sharing the database from both
winning — a token's last use spent once, one alert per device and check, one delivery
lease holder — with one connection per "node", racing in threads."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Generic, TypeVar

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocol.identity import raw_public_key
from relay.alert_book import AlertBook, RequestTrackerAlerts
from relay.alert_delivery import deliver
from relay.alerts import Action, Observation
from relay.device_sql import DeviceDatabase, Lease
from relay.enrolment import EnrolmentBook
from relay.errors import EnrolmentRefused
from relay.presence import PresenceBook, open_tickets, stored_details
from tests.support.device_fixtures import relay_cli
from tests.support.rt_doubles import RequestTrackerStandIn
from tests.support.services import PostgresServer, postgres_server  # noqa: F401  (fixture)
from tests.support.timeouts import scaled

_databases = itertools.count()
T = TypeVar("T")
B = TypeVar("B")


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> DeviceDatabase:
    if request.param == "sqlite":
        return DeviceDatabase(path=tmp_path / "relay.sqlite3")
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return DeviceDatabase(url=server.new_database(f"puente_devices_{next(_databases)}"))


def device_key() -> bytes:
    return raw_public_key(Ed25519PrivateKey.generate().public_key())


class Racer(Generic[B]):
    """Runs the same work on several "nodes" at once: each thread opens its own book
    (SQLite connections stay in the thread that made them), then all are released
    together."""

    def __init__(self, open_book: Callable[[], B], count: int) -> None:
        self.open_book = open_book
        self.count = count

    def race(self, act: Callable[[B], T]) -> list[T | BaseException]:
        """What ``act(book)`` returned or raised in each thread, in thread order."""
        barrier = threading.Barrier(self.count)
        results: list[T | BaseException] = [RuntimeError("did not run")] * self.count

        def run(index: int) -> None:
            book = self.open_book()
            try:
                barrier.wait(scaled(10))
                results[index] = act(book)
            except BaseException as exc:
                results[index] = exc
            finally:
                book.close()  # type: ignore[attr-defined]

        threads = [threading.Thread(target=run, args=(i,)) for i in range(self.count)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(scaled(30))
        return results


def test_a_token_for_one_device_enrols_one_whoever_races(database: DeviceDatabase) -> None:
    book = EnrolmentBook(database)
    nodes = Racer(lambda: EnrolmentBook(database), 4)
    now = time.time()
    try:
        for _ in range(10):
            token, record = book.create_token(now, 1, 1)

            def redeem(node: EnrolmentBook, token: str = token) -> object:
                return node.redeem(token, device_key(), now)

            outcomes = nodes.race(redeem)
            enrolled = [o for o in outcomes if not isinstance(o, BaseException)]
            refused = [o for o in outcomes if isinstance(o, BaseException)]
            assert len(enrolled) == 1, outcomes
            assert all(isinstance(o, EnrolmentRefused) for o in refused), refused
            assert all("already used 1 time" in str(o) for o in refused)
            [listed] = [t for t in book.tokens() if t.token_id == record.token_id]
            assert listed.uses == 1
        assert len(book.devices()) == 10
    finally:
        book.close()


def test_one_key_enrolled_once_when_two_nodes_race(database: DeviceDatabase) -> None:
    book = EnrolmentBook(database)
    now = time.time()
    try:
        token, _ = book.create_token(now, 10, 1)
        key = device_key()
        outcomes = Racer(lambda: EnrolmentBook(database), 2).race(
            lambda node: node.redeem(token, key, now)
        )
        refused = [o for o in outcomes if isinstance(o, BaseException)]
        assert len(refused) == 1 and isinstance(refused[0], EnrolmentRefused), outcomes
        assert "already enrolled" in str(refused[0])
        assert book.tokens()[0].uses == 1  # the refused one spent nothing
    finally:
        book.close()


def test_refusals_on_every_store_are_sentences(database: DeviceDatabase) -> None:
    book = EnrolmentBook(database)
    now = time.time()
    try:
        token, record = book.create_token(now, 2, 1)
        with pytest.raises(EnrolmentRefused, match="has expired"):
            book.redeem(token, device_key(), now + 2 * 86400)
        assert book.withdraw(record.token_id)
        with pytest.raises(EnrolmentRefused, match="withdrawn"):
            book.redeem(token, device_key(), now)
        with pytest.raises(EnrolmentRefused, match="not known to the relay"):
            book.redeem(token[:-2] + "xx", device_key(), now)
        assert book.tokens()[0].uses == 0
    finally:
        book.close()


def failure(device: str, reported_at: int) -> Observation:
    return Observation(device, "disk", "failing", "critical", time.time(), 2, False, reported_at)


def test_one_alert_per_device_and_check_when_two_nodes_see_the_results(
    database: DeviceDatabase,
) -> None:
    """A device that reconnects to another node sends its latest results again: both
    nodes see each result; each is counted once and one alert opens."""
    books = [AlertBook(database) for _ in range(3)]
    nodes = Racer(lambda: AlertBook(database), 3)
    try:
        for device in ("laptop-1", "laptop-2", "laptop-3"):
            for reported_at in (100, 200, 300):
                seen = failure(device, reported_at)
                nodes.race(lambda node, seen=seen: node.observe(seen))  # type: ignore[misc]
            state = books[0].state(device, "disk")
            assert state.failures == 3 and state.last_report == 300
        pending = books[1].pending()
        opened = [a for a in pending if a.kind is Action.OPEN]
        assert sorted(a.device for a in opened) == ["laptop-1", "laptop-2", "laptop-3"]
        assert {a.failures for a in opened} == {2}
        assert books[2].open_alerts() == {d: ["disk"] for d in ("laptop-1", "laptop-2", "laptop-3")}
        # A note (a failure action's outcome) lands once, on the one open alert.
        assert books[0].note("laptop-1", "disk", "The fix ran.") is True
        assert books[0].note("laptop-9", "disk", "No alert.") is False
        assert [a.note for a in books[2].pending() if a.kind is Action.NOTE] == ["The fix ran."]
    finally:
        for book in books:
            book.close()


def test_concurrent_alert_delivery_on_every_store(database: DeviceDatabase) -> None:
    """relay.alert_delivery on either store's connection: nodes opening the book at once
    upgrade it once (a new action is still a first attempt, which does not search);
    alerts go at once; an answer lost on the way back is retried with a search and
    makes nothing twice."""
    database.connect().close()  # the tables made; the books' upgrade is what races
    opened = Racer(lambda: AlertBook(database), 4).race(lambda node: node.pending())
    assert opened == [[], [], [], []], opened
    book = AlertBook(database)
    try:
        with RequestTrackerStandIn() as stand_in:
            for device in ("desk-1", "desk-2", "desk-3"):
                for reported_at in (100, 200):
                    book.observe(failure(device, reported_at))
            assert [a.first_attempt for a in book.pending()] == [True, True, True]
            stand_in.lose_answers = 1
            desk = RequestTrackerAlerts(stand_in.url, token="t", timeout=scaled(30))
            assert deliver(book, desk, workers=3) == 2
            (retry,) = book.pending()
            assert not retry.first_attempt
            assert deliver(book, desk) == 1
            assert len(stand_in.tickets) == 3 and stand_in.count("search") == 1
            assert book.ticket(retry.alert_id) is not None
    finally:
        book.close()


class _LeaseBook:
    def __init__(self, database: DeviceDatabase, holder: str) -> None:
        self._db = database.connect()
        self.lease = Lease(self._db, "alert-delivery", holder)

    def close(self) -> None:
        self._db.close()


def test_the_delivery_lease_has_one_holder_and_passes_on_when_it_lapses(
    database: DeviceDatabase,
) -> None:
    now = 1000.0
    names = iter(["node-a", "node-b"])
    lock = threading.Lock()

    def open_book() -> _LeaseBook:
        with lock:
            return _LeaseBook(database, next(names))

    taken = Racer(open_book, 2).race(lambda node: (node.lease.holder, node.lease.take(now, 10)))
    winners = [t[0] for t in taken if isinstance(t, tuple) and t[1]]
    assert len(winners) == 1, taken
    first_db, second_db = database.connect(), database.connect()
    try:
        first = Lease(first_db, "alert-delivery", "node-a")
        second = Lease(second_db, "alert-delivery", "node-b")
        holder, waiting = (first, second) if winners[0] == "node-a" else (second, first)
        assert holder.take(now + 5, 10)  # renewed while alive
        assert not waiting.take(now + 12, 10)  # not lapsed: renewed until now + 15
        assert waiting.holder_now(now + 12) == holder.holder
        assert waiting.take(now + 15, 10)  # lapsed: the other node takes over
        assert not holder.take(now + 16, 10)
        waiting.release()  # a clean stop frees it at once
        assert holder.take(now + 17, 10)
    finally:
        first_db.close()
        second_db.close()


def test_presence_and_sealed_details_are_written_in_one_pass(database: DeviceDatabase) -> None:
    import asyncio

    book = EnrolmentBook(database)
    alerts = AlertBook(database)
    reader = database.connect()
    try:
        token, _ = book.create_token(time.time(), 5, 1)
        device = book.redeem(token, device_key(), time.time())
        presence = PresenceBook(database, clock=lambda: 5000.0)
        presence.arrived(device.device_id)
        presence.sealed(device.device_id, "disk", 4990, "failing", "c2VhbGVk")
        presence.sealed(device.device_id, "memory", 4990, "ok", "b2s=")
        asyncio.run(presence.flush())
        [listed] = book.devices()
        assert listed.online and listed.last_seen == 5000.0
        assert [(d.check, d.sealed) for d in stored_details(reader, device.device_id)] == [
            ("disk", "c2VhbGVk"),
            ("memory", "b2s="),
        ]
        presence.sealed(device.device_id, "disk", 4000, "ok", "b2xkZXI=")  # an older run
        asyncio.run(presence.flush())
        assert stored_details(reader, device.device_id)[0].sealed == "c2VhbGVk"
        for reported_at in (1, 2):
            alerts.observe(failure(device.device_id, reported_at))
        assert open_tickets(reader, device.device_id) == {}  # no ticket made yet
        presence.forgotten(device.device_id)
        assert book.forget(device.device_id)
        asyncio.run(presence.flush())
        assert stored_details(reader, device.device_id) == []
    finally:
        reader.close()
        alerts.close()
        book.close()


def test_the_operator_commands_run_on_postgresql(
    postgres_server: PostgresServer,  # noqa: F811
) -> None:
    url = postgres_server.new_database(f"puente_devices_{next(_databases)}")
    created = relay_cli(
        "enrolment", "create", "--uses", "2", "--valid-days", "1", "--database-url", url
    )
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip().splitlines()[-1]
    book = EnrolmentBook(DeviceDatabase(url=url))
    try:
        device = book.redeem(token, device_key(), time.time())
    finally:
        book.close()
    listing = relay_cli("enrolment", "list", "--json", "--database-url", url)
    assert listing.returncode == 0, listing.stderr
    assert '"uses": 1' in listing.stdout and '"uses_allowed": 2' in listing.stdout
    devices = relay_cli("devices", "--database-url", url)
    assert devices.returncode == 0, devices.stderr
    assert f"{device.device_id}  offline  no open alerts" in devices.stdout
    wrong = relay_cli("enrolment", "list", "--database-url", "mysql://nope")
    assert wrong.returncode != 0 and "must be a PostgreSQL URL" in wrong.stderr


def test_a_results_message_writes_only_what_changes(database: DeviceDatabase) -> None:
    """``observe_results``: passing results of clear pairs change nothing and write
    nothing; a failure counts, and a pass after it clears the count (it is written)."""
    books = AlertBook(database), AlertBook(database)
    reader = database.connect()

    def rows() -> list[tuple[str, str, int]]:
        return [
            (str(r[0]), str(r[1]), int(r[2]))
            for r in reader.execute(
                "SELECT check_id, state, failures FROM alert_pairs ORDER BY check_id"
            ).fetchall()
        ]

    def message(at: int, **statuses: str) -> list[Observation]:
        return [
            Observation("laptop-1", check, status, "warning", time.time(), 2, False, at)
            for check, status in statuses.items()
        ]

    try:
        steps = books[0].observe_results(message(1, disk="ok", memory="ok"))
        assert [s.action for s in steps] == [Action.NONE, Action.NONE]
        assert rows() == []  # nothing to write
        books[0].observe_results(message(2, disk="failing", memory="ok"))
        assert rows() == [("disk", "failing", 1)]
        # The device redials another node, which sees its results next.
        books[1].observe_results(message(3, disk="ok", memory="ok"))
        assert rows() == [("disk", "clear", 0)]
        books[1].observe_results(message(4, disk="failing"))
        [opened] = books[0].observe_results(message(5, disk="failing"))
        assert opened.action is Action.OPEN
    finally:
        reader.close()
        for book in books:
            book.close()


def test_a_device_is_owed_the_newest_of_each_publication_in_order(
    database: DeviceDatabase, tmp_path: Path
) -> None:
    """relay.device_updates, rule "owed": the newest policy and the newest bundle of
    each fix above what the device answered, in number order, in messages of the
    usual size (a bundle too big for one alone)."""
    from protocol.fixbundle import make_bundle
    from protocol.identity import OrganisationSecret
    from relay.device_updates import UpdateBook
    from tests.support.device_fixtures import FREE_SPACE_MANIFEST

    secret = OrganisationSecret("Acme IT", Ed25519PrivateKey.generate())

    def bundle(fix_id: str, padding: int) -> bytes:
        manifest = FREE_SPACE_MANIFEST.format(target="/tmp/x").replace("free-space", fix_id)
        script = "#!/bin/sh\n" + "# padding\n" * (padding // 10) + "true\n"
        now = int(time.time())
        return make_bundle(manifest.encode(), script.encode(), signer=secret,
                           signed_at=now, expires_at=now + 3600)  # fmt: skip

    def policy(number: int) -> bytes:
        source = f"number = {number}\n" + '[[checks]]\nid = "r"\nkind = "pending_reboot"\n'
        from protocol.device_policy import policy_from_toml, sign_policy

        return sign_policy(policy_from_toml(source, "Acme IT", secret.key_id), secret)

    enrolment, updates = EnrolmentBook(database), UpdateBook(database)
    try:
        token, record = enrolment.create_token(time.time(), 2, 1)
        device = enrolment.redeem(token, device_key(), time.time()).device_id
        other_token, _ = enrolment.create_token(time.time(), 1, 1)
        other = enrolment.redeem(other_token, device_key(), time.time()).device_id
        assert updates.owed(device) == []
        updates.publish([record.token_id], 1.0, policy(2), [("a", bundle("fix-a", 100))])
        updates.publish([record.token_id], 2.0, policy(3))  # the newer policy wins
        [first] = updates.owed(device)
        assert first.policy is not None and b'"number":3' in first.policy.replace(" ", "").encode()
        assert len(first.fixes) == 1 and first.id == max(p.id for p in updates.publications())
        assert updates.owed(other) == []  # another token's device is owed nothing
        updates.answered(device, first.id, first.policy)
        assert updates.owed(device) == []
        runs = enrolment.device(device).policy  # type: ignore[union-attr]
        assert runs == first.policy
        # Two bundles of 40 KB and one of 100 KB: three messages, numbered in order.
        updates.publish(
            [record.token_id], 3.0, None,
            [("b", bundle("fix-b", 40_000)), ("c", bundle("fix-c", 40_000)),
             ("d", bundle("fix-d", 100_000))],
        )  # fmt: skip
        owed = updates.owed(device)
        assert [len(u.fixes) for u in owed] == [1, 1, 1]
        assert [u.id for u in owed] == sorted(u.id for u in owed)
        assert all(u.policy is None for u in owed)
        updates.answered(device, owed[0].id, None)  # the link dropped after the first
        assert [u.id for u in updates.owed(device)] == [u.id for u in owed[1:]]
    finally:
        enrolment.close()
        updates.close()
