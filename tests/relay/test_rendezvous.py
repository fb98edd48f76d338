"""relay.rendezvous: the table, row by row, without a network or a clock.

Every phase × every input is checked against a specification written here
independently of the table (``expected``), including the pairs that fall to the
closing default; then the conditions (timers with a fake ``now``, resume checks,
suspension) and the content of what is sent.
"""

from __future__ import annotations

import hashlib
import itertools
import json

import pytest

from protocol.envelope import ErrorCode, Role
from relay.records import SessionState
from relay.rendezvous import (
    TRANSITIONS,
    Action,
    Attach,
    Detach,
    Event,
    Finish,
    Forget,
    Forward,
    Input,
    Kind,
    Pair,
    Phase,
    RefuseClaim,
    Refused,
    RefuseResume,
    Reissue,
    Rendezvous,
    Send,
    Suspended,
    closing_default,
)

A, T = Role.AGENT, Role.TECHNICIAN
EXPIRES_AT = 1000.0
GRACE = 60.0
IDLE = 1800.0
SUSPENDED_AT = 100.0
LAST_ACTIVITY = 100.0
NOW = 110.0  # nothing is due: not expired, not idle, the grace period running
RESUME_IDS = {A: b"a" * 16, T: b"t" * 16}

# Who is connected in each phase (written out here, not taken from the module).
HERE: dict[Phase, set[Role]] = {
    Phase.EMPTY: set(),
    Phase.AGENT_WAITING: {A},
    Phase.TECHNICIAN_WAITING: {T},
    Phase.CLAIMED: {A, T},
    Phase.PAIRED: {A, T},
    Phase.AGENT_AWAY: {T},
    Phase.TECHNICIAN_AWAY: {A},
    Phase.BOTH_AWAY: set(),
    Phase.CLOSED: set(),
}
WAITING_FOR = {frozenset({A}): Phase.AGENT_WAITING, frozenset({T}): Phase.TECHNICIAN_WAITING}
UNPAIRED = (Phase.EMPTY, Phase.AGENT_WAITING, Phase.TECHNICIAN_WAITING, Phase.CLAIMED)
PAIRED = (Phase.PAIRED, Phase.AGENT_AWAY, Phase.TECHNICIAN_AWAY, Phase.BOTH_AWAY)


def unpaired_with(here: set[Role]) -> Phase:
    return {0: Phase.EMPTY, 2: Phase.CLAIMED}.get(len(here)) or WAITING_FOR[frozenset(here)]


def paired_with(here: set[Role]) -> Phase:
    return {
        frozenset({A, T}): Phase.PAIRED,
        frozenset({T}): Phase.AGENT_AWAY,
        frozenset({A}): Phase.TECHNICIAN_AWAY,
        frozenset(): Phase.BOTH_AWAY,
    }[frozenset(here)]


def expected(phase: Phase, input_: Input) -> tuple[Phase, list[type[Action]]]:
    """What each (phase, input) must do when nothing is due, in plain rules."""
    kind, role = input_.kind, input_.role
    here = HERE[phase]
    if kind is Kind.CLAIM:
        assert role is not None
        if phase in UNPAIRED and role not in here:
            return unpaired_with(here | {role}), [Attach, Send]
        return phase, [RefuseClaim]  # role_taken while waiting; used (default) otherwise
    if kind is Kind.RESUME:
        assert role is not None
        if phase not in PAIRED:
            return phase, [RefuseResume]
        back = paired_with(here | {role})
        return back, [Attach, Send, Send] if back is Phase.PAIRED else [Attach, Send]
    if phase is Phase.CLOSED:
        return phase, []
    if role is None:  # the relay's own inputs
        if kind in (Kind.SHUTDOWN, Kind.DELETE):
            return Phase.CLOSED, [Finish]
        if kind is Kind.DRAIN and phase in UNPAIRED and phase is not Phase.EMPTY:
            return Phase.CLOSED, [Finish]
        if kind is Kind.PAIR and phase is Phase.CLAIMED:
            return Phase.PAIRED, [Pair]
        # Someone else claimed the code while the technician is here: a new code for it.
        if kind is Kind.CONTESTED and T in here and phase in UNPAIRED:
            return Phase.CLOSED, [Reissue, Finish]
        return phase, []
    if phase is Phase.EMPTY:
        return phase, []
    if phase in UNPAIRED:
        rest = here - {role}
        forget = [Forget] if not rest and role in here else []
        if role in here and kind in (Kind.LEFT, Kind.DROPPED):
            return unpaired_with(rest), [Detach, *forget]
        if role in here and kind in (Kind.END, Kind.BURN):
            return Phase.CLOSED, [Finish]
        # Closing default: error bad_request to the end, its role freed.
        return unpaired_with(rest), [Refused, Detach, *forget]
    # Paired phases.
    if role in here:
        if kind is Kind.BINARY:
            return phase, [Forward] if phase is Phase.PAIRED else []
        if kind is Kind.RESUMABLE:
            return phase, []
        if kind is Kind.DROPPED:  # both ends gave verifiers in these rows
            peer_here = [Send] if role.peer in here else []
            return paired_with(here - {role}), [Detach, Suspended, *peer_here]
    # end, burn, left, and the closing default (a protocol error): the session ends.
    return Phase.CLOSED, [Finish]


