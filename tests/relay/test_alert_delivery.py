"""Alert tickets delivered several alerts at once (relay/alert_delivery.py), against an
RT stand-in on loopback that keeps what it is given and writes down when each call
started and ended (tests/support/rt_doubles.py): calls of different alerts overlap, one
alert's calls never do and keep their order, a first attempt does not search, a lost
answer is found again instead of made twice, and a relay process killed with calls in
flight loses and duplicates nothing once it runs again.

Nothing here times anything: concurrency shows in the stand-in's record (calls that
were in flight together, an order of starts and ends), not in seconds."""

from __future__ import annotations

import os
import signal
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from relay.alert_book import AlertBook, RequestTrackerAlerts
from relay.alert_delivery import AlertDelivery, deliver
from relay.alerts import Action, Observation
from relay.device_sql import _SQLITE_SCHEMA as _SCHEMA
from relay.sqlite_store import DATABASE_NAME
from tests.support.helpdesk import wait_until
from tests.support.relay import start_relay
from tests.support.rt_doubles import RequestTrackerStandIn
from tests.support.timeouts import scaled

HOUR = 3600.0


def fail(book: AlertBook, device: str, at: float, times: int = 1) -> None:
    for n in range(times):
        book.observe(Observation(device, "disk-system", "failing", "critical", at + n, 3))


def open_alerts(book: AlertBook, devices: list[str]) -> None:
    """One OPEN owed per device."""
    for device in devices:
        fail(book, device, 0.0, times=3)


def whole_lives(book: AlertBook, devices: list[str]) -> None:
    """Per device: OPEN, a failure action's NOTE, a COMMENT an hour on, RESOLVE; all
    owed before anything is delivered."""
    open_alerts(book, devices)
    for device in devices:
        assert book.note(device, "disk-system", "The fix free-space ran by itself.")
        fail(book, device, HOUR + 10)
        book.observe(Observation(device, "disk-system", "ok", "critical", HOUR + 20, 3))
    kinds = [a.kind for a in book.pending() if a.device == devices[0]]
    assert kinds == [Action.OPEN, Action.NOTE, Action.COMMENT, Action.RESOLVE]


@pytest.fixture
def stand_in() -> Iterator[RequestTrackerStandIn]:
    with RequestTrackerStandIn() as server:
        yield server


def desk_for(stand_in: RequestTrackerStandIn) -> RequestTrackerAlerts:
    return RequestTrackerAlerts(stand_in.url, token="t", timeout=scaled(30))


def test_different_alerts_are_delivered_at_once_and_first_attempts_do_not_search(
    stand_in: RequestTrackerStandIn, tmp_path: Path
) -> None:
    book = AlertBook(tmp_path / "relay.db")
    devices = [f"laptop-{n}" for n in range(4)]
    open_alerts(book, devices)
    # The stand-in answers no call before four are in flight together: delivered one
    # at a time, the first would wait for the other three and be refused.
    stand_in.gather = 4
    delivery = AlertDelivery(desk_for(stand_in), workers=4)
    assert delivery.deliver(book) == 4
    assert stand_in.most_in_flight == 4 == delivery.most_in_flight
    creations = [c for c in stand_in.calls if c.what == "create"]
    assert len(creations) == 4
    # All four started before the first ended: together they took one call's time.
    assert max(c.started for c in creations) < min(c.ended for c in creations)
    assert stand_in.count("search") == 0  # a first attempt cannot have made a ticket
    for device in devices:
        (ticket,) = stand_in.tickets_named(f"{device}: check disk-system is failing")
        assert book.ticket(book.state(device, "disk-system").alert_id or "") == str(ticket.id)
    assert book.pending() == []
    book.close()


