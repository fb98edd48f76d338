"""The end-to-end session: pairing, then the secure channel and the multiplexer.

Sans-I/O, in the manner of ``websockets.protocol``: feed each binary WebSocket
message to :meth:`Session.receive_data`, collect :meth:`Session.events_received`,
send whatever :meth:`Session.data_to_send` returns. No sockets, no clocks.

Every binary message starts with a wire kind byte: ``PAKE`` and ``CONFIRM`` travel
in the clear during pairing; ``DATA`` and ``CLOSE`` are secure records. A code-less
session (:meth:`Session.certified`) pairs with the SIGMA-I exchange of
:mod:`protocol.cert_pairing` instead: ``SIGMA_HELLO`` (agent), ``SIGMA_REPLY``
(technician), ``SIGMA_FINISH`` (agent); the agent opens once it sends FINISH, the
technician once it has checked it.

State rules (everything that affects transitions lives in ``TRANSITIONS``):

    =================  ===============  =================  ================================
    state              input            next state         what happens
    =================  ===============  =================  ================================
    PAKE_SENT          recv PAKE        CONFIRMING         keys derived, our tag queued
    CONFIRMING         recv CONFIRM     OPEN               tag checked (WrongCodeError)
    SIGMA_WAITING      recv SIGMA_      SIGMA_REPLIED      technician: certificate, signature
                       HELLO                               and MAC sealed in our REPLY
    SIGMA_HELLO_SENT   recv SIGMA_      OPEN               agent: certificate checked
                       REPLY                               (TechnicianRefused); FINISH queued
    SIGMA_REPLIED      recv SIGMA_      OPEN               technician: MAC and device checked
                       FINISH                              (DeviceRefused, HandshakeAltered)
    OPEN               recv DATA        OPEN               record opened, frames demuxed
    OPEN               recv ACK         OPEN               acknowledged frames forgotten
    OPEN               recv CLOSE       CLOSED             the peer ended the session
    RESUMING           recv RESUME      RESUME_CONFIRMING  new keys derived, our tag queued
    RESUME_CONFIRMING  recv RESUME_     OPEN               tag checked (ResumeRefused);
                       CONFIRM                             unacknowledged frames resent
    SUSPENDED,         recv DATA, ACK,  (unchanged)        discarded: sealed under the keys
    RESUMING           CLOSE                               of the link that broke
    OPEN               local suspend    SUSPENDED          the link to the relay dropped
    OPEN, SUSPENDED,   local resume     RESUMING           our RESUME queued (fresh keys)
    RESUMING, R._C.
    any but CLOSED     local close      CLOSED             authenticated CLOSE if OPEN
    =================  ===============  =================  ================================

Any (state, input) pair not in the table closes the session with a protocol error.

Resume (see :mod:`protocol.resume`): every DATA frame sent is kept until the peer
acknowledges it (an ACK record every ``ACK_EVERY`` frames). When the link drops the
adapter calls :meth:`Session.suspend`; once both ends are back it calls
:meth:`Session.start_resume`. Each RESUME message says how many frames its sender
received; after confirmation each side resends exactly the frames the other has not
seen, sealed under the new keys, so no message is lost, repeated or reordered.
Messages queued meanwhile wait in the multiplexer.
"""

from __future__ import annotations

import enum
import struct
from collections import deque
from dataclasses import dataclass

from .cert_pairing import AgentHandshake, TechnicianHandshake
from .channel import RecordType, SecureChannel
from .code import SessionCode
from .envelope import Role
from .errors import LocalProtocolError, MalformedMessage, ProtocolError, RemoteProtocolError
from .mux import Channel, MessageReceived, Multiplexer
from .pairing import Pairing, SessionKeys
from .resume import Resumption, resume_id


class Wire(enum.IntEnum):
    """First byte of every binary message between the two ends."""

    PAKE = 0x01
    CONFIRM = 0x02
    RESUME = 0x03
    RESUME_CONFIRM = 0x04
    SIGMA_HELLO = 0x05
    SIGMA_REPLY = 0x06
    SIGMA_FINISH = 0x07
    DATA = RecordType.DATA
    CLOSE = RecordType.CLOSE
    ACK = RecordType.ACK


class State(enum.Enum):
    START = "start"
    PAKE_SENT = "pake sent"
    CONFIRMING = "confirming"
    SIGMA_HELLO_SENT = "sigma hello sent"
    SIGMA_WAITING = "sigma waiting"
    SIGMA_REPLIED = "sigma replied"
    OPEN = "open"
    SUSPENDED = "suspended"
    RESUMING = "resuming"
    RESUME_CONFIRMING = "resume confirming"
    CLOSED = "closed"


