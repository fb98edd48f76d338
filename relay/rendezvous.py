"""The rendezvous of one session at the relay: claim, wait, pair, suspend, resume, leave.

Sans-I/O, like :mod:`protocol.session`: no asyncio, sockets or clocks. The adapter
(:mod:`relay.server`) feeds :meth:`Rendezvous.handle` an :class:`Event` for everything
that happens to a session it holds: a claim or a resume for one of its roles, a
message or a disconnect from one of its ends, a tick of the housekeeping timer, a
drain, a shutdown, a DELETE through the API. Time comes in as ``event.now``.
``handle`` moves to the next phase and returns the :class:`Action` values for the
adapter to perform, in order: attach or detach a connection, send an envelope
message, pair, forward, finish (store, help-desk events, a notice to each end, close).

Before a claim reaches a session, the adapter judges it against the store, in this
order: bad_request / version (malformed), unauthorized (technician without a token),
rate_limited (agent claims per IP), unknown_nameplate, unauthorized (not the
session's technician), expired, used (paired, ended or burnt), rate_limited (agent
claims per nameplate). What is left (role_taken, and everything after) is this table.
An agent claim refused role_taken or rate_limited (per nameplate) is then fed to the
session as ``contested``: someone else is using the code.

Phases (who is connected here)::

    EMPTY               nobody: a new session, or every end of a waiting one left (the
                        adapter forgets it; the stored session still waits for claims)
    AGENT_WAITING       the agent claimed, the technician has not
    TECHNICIAN_WAITING  the technician claimed, the agent has not
    CLAIMED             both claimed; "paired" not sent yet (the second claimer is
                        sent "waiting" first, then the adapter feeds PAIR)
    PAIRED              both here; binary is forwarded untouched (the hot path in
                        relay.server, which never consults this table per message)
    AGENT_AWAY          paired; the agent dropped and may resume (suspended)
    TECHNICIAN_AWAY     paired; the technician dropped and may resume (suspended)
    BOTH_AWAY           paired; both dropped
    CLOSED              finished: recorded, every end told why and closed

Rules (everything that affects transitions lives in ``TRANSITIONS``). R is the role
the input names, P its peer; "waiting phases" = R_WAITING, CLAIMED; "paired phases" =
PAIRED and the three away phases; "all" = the ends connected here::

    phase            input                next            actions
    ---------------  -------------------  --------------  -------------------------------------
    EMPTY            claim R              R_WAITING       attach R, "waiting" (code's time left)
    R_WAITING        claim P              CLAIMED         attach P, "waiting"
    R_WAITING        claim R              (same)          refuse role_taken
    CLAIMED          claim R              (same)          refuse role_taken
    CLAIMED          pair                 PAIRED          pair: store, event, "paired" to both
    waiting phases   left R, dropped R    without R       detach R (nobody left: forget)
    waiting phases   timer, now ≥ expiry  CLOSED          finish expired; error expired to all
    waiting phases   drain                CLOSED          finish, store untouched; error shutdown
    any but CLOSED   end R                CLOSED          finish ended; peer_gone to P
    any but CLOSED   burn R               CLOSED          finish failed; peer_gone to P
    PAIRED           binary R             PAIRED          forward to P
    away phases      binary R             (same)          nothing: the absent end resends it
    paired phases    resumable R          (same)          keep R's verifier (malformed: misbehaved)
    paired phases    left R               CLOSED          finish ended; peer_gone to P
    paired phases    dropped R, R gave a  R away          suspend R; peer_suspended to P if here
                     verifier, grace > 0
                     dropped R otherwise  CLOSED          as left R
    PAIRED           resume R             PAIRED          replace R's stale connection;
                                                          "resumed" to R, then to P
    R_AWAY           resume R             PAIRED          attach R; "resumed" to R, then to P
    P_AWAY           resume R             P_AWAY          replace R (stale); "waiting" (grace left)
    BOTH_AWAY        resume R             P_AWAY          attach R; "waiting" (grace left)
    paired phases    resume R, refused    (same)          refuse not_resumable (wrong resume id,
                                                          not the session's technician, grace over)
    PAIRED           timer, idle          CLOSED          finish ended; error idle to all
    away phases      timer, grace over    CLOSED          finish ended; peer_gone "did not
                                                          reconnect" to all
    paired phases    drain, pair          (same)          nothing: paired sessions go on
    any but CLOSED   shutdown             CLOSED          finish (ended if paired); error shutdown
    any but CLOSED   delete (API)         CLOSED          finish ended; error ended to all
    any but CLOSED   timer, nothing due   (same)          nothing
    EMPTY, CLOSED    anything from an end (same)          nothing: news from ends already gone
    AGENT_WAITING    contested            (same)          mark contested
    TECHNICIAN_WAIT- contested            CLOSED          reissue: a new code for the ticket as
    ING, CLAIMED                                          the technician's last message; finish
                                                          failed; error used to the agent
    EMPTY,           claim technician,    CLOSED          attach the technician, then reissue
    AGENT_WAITING    contested (marked,
                     or the store counted
                     too many agent claims)
    other phases     contested            (same)          nothing (paired: too late to matter)

Closing default: any (phase, input) pair not in the table is refused the documented
way. A claim: error ``used``. A resume: error ``not_resumable`` (counted against the
IP like a guess). Anything else from an end (binary before pairing, a malformed or
unexpected message, ``resumable`` before pairing) is a protocol error: error
``bad_request`` to that end; a paired session ends (peer_gone to the other end), a
waiting one frees that end's role.

The state diagram in docs/PROTOCOL.md ("Relay rendezvous") is generated from
``TRANSITIONS`` (``python -m tests.project.test_docs``).
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from protocol import envelope
from protocol.envelope import ErrorCode, Role

from .records import SessionState


class Phase(enum.Enum):
    EMPTY = "empty"
    AGENT_WAITING = "agent waiting"
    TECHNICIAN_WAITING = "technician waiting"
    CLAIMED = "claimed"
    PAIRED = "paired"
    AGENT_AWAY = "agent away"
    TECHNICIAN_AWAY = "technician away"
    BOTH_AWAY = "both away"
    CLOSED = "closed"


class Kind(enum.Enum):
    """What happened, without saying to which end."""

    CLAIM = "claim"  # a new connection claims the role
    RESUME = "resume"  # a new connection resumes the role
    RESUMABLE = "resumable"  # the end sent the verifier of its resume id
    BINARY = "binary"  # the end sent binary (the slow path; see relay.server._forward)
    END = "end"  # the end sent "end"
    BURN = "burn"  # the end sent "burn"
    MALFORMED = "malformed"  # the end sent a text message that does not parse
    UNEXPECTED = "unexpected"  # the end sent a well-formed message not expected here
    LEFT = "left"  # the end's connection closed cleanly (or over the size limit)
    DROPPED = "dropped"  # the end's connection dropped (no close frame)
    PAIR = "pair"  # a claimer's "waiting" went out: pair if both are here
    TIMER = "timer"  # the housekeeping tick
    DRAIN = "drain"  # the relay is draining before it stops
    SHUTDOWN = "shutdown"  # the relay stops
    DELETE = "delete"  # DELETE /api/sessions/{id} (or a cluster peer ended it)
    CONTESTED = "contested"  # an agent claim for this code was refused (role_taken, or
    # rate_limited per nameplate): someone else is using the code


class Input(enum.Enum):
    """Every input of the table: an end's kinds once per role, the relay's once."""

    CLAIM_AGENT = (Kind.CLAIM, Role.AGENT)
    CLAIM_TECHNICIAN = (Kind.CLAIM, Role.TECHNICIAN)
    RESUME_AGENT = (Kind.RESUME, Role.AGENT)
    RESUME_TECHNICIAN = (Kind.RESUME, Role.TECHNICIAN)
    RESUMABLE_AGENT = (Kind.RESUMABLE, Role.AGENT)
    RESUMABLE_TECHNICIAN = (Kind.RESUMABLE, Role.TECHNICIAN)
    BINARY_AGENT = (Kind.BINARY, Role.AGENT)
    BINARY_TECHNICIAN = (Kind.BINARY, Role.TECHNICIAN)
    END_AGENT = (Kind.END, Role.AGENT)
    END_TECHNICIAN = (Kind.END, Role.TECHNICIAN)
    BURN_AGENT = (Kind.BURN, Role.AGENT)
    BURN_TECHNICIAN = (Kind.BURN, Role.TECHNICIAN)
    MALFORMED_AGENT = (Kind.MALFORMED, Role.AGENT)
    MALFORMED_TECHNICIAN = (Kind.MALFORMED, Role.TECHNICIAN)
    UNEXPECTED_AGENT = (Kind.UNEXPECTED, Role.AGENT)
    UNEXPECTED_TECHNICIAN = (Kind.UNEXPECTED, Role.TECHNICIAN)
    LEFT_AGENT = (Kind.LEFT, Role.AGENT)
    LEFT_TECHNICIAN = (Kind.LEFT, Role.TECHNICIAN)
    DROPPED_AGENT = (Kind.DROPPED, Role.AGENT)
    DROPPED_TECHNICIAN = (Kind.DROPPED, Role.TECHNICIAN)
    PAIR = (Kind.PAIR, None)
    TIMER = (Kind.TIMER, None)
    DRAIN = (Kind.DRAIN, None)
    SHUTDOWN = (Kind.SHUTDOWN, None)
    DELETE = (Kind.DELETE, None)
    CONTESTED = (Kind.CONTESTED, None)

    @property
    def kind(self) -> Kind:
        return self.value[0]  # type: ignore[no-any-return]

    @property
    def role(self) -> Role | None:
        return self.value[1]  # type: ignore[no-any-return]

    @classmethod
    def of(cls, kind: Kind, role: Role | None = None) -> Input:
        return cls((kind, role))


#: Kinds that come from an end (the others come from the relay itself).
FROM_AN_END = frozenset(Kind) - {
    Kind.PAIR,
    Kind.TIMER,
    Kind.DRAIN,
    Kind.SHUTDOWN,
    Kind.DELETE,
    Kind.CONTESTED,
}


@dataclass(frozen=True)
class Event:
    """One input with its facts. Only the fields its kind uses matter."""

    input: Input
    now: float
    #: left / dropped: why the connection ended (stored, logged, told to the peer);
    #: delete: the API's reason.
    reason: str = ""
    #: end / burn: the end's own words (stored after the reason, never logged).
    detail: str | None = None
    #: resumable: hex SHA-256 of the end's resume id; None if the message was malformed.
    verifier: str | None = None
    #: resume: the resume id the new connection showed.
    resume_id: bytes = b""
    #: resume: False when a technician's token is not the session's technician's.
    authorised: bool = True
    #: claim: the store counted more agent claims than the per-nameplate limit.
    contested: bool = False


# Actions for the adapter ------------------------------------------------------------


@dataclass(frozen=True)
class Attach:
    """The connection that claimed or resumed becomes ``role``'s end.

    ``replacing``: a connection still holds the role (the relay had not noticed it
    die); close it without a word.
    """

    role: Role
    replacing: bool = False


@dataclass(frozen=True)
class Detach:
    """``role``'s connection is over; the role is free (waiting) or away (suspended)."""

    role: Role


