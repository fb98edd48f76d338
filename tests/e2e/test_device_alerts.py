"""Alerts to tickets end to end with the live agent (issue 18, acceptance 2), on loopback:
a real relay process filing in a real Request Tracker, a real agent enrolled with
``--no-service`` (the test supervises it), a disk check every 5 s on a 2 MiB tmpfs the
test fills, ``failures_before_alert = 2`` and repeat comments at most every 10 s (the
policy's ``every_seconds`` and ``repeat_comment_seconds``, so the test takes seconds,
not hours).

- No ticket after one failure; exactly one after two; a comment on a repeat; a relay
  restart on the same data folder and port while the check keeps failing loses nothing
  and duplicates nothing (one ticket, every owed comment delivered once); freeing the
  space comments and resolves.
- A maintenance window covering now silences the failing check (no ticket inside it),
  and the problem that outlives the window opens its ticket after it.

What the relay decided is read from its own SQLite file (read-only), to say "none
before" at the moment the first failure was counted, not after a sleep.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from relay.sqlite_store import DATABASE_NAME
from tests.e2e.test_enrolled_device import devices, tickets_about
from tests.support.device_fixtures import (
    MiB,
    agent_command,
    enrol_argv,
    enrol_in_foreground,
    enrolment_token,
    relay_with_rt,
    signed_policy,
)
from tests.support.helpdesk import RequestTracker, wait_until
from tests.support.relay import RelayProcess
from tests.support.trust_fixtures import make_organisation

#: The subject words of this check's alert ticket.
FAILING = "check small-disk is failing"

CHECK = """\
[[checks]]
id = "small-disk"
kind = "disk_free"
path = "{path}"
min_free_percent = 40
severity = "critical"
every_seconds = 5
failures_before_alert = 2
"""


def pair(relay: RelayProcess) -> tuple[str, int] | None:
    """The relay's state and failure count for the small-disk check, if it has one."""
    with _read_only(relay) as db:
        row = db.execute(
            "SELECT state, failures FROM alert_pairs WHERE check_id = 'small-disk'"
        ).fetchone()
    return None if row is None else (str(row[0]), int(row[1]))


def actions(relay: RelayProcess) -> list[tuple[str, str, float | None]]:
    """Every ticket action the relay owed: (kind, alert, delivered at), oldest first."""
    with _read_only(relay) as db:
        rows = db.execute("SELECT kind, alert_id, delivered_at FROM alert_actions ORDER BY id")
        return [(str(r[0]), str(r[1]), r[2]) for r in rows]


class _read_only:
    def __init__(self, relay: RelayProcess) -> None:
        path = relay.data_dir / DATABASE_NAME
        self._db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)

    def __enter__(self) -> sqlite3.Connection:
        return self._db

    def __exit__(self, *exc: object) -> None:
        self._db.close()


def ticket_status(rt: RequestTracker, ticket: int) -> str:
    status, body = rt.rest("GET", f"/ticket/{ticket}")
    assert status == 200, body
    return str(body["Status"])


def new_tickets(rt: RequestTracker, before: list[int]) -> list[int]:
    """This check's alert tickets made since ``before`` (the module shares one RT)."""
    return [ticket for ticket in tickets_about(rt, FAILING) if ticket not in before]


def comment_subjects(rt: RequestTracker, ticket: int) -> list[str]:
    return [c["subject"] for c in rt.comments(ticket)]


@pytest.fixture
def acme_device(
    small_disk: Path, request_tracker: RequestTracker, tmp_path: Path
) -> Iterator[dict[str, Any]]:
    """What the tests share: the organisation, a relay with RT, the device's folder; the
    agent and relay they start are stopped here whatever happens."""
    acme = make_organisation(tmp_path / "org", "Acme IT")
    world: dict[str, Any] = {
        "acme": acme,
        "relay": relay_with_rt(tmp_path / "relay", request_tracker),
        "state": tmp_path / "device-state",
        "agent": None,
    }
    try:
        yield world
    finally:
        if world["agent"] is not None:
            world["agent"].kill()
            world["agent"].communicate()
        world["relay"].stop()
        if world["state"].exists():
            agent_command("unenrol", "--state-dir", str(world["state"]))


