"""Persistent relay state, the interface: technician accounts, sessions, help-desk
events and their deliveries, published revocation lists.

:class:`RelayStore` is what the server, the API and the outbox use.
:class:`relay.sqlite_store.SqlStore` implements it in SQL that SQLite and PostgreSQL
both speak; :class:`relay.sqlite_store.SQLiteStore` is the embedded default and
:class:`relay.postgres.PostgresStore` the shared one of a cluster. Calls are short
and synchronous (one or two indexed statements), so the relay calls them from the
event loop.

Times are wall-clock seconds (``time.time()`` values) passed in by the caller, so
the store never reads a clock and tests can drive it with a fake one. Records are in
:mod:`relay.records`, tokens in :mod:`relay.tokens`, nameplates in
:mod:`relay.nameplates`. Claims look up the newest session with a nameplate, so an
old, finished session never shadows a new one.
"""

from __future__ import annotations

import abc
from collections.abc import Collection, Iterator, Sequence

from .audit import AuditEntry
from .events import NewEvent
from .help_records import HelpRequest, TechnicianProfile
from .records import Delivery, SessionRecord, SessionState, StoredSummary, Technician
from .routing import Availability
from .self_help_sql import FigureRow, FixOutcome, PublishedFix


class RelayStore(abc.ABC):
    """What the relay needs from a database. Methods never raise for "not found"."""

    # technicians

    @abc.abstractmethod
    def add_technician(self, name: str, now: float) -> tuple[Technician, str]:
        """Create an account; return it and its API token (shown once, never stored).

        Raise :class:`TechnicianExists` if the name is taken, ``ValueError`` if it is blank.
        """

    @abc.abstractmethod
    def list_technicians(self) -> list[Technician]:
        """All accounts, removed ones included, oldest first."""

    @abc.abstractmethod
    def disable_technician(self, name: str) -> bool:
        """Disable an account so its token stops working; False if no active one has that name."""

    @abc.abstractmethod
    def authenticate(self, token: str) -> Technician | None:
        """The active technician owning ``token``, or None."""

    # sessions

    @abc.abstractmethod
    def create_session(
        self, technician: Technician, ticket_id: str, ticket_url: str | None, now: float, ttl: float
    ) -> SessionRecord:
        """Create a waiting session with a fresh nameplate that expires at ``now + ttl``."""

    @abc.abstractmethod
    def get_session(self, session_id: str) -> SessionRecord | None:
        """The session with this id, or None."""

    @abc.abstractmethod
    def find_by_nameplate(self, nameplate: str) -> SessionRecord | None:
        """The newest session that was given this nameplate, or None."""

    @abc.abstractmethod
    def list_sessions(
        self, technician_id: str, ticket_id: str | None = None, limit: int = 100
    ) -> list[SessionRecord]:
        """A technician's sessions, newest first, optionally for one ticket."""

    @abc.abstractmethod
    def count_agent_claim(self, session_id: str) -> int:
        """Record one more agent claim of this session's nameplate; return the new count."""

    @abc.abstractmethod
    def agent_claims(self, session_id: str) -> int:
        """How many agent claims of this session's nameplate were counted (0 if none)."""

    @abc.abstractmethod
    def mark_paired(self, session_id: str, now: float) -> bool:
        """Move a waiting session to paired; False if it was not waiting."""

    @abc.abstractmethod
    def finish_session(
        self,
        session_id: str,
        state: SessionState,
        now: float,
        reason: str,
        bytes_agent_to_tech: int = 0,
        bytes_tech_to_agent: int = 0,
    ) -> bool:
        """Move a waiting or paired session to a finished state; False if already finished."""

    @abc.abstractmethod
    def add_byte_counts(
        self, session_id: str, bytes_agent_to_tech: int, bytes_tech_to_agent: int
    ) -> None:
        """Add forwarded byte counts to a session whatever its state (it may have been
        finished by another relay node while this one still forwarded)."""

    @abc.abstractmethod
    def expire_sessions(self, now: float) -> int:
        """Mark waiting sessions past their expiry as expired; return how many."""

    # help-desk events: audit log, summaries, outbox

    @abc.abstractmethod
    def record_event(
        self, event: NewEvent, now: float, connectors: Sequence[str]
    ) -> AuditEntry | None:
        """Append ``event`` to the audit log and queue it for each of ``connectors``.

        One transaction: the entry and its outbox rows exist together or not at all.
        Session events (:data:`relay.events.ONCE_PER_SESSION`) are recorded once per
        session: a repeat returns None and changes nothing.
        """

    @abc.abstractmethod
    def store_summary(
        self, session_id: str, summary: str, now: float, event: NewEvent, connectors: Sequence[str]
    ) -> tuple[StoredSummary, bool]:
        """Keep the first summary of a session and record ``event`` with it, atomically.

        Return ``(stored, True)`` the first time; later calls return the summary already
        stored and False, and record nothing (summaries never change).
        """

    @abc.abstractmethod
    def get_summary(self, session_id: str) -> StoredSummary | None:
        """The session's summary, or None."""

    @abc.abstractmethod
    def audit_entries(self) -> Iterator[AuditEntry]:
        """Every audit entry in ``seq`` order."""

    @abc.abstractmethod
    def sessions_missing_event(self, event_type: str) -> list[SessionRecord]:
        """Sessions that reached the point of ``event_type`` but have no such event.

        ``session.created``: every session; ``session.paired``: sessions that paired;
        ``session.ended``: finished sessions. Used at start-up to record events a
        crash may have cut off between a state change and its event.
        """

    @abc.abstractmethod
    def due_deliveries(self, connector: str, now: float, limit: int) -> list[Delivery]:
        """Undelivered, unleased rows of ``connector`` due by ``now``, oldest first.

        A row waits while an older row of the same session and connector is undelivered,
        so a ticket sees its events in order.
        """

    @abc.abstractmethod
    def begin_delivery(self, delivery_id: int, now: float, lease: float) -> int | None:
        """Lease a row for ``lease`` seconds and count the attempt; return the attempt number.

        None if it was delivered or is leased by someone else (another relay process).
        """

    @abc.abstractmethod
    def finish_delivery(self, delivery_id: int, now: float, acknowledgement: NewEvent) -> None:
        """Mark a row delivered and audit the help desk's acknowledgement, atomically."""

    @abc.abstractmethod
    def fail_delivery(self, delivery_id: int, next_attempt_at: float, error: str) -> None:
        """Release a row after a failed attempt; it is due again at ``next_attempt_at``."""

    @abc.abstractmethod
    def retry_deliveries_now(self, now: float) -> int:
        """Make every undelivered row due by ``now`` (a restart retries at once); how many rows."""

    @abc.abstractmethod
    def list_deliveries(self, pending_only: bool = True, limit: int = 1000) -> list[Delivery]:
        """Outbox rows, oldest first (only undelivered ones by default)."""

    @abc.abstractmethod
    def pending_deliveries(self) -> int:
        """How many outbox rows are not delivered yet (the webhook backlog metric)."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the database."""

    # organisation revocation lists (signed by the organisation; the relay only keeps them)

    def publish_revocation_list(
        self, organisation_key: str, number: int, document: str, technician_id: str, now: float
    ) -> bool:
        """Keep ``document`` as the organisation's list unless one numbered >= ``number`` is
        kept already (then return False). Stores that do not keep lists raise
        NotImplementedError (the API answers 501)."""
        raise NotImplementedError

    def get_revocation_list(self, organisation_key: str) -> str | None:
        """The organisation's newest published list (the JSON text), or None."""
        raise NotImplementedError

    # the help queue (relay.helpqueue): profiles, requests, categories. Stores that do not
    # keep a queue raise NotImplementedError (the API answers 501).

    def set_profile(
        self,
        name: str,
        now: float,
        skills: Sequence[str] | None = None,
        capacity: int | None = None,
        availability: Availability | None = None,
    ) -> TechnicianProfile | None:
        """Create or change the routing profile of the active technician ``name`` (None
        if there is none); unset arguments keep their value (a new profile: no skills,
        capacity 1, away). Coming back to ``available`` restarts the idle clock."""
        raise NotImplementedError

    def get_profile(self, technician_id: str) -> TechnicianProfile | None:
        """An active technician's profile with what they hold now, or None."""
        raise NotImplementedError

    def list_profiles(self) -> list[TechnicianProfile]:
        """Every active technician's profile, by name."""
        raise NotImplementedError

    def touch_idle(self, technician_id: str, now: float) -> None:
        """Start a technician's idle clock at ``now`` (they just finished a request)."""
        raise NotImplementedError

    def add_help_request(
        self,
        token: str,
        organisation_key: str,
        description: str,
        category: str,
        language: str,
        diagnostics_digest: str | None,
        client_ip: str,
        now: float,
    ) -> HelpRequest:
        """Record a waiting request; ``token`` (the customer's) is kept only as a hash."""
        raise NotImplementedError

    def get_help_request(self, request_id: str) -> HelpRequest | None:
        """The request with this id, or None."""
        raise NotImplementedError

    def help_request_token_hash(self, request_id: str) -> str | None:
        """The stored hash of the customer's token for this request, or None."""
        raise NotImplementedError

    def open_help_requests(self) -> list[HelpRequest]:
        """Waiting and offered requests, oldest first."""
        raise NotImplementedError

    def change_help_request(
        self, request_id: str, version: int, changes: dict[str, object]
    ) -> HelpRequest | None:
        """Apply ``changes`` (columns of :data:`relay.help_records.CHANGEABLE`) if the
        request is still at ``version``; return it changed, or None if someone else
        changed it first (or it does not exist)."""
        raise NotImplementedError

    def recent_handling_times(self, per_technician: int = 20) -> dict[str, list[float]]:
        """Seconds from pairing to end of recent request sessions, per technician id."""
        raise NotImplementedError

    def set_categories(self, organisation_key: str, document: str, now: float) -> None:
        """Keep an organisation's signed category list (checked by the caller)."""
        raise NotImplementedError

    def get_categories(self, organisation_key: str) -> str | None:
        """The organisation's category list document (JSON text), or None."""
        raise NotImplementedError

    # self-help and past cases (relay.self_help): fixes and rule books published for
    # self-help, and every fix run's outcome. Stores without them raise NotImplementedError.

    def publish_fix(self, fix: PublishedFix) -> None:
        """Keep a signed fix bundle for self-help (replacing the one with the same
        organisation, id and platforms)."""
        raise NotImplementedError

    def published_fixes(self, organisation_key: str | None = None) -> list[PublishedFix]:
        """The fixes kept for one organisation (every one with None), by id."""
        raise NotImplementedError

    def withdraw_fix(self, organisation_key: str, fix_id: str) -> int:
        """Stop offering a fix (every platform's bundle); how many were removed."""
        raise NotImplementedError

    def publish_rule_book(
        self, organisation_key: str, number: int, document: str, now: float
    ) -> None:
        """Keep an organisation's signed rule book (checked by the caller)."""
        raise NotImplementedError

    def rule_book(self, organisation_key: str) -> tuple[int, str] | None:
        """The organisation's rule book as ``(number, JSON text)``, or None."""
        raise NotImplementedError

    def record_outcomes(self, outcomes: Sequence[FixOutcome], now: float) -> None:
        """Record fix-run outcomes (one per problem a run was for)."""
        raise NotImplementedError

    def count_outcomes(self, session_id: str, source: str) -> int:
        """How many outcomes a session (or a help request) reported already."""
        raise NotImplementedError

    def unsolve_outcomes(self, session_id: str, reporter: str, problems: Collection[str]) -> int:
        """A later triage of the session still finds ``problems``: its runs for them did
        not solve them. How many rows changed."""
        raise NotImplementedError

    def outcome_figures(self, organisation_key: str | None = None) -> list[FigureRow]:
        """``(problem, category, fix, solved, runs)`` rows; for one organisation, its own
        outcomes and those of no known organisation."""
        raise NotImplementedError

    def request_category(self, session_id: str) -> str:
        """The category of the help request a session was made for, or ""."""
        raise NotImplementedError
