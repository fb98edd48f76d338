"""Who may take a connection slot: per-address counts of half-open and upgraded
connections. Pure bookkeeping (no sockets); :mod:`relay.http` and
:mod:`relay.front_door` call it.

Rules::

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
    """Per-address counts against ``max_half_open`` and ``max_per_ip``."""

    def __init__(self, max_half_open: int, max_per_ip: int, exempt: tuple[str, ...] = ()) -> None:
        if max_half_open < 1 or max_per_ip < 1:
            raise ValueError("the per-address limits must be at least 1")
        self.max_half_open = max_half_open
        self.max_per_ip = max_per_ip
        self._exempt = frozenset(exempt)
        self._half_open: Counter[str] = Counter()
        self._upgraded: Counter[str] = Counter()

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
