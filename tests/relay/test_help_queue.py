"""The help queue on a real SQLite store with a fake clock: filing, offers, accept,
decline, transfer, availability and capacity, refusals, and a restart (issue 17)."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocol.categories import Category, issue_category_list
from protocol.identity import OrganisationSecret
from relay.errors import QueueRefusal
from relay.help_records import RequestState
from relay.helpqueue import MAX_DESCRIPTION, OFFER_TIMEOUT, HelpQueue
from relay.outbox import Outbox
from relay.records import SessionState, Technician
from relay.routing import Availability
from relay.sqlite_store import SQLiteStore

ORG = OrganisationSecret("Example Org", Ed25519PrivateKey.generate())


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


class Desk:
    """A store, its outbox (no connectors: events land in the audit log) and a queue."""

    def __init__(self, directory: Path, clock: Clock) -> None:
        self.store = SQLiteStore(directory)
        self.clock = clock
        outbox = Outbox(self.store, (), clock, lambda: "http://relay.test")
        self.queue = HelpQueue(
            self.store,
            clock,
            outbox.request_event,
            lambda tech, ticket, now: self.store.create_session(tech, ticket, None, now, 600),
            lambda session_id, reason: self.store.finish_session(
                session_id, SessionState.ENDED, clock(), reason
            ),
        )

    def technician(self, name: str, skills: str, capacity: int = 1) -> Technician:
        technician, _ = self.store.add_technician(name, self.clock())
        self.store.set_profile(
            name, self.clock(), skills.split(","), capacity, Availability.AVAILABLE
        )
        self.clock.now += 1  # idle since different moments
        return technician

    def file(self, category: str = "printing", language: str = "es", ip: str = "10.0.0.1") -> str:
        filed = self.queue.file(
            ORG.key_id, "The printer prints blank pages", category, language, None, ip
        )
        self.clock.now += 1
        return filed.request.id

    def state(self, request_id: str) -> tuple[RequestState, str | None]:
        request = self.store.get_help_request(request_id)
        assert request is not None
        offered = {t.id: t.name for t in self.store.list_technicians()}.get(
            request.offered_to or ""
        )
        return request.state, offered

    def events(self, type_: str) -> list[str]:
        return [e.session_id for e in self.store.audit_entries() if e.type == type_]


@pytest.fixture
def desk(tmp_path: Path) -> Desk:
    made = Desk(tmp_path / "relay", Clock())
    categories = [Category("printing", "Printing"), Category("network", "Network")]
    made.store.set_categories(
        ORG.key_id, issue_category_list(ORG, 1, 0, categories).decode(), made.clock()
    )
    return made


def test_a_request_is_offered_to_the_matching_technician_and_opens_a_ticket(desk: Desk) -> None:
    desk.technician("Ana", "network,es")
    desk.technician("Bo", "printing,es")
    request_id = desk.file()
    assert desk.state(request_id) == (RequestState.OFFERED, "Bo")
    assert desk.events("request.created") == [request_id]


def test_accepting_creates_the_session_and_a_second_accept_is_refused(desk: Desk) -> None:
    bo = desk.technician("Bo", "printing,es")
    cy = desk.technician("Cy", "printing,es")
    request_id = desk.file()
    request, session = desk.queue.accept(bo, request_id)
    assert request.state is RequestState.ACCEPTED and session.technician_id == bo.id
    status = desk.queue.status(request)
    assert status["nameplate"] == session.nameplate and status["technician"] == "Bo"
    with pytest.raises(QueueRefusal, match="Another technician took this request") as caught:
        desk.queue.accept(cy, request_id)
    assert caught.value.code == "taken"


def test_a_stale_read_loses_the_race_with_a_clear_refusal(desk: Desk) -> None:
    bo = desk.technician("Bo", "printing,es")
    request_id = desk.file()
    stale = desk.store.get_help_request(request_id)
    assert stale is not None
    desk.queue.accept(bo, request_id)
    # What another relay node does with the version it read before: nothing changes.
    assert desk.store.change_help_request(request_id, stale.version, {"state": "waiting"}) is None


def test_decline_goes_to_the_next_technician(desk: Desk) -> None:
    ana = desk.technician("Ana", "printing,es")
    desk.technician("Bo", "printing,es")
    request_id = desk.file()
    assert desk.state(request_id) == (RequestState.OFFERED, "Ana")
    desk.queue.decline(ana, request_id)
    assert desk.state(request_id) == (RequestState.OFFERED, "Bo")


def test_an_offer_nobody_answers_moves_on(desk: Desk) -> None:
    desk.technician("Ana", "printing,es")
    desk.technician("Bo", "printing,es")
    request_id = desk.file()
    desk.clock.now += OFFER_TIMEOUT + 1
    desk.queue.dispatch()
    assert desk.state(request_id) == (RequestState.OFFERED, "Bo")


def test_capacity_and_availability(desk: Desk) -> None:
    bo = desk.technician("Bo", "printing,es", capacity=1)
    first, second = desk.file(), desk.file()
    assert desk.state(first) == (RequestState.OFFERED, "Bo")
    assert desk.state(second) == (RequestState.WAITING, None)  # Bo is at capacity
    profile = desk.store.get_profile(bo.id)
    assert profile is not None and profile.holding == 1
    _, session = desk.queue.accept(bo, first)
    desk.store.finish_session(session.id, SessionState.ENDED, desk.clock(), "done")
    desk.queue.set_availability(bo, Availability.AWAY)
    assert desk.state(second) == (RequestState.WAITING, None)  # away: nothing offered
    desk.queue.set_availability(bo, Availability.AVAILABLE)
    assert desk.state(second) == (RequestState.OFFERED, "Bo")


def test_transfer_with_a_note_to_a_technician(desk: Desk) -> None:
    bo = desk.technician("Bo", "printing,es", capacity=2)
    desk.technician("Ana", "network,en", capacity=2)
    request_id = desk.file()
    _, session = desk.queue.accept(bo, request_id)
    with pytest.raises(QueueRefusal, match="neither a technician nor a queue"):
        desk.queue.transfer(bo, request_id, "Nobody", "note")
    moved = desk.queue.transfer(bo, request_id, "Ana", "Needs the network team: DNS fails")
    assert moved.note == "Needs the network team: DNS fails"
    assert desk.state(request_id) == (RequestState.OFFERED, "Ana")
    ended = desk.store.get_session(session.id)
    assert ended is not None and ended.state is SessionState.ENDED
    assert desk.events("request.transferred") == [request_id]
    with pytest.raises(QueueRefusal, match="You have no help request"):
        desk.queue.transfer(bo, request_id, "Ana", "again")  # it is not Bo's any more


def test_transfer_to_a_queue(desk: Desk) -> None:
    bo = desk.technician("Bo", "printing,es", capacity=2)
    desk.technician("Ana", "network,en", capacity=2)
    request_id = desk.file()
    desk.queue.accept(bo, request_id)
    desk.queue.transfer(bo, request_id, "network", "Router is down")
    assert desk.state(request_id) == (RequestState.OFFERED, "Ana")


def test_bad_input_gets_a_sentence(desk: Desk) -> None:
    cases = [
        (None, "x", "printing", "no_pinned_key", "session code"),
        (ORG.key_id, "x", "plumbing", "unknown_category", "choose one of: printing, network"),
        (ORG.key_id, "x" * (MAX_DESCRIPTION + 1), "printing", "description_too_long", "keep it"),
        ("ab" * 32, "x", "printing", "unknown_organisation", "session code"),
    ]
    for key, text, category, code, words in cases:
        with pytest.raises(QueueRefusal) as caught:
            desk.queue.file(key, text, category, "es", None, "10.0.0.9")
        assert caught.value.code == code and words in caught.value.message


def test_a_flood_from_one_address_is_rate_limited(desk: Desk) -> None:
    for _ in range(5):
        desk.file(ip="10.0.0.7")
    with pytest.raises(QueueRefusal, match="Too many help requests from your address") as caught:
        desk.file(ip="10.0.0.7")
    assert caught.value.retry_after and caught.value.retry_after > 0
    desk.file(ip="10.0.0.8")  # another address is not held up


def test_withdrawal_is_recorded_for_the_ticket(desk: Desk) -> None:
    request_id = desk.file()
    request = desk.store.get_help_request(request_id)
    assert request is not None
    withdrawn = desk.queue.withdraw(request, "the customer closed the agent")
    assert withdrawn.state is RequestState.WITHDRAWN
    assert desk.events("request.withdrawn") == [request_id]


def test_the_queue_survives_a_restart(tmp_path: Path) -> None:
    clock = Clock()
    first = Desk(tmp_path / "relay", clock)
    first.store.set_categories(
        ORG.key_id,
        issue_category_list(ORG, 1, 0, [Category("printing", "Printing")]).decode(),
        clock(),
    )
    request_id = first.file()  # nobody to take it yet
    first.store.close()
    second = Desk(tmp_path / "relay", clock)
    assert second.state(request_id) == (RequestState.WAITING, None)
    status = second.queue.status(second.store.get_help_request(request_id))  # type: ignore[arg-type]
    assert status["position"] == 1
    second.technician("Bo", "printing,es")
    second.queue.dispatch()
    assert second.state(request_id) == (RequestState.OFFERED, "Bo")


def test_estimate_and_position_follow_the_queue(desk: Desk) -> None:
    desk.technician("Bo", "printing,es", capacity=1)
    first, second, third = desk.file(), desk.file(), desk.file()
    statuses = [
        desk.queue.status(desk.store.get_help_request(r))  # type: ignore[arg-type]
        for r in (first, second, third)
    ]
    assert [s["position"] for s in statuses] == [1, 1, 2]
    assert statuses[0]["estimated_wait_seconds"] == 0  # offered already
    assert statuses[1]["estimated_wait_seconds"] < statuses[2]["estimated_wait_seconds"]
