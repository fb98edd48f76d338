"""HTTP plumbing shared by the WebSocket endpoint and the REST API.

The relay serves REST and WebSocket on one port with the ``websockets`` server.
Its HTTP parser reads request heads only and refuses any request that announces a
body, so :class:`RelayConnection` reads bodies itself before websockets sees the
request. Everything else here is small helpers to build JSON responses and to read
headers strictly (a repeated ``Authorization`` or ``Origin`` is refused, never guessed).
"""

from __future__ import annotations

import asyncio
import email.utils
import functools
import http
import json
import logging
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from websockets.asyncio.connection import Connection
from websockets.asyncio.server import ServerConnection
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed, InvalidState
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.protocol import Event

from .admission import AddressLimits
from .errors import HeaderError

if TYPE_CHECKING:
    from .records import Technician

logger = logging.getLogger("relay.server")

#: Largest request body the REST API reads; a larger one is answered with 413.
MAX_BODY_SIZE = 64 * 1024

#: Largest request head buffered while looking for a body; past that websockets decides.
MAX_HEAD_SIZE = 64 * 1024

_DATA_OPCODES = (Opcode.TEXT, Opcode.BINARY, Opcode.CONT)


class ForwardingConnection(Connection):
    """A websockets connection that can hand whole messages on as they are parsed.

    While :attr:`forward_binary` (or :attr:`forward_text`) is set, each whole binary
    (text) message goes to it from the parser, without queueing for a reader task:
    the relay forwards ciphertext as it comes. Other messages take websockets' usual
    path. A fragmented message switches the connection to that path for good (both
    callbacks are dropped), so that no later message can overtake it.
    :attr:`on_drained` callbacks run once when the send buffer drains.

    The relay's own ends forward binary only (their text is for the relay); a hop
    between nodes forwards both, in the order they came.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.forward_binary: Callable[[bytes | bytearray | memoryview], object] | None = None
        self.forward_text: Callable[[bytes | bytearray | memoryview], object] | None = None
        self.on_drained: list[Callable[[], None]] = []
        self._in_fragmented_message = False

    def process_event(self, event: Event) -> None:
        # Runs for every frame the relay receives: the common case (a whole binary
        # message, a callback set) is tested first.
        if type(event) is Frame:
            opcode = event.opcode
            if event.fin and not self._in_fragmented_message:
                if opcode is Opcode.BINARY and self.forward_binary is not None:
                    self.forward_binary(event.data)
                    return
                if opcode is Opcode.TEXT and self.forward_text is not None:
                    self.forward_text(event.data)
                    return
            elif opcode in _DATA_OPCODES:  # a fragment: from here on websockets' own path
                if not event.fin:
                    self.forward_binary = self.forward_text = None
                self._in_fragmented_message = not event.fin
        super().process_event(event)

    def resume_writing(self) -> None:
        super().resume_writing()
        drained, self.on_drained = self.on_drained, []
        for callback in drained:
            callback()


def send_now(
    source: ForwardingConnection,
    sink: ForwardingConnection,
    message: bytes | bytearray | memoryview,
    text: bool = False,
) -> bool:
    """Send ``message`` (binary, or UTF-8 text) on ``sink`` at once; False if it is closing.

    Backpressure: while ``sink``'s send buffer is over its limit, reading from
    ``source`` pauses, so a slow reader slows its sender instead of filling memory.
    """
    try:
        if text:
            sink.protocol.send_text(message)
        else:
            sink.protocol.send_binary(message)
    except InvalidState:
        return False
    sink.send_data()
    if sink.paused:  # the sink's transport is over its high-water mark
        source.transport.pause_reading()
        sink.on_drained.append(source.transport.resume_reading)
    return True


class RelayConnection(ForwardingConnection, ServerConnection):
    """A websockets ``ServerConnection`` that can also read an HTTP request body.

    It sits in front of websockets' parser while the request head arrives:

    * no body announced: head and any following bytes (WebSocket frames) go to
      websockets untouched, and the connection steps aside for good;
    * ``Content-Length: N`` with ``0 < N <= MAX_BODY_SIZE``: the body is read into
      :attr:`request_body`, then websockets gets the head with ``Content-Length: 0``;
    * a body that cannot be read (too large, chunked, a malformed length):
      websockets gets a body-less head and :attr:`request_error` holds the HTTP status
      to answer; the body's bytes are dropped.

    ``process_request`` must answer :attr:`request_error` when it is set, and call
    :meth:`request_complete`. Attributes set by ``process_request`` for the connection
    handler: :attr:`technician`.

    Limits (:mod:`relay.admission`): with ``limits``, a connection that arrives while
    max_handshakes others are not yet upgraded gets the 503 of :func:`at_capacity_response`
    and is closed; one from an address that already has too many half-open ones is
    closed as it arrives; whatever slot it held is given back when it closes. With ``max_send_buffer``, a peer whose unsent bytes
    (pongs included) pile up past it is closed: it is not reading.

    ``open_timeout`` bounds the opening handshake (the server is started without one):
    an agent download (:mod:`relay.downloads`) lifts it with :meth:`lift_open_timeout`
    once it starts streaming, since a slow line may need minutes for the file.
    """

    def __init__(
        self,
        *args: Any,
        limits: AddressLimits | None = None,
        max_send_buffer: int | None = None,
        open_timeout: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self._limits = limits
        self._open_timeout = open_timeout
        self._open_deadline: asyncio.Timeout | None = None
        self._max_send_buffer = max_send_buffer
        #: The TCP peer counted as half-open until its request is complete.
        self._half_open_peer: str | None = None
        #: Counted in the relay-wide handshake budget until upgraded or closed.
        self._handshaking = False
        #: The client address holding an upgraded-connection slot (relay.front_door).
        self.upgrade_slot: str | None = None
        #: The request body (empty when there is none).
        self.request_body = b""
        #: HTTP status to answer instead of routing the request, if the body was unreadable.
        self.request_error: http.HTTPStatus | None = None
        #: The client's IP address (the TCP peer unless a trusted proxy says otherwise).
        self.client_ip = "unknown"
        #: The technician authenticated by the upgrade's bearer token, if any.
        self.technician: Technician | None = None
        #: True when another node of the cluster passed this connection on (relay.cluster).
        self.from_node = False
        #: The relay's last words to this connection (a message, then close), once started.
        self.farewell: asyncio.Task[None] | None = None
        self._pending = bytearray()  # bytes not yet given to websockets
        self._head = b""
        self._body_size = 0
        self._mode = "head"  # head -> body -> (pass | drop)

    @classmethod
    def factory(
        cls, limits: AddressLimits, *, max_send_buffer: int | None, open_timeout: float | None
    ) -> Callable[..., RelayConnection]:
        """What ``serve(create_connection=...)`` calls for each new connection."""
        return functools.partial(
            cls, limits=limits, max_send_buffer=max_send_buffer, open_timeout=open_timeout
        )

    async def handshake(self, *args: Any, **kwargs: Any) -> None:
        async with asyncio.timeout(self._open_timeout) as deadline:
            self._open_deadline = deadline
            await super().handshake(*args, **kwargs)

    def lift_open_timeout(self) -> None:
        """No deadline for the rest of the handshake (a download streams inside it)."""
        if self._open_deadline is not None:
            self._open_deadline.reschedule(None)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        if self._limits is None:
            return
        if not self._limits.start_handshake():
            # Over the relay-wide budget of connections not yet upgraded: say so and
            # give the descriptor back now rather than after open_timeout.
            self.transport.write(at_capacity_response().serialize())
            self.transport.close()
            return
        self._handshaking = True
        address = transport.get_extra_info("peername")
        peer = str(address[0]) if address else "unknown"
        if self._limits.arrive(peer):
            self._half_open_peer = peer
        else:
            self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self.request_complete()
        self.upgraded()
        if self.upgrade_slot is not None and self._limits is not None:
            self._limits.release_upgrade(self.upgrade_slot)
            self.upgrade_slot = None
        super().connection_lost(exc)

    def request_complete(self) -> None:
        """The request arrived (or the connection closed): it is no longer half-open."""
        if self._half_open_peer is not None and self._limits is not None:
            self._limits.request_done(self._half_open_peer)
        self._half_open_peer = None

    def upgraded(self) -> None:
        """The front door accepted the upgrade (or the connection closed): it leaves the
        relay-wide count of connections not yet upgraded (:mod:`relay.admission`)."""
        if self._handshaking and self._limits is not None:
            self._limits.end_handshake()
        self._handshaking = False

    def take_upgrade_slot(self, ip: str) -> bool:
        """Hold one of ``ip``'s upgraded-connection slots until this connection closes."""
        if self._limits is None:
            return True
        if not self._limits.upgrade(ip):
            return False
        self.upgrade_slot = ip
        return True

    def data_received(self, data: bytes) -> None:
        if self._mode == "pass":
            super().data_received(data)
            self._check_send_buffer()
            return
        if self._mode == "drop":  # the body's leftovers or pipelined bytes: never parsed
            return
        self._pending += data
        if self._mode == "head":
            end = self._pending.find(b"\r\n\r\n")
            if end < 0:
                if len(self._pending) > MAX_HEAD_SIZE:
                    self._hand_over(bytes(self._pending), then="pass")  # websockets refuses it
                return
            self._head = bytes(self._pending[: end + 4])
            del self._pending[: end + 4]
            fields = _header_fields(self._head)
            self._body_size, self.request_error = _announced_body(fields)
            if self.request_error is not None:
                self._hand_over(_without_body(self._head), then="drop")
                return
            if self._body_size == 0:
                self._hand_over(self._head + bytes(self._pending), then="pass")
                return
            self._mode = "body"
            if any(v.lower() == "100-continue" for v in fields.get("expect", [])):
                # curl waits for this before sending a body over 1 KiB.
                self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        if len(self._pending) >= self._body_size:
            self.request_body = bytes(self._pending[: self._body_size])
            self._hand_over(_without_body(self._head), then="drop")

    def _hand_over(self, data: bytes, then: str) -> None:
        self._mode = then
        self._pending = bytearray()
        super().data_received(data)
        self._check_send_buffer()

    def _check_send_buffer(self) -> None:
        """Close a peer that lets what the relay sends it (pongs too) pile up unread."""
        limit = self._max_send_buffer
        if limit is not None and self.transport.get_write_buffer_size() > limit:
            logger.info("connection closed: over %d bytes unread ip=%s", limit, self.client_ip)
            self.transport.abort()


