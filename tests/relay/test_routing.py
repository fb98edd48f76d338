"""Routing rules of relay.routing, one test per rule (issue 17, acceptance point 3)."""

from __future__ import annotations

from relay.routing import (
    Availability,
    HandlingTimes,
    RequestNeeds,
    RoutingPolicy,
    TechnicianState,
    Tier,
    dispatch,
    estimate_wait,
    route,
)

POLICY = RoutingPolicy(relax=("language", "category"), team_queue="team")


def tech(
    name: str,
    skills: str,
    capacity: int = 1,
    availability: Availability = Availability.AVAILABLE,
    holding: int = 0,
    idle_since: float = 0.0,
) -> TechnicianState:
    return TechnicianState(
        name, name, frozenset(skills.split(",")), capacity, availability, holding, idle_since
    )


def need(
    rid: str = "r1",
    category: str = "printing",
    language: str = "es",
    created_at: float = 0.0,
    **kwargs: object,
) -> RequestNeeds:
    return RequestNeeds(rid, category, language, created_at, **kwargs)  # type: ignore[arg-type]


def test_skill_match_wins_over_a_less_busy_technician_without_the_skill() -> None:
    techs = [tech("ana", "network,es"), tech("bo", "printing,es", capacity=3, holding=1)]
    decision = route(need(), techs, POLICY)
    assert decision.technician_id == "bo"
    assert decision.tier is Tier.SKILL


def test_relaxed_skill_fallback_follows_the_ranked_list() -> None:
    # Nobody speaks Spanish: the language is relaxed first, the category kept.
    techs = [tech("ana", "network,en"), tech("bo", "printing,en")]
    decision = route(need(), techs, POLICY)
    assert (decision.technician_id, decision.tier, decision.relaxed) == (
        "bo",
        Tier.RELAXED,
        ("language",),
    )
    # Nobody knows printing nor Spanish: both relaxed, the least busy of all wins.
    techs = [tech("ana", "network,en", capacity=2, holding=1), tech("cy", "network,en")]
    decision = route(need(), techs, POLICY)
    assert (decision.technician_id, decision.relaxed) == ("cy", ("language", "category"))


def test_a_relax_list_entry_can_name_one_skill() -> None:
    policy = RoutingPolicy(relax=("es",))
    decision = route(need(), [tech("bo", "printing,en")], policy)
    assert decision.relaxed == ("es",)
    # Relaxing Spanish does not relax French: French goes to the team queue.
    assert route(need(language="fr"), [tech("bo", "printing,en")], policy).tier is Tier.TEAM


def test_team_queue_takes_what_no_relaxation_can_place() -> None:
    policy = RoutingPolicy(relax=(), team_queue="team")
    decision = route(need(), [tech("ana", "network,en")], policy)
    assert (decision.technician_id, decision.tier) == ("ana", Tier.TEAM)
    # Transferred to the team queue explicitly: anyone present.
    decision = route(need(queue="team"), [tech("ana", "network,en")], POLICY)
    assert decision.tier is Tier.TEAM


def test_a_skilled_technician_who_is_busy_is_waited_for_rather_than_relaxing() -> None:
    techs = [tech("bo", "printing,es", holding=1), tech("ana", "network,en")]
    assert not route(need(), techs, POLICY).routed


def test_capacity_a_technician_at_capacity_gets_nothing_new() -> None:
    bo = tech("bo", "printing,es", capacity=2, holding=2)
    assert bo.effective is Availability.BUSY
    assert not route(need(), [bo], POLICY).routed
    offers = dispatch(
        [need("r1"), need("r2", created_at=1), need("r3", created_at=2)],
        [tech("bo", "printing,es", capacity=2)],
        POLICY,
    )
    assert [o.request_id for o in offers] == ["r1", "r2"]


def test_least_busy_then_longest_idle_among_equals() -> None:
    techs = [
        tech("ana", "printing,es", capacity=3, holding=1, idle_since=0),
        tech("bo", "printing,es", capacity=3, holding=0, idle_since=50),
        tech("cy", "printing,es", capacity=3, holding=0, idle_since=10),
    ]
    assert route(need(), techs, POLICY).technician_id == "cy"


