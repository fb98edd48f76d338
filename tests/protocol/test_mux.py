"""The multiplexer: fragments, priorities and per-channel credits."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.errors import LocalProtocolError, MalformedMessage, RemoteProtocolError
from protocol.mux import (
    INITIAL_CREDIT,
    MAX_FRAGMENT,
    MAX_MESSAGE,
    PRIORITY,
    Channel,
    FrameKind,
    MessageReceived,
    Multiplexer,
)


def drain(sender: Multiplexer) -> list[bytes]:
    """Every frame the sender may send right now."""
    frames = []
    while (frame := sender.next_frame()) is not None:
        frames.append(frame)
    return frames


def deliver(frames: list[bytes], receiver: Multiplexer) -> list[MessageReceived]:
    return [event for frame in frames if (event := receiver.receive_frame(frame)) is not None]


def credit_frame(channel: Channel, grant: int) -> bytes:
    return bytes([FrameKind.CREDIT, channel]) + struct.pack(">I", grant)


def run(
    sender: Multiplexer, receiver: Multiplexer, *, consume: bool = True
) -> list[MessageReceived]:
    """Pump until nothing moves, the receiver consuming whatever it is handed."""
    received: list[MessageReceived] = []
    while True:
        frames = drain(sender)
        events = deliver(frames, receiver)
        received.extend(events)
        if consume:
            for event in events:
                receiver.consumed(event.channel, len(event.payload))
        credits = drain(receiver)
        deliver(credits, sender)
        if not frames and not credits:
            return received


# Fragmentation -------------------------------------------------------------------------


def test_large_message_is_fragmented_and_reassembled() -> None:
    window = 8 * MAX_FRAGMENT  # the whole message fits the credit: no consumer needed
    sender, receiver = Multiplexer(window), Multiplexer(window)
    payload = bytes(range(256)) * (MAX_FRAGMENT * 25 // 1024)  # 6.25 fragments
    sender.send(Channel.DIAGNOSTICS, payload)
    assert sender.pending(Channel.DIAGNOSTICS) == 7
    frames = drain(sender)
    assert len(frames) == 7
    assert [f[0] for f in frames] == [FrameKind.PART] * 6 + [FrameKind.END]
    assert {f[1] for f in frames} == {Channel.DIAGNOSTICS}
    assert all(len(f) - 2 == MAX_FRAGMENT for f in frames[:-1])
    assert len(frames[-1]) - 2 == len(payload) - 6 * MAX_FRAGMENT
    for frame in frames[:-1]:
        assert receiver.receive_frame(frame) is None
    assert receiver.receive_frame(frames[-1]) == MessageReceived(Channel.DIAGNOSTICS, payload)


@pytest.mark.parametrize(
    ("size", "count"),
    [
        (0, 1),
        (1, 1),
        (MAX_FRAGMENT - 1, 1),
        (MAX_FRAGMENT, 1),
        (MAX_FRAGMENT + 1, 2),
        (3 * MAX_FRAGMENT, 3),
    ],
)
def test_fragment_boundaries(size: int, count: int) -> None:
    sender, receiver = Multiplexer(), Multiplexer()
    payload = b"\xab" * size
    sender.send(Channel.FIX, payload)
    frames = drain(sender)
    assert len(frames) == count
    assert frames[-1][0] == FrameKind.END
    assert deliver(frames, receiver) == [MessageReceived(Channel.FIX, payload)]


def test_empty_message_round_trips() -> None:
    sender, receiver = Multiplexer(), Multiplexer()
    sender.send(Channel.CHAT, b"")
    frames = drain(sender)
    assert frames == [bytes([FrameKind.END, Channel.CHAT])]
    assert deliver(frames, receiver) == [MessageReceived(Channel.CHAT, b"")]


def test_messages_on_one_channel_stay_in_order() -> None:
    sender, receiver = Multiplexer(), Multiplexer()
    payloads = [bytes([i]) * (i * 5000) for i in range(10)]
    for payload in payloads:
        sender.send(Channel.SSH, payload)
    assert [e.payload for e in run(sender, receiver)] == payloads


def test_interleaved_fragments_of_different_channels_reassemble() -> None:
    receiver = Multiplexer()
    screen = [bytes([FrameKind.PART, Channel.SCREEN]) + b"s1"]
    chat = [bytes([FrameKind.PART, Channel.CHAT]) + b"c1"]
    assert receiver.receive_frame(screen[0]) is None
    assert receiver.receive_frame(chat[0]) is None
    assert receiver.receive_frame(bytes([FrameKind.END, Channel.SCREEN]) + b"s2") == (
        MessageReceived(Channel.SCREEN, b"s1s2")
    )
    assert receiver.receive_frame(bytes([FrameKind.END, Channel.CHAT]) + b"c2") == (
        MessageReceived(Channel.CHAT, b"c1c2")
    )


# Priority ------------------------------------------------------------------------------


def test_keystroke_overtakes_a_big_screen_frame() -> None:
    sender = Multiplexer()
    sender.send(Channel.SCREEN, bytes(2 * 1024 * 1024))
    first = sender.next_frame()
    assert first is not None and first[1] == Channel.SCREEN
    sender.send(Channel.INPUT, b"key a")
    assert sender.next_frame() == bytes([FrameKind.END, Channel.INPUT]) + b"key a"
    # The rest of the screen frame waits.
    assert sender.pending(Channel.SCREEN) == 2 * 1024 * 1024 // MAX_FRAGMENT - 1


def test_priority_order_is_control_input_then_screen_last() -> None:
    sender = Multiplexer()
    for channel in reversed(list(Channel)):
        sender.send(channel, channel.name.encode())
    assert [frame[1] for frame in drain(sender)] == list(PRIORITY)
    assert PRIORITY[0] is Channel.CONTROL and PRIORITY[1] is Channel.INPUT
    assert PRIORITY[-1] is Channel.SCREEN
    assert set(PRIORITY) == set(Channel)


def test_credit_frames_go_before_everything() -> None:
    mux = Multiplexer(initial_credit=1000)
    mux.receive_frame(bytes([FrameKind.END, Channel.SCREEN]) + bytes(600))
    mux.send(Channel.CONTROL, b"hello")
    mux.consumed(Channel.SCREEN, 600)
    assert mux.next_frame() == credit_frame(Channel.SCREEN, 600)
    assert mux.next_frame() == bytes([FrameKind.END, Channel.CONTROL]) + b"hello"


# Credits -------------------------------------------------------------------------------


def test_sender_stops_at_its_credit_and_resumes_on_credit_frames() -> None:
    sender, receiver = Multiplexer(initial_credit=4000), Multiplexer(initial_credit=4000)
    for i in range(10):
        sender.send(Channel.SCREEN, bytes([i]) * 1000)

    frames = drain(sender)
    assert len(frames) == 4  # 4 x 1000 bytes of credit
    assert sender.next_frame() is None
    assert sender.blocked() == [Channel.SCREEN]
    assert sender.pending(Channel.SCREEN) == 6

    # Other channels are not held up by the screen's lack of credit.
    sender.send(Channel.INPUT, b"k")
    assert sender.blocked() == [Channel.SCREEN]
    assert sender.next_frame() == bytes([FrameKind.END, Channel.INPUT]) + b"k"

    events = deliver(frames, receiver)
    assert [e.payload[0] for e in events] == [0, 1, 2, 3]
    assert receiver.next_frame() is None  # nothing consumed yet: no credit
    for event in events:
        receiver.consumed(event.channel, len(event.payload))
    credits = drain(receiver)
    assert credits and all(f[0] == FrameKind.CREDIT for f in credits)
    assert sum(struct.unpack(">I", f[2:])[0] for f in credits) == 4000
    deliver(credits, sender)
    assert sender.blocked() == []

    rest = run(sender, receiver)
    assert [e.payload[0] for e in rest] == [4, 5, 6, 7, 8, 9]
    assert sender.pending(Channel.SCREEN) == 0


def test_no_credit_comes_back_while_the_application_has_not_consumed() -> None:
    sender, receiver = Multiplexer(initial_credit=3000), Multiplexer(initial_credit=3000)
    for _ in range(5):
        sender.send(Channel.FIX, bytes(1000))
    assert len(run(sender, receiver, consume=False)) == 3
    assert sender.blocked() == [Channel.FIX]


def test_consumed_batches_small_grants() -> None:
    receiver = Multiplexer()
    for _ in range(2):
        receiver.receive_frame(bytes([FrameKind.END, Channel.CHAT]) + bytes(100))
    receiver.consumed(Channel.CHAT, 100)
    assert receiver.next_frame() is None  # too small to be worth a frame yet
    receiver.flush_credit(Channel.CHAT)
    assert receiver.next_frame() == credit_frame(Channel.CHAT, 100)
    receiver.flush_credit(Channel.CHAT)
    assert receiver.next_frame() is None  # nothing left to grant
    # Consuming the last outstanding bytes gives the whole window back at once.
    receiver.consumed(Channel.CHAT, 100)
    assert receiver.next_frame() == credit_frame(Channel.CHAT, 100)


def test_consumed_grants_once_a_quarter_window_is_reached() -> None:
    receiver = Multiplexer(initial_credit=4000)
    for _ in range(4):
        receiver.receive_frame(bytes([FrameKind.END, Channel.CHAT]) + bytes(900))
    receiver.consumed(Channel.CHAT, 900)
    assert receiver.next_frame() is None
    receiver.consumed(Channel.CHAT, 900)  # 1800 >= 4000 // 4
    assert receiver.next_frame() == credit_frame(Channel.CHAT, 1800)


def test_consumed_refuses_negative_amounts() -> None:
    with pytest.raises(LocalProtocolError):
        Multiplexer().consumed(Channel.CHAT, -1)


def test_consumed_refuses_more_than_was_received() -> None:
    receiver = Multiplexer(initial_credit=1000)
    receiver.receive_frame(bytes([FrameKind.END, Channel.CHAT]) + bytes(300))
    receiver.consumed(Channel.CHAT, 200)
    with pytest.raises(LocalProtocolError):
        receiver.consumed(Channel.CHAT, 101)
    receiver.consumed(Channel.CHAT, 100)
    with pytest.raises(LocalProtocolError):
        receiver.consumed(Channel.CHAT, 1)
    with pytest.raises(LocalProtocolError):
        Multiplexer().consumed(Channel.SCREEN, 1 << 32)


def test_peer_exceeding_its_credit_is_a_protocol_error() -> None:
    # Whole messages the application has not consumed keep their credit.
    receiver = Multiplexer(initial_credit=1000)
    receiver.receive_frame(bytes([FrameKind.END, Channel.SCREEN]) + bytes(600))
    with pytest.raises(RemoteProtocolError, match="SCREEN"):
        receiver.receive_frame(bytes([FrameKind.END, Channel.SCREEN]) + bytes(401))


def test_peer_exceeding_credit_in_one_frame_is_a_protocol_error() -> None:
    receiver = Multiplexer(initial_credit=100)
    with pytest.raises(RemoteProtocolError):
        receiver.receive_frame(bytes([FrameKind.END, Channel.INPUT]) + bytes(101))


def test_over_granting_credit_is_a_protocol_error() -> None:
    sender = Multiplexer(initial_credit=1000)
    with pytest.raises(RemoteProtocolError):
        sender.receive_frame(credit_frame(Channel.SCREEN, 1))
    sender.send(Channel.SCREEN, bytes(500))
    drain(sender)
    sender.receive_frame(credit_frame(Channel.SCREEN, 500))
    with pytest.raises(RemoteProtocolError):
        sender.receive_frame(credit_frame(Channel.SCREEN, 1))


def test_zero_credit_grant_is_harmless() -> None:
    assert Multiplexer().receive_frame(credit_frame(Channel.CONTROL, 0)) is None


# Malformed frames ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "frame",
    [
        b"",
        b"\x01",
        bytes([0, Channel.CONTROL]),
        bytes([5, Channel.CONTROL]),  # 4 is ABORT
        bytes([255, Channel.CONTROL]) + b"x",
        bytes([FrameKind.END, 7]),
        bytes([FrameKind.END, 255]) + b"x",
        bytes([FrameKind.CREDIT, Channel.CONTROL]),
        bytes([FrameKind.CREDIT, Channel.CONTROL]) + b"\x00\x00\x01",
        bytes([FrameKind.CREDIT, Channel.CONTROL]) + b"\x00\x00\x00\x00\x00",
    ],
)
def test_unknown_or_malformed_frames_are_refused(frame: bytes) -> None:
    with pytest.raises(MalformedMessage):
        Multiplexer().receive_frame(frame)


def test_oversized_fragment_is_a_protocol_error() -> None:
    with pytest.raises(RemoteProtocolError):
        Multiplexer().receive_frame(bytes([FrameKind.PART, Channel.SSH]) + bytes(MAX_FRAGMENT + 1))


def test_oversized_message_is_a_protocol_error() -> None:
    receiver = Multiplexer(initial_credit=MAX_MESSAGE + 2 * MAX_FRAGMENT)
    fragment = bytes([FrameKind.PART, Channel.SCREEN]) + bytes(MAX_FRAGMENT)
    for _ in range(MAX_MESSAGE // MAX_FRAGMENT):
        assert receiver.receive_frame(fragment) is None
    with pytest.raises(RemoteProtocolError, match="larger than allowed"):
        receiver.receive_frame(bytes([FrameKind.END, Channel.SCREEN]) + b"x")


def test_sending_an_oversized_message_is_local_misuse() -> None:
    with pytest.raises(LocalProtocolError):
        Multiplexer().send(Channel.SCREEN, bytes(MAX_MESSAGE + 1))


# Messages larger than the window ---------------------------------------------------


def test_message_larger_than_the_credit_window_is_delivered() -> None:
    # PART fragments are credited back as they are buffered, so a message bigger than
    # the window completes; only its END fragment waits for the application.
    sender = Multiplexer(initial_credit=4 * MAX_FRAGMENT)
    receiver = Multiplexer(initial_credit=4 * MAX_FRAGMENT)
    sender.send(Channel.SCREEN, bytes(5 * MAX_FRAGMENT))
    assert run(sender, receiver) == [MessageReceived(Channel.SCREEN, bytes(5 * MAX_FRAGMENT))]


def test_end_fragment_credit_waits_for_the_application() -> None:
    sender = Multiplexer(initial_credit=2 * MAX_FRAGMENT)
    receiver = Multiplexer(initial_credit=2 * MAX_FRAGMENT)
    for _ in range(2):
        sender.send(Channel.CHAT, bytes(MAX_FRAGMENT))
    sender.send(Channel.CHAT, b"third")
    frames = []
    while (frame := sender.next_frame()) is not None:
        frames.append(frame)
    assert len(frames) == 2  # the window is full of unconsumed single-fragment messages
    assert sender.blocked() == [Channel.CHAT]
    for frame in frames:
        receiver.receive_frame(frame)
    receiver.consumed(Channel.CHAT, MAX_FRAGMENT)
    while (credit := receiver.next_frame()) is not None:
        sender.receive_frame(credit)
    assert sender.next_frame() is not None  # credit for one consumed message came back


def test_consuming_a_message_in_pieces_returns_exactly_its_credit() -> None:
    receiver = Multiplexer(initial_credit=4 * MAX_FRAGMENT)
    sender = Multiplexer(initial_credit=4 * MAX_FRAGMENT)
    sender.send(Channel.SSH, bytes(MAX_FRAGMENT + 10))
    received = run(sender, receiver, consume=False)
    assert [len(m.payload) for m in received] == [MAX_FRAGMENT + 10]
    receiver.consumed(Channel.SSH, 5)
    receiver.consumed(Channel.SSH, MAX_FRAGMENT + 5)
    with pytest.raises(LocalProtocolError):
        receiver.consumed(Channel.SSH, 1)


def test_default_window_is_four_mebibytes() -> None:
    # The limitation above bites at this size; keep the two facts side by side.
    assert INITIAL_CREDIT == 4 << 20


@settings(max_examples=60, deadline=None)
@given(sizes=st.lists(st.integers(0, 3 * 4 * MAX_FRAGMENT), min_size=1, max_size=6))
def test_any_sizes_complete_and_memory_stays_bounded(sizes: list[int]) -> None:
    window = 4 * MAX_FRAGMENT
    sender, receiver = Multiplexer(initial_credit=window), Multiplexer(initial_credit=window)
    for i, size in enumerate(sizes):
        sender.send(Channel.SCREEN, bytes([i % 256]) * size)
    received: list[MessageReceived] = []
    held = 0
    while True:
        frames = drain(sender)
        events = deliver(frames, receiver)
        # Hold messages for one round before consuming: memory is what is held.
        held = sum(len(e.payload) for e in events)
        assert held <= window + max(sizes)
        received.extend(events)
        for event in events:
            receiver.consumed(event.channel, len(event.payload))
        credits = drain(receiver)
        deliver(credits, sender)
        if not frames and not credits:
            break
    assert [len(m.payload) for m in received] == sizes