def enrol_failing_device(world: dict[str, Any], small_disk: Path, policy: str) -> None:
    """Fill the disk to 25 % free, then enrol the agent in the foreground with ``policy``."""
    signed = signed_policy(world["acme"], world["state"].parent, policy)
    relay = world["relay"]
    token = enrolment_token(
        relay.data_dir, "--uses", "1", "--valid-days", "1", "--policy", str(signed)
    )
    (small_disk / "big.bin").write_bytes(b"\0" * (MiB + MiB // 2))
    argv = enrol_argv(relay.ws_url, world["acme"].public, world["state"], "--no-service", "--yes")
    world["agent"], _ = enrol_in_foreground(argv, token)


def test_n_failures_one_ticket_repeat_comment_restart_and_resolution(
    small_disk: Path, request_tracker: RequestTracker, acme_device: dict[str, Any]
) -> None:
    rt = request_tracker
    before = tickets_about(rt, FAILING)
    enrol_failing_device(
        acme_device,
        small_disk,
        "repeat_comment_seconds = 10\n" + CHECK.format(path=small_disk),
    )
    relay: RelayProcess = acme_device["relay"]

    # One failure counted: no alert, nothing owed, no ticket.
    wait_until(lambda: pair(relay) is not None, 30, "the first failing result at the relay")
    assert pair(relay) == ("failing", 1)
    assert actions(relay) == []
    assert new_tickets(rt, before) == []

    # The second opens exactly one ticket.
    wait_until(lambda: len(new_tickets(rt, before)) == 1, 30, "the ticket", 0.5)
    (ticket,) = new_tickets(rt, before)
    assert ticket_status(rt, ticket) in ("new", "open")

    # A repeat comments (the policy allows one every 10 s).
    wait_until(lambda: len(rt.comments(ticket)) >= 1, 40, "a comment on a repeat", 0.5)
    assert "still failing" in rt.comments(ticket)[0]["text"]

    # The relay stops and starts on the same data folder and port while the check keeps
    # failing; the device redials and sends its last results again.
    port = relay.port
    relay.stop()
    owed_before = actions(relay)
    time.sleep(3)  # the device sees the relay gone and backs off
    relay = acme_device["relay"] = relay_with_rt(relay.data_dir, rt, "--port", str(port))
    wait_until(
        lambda: [d["online"] for d in devices(relay.data_dir)] == [True],
        30,
        "the device back online",
        0.5,
    )
    # Failures keep coming after the restart: another comment, on the same ticket.
    wait_until(
        lambda: (
            len(actions(relay)) > len(owed_before)
            and all(done is not None for _, _, done in actions(relay))
        ),
        40,
        "a comment owed and delivered after the restart",
        0.5,
    )

    # Nothing lost: every action owed before the restart is still there, delivered.
    owed = actions(relay)
    assert [row[:2] for row in owed[: len(owed_before)]] == [row[:2] for row in owed_before]
    assert all(done is not None for _, _, done in owed)
    assert len({alert for _, alert, _ in owed}) == 1  # one alert throughout
    # Nothing duplicated: one ticket, one comment per comment owed, each with its own tag.
    assert new_tickets(rt, before) == [ticket]
    subjects = comment_subjects(rt, ticket)
    assert len(subjects) == sum(kind == "comment" for kind, _, _ in owed)
    assert len(set(subjects)) == len(subjects)

    # Space freed: the next result comments and resolves.
    (small_disk / "big.bin").unlink()
    wait_until(lambda: ticket_status(rt, ticket) == "resolved", 30, "the ticket resolved", 0.5)
    assert "passes again" in rt.comments(ticket)[-1]["text"]
    assert pair(relay) == ("clear", 0)
    time.sleep(6)  # another passing result: nothing more happens
    assert new_tickets(rt, before) == [ticket]
    assert ticket_status(rt, ticket) == "resolved"
    assert sum("passes again" in c["text"] for c in rt.comments(ticket)) == 1
    assert [d["open_alerts"] for d in devices(relay.data_dir)] == [[]]


def test_a_maintenance_window_silences_the_alert_until_it_ends(
    small_disk: Path, request_tracker: RequestTracker, acme_device: dict[str, Any]
) -> None:
    rt = request_tracker
    before = tickets_about(rt, FAILING)
    # A one-minute window (the shortest a policy has) over now, with at least 35 s left.
    now = datetime.now(UTC)
    if now.second > 25:
        time.sleep(60.5 - now.second - now.microsecond / 1e6)
        now = datetime.now(UTC)
    day = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")[now.weekday()]
    window_ends = now.replace(second=0, microsecond=0).timestamp() + 60
    enrol_failing_device(
        acme_device,
        small_disk,
        f'[[maintenance]]\ndays = ["{day}"]\nstart = "{now:%H:%M}"\nminutes = 1\n'
        + CHECK.format(path=small_disk),
    )
    relay: RelayProcess = acme_device["relay"]

    # Inside the window the failures are counted past the threshold, and nothing speaks.
    wait_until(lambda: (pair(relay) or ("", 0))[1] >= 3, 30, "three failures counted in the window")
    assert time.time() < window_ends, "the machine is too slow for a one-minute window"
    assert pair(relay)[0] == "failing"  # type: ignore[index]
    assert actions(relay) == []
    assert new_tickets(rt, before) == []
    assert [d["open_alerts"] for d in devices(relay.data_dir)] == [[]]

    # The problem outlives the window: its ticket opens at the first failure after it.
    wait_until(lambda: len(new_tickets(rt, before)) == 1, 60, "the ticket after the window", 0.5)
    assert time.time() >= window_ends
    assert [kind for kind, _, _ in actions(relay)] == ["open"]