def at(phase: Phase, *, resume_grace: float = GRACE) -> Rendezvous:
    """A rendezvous in ``phase`` where both ends gave their verifiers."""
    rendezvous = Rendezvous(EXPIRES_AT, resume_grace=resume_grace, idle_timeout=IDLE)
    rendezvous.phase = phase
    rendezvous.last_activity = LAST_ACTIVITY
    if phase in PAIRED:
        rendezvous.verifiers = {
            role: hashlib.sha256(resume_id).hexdigest() for role, resume_id in RESUME_IDS.items()
        }
    if phase in (Phase.AGENT_AWAY, Phase.TECHNICIAN_AWAY, Phase.BOTH_AWAY):
        rendezvous.suspended_at = SUSPENDED_AT
    return rendezvous


def event(input_: Input, now: float = NOW, **facts: object) -> Event:
    """An event whose facts are good: the right resume id, a well-formed verifier."""
    role = input_.role
    if input_.kind is Kind.RESUME and role is not None:
        facts.setdefault("resume_id", RESUME_IDS[role])
    if input_.kind is Kind.RESUMABLE and role is not None:
        facts.setdefault("verifier", hashlib.sha256(RESUME_IDS[role]).hexdigest())
    if input_.kind in (Kind.LEFT, Kind.DROPPED, Kind.DELETE):
        facts.setdefault("reason", "why")
    return Event(input_, now, **facts)  # type: ignore[arg-type]


def message(text: str) -> dict[str, object]:
    decoded: dict[str, object] = json.loads(text)
    return decoded


# Every phase × every input --------------------------------------------------------------


@pytest.mark.parametrize(
    ("phase", "input_"),
    list(itertools.product(Phase, Input)),
    ids=lambda value: value.name,
)
def test_every_phase_and_input(phase: Phase, input_: Input) -> None:
    rendezvous = at(phase)
    actions = rendezvous.handle(event(input_))
    next_phase, kinds = expected(phase, input_)
    assert (rendezvous.phase, [type(action) for action in actions]) == (next_phase, kinds)


@pytest.mark.parametrize(
    ("phase", "input_"),
    [pair for pair in itertools.product(Phase, Input) if pair not in TRANSITIONS],
    ids=lambda value: value.name,
)
def test_pairs_not_in_the_table_are_refused(phase: Phase, input_: Input) -> None:
    """The closing default: never a silent no-op."""
    rule = closing_default(phase, input_)
    assert rule.actions
    rendezvous = at(phase)
    actions = rendezvous.handle(event(input_))
    refusal = actions[0]
    if input_.kind is Kind.CLAIM:
        assert refusal == RefuseClaim(ErrorCode.USED)
    elif input_.kind is Kind.RESUME:
        assert refusal == RefuseResume("no such live session", guess=True)
    elif phase in PAIRED:
        assert isinstance(refusal, Finish) and rendezvous.phase is Phase.CLOSED
        assert refusal.state is SessionState.ENDED
        assert message(refusal.notices[input_.role])["code"] == "bad_request"  # type: ignore[index]
    else:
        assert isinstance(refusal, Refused)
        assert message(refusal.text)["code"] == "bad_request"


def test_the_default_covers_exactly_the_pairs_the_table_leaves_out() -> None:
    assert len(TRANSITIONS) + sum(
        1 for pair in itertools.product(Phase, Input) if pair not in TRANSITIONS
    ) == len(Phase) * len(Input)
    for (phase, input_), rules in TRANSITIONS.items():
        assert rules, f"{phase} {input_}: a row needs at least one rule"
        assert rules[-1].when.name == "ALWAYS", f"{phase} {input_}: no rule for 'otherwise'"


# Timers: time is an input --------------------------------------------------------------