@dataclass(frozen=True)
class Forget:
    """Nobody is connected to this waiting session any more: drop it from memory."""


@dataclass(frozen=True)
class Send:
    """Send ``text`` (an envelope message) to ``role``'s end."""

    role: Role
    text: str


@dataclass(frozen=True)
class RefuseClaim:
    """Refuse the claiming connection with error ``code``, then close it."""

    code: ErrorCode


@dataclass(frozen=True)
class RefuseResume:
    """Refuse the resuming connection (error not_resumable); ``guess``: count it
    against the IP's limit, since it may be someone guessing session ids."""

    why: str
    guess: bool


@dataclass(frozen=True)
class Pair:
    """Both ends are here: record the pairing (at ``at``), switch both to forwarding,
    send "paired"."""

    at: float


@dataclass(frozen=True)
class Forward:
    """Forward the binary message ``role`` sent to its peer (the slow path)."""

    role: Role


@dataclass(frozen=True)
class Suspended:
    """``role`` dropped and may resume within ``grace_left`` seconds (logged)."""

    role: Role
    grace_left: int


@dataclass(frozen=True)
class Refused:
    """An end of a waiting session broke the protocol: error ``text``, then close it."""

    role: Role
    text: str
    why: str


@dataclass(frozen=True)
class Reissue:
    """Someone else claimed this code: make a new code for the same ticket and send it
    to ``role`` (the technician) as its last message. A :class:`Finish` follows."""

    role: Role