def _header_fields(head: bytes) -> dict[str, list[str]]:
    """Header values by lower-case name (only what the body decision needs)."""
    fields: dict[str, list[str]] = {}
    for line in head.split(b"\r\n")[1:]:
        name, sep, value = line.partition(b":")
        if sep:
            key = name.strip().decode("latin-1").lower()
            fields.setdefault(key, []).append(value.strip().decode("latin-1"))
    return fields


def _announced_body(fields: dict[str, list[str]]) -> tuple[int, http.HTTPStatus | None]:
    """The body size a head announces, or the HTTP status refusing it."""
    if "transfer-encoding" in fields:
        return 0, http.HTTPStatus.LENGTH_REQUIRED
    lengths = set(fields.get("content-length", ["0"]))
    if len(lengths) != 1:
        return 0, http.HTTPStatus.BAD_REQUEST
    (length,) = lengths
    if not length.isascii() or not length.isdigit() or len(length) > 18:
        return 0, http.HTTPStatus.BAD_REQUEST
    if int(length) > MAX_BODY_SIZE:
        return 0, http.HTTPStatus.REQUEST_ENTITY_TOO_LARGE
    return int(length), None


def _without_body(head: bytes) -> bytes:
    """The head with Content-Length rewritten to 0 and Transfer-Encoding removed."""
    lines = []
    for line in head.split(b"\r\n"):
        name = line.partition(b":")[0].strip().lower()
        if name == b"content-length":
            line = b"Content-Length: 0"
        elif name == b"transfer-encoding":
            continue
        lines.append(line)
    return b"\r\n".join(lines)