def test_one_alerts_actions_keep_their_order_while_alerts_overlap(
    stand_in: RequestTrackerStandIn, tmp_path: Path
) -> None:
    book = AlertBook(tmp_path / "relay.db")
    devices = [f"server-{n}" for n in range(6)]
    whole_lives(book, devices)
    stand_in.jitter = 0.03  # calls end in a shuffled order
    stand_in.gather = 3
    delivery = AlertDelivery(desk_for(stand_in), workers=8)
    assert delivery.deliver(book) == 24
    assert stand_in.most_in_flight >= 3
    for device in devices:
        (ticket,) = stand_in.tickets_named(device)
        calls = stand_in.calls_about(ticket.id)
        # Opened, noted, commented, then the resolution's comment and its status.
        assert [c.what for c in calls] == ["create", "comment", "comment", "comment", "resolve"]
        # Never two of one alert's calls in flight: each starts after the last ended.
        assert all(a.ended < b.started for a, b in zip(calls, calls[1:], strict=False))
        assert [s.split(": ", 1)[1] for s in ticket.comments] == [
            "failure action for check disk-system",
            "check disk-system still failing",
            "check disk-system passes again",
        ]
        assert ticket.status == "resolved"
    assert stand_in.count("search") == stand_in.count("comment-search") == 0
    assert book.pending() == []
    book.close()


def test_a_failed_action_holds_back_only_its_own_alert(
    stand_in: RequestTrackerStandIn, tmp_path: Path
) -> None:
    book = AlertBook(tmp_path / "relay.db")
    devices = ["laptop-ok-1", "laptop-down", "laptop-ok-2"]
    whole_lives(book, devices)
    stand_in.refuse_subjects = {"laptop-down"}
    desk = desk_for(stand_in)
    assert deliver(book, desk, workers=3) == 8  # the other two alerts, whole
    left = book.pending()
    assert {a.device for a in left} == {"laptop-down"}
    assert [a.kind for a in left] == [Action.OPEN, Action.NOTE, Action.COMMENT, Action.RESOLVE]
    assert [a.attempts for a in left] == [1, 0, 0, 0]  # its later actions were not tried
    assert stand_in.tickets_named("laptop-down") == []

    stand_in.refuse_subjects = set()  # RT takes it again: the next pass catches up
    assert deliver(book, desk, workers=3) == 4
    (ticket,) = stand_in.tickets_named("laptop-down")
    assert ticket.status == "resolved" and len(ticket.comments) == 3
    # The retried creation searched first (its first attempt was refused, so nothing
    # was there); its comments were first attempts and did not search.
    assert stand_in.count("search") == 1 and stand_in.count("comment-search") == 0
    book.close()


def test_a_creation_whose_answer_was_lost_is_found_not_made_again(
    stand_in: RequestTrackerStandIn, tmp_path: Path
) -> None:
    book = AlertBook(tmp_path / "relay.db")
    devices = [f"laptop-{n}" for n in range(5)]
    open_alerts(book, devices)
    stand_in.lose_answers = 2  # RT makes two tickets, their answers never come back
    desk = desk_for(stand_in)
    assert deliver(book, desk, workers=5) == 3
    assert len(stand_in.tickets) == 5
    assert deliver(book, desk, workers=5) == 2
    assert stand_in.count("search") == 2  # only the two retries searched
    assert len(stand_in.tickets) == 5  # and found theirs
    for device in devices:
        (ticket,) = stand_in.tickets_named(device)
        assert book.ticket(book.state(device, "disk-system").alert_id or "") == str(ticket.id)
    book.close()


