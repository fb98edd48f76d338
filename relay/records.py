"""What the relay stores, as the store hands it out: accounts, sessions, summaries,
deliveries. Frozen records; no I/O (the store, :mod:`relay.store`, reads and writes them).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from protocol.envelope import ErrorCode, Role


class SessionState(enum.StrEnum):
    """Life of a session: ``waiting`` → ``paired`` → ``ended``; or ``expired`` / ``failed``."""

    WAITING = "waiting"  # created; nameplate claimable until expires_at
    PAIRED = "paired"  # both ends met; the nameplate is used up
    ENDED = "ended"  # finished normally, by an end, the API, idleness or a disconnect
    EXPIRED = "expired"  # nobody paired before expires_at
    FAILED = "failed"  # burnt by an end (for example a failed key confirmation)

    @property
    def finished(self) -> bool:
        return self in (SessionState.ENDED, SessionState.EXPIRED, SessionState.FAILED)


@dataclass(frozen=True)
class Technician:
    """A technician account. Holds no token material."""

    id: str
    name: str
    created_at: float
    disabled: bool


@dataclass(frozen=True)
class SessionRecord:
    """One stored session. Holds no secrets (the session code's secret never reaches the relay)."""

    id: str
    nameplate: str
    ticket_id: str
    ticket_url: str | None
    technician_id: str
    technician_name: str
    state: SessionState
    created_at: float
    expires_at: float
    paired_at: float | None
    ended_at: float | None
    end_reason: str | None
    bytes_agent_to_tech: int
    bytes_tech_to_agent: int

    def state_at(self, now: float) -> SessionState:
        """The state as of ``now``: a waiting session past ``expires_at`` is expired."""
        if self.state is SessionState.WAITING and now >= self.expires_at:
            return SessionState.EXPIRED
        return self.state

    def claim_refusal(self, role: Role, technician_id: str | None, now: float) -> ErrorCode | None:
        """Why this session refuses a claim by ``role`` at ``now`` (a technician must be
        the session's own), or None: unauthorized, expired, used; in that order."""
        if role is Role.TECHNICIAN and technician_id != self.technician_id:
            return ErrorCode.UNAUTHORIZED
        state = self.state_at(now)
        if state is SessionState.EXPIRED:
            return ErrorCode.EXPIRED
        if state is not SessionState.WAITING:
            return ErrorCode.USED
        return None


@dataclass(frozen=True)
class StoredSummary:
    """A session summary as uploaded by the technician's client (JSON text)."""

    session_id: str
    summary: str
    uploaded_at: float


@dataclass(frozen=True)
class Delivery:
    """One event queued for one help-desk connector (a row of the outbox)."""

    id: int
    event_id: str
    event_type: str
    session_id: str
    connector: str
    document: str  # the event document, JSON text
    created_at: float
    attempts: int
    next_attempt_at: float
    delivered_at: float | None
    last_error: str | None