TRANSITIONS: dict[tuple[State, Wire], State] = {
    (State.PAKE_SENT, Wire.PAKE): State.CONFIRMING,
    (State.CONFIRMING, Wire.CONFIRM): State.OPEN,
    (State.SIGMA_WAITING, Wire.SIGMA_HELLO): State.SIGMA_REPLIED,
    (State.SIGMA_HELLO_SENT, Wire.SIGMA_REPLY): State.OPEN,
    (State.SIGMA_REPLIED, Wire.SIGMA_FINISH): State.OPEN,
    (State.OPEN, Wire.DATA): State.OPEN,
    (State.OPEN, Wire.ACK): State.OPEN,
    (State.OPEN, Wire.CLOSE): State.CLOSED,
    (State.RESUMING, Wire.RESUME): State.RESUME_CONFIRMING,
    (State.RESUME_CONFIRMING, Wire.RESUME_CONFIRM): State.OPEN,
}

#: Records of a broken link that may still arrive while resuming; they are dropped
#: unread (they cannot be opened with the new keys, and the peer resends their frames).
STALE: frozenset[tuple[State, Wire]] = frozenset(
    (state, wire)
    for state in (State.SUSPENDED, State.RESUMING)
    for wire in (Wire.DATA, Wire.ACK, Wire.CLOSE)
)

#: States before the keys are agreed (no resume from there).
_PAIRING = frozenset(
    {
        State.START,
        State.PAKE_SENT,
        State.CONFIRMING,
        State.SIGMA_HELLO_SENT,
        State.SIGMA_WAITING,
        State.SIGMA_REPLIED,
    }
)

#: Pairing messages of the code flow, and of the code-less one.
_CODE_WIRES = frozenset({Wire.PAKE, Wire.CONFIRM})
_SIGMA_WIRES = frozenset({Wire.SIGMA_HELLO, Wire.SIGMA_REPLY, Wire.SIGMA_FINISH})

#: The receiver acknowledges DATA frames in batches of this many.
ACK_EVERY = 16


@dataclass(frozen=True)
class Paired:
    """Keys agreed and confirmed: show ``sas`` on both screens."""

    keys: SessionKeys

    @property
    def sas(self) -> str:
        return self.keys.sas


@dataclass(frozen=True)
class Resumed:
    """The link is back with fresh keys; ``resent`` frames went out again."""

    resent: int


@dataclass(frozen=True)
class Closed:
    """The session is over; ``by_peer`` tells who ended it."""

    reason: str
    by_peer: bool


Event = Paired | Resumed | MessageReceived | Closed

MAX_CLOSE_REASON = 1024