# ---------------------------------------------------------------------------
# Responses and headers
# ---------------------------------------------------------------------------


def json_response(
    status: http.HTTPStatus, payload: Any, extra_headers: Iterable[tuple[str, str]] = ()
) -> Response:
    """A complete HTTP response with a JSON body; the connection closes after it."""
    body = json.dumps(payload, indent=2).encode() + b"\n"
    return body_response(status, "application/json", body, "no-store", extra_headers)


def body_response(
    status: http.HTTPStatus,
    content_type: str,
    body: bytes,
    cache: str = "no-store",
    extra_headers: Iterable[tuple[str, str]] = (),
    *,
    head_only: bool = False,
) -> Response:
    """A complete HTTP response (its body left out for HEAD); the connection closes after it."""
    headers = Headers(
        [
            ("Date", email.utils.formatdate(usegmt=True)),
            ("Connection", "close"),
            ("Content-Type", content_type),
            ("Content-Length", str(len(body))),
            ("Cache-Control", cache),
            ("X-Content-Type-Options", "nosniff"),
            *extra_headers,
        ]
    )
    return Response(status.value, status.phrase, headers, b"" if head_only else body)


def error_response(
    status: http.HTTPStatus,
    code: str,
    message: str,
    extra_headers: Iterable[tuple[str, str]] = (),
) -> Response:
    """``{"error": code, "message": sentence}`` with the given status."""
    return json_response(status, {"error": code, "message": message}, extra_headers)


