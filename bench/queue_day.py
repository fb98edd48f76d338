"""A synthetic day of help requests through the relay's real help queue (issue 17,
acceptance 5; record the figures in docs/PERFORMANCE.md, "Help queue").

The day: ``--requests`` requests (default 2,000) over ``--hours`` simulated hours
(default 8), arriving as a Poisson process whose rate peaks mid-morning and after
lunch; ``--technicians`` technicians (default 20) with mixed skills (two or three of
five categories, English, 40 % also Spanish) and a capacity of 1 or 2. Each request
needs a category (uneven mix) and a language (25 % Spanish); handling times are
log-normal around each technician's own mean (5 to 9 minutes). A technician accepts
an offer 15 s after it is made. Time is a fake clock; nothing sleeps.

Every request goes through :class:`relay.helpqueue.HelpQueue` on a real SQLite store
(``relay.sqlite_store``), exactly as the relay's REST API drives it: filing, offers by
:mod:`relay.routing`, accepts, sessions created and ended in the store, the estimate
the customer is shown when filing. The peer, in the same run and on the same day, is
first-come first-served to any free technician (``--peer``: skills ignored), the
routing a help desk without skills routing would have.

Reported: median and p90 wait (filing to accept), the share of requests taken by a
technician with both needed skills, the estimate's median absolute error (estimate
shown at filing against the real wait), each with the ratio against the peer; and
the cost of routing with 1,000 requests queued: one pure :func:`relay.routing.route`
call, one :func:`relay.routing.estimate_wait`, and one whole ``HelpQueue.dispatch``
pass (store reads included), and filing one request at the relay (stored, its event
recorded, routed: what ``POST /help/requests`` does) and the customer's first view of
it. Goal: routing one request under 5 ms at 1,000 queued (the filing figure).

Examples::

    python bench/queue_day.py
    python bench/queue_day.py --requests 200 --hours 1 --technicians 5 --json
"""

from __future__ import annotations

import argparse
import heapq
import json
import math
import random
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402

from protocol.categories import Category, issue_category_list  # noqa: E402
from protocol.identity import OrganisationSecret  # noqa: E402
from relay.help_records import RequestState  # noqa: E402
from relay.helpqueue import HelpQueue  # noqa: E402
from relay.outbox import Outbox  # noqa: E402
from relay.records import SessionState  # noqa: E402
from relay.routing import (  # noqa: E402
    Availability,
    HandlingTimes,
    RequestNeeds,
    RoutingPolicy,
    TechnicianState,
    estimate_wait,
    route,
)
from relay.sqlite_store import SQLiteStore  # noqa: E402

CATEGORIES = ("printing", "network", "email", "accounts", "hardware")
CATEGORY_MIX = (0.3, 0.25, 0.2, 0.15, 0.1)
ACCEPT_DELAY = 15.0
START = 1_700_000_000.0


class FakeClock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


@dataclass
class Tech:
    name: str
    skills: list[str]
    capacity: int
    mean_minutes: float


@dataclass
class Outcome:
    waits: list[float] = field(default_factory=list)
    matched: int = 0
    taken: int = 0
    estimate_errors: list[float] = field(default_factory=list)
    unserved: int = 0


def make_day(
    args: argparse.Namespace, rng: random.Random
) -> tuple[list[Tech], list[tuple[float, str, str]]]:
    techs = []
    for index in range(args.technicians):
        categories = rng.sample(CATEGORIES, rng.choice((2, 3)))
        languages = ["en"] + (["es"] if rng.random() < 0.4 else [])
        techs.append(
            Tech(f"tech{index:02d}", categories + languages, rng.choice((1, 2)), rng.uniform(5, 9))
        )
    seconds = args.hours * 3600

    def rate(t: float) -> float:  # two peaks: mid-morning and after lunch
        hour = t / 3600
        return 1.0 + 0.6 * math.exp(-((hour - 2) ** 2)) + 0.4 * math.exp(-((hour - 5.5) ** 2))

    peak = 2.0
    times: list[float] = []
    while len(times) < args.requests:
        t = rng.uniform(0, seconds)
        if rng.uniform(0, peak) < rate(t):
            times.append(t)
    times.sort()
    requests = [
        (t, rng.choices(CATEGORIES, CATEGORY_MIX)[0], "es" if rng.random() < 0.25 else "en")
        for t in times
    ]
    return techs, requests


def open_desk(directory: Path, org: OrganisationSecret) -> tuple[SQLiteStore, FakeClock, Outbox]:
    """A fresh relay store with the organisation's categories, a fake clock, an outbox
    with no connectors (events land in the audit log, as at a relay without a desk)."""
    store = SQLiteStore(directory)
    clock = FakeClock()
    document = issue_category_list(org, 1, 0, [Category(c, c) for c in CATEGORIES])
    store.set_categories(org.key_id, document.decode(), clock())
    return store, clock, Outbox(store, (), clock, lambda: "http://bench")