@dataclass(frozen=True)
class Finish:
    """End the session once: store ``state`` (None: leave the store as it is) with
    ``reason`` and ``detail``, record the help-desk event, send each end its notice
    (none: no word) and close every end."""

    state: SessionState | None
    reason: str
    notices: Mapping[Role, str]
    detail: str | None = None


Action = (
    Attach | Detach | Forget | Send | RefuseClaim | RefuseResume | Pair | Forward | Suspended
) | (Refused | Reissue | Finish)


# The table --------------------------------------------------------------------------


class Do(enum.Enum):
    """What a rule does; :meth:`Rendezvous._perform` turns each into actions."""

    ATTACH = "attach R"
    REPLACE = "replace R's stale connection"
    DETACH = "detach R"
    SAY_WAITING = '"waiting" to R'
    REFUSE_ROLE_TAKEN = "refuse role_taken"
    REFUSE_USED = "refuse used"
    REFUSE_RESUME = "refuse not_resumable"
    PAIR = "pair"
    FORWARD = "forward to P"
    KEEP_VERIFIER = "keep R's verifier"
    SUSPEND = "suspend R"
    SAY_RESUMED = '"resumed" to R, then P'
    REFUSE_END = "error bad_request to R, free R"
    FINISH_ENDED = "finish ended"
    FINISH_BURNT = "finish failed"
    FINISH_LEFT = "finish ended (R left)"
    FINISH_MISBEHAVED = "finish ended (R broke the protocol)"
    FINISH_EXPIRED = "finish expired"
    FINISH_IDLE = "finish ended (idle)"
    FINISH_NOT_BACK = "finish ended (not back in time)"
    FINISH_DRAINED = "finish (draining)"
    FINISH_SHUTDOWN = "finish (shutdown)"
    FINISH_DELETED = "finish ended (API)"
    MARK_CONTESTED = "mark contested"
    REISSUE = "reissue: new code to the technician; finish failed; error used to the agent"


