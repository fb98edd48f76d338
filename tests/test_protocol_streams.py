"""Streams inside the ssh channel: the rules of protocol.streams, without a network."""

from __future__ import annotations

import struct

import pytest

from protocol.envelope import Role
from protocol.errors import LocalProtocolError, MalformedMessage, RemoteProtocolError
from protocol.streams import (
    MAX_DATA,
    StreamClosed,
    StreamData,
    StreamKind,
    StreamOpened,
    StreamTable,
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
