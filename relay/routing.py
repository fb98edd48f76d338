"""Routing help requests to technicians, and the customer's wait estimate (pure).

No clock, no store, no I/O: the caller passes the technicians as they are now, the
requests, the operator's policy and ``now``. :mod:`relay.helpqueue` feeds it from
the store; ``bench/queue_day.py`` replays a synthetic day through it with a fake clock.

Rules (in order; the first that yields a technician wins)::

    needs        a request needs its category and its language as skills.
    free         a technician is free when their availability is ``available`` and
                 they hold fewer requests (offered or in session) than their capacity.
                 At capacity they count as ``busy`` whatever they set (effective
                 availability); ``away`` is never offered anything.
    declined     a technician who declined (or transferred away) a request is never
                 offered it again.
    1. skill     free technicians who have every skill the request needs.
    2. relaxed   the operator's ranked relax list, one entry at a time, cumulatively:
                 after relaxing entry k, the request needs its skills minus entries
                 1..k. An entry names a skill (``es``) or a kind (``language``,
                 ``category``).
    3. team      no technician, even busy, could take it after relaxing every entry:
                 the request goes to the operator's team queue, where any technician
                 who is free may be offered it (longest waiting first).
    tie-break    among equals: fewest requests held, then longest idle (earliest
                 ``idle_since``), then name.
    wait         otherwise the request waits, in arrival order, for a technician of
                 the best tier that has one at all (busy ones included).

A request transferred to a technician is offered to that technician only; one
transferred to a queue (a skill, or the team queue) needs that skill instead of its
category and language.

The estimate (:func:`estimate_wait`): the requests ahead of this one that the same
technicians would serve (each counted by the share of its technicians' seats that
are also this one's), plus this one, less the free seats, times the technicians'
recent mean handling time divided by their seats (one seat frees every mean /
seats seconds on average).
"""

from __future__ import annotations

import enum
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

#: Relax-list entries that name a kind of skill rather than one skill.
KINDS = ("category", "language")

#: Handling time assumed for technicians with no finished session yet (seconds).
DEFAULT_HANDLING_SECONDS = 600.0


class Availability(enum.StrEnum):
    """What a technician says about themselves; ``busy`` is also implied at capacity."""

    AVAILABLE = "available"
    BUSY = "busy"
    AWAY = "away"


class Tier(enum.StrEnum):
    """How a routing decision was reached (kept on the request, counted by the bench)."""

    SKILL = "skill"
    RELAXED = "relaxed"
    TEAM = "team"
    DIRECT = "direct"  # transferred to one technician by name


@dataclass(frozen=True)
class TechnicianState:
    """One technician as routing sees them at ``now``."""

    id: str
    name: str
    skills: frozenset[str]
    capacity: int
    availability: Availability
    holding: int  # requests offered to them or in session with them
    idle_since: float

    @property
    def effective(self) -> Availability:
        """``busy`` at capacity, else what they set."""
        if self.availability is Availability.AVAILABLE and self.holding >= self.capacity:
            return Availability.BUSY
        return self.availability

    @property
    def free(self) -> bool:
        return self.effective is Availability.AVAILABLE


@dataclass(frozen=True)
class RequestNeeds:
    """What one waiting request asks of a technician."""

    id: str
    category: str
    language: str
    created_at: float
    declined_by: frozenset[str] = frozenset()
    #: Set by a transfer: a technician id (only they are offered it) ...
    direct_to: str | None = None
    #: ... or a queue: a skill that replaces category and language, or the team queue.
    queue: str | None = None

    def skills(self) -> dict[str, str]:
        """The needed skills by kind."""
        if self.queue is not None:
            return {"queue": self.queue}
        return {"category": self.category, "language": self.language}


@dataclass(frozen=True)
class RoutingPolicy:
    """What the operator sets: the ranked relax list and the team queue's name."""

    relax: tuple[str, ...] = ("language",)
    team_queue: str = "team"


@dataclass(frozen=True)
class Decision:
    """Where a request goes: a technician (``technician_id``) or nobody yet."""

    technician_id: str | None
    tier: Tier | None
    relaxed: tuple[str, ...] = ()

    @property
    def routed(self) -> bool:
        return self.technician_id is not None


