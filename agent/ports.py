"""The capabilities' ports to the session's link: the one place they meet the transport.

A capability never sees the :class:`link.connection.Link`. The session hands each
handler a :class:`LinkChannelPort` for every multiplexer channel the capability
declared, and a :class:`TunnelStreamPort` for its stream channel (the ``ssh`` channel
as byte streams, :mod:`link.tunnel`). Both only forward to the link, so the
channel's credits, priority, and discard on revocation are exactly the link's.
"""

from __future__ import annotations

from collections.abc import Callable

from agent.capabilities.base import ByteStream
from link.connection import Link
from link.tunnel import Tunnel
from protocol.envelope import Role
from protocol.mux import Channel


class LinkChannelPort:
    """One multiplexer channel of the link (see :class:`agent.capabilities.base.ChannelPort`)."""

    def __init__(self, link: Link, channel: Channel) -> None:
        self._link = link
        self._channel = channel

    async def send(self, payload: bytes) -> None:
        await self._link.send(self._channel, payload)

    async def receive(self) -> bytes | None:
        return await self._link.receive(self._channel)


class TunnelStreamPort:
    """The byte streams of one channel of the link, served by the agent
    (see :class:`agent.capabilities.base.StreamPort`). One per session and channel:
    the tunnel it starts reads every message of that channel."""

    def __init__(self, link: Link, channel: Channel) -> None:
        self._link = link
        self._channel = channel
        self._tunnel: Tunnel | None = None

    def accept(self, on_open: Callable[[ByteStream], None]) -> None:
        if self._tunnel is not None:
            raise RuntimeError(f"the {self._channel.name} streams are already being accepted")
        self._tunnel = Tunnel(self._link, Role.AGENT, channel=self._channel, on_open=on_open)

    def close_all(self, reason: str) -> None:
        if self._tunnel is not None:
            self._tunnel.close_all(reason)

    async def aclose(self, reason: str) -> None:
        if self._tunnel is not None:
            await self._tunnel.aclose(reason)
