"""Alerts kept by the relay (relay/alert_book.py): state and owed actions in one real
SQLite file across restarts, delivered to a real Request Tracker 5 on loopback as one
ticket per alert, comments on repeats, and a comment and resolution on recovery.
A relay that stopped between RT's answer and its own note duplicates nothing."""

from __future__ import annotations

import sqlite3
import urllib.parse
from pathlib import Path

from relay.alert_book import AlertBook, RequestTrackerAlerts
from relay.alert_delivery import deliver
from relay.alerts import Action, AlertState, Observation
from relay.device_sql import _SQLITE_SCHEMA as _SCHEMA
from tests.support.helpdesk import RequestTracker
from tests.support.rt_doubles import AnswerLosingProxy

HOUR = 3600.0


def result(status: str, at: float, quiet: bool = False) -> Observation:
    return Observation("laptop-7", "disk-system", status, "critical", at, 3, quiet)


def test_state_and_owed_actions_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "relay.db"
    book = AlertBook(path)
    book.observe(result("failing", 0))
    book.observe(result("failing", 60))
    book.close()  # the relay stops between two results

    book = AlertBook(path)
    assert book.state("laptop-7", "disk-system").failures == 2
    assert book.observe(result("failing", 120)).action is Action.OPEN
    book.close()

    book = AlertBook(path)
    (owed,) = book.pending()
    assert owed.kind is Action.OPEN and owed.failures == 3 and owed.device == "laptop-7"
    assert book.state("laptop-7", "disk-system").state is AlertState.OPEN
    # Another device's same check is its own pair.
    other = Observation("server-1", "disk-system", "failing", "critical", 0, 1)
    assert book.observe(other).action is Action.OPEN
    assert len({a.alert_id for a in book.pending()}) == 2
    book.close()


def tickets_tagged(rt: RequestTracker, tag: str) -> list[int]:
    query = urllib.parse.quote(f"Subject LIKE '{tag}'")
    status, body = rt.rest("GET", f"/tickets?query={query}")
    assert status == 200, body
    return [int(item["id"]) for item in body["items"]]


def comment_subjects(rt: RequestTracker, ticket: int) -> list[str]:
    # RT folds long subject lines; a reader sees them as one line.
    return [" ".join(comment["subject"].split()) for comment in rt.comments(ticket)]


def test_one_ticket_per_alert_with_comments_and_resolution(
    request_tracker: RequestTracker, tmp_path: Path
) -> None:
    rt = request_tracker
    path = tmp_path / "relay.db"
    desk = RequestTrackerAlerts(rt.url, user=rt.user, password=rt.password)
    book = AlertBook(path)
    for minute in range(3):
        book.observe(result("failing", minute * 60.0))
    book.close()

    book = AlertBook(path)  # a restart before anything was delivered
    (opening,) = book.pending()
    # A relay that died after RT made the ticket but before noting it: it counted the
    # attempt before calling RT (relay.alert_delivery, rule 4), and the ticket exists...
    first = desk.open_ticket(book.begin_attempt(opening))
    book.close()
    book = AlertBook(path)
    # ...and the retry after the restart finds it instead of making a second one.
    assert deliver(book, desk) == 1
    assert tickets_tagged(rt, opening.alert_tag) == [int(first)]
    assert book.ticket(opening.alert_id) == first
    assert deliver(book, desk) == 0  # nothing owed twice

    # Repeats: the next failure within the hour is quiet, the one after an hour comments.
    assert book.observe(result("failing", 240)).action is Action.NONE
    assert book.observe(result("failing", 240 + HOUR)).action is Action.COMMENT
    (comment,) = book.pending()
    desk.comment(first, book.begin_attempt(comment))  # delivered, but the relay did not note it
    assert deliver(book, desk) == 1
    still = [s for s in comment_subjects(rt, int(first)) if s.startswith(comment.tag)]
    assert len(still) == 1 and "still failing" in still[0]

    # A maintenance window silences the repeats.
    assert book.observe(result("failing", 3 * HOUR, quiet=True)).action is Action.NONE
    assert book.pending() == []

    # Recovery: a comment and the ticket resolved; the pair is clear again.
    assert book.observe(result("ok", 4 * HOUR)).action is Action.RESOLVE
    assert deliver(book, desk) == 1
    status, ticket = rt.rest("GET", f"/ticket/{first}")
    assert status == 200 and ticket["Status"] == "resolved"
    assert any("passes again" in s for s in comment_subjects(rt, int(first)))
    assert book.state("laptop-7", "disk-system").state is AlertState.CLEAR

    # The next problem is a new alert with its own ticket.
    for minute in range(3):
        book.observe(result("failing", 5 * HOUR + minute * 60))
    (again,) = book.pending()
    assert again.alert_id != opening.alert_id
    assert deliver(book, desk) == 1
    assert book.ticket(again.alert_id) not in (None, first)
    book.close()