class When(enum.Enum):
    """A condition on the rendezvous' data; the first rule whose condition holds wins."""

    ALWAYS = "always"
    EXPIRED = "now ≥ expiry"
    IDLE = "idle timeout passed"
    GRACE_OVER = "grace period over"
    CAN_SUSPEND = "it gave a verifier, grace > 0"
    VERIFIER_MALFORMED = "malformed verifier"
    RESUME_REFUSED = "resume refused"
    CONTESTED = "someone else claimed the code"


@dataclass(frozen=True)
class Rule:
    next: Phase
    actions: tuple[Do, ...] = ()
    when: When = When.ALWAYS


Rules = tuple[Rule, ...]

WAITING = {Role.AGENT: Phase.AGENT_WAITING, Role.TECHNICIAN: Phase.TECHNICIAN_WAITING}
AWAY = {Role.AGENT: Phase.AGENT_AWAY, Role.TECHNICIAN: Phase.TECHNICIAN_AWAY}
WAITING_PHASES = (Phase.AGENT_WAITING, Phase.TECHNICIAN_WAITING, Phase.CLAIMED)
AWAY_PHASES = (Phase.AGENT_AWAY, Phase.TECHNICIAN_AWAY, Phase.BOTH_AWAY)
PAIRED_PHASES = (Phase.PAIRED, *AWAY_PHASES)
LIVE_PHASES = (Phase.EMPTY, *WAITING_PHASES, *PAIRED_PHASES)

#: Who is connected in each phase.
PRESENT: dict[Phase, frozenset[Role]] = {
    Phase.EMPTY: frozenset(),
    Phase.AGENT_WAITING: frozenset({Role.AGENT}),
    Phase.TECHNICIAN_WAITING: frozenset({Role.TECHNICIAN}),
    Phase.CLAIMED: frozenset(Role),
    Phase.PAIRED: frozenset(Role),
    Phase.AGENT_AWAY: frozenset({Role.TECHNICIAN}),
    Phase.TECHNICIAN_AWAY: frozenset({Role.AGENT}),
    Phase.BOTH_AWAY: frozenset(),
    Phase.CLOSED: frozenset(),
}


def phase_with(present: frozenset[Role], paired: bool) -> Phase:
    """The phase in which exactly ``present`` are connected."""
    for phase in PAIRED_PHASES if paired else (Phase.EMPTY, *WAITING_PHASES):
        if PRESENT[phase] == present:
            return phase
    raise AssertionError(f"no phase with {sorted(present)} present")