def at_capacity_response() -> Response:
    """503: the relay has no room for another connection (or is restarting)."""
    return error_response(
        http.HTTPStatus.SERVICE_UNAVAILABLE,
        "unavailable",
        "The relay is at capacity or restarting; try again in a moment.",
        (("Retry-After", "5"),),
    )


def single_header(headers: Headers, name: str) -> str | None:
    """The value of a header that may appear at most once; raise HeaderError if repeated."""
    values = headers.get_all(name)
    if len(values) > 1:
        raise HeaderError(f"the {name} header appears more than once")
    return values[0] if values else None


def bearer_token(headers: Headers) -> str | None:
    """The token of ``Authorization: Bearer TOKEN``, or None if there is no such header.

    Raise HeaderError if the header is present but not a single bearer token.
    """
    value = single_header(headers, "Authorization")
    if value is None:
        return None
    scheme, _, token = value.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token:
        raise HeaderError("the Authorization header must be 'Bearer TOKEN'")
    return token


async def send_all(messages: Sequence[tuple[ServerConnection, str]]) -> None:
    """Send each message in order (this task's own: awaited, as the rules require)."""
    for connection, text in messages:
        await send_quietly(connection, text)


async def send_quietly(connection: ServerConnection, text: str) -> None:
    """Send, ignoring a connection that already closed (its own task cleans up)."""
    try:
        await connection.send(text)
    except ConnectionClosed:
        pass


async def say_goodbye(connection: ServerConnection, text: str | None, timeout: float) -> None:
    """Send ``text`` (if any) as the last message, then close; give up after ``timeout``
    (twice the close timeout: websockets already aborts a close handshake after one)."""
    try:
        async with asyncio.timeout(timeout):
            if text is not None:
                await connection.send(text)
            await connection.close()
    except ConnectionClosed:
        pass
    except TimeoutError:
        # The peer stopped reading: nothing more can be said politely.
        connection.transport.abort()