class Session:
    """One end of a Puente session."""

    def __init__(
        self,
        role: Role,
        code: SessionCode | None,
        ticket_id: str,
        *,
        rekey_interval: int | None = None,
        handshake: AgentHandshake | TechnicianHandshake | None = None,
    ) -> None:
        """A session that pairs with ``code`` (SPAKE2), or, with ``code=None``, with
        ``handshake`` (code-less, :mod:`protocol.cert_pairing`; see :meth:`certified`)."""
        self.role = role
        self.state = State.START
        self.keys: SessionKeys | None = None
        if (code is None) == (handshake is None):
            raise LocalProtocolError("a session pairs with a code or a handshake, not both")
        if handshake is not None and handshake.role is not role:
            raise LocalProtocolError("the handshake is for the other role")
        self._pairing = Pairing(role, code, ticket_id) if code is not None else None
        self._handshake = handshake
        self._channel: SecureChannel | None = None
        self._rekey_interval = rekey_interval
        self._mux = Multiplexer()
        self._outbox: deque[bytes | bytearray] = deque()
        self._events: list[Event] = []
        self._resumption: Resumption | None = None
        # Frames sent and not yet acknowledged: frame number _unacked_base is the first.
        self._unacked: deque[bytes] = deque()
        self._unacked_base = 0
        self._frames_sent = 0
        self._next_resend = 0  # below _frames_sent after a resume: resend these first
        self._frames_received = 0
        self._frames_acked = 0  # what we last told the peer we received

    # Public methods ---------------------------------------------------------------

    @classmethod
    def certified(
        cls,
        handshake: AgentHandshake | TechnicianHandshake,
        *,
        rekey_interval: int | None = None,
    ) -> Session:
        """A code-less session: it pairs with ``handshake`` (SIGMA-I, certificate)."""
        return cls(handshake.role, None, "", rekey_interval=rekey_interval, handshake=handshake)

    @property
    def handshake(self) -> AgentHandshake | TechnicianHandshake | None:
        """The code-less handshake (its verified ``technician`` / ``device_key``), or None."""
        return self._handshake

    def start(self) -> None:
        """Queue our first pairing message; call once the relay says we are paired."""
        if self.state is not State.START:
            raise LocalProtocolError("session already started")
        if isinstance(self._handshake, AgentHandshake):
            self._outbox.append(bytes([Wire.SIGMA_HELLO]) + self._handshake.start())
            self.state = State.SIGMA_HELLO_SENT
        elif isinstance(self._handshake, TechnicianHandshake):
            self.state = State.SIGMA_WAITING  # the agent speaks first
        else:
            assert self._pairing is not None
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

    @property
    def resume_id(self) -> bytes:
        """The id to show the relay when reconnecting (only once paired)."""
        if self.keys is None:
            raise LocalProtocolError("no resume id before pairing")
        return resume_id(self.keys)

    @property
    def resumable(self) -> bool:
        """True once paired and until closed: a dropped link may be resumed."""
        return self.keys is not None and self.state is not State.CLOSED

    @property
    def unacknowledged(self) -> int:
        """Frames kept for a possible resend (the peer has not acknowledged them)."""
        return len(self._unacked)

    def send(self, channel: Channel, payload: bytes) -> None:
        """Queue an application message on a channel (once paired; kept while resuming)."""
        if not self.resumable:
            raise LocalProtocolError(f"cannot send while the session is {self.state.value}")
        self._mux.send(channel, payload)

    def consumed(self, channel: Channel, nbytes: int) -> None:
        """The application handled ``nbytes`` received on ``channel``."""
        if self.resumable:
            self._mux.consumed(channel, nbytes)

    def close(self, reason: str) -> None:
        """End the session with an authenticated CLOSE record (if the link is open)."""
        if self.state is State.OPEN and self._channel is not None:
            # Flush what is already queued (it was sent before we closed).
            while (data := self._next_data()) is not None:
                self._outbox.append(data)
            payload = reason.encode("utf-8")[:MAX_CLOSE_REASON]
            self._outbox.append(self._channel.seal(RecordType.CLOSE, payload))
        self.state = State.CLOSED

    def suspend(self) -> None:
        """The link to the relay dropped: stop sending; keep everything for a resume."""
        if self.state is State.OPEN or self.state in (State.RESUMING, State.RESUME_CONFIRMING):
            self.state = State.SUSPENDED
            self._channel = None
            self._resumption = None
            # Sealed records not yet sent belong to the dead link; their frames are
            # still in _unacked and are resent after the resume if the peer lacks them.
            self._outbox.clear()
        elif self.state is not State.SUSPENDED:
            raise LocalProtocolError(f"cannot suspend while the session is {self.state.value}")

    def start_resume(self) -> None:
        """Both ends are back: queue our RESUME message with fresh ephemeral keys."""
        if not self.resumable or self.state in _PAIRING:
            raise LocalProtocolError(f"cannot resume while the session is {self.state.value}")
        assert self.keys is not None
        self.suspend()
        self._resumption = Resumption(self.keys, self._frames_received)
        self._outbox.append(bytes([Wire.RESUME]) + self._resumption.start())
        self.state = State.RESUMING

    def data_to_send(self) -> bytes | bytearray | None:
        """The next binary message to send, or None. Call until None after each step."""
        if self._outbox:
            return self._outbox.popleft()
        if self.state is State.OPEN:
            return self._next_data()
        return None

    def pending(self, channel: Channel) -> int:
        return self._mux.pending(channel)

    def discard(self, channel: Channel) -> int:
        """Drop messages queued on ``channel`` and not yet sent (see Multiplexer.discard).

        Works while a resume is pending too: what was queued during the cut must not
        leave once the link is back if consent was withdrawn meanwhile.
        """
        if not self.resumable or self.keys is None:
            return 0
        return self._mux.discard(channel)

    # Private methods --------------------------------------------------------------

    def _next_data(self) -> bytes | bytearray | None:
        """Seal the next frame: a resend first, else a new one from the multiplexer."""
        assert self._channel is not None
        if self._next_resend < self._frames_sent:
            frame = self._unacked[self._next_resend - self._unacked_base]
            self._next_resend += 1
            return self._channel.seal(RecordType.DATA, frame)
        new = self._mux.next_frame()
        if new is None:
            return None
        self._unacked.append(new)
        self._frames_sent += 1
        self._next_resend = self._frames_sent
        return self._channel.seal(RecordType.DATA, new)

    def _acknowledged(self, count: int) -> None:
        """The peer has every frame below ``count``: forget them."""
        if not self._unacked_base <= count <= self._frames_sent:
            raise RemoteProtocolError("the peer acknowledged frames that were never sent")
        while self._unacked_base < count:
            self._unacked.popleft()
            self._unacked_base += 1

    def _receive(self, data: bytes) -> None:
        if not data:
            raise MalformedMessage("empty message")
        try:
            wire = Wire(data[0])
        except ValueError:
            raise MalformedMessage(f"unknown wire kind {data[0]}") from None
        if (self.state, wire) in STALE:
            return
        next_state = TRANSITIONS.get((self.state, wire))
        mixed = wire in _CODE_WIRES and self._pairing is None
        mixed = mixed or (wire in _SIGMA_WIRES and self._handshake is None)
        if next_state is None and mixed:
            raise RemoteProtocolError(
                "One side paired with a session code and the other without one (a help "
                "request or an enrolled device); start the session again the same way on both."
            )
        if next_state is None:
            raise RemoteProtocolError(f"{wire.name} is not allowed while {self.state.value}")

        if wire is Wire.PAKE:
            assert self._pairing is not None  # the table admits PAKE only in the code flow
            tag = self._pairing.receive_pake(data[1:])
            self._outbox.append(bytes([Wire.CONFIRM]) + tag)
        elif wire is Wire.CONFIRM:
            assert self._pairing is not None
            self._opened(self._pairing.receive_confirm(data[1:]))
        elif wire is Wire.SIGMA_HELLO:
            assert isinstance(self._handshake, TechnicianHandshake)
            reply = self._handshake.receive_hello(data[1:])
            self._outbox.append(bytes([Wire.SIGMA_REPLY]) + reply)
        elif wire is Wire.SIGMA_REPLY:
            assert isinstance(self._handshake, AgentHandshake)
            finish = self._handshake.receive_reply(data[1:])
            self._outbox.append(bytes([Wire.SIGMA_FINISH]) + finish)
            assert self._handshake.keys is not None
            self._opened(self._handshake.keys)
        elif wire is Wire.SIGMA_FINISH:
            assert isinstance(self._handshake, TechnicianHandshake)
            self._opened(self._handshake.receive_finish(data[1:]))
        elif wire is Wire.RESUME:
            assert self._resumption is not None
            tag = self._resumption.receive_resume(data[1:])
            self._outbox.append(bytes([Wire.RESUME_CONFIRM]) + tag)
        elif wire is Wire.RESUME_CONFIRM:
            assert self._resumption is not None
            keys = self._resumption.receive_confirm(data[1:])
            peer_received = self._resumption.peer_received
            assert peer_received is not None
            self._resumption = None
            self._acknowledged(peer_received)
            self._next_resend = peer_received
            self._channel = self._new_channel(keys)
            self._events.append(Resumed(self._frames_sent - peer_received))
        else:
            assert self._channel is not None
            record_type, plaintext = self._channel.open(data)
            if record_type is RecordType.CLOSE:
                reason = plaintext.decode("utf-8", errors="replace")
                self._events.append(Closed(reason, by_peer=True))
            elif record_type is RecordType.ACK:
                if len(plaintext) != 8:
                    raise MalformedMessage("an ACK record carries 8 bytes")
                self._acknowledged(struct.unpack(">Q", plaintext)[0])
            else:
                self._frames_received += 1
                message = self._mux.receive_frame(plaintext)
                if message is not None:
                    self._events.append(message)
                if self._frames_received - self._frames_acked >= ACK_EVERY:
                    self._frames_acked = self._frames_received
                    count = struct.pack(">Q", self._frames_received)
                    self._outbox.append(self._channel.seal(RecordType.ACK, count))
        self.state = next_state

    def _opened(self, keys: SessionKeys) -> None:
        self.keys = keys
        self._channel = self._new_channel(keys)
        self._events.append(Paired(keys))

    def _new_channel(self, keys: SessionKeys) -> SecureChannel:
        if self._rekey_interval is None:
            return SecureChannel(keys)
        return SecureChannel(keys, rekey_interval=self._rekey_interval)