def _build() -> dict[tuple[Phase, Input], Rules]:
    table: dict[tuple[Phase, Input], Rules] = {}

    def rule(phase: Phase, kind: Kind, role: Role | None, *rules: Rule) -> None:
        table[phase, Input.of(kind, role)] = rules

    for role in Role:
        peer = role.peer
        # Claims.
        rule(Phase.EMPTY, Kind.CLAIM, role, Rule(WAITING[role], (Do.ATTACH, Do.SAY_WAITING)))
        rule(WAITING[role], Kind.CLAIM, role, Rule(WAITING[role], (Do.REFUSE_ROLE_TAKEN,)))
        rule(WAITING[peer], Kind.CLAIM, role, Rule(Phase.CLAIMED, (Do.ATTACH, Do.SAY_WAITING)))
        rule(Phase.CLAIMED, Kind.CLAIM, role, Rule(Phase.CLAIMED, (Do.REFUSE_ROLE_TAKEN,)))
        # An end of a waiting session leaves, ends or burns.
        for phase in (WAITING[role], Phase.CLAIMED):
            without = phase_with(PRESENT[phase] - {role}, paired=False)
            for kind in (Kind.LEFT, Kind.DROPPED):
                rule(phase, kind, role, Rule(without, (Do.DETACH,)))
            rule(phase, Kind.END, role, Rule(Phase.CLOSED, (Do.FINISH_ENDED,)))
            rule(phase, Kind.BURN, role, Rule(Phase.CLOSED, (Do.FINISH_BURNT,)))
        # An end of a paired session (while it is here).
        for phase in (Phase.PAIRED, AWAY[peer]):
            away = phase_with(PRESENT[phase] - {role}, paired=True)
            forward = (Do.FORWARD,) if phase is Phase.PAIRED else ()
            rule(phase, Kind.BINARY, role, Rule(phase, forward))
            rule(
                phase,
                Kind.RESUMABLE,
                role,
                Rule(Phase.CLOSED, (Do.FINISH_MISBEHAVED,), When.VERIFIER_MALFORMED),
                Rule(phase, (Do.KEEP_VERIFIER,)),
            )
            rule(phase, Kind.END, role, Rule(Phase.CLOSED, (Do.FINISH_ENDED,)))
            rule(phase, Kind.BURN, role, Rule(Phase.CLOSED, (Do.FINISH_BURNT,)))
            rule(phase, Kind.LEFT, role, Rule(Phase.CLOSED, (Do.FINISH_LEFT,)))
            rule(
                phase,
                Kind.DROPPED,
                role,
                Rule(away, (Do.SUSPEND,), When.CAN_SUSPEND),
                Rule(Phase.CLOSED, (Do.FINISH_LEFT,)),
            )
        # Resumes: each checked first (verifier, technician, grace period).
        for phase, replace, back in (
            (Phase.PAIRED, True, Phase.PAIRED),
            (AWAY[role], False, Phase.PAIRED),
            (AWAY[peer], True, AWAY[peer]),
            (Phase.BOTH_AWAY, False, AWAY[peer]),
        ):
            attach = Do.REPLACE if replace else Do.ATTACH
            say = Do.SAY_RESUMED if back is Phase.PAIRED else Do.SAY_WAITING
            rule(
                phase,
                Kind.RESUME,
                role,
                Rule(phase, (Do.REFUSE_RESUME,), When.RESUME_REFUSED),
                Rule(back, (attach, say)),
            )

    # The relay's own inputs.
    for phase in LIVE_PHASES:
        rule(phase, Kind.PAIR, None, Rule(phase))
        rule(phase, Kind.TIMER, None, Rule(phase))
        rule(phase, Kind.SHUTDOWN, None, Rule(Phase.CLOSED, (Do.FINISH_SHUTDOWN,)))
        rule(phase, Kind.DELETE, None, Rule(Phase.CLOSED, (Do.FINISH_DELETED,)))
        drained = phase in WAITING_PHASES
        goes_on = Rule(phase)
        rule(
            phase,
            Kind.DRAIN,
            None,
            Rule(Phase.CLOSED, (Do.FINISH_DRAINED,)) if drained else goes_on,
        )
    rule(Phase.CLAIMED, Kind.PAIR, None, Rule(Phase.PAIRED, (Do.PAIR,)))
    # Squatting: someone else claimed the agent role (or used up its claims). The
    # technician gets a fresh code at once if here, else when it claims.
    for phase in LIVE_PHASES:
        rule(phase, Kind.CONTESTED, None, Rule(phase))
    rule(Phase.AGENT_WAITING, Kind.CONTESTED, None, Rule(Phase.AGENT_WAITING, (Do.MARK_CONTESTED,)))
    for phase in (Phase.TECHNICIAN_WAITING, Phase.CLAIMED):
        rule(phase, Kind.CONTESTED, None, Rule(Phase.CLOSED, (Do.REISSUE,)))
    for phase, claimed in (
        (Phase.EMPTY, Phase.TECHNICIAN_WAITING),
        (Phase.AGENT_WAITING, Phase.CLAIMED),
    ):
        rule(
            phase,
            Kind.CLAIM,
            Role.TECHNICIAN,
            Rule(Phase.CLOSED, (Do.ATTACH, Do.REISSUE), When.CONTESTED),
            Rule(claimed, (Do.ATTACH, Do.SAY_WAITING)),
        )
    for phase in WAITING_PHASES:
        rule(
            phase,
            Kind.TIMER,
            None,
            Rule(Phase.CLOSED, (Do.FINISH_EXPIRED,), When.EXPIRED),
            Rule(phase),
        )
    rule(
        Phase.PAIRED,
        Kind.TIMER,
        None,
        Rule(Phase.CLOSED, (Do.FINISH_IDLE,), When.IDLE),
        Rule(Phase.PAIRED),
    )
    for phase in AWAY_PHASES:
        rule(
            phase,
            Kind.TIMER,
            None,
            Rule(Phase.CLOSED, (Do.FINISH_NOT_BACK,), When.GRACE_OVER),
            Rule(phase),
        )

    # Nobody is here: news from ends already gone changes nothing.
    for phase in (Phase.EMPTY, Phase.CLOSED):
        for input_ in Input:
            if input_.kind in FROM_AN_END - {Kind.CLAIM, Kind.RESUME}:
                table.setdefault((phase, input_), (Rule(phase),))
    for input_ in Input:
        if input_.role is None:
            table[Phase.CLOSED, input_] = (Rule(Phase.CLOSED),)
    return table