def run_day(
    techs: list[Tech], requests: list[tuple[float, str, str]], peer: bool, seed: int
) -> tuple[Outcome, float]:
    """One day through HelpQueue on a fresh SQLite store; the outcome and wall seconds."""
    rng = random.Random(seed)
    org = OrganisationSecret("Bench Org", Ed25519PrivateKey.generate())
    with tempfile.TemporaryDirectory() as directory:
        store, clock, outbox = open_desk(Path(directory), org)
        accounts = {}
        for tech in techs:
            account, _ = store.add_technician(tech.name, clock())
            skills = list(CATEGORIES) + ["en", "es"] if peer else tech.skills
            store.set_profile(tech.name, clock(), skills, tech.capacity, Availability.AVAILABLE)
            accounts[account.id] = tech
        queue = HelpQueue(
            store,
            clock,
            outbox.request_event,
            lambda who, ticket, now: store.create_session(who, ticket, None, now, 600),
            lambda session_id, reason: None,
            RoutingPolicy(relax=("language", "category"), team_queue="team"),
            per_address=10**6,
            per_organisation=10**6,
        )
        by_name = {t.name: t for t in techs}
        events: list[tuple[float, int, str, Any]] = []
        order = 0
        for offset, category, language in requests:
            heapq.heappush(events, (START + offset, order, "file", (category, language)))
            order += 1
        shown: dict[str, int] = {}
        needs: dict[str, tuple[str, str]] = {}
        scheduled: set[str] = set()
        outcome = Outcome()
        started = time.perf_counter()
        while events:
            at, _, kind, payload = heapq.heappop(events)
            clock.now = at
            if kind == "file":
                category, language = payload
                filed = queue.file(
                    org.key_id, "bench request", category, language, None, f"10.{order % 250}.0.1"
                )
                status = queue.status(store.get_help_request(filed.request.id))  # type: ignore[arg-type]
                shown[filed.request.id] = int(status["estimated_wait_seconds"] or 0)
                needs[filed.request.id] = (category, language)
            elif kind == "accept":
                request_id, technician_id = payload
                technician = next(t for t in store.list_technicians() if t.id == technician_id)
                request = store.get_help_request(request_id)
                if request is None or request.offered_to != technician_id:
                    continue
                accepted, session = queue.accept(technician, request_id)
                store.mark_paired(session.id, clock())
                wait = clock() - accepted.created_at
                outcome.waits.append(wait)
                outcome.estimate_errors.append(abs(shown[request_id] - wait))
                outcome.taken += 1
                tech = accounts[technician_id]
                category, language = needs[request_id]
                real = by_name[tech.name].skills
                outcome.matched += category in real and language in real
                minutes = rng.lognormvariate(math.log(tech.mean_minutes), 0.5)
                heapq.heappush(
                    events, (clock() + minutes * 60, order, "end", (session.id, technician_id))
                )
                order += 1
                continue
            elif kind == "end":
                session_id, technician_id = payload
                store.finish_session(session_id, SessionState.ENDED, clock(), "done")
                store.touch_idle(technician_id, clock())
                queue.dispatch()
            for request in store.open_help_requests():
                if request.state is RequestState.OFFERED and request.id not in scheduled:
                    scheduled.add(request.id)
                    heapq.heappush(
                        events,
                        (clock() + ACCEPT_DELAY, order, "accept", (request.id, request.offered_to)),
                    )
                    order += 1
        outcome.unserved = len(store.open_help_requests())
        elapsed = time.perf_counter() - started
        store.close()
    return outcome, elapsed


