"""Pairing: SPAKE2 over the whole code, key confirmation, the key schedule and the SAS."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable

import pytest

from protocol.code import SessionCode
from protocol.envelope import Role
from protocol.errors import (
    LocalProtocolError,
    MalformedMessage,
    PuenteError,
    VersionMismatch,
    WrongCodeError,
)
from protocol.pairing import (
    CONFIRM_SIZE,
    PROTOCOL_ID,
    PROTOCOL_VERSION,
    SPAKE_MESSAGE_SIZE,
    Pairing,
    SessionKeys,
    _lp,
    short_authentication_string,
)

CODE = SessionCode.parse("417-862-093")
TICKET = "T-1042"
SAS_FORMAT = re.compile(r"\d{4} \d{4}")


def pair(
    agent: Pairing, tech: Pairing, *, tech_first: bool = False
) -> tuple[SessionKeys, SessionKeys]:
    """Run both sides against each other; raise whatever either side raises."""
    msg_a, msg_b = agent.start(), tech.start()
    if tech_first:
        tag_b = tech.receive_pake(msg_a)
        tag_a = agent.receive_pake(msg_b)
    else:
        tag_a = agent.receive_pake(msg_b)
        tag_b = tech.receive_pake(msg_a)
    return agent.receive_confirm(tag_b), tech.receive_confirm(tag_a)


def sides(
    agent_code: SessionCode = CODE,
    tech_code: SessionCode = CODE,
    agent_ticket: str = TICKET,
    tech_ticket: str = TICKET,
) -> tuple[Pairing, Pairing]:
    return Pairing(Role.AGENT, agent_code, agent_ticket), Pairing(
        Role.TECHNICIAN, tech_code, tech_ticket
    )


# Success -----------------------------------------------------------------------------


@pytest.mark.parametrize("tech_first", [False, True])
def test_same_code_gives_matching_keys(tech_first: bool) -> None:
    agent_keys, tech_keys = pair(*sides(), tech_first=tech_first)

    assert agent_keys.role is Role.AGENT and tech_keys.role is Role.TECHNICIAN
    assert agent_keys.sas == tech_keys.sas
    assert SAS_FORMAT.fullmatch(agent_keys.sas)
    assert agent_keys.session_id == tech_keys.session_id
    assert len(agent_keys.session_id) == 16
    assert agent_keys.session_id_hex == agent_keys.session_id.hex()
    assert agent_keys.transcript_hash == tech_keys.transcript_hash
    assert agent_keys.session_id == agent_keys.transcript_hash[:16]
    assert agent_keys.send_key == tech_keys.recv_key
    assert agent_keys.recv_key == tech_keys.send_key
    assert agent_keys.send_key != agent_keys.recv_key
    assert agent_keys.resume_secret == tech_keys.resume_secret
    assert len({agent_keys.send_key, agent_keys.recv_key, agent_keys.resume_secret}) == 3


def test_transcript_hash_binds_both_messages_in_role_order() -> None:
    agent, tech = sides()
    msg_a, msg_b = agent.start(), tech.start()
    tag_a = agent.receive_pake(msg_b)
    tag_b = tech.receive_pake(msg_a)
    keys = agent.receive_confirm(tag_b)
    tech.receive_confirm(tag_a)
    expected = hashlib.sha256(
        _lp(PROTOCOL_ID, CODE.nameplate.encode(), TICKET.encode(), msg_a[1:], msg_b[1:])
    ).digest()
    assert keys.transcript_hash == expected


def test_every_pairing_has_fresh_keys() -> None:
    first, _ = pair(*sides())
    second, _ = pair(*sides())
    assert first.session_id != second.session_id
    assert first.send_key != second.send_key


def test_session_keys_repr_hides_the_keys() -> None:
    keys, _ = pair(*sides())
    text = repr(keys)
    for secret in (keys.send_key, keys.recv_key, keys.resume_secret):
        assert repr(secret) not in text
    assert keys.sas in text


def test_start_message_is_version_then_spake2_message() -> None:
    agent, tech = sides()
    for message in (agent.start(), tech.start()):
        assert message[0] == PROTOCOL_VERSION
        assert len(message) == 1 + SPAKE_MESSAGE_SIZE


# A wrong code or an attack -------------------------------------------------------------


def assert_both_refuse(agent: Pairing, tech: Pairing) -> None:
    msg_a, msg_b = agent.start(), tech.start()
    tag_a = agent.receive_pake(msg_b)
    tag_b = tech.receive_pake(msg_a)
    with pytest.raises(WrongCodeError) as info:
        agent.receive_confirm(tag_b)
    assert "new one" in str(info.value)  # tells the customer what to do
    with pytest.raises(WrongCodeError):
        tech.receive_confirm(tag_a)


def test_wrong_secret_fails_confirmation_on_both_sides() -> None:
    assert_both_refuse(*sides(tech_code=SessionCode.parse("417-862-094")))


def test_wrong_nameplate_fails_confirmation_on_both_sides() -> None:
    assert_both_refuse(*sides(tech_code=SessionCode.parse("418-862-093")))


def test_different_ticket_fails_confirmation_on_both_sides() -> None:
    assert_both_refuse(*sides(tech_ticket="T-1043"))


def test_two_agents_cannot_pair() -> None:
    one = Pairing(Role.AGENT, CODE, TICKET)
    two = Pairing(Role.AGENT, CODE, TICKET)
    one.start()
    msg_two = two.start()
    with pytest.raises(MalformedMessage):
        one.receive_pake(msg_two)


@pytest.mark.parametrize("role", list(Role))
def test_reflected_pake_message_is_refused(role: Role) -> None:
    side = Pairing(role, CODE, TICKET)
    message = side.start()
    with pytest.raises(PuenteError):
        side.receive_pake(message)


@pytest.mark.parametrize("reflect", ["agent", "technician"])
def test_reflected_confirmation_tag_is_refused(reflect: str) -> None:
    agent, tech = sides()
    msg_a, msg_b = agent.start(), tech.start()
    tag_a = agent.receive_pake(msg_b)
    tag_b = tech.receive_pake(msg_a)
    with pytest.raises(WrongCodeError):
        if reflect == "agent":
            agent.receive_confirm(tag_a)
        else:
            tech.receive_confirm(tag_b)


@pytest.mark.parametrize(
    "mangle",
    [
        lambda tag: tag[:-1],
        lambda tag: tag + b"\x00",
        lambda tag: b"",
        lambda tag: bytes([tag[0] ^ 1]) + tag[1:],
        lambda tag: tag[:-1] + bytes([tag[-1] ^ 0x80]),
        lambda tag: bytes(CONFIRM_SIZE),
    ],
)
def test_altered_confirmation_tag_is_refused(mangle: Callable[[bytes], bytes]) -> None:
    agent, tech = sides()
    msg_a, msg_b = agent.start(), tech.start()
    agent.receive_pake(msg_b)
    tag_b = tech.receive_pake(msg_a)
    with pytest.raises(WrongCodeError):
        agent.receive_confirm(mangle(tag_b))


# Version and malformed PAKE messages -----------------------------------------------------


@pytest.mark.parametrize("version", [0, PROTOCOL_VERSION - 1, PROTOCOL_VERSION + 1, 255])
def test_version_mismatch_names_both_versions(version: int) -> None:
    agent, tech = sides()
    agent.start()
    message = bytearray(tech.start())
    message[0] = version
    with pytest.raises(VersionMismatch) as info:
        agent.receive_pake(bytes(message))
    assert info.value.ours == PROTOCOL_VERSION
    assert info.value.theirs == version
    text = str(info.value)
    assert f"version {version}" in text
    assert f"version {PROTOCOL_VERSION}" in text
    assert "update" in text


@pytest.mark.parametrize(
    "message",
    [
        b"",
        bytes([PROTOCOL_VERSION]),
        bytes([PROTOCOL_VERSION]) + b"B" * (SPAKE_MESSAGE_SIZE - 1),
        bytes([PROTOCOL_VERSION]) + b"B" * (SPAKE_MESSAGE_SIZE + 1),
        bytes([PROTOCOL_VERSION]) + b"X" + bytes(32),  # no such SPAKE2 side
        bytes([PROTOCOL_VERSION]) + b"S" + bytes(32),  # the symmetric side
        bytes([PROTOCOL_VERSION]) + b"B" + b"\xff" * 32,  # not a point
        bytes([PROTOCOL_VERSION]) + b"B" + bytes(32),
    ],
)
def test_malformed_pake_message_is_refused(message: bytes) -> None:
    agent = Pairing(Role.AGENT, CODE, TICKET)
    agent.start()
    with pytest.raises(MalformedMessage):
        agent.receive_pake(message)


# Misuse: bugs on this side ------------------------------------------------------------


def test_receive_pake_before_start_is_local_misuse() -> None:
    agent, tech = sides()
    with pytest.raises(LocalProtocolError):
        agent.receive_pake(tech.start())


def test_start_twice_is_local_misuse() -> None:
    agent = Pairing(Role.AGENT, CODE, TICKET)
    agent.start()
    with pytest.raises(LocalProtocolError):
        agent.start()


def test_receive_pake_twice_is_local_misuse() -> None:
    agent, tech = sides()
    agent.start()
    msg_b = tech.start()
    agent.receive_pake(msg_b)
    with pytest.raises(LocalProtocolError):
        agent.receive_pake(msg_b)


def test_receive_confirm_before_receive_pake_is_local_misuse() -> None:
    agent = Pairing(Role.AGENT, CODE, TICKET)
    with pytest.raises(LocalProtocolError):
        agent.receive_confirm(bytes(CONFIRM_SIZE))
    agent.start()
    with pytest.raises(LocalProtocolError):
        agent.receive_confirm(bytes(CONFIRM_SIZE))


def test_receive_confirm_only_once_even_after_a_failure() -> None:
    agent, tech = sides()
    msg_a, msg_b = agent.start(), tech.start()
    agent.receive_pake(msg_b)
    tag_b = tech.receive_pake(msg_a)
    with pytest.raises(WrongCodeError):
        agent.receive_confirm(bytes(CONFIRM_SIZE))
    # No second guess at the tag.
    with pytest.raises(LocalProtocolError):
        agent.receive_confirm(tag_b)


# The short authentication string ------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "sas"),
    [
        (bytes(8), "0000 0000"),
        ((1).to_bytes(8, "big"), "0000 0001"),
        ((12345678).to_bytes(8, "big"), "1234 5678"),
        ((10**8 + 42).to_bytes(8, "big"), "0000 0042"),
        (b"\xff" * 8, f"{(2**64 - 1) % 10**8:08d}"[:4] + " " + f"{(2**64 - 1) % 10**8:08d}"[4:]),
    ],
)
def test_sas_is_two_groups_of_four_digits(raw: bytes, sas: str) -> None:
    assert short_authentication_string(raw) == sas
    assert SAS_FORMAT.fullmatch(sas)