#: (phase, input) → the rules to try in order. Pairs not here: :func:`closing_default`.
TRANSITIONS: dict[tuple[Phase, Input], Rules] = _build()


def closing_default(phase: Phase, input_: Input) -> Rule:
    """The refusal for any (phase, input) pair not in the table."""
    if input_.kind is Kind.CLAIM:
        return Rule(phase, (Do.REFUSE_USED,))
    if input_.kind is Kind.RESUME:
        return Rule(phase, (Do.REFUSE_RESUME,))
    assert input_.role is not None, f"{input_} is in the table for every phase"
    if phase in PAIRED_PHASES:
        return Rule(Phase.CLOSED, (Do.FINISH_MISBEHAVED,))
    return Rule(phase_with(PRESENT[phase] - {input_.role}, paired=False), (Do.REFUSE_END,))


def peer_gone(reason: str) -> str:
    return envelope.encode({"type": "peer_gone", "reason": reason})


def _misbehaviour(event: Event, paired: bool) -> str:
    """What an end did wrong, as the relay logs, stores and tells the peer."""
    kind = event.input.kind
    if kind is Kind.BINARY:
        what = "sent data before pairing"
    elif kind is Kind.MALFORMED or (kind is Kind.RESUMABLE and paired):
        what = "sent a malformed message"  # a resumable reaches here only if malformed
    else:
        what = "sent an unexpected message"
    return f"the {event.input.role} {what}"


# The machine ------------------------------------------------------------------------


