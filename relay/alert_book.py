"""The relay's durable alerts: each device and check's state and the ticket actions owed.

:meth:`AlertBook.observe` applies :func:`relay.alerts.step` and writes, in one
transaction, the pair's new state and the action it produced (open, comment,
resolve) into ``alert_actions``: the transactional-outbox pattern of
:mod:`relay.outbox`, so a relay killed at any point loses no action and a restart
finds every undelivered one. The tables are the relay's SQLite file or the PostgreSQL
database relay nodes share (:mod:`relay.device_sql`): the pair's row is locked before
its state is read, so two nodes seeing results of one device never open two alerts,
and one node at a time delivers (the lease of :class:`relay.device_sql.Lease`).

:mod:`relay.alert_delivery` hands the pending actions, oldest first, to a
:class:`Ticketing` help desk, several alerts at once.
An alert's actions go in order: a comment waits for its ticket to exist. Delivery is at
least once, so the help desk side is idempotent: the ticket's subject and every
comment's subject carry a tag, and an action whose earlier attempt may have reached the
help desk first looks for it (:class:`RequestTrackerAlerts`), so nothing is duplicated
either. Each attempt is counted before its call starts, so "may have reached" survives
any crash, and a first attempt (nothing can be there yet) skips the search.

Only the alert's metadata is here: which device, which check, which severity, how many
failures. What the check found stays on the device (and with the organisation).
"""

from __future__ import annotations

import abc
import json
import secrets
import time
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .alerts import (
    REPEAT_INTERVAL,
    Action,
    AlertState,
    Event,
    Observation,
    PairState,
    Step,
    step,
)
from .connectors import RequestTrackerConnector
from .device_sql import DeviceConnection, DeviceDatabase
from .errors import DeliveryError
from .events import rt_event_tag

#: Since this upgrade ``alert_actions.attempts`` counts attempts begun (written before
#: the help desk is called), where it used to count attempts finished.
_ATTEMPTS_BEGUN = "attempts-counted-when-begun"


@dataclass(frozen=True)
class AlertAction:
    """One action owed to the help desk."""

    id: int
    alert_id: str
    kind: Action
    device: str
    check: str
    severity: str
    failures: int
    repeats: int
    at: float
    note: str | None = None
    #: Attempts begun before this one. 0: nothing of this action can be at the help
    #: desk yet, so it need not look for an earlier attempt's ticket or comment.
    attempts: int = 0

    @property
    def first_attempt(self) -> bool:
        return self.attempts == 0

    @property
    def tag_id(self) -> str:
        return f"{self.alert_id}-{self.id}"

    @property
    def tag(self) -> str:
        """What the help desk's subject carries to find this action again. It opens the
        subject: RT folds long subject lines, and a fold inside the tag hides it from
        searches."""
        return rt_event_tag(self.tag_id)

    @property
    def alert_tag(self) -> str:
        return rt_event_tag(self.alert_id)

    def subject(self) -> str:
        if self.kind is Action.OPEN:
            return (
                f"{self.alert_tag} {self.device}: check {self.check} is failing ({self.severity})"
            )
        if self.kind is Action.COMMENT:
            return f"{self.tag} {self.device}: check {self.check} still failing"
        if self.kind is Action.NOTE:
            return f"{self.tag} {self.device}: failure action for check {self.check}"
        return f"{self.tag} {self.device}: check {self.check} passes again"

    def text(self) -> str:
        if self.kind is Action.OPEN:
            return (
                f"Puente opened this alert: the check {self.check} on the enrolled device "
                f"{self.device} failed {self.failures} times in a row (severity "
                f"{self.severity}).\nWhat the check found stays on the device unless its "
                "policy lets the help desk see details; connect to the device to look.\n"
            )
        if self.kind is Action.COMMENT:
            return (
                f"The check {self.check} is still failing: {self.repeats} more failed "
                f"result(s) since the last note, {self.failures} in a row (severity "
                f"{self.severity}).\n"
            )
        if self.kind is Action.NOTE:
            return f"The device reports: {self.note}\n"
        return (
            f"The check {self.check} on {self.device} passes again; Puente resolved this alert.\n"
        )


