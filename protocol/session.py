"""The end-to-end session: pairing, then the secure channel and the multiplexer.

Sans-I/O, in the manner of ``websockets.protocol``: feed each binary WebSocket
message to :meth:`Session.receive_data`, collect :meth:`Session.events_received`,
send whatever :meth:`Session.data_to_send` returns. No sockets, no clocks.

Every binary message starts with a wire kind byte: ``PAKE`` and ``CONFIRM`` travel
in the clear during pairing; ``DATA`` and ``CLOSE`` are secure records.

State rules (everything that affects transitions lives in ``TRANSITIONS``):

    ============  ==============  ============  ===========================================
    state         input           next state    what happens
    ============  ==============  ============  ===========================================
    PAKE_SENT     recv PAKE       CONFIRMING    keys derived, our confirmation tag queued
    CONFIRMING    recv CONFIRM    OPEN          tag checked (WrongCodeError otherwise)
    OPEN          recv DATA       OPEN          record opened, frames demultiplexed
    OPEN          recv CLOSE      CLOSED        the peer ended the session
    OPEN          local close     CLOSED        an authenticated CLOSE record is queued
    ============  ==============  ============  ===========================================

Any (state, input) pair not in the table closes the session with a protocol error.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass

from .channel import RecordType, SecureChannel
from .code import SessionCode
from .envelope import Role
from .errors import LocalProtocolError, MalformedMessage, ProtocolError, RemoteProtocolError
from .mux import Channel, MessageReceived, Multiplexer
from .pairing import Pairing, SessionKeys


class Wire(enum.IntEnum):
    """First byte of every binary message between the two ends."""

    PAKE = 0x01
    CONFIRM = 0x02
    DATA = RecordType.DATA
    CLOSE = RecordType.CLOSE


class State(enum.Enum):
    START = "start"
    PAKE_SENT = "pake sent"
    CONFIRMING = "confirming"
    OPEN = "open"
    CLOSED = "closed"


TRANSITIONS: dict[tuple[State, Wire], State] = {
    (State.PAKE_SENT, Wire.PAKE): State.CONFIRMING,
    (State.CONFIRMING, Wire.CONFIRM): State.OPEN,
    (State.OPEN, Wire.DATA): State.OPEN,
    (State.OPEN, Wire.CLOSE): State.CLOSED,
}


@dataclass(frozen=True)
class Paired:
    """Keys agreed and confirmed: show ``sas`` on both screens."""

    keys: SessionKeys

    @property
    def sas(self) -> str:
        return self.keys.sas


@dataclass(frozen=True)
class Closed:
    """The session is over; ``by_peer`` tells who ended it."""

    reason: str
    by_peer: bool


Event = Paired | MessageReceived | Closed

MAX_CLOSE_REASON = 1024


class Session:
    """One end of a Puente session."""

    def __init__(
        self, role: Role, code: SessionCode, ticket_id: str, *, rekey_interval: int | None = None
    ) -> None:
        self.role = role
        self.state = State.START
        self.keys: SessionKeys | None = None
        self._pairing = Pairing(role, code, ticket_id)
        self._channel: SecureChannel | None = None
        self._rekey_interval = rekey_interval
        self._mux = Multiplexer()
        self._outbox: deque[bytes] = deque()
        self._events: list[Event] = []

    # Public methods ---------------------------------------------------------------

    def start(self) -> None:
        """Queue our PAKE message; call once the relay says we are paired."""
        if self.state is not State.START:
            raise LocalProtocolError("session already started")
        self._outbox.append(bytes([Wire.PAKE]) + self._pairing.start())
        self.state = State.PAKE_SENT

    def receive_data(self, data: bytes) -> None:
        """Take one binary message from the peer. Raises on any violation; then CLOSED."""
        try:
            self._receive(data)
        except ProtocolError:
            self.state = State.CLOSED
            raise

    def events_received(self) -> list[Event]:
        events, self._events = self._events, []
        return events

    def send(self, channel: Channel, payload: bytes) -> None:
        """Queue an application message on a channel (only once OPEN)."""
        if self.state is not State.OPEN:
            raise LocalProtocolError(f"cannot send while the session is {self.state.value}")
        self._mux.send(channel, payload)

    def consumed(self, channel: Channel, nbytes: int) -> None:
        """The application handled ``nbytes`` received on ``channel``."""
        if self.state is State.OPEN:
            self._mux.consumed(channel, nbytes)

    def close(self, reason: str) -> None:
        """End the session with an authenticated CLOSE record (if keys exist)."""
        if self.state is State.OPEN and self._channel is not None:
            # Flush what is already queued (it was sent before we closed).
            while (frame := self._mux.next_frame()) is not None:
                self._outbox.append(self._channel.seal(RecordType.DATA, frame))
            payload = reason.encode("utf-8")[:MAX_CLOSE_REASON]
            self._outbox.append(self._channel.seal(RecordType.CLOSE, payload))
        self.state = State.CLOSED

    def data_to_send(self) -> bytes | None:
        """The next binary message to send, or None. Call until None after each step."""
        if self._outbox:
            return self._outbox.popleft()
        if self.state is State.OPEN and self._channel is not None:
            frame = self._mux.next_frame()
            if frame is not None:
                return self._channel.seal(RecordType.DATA, frame)
        return None

    def pending(self, channel: Channel) -> int:
        return self._mux.pending(channel)

    def discard(self, channel: Channel) -> int:
        """Drop messages queued on ``channel`` and not yet sent (see Multiplexer.discard)."""
        if self.state is not State.OPEN:
            return 0
        return self._mux.discard(channel)

    # Private methods --------------------------------------------------------------

    def _receive(self, data: bytes) -> None:
        if not data:
            raise MalformedMessage("empty message")
        try:
            wire = Wire(data[0])
        except ValueError:
            raise MalformedMessage(f"unknown wire kind {data[0]}") from None
        next_state = TRANSITIONS.get((self.state, wire))
        if next_state is None:
            raise RemoteProtocolError(f"{wire.name} is not allowed while {self.state.value}")

        if wire is Wire.PAKE:
            tag = self._pairing.receive_pake(data[1:])
            self._outbox.append(bytes([Wire.CONFIRM]) + tag)
        elif wire is Wire.CONFIRM:
            keys = self._pairing.receive_confirm(data[1:])
            self.keys = keys
            kwargs = (
                {} if self._rekey_interval is None else {"rekey_interval": self._rekey_interval}
            )
            self._channel = SecureChannel(keys, **kwargs)
            self._events.append(Paired(keys))
        else:
            assert self._channel is not None
            record_type, plaintext = self._channel.open(data)
            if record_type is RecordType.CLOSE:
                reason = plaintext.decode("utf-8", errors="replace")
                self._events.append(Closed(reason, by_peer=True))
            else:
                message = self._mux.receive_frame(plaintext)
                if message is not None:
                    self._events.append(message)
        self.state = next_state