def test_decline_passes_the_request_to_the_next_technician() -> None:
    techs = [tech("ana", "printing,es", idle_since=0), tech("bo", "printing,es", idle_since=5)]
    assert route(need(), techs, POLICY).technician_id == "ana"
    after = route(need(declined_by=frozenset({"ana"})), techs, POLICY)
    assert after.technician_id == "bo"
    # Everyone skilled declined: the request falls back down the ladder.
    techs.append(tech("cy", "printing,en"))
    last = route(need(declined_by=frozenset({"ana", "bo"})), techs, POLICY)
    assert (last.technician_id, last.tier) == ("cy", Tier.RELAXED)


def test_transfer_to_a_technician_or_a_queue() -> None:
    techs = [tech("ana", "printing,es"), tech("bo", "network,en", holding=0)]
    direct = route(need(direct_to="bo"), techs, POLICY)
    assert (direct.technician_id, direct.tier) == ("bo", Tier.DIRECT)
    # Transferred to the network queue: network replaces printing and Spanish.
    queued = route(need(queue="network"), techs, POLICY)
    assert queued.technician_id == "bo"
    # A direct transfer to someone busy waits for them.
    busy = [tech("ana", "printing,es"), tech("bo", "network,en", holding=1)]
    assert not route(need(direct_to="bo"), busy, POLICY).routed


def test_availability_changes_take_effect_at_once() -> None:
    ana = tech("ana", "printing,es", availability=Availability.AWAY)
    bo = tech("bo", "printing,en")
    # Ana away: she is not waited for, and the language is relaxed for Bo.
    assert route(need(), [ana, bo], POLICY).technician_id == "bo"
    busy_ana = tech("ana", "printing,es", availability=Availability.BUSY)
    # Ana busy (by choice): she may come back, so the request waits for her.
    assert not route(need(), [busy_ana, bo], POLICY).routed
    back = tech("ana", "printing,es")
    assert route(need(), [back, bo], POLICY).technician_id == "ana"


def test_estimate_counts_only_requests_the_same_technicians_serve() -> None:
    techs = [tech("bo", "printing,es", capacity=1, holding=1), tech("ana", "network,en")]
    waiting = [
        need("a", created_at=0),
        need("net", category="network", language="en", created_at=1),
        need("b", created_at=2),
    ]
    handling = HandlingTimes({"bo": [300.0, 500.0]})
    mine = estimate_wait(waiting[2], waiting, techs, POLICY, handling)
    assert mine.position == 2
    # Bo's one seat frees every 400 s on average; one request is ahead: 800 s.
    assert mine.seconds == 800
    first = estimate_wait(waiting[0], waiting, techs, POLICY, handling)
    assert (first.position, first.seconds) == (1, 400)
    net = estimate_wait(waiting[1], waiting, techs, POLICY, handling)
    assert (net.position, net.seconds) == (1, 0)


def test_a_request_ahead_counts_by_the_share_of_seats_it_can_use() -> None:
    # "a" can go to Ana or Bo; "b" only to Bo. For "b", "a" is half a request ahead.
    techs = [tech("ana", "printing,en", holding=1), tech("bo", "printing,es,en", holding=1)]
    waiting = [need("a", language="en", created_at=0), need("b", created_at=1)]
    handling = HandlingTimes({"bo": [600.0]})
    estimate = estimate_wait(waiting[1], waiting, techs, POLICY, handling)
    assert (estimate.position, estimate.seconds) == (2, 900)


def test_while_everyone_is_away_every_request_ahead_counts() -> None:
    away = [tech("bo", "printing,es", availability=Availability.AWAY)]
    waiting = [need("a", created_at=0), need("b", created_at=1)]
    for technicians in (away, []):
        estimate = estimate_wait(waiting[1], waiting, technicians, POLICY, HandlingTimes())
        assert estimate.position == 2 and estimate.seconds > 0