@pytest.mark.parametrize("phase", [Phase.AGENT_WAITING, Phase.TECHNICIAN_WAITING, Phase.CLAIMED])
def test_a_waiting_code_expires_at_its_time_and_not_before(phase: Phase) -> None:
    rendezvous = at(phase)
    assert rendezvous.handle(event(Input.TIMER, now=EXPIRES_AT - 0.001)) == []
    assert rendezvous.phase is phase
    (finish,) = rendezvous.handle(event(Input.TIMER, now=EXPIRES_AT))
    assert rendezvous.phase is Phase.CLOSED
    assert isinstance(finish, Finish)
    assert finish.state is SessionState.EXPIRED
    assert finish.reason == "nobody joined before the code expired"
    assert set(finish.notices) == HERE[phase]
    assert {message(text)["code"] for text in finish.notices.values()} == {"expired"}


def test_a_paired_session_ends_after_the_idle_timeout() -> None:
    rendezvous = at(Phase.PAIRED)
    assert rendezvous.handle(event(Input.TIMER, now=LAST_ACTIVITY + IDLE - 1)) == []
    rendezvous.last_activity = LAST_ACTIVITY + 500  # the hot path forwarded something
    assert rendezvous.handle(event(Input.TIMER, now=LAST_ACTIVITY + IDLE)) == []
    (finish,) = rendezvous.handle(event(Input.TIMER, now=LAST_ACTIVITY + 500 + IDLE))
    assert isinstance(finish, Finish) and rendezvous.phase is Phase.CLOSED
    assert (finish.state, finish.reason) == (
        SessionState.ENDED,
        "nothing was forwarded for too long",
    )
    assert {message(text)["code"] for text in finish.notices.values()} == {"idle"}
    assert set(finish.notices) == {A, T}


def test_a_suspended_session_is_not_idle_while_it_waits() -> None:
    rendezvous = at(Phase.AGENT_AWAY, resume_grace=10 * IDLE)
    assert rendezvous.handle(event(Input.TIMER, now=LAST_ACTIVITY + IDLE)) == []


@pytest.mark.parametrize(
    ("phase", "why"),
    [
        (Phase.AGENT_AWAY, "the agent did not reconnect within 60 seconds"),
        (Phase.TECHNICIAN_AWAY, "the technician did not reconnect within 60 seconds"),
        (Phase.BOTH_AWAY, "the agent and the technician did not reconnect within 60 seconds"),
    ],
)
def test_the_grace_period_ends_a_suspended_session(phase: Phase, why: str) -> None:
    rendezvous = at(phase)
    assert rendezvous.handle(event(Input.TIMER, now=SUSPENDED_AT + GRACE - 0.001)) == []
    (finish,) = rendezvous.handle(event(Input.TIMER, now=SUSPENDED_AT + GRACE))
    assert isinstance(finish, Finish) and rendezvous.phase is Phase.CLOSED
    assert (finish.state, finish.reason) == (SessionState.ENDED, why)
    assert set(finish.notices) == HERE[phase]
    for text in finish.notices.values():
        assert message(text) == {"type": "peer_gone", "reason": why}


# Suspension and resume ----------------------------------------------------------------


def test_a_drop_suspends_only_an_end_that_gave_its_verifier() -> None:
    rendezvous = at(Phase.PAIRED)
    del rendezvous.verifiers[A]
    (finish,) = rendezvous.handle(event(Input.DROPPED_AGENT, reason="the agent disconnected"))
    assert isinstance(finish, Finish) and rendezvous.phase is Phase.CLOSED
    assert (finish.state, finish.reason) == (SessionState.ENDED, "the agent disconnected")
    assert {role: message(text) for role, text in finish.notices.items()} == {
        T: {"type": "peer_gone", "reason": "the agent disconnected"}
    }


def test_no_resume_grace_means_a_drop_ends_the_session() -> None:
    rendezvous = at(Phase.PAIRED, resume_grace=0)
    (finish,) = rendezvous.handle(event(Input.DROPPED_TECHNICIAN))
    assert isinstance(finish, Finish) and rendezvous.phase is Phase.CLOSED


def test_a_drop_starts_the_grace_period_and_a_second_drop_keeps_it() -> None:
    rendezvous = at(Phase.PAIRED)
    actions = rendezvous.handle(event(Input.DROPPED_AGENT, now=200.0))
    detach, suspended, notice = actions
    assert (detach, suspended) == (Detach(A), Suspended(A, 60))
    assert isinstance(notice, Send) and notice.role is T
    assert message(notice.text) == {"type": "peer_suspended", "grace": 60}
    assert (rendezvous.phase, rendezvous.suspended_at) == (Phase.AGENT_AWAY, 200.0)
    actions = rendezvous.handle(event(Input.DROPPED_TECHNICIAN, now=230.5))
    assert actions == [Detach(T), Suspended(T, 30)]
    assert (rendezvous.phase, rendezvous.suspended_at) == (Phase.BOTH_AWAY, 200.0)


