"""What the store hands out about help requests and technicians' routing profiles.

Frozen records, no I/O. A help request's life::

    waiting ──offer──▶ offered ──accept──▶ accepted   (a session is created for it)
       ▲                  │
       └──decline/expire──┘
    waiting | offered ──withdraw──▶ withdrawn          (the customer left)
    waiting | offered ──solved────▶ solved             (self-help fixed it)
    accepted ──transfer──▶ waiting                     (with a note, to a person or queue)

Every change bumps ``version``; a change names the version it read, so two
technicians (on any relay node) accepting the same request cannot both win.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from .routing import Availability


class RequestState(enum.StrEnum):
    WAITING = "waiting"
    OFFERED = "offered"
    ACCEPTED = "accepted"
    WITHDRAWN = "withdrawn"
    SOLVED = "solved"

    @property
    def open(self) -> bool:
        """Still in the queue (not yet accepted, not closed)."""
        return self in (RequestState.WAITING, RequestState.OFFERED)


@dataclass(frozen=True)
class TechnicianProfile:
    """A technician's routing profile; ``holding`` counts offers and live sessions."""

    technician_id: str
    name: str
    skills: tuple[str, ...]
    capacity: int
    availability: Availability
    idle_since: float
    holding: int = 0


@dataclass(frozen=True)
class HelpRequest:
    """One help request. Holds no content beyond what the customer typed and chose."""

    id: str
    organisation_key: str
    description: str
    category: str
    language: str
    diagnostics_digest: str | None
    client_ip: str
    state: RequestState
    version: int
    created_at: float
    offered_to: str | None = None
    offered_at: float | None = None
    declined_by: tuple[str, ...] = ()
    direct_to: str | None = None
    queue: str | None = None
    note: str | None = None
    tier: str | None = None
    accepted_by: str | None = None
    accepted_at: float | None = None
    finished_at: float | None = None
    session_id: str | None = None


#: Columns a change may set (see :meth:`relay.store.RelayStore.change_help_request`).
CHANGEABLE = frozenset(
    {
        "state",
        "offered_to",
        "offered_at",
        "declined_by",
        "direct_to",
        "queue",
        "note",
        "tier",
        "accepted_by",
        "accepted_at",
        "finished_at",
        "session_id",
    }
)
