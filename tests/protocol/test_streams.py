"""Streams inside the ssh channel: the rules of protocol.streams, without a network."""

from __future__ import annotations

import struct

import pytest

from protocol.envelope import Role
from protocol.errors import LocalProtocolError, MalformedMessage, RemoteProtocolError
from protocol.mux import MAX_FRAGMENT
from protocol.streams import (
    DATA_HEADER_SIZE,
    MAX_DATA,
    SSH_MAX_PACKET,
    StreamClosed,
    StreamData,
    StreamKind,
    StreamOpened,
    StreamTable,
    WriteBuffer,
)


def frame(kind: int, stream_id: int, body: bytes = b"") -> bytes:
    return struct.pack(">BI", kind, stream_id) + body


def pair() -> tuple[StreamTable, StreamTable]:
    return StreamTable(Role.TECHNICIAN), StreamTable(Role.AGENT)


def test_open_data_close_round_trip() -> None:
    tech, agent = pair()
    stream_id, opening = tech.open()
    assert stream_id == 1
    assert agent.receive(opening) == StreamOpened(1)
    assert agent.receive(tech.data(1, b"hello")) == StreamData(1, b"hello")
    assert tech.receive(agent.data(1, b"world")) == StreamData(1, b"world")
    closing = agent.close(1, "done")
    assert closing is not None
    assert tech.receive(closing) == StreamClosed(1, "done")
    assert agent.close(1) is None  # already closed
    assert not tech.is_open(1) and not agent.is_open(1)


def test_ids_increase_and_are_never_reused() -> None:
    tech, agent = pair()
    ids = [tech.open()[0] for _ in range(3)]
    assert ids == [1, 2, 3]
    assert tech.open_streams == frozenset({1, 2, 3})
    assert agent.receive(frame(StreamKind.OPEN, 1)) == StreamOpened(1)
    with pytest.raises(RemoteProtocolError, match="out of sequence"):
        agent.receive(frame(StreamKind.OPEN, 3))
    with pytest.raises(RemoteProtocolError, match="out of sequence"):
        agent.receive(frame(StreamKind.OPEN, 1))


def test_only_the_technician_opens() -> None:
    tech, agent = pair()
    with pytest.raises(LocalProtocolError):
        agent.open()
    with pytest.raises(RemoteProtocolError, match="may not open"):
        tech.receive(frame(StreamKind.OPEN, 1))


def test_late_frames_of_a_closed_stream_are_dropped() -> None:
    tech, agent = pair()
    agent.receive(tech.open()[1])
    agent.close(1, "bye")
    assert agent.receive(frame(StreamKind.DATA, 1, b"late")) is None
    assert agent.receive(frame(StreamKind.CLOSE, 1)) is None


def test_frames_for_streams_never_opened_are_errors() -> None:
    _, agent = pair()
    with pytest.raises(RemoteProtocolError, match="never opened"):
        agent.receive(frame(StreamKind.DATA, 7, b"x"))


@pytest.mark.parametrize(
    "bad",
    [
        b"\x02\x00\x00",  # too short
        frame(9, 1),  # unknown kind
        frame(StreamKind.OPEN, 1, b"body"),  # OPEN has no body
    ],
)
def test_malformed_frames(bad: bytes) -> None:
    _, agent = pair()
    with pytest.raises(MalformedMessage):
        agent.receive(bad)


def test_data_size_limits() -> None:
    tech, agent = pair()
    agent.receive(tech.open()[1])
    with pytest.raises(LocalProtocolError):
        tech.data(1, b"")
    with pytest.raises(LocalProtocolError):
        tech.data(1, b"x" * (MAX_DATA + 1))
    with pytest.raises(LocalProtocolError):
        tech.data(2, b"x")
    assert agent.receive(tech.data(1, b"x" * MAX_DATA)) == StreamData(1, b"x" * MAX_DATA)
    with pytest.raises(MalformedMessage):
        agent.receive(frame(StreamKind.DATA, 1, b""))
    with pytest.raises(MalformedMessage):
        agent.receive(frame(StreamKind.DATA, 1, b"x" * (MAX_DATA + 1)))