@dataclass(eq=False)
class Rendezvous:
    """The phase of one session at this relay, and the facts its rules read."""

    #: When the session's code expires (waiting phases).
    expires_at: float
    #: Seconds a paired session waits for an end that dropped (0: no resume).
    resume_grace: float
    #: Seconds without forwarded binary after which a paired session ends.
    idle_timeout: float
    phase: Phase = Phase.EMPTY
    #: Last time binary was forwarded; the adapter's hot path writes it directly.
    last_activity: float = 0.0
    #: When the first end dropped (None: not suspended).
    suspended_at: float | None = None
    #: SHA-256 (hex) of each end's resume id, once it asked to be resumable.
    verifiers: dict[Role, str] = field(default_factory=dict)
    #: An agent claim was refused while the agent role was held (someone else has it).
    contested: bool = False

    @property
    def paired(self) -> bool:
        return self.phase in PAIRED_PHASES

    @property
    def closed(self) -> bool:
        return self.phase is Phase.CLOSED

    def rule_for(self, event: Event) -> Rule:
        """The rule the table picks for ``event`` in the current phase."""
        rules = TRANSITIONS.get((self.phase, event.input))
        if rules is None:
            return closing_default(self.phase, event.input)
        for rule in rules:
            if self._holds(rule.when, event):
                return rule
        raise AssertionError(f"no rule holds for {self.phase}, {event.input}")

    def handle(self, event: Event) -> list[Action]:
        """Apply ``event``: move to the next phase; return what the adapter must do."""
        rule = self.rule_for(event)
        actions: list[Action] = []
        for do in rule.actions:
            _PERFORM[do](self, event, actions)
        self.phase = rule.next
        return actions

    # Conditions -------------------------------------------------------------------

    def _holds(self, when: When, event: Event) -> bool:
        now = event.now
        if when is When.ALWAYS:
            return True
        if when is When.EXPIRED:
            return now >= self.expires_at
        if when is When.IDLE:
            return now - self.last_activity >= self.idle_timeout
        if when is When.GRACE_OVER:
            assert self.suspended_at is not None
            return now - self.suspended_at >= self.resume_grace
        if when is When.CAN_SUSPEND:
            return event.input.role in self.verifiers and self.resume_grace > 0
        if when is When.VERIFIER_MALFORMED:
            return event.verifier is None
        if when is When.CONTESTED:
            return self.contested or event.contested
        assert when is When.RESUME_REFUSED
        return self._resume_refusal(event) is not None

    def _resume_refusal(self, event: Event) -> tuple[str, bool] | None:
        """Why a resume of this (paired) session is refused, and whether it was a guess."""
        role = event.input.role
        assert role is not None
        verifier = self.verifiers.get(role)
        given = hashlib.sha256(event.resume_id).hexdigest()
        if verifier is None or not hmac.compare_digest(verifier, given):
            return "wrong resume id", True
        if not event.authorised:
            return "not the session's technician", False
        if self.suspended_at is not None and event.now - self.suspended_at >= self.resume_grace:
            return "the grace period is over", False
        return None

    def grace_left(self, now: float) -> int:
        assert self.suspended_at is not None
        return max(0, math.ceil(self.suspended_at + self.resume_grace - now))

    # What each Do does ----------------------------------------------------------------

    def _attach(self, event: Event, actions: list[Action]) -> None:
        actions.append(Attach(_role(event)))

    def _replace(self, event: Event, actions: list[Action]) -> None:
        actions.append(Attach(_role(event), replacing=True))

    def _detach(self, event: Event, actions: list[Action]) -> None:
        role = _role(event)
        actions.append(Detach(role))
        if PRESENT[self.phase] == {role}:
            actions.append(Forget())

    def _say_waiting(self, event: Event, actions: list[Action]) -> None:
        if self.suspended_at is None:
            left = max(0, math.ceil(self.expires_at - event.now))
        else:
            left = self.grace_left(event.now)
        text = envelope.encode({"type": "waiting", "expires_in": left})
        actions.append(Send(_role(event), text))

    def _refuse_role_taken(self, event: Event, actions: list[Action]) -> None:
        actions.append(RefuseClaim(ErrorCode.ROLE_TAKEN))

    def _refuse_used(self, event: Event, actions: list[Action]) -> None:
        actions.append(RefuseClaim(ErrorCode.USED))

    def _refuse_resume(self, event: Event, actions: list[Action]) -> None:
        refusal = self._resume_refusal(event) if self.paired else None
        why, guess = refusal or ("no such live session", True)
        actions.append(RefuseResume(why, guess))

    def _pair(self, event: Event, actions: list[Action]) -> None:
        self.last_activity = event.now
        actions.append(Pair(event.now))

    def _forward(self, event: Event, actions: list[Action]) -> None:
        actions.append(Forward(_role(event)))

    def _keep_verifier(self, event: Event, actions: list[Action]) -> None:
        assert event.verifier is not None
        self.verifiers[_role(event)] = event.verifier

    def _suspend(self, event: Event, actions: list[Action]) -> None:
        role = _role(event)
        if self.suspended_at is None:
            self.suspended_at = event.now
        left = self.grace_left(event.now)
        actions += [Detach(role), Suspended(role, left)]
        if role.peer in PRESENT[self.phase]:
            notice = envelope.encode({"type": "peer_suspended", "grace": left})
            actions.append(Send(role.peer, notice))

    def _say_resumed(self, event: Event, actions: list[Action]) -> None:
        role = _role(event)
        self.suspended_at = None
        self.last_activity = event.now
        resumed = envelope.encode({"type": "resumed"})
        # This end first: "resumed" precedes anything the peer's task forwards to it.
        actions += [Send(role, resumed), Send(role.peer, resumed)]

    def _refuse_end(self, event: Event, actions: list[Action]) -> None:
        role = _role(event)
        why = _misbehaviour(event, paired=False)
        actions.append(Refused(role, envelope.error(ErrorCode.BAD_REQUEST), why))
        self._detach(event, actions)

    def _finish_to_peer(self, event: Event, actions: list[Action], state: SessionState) -> None:
        role = _role(event)
        if event.input.kind is Kind.BURN:
            why = f"the {role} burnt the session code"
        elif event.input.kind is Kind.END:
            why = f"the {role} ended the session"
        else:
            why = event.reason
        actions.append(Finish(state, why, {role.peer: peer_gone(why)}, detail=event.detail))

    def _finish_ended(self, event: Event, actions: list[Action]) -> None:
        self._finish_to_peer(event, actions, SessionState.ENDED)

    def _finish_burnt(self, event: Event, actions: list[Action]) -> None:
        self._finish_to_peer(event, actions, SessionState.FAILED)

    def _finish_misbehaved(self, event: Event, actions: list[Action]) -> None:
        role = _role(event)
        why = _misbehaviour(event, paired=True)
        notices = {role: envelope.error(ErrorCode.BAD_REQUEST), role.peer: peer_gone(why)}
        actions.append(Finish(SessionState.ENDED, why, notices))

    def _finish_all(
        self, actions: list[Action], state: SessionState | None, why: str, notice: str
    ) -> None:
        actions.append(Finish(state, why, dict.fromkeys(PRESENT[self.phase], notice)))

    def _finish_expired(self, event: Event, actions: list[Action]) -> None:
        why = "nobody joined before the code expired"
        self._finish_all(actions, SessionState.EXPIRED, why, envelope.error(ErrorCode.EXPIRED))

    def _finish_idle(self, event: Event, actions: list[Action]) -> None:
        why = "nothing was forwarded for too long"
        self._finish_all(actions, SessionState.ENDED, why, envelope.error(ErrorCode.IDLE))

    def _finish_not_back(self, event: Event, actions: list[Action]) -> None:
        absent = [str(role) for role in Role if role not in PRESENT[self.phase]]
        why = (
            f"the {' and the '.join(absent)} did not reconnect within {self.resume_grace:g} seconds"
        )
        self._finish_all(actions, SessionState.ENDED, why, peer_gone(why))

    def _finish_drained(self, event: Event, actions: list[Action]) -> None:
        shutdown = envelope.error(ErrorCode.SHUTDOWN)
        self._finish_all(actions, None, "the relay is draining", shutdown)

    def _finish_shutdown(self, event: Event, actions: list[Action]) -> None:
        # A waiting session stays waiting, so its code still works once the relay is back.
        state = SessionState.ENDED if self.paired else None
        shutdown = envelope.error(ErrorCode.SHUTDOWN)
        self._finish_all(actions, state, "the relay shut down", shutdown)

    def _finish_deleted(self, event: Event, actions: list[Action]) -> None:
        ended = envelope.error(ErrorCode.ENDED)
        self._finish_all(actions, SessionState.ENDED, event.reason, ended)

    def _mark_contested(self, event: Event, actions: list[Action]) -> None:
        self.contested = True

    def _reissue(self, event: Event, actions: list[Action]) -> None:
        why = "someone else claimed this code; the technician got a new one"
        actions.append(Reissue(Role.TECHNICIAN))
        notices = {Role.AGENT: envelope.error(ErrorCode.USED)}
        actions.append(Finish(SessionState.FAILED, why, notices))


