"""Alerts from enrolled devices' check results: when to open, comment on and resolve a
ticket. Pure: observations and ``now`` in, the next state and one action out.

Rules (everything that affects transitions lives here):

1. An alert belongs to one device and one check: at most one is open per pair.
2. A check counts as failing after ``threshold`` consecutive failing results (the
   policy's ``failures_before_alert``). ``failing`` and ``error`` (the check could
   not tell) are failures; ``ok`` is not.
3. Reaching the threshold opens an alert: one ticket (:attr:`Action.OPEN`).
4. Another failure while the alert is open adds a comment (:attr:`Action.COMMENT`),
   at most one per ``repeat_interval`` seconds (the device policy's
   ``repeat_comment_seconds``, an hour unless it says), so a check that runs every
   minute does not bury the ticket; the quiet repeats are counted and the next comment says how many.
5. An ``ok`` result while the alert is open comments and resolves the ticket
   (:attr:`Action.RESOLVE`) and clears the pair; an ``ok`` before the threshold just
   resets the count.
6. During a maintenance window nothing is opened and nothing is commented; failures
   are still counted, so a problem that outlives the window opens its alert at the
   first failure after it. A recovery during a window still resolves (that is not noise).

7. A result is counted once. Each carries the time the device ran the check
   (``reported_at``); one no newer than the last counted for the pair (a device
   sending its results again after a reconnect, or a retried message) changes nothing.

Every (state, event) pair is in :data:`TRANSITIONS`; :func:`step` classifies an
observation into one event and looks the pair up. The durable side (state and the
actions to deliver, written in one transaction) is :mod:`relay.alert_book`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace

#: Least seconds between two comments on repeats of the same open alert.
REPEAT_INTERVAL = 3600.0


class AlertState(enum.StrEnum):
    CLEAR = "clear"  # the check passes (or never ran)
    FAILING = "failing"  # failures counted, no alert yet
    OPEN = "open"  # an alert is open: a ticket exists or is being made


class Event(enum.StrEnum):
    OK = "ok"
    FAIL_BELOW = "fail-below"  # a failure, still under the threshold
    FAIL_ALERT = "fail-alert"  # a failure at or over the threshold, outside maintenance
    FAIL_QUIET = "fail-quiet"  # a failure at or over the threshold that must not speak now


class Action(enum.StrEnum):
    NONE = "none"
    OPEN = "open"
    COMMENT = "comment"
    RESOLVE = "resolve"
    #: Not from the table: a note the device sent about its alert (a failure action's
    #: outcome), commented on the alert's ticket (relay.alert_book.AlertBook.note).
    NOTE = "note"


#: (state, event) -> (next state, action). Rules 3 to 6 of the module doc.
TRANSITIONS: dict[tuple[AlertState, Event], tuple[AlertState, Action]] = {
    (AlertState.CLEAR, Event.OK): (AlertState.CLEAR, Action.NONE),
    (AlertState.CLEAR, Event.FAIL_BELOW): (AlertState.FAILING, Action.NONE),
    (AlertState.CLEAR, Event.FAIL_ALERT): (AlertState.OPEN, Action.OPEN),
    (AlertState.CLEAR, Event.FAIL_QUIET): (AlertState.FAILING, Action.NONE),
    (AlertState.FAILING, Event.OK): (AlertState.CLEAR, Action.NONE),
    (AlertState.FAILING, Event.FAIL_BELOW): (AlertState.FAILING, Action.NONE),
    (AlertState.FAILING, Event.FAIL_ALERT): (AlertState.OPEN, Action.OPEN),
    (AlertState.FAILING, Event.FAIL_QUIET): (AlertState.FAILING, Action.NONE),
    (AlertState.OPEN, Event.OK): (AlertState.CLEAR, Action.RESOLVE),
    # An open alert has passed the threshold, so a failure is never "below" it; the
    # pair is here so the table is complete.
    (AlertState.OPEN, Event.FAIL_BELOW): (AlertState.OPEN, Action.COMMENT),
    (AlertState.OPEN, Event.FAIL_ALERT): (AlertState.OPEN, Action.COMMENT),
    (AlertState.OPEN, Event.FAIL_QUIET): (AlertState.OPEN, Action.NONE),
}

FAILURE_STATUSES = ("failing", "error")
STATUSES = ("ok", *FAILURE_STATUSES)


@dataclass(frozen=True)
class Observation:
    """One check result as the relay sees it (no details), with what decides its weight."""

    device: str
    check: str
    status: str
    severity: str
    at: float
    threshold: int
    in_maintenance: bool = False
    #: When the device ran the check (its clock), to count each result once (rule 7).
    reported_at: float | None = None
    #: Least seconds between two repeat comments (rule 4), from the device's policy;
    #: None: the caller's default.
    repeat_interval: float | None = None

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(
                f"A check result's status must be one of {', '.join(STATUSES)}, "
                f"not {self.status!r}."
            )
        if self.threshold < 1:
            raise ValueError("failures_before_alert must be 1 or more.")


@dataclass(frozen=True)
class PairState:
    """What the relay remembers of one device and check."""

    state: AlertState = AlertState.CLEAR
    failures: int = 0
    alert_id: str | None = None
    severity: str = ""
    last_comment_at: float | None = None
    quiet_repeats: int = 0
    last_report: float | None = None


@dataclass(frozen=True)
class Step:
    """The result of one observation: the new state and what to tell the help desk."""

    state: PairState
    action: Action
    event: Event
    repeats: int = 0  # for a COMMENT: failures since the last comment (quiet ones included)
    counted: bool = True  # False: a result seen before (rule 7), nothing changed


def classify(current: PairState, observation: Observation) -> Event:
    if observation.status not in FAILURE_STATUSES:
        return Event.OK
    if current.failures + 1 < observation.threshold:
        return Event.FAIL_BELOW
    return Event.FAIL_QUIET if observation.in_maintenance else Event.FAIL_ALERT


def step(
    current: PairState,
    observation: Observation,
    new_alert_id: str,
    repeat_interval: float = REPEAT_INTERVAL,
) -> Step:
    """Apply one observation. ``new_alert_id`` names the alert if this one opens it;
    the observation's own ``repeat_interval``, when it has one, wins over the argument."""
    if observation.repeat_interval is not None:
        repeat_interval = observation.repeat_interval
    reported = observation.reported_at
    if reported is not None and current.last_report is not None and reported <= current.last_report:
        return Step(current, Action.NONE, classify(current, observation), counted=False)
    result = _step(current, observation, new_alert_id, repeat_interval)
    if reported is None:
        return result
    return replace(result, state=replace(result.state, last_report=reported))


def _step(
    current: PairState, observation: Observation, new_alert_id: str, repeat_interval: float
) -> Step:
    event = classify(current, observation)
    next_state, action = TRANSITIONS[(current.state, event)]
    if next_state is AlertState.CLEAR:
        return Step(PairState(), action, event)
    failures = current.failures + 1
    if action is Action.OPEN:
        opened = PairState(
            AlertState.OPEN, failures, new_alert_id, observation.severity, observation.at, 0
        )
        return Step(opened, action, event)
    if action is Action.COMMENT:
        last = current.last_comment_at
        if last is not None and observation.at - last < repeat_interval:
            quiet = replace(current, failures=failures, quiet_repeats=current.quiet_repeats + 1)
            return Step(quiet, Action.NONE, event)
        commented = replace(
            current,
            failures=failures,
            severity=observation.severity,
            last_comment_at=observation.at,
            quiet_repeats=0,
        )
        return Step(commented, action, event, repeats=current.quiet_repeats + 1)
    kept = replace(current, state=next_state, failures=failures)
    if next_state is AlertState.OPEN:  # a quiet failure of an open alert, counted
        kept = replace(kept, quiet_repeats=current.quiet_repeats + 1)
    return Step(kept, action, event)