def routing_cost(techs: list[Tech], queued: int, rng: random.Random) -> dict[str, float]:
    """Milliseconds to route and estimate one request, and one dispatch pass, at ``queued``."""
    states = [
        TechnicianState(
            f"t{i}",
            t.name,
            frozenset(t.skills),
            t.capacity,
            Availability.AVAILABLE,
            t.capacity,
            0.0,
        )
        for i, t in enumerate(techs)
    ]
    states[0] = TechnicianState(
        "t0", "free", frozenset(techs[0].skills), 2, Availability.AVAILABLE, 0, 0.0
    )
    waiting = [
        RequestNeeds(f"r{i}", rng.choice(CATEGORIES), rng.choice(("en", "es")), float(i))
        for i in range(queued)
    ]
    policy = RoutingPolicy(relax=("language", "category"))
    handling = HandlingTimes({s.id: [400.0, 500.0] for s in states})
    newest = waiting[-1]
    result: dict[str, float] = {}
    for name, call in (
        ("route_ms", lambda: route(newest, states, policy)),
        ("estimate_ms", lambda: estimate_wait(newest, waiting, states, policy, handling)),
    ):
        runs = []
        for _ in range(50):
            begin = time.perf_counter()
            call()
            runs.append((time.perf_counter() - begin) * 1000)
        result[name] = statistics.median(runs)
    # The whole dispatch pass of the relay with ``queued`` requests in SQLite.
    org = OrganisationSecret("Bench Org", Ed25519PrivateKey.generate())
    with tempfile.TemporaryDirectory() as directory:
        store, clock, outbox = open_desk(Path(directory), org)
        queue = HelpQueue(
            store,
            clock,
            outbox.request_event,
            lambda *a: None,  # type: ignore[arg-type,return-value]
            lambda *a: None,
            per_address=10**6,
            per_organisation=10**6,
        )
        for tech in techs:
            store.add_technician(tech.name, clock())
            store.set_profile(tech.name, clock(), tech.skills, tech.capacity, Availability.AWAY)
        for item in waiting:
            queue.file(org.key_id, "bench", item.category, item.language, None, "10.0.0.1")
        runs = []
        for _ in range(10):
            begin = time.perf_counter()
            queue.dispatch()
            runs.append((time.perf_counter() - begin) * 1000)
        result["dispatch_ms"] = statistics.median(runs)
        # Filing one more request at the relay (stored, its help-desk event recorded,
        # routed) and the customer's first view of it, with ``queued`` ahead.
        filed, viewed = [], []
        for _ in range(20):
            begin = time.perf_counter()
            new = queue.file(org.key_id, "bench", "printing", "en", None, "10.0.0.2")
            filed.append((time.perf_counter() - begin) * 1000)
            begin = time.perf_counter()
            queue.status(new.request)
            viewed.append((time.perf_counter() - begin) * 1000)
        result["file_ms"] = statistics.median(filed)
        result["status_ms"] = statistics.median(viewed)
        store.close()
    return result


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--hours", type=float, default=8.0)
    parser.add_argument("--technicians", type=int, default=20)
    parser.add_argument(
        "--queued", type=int, default=1000, help="queue length for the routing cost"
    )
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    techs, requests = make_day(args, rng)
    report: dict[str, Any] = {
        "requests": args.requests,
        "hours": args.hours,
        "technicians": args.technicians,
    }
    for label, peer in (("skills", False), ("fifo_peer", True)):
        outcome, elapsed = run_day(techs, requests, peer, args.seed)
        report[label] = {
            "median_wait_s": statistics.median(outcome.waits) if outcome.waits else None,
            "p90_wait_s": pct(outcome.waits, 0.9),
            "skill_match_share": outcome.matched / outcome.taken if outcome.taken else 0.0,
            "estimate_median_abs_error_s": statistics.median(outcome.estimate_errors)
            if outcome.estimate_errors
            else None,
            "served": outcome.taken,
            "unserved": outcome.unserved,
            "wall_seconds": round(elapsed, 1),
        }
    report["routing_cost_at_queued"] = {
        "queued": args.queued,
        **routing_cost(techs, args.queued, rng),
    }
    if args.json:
        print(json.dumps(report))
        return 0
    ours, peer = report["skills"], report["fifo_peer"]

    def ratio(a: float | None, b: float | None) -> str:
        return f"{a / b:.2f}x" if a is not None and b else "n/a"

    print(
        f"Help queue: {args.requests} requests over {args.hours:g} h, {args.technicians} technicians (seed {args.seed})"
    )
    print(f"{'':34}{'skills routing':>16}{'FIFO peer':>12}{'ratio':>9}")
    for key, what, unit in (
        ("median_wait_s", "median wait", "s"),
        ("p90_wait_s", "p90 wait", "s"),
        ("skill_match_share", "taken by a skill-matching tech", ""),
        ("estimate_median_abs_error_s", "estimate median abs error", "s"),
    ):
        a, b = ours[key], peer[key]
        shown = (lambda v: f"{v:.0%}") if unit == "" else (lambda v: f"{v:.0f} s")
        print(f"{what:34}{shown(a):>16}{shown(b):>12}{ratio(a, b):>9}")
    print(
        f"{'served / still queued at the end':34}{ours['served']:>10} / {ours['unserved']:<3}{peer['served']:>6} / {peer['unserved']}"
    )
    cost = report["routing_cost_at_queued"]
    print(f"Routing cost with {cost['queued']} queued (median):")
    print(f"  route one request          {cost['route_ms']:.3f} ms")
    print(f"  estimate for one request   {cost['estimate_ms']:.3f} ms")
    print(f"  whole dispatch pass (SQLite, {cost['queued']} rows)  {cost['dispatch_ms']:.1f} ms")
    print(f"  file one request at the relay (store, event, route)  {cost['file_ms']:.2f} ms")
    print(f"  the customer's view of it (position, estimate)  {cost['status_ms']:.1f} ms")
    goal = cost["file_ms"] < 5.0
    print(
        f"Goal: routing one request under 5 ms at {cost['queued']} queued: {'[met   ]' if goal else '[MISSED]'}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
