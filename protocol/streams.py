"""Byte streams inside one multiplexer channel (the ``ssh`` channel carries several).

Every standard OpenSSH client the technician points at ``forward`` makes its own TCP
connection, and each of those is one whole SSH connection to the agent. So the
``ssh`` channel carries numbered streams. Each multiplexer message on the channel is
one stream frame::

    kind (1) || stream id (4, big-endian) || body

Rules (everything that decides what is accepted lives here):

1. Only the technician opens streams (``OPEN``); the agent only answers. An ``OPEN``
   arriving at the technician's side is a protocol error.
2. Stream ids start at 1 and go up by one per ``OPEN``; an id is never reused, so a
   late frame of a closed stream can never be mistaken for a new one.
3. ``DATA`` carries 1 to ``MAX_DATA`` bytes. ``CLOSE`` ends the stream in both
   directions; its body is a short reason. Nothing is sent on a stream after CLOSE.
4. Frames for a stream that was opened and has since closed are dropped (the two
   ends may close at the same moment). Frames for an id that was never opened,
   unknown kinds and out-of-sequence ids are protocol errors: deny by default.
5. The agent accepts at most ``MAX_STREAMS`` open streams; a further ``OPEN`` is
   answered with ``CLOSE`` at once (the technician's client reports it).

Flow control comes from the layers around: the multiplexer's credits bound what is
in flight on the channel, and SSH's own channel windows bound each stream.

How written bytes become DATA frames (:class:`WriteBuffer`, rules in its docstring)
matters for speed, not for correctness: the peer sees the same byte stream.

The agent's SSH host key reaches the technician inside the secure channel (in the
``Progress`` of a ``shell``/``files`` ``open`` request) with a signature by that key
over ``HOST_KEY_PROOF_LABEL || transcript hash``: the key is bound to this pairing,
so the technician pins it without a prompt and no other session's key can be
replayed.
"""

from __future__ import annotations

import enum
import struct
from collections import deque
from dataclasses import dataclass

from .envelope import Role
from .errors import LocalProtocolError, MalformedMessage, RemoteProtocolError
from .mux import MAX_FRAGMENT

_HEADER = struct.Struct(">BI")
#: Bytes a stream frame adds in front of its body.
DATA_HEADER_SIZE = _HEADER.size
#: Largest DATA body; the adapter coalesces writes up to this size. A whole DATA frame
#: fits one multiplexer fragment, so it crosses the relay as one record.
MAX_DATA = MAX_FRAGMENT - DATA_HEADER_SIZE
#: Largest SSH channel packet (``max_pktsize``) both ends offer inside the tunnel: a
#: whole SSH packet, with its own framing and MAC (under 100 bytes), fits one DATA frame.
SSH_MAX_PACKET = MAX_DATA - 1024
MAX_STREAMS = 32
MAX_REASON = 200
#: What the agent's SSH host key signs, followed by the pairing transcript hash.
HOST_KEY_PROOF_LABEL = b"puente/1 ssh host key\x00"
#: Suffix of a partly copied file kept for resuming (``put`` and ``get`` agree on it,
#: and the agent's log tells a finished copy from a partial one by it).
PART_SUFFIX = ".puente-part"


class StreamKind(enum.IntEnum):
    OPEN = 1
    DATA = 2
    CLOSE = 3


@dataclass(frozen=True)
class StreamOpened:
    """The technician opened ``stream_id`` (seen by the agent only)."""

    stream_id: int


@dataclass(frozen=True)
class StreamData:
    stream_id: int
    data: bytes


@dataclass(frozen=True)
class StreamClosed:
    """The peer closed ``stream_id`` (or refused to open it)."""

    stream_id: int
    reason: str


StreamEvent = StreamOpened | StreamData | StreamClosed