def test_resume_refusals_in_order() -> None:
    rendezvous = at(Phase.AGENT_AWAY)
    wrong = rendezvous.handle(event(Input.RESUME_AGENT, resume_id=b"x" * 16))
    assert wrong == [RefuseResume("wrong resume id", guess=True)]
    stranger = rendezvous.handle(event(Input.RESUME_TECHNICIAN, authorised=False))
    assert stranger == [RefuseResume("not the session's technician", guess=False)]
    late = rendezvous.handle(event(Input.RESUME_AGENT, now=SUSPENDED_AT + GRACE))
    assert late == [RefuseResume("the grace period is over", guess=False)]
    assert rendezvous.phase is Phase.AGENT_AWAY
    rendezvous.verifiers.pop(T)
    assert rendezvous.handle(event(Input.RESUME_TECHNICIAN)) == [
        RefuseResume("wrong resume id", guess=True)
    ]


def test_both_back_are_told_resumed_the_resumer_first() -> None:
    rendezvous = at(Phase.BOTH_AWAY)
    attach, waiting = rendezvous.handle(event(Input.RESUME_TECHNICIAN, now=130.2))
    assert attach == Attach(T)
    assert isinstance(waiting, Send) and waiting.role is T
    assert message(waiting.text) == {"type": "waiting", "expires_in": 30}
    assert rendezvous.phase is Phase.AGENT_AWAY
    attach, to_agent, to_technician = rendezvous.handle(event(Input.RESUME_AGENT, now=140.0))
    assert attach == Attach(A)
    assert isinstance(to_agent, Send) and isinstance(to_technician, Send)
    assert [
        (to_agent.role, message(to_agent.text)),
        (to_technician.role, message(to_technician.text)),
    ] == [
        (A, {"type": "resumed"}),
        (T, {"type": "resumed"}),
    ]
    assert (rendezvous.phase, rendezvous.suspended_at, rendezvous.last_activity) == (
        Phase.PAIRED,
        None,
        140.0,
    )


def test_a_resume_while_paired_replaces_the_stale_connection() -> None:
    rendezvous = at(Phase.PAIRED)
    actions = rendezvous.handle(event(Input.RESUME_AGENT, now=150.0))
    assert actions[0] == Attach(A, replacing=True)
    assert rendezvous.phase is Phase.PAIRED and rendezvous.last_activity == 150.0


def test_a_malformed_verifier_ends_a_paired_session() -> None:
    rendezvous = at(Phase.PAIRED)
    (finish,) = rendezvous.handle(event(Input.RESUMABLE_TECHNICIAN, verifier=None))
    assert isinstance(finish, Finish) and rendezvous.phase is Phase.CLOSED
    assert finish.reason == "the technician sent a malformed message"
    assert message(finish.notices[T])["code"] == "bad_request"
    assert message(finish.notices[A]) == {"type": "peer_gone", "reason": finish.reason}


def test_resumable_before_pairing_is_unexpected() -> None:
    rendezvous = at(Phase.AGENT_WAITING)
    refused, detach, forget = rendezvous.handle(event(Input.RESUMABLE_AGENT))
    assert isinstance(refused, Refused)
    assert refused.why == "the agent sent an unexpected message"
    assert (detach, forget) == (Detach(A), Forget())
    assert rendezvous.phase is Phase.EMPTY


# A whole session ------------------------------------------------------------------------


