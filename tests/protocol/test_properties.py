"""Property tests: hostile bytes into every decoder of the protocol core.

Whatever arrives, a decoder either succeeds or raises a ``PuenteError`` subclass
(``InvalidCodeError`` for session codes, which are typed by people, not sent by peers).
Anything else escaping (``KeyError``, ``struct.error``, ``RecursionError``,
``UnicodeEncodeError`` ...) would crash an adapter instead of ending one session cleanly.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from protocol import envelope, messages
from protocol.cert_pairing import (
    AgentHandshake,
    Rendezvous,
    TechnicianHandshake,
    TechnicianPolicy,
    TechnicianProof,
)
from protocol.channel import RecordType, SecureChannel
from protocol.code import SessionCode
from protocol.envelope import Role
from protocol.errors import EnvelopeError, InvalidCodeError, PuenteError, WrongCodeError
from protocol.identity import OrganisationSecret, issue_certificate
from protocol.mux import MAX_FRAGMENT, Channel, MessageReceived, Multiplexer
from protocol.pairing import PROTOCOL_VERSION, Pairing, SessionKeys
from protocol.session import Session, State, Wire

SETTINGS = settings(deadline=None, max_examples=120, suppress_health_check=[HealthCheck.too_slow])
FEW = settings(SETTINGS, max_examples=40)  # examples that each run a real pairing

CODE = SessionCode.parse("417-862-093")
TICKET = "T-1"


def survives(call: Callable[[], object]) -> bool:
    """Run ``call``; True if it returned, False if it raised a PuenteError.

    Any other exception propagates and fails the property.
    """
    try:
        call()
    except PuenteError:
        return False
    return True


# Mutations of valid input ------------------------------------------------------------


@st.composite
def mutated(draw: st.DrawFn, original: bytes) -> bytes:
    """``original`` with a few random edits: flips, inserts, deletions, truncation."""
    data = bytearray(original)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate", "extend"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and data:
            data[at] = draw(st.integers(0, 255))
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete" and data:
            del data[at : at + draw(st.integers(1, 8))]
        elif op == "truncate":
            del data[at:]
        elif op == "extend":
            data += draw(st.binary(min_size=1, max_size=8))
    return bytes(data)


def mutations_of(samples: list[bytes]) -> st.SearchStrategy[bytes]:
    return st.sampled_from(samples).flatmap(mutated)


# Control messages --------------------------------------------------------------------

msgpack_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
    | st.binary(max_size=20)
)
msgpack_values = st.recursive(
    msgpack_scalars,
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.dictionaries(st.text(max_size=8) | st.binary(max_size=8), inner, max_size=5)
    ),
    max_leaves=20,
)
type_codes = st.sampled_from(list(messages.MsgType)) | st.integers(-5, 300) | msgpack_scalars

VALID_MESSAGES = [
    messages.Hello(PROTOCOL_VERSION, "agent", "puente-agent", "laptop", ["screen"]),
    messages.Request(1, "diagnostics", "collect", {"deep": True}),
    messages.Reply(1, 0, {"ok": [1, 2]}, "done"),
    messages.Progress(1, {"percent": 10}),
    messages.Cancel(3),
    messages.Consent("screen", "granted"),
    messages.Chat("hola"),
    messages.Bye("finished"),
]


@given(st.binary(max_size=200))
@SETTINGS
def test_parse_random_bytes(data: bytes) -> None:
    survives(lambda: messages.parse(data))


@given(type_codes, st.lists(msgpack_values, max_size=7))
@SETTINGS
def test_parse_random_arrays(type_code: Any, fields: list[Any]) -> None:
    data = messages.pack([type_code, *fields])
    if survives(lambda: messages.parse(data)):
        # Whatever parses is a checked message that serializes back to the same thing.
        assert messages.parse(messages.parse(data).serialize()) == messages.parse(data)


@given(msgpack_values)
@SETTINGS
def test_parse_random_msgpack(value: Any) -> None:
    survives(lambda: messages.parse(messages.pack(value)))


@given(mutations_of([m.serialize() for m in VALID_MESSAGES]))
@SETTINGS
def test_parse_mutated_messages(data: bytes) -> None:
    survives(lambda: messages.parse(data))


text_ = st.text(max_size=30)
str_dicts = st.dictionaries(st.text(max_size=8), msgpack_values, max_size=4)
any_message = st.one_of(
    st.builds(
        messages.Hello, st.integers(0, 2**32), text_, text_, text_, st.lists(text_, max_size=4)
    ),
    st.builds(messages.Request, st.integers(0, 2**63), text_, text_, str_dicts),
    st.builds(
        messages.Reply, st.integers(0, 2**63), st.integers(0, 5), st.none() | str_dicts, text_
    ),
    st.builds(messages.Progress, st.integers(0, 2**63), str_dicts),
    st.builds(messages.Cancel, st.integers(0, 2**63)),
    st.builds(messages.Consent, text_, st.sampled_from(list(messages.ConsentState)), text_),
    st.builds(messages.Chat, text_),
    st.builds(messages.Bye, text_),
)


@given(any_message)
@SETTINGS
def test_every_valid_message_round_trips(message: messages.Message) -> None:
    assert messages.parse(message.serialize()) == message


# Multiplexer -------------------------------------------------------------------------

frames = st.binary(max_size=40) | st.builds(
    lambda kind, channel, body: bytes([kind, channel]) + body,
    st.integers(0, 5),
    st.integers(0, 8),
    st.binary(max_size=40),
)


@given(st.lists(frames, max_size=20), st.integers(0, 200))
@SETTINGS
def test_mux_receive_random_frames(sequence: list[bytes], credit: int) -> None:
    receiver = Multiplexer(initial_credit=credit)
    for frame in sequence:
        if not survives(functools.partial(receiver.receive_frame, frame)):
            break


@given(
    st.lists(
        st.tuples(st.sampled_from(list(Channel)), st.integers(0, 3 * MAX_FRAGMENT)),
        max_size=12,
    )
)
@SETTINGS
def test_mux_delivers_every_message_in_order_per_channel(
    plan: list[tuple[Channel, int]],
) -> None:
    window = 4 * MAX_FRAGMENT  # above the largest message: see the xfail in test_protocol_mux
    sender, receiver = Multiplexer(window), Multiplexer(window)
    sent: dict[Channel, list[bytes]] = {ch: [] for ch in Channel}
    for i, (channel, size) in enumerate(plan):
        payload = bytes([i % 256]) * size
        sender.send(channel, payload)
        sent[channel].append(payload)
    got: dict[Channel, list[bytes]] = {ch: [] for ch in Channel}
    moved = True
    while moved:
        moved = False
        while (frame := sender.next_frame()) is not None:
            moved = True
            event = receiver.receive_frame(frame)
            if isinstance(event, MessageReceived):
                got[event.channel].append(event.payload)
                receiver.consumed(event.channel, len(event.payload))
        while (credit := receiver.next_frame()) is not None:
            moved = True
            assert sender.receive_frame(credit) is None
    assert got == sent
    assert sender.blocked() == []


# Pairing -----------------------------------------------------------------------------

pake_like = st.binary(max_size=50) | st.builds(
    lambda version, side, point: bytes([version]) + side + point,
    st.sampled_from([PROTOCOL_VERSION, PROTOCOL_VERSION, 0, 2]),
    st.sampled_from([b"A", b"B", b"S", b"\x00"]),
    st.binary(min_size=32, max_size=32),
)


@given(st.sampled_from(list(Role)), pake_like, st.binary(max_size=40))
@FEW
def test_pairing_receives_hostile_pake_and_tag(role: Role, pake: bytes, tag: bytes) -> None:
    side = Pairing(role, CODE, TICKET)
    side.start()
    if survives(lambda: side.receive_pake(pake)):
        # A point we never agreed on cannot produce a tag that confirms.
        try:
            side.receive_confirm(tag)
        except WrongCodeError:
            return
        raise AssertionError("a random tag confirmed the pairing")


@given(st.binary(max_size=64))
@FEW
def test_pairing_refuses_random_tags(tag: bytes) -> None:
    agent = Pairing(Role.AGENT, CODE, TICKET)
    tech = Pairing(Role.TECHNICIAN, CODE, TICKET)
    msg_a = agent.start()
    agent.receive_pake(tech.start())
    tech.receive_pake(msg_a)
    assert not survives(lambda: agent.receive_confirm(tag))


# Secure channel ----------------------------------------------------------------------


@functools.cache
def keys() -> tuple[SessionKeys, SessionKeys]:
    agent = Pairing(Role.AGENT, CODE, TICKET)
    tech = Pairing(Role.TECHNICIAN, CODE, TICKET)
    msg_a, msg_b = agent.start(), tech.start()
    tag_a, tag_b = agent.receive_pake(msg_b), tech.receive_pake(msg_a)
    return agent.receive_confirm(tag_b), tech.receive_confirm(tag_a)


def genuine_records(count: int = 4) -> list[bytes]:
    sender = SecureChannel(keys()[0])
    records = [sender.seal(RecordType.DATA, b"frame %d" % i) for i in range(count - 1)]
    return [*records, sender.seal(RecordType.CLOSE, b"bye")]


@given(st.binary(max_size=80))
@SETTINGS
def test_channel_opens_random_bytes(record: bytes) -> None:
    channel = SecureChannel(keys()[1])
    assert not survives(lambda: channel.open(record))


@given(st.integers(0, 3), mutations_of(genuine_records()[:1]) | st.binary(max_size=40))
@SETTINGS
def test_channel_refuses_a_mutated_record_in_the_stream(position: int, bad: bytes) -> None:
    records = genuine_records()
    assume(bad not in records)
    channel = SecureChannel(keys()[1])
    for record in records[:position]:
        channel.open(record)
    assert not survives(lambda: channel.open(bad))
    assert not survives(lambda: channel.open(records[position]))


@given(st.lists(st.binary(max_size=300), max_size=30), st.integers(1, 5))
@SETTINGS
def test_channel_round_trips_any_plaintexts(plaintexts: list[bytes], interval: int) -> None:
    sender = SecureChannel(keys()[0], rekey_interval=interval)
    receiver = SecureChannel(keys()[1], rekey_interval=interval)
    for plaintext in plaintexts:
        assert receiver.open(sender.seal(RecordType.DATA, plaintext)) == (
            RecordType.DATA,
            plaintext,
        )


# Session -----------------------------------------------------------------------------


def certified_in(state: State) -> tuple[Session, list[bytes]]:
    """A code-less Session in a SIGMA state (the agent in SIGMA_HELLO_SENT, the
    technician otherwise), and what the honest other side sends it next."""
    org = OrganisationSecret("Acme", Ed25519PrivateKey.generate())
    key = Ed25519PrivateKey.generate()
    certificate = issue_certificate(org, "Ana", key.public_key(), 0, 2**40)
    place = Rendezvous("417", TICKET)
    agent = Session.certified(
        AgentHandshake(place, TechnicianPolicy(org.public_key), 1_800_000_000)
    )
    tech = Session.certified(TechnicianHandshake(place, TechnicianProof(certificate, key)))
    agent.start()
    tech.start()
    hello = agent.data_to_send()
    assert hello is not None
    if state is State.SIGMA_WAITING:
        return tech, [bytes(hello)]
    tech.receive_data(bytes(hello))
    reply = tech.data_to_send()
    assert reply is not None
    if state is State.SIGMA_HELLO_SENT:
        return agent, [bytes(reply)]
    agent.receive_data(bytes(reply))
    finish = agent.data_to_send()
    assert finish is not None
    return tech, [bytes(finish)]


def agent_in(state: State) -> tuple[Session, list[bytes]]:
    """A real agent Session in ``state``, and what an honest technician sends it next
    (in the code-less pairing's states, see :func:`certified_in`)."""
    if state in (State.SIGMA_HELLO_SENT, State.SIGMA_WAITING, State.SIGMA_REPLIED):
        return certified_in(state)
    agent = Session(Role.AGENT, CODE, TICKET)
    tech = Session(Role.TECHNICIAN, CODE, TICKET)
    tech.start()
    if state is State.START:
        return agent, list(iter(tech.data_to_send, None))
    agent.start()
    pake_a, pake_b = agent.data_to_send(), tech.data_to_send()
    assert pake_a is not None and pake_b is not None
    tech.receive_data(pake_a)
    confirm_b = tech.data_to_send()
    assert confirm_b is not None
    if state is State.PAKE_SENT:
        return agent, [pake_b, confirm_b]
    agent.receive_data(pake_b)
    confirm_a = agent.data_to_send()
    assert confirm_a is not None
    tech.receive_data(confirm_a)
    tech.send(Channel.CONTROL, messages.Chat("hola").serialize())
    tech.send(Channel.SCREEN, bytes(MAX_FRAGMENT + 10))
    tech.close("bye")
    records = list(iter(tech.data_to_send, None))
    if state is State.CONFIRMING:
        return agent, [confirm_b, *records]
    agent.receive_data(confirm_b)
    if state is State.CLOSED:
        agent.close("done")
    return agent, records


wire_like = st.binary(max_size=60) | st.builds(
    lambda kind, body: bytes([kind]) + body,
    st.sampled_from([*Wire, 0, 3, 0xFF]),
    st.binary(max_size=60) | st.binary(min_size=150, max_size=800),
)


@given(st.sampled_from(list(State)), st.data())
@FEW
def test_session_receives_hostile_bytes_in_any_state(state: State, data: st.DataObject) -> None:
    agent, honest = agent_in(state)
    prefix = data.draw(st.integers(0, len(honest)), label="honest messages first")
    hostile = data.draw(
        st.lists(
            wire_like | st.sampled_from(honest) | mutations_of(honest), min_size=1, max_size=6
        ),
        label="then",
    )
    for message in [*honest[:prefix], *hostile]:
        if not survives(functools.partial(agent.receive_data, message)):
            assert agent.state is State.CLOSED
            break
        agent.events_received()
        list(iter(agent.data_to_send, None))


# Relay envelope ----------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
claim_like = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(["claim", "burn", ""]) | json_values,
        "version": st.sampled_from([1, 1.0, True, 2, "1"]) | json_values,
        "role": st.sampled_from(["agent", "technician", "AGENT", ""]) | json_values,
        "nameplate": st.text(alphabet="0123456789٤４²a", max_size=11) | json_values,
    },
)
nested = st.builds(
    lambda depth, opener: opener * depth, st.integers(1, 4096), st.sampled_from(["[", '{"a":'])
)


