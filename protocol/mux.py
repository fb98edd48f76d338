"""The multiplexer: channels with ids, priorities and per-channel credits.

Every secure record carries one frame: ``kind (1) || channel (1) || body``.

Rules:

1. Messages are cut into fragments of at most ``MAX_FRAGMENT`` bytes; the last one is
   a ``END`` frame, earlier ones ``PART``. Fragments of different channels interleave,
   so a big screen frame never delays a keystroke.
2. Credits are counted in payload bytes per channel, per direction. A sender may
   only send a fragment that fits its remaining credit; a receiver that sees more than
   it granted fails with :class:`RemoteProtocolError`. Credit comes back in ``CREDIT``
   frames (``body`` = 4-byte big-endian byte count) as the application consumes whole
   messages. One exception keeps a message larger than the window from stalling: when a
   channel has no unconsumed message and the fragments of the one being reassembled
   leave less than a fragment of window, the receiver credits those buffered fragments
   back at once (reassembly is bounded by ``MAX_MESSAGE`` instead). So receive memory
   per channel stays within the window plus one message in reassembly.
3. The next frame to send is taken from the highest-priority channel that has data
   and credit: credits first, then control and input, screen last.
4. Unknown frame kinds or channels are protocol errors: deny by default.
5. ``discard(channel)`` drops the messages queued on a channel and not yet sent
   (consent withdrawn: queued screen frames must not leave). If one was caught
   half-sent, an ``ABORT`` frame tells the receiver to drop its first part and to
   give back the credit it used.
"""

from __future__ import annotations

import enum
import struct
from collections import deque
from dataclasses import dataclass

from .errors import LocalProtocolError, MalformedMessage, RemoteProtocolError

# 256 KiB: a whole SSH tunnel frame (protocol.streams.MAX_DATA) is one record, one
# WebSocket message through the relay: each record costs a seal, a send, a forward, an
# open and a dispatch in three processes, whatever its size (bench/ssh_throughput.py:
# about a tenth of the CPU of a file copy against 64 KiB). A keystroke waits behind at
# most one fragment: about a millisecond on loopback, and on a slow link much less than
# what the operating system's socket buffers already hold during a bulk transfer.
MAX_FRAGMENT = 256 * 1024
# 4 MiB: sixteen whole fragments in flight per channel, and credit granted back a
# quarter window (1 MiB) at a time, so that a bulk copy's return traffic stays a few
# small records per MiB (version 1: 1 MiB and 64 KiB fragments).
INITIAL_CREDIT = 4 << 20
#: Largest reassembled message on any channel.
MAX_MESSAGE = 32 * 1024 * 1024


class Channel(enum.IntEnum):
    """Channel ids; the order of ``PRIORITY`` decides who goes first."""

    CONTROL = 0
    INPUT = 1
    CHAT = 2
    DIAGNOSTICS = 3
    FIX = 4
    SSH = 5
    SCREEN = 6


PRIORITY: tuple[Channel, ...] = (
    Channel.CONTROL,
    Channel.INPUT,
    Channel.CHAT,
    Channel.DIAGNOSTICS,
    Channel.FIX,
    Channel.SSH,
    Channel.SCREEN,
)


class FrameKind(enum.IntEnum):
    PART = 1
    END = 2
    CREDIT = 3
    ABORT = 4


@dataclass(frozen=True)
class MessageReceived:
    """A whole message arrived on ``channel``; call ``consumed()`` once it is handled."""

    channel: Channel
    payload: bytes


