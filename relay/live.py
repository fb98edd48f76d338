"""What the relay holds in memory of a session while its ends are connected."""

from __future__ import annotations

from dataclasses import dataclass, field

from protocol.envelope import Role

from .http import RelayConnection
from .records import SessionRecord
from .rendezvous import Rendezvous


@dataclass(eq=False)
class Endpoint:
    """One claimed end of a session: a connection with its role."""

    connection: RelayConnection
    role: Role
    ip: str


@dataclass(eq=False)
class LiveSession:
    """A session with at least one end connected. Lives only in memory.

    ``rendezvous`` holds its phase (:mod:`relay.rendezvous`); this holds the
    connections of its roles and the byte counts.
    """

    record: SessionRecord
    rendezvous: Rendezvous
    ends: dict[Role, Endpoint] = field(default_factory=dict)
    #: Set once the rendezvous finished the session (read by the forwarding hot path).
    finished: bool = False
    #: Bytes forwarded, by the role that sent them.
    sent: dict[Role, int] = field(default_factory=lambda: {Role.AGENT: 0, Role.TECHNICIAN: 0})