@given(st.text(max_size=200) | st.binary(max_size=50) | nested)
@SETTINGS
def test_envelope_decode_random_text(text: str | bytes) -> None:
    survives(lambda: envelope.parse_claim(envelope.decode(text)))


@given(claim_like)
@SETTINGS
def test_envelope_parse_claim_random_dicts(message: dict[str, Any]) -> None:
    try:
        role, nameplate = envelope.parse_claim(json.loads(json.dumps(message)))
    except EnvelopeError:
        return
    # What passes is exactly a well-formed claim.
    assert envelope.decode(envelope.claim(role, nameplate)) == {
        "type": "claim",
        "version": 1,
        "role": str(role),
        "nameplate": nameplate,
    }
    assert nameplate.isascii() and nameplate.isdigit() and 3 <= len(nameplate) <= 9


@given(st.sampled_from(list(Role)), st.text(alphabet="0123456789", min_size=3, max_size=9))
@SETTINGS
def test_envelope_claim_round_trips(role: Role, nameplate: str) -> None:
    assert envelope.parse_claim(envelope.decode(envelope.claim(role, nameplate))) == (
        role,
        nameplate,
    )


# Session codes -----------------------------------------------------------------------

typed_codes = st.text(max_size=25) | st.text(
    alphabet="0123456789 -_.٤४４²a\t", min_size=5, max_size=25
)


@given(typed_codes)
@SETTINGS
def test_code_parse_random_text(text: str) -> None:
    try:
        code = SessionCode.parse(text)
    except InvalidCodeError:
        return
    # Whatever parses is usable: ASCII, round-trips, and keys a pairing.
    assert str(code).isascii()
    assert SessionCode.parse(str(code)) == code
    Pairing(Role.AGENT, code, TICKET)
