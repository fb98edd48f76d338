"""The secure channel: any altered, replayed, dropped or reordered record is fatal."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from protocol.channel import MAX_COUNTER, TAG_SIZE, RecordType, SecureChannel
from protocol.code import SessionCode
from protocol.envelope import Role
from protocol.errors import (
    IntegrityError,
    LocalProtocolError,
    MalformedMessage,
    RemoteProtocolError,
)
from protocol.pairing import Pairing, SessionKeys


def paired_keys(code: str = "417-862-093", ticket: str = "T-1") -> tuple[SessionKeys, SessionKeys]:
    """Real keys from a real pairing: the channel is tested as it is used."""
    session_code = SessionCode.parse(code)
    agent = Pairing(Role.AGENT, session_code, ticket)
    tech = Pairing(Role.TECHNICIAN, session_code, ticket)
    msg_a, msg_b = agent.start(), tech.start()
    tag_a, tag_b = agent.receive_pake(msg_b), tech.receive_pake(msg_a)
    return agent.receive_confirm(tag_b), tech.receive_confirm(tag_a)


@pytest.fixture(scope="module")
def keys() -> tuple[SessionKeys, SessionKeys]:
    return paired_keys()


@pytest.fixture
def channels(
    keys: tuple[SessionKeys, SessionKeys],
) -> Iterator[tuple[SecureChannel, SecureChannel]]:
    agent_keys, tech_keys = keys
    yield SecureChannel(agent_keys), SecureChannel(tech_keys)


def sealed(sender: SecureChannel, count: int) -> list[bytes]:
    return [sender.seal(RecordType.DATA, f"record {i}".encode()) for i in range(count)]


# Round trips ---------------------------------------------------------------------------


def test_round_trip_both_ways(channels: tuple[SecureChannel, SecureChannel]) -> None:
    agent, tech = channels
    for i in range(5):
        record = agent.seal(RecordType.DATA, b"to tech %d" % i)
        assert tech.open(record) == (RecordType.DATA, b"to tech %d" % i)
        record = tech.seal(RecordType.DATA, b"to agent %d" % i)
        assert agent.open(record) == (RecordType.DATA, b"to agent %d" % i)
    assert agent.open(tech.seal(RecordType.CLOSE, b"bye")) == (RecordType.CLOSE, b"bye")
    assert agent.records_sent == 5 and agent.records_received == 6
    assert tech.records_sent == 6 and tech.records_received == 5


@pytest.mark.parametrize("size", [0, 1, 1000, 1 << 16])
def test_record_layout(channels: tuple[SecureChannel, SecureChannel], size: int) -> None:
    agent, tech = channels
    record = agent.seal(RecordType.DATA, bytes(size))
    # type byte, ciphertext as long as the plaintext, tag; the counter is implicit.
    assert len(record) == 1 + size + TAG_SIZE
    assert record[0] == RecordType.DATA
    if size >= 16:  # shorter runs of zeros may occur in ciphertext by chance
        assert bytes(size) not in record
    assert tech.open(record) == (RecordType.DATA, bytes(size))


def test_same_plaintext_gives_different_records(
    channels: tuple[SecureChannel, SecureChannel],
) -> None:
    agent, _ = channels
    assert agent.seal(RecordType.DATA, b"same") != agent.seal(RecordType.DATA, b"same")


# Tampering -----------------------------------------------------------------------------


def test_flipped_byte_anywhere_fails(keys: tuple[SessionKeys, SessionKeys]) -> None:
    plaintext = b"type this: sudo rm nothing"
    length = len(SecureChannel(keys[0]).seal(RecordType.DATA, plaintext))
    for position in range(length):
        for mask in (0x01, 0x80):
            agent, tech = SecureChannel(keys[0]), SecureChannel(keys[1])
            record = bytearray(agent.seal(RecordType.DATA, plaintext))
            record[position] ^= mask
            if position == 0 and mask == 0x80:
                # The type byte turned into no record type at all.
                with pytest.raises(MalformedMessage):
                    tech.open(bytes(record))
            else:
                # Every other flip, including DATA <-> CLOSE (0x10 ^ 0x01), fails its tag.
                with pytest.raises(IntegrityError):
                    tech.open(bytes(record))
            assert tech.records_received == 0


@pytest.mark.parametrize(
    ("sent", "swapped"), [(RecordType.DATA, RecordType.CLOSE), (RecordType.CLOSE, RecordType.DATA)]
)
def test_swapped_record_type_fails(
    channels: tuple[SecureChannel, SecureChannel], sent: RecordType, swapped: RecordType
) -> None:
    agent, tech = channels
    record = agent.seal(sent, b"finished")
    with pytest.raises(IntegrityError):
        tech.open(bytes([swapped]) + record[1:])


def test_replayed_record_fails(channels: tuple[SecureChannel, SecureChannel]) -> None:
    agent, tech = channels
    first, second = sealed(agent, 2)
    tech.open(first)
    with pytest.raises(IntegrityError):
        tech.open(first)
    with pytest.raises(IntegrityError):
        tech.open(second)


def test_dropped_record_fails_on_the_next(channels: tuple[SecureChannel, SecureChannel]) -> None:
    agent, tech = channels
    records = sealed(agent, 3)
    tech.open(records[0])
    with pytest.raises(IntegrityError):
        tech.open(records[2])


def test_reordered_records_fail(channels: tuple[SecureChannel, SecureChannel]) -> None:
    agent, tech = channels
    records = sealed(agent, 2)
    with pytest.raises(IntegrityError):
        tech.open(records[1])
    with pytest.raises(IntegrityError):
        tech.open(records[0])


@pytest.mark.parametrize("cut", [1, TAG_SIZE, TAG_SIZE + 3])
def test_truncated_record_fails(channels: tuple[SecureChannel, SecureChannel], cut: int) -> None:
    agent, tech = channels
    record = agent.seal(RecordType.DATA, b"abc")
    with pytest.raises(RemoteProtocolError):
        tech.open(record[:-cut])


@pytest.mark.parametrize("record", [b"", b"\x10", b"\x10" + bytes(TAG_SIZE - 1)])
def test_too_short_record_is_malformed(
    channels: tuple[SecureChannel, SecureChannel], record: bytes
) -> None:
    _, tech = channels
    with pytest.raises(MalformedMessage):
        tech.open(record)


def test_extended_record_fails(channels: tuple[SecureChannel, SecureChannel]) -> None:
    agent, tech = channels
    with pytest.raises(IntegrityError):
        tech.open(agent.seal(RecordType.DATA, b"abc") + b"\x00")


@pytest.mark.parametrize(
    "breaker",
    [
        lambda good: good[:1] + bytes([good[1] ^ 1]) + good[2:],  # altered
        lambda good: b"\x10",  # too short
        lambda good: b"\x99" + good[1:],  # unknown type
    ],
)
def test_after_one_failure_everything_is_refused(
    keys: tuple[SessionKeys, SessionKeys], breaker: Callable[[bytes], bytes]
) -> None:
    agent, tech = SecureChannel(keys[0]), SecureChannel(keys[1])
    records = sealed(agent, 3)
    with pytest.raises(RemoteProtocolError):
        tech.open(breaker(records[0]))
    # Even the genuine records, in order, are refused now.
    for record in records:
        with pytest.raises(IntegrityError):
            tech.open(record)
    assert tech.records_received == 0


def test_own_record_does_not_open_as_the_peers(
    channels: tuple[SecureChannel, SecureChannel],
) -> None:
    agent, _ = channels
    with pytest.raises(IntegrityError):
        agent.open(agent.seal(RecordType.DATA, b"reflected"))


def test_record_from_another_session_fails(keys: tuple[SessionKeys, SessionKeys]) -> None:
    other_agent_keys, _ = paired_keys()
    intruder = SecureChannel(other_agent_keys)
    tech = SecureChannel(keys[1])
    with pytest.raises(IntegrityError):
        tech.open(intruder.seal(RecordType.DATA, b"hello from elsewhere"))


def test_same_keys_other_session_id_fail(keys: tuple[SessionKeys, SessionKeys]) -> None:
    agent_keys, tech_keys = keys
    moved = SessionKeys(
        role=agent_keys.role,
        session_id=bytes(16),
        transcript_hash=agent_keys.transcript_hash,
        send_key=agent_keys.send_key,
        recv_key=agent_keys.recv_key,
        resume_secret=agent_keys.resume_secret,
        sas=agent_keys.sas,
    )
    with pytest.raises(IntegrityError):
        SecureChannel(tech_keys).open(SecureChannel(moved).seal(RecordType.DATA, b"x"))


# Rekeying ------------------------------------------------------------------------------


@pytest.mark.parametrize("interval", [1, 2, 3, 7])
def test_rekey_keeps_both_sides_in_step(
    keys: tuple[SessionKeys, SessionKeys], interval: int
) -> None:
    agent = SecureChannel(keys[0], rekey_interval=interval)
    tech = SecureChannel(keys[1], rekey_interval=interval)
    for i in range(50):
        payload = i.to_bytes(2, "big") * i
        assert tech.open(agent.seal(RecordType.DATA, payload)) == (RecordType.DATA, payload)
        assert agent.open(tech.seal(RecordType.DATA, payload)) == (RecordType.DATA, payload)
    assert agent.records_sent == agent.records_received == 50


def test_rekey_really_changes_the_key(keys: tuple[SessionKeys, SessionKeys]) -> None:
    rekeying = SecureChannel(keys[0], rekey_interval=3)
    not_rekeying = SecureChannel(keys[1])
    records = sealed(rekeying, 4)
    for record in records[:3]:
        not_rekeying.open(record)
    with pytest.raises(IntegrityError):
        not_rekeying.open(records[3])


@pytest.mark.parametrize("interval", [0, -1])
def test_rekey_interval_must_be_positive(
    keys: tuple[SessionKeys, SessionKeys], interval: int
) -> None:
    with pytest.raises(LocalProtocolError):
        SecureChannel(keys[0], rekey_interval=interval)


def test_counter_exhaustion_refuses_to_reuse_a_nonce(
    channels: tuple[SecureChannel, SecureChannel],
) -> None:
    agent, tech = channels
    # 2**64 records cannot be sent in a test; move the counter to its last value.
    agent._send.counter = MAX_COUNTER
    tech._recv.counter = MAX_COUNTER
    with pytest.raises(LocalProtocolError):
        agent.seal(RecordType.DATA, b"one too many")
    with pytest.raises(LocalProtocolError):
        tech.open(bytes([RecordType.DATA]) + bytes(TAG_SIZE))