def _role(event: Event) -> Role:
    role = event.input.role
    assert role is not None, f"{event.input} names no role"
    return role


_PERFORM: dict[Do, Callable[[Rendezvous, Event, list[Action]], None]] = {
    Do.ATTACH: Rendezvous._attach,
    Do.REPLACE: Rendezvous._replace,
    Do.DETACH: Rendezvous._detach,
    Do.SAY_WAITING: Rendezvous._say_waiting,
    Do.REFUSE_ROLE_TAKEN: Rendezvous._refuse_role_taken,
    Do.REFUSE_USED: Rendezvous._refuse_used,
    Do.REFUSE_RESUME: Rendezvous._refuse_resume,
    Do.PAIR: Rendezvous._pair,
    Do.FORWARD: Rendezvous._forward,
    Do.KEEP_VERIFIER: Rendezvous._keep_verifier,
    Do.SUSPEND: Rendezvous._suspend,
    Do.SAY_RESUMED: Rendezvous._say_resumed,
    Do.REFUSE_END: Rendezvous._refuse_end,
    Do.FINISH_ENDED: Rendezvous._finish_ended,
    Do.FINISH_BURNT: Rendezvous._finish_burnt,
    Do.FINISH_LEFT: Rendezvous._finish_ended,
    Do.FINISH_MISBEHAVED: Rendezvous._finish_misbehaved,
    Do.FINISH_EXPIRED: Rendezvous._finish_expired,
    Do.FINISH_IDLE: Rendezvous._finish_idle,
    Do.FINISH_NOT_BACK: Rendezvous._finish_not_back,
    Do.FINISH_DRAINED: Rendezvous._finish_drained,
    Do.FINISH_SHUTDOWN: Rendezvous._finish_shutdown,
    Do.FINISH_DELETED: Rendezvous._finish_deleted,
    Do.MARK_CONTESTED: Rendezvous._mark_contested,
    Do.REISSUE: Rendezvous._reissue,
}
