"""The end-to-end session: two real Sessions pumped against each other, no network."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocol.cert_pairing import (
    FINISH_SIZES,
    AgentHandshake,
    Rendezvous,
    TechnicianHandshake,
    TechnicianPolicy,
    TechnicianProof,
)
from protocol.channel import TAG_SIZE, RecordType, SecureChannel
from protocol.code import SessionCode
from protocol.envelope import Role
from protocol.errors import (
    IntegrityError,
    LocalProtocolError,
    MalformedMessage,
    ProtocolError,
    RemoteProtocolError,
    VersionMismatch,
    WrongCodeError,
)
from protocol.identity import OrganisationSecret, issue_certificate
from protocol.messages import Hello, parse
from protocol.mux import INITIAL_CREDIT, Channel, MessageReceived
from protocol.pairing import CONFIRM_SIZE, PROTOCOL_VERSION, Pairing
from protocol.session import (
    ACK_EVERY,
    MAX_CLOSE_REASON,
    STALE,
    TRANSITIONS,
    Closed,
    Event,
    Paired,
    Session,
    State,
    Wire,
)

CODE = SessionCode.parse("417-862-093")
TICKET = "T-1042"


class Pair:
    """An agent and a technician Session joined by an honest in-memory wire."""

    def __init__(
        self,
        tech_code: SessionCode = CODE,
        *,
        rekey_interval: int | None = None,
        start: bool = True,
    ) -> None:
        self.agent = Session(Role.AGENT, CODE, TICKET, rekey_interval=rekey_interval)
        self.tech = Session(Role.TECHNICIAN, tech_code, TICKET, rekey_interval=rekey_interval)
        self.events: dict[Session, list[Event]] = {self.agent: [], self.tech: []}
        if start:
            self.agent.start()
            self.tech.start()

    def peer(self, side: Session) -> Session:
        return self.tech if side is self.agent else self.agent

    def pump(self, *, consume: bool = True) -> None:
        """Move messages both ways until nothing is left to send."""
        moved = True
        while moved:
            moved = False
            for sender in (self.agent, self.tech):
                receiver = self.peer(sender)
                while (data := sender.data_to_send()) is not None:
                    moved = True
                    receiver.receive_data(data)
                    self.collect(receiver, consume=consume)

    def collect(self, side: Session, *, consume: bool = True) -> None:
        for event in side.events_received():
            self.events[side].append(event)
            if consume and isinstance(event, MessageReceived):
                side.consumed(event.channel, len(event.payload))

    def received(self, side: Session, channel: Channel | None = None) -> list[bytes]:
        return [
            e.payload
            for e in self.events[side]
            if isinstance(e, MessageReceived) and (channel is None or e.channel is channel)
        ]


def paired() -> Pair:
    pair = Pair()
    pair.pump()
    assert pair.agent.state is pair.tech.state is State.OPEN
    return pair


def records_from(pair: Pair, count: int) -> list[bytes]:
    """``count`` secure DATA records from the agent, one small message each."""
    for i in range(count):
        pair.agent.send(Channel.INPUT, b"key %d" % i)
    records = []
    while (data := pair.agent.data_to_send()) is not None:
        records.append(data)
    assert len(records) == count
    return records


# Pairing and exchange ------------------------------------------------------------------


def test_two_sessions_pair_and_show_the_same_sas() -> None:
    pair = Pair()
    assert pair.agent.state is State.PAKE_SENT
    pair.pump()
    [agent_paired] = pair.events[pair.agent]
    [tech_paired] = pair.events[pair.tech]
    assert isinstance(agent_paired, Paired) and isinstance(tech_paired, Paired)
    assert agent_paired.sas == tech_paired.sas
    assert pair.agent.keys is not None and pair.tech.keys is not None
    assert pair.agent.keys.session_id == pair.tech.keys.session_id
    assert pair.agent.keys.send_key == pair.tech.keys.recv_key


def test_wire_kinds_during_pairing() -> None:
    pair = Pair()
    pake = pair.agent.data_to_send()
    assert pake is not None and pake[0] == Wire.PAKE and pake[1] == PROTOCOL_VERSION
    assert pair.agent.data_to_send() is None
    pair.tech.receive_data(pake)
    assert pair.tech.state is State.CONFIRMING
    assert [m[0] for m in iter(pair.tech.data_to_send, None)] == [Wire.PAKE, Wire.CONFIRM]


def test_messages_flow_both_ways_on_several_channels() -> None:
    pair = paired()
    hello = Hello(PROTOCOL_VERSION, "technician", "puente-tech", "Ana").serialize()
    screen = bytes(range(256)) * 1200  # 300 KiB: several fragments
    pair.tech.send(Channel.CONTROL, hello)
    pair.tech.send(Channel.INPUT, b"click 10,20")
    pair.tech.send(Channel.CHAT, "¿Listo?".encode())
    pair.agent.send(Channel.SCREEN, screen)
    pair.agent.send(Channel.DIAGNOSTICS, b'{"cpu": 3}')
    pair.agent.send(Channel.CHAT, "Sí".encode())
    pair.agent.send(Channel.SSH, b"")
    pair.pump()

    assert parse(pair.received(pair.agent, Channel.CONTROL)[0]) == parse(hello)
    assert pair.received(pair.agent, Channel.INPUT) == [b"click 10,20"]
    assert pair.received(pair.agent, Channel.CHAT) == ["¿Listo?".encode()]
    assert pair.received(pair.tech, Channel.SCREEN) == [screen]
    assert pair.received(pair.tech, Channel.DIAGNOSTICS) == [b'{"cpu": 3}']
    assert pair.received(pair.tech, Channel.CHAT) == ["Sí".encode()]
    assert pair.received(pair.tech, Channel.SSH) == [b""]


def test_credit_keeps_flowing_over_many_megabytes() -> None:
    pair = paired()
    frames = [bytes([i]) * 100_000 for i in range(40)]  # 4 MB, four times the window
    for frame in frames:
        pair.agent.send(Channel.SCREEN, frame)
    pair.pump()
    assert pair.received(pair.tech, Channel.SCREEN) == frames
    assert pair.agent.pending(Channel.SCREEN) == 0


def test_without_consumption_the_sender_waits() -> None:
    pair = paired()
    fit = INITIAL_CREDIT // 100_000  # whole messages in one window
    for i in range(2 * fit):
        pair.agent.send(Channel.SCREEN, bytes([i]) * 100_000)
    pair.pump(consume=False)
    assert len(pair.received(pair.tech, Channel.SCREEN)) == fit
    assert pair.agent.pending(Channel.SCREEN) > 0
    for _ in pair.received(pair.tech, Channel.SCREEN):
        pair.tech.consumed(Channel.SCREEN, 100_000)
    pair.pump()
    assert len(pair.received(pair.tech, Channel.SCREEN)) == 2 * fit


def test_rekeying_sessions_keep_talking() -> None:
    pair = Pair(rekey_interval=3)
    pair.pump()
    for i in range(30):
        pair.agent.send(Channel.INPUT, b"a%d" % i)
        pair.tech.send(Channel.INPUT, b"t%d" % i)
        pair.pump()
    assert pair.received(pair.tech, Channel.INPUT) == [b"a%d" % i for i in range(30)]
    assert pair.received(pair.agent, Channel.INPUT) == [b"t%d" % i for i in range(30)]


# Closing -------------------------------------------------------------------------------


def test_close_reaches_the_peer_after_what_was_queued() -> None:
    pair = paired()
    pair.agent.send(Channel.CHAT, b"one last thing")
    pair.agent.close("Finished, thank you.")
    assert pair.agent.state is State.CLOSED
    pair.pump()
    assert pair.tech.state is State.CLOSED
    *_, last_message, closed = pair.events[pair.tech]
    assert last_message == MessageReceived(Channel.CHAT, b"one last thing")
    assert closed == Closed("Finished, thank you.", by_peer=True)


def test_close_reason_is_capped() -> None:
    pair = paired()
    pair.tech.close("x" * (MAX_CLOSE_REASON + 500))
    pair.pump()
    closed = pair.events[pair.agent][-1]
    assert isinstance(closed, Closed) and closed.reason == "x" * MAX_CLOSE_REASON


def test_close_reason_cut_inside_a_character_is_still_text() -> None:
    pair = paired()
    # "x" then 2-byte characters: the byte cap falls in the middle of one.
    pair.tech.close("x" + "é" * MAX_CLOSE_REASON)
    pair.pump()
    closed = pair.events[pair.agent][-1]
    assert isinstance(closed, Closed)
    assert closed.reason == "x" + "é" * ((MAX_CLOSE_REASON - 1) // 2) + "\ufffd"


def test_close_before_pairing_sends_no_record() -> None:
    pair = Pair(start=False)
    pair.agent.close("changed my mind")
    assert pair.agent.state is State.CLOSED
    assert pair.agent.data_to_send() is None


def test_nothing_may_be_sent_or_received_after_the_peer_closed() -> None:
    pair = paired()
    pair.agent.close("done")
    pair.pump()
    with pytest.raises(LocalProtocolError):
        pair.tech.send(Channel.CHAT, b"hello?")
    pair.tech.consumed(Channel.CHAT, 10)  # harmless once closed
    assert pair.tech.data_to_send() is None


# Misuse on this side -------------------------------------------------------------------


def test_send_before_open_is_local_misuse() -> None:
    pair = Pair()
    with pytest.raises(LocalProtocolError, match="pake sent"):
        pair.agent.send(Channel.CHAT, b"too early")


def test_start_twice_is_local_misuse() -> None:
    pair = Pair()
    with pytest.raises(LocalProtocolError):
        pair.agent.start()


# Wrong code and version ----------------------------------------------------------------


def test_wrong_code_fails_on_both_sides() -> None:
    pair = Pair(tech_code=SessionCode.parse("417-862-094"))
    pake_a, pake_b = pair.agent.data_to_send(), pair.tech.data_to_send()
    assert pake_a is not None and pake_b is not None
    pair.agent.receive_data(pake_b)
    pair.tech.receive_data(pake_a)
    confirm_a, confirm_b = pair.agent.data_to_send(), pair.tech.data_to_send()
    assert confirm_a is not None and confirm_b is not None
    with pytest.raises(WrongCodeError):
        pair.agent.receive_data(confirm_b)
    with pytest.raises(WrongCodeError):
        pair.tech.receive_data(confirm_a)
    assert pair.agent.state is pair.tech.state is State.CLOSED
    assert pair.agent.keys is None


def test_other_protocol_version_closes_the_session() -> None:
    pair = Pair()
    pake = bytearray(pair.tech.data_to_send() or b"")
    pake[1] = PROTOCOL_VERSION + 1
    with pytest.raises(VersionMismatch):
        pair.agent.receive_data(bytes(pake))
    assert pair.agent.state is State.CLOSED


# Wire kinds out of state ---------------------------------------------------------------


def test_data_before_pairing_is_a_protocol_error() -> None:
    pair = Pair()
    with pytest.raises(RemoteProtocolError, match="DATA"):
        pair.agent.receive_data(bytes([Wire.DATA]) + bytes(TAG_SIZE + 4))
    assert pair.agent.state is State.CLOSED


def test_pake_twice_is_a_protocol_error() -> None:
    pair = Pair()
    pake_b = pair.tech.data_to_send()
    assert pake_b is not None
    pair.agent.receive_data(pake_b)
    with pytest.raises(RemoteProtocolError, match="PAKE"):
        pair.agent.receive_data(pake_b)
    assert pair.agent.state is State.CLOSED


@pytest.mark.parametrize("data", [b"", b"\x00", b"\x08", b"\x13" + bytes(40), b"\xff"])
def test_unknown_wire_kind_is_malformed(data: bytes) -> None:
    pair = paired()
    with pytest.raises(MalformedMessage):
        pair.agent.receive_data(data)
    assert pair.agent.state is State.CLOSED


def test_garbage_frame_inside_a_valid_record_closes_the_session() -> None:
    pair = paired()
    # An authentic record (the technician's keys, its first record) carrying a frame of
    # unknown kind: the channel accepts it, the multiplexer refuses it.
    assert pair.tech.keys is not None
    record = SecureChannel(pair.tech.keys).seal(RecordType.DATA, b"\x09\x00junk")
    with pytest.raises(MalformedMessage):
        pair.agent.receive_data(record)
    assert pair.agent.state is State.CLOSED


def session_in(state: State) -> tuple[Session, Pair]:
    """A real Session brought to ``state`` the honest way (the agent's, except in the
    code-less pairing's technician states)."""
    if state in SIGMA_STATES:
        return certified_session_in(state)
    pair = Pair(start=state is not State.START)
    if state is State.CONFIRMING:
        pake_b = pair.tech.data_to_send()
        assert pake_b is not None
        pair.agent.receive_data(pake_b)
    elif state in (State.OPEN, State.CLOSED):
        pair.pump()
        if state is State.CLOSED:
            pair.agent.close("done")
    elif state in (State.SUSPENDED, State.RESUMING, State.RESUME_CONFIRMING):
        pair.pump()
        pair.agent.suspend()
        pair.tech.suspend()
        if state is not State.SUSPENDED:
            pair.agent.start_resume()
            pair.tech.start_resume()
        if state is State.RESUME_CONFIRMING:
            resume_b = pair.tech.data_to_send()
            assert resume_b is not None
            pair.agent.receive_data(resume_b)
    assert pair.agent.state is state
    return pair.agent, pair


SIGMA_STATES = (State.SIGMA_HELLO_SENT, State.SIGMA_WAITING, State.SIGMA_REPLIED)


class CertifiedPair(Pair):
    """An agent and a technician that pair without a code (SIGMA-I, certificate)."""

    def __init__(self) -> None:
        org = OrganisationSecret("Acme", Ed25519PrivateKey.generate())
        key = Ed25519PrivateKey.generate()
        now = 1_800_000_000
        certificate = issue_certificate(org, "Ana", key.public_key(), now - 60, now + 60)
        place = Rendezvous("417", TICKET)
        self.agent = Session.certified(AgentHandshake(place, TechnicianPolicy(org.public_key), now))
        self.tech = Session.certified(TechnicianHandshake(place, TechnicianProof(certificate, key)))
        self.events = {self.agent: [], self.tech: []}
        self.agent.start()
        self.tech.start()


def certified_session_in(state: State) -> tuple[Session, Pair]:
    """SIGMA_HELLO_SENT: the agent, its HELLO still queued; SIGMA_WAITING: the
    technician; SIGMA_REPLIED: the technician after the agent's HELLO."""
    pair = CertifiedPair()
    if state is State.SIGMA_HELLO_SENT:
        return pair.agent, pair
    if state is State.SIGMA_REPLIED:
        hello = pair.agent.data_to_send()
        assert hello is not None
        pair.tech.receive_data(hello)
    assert pair.tech.state is state
    return pair.tech, pair


def well_formed(wire: Wire) -> bytes:
    """A message of kind ``wire`` shaped as it would be in the right state."""
    if wire is Wire.SIGMA_HELLO:
        return bytes([Wire.SIGMA_HELLO, PROTOCOL_VERSION]) + bytes(range(1, 33))
    if wire is Wire.SIGMA_REPLY:
        return bytes([Wire.SIGMA_REPLY]) + bytes(range(1, 33)) + bytes(100)
    if wire is Wire.SIGMA_FINISH:
        return bytes([Wire.SIGMA_FINISH]) + bytes(FINISH_SIZES[0])
    if wire is Wire.PAKE:
        return bytes([Wire.PAKE]) + Pairing(Role.TECHNICIAN, CODE, TICKET).start()
    if wire is Wire.CONFIRM:
        return bytes([Wire.CONFIRM]) + bytes(CONFIRM_SIZE)
    if wire is Wire.RESUME:
        return bytes([Wire.RESUME, PROTOCOL_VERSION]) + bytes(32 + 8)
    if wire is Wire.RESUME_CONFIRM:
        return bytes([Wire.RESUME_CONFIRM]) + bytes(CONFIRM_SIZE)
    return bytes([wire]) + bytes(TAG_SIZE + 8)


MISSING = [(s, w) for s in State for w in Wire if (s, w) not in TRANSITIONS and (s, w) not in STALE]


def test_table_leaves_pairs_to_the_closing_default() -> None:
    assert len(STALE) == 6
    assert len(MISSING) == len(State) * len(Wire) - len(TRANSITIONS) - len(STALE) == 94


@pytest.mark.parametrize(
    ("state", "wire"), sorted(STALE, key=lambda p: (p[0].name, p[1].name)), ids=lambda v: v.name
)
def test_stale_records_of_a_broken_link_are_dropped_unread(state: State, wire: Wire) -> None:
    session, _ = session_in(state)
    session.receive_data(well_formed(wire))  # garbage under any key: not even opened
    assert session.state is state
    assert session.events_received() == []


@pytest.mark.parametrize(("state", "wire"), MISSING, ids=lambda v: getattr(v, "name", str(v)))
def test_every_pair_not_in_the_table_closes_with_a_protocol_error(state: State, wire: Wire) -> None:
    session, _ = session_in(state)
    # A pairing message of the other kind of pairing is named as such.
    with pytest.raises(
        RemoteProtocolError, match=f"{wire.name} is not allowed|paired with a session code"
    ):
        session.receive_data(well_formed(wire))
    assert session.state is State.CLOSED


@pytest.mark.parametrize(("state", "wire"), list(TRANSITIONS), ids=lambda v: v.name)
def test_every_pair_in_the_table_leads_where_it_says(state: State, wire: Wire) -> None:
    session, pair = session_in(state)
    if wire is Wire.SIGMA_HELLO:
        data = pair.agent.data_to_send()
    elif wire is Wire.SIGMA_REPLY:
        hello = session.data_to_send()
        assert hello is not None
        pair.tech.receive_data(hello)
        data = pair.tech.data_to_send()
    elif wire is Wire.SIGMA_FINISH:
        reply = session.data_to_send()
        assert reply is not None
        pair.agent.receive_data(reply)
        data = pair.agent.data_to_send()
    elif wire is Wire.PAKE:
        data = pair.tech.data_to_send()
    elif wire is Wire.CONFIRM:
        pake_a = session.data_to_send()
        assert pake_a is not None
        pair.tech.receive_data(pake_a)  # its own PAKE went out in session_in()
        data = pair.tech.data_to_send()
    elif wire is Wire.DATA:
        pair.tech.send(Channel.CHAT, b"hi")
        data = pair.tech.data_to_send()
    elif wire is Wire.ACK:
        for _ in range(ACK_EVERY):
            session.send(Channel.CHAT, b"x")
            record = session.data_to_send()
            assert record is not None
            pair.tech.receive_data(record)
        data = pair.tech.data_to_send()
    elif wire is Wire.RESUME:
        data = pair.tech.data_to_send()
    elif wire is Wire.RESUME_CONFIRM:
        outgoing = [session.data_to_send(), session.data_to_send()]  # RESUME, CONFIRM
        assert all(outgoing)
        pair.tech.receive_data(outgoing[0])  # type: ignore[arg-type]
        data = pair.tech.data_to_send()
    else:
        pair.tech.close("bye")
        data = pair.tech.data_to_send()
    assert data is not None and data[0] == wire
    session.receive_data(data)
    assert session.state is TRANSITIONS[(state, wire)]


# Tampering with the Nth record ---------------------------------------------------------

COUNT = 6
#: What the receiver sees: the genuine records it accepts, then the first bad one.
Tamper = Callable[[list[bytes], int], tuple[list[bytes], bytes]]


def flip(records: list[bytes], n: int) -> tuple[list[bytes], bytes]:
    bad = bytearray(records[n])
    bad[len(bad) // 2] ^= 0x04
    return records[:n], bytes(bad)


def drop(records: list[bytes], n: int) -> tuple[list[bytes], bytes]:
    return records[:n], records[n + 1]


def replay(records: list[bytes], n: int) -> tuple[list[bytes], bytes]:
    return records[: n + 1], records[n]


def reorder(records: list[bytes], n: int) -> tuple[list[bytes], bytes]:
    # records[n + 1] arrives where records[n] should; it is the one that fails.
    return records[:n], records[n + 1]


def swap_type(records: list[bytes], n: int) -> tuple[list[bytes], bytes]:
    return records[:n], bytes([Wire.CLOSE]) + records[n][1:]


@pytest.mark.parametrize("n", range(COUNT - 1))
@pytest.mark.parametrize("tamper", [flip, drop, replay, reorder, swap_type])
def test_tampering_with_the_nth_record_is_an_integrity_error(tamper: Tamper, n: int) -> None:
    pair = paired()
    records = records_from(pair, COUNT)
    honest, bad = tamper(records, n)
    for record in honest:
        pair.tech.receive_data(record)
    with pytest.raises(IntegrityError) as info:
        pair.tech.receive_data(bad)
    assert "Start a new session" in str(info.value)
    assert pair.tech.state is State.CLOSED
    delivered = [e for e in pair.tech.events_received() if isinstance(e, MessageReceived)]
    assert len(delivered) == len(honest)
    # Nothing more gets through, not even the genuine next record.
    with pytest.raises(ProtocolError):
        pair.tech.receive_data(records[min(n + 1, COUNT - 1)])