def test_the_running_delivery_retries_a_failed_alert_and_takes_new_ones_when_poked(
    stand_in: RequestTrackerStandIn, tmp_path: Path
) -> None:
    path = tmp_path / "relay.db"
    writer = AlertBook(path)  # the relay's event loop side, writing alerts
    open_alerts(writer, ["laptop-down"])
    stand_in.refuse_subjects = {"laptop-down"}
    delivery = AlertDelivery(desk_for(stand_in), workers=2, retry_after=scaled(0.5))
    stop = threading.Event()

    def owner() -> None:
        book = AlertBook(path)
        try:
            delivery.run(book, stop, idle=scaled(60))
        finally:
            book.close()

    thread = threading.Thread(target=owner)
    thread.start()
    try:
        wait_until(lambda: stand_in.count("refused") >= 1, 10, "the first, refused creation")
        open_alerts(writer, ["laptop-new"])
        delivery.poke()  # as DeviceDesk does after writing an alert; idle is a minute
        wait_until(lambda: stand_in.tickets_named("laptop-new"), 10, "the new alert's ticket")
        stand_in.refuse_subjects = set()
        wait_until(lambda: stand_in.tickets_named("laptop-down"), 10, "the retried ticket")
        wait_until(lambda: writer.pending() == [], 10, "nothing owed")
    finally:
        stop.set()
        delivery.poke()
        thread.join(scaled(10))
    assert not thread.is_alive()
    assert len(stand_in.tickets) == 2
    writer.close()


def test_an_older_relays_undelivered_actions_search_before_making_anything(
    tmp_path: Path,
) -> None:
    """A relay from before attempts were counted first may have died mid-call leaving
    attempts at 0: its undelivered actions are taken as tried, once."""
    path = tmp_path / "relay.db"
    older = _SCHEMA.split("CREATE TABLE IF NOT EXISTS alert_book_upgrades")[0]
    with sqlite3.connect(path) as db:
        db.executescript(older)
        db.execute(
            "INSERT INTO alert_actions (alert_id, kind, device, check_id, severity, failures, "
            "repeats, at) VALUES ('al_1', 'open', 'laptop-7', 'disk-system', 'critical', 3, 0, 0)"
        )
    db.close()
    book = AlertBook(path)
    (inherited,) = book.pending()
    assert not inherited.first_attempt
    book.close()
    book = AlertBook(path)  # upgraded once: a new action is a first attempt again
    open_alerts(book, ["laptop-8"])
    assert [a.first_attempt for a in book.pending()] == [False, True]
    book.close()


def test_a_relay_killed_with_calls_in_flight_loses_and_duplicates_nothing(
    stand_in: RequestTrackerStandIn, tmp_path: Path
) -> None:
    """A real relay process delivers what a previous run owed; it is killed (SIGKILL)
    while RT has made four tickets and comments whose answers it never got; started
    again, it delivers everything exactly once."""
    data = tmp_path / "data"
    data.mkdir()
    book = AlertBook(data / DATABASE_NAME)
    devices = [f"desk-{n}" for n in range(8)]
    whole_lives(book, devices)
    book.close()
    stand_in.hold_answers.set()  # RT does the work, the relay waits for answers
    args = ("--rt-url", stand_in.url, "--delivery-workers", "4")
    env = {"PUENTE_RT_TOKEN": "t"}
    relay = start_relay(data, *args, env=env)
    try:
        wait_until(lambda: len(stand_in.tickets) == 4, 30, "four tickets made, unanswered")
        wait_until(lambda: stand_in.in_flight == 4, 10, "four calls in flight")
        os.kill(relay.proc.pid, signal.SIGKILL)
        relay.proc.wait(scaled(10))
    finally:
        relay.stop()
    stand_in.release()
    book = AlertBook(data / DATABASE_NAME)
    first_run = book.pending()
    assert len(first_run) == 32  # nothing was acknowledged...
    assert sum(a.attempts for a in first_run) == 4  # ...and four attempts were counted
    book.close()

    relay = start_relay(data, *args, env=env)
    try:
        book = AlertBook(data / DATABASE_NAME)
        wait_until(lambda: book.pending() == [], 60, "every owed action delivered")
        book.close()
    finally:
        relay.stop()
    assert len(stand_in.tickets) == 8  # one per alert: the four made before were found
    for device in devices:
        (ticket,) = stand_in.tickets_named(device)
        assert len(ticket.comments) == 3 and ticket.status == "resolved", ticket
    assert stand_in.count("search") == 4  # the four retried creations, and no other
