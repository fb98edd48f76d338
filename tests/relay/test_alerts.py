"""The alert state machine (relay/alerts.py): every (state, event) pair, and the
stories of the issue: N failures open one alert, repeats comment (not too often),
recovery resolves, maintenance silences."""

from __future__ import annotations

import itertools
from collections.abc import Collection

import pytest

from relay.alerts import (
    TRANSITIONS,
    Action,
    AlertState,
    Event,
    Observation,
    PairState,
    classify,
    step,
)


def obs(status: str, at: float, threshold: int = 3, quiet: bool = False) -> Observation:
    return Observation("laptop-7", "disk-system", status, "critical", at, threshold, quiet)


def run(
    statuses: list[str], threshold: int = 3, quiet_at: Collection[int] = (), every: float = 60.0
) -> list[Action]:
    state, actions = PairState(), []
    for index, status in enumerate(statuses):
        result = step(
            state, obs(status, index * every, threshold, index in quiet_at), f"al_{index}"
        )
        state = result.state
        actions.append(result.action)
    return actions


def test_the_table_is_complete() -> None:
    assert set(TRANSITIONS) == set(itertools.product(AlertState, Event))


@pytest.mark.parametrize(("state", "event"), list(itertools.product(AlertState, Event)))
def test_every_pair_steps_as_the_table_says(state: AlertState, event: Event) -> None:
    failures = {Event.OK: 0, Event.FAIL_BELOW: 0, Event.FAIL_ALERT: 5, Event.FAIL_QUIET: 5}[event]
    current = PairState(state, failures, "al_old" if state is AlertState.OPEN else None, "warning")
    status = "ok" if event is Event.OK else "failing"
    observation = Observation("d", "c", status, "warning", 10_000.0, 3, event is Event.FAIL_QUIET)
    if event is Event.FAIL_BELOW:
        observation = Observation("d", "c", "failing", "warning", 10_000.0, 99)
    assert classify(current, observation) is event
    result = step(current, observation, "al_new")
    expected_state, expected_action = TRANSITIONS[(state, event)]
    assert result.state.state is expected_state
    assert result.action is expected_action
    if expected_action is Action.OPEN:
        assert result.state.alert_id == "al_new"
    if expected_state is AlertState.OPEN and state is AlertState.OPEN:
        assert result.state.alert_id == "al_old"


def test_n_failures_open_one_alert_and_recovery_resolves() -> None:
    actions = run(["failing", "failing", "failing", "failing", "ok", "ok"])
    assert actions == [
        Action.NONE,
        Action.NONE,
        Action.OPEN,
        Action.NONE,
        Action.RESOLVE,
        Action.NONE,
    ]


def test_an_ok_before_the_threshold_resets_the_count() -> None:
    assert run(["failing", "failing", "ok", "failing", "failing"]) == [Action.NONE] * 5


def test_errors_count_as_failures() -> None:
    assert run(["error", "failing", "error"])[-1] is Action.OPEN


def test_repeats_comment_at_most_once_an_hour_and_count_the_quiet_ones() -> None:
    state = PairState()
    actions, repeats = [], []
    for minute in range(0, 181, 30):  # every half hour for three hours
        result = step(state, obs("failing", minute * 60.0, threshold=1), "al_x")
        state = result.state
        actions.append(result.action)
        repeats.append(result.repeats)
    assert actions == [
        Action.OPEN,
        Action.NONE,
        Action.COMMENT,
        Action.NONE,
        Action.COMMENT,
        Action.NONE,
        Action.COMMENT,
    ]
    assert repeats[2] == 2 and repeats[4] == 2


def test_a_maintenance_window_silences_then_the_problem_speaks_after_it() -> None:
    # Failures in the window are counted but open nothing; the first failure after opens.
    actions = run(["failing"] * 5, quiet_at={0, 1, 2, 3})
    assert actions == [Action.NONE] * 4 + [Action.OPEN]
    # An open alert gets no comments during a window, and a recovery still resolves.
    actions = run(["failing"] * 3 + ["failing"] * 2 + ["ok"], quiet_at={3, 4, 5}, every=7200)
    assert actions == [
        Action.NONE,
        Action.NONE,
        Action.OPEN,
        Action.NONE,
        Action.NONE,
        Action.RESOLVE,
    ]


def test_bad_observations_get_a_sentence() -> None:
    with pytest.raises(ValueError, match="status must be one of ok, failing, error"):
        obs("forecast", 0.0)
    with pytest.raises(ValueError, match="1 or more"):
        obs("ok", 0.0, threshold=0)


def test_a_result_sent_again_is_counted_once() -> None:
    """Rule 7: a device resends its latest results after a reconnect."""
    state = PairState()
    counted = []
    for at, reported in ((0.0, 100.0), (5.0, 100.0), (60.0, 160.0), (65.0, 160.0), (120.0, 220.0)):
        observation = Observation("d", "c", "failing", "warning", at, 3, reported_at=reported)
        result = step(state, observation, f"al_{at}")
        state = result.state
        counted.append((result.counted, result.action))
    assert counted == [
        (True, Action.NONE),
        (False, Action.NONE),
        (True, Action.NONE),
        (False, Action.NONE),
        (True, Action.OPEN),  # the third distinct failure, not the fifth message
    ]
    assert state.failures == 3 and state.last_report == 220.0


def test_the_policys_repeat_interval_wins_over_the_default() -> None:
    state, actions = PairState(), []
    for second in range(0, 41, 5):  # a check every 5 s, comments at most every 10 s
        observation = Observation(
            "laptop-7",
            "disk-system",
            "failing",
            "critical",
            float(second),
            1,
            repeat_interval=10.0,
        )
        result = step(state, observation, "al_x")
        state = result.state
        actions.append(result.action)
    assert actions == [Action.OPEN, *[Action.NONE, Action.COMMENT] * 4]
    # Without the policy's setting, the hour of the module's default holds.
    assert run(["failing"] * 9, threshold=1, every=5.0) == [Action.OPEN, *[Action.NONE] * 8]
