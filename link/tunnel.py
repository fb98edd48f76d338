"""Byte streams over one channel of a paired :class:`link.connection.Link`, as asyncio transports.

The thin asyncio adapter around :class:`protocol.streams.StreamTable`: each stream
is a :class:`StreamTransport` that any ``asyncio.Protocol`` can sit on, which is how
asyncssh runs a whole SSH connection over the Puente ``ssh`` channel (asyncssh's
``tunnel=`` argument takes an object with ``create_connection``:
:class:`TunnelConnector` is that object).

Framing: each stream's writes wait in a :class:`protocol.streams.WriteBuffer`, which
packs whole writes into DATA frames (its docstring says how, and why that matters to
asyncssh at the other end).

Flow control: when more than ``HIGH_WATER`` bytes wait (in our buffers plus the
link's queue, which only empties as the peer returns credit), every stream's protocol
gets ``pause_writing()``, and ``resume_writing()`` below ``LOW_WATER``. Incoming data
goes straight to the protocols; SSH's own channel windows bound it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable
from typing import Any

from protocol.envelope import Role
from protocol.errors import RemoteProtocolError
from protocol.mux import MAX_FRAGMENT, Channel
from protocol.streams import (
    DATA_HEADER_SIZE,
    StreamClosed,
    StreamData,
    StreamOpened,
    StreamTable,
    WriteBuffer,
)

from .connection import Link
from .errors import LinkError

log = logging.getLogger("puente.tunnel")

HIGH_WATER = 4 * 1024 * 1024
LOW_WATER = 1024 * 1024


class StreamTransport(asyncio.Transport):
    """One stream of a :class:`Tunnel`, seen as an asyncio transport."""

    def __init__(self, tunnel: Tunnel, stream_id: int) -> None:
        super().__init__()
        self.stream_id = stream_id
        self._tunnel = tunnel
        self._protocol: asyncio.BaseProtocol | None = None
        self._early: list[bytes] = []  # data that arrived before a protocol was attached
        self._writes = WriteBuffer()
        self._pending_close: str | None = None  # close() waits for the buffer to drain
        self._closing = False
        self._lost = False
        self._paused_reading = False
        self._writing_paused = False
        self.closed: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    # asyncio.Transport ----------------------------------------------------------------

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name in ("peername", "sockname"):
            return ("puente-tunnel", self.stream_id)
        return default

    def is_closing(self) -> bool:
        return self._closing

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._protocol = protocol

    def get_protocol(self) -> asyncio.BaseProtocol:
        assert self._protocol is not None
        return self._protocol

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._closing or not data:
            return
        self._tunnel._queued(self, self._writes.write(data))

    def writelines(self, list_of_data: Any) -> None:
        for data in list_of_data:
            self.write(data)

    def can_write_eof(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return self._writes.size

    def pause_reading(self) -> None:
        self._paused_reading = True

    def resume_reading(self) -> None:
        if self._paused_reading:
            self._paused_reading = False
            early, self._early = self._early, []
            for data in early:
                self._deliver(data)

    def is_reading(self) -> bool:
        return not self._paused_reading

    def close(self) -> None:
        """Send what is buffered, then CLOSE; the protocol hears ``connection_lost``."""
        if not self._closing:
            self._closing = True
            self._tunnel._close_stream(self, "closed", flush=True)

    def abort(self) -> None:
        self._tunnel._drop_buffer(self)
        if not self._closing:
            self._closing = True
            self._tunnel._close_stream(self, "aborted", flush=False)

    # Used by the tunnel ---------------------------------------------------------------

    def attach(self, protocol: asyncio.BaseProtocol) -> None:
        """Give this stream its protocol; data that came early is delivered now."""
        self._protocol = protocol
        protocol.connection_made(self)
        if self._lost:
            return
        if self._writing_paused:
            protocol.pause_writing()
        early, self._early = self._early, []
        for data in early:
            self._deliver(data)

    def _deliver(self, data: bytes) -> None:
        if self._protocol is None or self._paused_reading:
            self._early.append(data)
            return
        self._protocol.data_received(data)  # type: ignore[attr-defined]

    def _connection_lost(self, reason: str, exc: Exception | None) -> None:
        if self._lost:
            return
        self._lost = True
        self._closing = True
        if not self.closed.done():
            self.closed.set_result(reason)
        if self._protocol is not None:
            self._protocol.connection_lost(exc)

    def _pause(self) -> None:
        self._writing_paused = True
        if self._protocol is not None and not self._lost:
            self._protocol.pause_writing()

    def _resume(self) -> None:
        self._writing_paused = False
        if self._protocol is not None and not self._lost:
            self._protocol.resume_writing()


class Tunnel:
    """All streams on one channel of a link, for one end (agent or technician).

    The agent passes ``on_open``, called with each new stream's transport (attach a
    protocol to it, or ``abort()`` it). The technician calls :meth:`open`.
    """

    def __init__(
        self,
        link: Link,
        role: Role,
        *,
        channel: Channel = Channel.SSH,
        on_open: Callable[[StreamTransport], None] | None = None,
        max_streams: int | None = None,
    ) -> None:
        self.link = link
        self.channel = channel
        self._table = StreamTable(role) if max_streams is None else StreamTable(role, max_streams)
        self._on_open = on_open
        self._streams: dict[int, StreamTransport] = {}
        self._dirty: deque[StreamTransport] = deque()
        self._control: deque[bytes] = deque()  # CLOSE frames, sent after pending data
        self._buffered = 0
        self._paused = False
        self._wakeup = asyncio.Event()
        self._stopped = False
        self._tasks = [
            asyncio.create_task(self._reader(), name="puente-tunnel-reader"),
            asyncio.create_task(self._writer(), name="puente-tunnel-writer"),
        ]

    # Public methods ----------------------------------------------------------------

    def open(self, protocol_factory: Callable[[], asyncio.BaseProtocol]) -> StreamTransport:
        """Open a stream (technician's side) and attach a new protocol to it."""
        if self._stopped:
            raise LinkError("The tunnel to the customer's computer is closed.")
        stream_id, frame = self._table.open()
        stream = StreamTransport(self, stream_id)
        self._streams[stream_id] = stream
        self._control.append(frame)
        self._wakeup.set()
        stream.attach(protocol_factory())
        return stream

    def close_all(self, reason: str) -> None:
        """Close every stream now (consent withdrawn, session over)."""
        for stream in list(self._streams.values()):
            self._drop_buffer(stream)
            frame = self._table.close(stream.stream_id, reason)
            if frame is not None:
                self._control.append(frame)
            self._forget(stream, reason, None)
        self._wakeup.set()

    @property
    def streams(self) -> list[StreamTransport]:
        return list(self._streams.values())

    async def aclose(self, reason: str = "tunnel closed") -> None:
        """Close every stream and stop (the link itself stays open)."""
        self.close_all(reason)
        self._stopped = True
        with contextlib.suppress(LinkError):
            await self._send_pending()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # Called by streams ---------------------------------------------------------------

    def _queued(self, stream: StreamTransport, nbytes: int) -> None:
        if stream.stream_id in self._streams:
            self._dirty.append(stream)
            self._buffered += nbytes
            self._wakeup.set()
            self._check_pressure()
        else:  # closed underneath its protocol: drop
            stream._writes.clear()

    def _drop_buffer(self, stream: StreamTransport) -> None:
        self._buffered -= stream._writes.clear()

    def _close_stream(self, stream: StreamTransport, reason: str, flush: bool) -> None:
        if flush and stream._writes.size and stream.stream_id in self._streams:
            # The writer sends the rest, then the CLOSE (see _send_pending).
            stream._pending_close = reason
            self._dirty.append(stream)
            self._wakeup.set()
            return
        self._drop_buffer(stream)
        frame = self._table.close(stream.stream_id, reason)
        if frame is not None:
            self._control.append(frame)
            self._wakeup.set()
        asyncio.get_running_loop().call_soon(self._forget, stream, reason, None)

    def _forget(self, stream: StreamTransport, reason: str, exc: Exception | None) -> None:
        self._streams.pop(stream.stream_id, None)
        stream._connection_lost(reason, exc)

    # Private methods ---------------------------------------------------------------

    def _check_pressure(self) -> None:
        backlog = self._buffered + self.link.pending(self.channel) * MAX_FRAGMENT
        if not self._paused and backlog > HIGH_WATER:
            self._paused = True
            for stream in list(self._streams.values()):
                stream._pause()
        elif self._paused and backlog <= LOW_WATER:
            self._paused = False
            for stream in list(self._streams.values()):
                stream._resume()

    async def _reader(self) -> None:
        try:
            while (payload := await self.link.receive(self.channel)) is not None:
                if self._stopped:
                    continue
                try:
                    event = self._table.receive(payload)
                except RemoteProtocolError as exc:
                    log.warning("the other side broke the stream rules: %s", exc)
                    self.close_all(f"protocol error: {exc}")
                    self._stopped = True
                    continue
                if self._table.replies:
                    self._control.extend(self._table.replies)
                    self._table.replies.clear()
                    self._wakeup.set()
                if isinstance(event, StreamData):
                    stream = self._streams.get(event.stream_id)
                    if stream is not None:
                        stream._deliver(event.data)
                elif isinstance(event, StreamOpened):
                    stream = StreamTransport(self, event.stream_id)
                    self._streams[event.stream_id] = stream
                    if self._on_open is None:
                        stream.abort()
                    else:
                        self._on_open(stream)
                elif isinstance(event, StreamClosed):
                    stream = self._streams.get(event.stream_id)
                    if stream is not None:
                        self._drop_buffer(stream)
                        self._forget(stream, event.reason or "closed by the other side", None)
        finally:
            for stream in list(self._streams.values()):
                self._drop_buffer(stream)
                self._forget(stream, "the session ended", ConnectionResetError("session ended"))
            self._stopped = True

    async def _writer(self) -> None:
        with contextlib.suppress(LinkError):
            while True:
                await self._wakeup.wait()
                self._wakeup.clear()
                await self._send_pending()
                # Paused writers write nothing, so nobody else would look again: wait
                # here until the link drains below the low-water mark, then resume them.
                while self._paused and not (self._dirty or self._control):
                    if self.link.closed.done():
                        return
                    await self.link.wait_sent(self.channel, LOW_WATER // MAX_FRAGMENT)
                    self._check_pressure()

    async def _send_pending(self) -> None:
        # OPEN and CLOSE frames first: an OPEN must precede its stream's data, and a
        # CLOSE only gets here once its stream has nothing left to send.
        while self._dirty or self._control:
            while self._control:
                await self.link.send(self.channel, self._control.popleft())
            while self._dirty:
                stream = self._dirty.popleft()
                while stream._writes.size and self._table.is_open(stream.stream_id):
                    frame = self._table.data(stream.stream_id, *stream._writes.take())
                    self._buffered -= len(frame) - DATA_HEADER_SIZE
                    await self.link.send(self.channel, frame)
                    if self.link.pending(self.channel) * MAX_FRAGMENT > HIGH_WATER:
                        self._check_pressure()
                        await self.link.wait_sent(self.channel, LOW_WATER // MAX_FRAGMENT)
                if stream._pending_close is not None and not stream._writes.size:
                    reason, stream._pending_close = stream._pending_close, None
                    self._close_stream(stream, reason, flush=False)
            self._check_pressure()


class TunnelConnector:
    """What asyncssh's ``tunnel=`` argument wants: ``create_connection`` over a stream.

    On the technician's side each call opens a new stream. On the agent's side the
    stream already exists (the technician opened it): pass it as ``stream``.
    """

    def __init__(self, tunnel: Tunnel | None = None, stream: StreamTransport | None = None):
        self._tunnel = tunnel
        self._stream = stream

    async def create_connection(
        self, session_factory: Callable[[], asyncio.BaseProtocol], host: str, port: int
    ) -> tuple[StreamTransport, asyncio.BaseProtocol]:
        if self._stream is not None:
            stream, self._stream = self._stream, None
            protocol = session_factory()
            stream.attach(protocol)
            return stream, protocol
        if self._tunnel is None:
            raise LinkError("This tunnel connector was already used.")
        stream = self._tunnel.open(session_factory)
        return stream, stream.get_protocol()

    def close(self) -> None:
        """Nothing to release: the streams belong to the tunnel."""

    async def wait_closed(self) -> None:
        """Nothing to wait for (see :meth:`close`)."""