WAIT = Decision(None, None)


def _ladder(
    needs: RequestNeeds, policy: RoutingPolicy
) -> list[tuple[frozenset[str], tuple[str, ...]]]:
    """The skill sets to try, strictest first, with what was relaxed to reach each."""
    skills = needs.skills()
    if needs.queue is not None:
        return [(frozenset(skills.values()), ())]
    steps: list[tuple[frozenset[str], tuple[str, ...]]] = [(frozenset(skills.values()), ())]
    relaxed: list[str] = []
    for entry in policy.relax:
        dropped = {v for k, v in skills.items() if entry in (k, v)}
        if not dropped:
            continue
        skills = {k: v for k, v in skills.items() if v not in dropped}
        relaxed.append(entry)
        steps.append((frozenset(skills.values()), tuple(relaxed)))
    return steps


def _rank(tech: TechnicianState) -> tuple[int, float, str]:
    return (tech.holding, tech.idle_since, tech.name)


def eligible_tier(
    needs: RequestNeeds, technicians: Sequence[TechnicianState], policy: RoutingPolicy
) -> tuple[Tier, tuple[str, ...], list[TechnicianState]]:
    """The best tier that has anyone at all (free or not, never away or declined) and
    who is in it. The team queue is everyone not away who has not declined."""
    present = [
        t
        for t in technicians
        if t.availability is not Availability.AWAY and t.id not in needs.declined_by
    ]
    if needs.direct_to is not None:
        return Tier.DIRECT, (), [t for t in present if t.id == needs.direct_to]
    if needs.queue == policy.team_queue:
        return Tier.TEAM, (), present
    for index, (required, relaxed) in enumerate(_ladder(needs, policy)):
        group = [t for t in present if required <= t.skills]
        if group:
            return (Tier.SKILL if index == 0 else Tier.RELAXED), relaxed, group
    return Tier.TEAM, (), present


def route(
    needs: RequestNeeds, technicians: Sequence[TechnicianState], policy: RoutingPolicy
) -> Decision:
    """The technician to offer ``needs`` to now, or :data:`WAIT` (see the module rules).

    A request whose best tier has technicians waits for them even while they are
    busy: a relaxed or team match is used only when nobody could ever take it at the
    stricter tier (not counting those who are away or declined it).
    """
    tier, relaxed, group = eligible_tier(needs, technicians, policy)
    free = [t for t in group if t.free]
    if not free:
        return WAIT
    best = min(free, key=_rank)
    return Decision(best.id, tier, relaxed)


@dataclass
class Assignment:
    """One offer made by :func:`dispatch`."""

    request_id: str
    decision: Decision


def dispatch(
    waiting: Sequence[RequestNeeds],
    technicians: Sequence[TechnicianState],
    policy: RoutingPolicy,
) -> list[Assignment]:
    """Offer waiting requests, oldest first, to free technicians; each offer takes one
    unit of the technician's capacity before the next request is routed."""
    states = {t.id: t for t in technicians}
    offers: list[Assignment] = []
    for needs in sorted(waiting, key=lambda r: (r.created_at, r.id)):
        if not any(t.free for t in states.values()):
            break
        decision = route(needs, list(states.values()), policy)
        if decision.technician_id is None:
            continue
        chosen = states[decision.technician_id]
        states[chosen.id] = TechnicianState(
            chosen.id,
            chosen.name,
            chosen.skills,
            chosen.capacity,
            chosen.availability,
            chosen.holding + 1,
            chosen.idle_since,
        )
        offers.append(Assignment(needs.id, decision))
    return offers


@dataclass(frozen=True)
class Estimate:
    """A waiting request's place: 1 = next for its technicians; seconds to wait."""

    position: int
    seconds: int


@dataclass
class HandlingTimes:
    """Recent handling times (seconds) per technician id, most recent last."""

    by_technician: Mapping[str, Sequence[float]] = field(default_factory=dict)

    def mean(self, technician_ids: Iterable[str]) -> float:
        samples = [s for tid in technician_ids for s in self.by_technician.get(tid, ())]
        return statistics.fmean(samples) if samples else DEFAULT_HANDLING_SECONDS