def test_claim_pair_suspend_resume_end() -> None:
    rendezvous = Rendezvous(EXPIRES_AT, resume_grace=GRACE, idle_timeout=IDLE)
    attach, waiting = rendezvous.handle(event(Input.CLAIM_TECHNICIAN, now=400.2))
    assert attach == Attach(T)
    assert isinstance(waiting, Send) and waiting.role is T
    assert message(waiting.text) == {"type": "waiting", "expires_in": 600}
    assert rendezvous.handle(event(Input.CLAIM_TECHNICIAN)) == [RefuseClaim(ErrorCode.ROLE_TAKEN)]
    assert rendezvous.handle(event(Input.PAIR)) == []  # the first claimer is alone
    assert [type(a) for a in rendezvous.handle(event(Input.CLAIM_AGENT))] == [Attach, Send]
    assert rendezvous.phase is Phase.CLAIMED and not rendezvous.paired
    assert rendezvous.handle(event(Input.PAIR, now=410.0)) == [Pair(410.0)]
    assert rendezvous.paired and rendezvous.last_activity == 410.0
    assert rendezvous.handle(event(Input.PAIR)) == []  # the second claimer comes too late
    assert rendezvous.handle(event(Input.RESUMABLE_AGENT)) == []
    assert [type(a) for a in rendezvous.handle(event(Input.DROPPED_AGENT, now=420))] == [
        Detach,
        Suspended,
        Send,
    ]
    assert rendezvous.handle(event(Input.BINARY_TECHNICIAN)) == []  # dropped: resent later
    assert [type(a) for a in rendezvous.handle(event(Input.RESUME_AGENT, now=430))] == [
        Attach,
        Send,
        Send,
    ]
    assert rendezvous.handle(event(Input.BINARY_AGENT)) == [Forward(A)]
    (finish,) = rendezvous.handle(event(Input.END_TECHNICIAN, detail="fixed"))
    assert isinstance(finish, Finish)
    assert (finish.state, finish.reason, finish.detail) == (
        SessionState.ENDED,
        "the technician ended the session",
        "fixed",
    )
    assert {role: message(text) for role, text in finish.notices.items()} == {
        A: {"type": "peer_gone", "reason": "the technician ended the session"}
    }
    assert rendezvous.closed
    assert rendezvous.handle(event(Input.LEFT_AGENT)) == []  # late news changes nothing


def test_burn_while_waiting_fails_the_session() -> None:
    rendezvous = at(Phase.CLAIMED)
    (finish,) = rendezvous.handle(event(Input.BURN_AGENT, detail="wrong code"))
    assert isinstance(finish, Finish)
    assert (finish.state, finish.reason, finish.detail) == (
        SessionState.FAILED,
        "the agent burnt the session code",
        "wrong code",
    )
    assert message(finish.notices[T])["type"] == "peer_gone"


@pytest.mark.parametrize("phase", UNPAIRED[1:] + PAIRED)
def test_shutdown_ends_only_paired_sessions_in_the_store(phase: Phase) -> None:
    rendezvous = at(phase)
    (finish,) = rendezvous.handle(event(Input.SHUTDOWN))
    assert isinstance(finish, Finish)
    assert finish.state is (SessionState.ENDED if phase in PAIRED else None)
    assert finish.reason == "the relay shut down"
    assert set(finish.notices) == HERE[phase]
    assert {message(text)["code"] for text in finish.notices.values()} <= {"shutdown"}


def test_an_api_delete_ends_with_its_reason() -> None:
    rendezvous = at(Phase.TECHNICIAN_AWAY)
    (finish,) = rendezvous.handle(event(Input.DELETE, reason="ended through the API"))
    assert isinstance(finish, Finish)
    assert (finish.state, finish.reason, set(finish.notices)) == (
        SessionState.ENDED,
        "ended through the API",
        {A},
    )
    assert message(finish.notices[A])["code"] == "ended"


# Squatting: someone else claimed the code -------------------------------------------------


def test_a_refused_agent_claim_marks_a_waiting_agent_session_contested() -> None:
    rendezvous = at(Phase.AGENT_WAITING)
    assert rendezvous.handle(event(Input.CONTESTED)) == []
    assert rendezvous.phase is Phase.AGENT_WAITING and rendezvous.contested


@pytest.mark.parametrize("phase", [Phase.EMPTY, Phase.AGENT_WAITING])
def test_the_technician_claiming_a_contested_code_gets_a_new_one(phase: Phase) -> None:
    rendezvous = at(phase)
    rendezvous.contested = True
    actions = rendezvous.handle(event(Input.CLAIM_TECHNICIAN))
    assert actions[:2] == [Attach(T), Reissue(T)]
    finish = actions[2]
    assert isinstance(finish, Finish) and finish.state is SessionState.FAILED
    assert "someone else claimed this code" in finish.reason
    assert message(finish.notices[A])["code"] == ErrorCode.USED
    assert T not in finish.notices  # the technician's last word is the new code
    assert rendezvous.phase is Phase.CLOSED


def test_too_many_agent_claims_counted_by_the_store_contest_the_code() -> None:
    rendezvous = at(Phase.EMPTY)
    actions = rendezvous.handle(event(Input.CLAIM_TECHNICIAN, contested=True))
    assert [type(action) for action in actions] == [Attach, Reissue, Finish]


def test_an_uncontested_technician_claim_waits_as_before() -> None:
    rendezvous = at(Phase.AGENT_WAITING)
    actions = rendezvous.handle(event(Input.CLAIM_TECHNICIAN))
    assert [type(action) for action in actions] == [Attach, Send]
    assert rendezvous.phase is Phase.CLAIMED