def test_an_unreachable_help_desk_keeps_the_actions_in_order(tmp_path: Path) -> None:
    book = AlertBook(tmp_path / "relay.db")
    for minute in range(3):
        book.observe(result("failing", minute * 60.0))
    book.observe(result("ok", 300))
    down = RequestTrackerAlerts("http://127.0.0.1:9", user="root", password="x")
    assert deliver(book, down) == 0
    assert [a.kind for a in book.pending()] == [Action.OPEN, Action.RESOLVE]
    book.close()


def test_a_failure_action_note_goes_on_the_alerts_ticket(
    request_tracker: RequestTracker, tmp_path: Path
) -> None:
    rt = request_tracker
    desk = RequestTrackerAlerts(rt.url, user=rt.user, password=rt.password)
    book = AlertBook(tmp_path / "relay.db")
    note = "The failure action free-space 1.0.0 for the check disk-system ran by itself."
    assert book.note("laptop-7", "disk-system", note) is False  # no alert: nothing owed
    for minute in range(3):
        book.observe(result("failing", minute * 60.0))
    assert book.note("laptop-7", "disk-system", note) is True
    assert [a.kind for a in book.pending()] == [Action.OPEN, Action.NOTE]
    book.close()

    book = AlertBook(tmp_path / "relay.db")  # owed across a restart, in order
    assert deliver(book, RequestTrackerAlerts("http://127.0.0.1:9", user="x", password="x")) == 0
    assert deliver(book, desk) == 2
    ticket = int(str(book.ticket(book.state("laptop-7", "disk-system").alert_id or "")))
    (subject,) = [s for s in comment_subjects(rt, ticket) if "failure action" in s]
    assert "laptop-7: failure action for check disk-system" in subject
    assert any(note in c["text"] for c in rt.comments(ticket)), rt.comments(ticket)
    assert deliver(book, desk) == 0
    book.close()


def test_a_book_made_before_failure_actions_gains_the_note_column(tmp_path: Path) -> None:
    path = tmp_path / "relay.db"
    old = sqlite3.connect(path)
    old.executescript(
        _SCHEMA.replace("    last_error TEXT,\n    note TEXT\n", "    last_error TEXT\n")
    )
    old.close()
    book = AlertBook(path)
    for minute in range(3):
        book.observe(result("failing", minute * 60.0))
    assert book.note("laptop-7", "disk-system", "noted") is True
    assert book.pending()[-1].note == "noted"
    book.close()


def test_open_alerts_in_full_for_technicians(tmp_path: Path) -> None:
    """What ``GET /api/devices`` lists of each open alert: check, severity, since when
    (the opening action), and the ticket once the help desk made one."""
    path = tmp_path / "relay.db"
    book = AlertBook(path)
    for minute in range(3):
        book.observe(result("failing", minute * 60.0))
    (opened,) = book.pending()
    assert book.open_alert_details() == {
        "laptop-7": [
            {"check": "disk-system", "severity": "critical", "since": opened.at, "ticket": None}
        ]
    }
    with sqlite3.connect(path) as db:  # what a delivery records
        db.execute("INSERT INTO alert_tickets VALUES (?, ?)", (opened.alert_id, "42"))
    [alert] = book.open_alert_details()["laptop-7"]
    assert alert["ticket"] == "42"
    book.observe(result("ok", 300))  # recovered: no longer open
    assert book.open_alert_details() == {}
    book.close()


def test_a_ticket_whose_answer_was_lost_is_not_made_twice_in_request_tracker(
    request_tracker: RequestTracker, tmp_path: Path
) -> None:
    """The first creation skips RT's search (nothing can be there yet); RT makes the
    ticket but its answer is lost on the way back (a proxy drops the connection); the
    retry searches, finds it, and makes no second one."""
    rt = request_tracker
    book = AlertBook(tmp_path / "relay.db")
    for minute in range(3):
        book.observe(result("failing", minute * 60.0))
    (opening,) = book.pending()
    with AnswerLosingProxy(rt.url, lose_answers=1) as proxy:
        desk = RequestTrackerAlerts(proxy.url, user=rt.user, password=rt.password)
        assert deliver(book, desk) == 0
        assert proxy.lost == 1
        (made,) = tickets_tagged(rt, opening.alert_tag)  # RT has it; the relay does not know
        assert book.ticket(opening.alert_id) is None
        (retry,) = book.pending()
        assert not retry.first_attempt
        assert deliver(book, desk) == 1
    assert tickets_tagged(rt, opening.alert_tag) == [made]
    assert book.ticket(opening.alert_id) == str(made)
    book.close()