def test_too_many_streams_are_refused_with_a_close() -> None:
    tech = StreamTable(Role.TECHNICIAN)
    agent = StreamTable(Role.AGENT, max_streams=2)
    for _ in range(2):
        assert isinstance(agent.receive(tech.open()[1]), StreamOpened)
    assert agent.receive(tech.open()[1]) is None
    assert len(agent.replies) == 1
    refused = tech.receive(agent.replies.pop())
    assert isinstance(refused, StreamClosed) and refused.stream_id == 3
    assert "too many" in refused.reason
    # Once one closes there is room again; the refused id 3 stays used up.
    closing = tech.close(1)
    assert closing is not None
    agent.receive(closing)
    assert agent.receive(tech.open()[1]) == StreamOpened(4)


def test_close_reason_is_bounded_and_decoded_safely() -> None:
    tech, agent = pair()
    agent.receive(tech.open()[1])
    event = agent.receive(frame(StreamKind.CLOSE, 1, b"\xff" + b"r" * 500))
    assert isinstance(event, StreamClosed)
    assert len(event.reason) <= 200


# Writes into DATA bodies (WriteBuffer) -------------------------------------------------


def joined(pieces: list[bytes | memoryview]) -> bytes:
    return b"".join(pieces)


def test_a_whole_data_frame_is_one_multiplexer_fragment() -> None:
    assert DATA_HEADER_SIZE + MAX_DATA == MAX_FRAGMENT
    assert SSH_MAX_PACKET + 100 < MAX_DATA  # an SSH packet and its framing fit one frame


def test_writes_are_packed_whole_and_one_that_does_not_fit_starts_the_next_body() -> None:
    buffer = WriteBuffer()
    for data in (b"a" * 40, b"b" * 900, b"c" * 40, b"d" * 900):
        buffer.write(data)
    assert buffer.size == 1880
    assert joined(buffer.take(1000)) == b"a" * 40 + b"b" * 900 + b"c" * 40
    assert joined(buffer.take(1000)) == b"d" * 900
    assert buffer.size == 0
    assert buffer.take(1000) == []


def test_only_a_write_larger_than_a_body_is_cut_and_its_rest_is_not_copied() -> None:
    buffer = WriteBuffer()
    big = bytes(range(256)) * 10
    buffer.write(b"x")
    buffer.write(big)
    assert buffer.take(1000) == [b"x"]
    first, second, third = buffer.take(1000), buffer.take(1000), buffer.take(1000)
    assert joined(first + second + third) == big
    assert [len(joined(p)) for p in (first, second, third)] == [1000, 1000, 560]
    assert all(isinstance(p, memoryview) for p in first + second + third)
    assert buffer.size == 0


def test_bytes_are_kept_as_written_and_anything_else_is_copied() -> None:
    buffer = WriteBuffer()
    data = b"packet"
    scratch = bytearray(b"reused")
    buffer.write(data)
    buffer.write(scratch)
    scratch[:] = b"CHANGED"
    pieces = buffer.take(100)
    assert pieces[0] is data
    assert joined(pieces) == b"packetreused"


def test_clear_forgets_everything_and_says_how_much() -> None:
    buffer = WriteBuffer()
    buffer.write(b"abc")
    buffer.write(b"")  # nothing to keep
    buffer.write(memoryview(b"defg"))
    assert buffer.clear() == 7
    assert buffer.size == 0 and buffer.take(10) == []
    with pytest.raises(LocalProtocolError):
        buffer.take(0)


def test_a_body_of_pieces_makes_one_data_frame() -> None:
    tech, agent = pair()
    agent.receive(tech.open()[1])
    buffer = WriteBuffer()
    buffer.write(b"one ")
    buffer.write(memoryview(b"two"))
    assert agent.receive(tech.data(1, *buffer.take())) == StreamData(1, b"one two")