def estimate_wait(
    needs: RequestNeeds,
    waiting: Sequence[RequestNeeds],
    technicians: Sequence[TechnicianState],
    policy: RoutingPolicy,
    handling: HandlingTimes,
) -> Estimate:
    """Position and estimated wait of ``needs`` among ``waiting`` (see the module rules).

    ``waiting`` holds every request not yet offered to anyone, ``needs`` included.
    """
    return estimate_all(waiting, technicians, policy, handling)[needs.id]


def _alike(needs: RequestNeeds) -> tuple[object, ...]:
    """What routing sees of a request: requests alike have the same technicians."""
    return (needs.category, needs.language, needs.queue, needs.direct_to, needs.declined_by)


def estimate_all(
    waiting: Sequence[RequestNeeds],
    technicians: Sequence[TechnicianState],
    policy: RoutingPolicy,
    handling: HandlingTimes,
) -> dict[str, Estimate]:
    """Position and estimated wait of every request in ``waiting``, in one pass: the
    shares between kinds of request are worked out once per pair of kinds, then each
    request adds up the kinds seen before it (linear in the queue, not quadratic)."""
    ordered = sorted(waiting, key=lambda r: (r.created_at, r.id))
    kinds: dict[tuple[object, ...], tuple[list[TechnicianState], list[TechnicianState]]] = {}
    for needs in ordered:
        key = _alike(needs)
        if key in kinds:
            continue
        pool = list(technicians)
        _, _, group = eligible_tier(needs, pool, policy)
        if not group:
            # Nobody who could take it is here: count as if those away came back (busy).
            pool = [
                replace(t, availability=Availability.BUSY)
                if t.availability is Availability.AWAY
                else t
                for t in pool
            ]
            _, _, group = eligible_tier(needs, pool, policy)
        kinds[key] = (pool, group)
    examples = {_alike(n): n for n in reversed(ordered)}

    def share(mine: tuple[object, ...], theirs_key: tuple[object, ...]) -> float:
        """The part of a request of kind ``theirs_key`` that stands ahead of ``mine``:
        the share of its technicians' seats that ``mine`` can use too."""
        pool, group = kinds[mine]
        ids = {t.id for t in group}
        capacity_of = {t.id: t.capacity for t in pool}
        _, _, their_group = eligible_tier(examples[theirs_key], pool, policy)
        theirs = sum(t.capacity for t in their_group)
        ours = sum(capacity_of[t.id] for t in their_group if t.id in ids)
        # With no technician at all, everyone ahead is ahead.
        return ours / theirs if theirs else float(not ids)

    # Worked out once per kind (a handful), not per request (up to thousands).
    shares = {(mine, theirs): share(mine, theirs) for mine in kinds for theirs in kinds}
    seats = {key: _Seats.of(group, handling) for key, (_, group) in kinds.items()}
    seen: dict[tuple[object, ...], int] = {}
    result: dict[str, Estimate] = {}
    for needs in ordered:
        key = _alike(needs)
        position, ahead = 1, 0.0
        for other, count in seen.items():
            part = shares[key, other]
            if part > 0:
                position += count
                ahead += count * part
        seen[key] = seen.get(key, 0) + 1
        result[needs.id] = seats[key].wait(position, ahead)
    return result


@dataclass(frozen=True)
class _Seats:
    """What the wait of a kind of request depends on besides the queue before it."""

    capacity: int
    mean: float
    free: int

    @classmethod
    def of(cls, group: Sequence[TechnicianState], handling: HandlingTimes) -> _Seats:
        # Nobody present who could take it: the estimate assumes one technician returns.
        capacity = sum(t.capacity for t in group) or 1
        free = sum(max(0, t.capacity - t.holding) for t in group if t.free)
        return cls(capacity, handling.mean(t.id for t in group), free)

    def wait(self, position: int, ahead: float) -> Estimate:
        """The estimate for a request with ``ahead`` requests before it."""
        if ahead + 1 <= self.free:
            return Estimate(position, 0)
        # Seats free up one after another, one every mean / capacity seconds on average.
        seconds = (ahead + 1 - self.free) * self.mean / self.capacity
        return Estimate(position, max(0, round(seconds)))
