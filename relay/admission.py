"""Who may take a connection slot: per-address counts of half-open and upgraded
connections, and the relay-wide count of connections not yet upgraded. Pure
bookkeeping (no sockets); :mod:`relay.http` and :mod:`relay.front_door` call it.

Rules::

    start_handshake()   a TCP connection was accepted; refused (answer 503 and close it)
                        when max_handshakes connections are already not upgraded (their
                        HTTP request, a REST answer, a download or a held long-poll is
                        under way). The open-file budget is max_connections upgraded +
                        max_handshakes + reserved (relay.config.open_files_needed).
    end_handshake()     the connection was upgraded (relay.front_door accepted it) or it
                        closed: it no longer counts, once.
    arrive(peer)        a TCP connection came from ``peer``; refused (close it at once)
                        when ``peer`` already has max_half_open connections whose HTTP
                        request is not complete. Trusted proxies are not counted: what
                        they carry comes from many clients (their X-Forwarded-For is).
    request_done(peer)  its request head (and body) arrived: no longer half-open.
    upgrade(ip)         an upgrade from client ``ip`` (behind a proxy: the forwarded
                        address) takes one of its max_per_ip slots; refused when full.
    release_*           a connection closed: whatever it held is given back, once.
"""

from __future__ import annotations

from collections import Counter


class AddressLimits:
    """Per-address counts against ``max_half_open`` and ``max_per_ip``; the relay-wide
    count of connections not yet upgraded against ``max_handshakes`` (None: no cap)."""

    def __init__(
        self,
        max_half_open: int,
        max_per_ip: int,
        exempt: tuple[str, ...] = (),
        max_handshakes: int | None = None,
    ) -> None:
        if max_half_open < 1 or max_per_ip < 1:
            raise ValueError("the per-address limits must be at least 1")
        if max_handshakes is not None and max_handshakes < 1:
            raise ValueError("max_handshakes must be at least 1")
        self.max_half_open = max_half_open
        self.max_per_ip = max_per_ip
        self.max_handshakes = max_handshakes
        #: Connections accepted and not yet upgraded (nor closed).
        self.handshakes = 0
        self._exempt = frozenset(exempt)
        self._half_open: Counter[str] = Counter()
        self._upgraded: Counter[str] = Counter()

    def start_handshake(self) -> bool:
        """Count a newly accepted connection as not upgraded; False if over the cap."""
        if self.max_handshakes is not None and self.handshakes >= self.max_handshakes:
            return False
        self.handshakes += 1
        return True

    def end_handshake(self) -> None:
        """A connection counted by :meth:`start_handshake` was upgraded or closed."""
        self.handshakes -= 1

    def arrive(self, peer: str) -> bool:
        """Count a new connection from ``peer`` as half-open; False if over the cap."""
        if peer in self._exempt:
            return True
        if self._half_open[peer] >= self.max_half_open:
            return False
        self._half_open[peer] += 1
        return True

    def request_done(self, peer: str) -> None:
        """``peer``'s connection completed its request (or closed before): uncount it."""
        if peer in self._exempt:
            return
        self._half_open[peer] -= 1
        if self._half_open[peer] <= 0:
            del self._half_open[peer]

    def upgrade(self, ip: str) -> bool:
        """Take one upgraded-connection slot of ``ip``; False if it has none left."""
        if self._upgraded[ip] >= self.max_per_ip:
            return False
        self._upgraded[ip] += 1
        return True

    def release_upgrade(self, ip: str) -> None:
        """Give back a slot taken by :meth:`upgrade`."""
        self._upgraded[ip] -= 1
        if self._upgraded[ip] <= 0:
            del self._upgraded[ip]

    def half_open(self, peer: str) -> int:
        """Connections from ``peer`` whose request is not complete."""
        return self._half_open[peer]

    def upgraded(self, ip: str) -> int:
        """Upgraded connections counted for ``ip``."""
        return self._upgraded[ip]