class Multiplexer:
    """Sans-I/O: ``send()`` and ``receive_frame()`` in; ``next_frame()`` and events out."""

    def __init__(self, initial_credit: int = INITIAL_CREDIT) -> None:
        self._initial_credit = initial_credit
        self._send_credit = {ch: initial_credit for ch in Channel}
        self._recv_allowance = {ch: initial_credit for ch in Channel}
        self._to_grant = {ch: 0 for ch in Channel}
        self._outgoing: dict[Channel, deque[bytes]] = {ch: deque() for ch in Channel}
        self._credit_frames: deque[bytes] = deque()
        self._partial: dict[Channel, list[memoryview]] = {ch: [] for ch in Channel}
        self._partial_size = {ch: 0 for ch in Channel}
        #: True while a message of the channel is half-sent (its PARTs went out).
        self._midway = {ch: False for ch in Channel}
        self._partial_credited = {ch: 0 for ch in Channel}
        # Per delivered, not yet consumed message: [bytes left to consume, credit owed].
        self._unconsumed: dict[Channel, deque[list[int]]] = {ch: deque() for ch in Channel}

    # Sending -------------------------------------------------------------------

    def send(self, channel: Channel, payload: bytes | bytearray | memoryview) -> None:
        """Queue a whole message on a channel (copied: the caller may reuse its buffer)."""
        if len(payload) > MAX_MESSAGE:
            raise LocalProtocolError(f"message of {len(payload)} bytes exceeds {MAX_MESSAGE}")
        queue = self._outgoing[Channel(channel)]
        if len(payload) <= MAX_FRAGMENT:  # the common case: one copy, header and payload
            queue.append(b"".join((bytes([FrameKind.END, channel]), payload)))
            return
        part, end = bytes([FrameKind.PART, channel]), bytes([FrameKind.END, channel])
        with memoryview(payload) as view:
            for start in range(0, len(payload), MAX_FRAGMENT):
                last = start + MAX_FRAGMENT >= len(payload)
                queue.append(b"".join((end if last else part, view[start : start + MAX_FRAGMENT])))

    def pending(self, channel: Channel) -> int:
        """Number of frames queued on ``channel`` and not yet sent."""
        return len(self._outgoing[channel])

    def next_frame(self) -> bytes | None:
        """The next frame to seal and send, or None if nothing may go now."""
        if self._credit_frames:
            return self._credit_frames.popleft()
        for channel in PRIORITY:
            queue = self._outgoing[channel]
            if queue:
                size = len(queue[0]) - 2
                if size <= self._send_credit[channel]:
                    self._send_credit[channel] -= size
                    frame = queue.popleft()
                    self._midway[channel] = frame[0] == FrameKind.PART
                    return frame
        return None

    def discard(self, channel: Channel) -> int:
        """Drop the messages queued on ``channel`` and not yet sent; return how many (rule 5)."""
        queue = self._outgoing[channel]
        dropped = sum(1 for frame in queue if frame[0] == FrameKind.END)
        queue.clear()
        if self._midway[channel]:
            queue.append(bytes([FrameKind.ABORT, channel]))
            self._midway[channel] = False
        return dropped

    def blocked(self) -> list[Channel]:
        """Channels with queued data but no credit: the peer is not keeping up."""
        return [
            ch for ch, q in self._outgoing.items() if q and len(q[0]) - 2 > self._send_credit[ch]
        ]

    # Receiving -----------------------------------------------------------------

    def receive_frame(self, frame: bytes | bytearray) -> MessageReceived | None:
        """Take one frame; return a whole message when its last fragment arrives."""
        if len(frame) < 2:
            raise MalformedMessage("multiplexer frame too short")
        try:
            kind = FrameKind(frame[0])
            channel = Channel(frame[1])
        except ValueError:
            raise MalformedMessage("unknown multiplexer frame kind or channel") from None
        # A view: the fragment's bytes are copied once, into the delivered message.
        body = memoryview(frame)[2:]
        if kind is FrameKind.CREDIT:
            if len(body) != 4:
                raise MalformedMessage("credit frame must carry 4 bytes")
            (grant,) = struct.unpack(">I", body)
            if self._send_credit[channel] + grant > self._initial_credit:
                raise RemoteProtocolError("peer granted more credit than it could owe")
            self._send_credit[channel] += grant
            return None
        if kind is FrameKind.ABORT:
            if body or not self._partial[channel]:
                raise RemoteProtocolError("ABORT without a half-received message")
            owed = self._partial_size[channel] - self._partial_credited[channel]
            self._partial[channel] = []
            self._partial_size[channel] = 0
            self._partial_credited[channel] = 0
            self._grant(channel, owed)  # the dropped part's credit goes back
            return None
        if len(body) > MAX_FRAGMENT:
            raise RemoteProtocolError("fragment larger than allowed")
        if len(body) > self._recv_allowance[channel]:
            raise RemoteProtocolError(f"peer sent more on {channel.name} than its credit")
        self._recv_allowance[channel] -= len(body)
        self._partial_size[channel] += len(body)
        if self._partial_size[channel] > MAX_MESSAGE:
            raise RemoteProtocolError("message larger than allowed")
        self._partial[channel].append(body)
        if kind is FrameKind.PART:
            self._unblock_reassembly(channel)
            return None
        payload = b"".join(self._partial[channel])  # (a lone fragment is copied too)
        owed = len(payload) - self._partial_credited[channel]
        self._partial[channel] = []
        self._partial_size[channel] = 0
        self._partial_credited[channel] = 0
        self._unconsumed[channel].append([len(payload), owed])
        return MessageReceived(channel, payload)

    def consumed(self, channel: Channel, nbytes: int) -> None:
        """The application handled ``nbytes`` of ``channel``: give the peer credit back.

        ``nbytes`` counts payload bytes of delivered messages, in delivery order.
        """
        if nbytes < 0:
            raise LocalProtocolError("cannot consume a negative amount")
        pending = self._unconsumed[channel]
        # Returning credit for bytes never received would make the peer end the session
        # for over-granting (or overflow the 4-byte CREDIT field): the bug is here.
        if nbytes > sum(left for left, _ in pending):
            raise LocalProtocolError(f"consumed more on {Channel(channel).name} than was received")
        credit = 0
        while pending and (nbytes or pending[0][0] == 0):  # empty messages are consumed too
            head = pending[0]
            take = min(nbytes, head[0])
            owed = min(head[1], take)  # invariant: owed <= bytes left, so it ends at 0
            head[0] -= take
            head[1] -= owed
            credit += owed
            nbytes -= take
            if head[0] == 0:
                pending.popleft()
        self._grant(channel, credit)
        self._unblock_reassembly(channel)

    def _unblock_reassembly(self, channel: Channel) -> None:
        """Credit back a partial message that alone fills the window (rule 2)."""
        if self._unconsumed[channel]:
            return  # the application holds messages: their consumption frees the window
        # What the sender can see: grants still batched here do not count yet.
        window = self._recv_allowance[channel]
        uncredited = self._partial_size[channel] - self._partial_credited[channel]
        if window < MAX_FRAGMENT and (uncredited or self._to_grant[channel]):
            self._partial_credited[channel] += uncredited
            self._to_grant[channel] += uncredited
            self.flush_credit(channel)

    def _grant(self, channel: Channel, nbytes: int) -> None:
        self._to_grant[channel] += nbytes
        # Batch grants so credit frames stay rare (each is a record through the relay and
        # both ends: a quarter window leaves three in flight), never a whole window.
        if self._to_grant[channel] >= self._initial_credit // 4 or (
            self._recv_allowance[channel] + self._to_grant[channel] >= self._initial_credit
        ):
            self.flush_credit(channel)

    def flush_credit(self, channel: Channel) -> None:
        grant = self._to_grant[channel]
        if grant:
            self._to_grant[channel] = 0
            self._recv_allowance[channel] += grant
            self._credit_frames.append(
                bytes([FrameKind.CREDIT, channel]) + struct.pack(">I", grant)
            )
