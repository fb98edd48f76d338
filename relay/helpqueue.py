"""The help queue at the relay: customers' help requests, offers to technicians,
accept / decline / transfer, availability, and the customer's live position.

State lives in the store (:mod:`relay.queue_sql`); this class holds only the
in-process wake-ups of long-polls and the rate limiters. Routing decisions come from
:mod:`relay.routing` (pure). :meth:`HelpQueue.dispatch` runs after every change made
here, and at most once a second (:data:`DISPATCH_INTERVAL`) while anyone looks at the
queue or waits in it, so offers follow ended sessions, expired offers and requests
filed on other relay nodes sharing the database.

Rules::

    file       an agent that pins an organisation key, a category from that
               organisation's signed list, a description of 1..MAX_DESCRIPTION
               characters; at most PER_ADDRESS requests per address per 10 minutes and
               PER_ORGANISATION per organisation per hour. Records request.created
               (the help desk opens a ticket).
    offer      dispatch offers waiting requests to free technicians (routing rules);
               an offer not accepted within OFFER_TIMEOUT counts as a decline.
    accept     by the technician it is offered to, or by anyone while it waits
               unoffered; never twice (a compare-and-set on the request's version).
               Creates the session (nameplate) the agent then claims.
    decline    back to waiting, never offered to that technician again.
    transfer   an accepted request whose session is live goes back to waiting with a
               note, for one technician (by name) or a queue (a skill or the team
               queue); the current session ends.
    withdraw   the customer left while waiting: withdrawn; request.withdrawn (the
               ticket says so).
    solve      self-help fixed it while the request waited (relay.self_help): solved;
               request.solved (the outcome on the ticket, which is resolved).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from protocol.categories import MAX_DESCRIPTION, parse_category_list
from protocol.errors import TrustError

from .errors import QueueRefusal
from .help_records import HelpRequest, RequestState, TechnicianProfile
from .ratelimit import SlidingWindowLimiter
from .records import SessionRecord, SessionState, Technician
from .routing import (
    Availability,
    Estimate,
    HandlingTimes,
    RequestNeeds,
    RoutingPolicy,
    TechnicianState,
    dispatch,
    estimate_all,
)
from .store import RelayStore
from .tokens import hash_secret

logger = logging.getLogger("relay.helpqueue")

PER_ADDRESS = 5  # per 10 minutes
PER_ORGANISATION = 200  # per hour
OFFER_TIMEOUT = 120.0
#: Longest a long-poll is held before answering "no change".
LONG_POLL_SECONDS = 25.0
#: How often a held long-poll re-reads the store (changes made on other relay nodes).
STORE_RECHECK_SECONDS = 1.0
#: How often a held long-poll recomputes the customer's place when nothing changed here.
POSITION_REFRESH_SECONDS = 5.0
#: Least time between two dispatch passes that no change here asked for (sessions that
#: ended, offers that timed out, changes on other nodes): a pass reads the whole queue.
DISPATCH_INTERVAL = 1.0
LANGUAGES = ("en", "es")


@dataclass(frozen=True)
class Filed:
    request: HelpRequest
    token: str  # the customer's; shown once, kept only as a hash


class HelpQueue:
    """The queue of one relay process (see the module rules)."""

    def __init__(
        self,
        store: RelayStore,
        clock: Callable[[], float],
        record_event: Callable[[str, HelpRequest, dict[str, Any]], None],
        create_session: Callable[[Technician, str, float], SessionRecord],
        end_session: Callable[[str, str], None],
        policy: RoutingPolicy | None = None,
        per_address: int = PER_ADDRESS,
        per_organisation: int = PER_ORGANISATION,
    ) -> None:
        self._store = store
        self._clock = clock
        self._record_event = record_event
        self._create_session = create_session
        self._end_session = end_session
        self.policy = policy or RoutingPolicy()
        self._by_address = SlidingWindowLimiter(per_address, 600.0)
        self._by_organisation = SlidingWindowLimiter(per_organisation, 3600.0)
        self._changed = asyncio.Event()  # replaced, after being set, at every change
        self._generation = 0
        #: (generation, when, places): the last snapshot of every waiting request's place.
        self._snapshot: tuple[int, float, dict[str, Estimate]] = (-1, float("-inf"), {})
        self._last_dispatch = float("-inf")

    # customers

    def file(
        self,
        organisation_key: str | None,
        description: str,
        category: str,
        language: str,
        diagnostics_digest: str | None,
        client_ip: str,
    ) -> Filed:
        if not organisation_key:
            raise QueueRefusal(
                "no_pinned_key",
                "This agent was not built for an organisation, so it cannot ask for help "
                "by itself; ask your help desk for a session code and start the agent with it.",
            )
        document = self._store.get_categories(organisation_key)
        if document is None:
            raise QueueRefusal(
                "unknown_organisation",
                "This relay takes no help requests for your organisation; ask your help "
                "desk for a session code instead.",
            )
        categories = parse_category_list(document.encode()).ids()
        if category not in categories:
            raise QueueRefusal(
                "unknown_category",
                f"{category[:40]!r} is not one of your organisation's categories; choose one "
                f"of: {', '.join(categories)}.",
            )
        description = description.strip()
        if not description or not description.isprintable():
            raise QueueRefusal(
                "bad_description",
                "Describe the problem in one line of ordinary text (no control characters).",
            )
        if len(description) > MAX_DESCRIPTION:
            raise QueueRefusal(
                "description_too_long",
                f"The description is {len(description)} characters; keep it to "
                f"{MAX_DESCRIPTION} and attach diagnostics for the details.",
            )
        if language not in LANGUAGES:
            raise QueueRefusal(
                "bad_request", f"The language must be one of: {', '.join(LANGUAGES)}."
            )
        now = self._clock()
        for limiter, key, what in (
            (self._by_address, client_ip, "from your address"),
            (self._by_organisation, organisation_key, "for your organisation"),
        ):
            if not limiter.allow(key, now):
                wait = limiter.retry_after(key, now)
                raise QueueRefusal(
                    "rate_limited",
                    f"Too many help requests {what} were filed recently; wait {wait} seconds "
                    "and try again, or call your help desk.",
                    retry_after=wait,
                )
        token = secrets.token_urlsafe(24)
        request = self._store.add_help_request(
            token,
            organisation_key,
            description,
            category,
            language,
            diagnostics_digest,
            client_ip,
            now,
        )
        logger.info("help request filed request=%s category=%s", request.id, category)
        self._record_event("request.created", request, {})
        self.route_new(request)
        return Filed(self._store.get_help_request(request.id) or request, token)

    def customer_request(self, request_id: str, token: str) -> HelpRequest:
        """The request if ``token`` is its customer's; QueueRefusal not_found otherwise."""
        stored = self._store.help_request_token_hash(request_id)
        expected = stored or hash_secret("no such request")
        if not hmac.compare_digest(expected, hash_secret(token)) or stored is None:
            raise QueueRefusal("not_found", "No help request with this id belongs to you.")
        request = self._store.get_help_request(request_id)
        assert request is not None
        return request

    def withdraw(self, request: HelpRequest, reason: str) -> HelpRequest:
        return self._close(request, RequestState.WITHDRAWN, "request.withdrawn", {"reason": reason})

    def solve(self, request: HelpRequest, outcome: dict[str, Any]) -> HelpRequest:
        """Self-help fixed it: solved; request.solved (the ticket gets the outcome and is
        resolved). A request no longer waiting is returned unchanged."""
        return self._close(request, RequestState.SOLVED, "request.solved", {"outcome": outcome})

    def _close(
        self, request: HelpRequest, state: RequestState, event: str, data: dict[str, Any]
    ) -> HelpRequest:
        """Close a request still in the queue (compare-and-set, retried a few times)."""
        for _ in range(5):
            if not request.state.open:
                return request
            changed = self._store.change_help_request(
                request.id, request.version, {"state": state, "finished_at": self._clock()}
            )
            if changed is not None:
                logger.info("help request %s request=%s", state, request.id)
                self._record_event(event, changed, data)
                self._wake(changed.id)
                self.dispatch()
                return changed
            request = self._store.get_help_request(request.id) or request
        return request

    def status(self, request: HelpRequest) -> dict[str, Any]:
        """What the customer sees: state, position and estimate, or who took it."""
        view: dict[str, Any] = {
            "request_id": request.id,
            "state": str(request.state),
            "version": request.version,
            "category": request.category,
            "position": None,
            "estimated_wait_seconds": None,
            "technician": None,
            "nameplate": None,
            "note": request.note,
        }
        if request.state is RequestState.OFFERED:
            view["position"], view["estimated_wait_seconds"] = 1, 0
        elif request.state is RequestState.WAITING:
            estimate = self._places(request.id).get(request.id)
            if estimate is not None:
                view["position"] = estimate.position
                view["estimated_wait_seconds"] = estimate.seconds
        elif request.state is RequestState.ACCEPTED and request.session_id:
            session = self._store.get_session(request.session_id)
            if session is not None:
                view["technician"] = session.technician_name
                if session.state_at(self._clock()) is SessionState.WAITING:
                    view["nameplate"] = session.nameplate  # a rendezvous, not a secret
                else:
                    view["session_state"] = str(session.state_at(self._clock()))
        return view

    async def wait_for_change(
        self, request_id: str, version: int, timeout: float, position: int | None = None
    ) -> HelpRequest:
        """Return the request once it changed (its version is not ``version``), once its
        place in the queue is not ``position`` (what the customer was last shown), or
        when ``timeout`` passes.

        Changes made here wake every waiter at once; changes made by other relay nodes
        are seen by re-reading the store every STORE_RECHECK_SECONDS. The place is
        recomputed at most once a second after a change here, and every
        POSITION_REFRESH_SECONDS otherwise (it reads the whole queue).
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        seen = self._generation
        checked = float("-inf")
        while True:
            self.dispatch_if_due()
            request = self._store.get_help_request(request_id)
            if request is None or request.version != version or loop.time() >= deadline:
                assert request is not None
                return request
            now = loop.time()
            due = now - checked >= (1.0 if self._generation != seen else POSITION_REFRESH_SECONDS)
            if position is not None and request.state is RequestState.WAITING and due:
                seen, checked = self._generation, now
                if self.status(request)["position"] != position:
                    return request
            event = self._changed
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(STORE_RECHECK_SECONDS, deadline - loop.time())):
                    await event.wait()

    def _places(self, request_id: str) -> dict[str, Estimate]:
        """Every waiting request's place, from one snapshot of the queue shared by all
        customers: recomputed after a change made here, when older than
        POSITION_REFRESH_SECONDS (changes on other nodes), or for a request it lacks."""
        generation, taken, places = self._snapshot
        fresh = generation == self._generation
        if fresh and self._clock() - taken < POSITION_REFRESH_SECONDS and request_id in places:
            return places
        waiting = [
            self._needs(r)
            for r in self._store.open_help_requests()
            if r.state is RequestState.WAITING
        ]
        places = estimate_all(
            waiting,
            _states(self._store.list_profiles()),
            self.policy,
            HandlingTimes(self._store.recent_handling_times()),
        )
        self._snapshot = (self._generation, self._clock(), places)
        return places

    def _wake(self, request_id: str) -> None:
        """Something in the queue changed (``request_id`` or what it waits behind)."""
        self._generation += 1
        event, self._changed = self._changed, asyncio.Event()
        event.set()

    # technicians

    def set_availability(
        self, technician: Technician, availability: Availability
    ) -> TechnicianProfile:
        profile = self._store.set_profile(technician.name, self._clock(), availability=availability)
        if profile is None:
            raise QueueRefusal("not_found", "Your account has no routing profile.")
        self._wake(technician.id)  # places and estimates change with who is here
        self.dispatch()
        return self._store.get_profile(technician.id) or profile

    def profile(self, technician: Technician) -> TechnicianProfile:
        profile = self._store.get_profile(technician.id)
        if profile is None:
            raise QueueRefusal(
                "no_profile",
                "You take no help requests yet; ask the relay's operator to run "
                f"'puente-relay technician add {technician.name} --skills ...'.",
            )
        return profile

    def listing(self, technician: Technician) -> list[HelpRequest]:
        self.dispatch_if_due()
        return self._store.open_help_requests()

    def accept(self, technician: Technician, request_id: str) -> tuple[HelpRequest, SessionRecord]:
        self.profile(technician)
        self.dispatch_if_due()
        request = self._store.get_help_request(request_id)
        if request is None:
            raise QueueRefusal(
                "not_found", "No help request has this id; run 'puente-tech queue list'."
            )
        self._refuse_closed(request, technician)
        if request.state is RequestState.OFFERED and request.offered_to != technician.id:
            raise QueueRefusal(
                "offered_elsewhere",
                "This request is offered to another technician right now; take another one "
                "from 'puente-tech queue list', or wait for it to come back.",
            )
        now = self._clock()
        changed = self._store.change_help_request(
            request.id,
            request.version,
            {"state": RequestState.ACCEPTED, "accepted_by": technician.id, "accepted_at": now},
        )
        if changed is None:
            latest = self._store.get_help_request(request.id) or request
            self._refuse_closed(latest, technician)
            raise QueueRefusal(
                "taken", "Another technician took this request a moment ago; choose another one."
            )
        session = self._create_session(technician, f"request-{request.id[:12]}", now)
        changed = (
            self._store.change_help_request(
                changed.id,
                changed.version,
                {"session_id": session.id, "offered_to": None},
            )
            or changed
        )
        logger.info("help request accepted request=%s technician=%s", request.id, technician.id)
        self._record_event("request.accepted", changed, {"technician": technician.name})
        self._wake(changed.id)
        return changed, session

    def _refuse_closed(self, request: HelpRequest, technician: Technician) -> None:
        if request.state is RequestState.ACCEPTED:
            who = "You" if request.accepted_by == technician.id else "Another technician"
            raise QueueRefusal(
                "taken",
                f"{who} took this request already; run 'puente-tech queue list' for the "
                "ones still waiting.",
            )
        if not request.state.open:
            raise QueueRefusal(
                "closed",
                f"This request is {request.state} (the customer no longer waits); choose "
                "another one.",
            )

    def decline(self, technician: Technician, request_id: str) -> HelpRequest:
        request = self._store.get_help_request(request_id)
        if request is None:
            raise QueueRefusal(
                "not_found", "No help request has this id; run 'puente-tech queue list'."
            )
        self._refuse_closed(request, technician)
        changed = self._store.change_help_request(
            request.id,
            request.version,
            {
                "state": RequestState.WAITING,
                "offered_to": None,
                "offered_at": None,
                "declined_by": (*request.declined_by, technician.id),
                "direct_to": None,
            },
        )
        if changed is None:
            raise QueueRefusal("taken", "The request changed meanwhile; look at the queue again.")
        logger.info("help request declined request=%s technician=%s", request.id, technician.id)
        self._wake(changed.id)
        self.dispatch()
        return self._store.get_help_request(changed.id) or changed

    def transfer(self, technician: Technician, request_id: str, to: str, note: str) -> HelpRequest:
        request = self._store.get_help_request(request_id)
        if request is None or request.accepted_by != technician.id:
            raise QueueRefusal("not_found", "You have no help request with this id.")
        note = note.strip()
        if not note or len(note) > MAX_DESCRIPTION or not note.isprintable():
            raise QueueRefusal(
                "bad_note",
                f"Write a note of 1 to {MAX_DESCRIPTION} characters for the next technician.",
            )
        target = next((p for p in self._store.list_profiles() if p.name == to), None)
        changes: dict[str, object] = {
            "state": RequestState.WAITING,
            "note": note,
            "declined_by": (*request.declined_by, technician.id),
            "offered_to": None,
            "session_id": None,
            "accepted_by": None,
            "accepted_at": None,
        }
        if target is not None:
            if target.technician_id == technician.id:
                raise QueueRefusal("bad_request", "You cannot transfer a request to yourself.")
            changes["direct_to"], changes["queue"] = target.technician_id, None
        else:
            known = {s for p in self._store.list_profiles() for s in p.skills}
            if to != self.policy.team_queue and to not in known:
                raise QueueRefusal(
                    "unknown_target",
                    f"{to[:40]!r} is neither a technician nor a queue; name a technician, a "
                    f"skill, or the team queue {self.policy.team_queue!r}.",
                )
            changes["direct_to"], changes["queue"] = None, to
        changed = self._store.change_help_request(request.id, request.version, changes)
        if changed is None:
            raise QueueRefusal("taken", "The request changed meanwhile; look at the queue again.")
        if request.session_id:
            self._end_session(request.session_id, f"transferred to {to}")
        self._store.touch_idle(technician.id, self._clock())
        self._record_event("request.transferred", changed, {"to": to, "note": note})
        self._wake(changed.id)
        self.dispatch()
        return self._store.get_help_request(changed.id) or changed

    def profiles(self) -> list[TechnicianProfile]:
        return self._store.list_profiles()

    def categories(self, organisation_key: str) -> str | None:
        return self._store.get_categories(organisation_key)

    # routing

    def dispatch_if_due(self) -> int:
        """A dispatch pass unless one ran in the last DISPATCH_INTERVAL seconds."""
        if self._clock() - self._last_dispatch < DISPATCH_INTERVAL:
            return 0
        return self.dispatch()

    def dispatch(self) -> int:
        """Expire stale offers and offer waiting requests to free technicians; how many
        offers were made."""
        now = self._last_dispatch = self._clock()
        open_requests = self._store.open_help_requests()
        for request in open_requests:
            if (
                request.state is RequestState.OFFERED
                and request.offered_at is not None
                and now - request.offered_at > OFFER_TIMEOUT
                and request.offered_to is not None
            ):
                self._store.change_help_request(
                    request.id,
                    request.version,
                    {
                        "state": RequestState.WAITING,
                        "offered_to": None,
                        "offered_at": None,
                        "declined_by": (*request.declined_by, request.offered_to),
                    },
                )
                self._wake(request.id)
        waiting = [r for r in self._store.open_help_requests() if r.state is RequestState.WAITING]
        if not waiting:
            return 0
        return self._offer(waiting)

    def route_new(self, request: HelpRequest) -> int:
        """Route one request just filed: after every dispatch pass no waiting request
        could go to a free technician, so only the new one can, and the queue need not be
        read (the whole-queue pass still runs at least once a second, see
        DISPATCH_INTERVAL, for changes this process did not see)."""
        return self._offer([request])

    def _offer(self, waiting: list[HelpRequest]) -> int:
        """Offer ``waiting`` requests, oldest first, to free technicians; how many."""
        now = self._clock()
        profiles = self._store.list_profiles()
        offers = dispatch([self._needs(r) for r in waiting], _states(profiles), self.policy)
        by_id = {r.id: r for r in waiting}
        made = 0
        for offer in offers:
            request = by_id[offer.request_id]
            changed = self._store.change_help_request(
                request.id,
                request.version,
                {
                    "state": RequestState.OFFERED,
                    "offered_to": offer.decision.technician_id,
                    "offered_at": now,
                    "tier": str(offer.decision.tier),
                },
            )
            if changed is not None:
                made += 1
                self._wake(request.id)
        return made

    @staticmethod
    def _needs(request: HelpRequest) -> RequestNeeds:
        return RequestNeeds(
            request.id,
            request.category,
            request.language,
            request.created_at,
            frozenset(request.declined_by),
            request.direct_to,
            request.queue,
        )

    def check_categories(self, document: bytes) -> str:
        """The organisation key of a signed category list; QueueRefusal if it is not one."""
        try:
            return parse_category_list(document).organisation_key
        except TrustError as exc:
            raise QueueRefusal(
                "bad_request", f"This is not a signed category list: {exc}"
            ) from None


def _states(profiles: list[TechnicianProfile]) -> list[TechnicianState]:
    return [
        TechnicianState(
            p.technician_id,
            p.name,
            frozenset(p.skills),
            p.capacity,
            p.availability,
            p.holding,
            p.idle_since,
        )
        for p in profiles
    ]