class StreamTable:
    """Sans-I/O bookkeeping of the streams on one channel, for one end.

    ``open()``, ``data()`` and ``close()`` return the frame to send; ``receive()``
    takes a frame from the peer and returns the event it means (or None when the
    frame is to be dropped, or when the answer is a frame in ``replies``).
    """

    def __init__(self, role: Role, max_streams: int = MAX_STREAMS) -> None:
        self.role = role
        self.max_streams = max_streams
        self._open: set[int] = set()
        self._last_id = 0
        #: Frames the table wants sent without being asked (refused OPENs).
        self.replies: list[bytes] = []

    # Local actions --------------------------------------------------------------------

    def open(self) -> tuple[int, bytes]:
        """Open a new stream (technician only): its id and the OPEN frame."""
        if self.role is not Role.TECHNICIAN:
            raise LocalProtocolError("only the technician's side opens streams")
        self._last_id += 1
        self._open.add(self._last_id)
        return self._last_id, _HEADER.pack(StreamKind.OPEN, self._last_id)

    def data(self, stream_id: int, *pieces: bytes | bytearray | memoryview) -> bytes:
        """A DATA frame for an open stream whose body is ``pieces`` joined (copied once).

        The caller cuts at ``MAX_DATA``.
        """
        if stream_id not in self._open:
            raise LocalProtocolError(f"stream {stream_id} is not open")
        if not 0 < sum(len(piece) for piece in pieces) <= MAX_DATA:
            raise LocalProtocolError("a DATA frame carries 1 to MAX_DATA bytes")
        return b"".join((_HEADER.pack(StreamKind.DATA, stream_id), *pieces))

    def close(self, stream_id: int, reason: str = "") -> bytes | None:
        """The CLOSE frame for ``stream_id``, or None if it is already closed."""
        if stream_id not in self._open:
            return None
        self._open.discard(stream_id)
        return _HEADER.pack(StreamKind.CLOSE, stream_id) + reason.encode()[:MAX_REASON]

    def is_open(self, stream_id: int) -> bool:
        return stream_id in self._open

    @property
    def open_streams(self) -> frozenset[int]:
        return frozenset(self._open)

    # Frames from the peer -------------------------------------------------------------

    def receive(self, frame: bytes) -> StreamEvent | None:
        """Take one frame from the peer. Raises :class:`RemoteProtocolError` on abuse."""
        if len(frame) < _HEADER.size:
            raise MalformedMessage("stream frame too short")
        kind_byte, stream_id = _HEADER.unpack_from(frame)
        try:
            kind = StreamKind(kind_byte)
        except ValueError:
            raise MalformedMessage(f"unknown stream frame kind {kind_byte}") from None
        body = frame[_HEADER.size :]
        if kind is StreamKind.OPEN:
            return self._receive_open(stream_id, body)
        if stream_id not in self._open:
            if 0 < stream_id <= self._last_id:
                return None  # closed meanwhile: drop (rule 4)
            raise RemoteProtocolError(f"frame for stream {stream_id}, which was never opened")
        if kind is StreamKind.DATA:
            if not 0 < len(body) <= MAX_DATA:
                raise MalformedMessage("a DATA frame carries 1 to MAX_DATA bytes")
            return StreamData(stream_id, bytes(body))
        self._open.discard(stream_id)
        return StreamClosed(stream_id, bytes(body[:MAX_REASON]).decode("utf-8", "replace"))

    def _receive_open(self, stream_id: int, body: bytes) -> StreamOpened | None:
        if self.role is not Role.AGENT:
            raise RemoteProtocolError("the agent's side may not open streams")
        if body:
            raise MalformedMessage("an OPEN frame has no body")
        if stream_id != self._last_id + 1:
            raise RemoteProtocolError(f"stream {stream_id} opened out of sequence")
        self._last_id = stream_id
        if len(self._open) >= self.max_streams:
            reason = f"too many connections at once (at most {self.max_streams})"
            self.replies.append(_HEADER.pack(StreamKind.CLOSE, stream_id) + reason.encode())
            return None
        self._open.add(stream_id)
        return StreamOpened(stream_id)


class WriteBuffer:
    """Bytes written to one stream and not yet sent, cut into DATA bodies (sans-I/O).

    Rules:

    1. Whole writes are packed, in order, into bodies of at most ``limit`` bytes; a
       write that does not fit in the body being filled starts the next one.
    2. Only a write larger than ``limit`` is cut; its rest waits as a view, uncopied.
    3. ``bytes`` are kept as written (they cannot change); anything else is copied once
       when written. A body's pieces are joined once, by :meth:`StreamTable.data`.

    Why (measured with ``bench/ssh_throughput.py``): asyncssh writes one SSH packet per
    call and decrypts only whole packets, copying its whole input buffer whenever more
    arrives; bodies cut along writes hand the peer's asyncssh whole packets, and the
    small packet asyncssh sends before each data packet shares that packet's frame
    instead of costing a record of its own.
    """

    def __init__(self) -> None:
        self._chunks: deque[bytes | memoryview] = deque()
        #: Bytes written and not yet taken.
        self.size = 0

    def write(self, data: bytes | bytearray | memoryview) -> int:
        """Keep ``data`` for sending; return its length."""
        chunk = data if type(data) is bytes else bytes(data)
        if chunk:
            self._chunks.append(chunk)
            self.size += len(chunk)
        return len(chunk)

    def take(self, limit: int = MAX_DATA) -> list[bytes | memoryview]:
        """The pieces of the next body (rules 1 and 2): empty only if nothing waits."""
        if limit < 1:
            raise LocalProtocolError("a DATA body holds at least one byte")
        chunks = self._chunks
        pieces: list[bytes | memoryview] = []
        room = limit
        while chunks:
            chunk = chunks[0]
            if len(chunk) > room:
                if pieces:
                    break  # rule 1: it starts the next body
                view = chunk if isinstance(chunk, memoryview) else memoryview(chunk)
                chunks[0] = view[room:]  # rule 2
                pieces.append(view[:room])
                room = 0
                break
            pieces.append(chunks.popleft())
            room -= len(chunk)
        self.size -= limit - room
        return pieces

    def clear(self) -> int:
        """Forget everything not yet taken; return how many bytes that was."""
        dropped, self.size = self.size, 0
        self._chunks.clear()
        return dropped