class Ticketing(abc.ABC):
    """A help desk that takes alert actions. Each method is idempotent across attempts:
    when ``action.first_attempt`` is False an earlier attempt may have reached the help
    desk, and what it made is found, not made again (see module doc). The methods are
    called from worker threads, for different alerts at once (relay.alert_delivery)."""

    @abc.abstractmethod
    def open_ticket(self, action: AlertAction) -> str:
        """Make the alert's ticket (or find the one an earlier attempt made); its id."""

    @abc.abstractmethod
    def comment(self, ticket: str, action: AlertAction) -> None:
        """Add the action's comment, once."""

    @abc.abstractmethod
    def resolve(self, ticket: str, action: AlertAction) -> None:
        """Comment once and resolve the ticket."""


class RequestTrackerAlerts(RequestTrackerConnector, Ticketing):
    """Alert tickets in Request Tracker through REST 2.0, in one queue."""

    def __init__(self, url: str, *, queue: str = "General", **credentials: object) -> None:
        super().__init__(url, **credentials)  # type: ignore[arg-type]
        self.queue = queue

    @classmethod
    def from_connector(
        cls, connector: RequestTrackerConnector, queue: str = "General"
    ) -> RequestTrackerAlerts:
        """Alert tickets in the RT the relay already comments on, with its credentials."""
        alerts = cls.__new__(cls)
        alerts.__dict__.update(connector.__dict__)
        alerts.queue = queue
        return alerts

    def open_ticket(self, action: AlertAction) -> str:
        if not action.first_attempt:  # the earlier one's answer (or the relay) was lost
            existing = self._find_ticket(action.alert_tag)
            if existing is not None:
                return existing
        payload = {
            "Queue": self.queue,
            "Subject": action.subject(),
            "Content": action.text(),
            "ContentType": "text/plain",
        }
        status, body = self._call("POST", "/ticket", payload)
        if status != 201:
            raise DeliveryError(f"Request Tracker answered HTTP {status} to a new ticket")
        return str(json.loads(body)["id"])

    def comment(self, ticket: str, action: AlertAction) -> None:
        if not action.first_attempt and self._already_commented(action.tag_id):
            return
        payload = {
            "Subject": action.subject(),
            "Content": action.text(),
            "ContentType": "text/plain",
        }
        status, _ = self._call("POST", f"/ticket/{ticket}/comment", payload)
        if not 200 <= status < 300:
            raise DeliveryError(f"Request Tracker answered HTTP {status} to a comment on {ticket}")

    def resolve(self, ticket: str, action: AlertAction) -> None:
        self.comment(ticket, action)
        status, _ = self._call("PUT", f"/ticket/{ticket}", {"Status": "resolved"})
        if status != 200:
            raise DeliveryError(f"Request Tracker answered HTTP {status} to resolving {ticket}")

    def _find_ticket(self, tag: str) -> str | None:
        query = urllib.parse.quote(f"Subject LIKE '{tag}'")
        status, body = self._call("GET", f"/tickets?query={query}", None)
        if status != 200:
            raise DeliveryError(f"Request Tracker answered HTTP {status} to a ticket search")
        items = json.loads(body).get("items") or []
        return str(items[0]["id"]) if items else None


class AlertBook:
    """Alert states and owed actions in ``database`` (the relay's SQLite file's path, or
    a :class:`relay.device_sql.DeviceDatabase`)."""

    def __init__(
        self,
        database: Path | DeviceDatabase,
        clock: Callable[[], float] = time.time,
        repeat_interval: float = REPEAT_INTERVAL,
        *,
        thread_safe: bool = False,
    ) -> None:
        # thread_safe: the connection may be used from a thread other than its maker's
        # (one thread at a time: the relay's delivery task runs one pass after another).
        self._db: DeviceConnection = DeviceDatabase.of(database).connect(thread_safe=thread_safe)
        self._count_attempts_when_begun()
        self._clock = clock
        self._repeat_interval = repeat_interval

    def close(self) -> None:
        self._db.close()

    def _count_attempts_when_begun(self) -> None:
        """An older relay counted an attempt once it ended: one stopped during a call left
        0 behind, though the help desk may have the ticket. Every action such a relay
        left undelivered is taken as tried (its next attempt searches first), once.

        Only an older relay's SQLite book needs it; on a fresh book (and on PostgreSQL,
        whose books never counted the old way) it only writes its mark. The mark is
        written first, by a conditional insert, so nodes starting together upgrade once.
        """
        with self._db.transaction():
            marked = self._db.execute(
                "INSERT INTO alert_book_upgrades (name) VALUES (?) ON CONFLICT (name) DO NOTHING",
                (_ATTEMPTS_BEGUN,),
            )
            if marked.rowcount == 1:
                self._db.execute(
                    "UPDATE alert_actions SET attempts = 1 "
                    "WHERE delivered_at IS NULL AND attempts = 0"
                )

    # -- recording ---------------------------------------------------------------------

    def state(self, device: str, check: str, *, lock: bool = False) -> PairState:
        """The pair's state; ``lock`` (inside a transaction): and hold its row until the
        transaction ends, so no other node changes it meanwhile."""
        row = self._db.execute(
            "SELECT state, failures, alert_id, severity, last_comment_at, quiet_repeats, "
            "last_report "
            "FROM alert_pairs WHERE device = ? AND check_id = ?"
            + (self._db.for_update if lock else ""),
            (device, check),
        ).fetchone()
        if row is None:
            return PairState()
        return PairState(AlertState(row[0]), row[1], row[2], row[3], row[4], row[5], row[6])

    def observe(self, observation: Observation) -> Step:
        """Apply one result; the new state and its action are stored together."""
        with self._db.transaction():
            # The row exists before it is locked: two nodes seeing the pair's first
            # results at once then take turns, as later ones do.
            self._db.execute(
                "INSERT INTO alert_pairs (device, check_id, state, failures, severity, "
                "quiet_repeats) VALUES (?, ?, ?, 0, '', 0) ON CONFLICT (device, check_id) "
                "DO NOTHING",
                (observation.device, observation.check, str(AlertState.CLEAR)),
            )
            current = self.state(observation.device, observation.check, lock=True)
            result = step(current, observation, "al_" + secrets.token_hex(8), self._repeat_interval)
            new = result.state
            self._db.execute(
                "UPDATE alert_pairs SET state = ?, failures = ?, alert_id = ?, severity = ?, "
                "last_comment_at = ?, quiet_repeats = ?, last_report = ? "
                "WHERE device = ? AND check_id = ?",
                (
                    str(new.state),
                    new.failures,
                    new.alert_id,
                    new.severity,
                    new.last_comment_at,
                    new.quiet_repeats,
                    new.last_report,
                    observation.device,
                    observation.check,
                ),
            )
            if result.action is not Action.NONE:
                alert_id = new.alert_id or current.alert_id
                failures = current.failures if result.action is Action.RESOLVE else new.failures
                self._db.execute(
                    "INSERT INTO alert_actions (alert_id, kind, device, check_id, severity, "
                    "failures, repeats, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        alert_id,
                        str(result.action),
                        observation.device,
                        observation.check,
                        observation.severity,
                        failures,
                        result.repeats,
                        observation.at,
                    ),
                )
        return result

    def observe_results(self, observations: Sequence[Observation]) -> list[Step]:
        """Apply one device's results (one message): :meth:`observe` for each, except an
        ``ok`` result of a pair that is clear (or was never seen), which would change
        nothing (rules 5 and 7 of relay.alerts) and so writes nothing. Most results are
        those: one read for the message instead of a transaction per result, which is
        what a cluster's PostgreSQL makes costly (bench/device_store.py)."""
        devices = {observation.device for observation in observations}
        unclear: set[tuple[str, str]] = set()
        for device in devices:
            unclear.update(
                (device, str(row[0]))
                for row in self._db.execute(
                    "SELECT check_id FROM alert_pairs WHERE device = ? AND state != ?",
                    (device, str(AlertState.CLEAR)),
                ).fetchall()
            )
        steps = []
        for observation in observations:
            if observation.status == "ok" and (observation.device, observation.check) not in (
                unclear
            ):
                steps.append(Step(PairState(), Action.NONE, Event.OK))
            else:
                steps.append(self.observe(observation))
        return steps

    def note(self, device: str, check: str, text: str) -> bool:
        """Owe a comment of ``text`` on the ticket of the device and check's alert (a
        failure action's outcome); False, and nothing owed, when no alert is open."""
        with self._db.transaction():
            current = self.state(device, check, lock=True)
            if current.alert_id is None or current.state is not AlertState.OPEN:
                return False
            self._db.execute(
                "INSERT INTO alert_actions (alert_id, kind, device, check_id, severity, "
                "failures, repeats, at, note) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    current.alert_id,
                    str(Action.NOTE),
                    device,
                    check,
                    current.severity,
                    current.failures,
                    0,
                    self._clock(),
                    text,
                ),
            )
        return True

    def open_alerts(self) -> dict[str, list[str]]:
        """Device -> the checks with an open alert."""
        found: dict[str, list[str]] = {}
        for device, check in self._db.execute(
            "SELECT device, check_id FROM alert_pairs WHERE state = ? ORDER BY device, check_id",
            (str(AlertState.OPEN),),
        ):
            found.setdefault(device, []).append(check)
        return found

    def open_alert_details(self) -> dict[str, list[dict[str, Any]]]:
        """Device -> its open alerts: check, severity, since when (the opening), and the
        help-desk ticket once it exists (else None)."""
        found: dict[str, list[dict[str, Any]]] = {}
        for device, check, severity, since, ticket in self._db.execute(
            "SELECT p.device, p.check_id, p.severity, "
            "(SELECT MIN(a.at) FROM alert_actions a WHERE a.alert_id = p.alert_id), t.ticket "
            "FROM alert_pairs p LEFT JOIN alert_tickets t ON t.alert_id = p.alert_id "
            "WHERE p.state = ? ORDER BY p.device, p.check_id",
            (str(AlertState.OPEN),),
        ):
            found.setdefault(device, []).append(
                {"check": check, "severity": severity, "since": since, "ticket": ticket}
            )
        return found

    # -- delivering --------------------------------------------------------------------

    def pending(self, after: int = 0, alert_id: str | None = None) -> list[AlertAction]:
        """Undelivered actions, oldest first: those after id ``after``, of one alert if
        ``alert_id`` is given."""
        arguments: list[int | str]
        where, arguments = "delivered_at IS NULL AND id > ?", [after]
        if alert_id is not None:
            where += " AND alert_id = ?"
            arguments = [after, alert_id]
        rows = self._db.execute(
            "SELECT id, alert_id, kind, device, check_id, severity, failures, repeats, at, "
            f"note, attempts FROM alert_actions WHERE {where} ORDER BY id",
            arguments,
        ).fetchall()
        return [
            AlertAction(r[0], r[1], Action(r[2]), r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10])
            for r in rows
        ]

    def ticket(self, alert_id: str) -> str | None:
        row = self._db.execute(
            "SELECT ticket FROM alert_tickets WHERE alert_id = ?", (alert_id,)
        ).fetchone()
        return None if row is None else str(row[0])

    def begin_attempt(self, action: AlertAction) -> AlertAction:
        """Count an attempt at ``action`` before the help desk is called (committed when
        this returns); the action as the attempt sees it (``attempts`` = those before)."""
        (begun,) = self._db.execute(
            "UPDATE alert_actions SET attempts = attempts + 1 WHERE id = ? RETURNING attempts",
            (action.id,),
        ).fetchall()
        return replace(action, attempts=int(begun[0]) - 1)

    def delivered(self, action: AlertAction, ticket: str) -> None:
        """The help desk acknowledged ``action``; ``ticket`` is its alert's ticket."""
        with self._db.transaction():
            if action.kind is Action.OPEN:
                self._db.execute(
                    "INSERT INTO alert_tickets (alert_id, ticket) VALUES (?, ?) "
                    "ON CONFLICT (alert_id) DO UPDATE SET ticket = excluded.ticket",
                    (action.alert_id, ticket),
                )
            self._db.execute(
                "UPDATE alert_actions SET delivered_at = ?, last_error = NULL WHERE id = ?",
                (self._clock(), action.id),
            )

    def failed(self, action: AlertAction, error: str) -> None:
        """An attempt at ``action`` failed; it stays owed, with ``error`` for the operator."""
        self._db.execute(
            "UPDATE alert_actions SET last_error = ? WHERE id = ?", (error[:500], action.id)
        )
