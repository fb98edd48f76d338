"""Control messages: every type round-trips; anything else is MalformedMessage."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest

from protocol.errors import LocalProtocolError, MalformedMessage, VersionMismatch
from protocol.messages import (
    MAX_CONTROL_MESSAGE,
    MESSAGE_CLASSES,
    Bye,
    Cancel,
    Chat,
    Consent,
    ConsentState,
    Hello,
    Identity,
    Message,
    MsgType,
    Progress,
    Rating,
    Reply,
    ReplyStatus,
    Request,
    check_hello,
    pack,
    parse,
    unpack,
)
from protocol.pairing import PROTOCOL_VERSION

SAMPLES: list[Message] = [
    Hello(PROTOCOL_VERSION, "technician", "puente-tech 0.1.0", "Ana"),
    Hello(
        PROTOCOL_VERSION,
        "agent",
        "puente-agent 0.1.0",
        "Maria's laptop",
        ["diagnostics", "screen", "ssh"],
    ),
    Request(1, "diagnostics", "collect"),
    Request(
        2**40,
        "fix",
        "run",
        {"script": "clear-cache", "args": ["--all", 3, 1.5, None, True], "blob": b"\x00\xff"},
    ),
    Reply(1, ReplyStatus.OK, {"disk_free": 12345, "nested": {"a": [1, 2]}}),
    Reply(2, ReplyStatus.DECLINED, None, "The customer declined screen sharing."),
    Reply(3, ReplyStatus.UNKNOWN),
    Progress(1),
    Progress(1, {"percent": 42, "step": "scanning"}),
    Cancel(7),
    Consent("screen", ConsentState.GRANTED),
    Consent("shell", ConsentState.REVOKED, "Stopped by the customer."),
    Chat("Hola, ¿me ves? 👋"),
    Chat(""),
    Bye("finished"),
    Identity(),
    Identity(b'{"certificate": {}}', b"\x01" * 64),
    Hello(PROTOCOL_VERSION, "agent", "puente-agent 0.1.0", "", ["fixes"], "linux"),
    Rating(5, "Fixed my printer, thanks!"),
    Rating(0),
]


def raw(*items: Any) -> bytes:
    """A msgpack array built by hand, bypassing every check of the message classes."""
    return pack(list(items))


def test_samples_cover_every_message_type() -> None:
    assert set(MESSAGE_CLASSES) == set(MsgType)
    assert {type(m) for m in SAMPLES} == set(MESSAGE_CLASSES.values())
    for msg_type, cls in MESSAGE_CLASSES.items():
        assert cls.TYPE is msg_type


@pytest.mark.parametrize("message", SAMPLES, ids=lambda m: type(m).__name__)
def test_every_message_round_trips(message: Message) -> None:
    data = message.serialize()
    assert msgpack.unpackb(data)[0] == message.TYPE
    parsed = parse(data)
    assert type(parsed) is type(message)
    assert parsed == message
    assert parsed.serialize() == data


def test_enum_fields_travel_as_plain_values() -> None:
    reply = parse(Reply(1, ReplyStatus.REVOKED).serialize())
    assert isinstance(reply, Reply) and reply.status == ReplyStatus.REVOKED
    assert type(reply.status) is int
    consent = parse(Consent("screen", ConsentState.DECLINED).serialize())
    assert isinstance(consent, Consent) and consent.state == "declined"


def test_parsed_messages_are_frozen() -> None:
    message = parse(Chat("hi").serialize())
    with pytest.raises(AttributeError):
        message.text = "changed"  # type: ignore[attr-defined]  # frozen on purpose


# Wrong field types ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(raw(MsgType.HELLO, True, "agent", "s", "n", []), id="bool-for-int"),
        pytest.param(raw(MsgType.HELLO, 1.0, "agent", "s", "n", []), id="float-for-int"),
        pytest.param(raw(MsgType.HELLO, "1", "agent", "s", "n", []), id="str-for-int"),
        pytest.param(raw(MsgType.HELLO, 1, b"agent", "s", "n", []), id="bytes-for-str"),
        pytest.param(raw(MsgType.HELLO, 1, "agent", "s", "n", "screen"), id="str-for-list"),
        pytest.param(raw(MsgType.HELLO, 1, "agent", "s", "n", ["a", 2]), id="int-in-list"),
        pytest.param(raw(MsgType.HELLO, 1, "agent", "s", "n", [b"a"]), id="bytes-in-list"),
        pytest.param(raw(MsgType.HELLO, 1, "agent", "s", None, []), id="none-for-str"),
        pytest.param(raw(MsgType.REQUEST, 1, "c", "a", [1]), id="list-for-dict"),
        pytest.param(raw(MsgType.REQUEST, 1, "c", "a", {b"k": 1}), id="bytes-dict-key"),
        pytest.param(raw(MsgType.REQUEST, 1, "c", "a", {1: "x"}), id="int-dict-key"),
        pytest.param(raw(MsgType.REQUEST, 1, "c", "a", None), id="none-for-dict"),
        pytest.param(raw(MsgType.REQUEST, False, "c", "a", {}), id="bool-request-id"),
        pytest.param(raw(MsgType.REPLY, 1, True), id="bool-status"),
        pytest.param(raw(MsgType.REPLY, 1, 0, [1]), id="list-for-optional-dict"),
        pytest.param(raw(MsgType.REPLY, 1, 0, {b"k": 1}), id="bytes-key-optional-dict"),
        pytest.param(raw(MsgType.REPLY, 1, 0, None, 5), id="int-for-str"),
        pytest.param(raw(MsgType.PROGRESS, 1, "50%"), id="str-for-dict"),
        pytest.param(raw(MsgType.CANCEL, None), id="none-for-int"),
        pytest.param(raw(MsgType.CONSENT, "screen", 1), id="int-for-state"),
        pytest.param(raw(MsgType.CHAT, ["hi"]), id="list-for-str"),
        pytest.param(raw(MsgType.BYE, {"reason": "x"}), id="dict-for-str"),
    ],
)
def test_wrong_field_types_are_malformed(data: bytes) -> None:
    with pytest.raises(MalformedMessage):
        parse(data)


@pytest.mark.parametrize(
    "message",
    [
        # Built wrongly on purpose: what a buggy caller would do.
        Chat(5),  # type: ignore[arg-type]
        Hello(True, "agent", "s", "n"),
        Hello(1, "agent", "s", "n", ("screen",)),  # type: ignore[arg-type]
        Request(1, "c", "a", {2: "x"}),  # type: ignore[dict-item]
    ],
)
def test_serializing_a_badly_built_message_is_local_misuse(message: Message) -> None:
    # The bug is on this side; MalformedMessage would blame the peer.
    with pytest.raises(LocalProtocolError):
        message.serialize()


# Unknown types, wrong shapes, wrong counts ---------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(raw(0), id="zero"),
        pytest.param(raw(99, "x"), id="ninety-nine"),
        pytest.param(raw(-1), id="negative"),
        pytest.param(raw(True, "bye"), id="bool-type"),
        pytest.param(raw(8.0, "bye"), id="float-type"),
        pytest.param(raw("bye", "bye"), id="str-type"),
        pytest.param(raw([8], "bye"), id="list-type"),
        pytest.param(raw(None), id="none-type"),
    ],
)
def test_unknown_message_type_is_malformed(data: bytes) -> None:
    with pytest.raises(MalformedMessage, match="unknown message type"):
        parse(data)


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(raw(MsgType.BYE), id="bye-no-fields"),
        pytest.param(raw(MsgType.BYE, "a", "b"), id="bye-extra"),
        pytest.param(raw(MsgType.HELLO, 1, "agent", "s"), id="hello-short"),
        pytest.param(raw(MsgType.HELLO, 1, "agent", "s", "n", [], "x", "y"), id="hello-long"),
        pytest.param(raw(MsgType.IDENTITY, b"", b"", b""), id="identity-long"),
        pytest.param(raw(MsgType.REPLY, 1), id="reply-short"),
        pytest.param(raw(MsgType.CANCEL), id="cancel-none"),
        pytest.param(raw(MsgType.CANCEL, 1, 2), id="cancel-two"),
    ],
)
def test_wrong_field_count_is_malformed(data: bytes) -> None:
    with pytest.raises(MalformedMessage, match="wrong number of fields"):
        parse(data)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xc1",  # never used in msgpack
        b"\x92\x08",  # array of two with one element
        pack({"type": 8}),
        pack(8),
        pack("bye"),
        pack([]),
        pack(None),
        raw(MsgType.BYE, "x") + b"\x00",  # trailing bytes
        b"\x91" * 5000,  # deep nesting
    ],
)
def test_non_messages_are_malformed(data: bytes) -> None:
    with pytest.raises(MalformedMessage):
        parse(data)


def test_invalid_utf8_is_malformed() -> None:
    with pytest.raises(MalformedMessage):
        parse(b"\x92\x07\xa2\xff\xfe")  # [7, <str of invalid UTF-8>]


def test_oversized_message_is_malformed() -> None:
    with pytest.raises(MalformedMessage, match="too large"):
        parse(raw(MsgType.CHAT, "x" * MAX_CONTROL_MESSAGE))
    with pytest.raises(MalformedMessage):
        unpack(pack([1, 2, 3]), max_size=3)
    assert unpack(pack([1, 2]), max_size=3) == [1, 2]


# Hello and the protocol version --------------------------------------------------------


def test_check_hello_accepts_our_version() -> None:
    check_hello(Hello(PROTOCOL_VERSION, "agent", "puente-agent", "laptop"))


@pytest.mark.parametrize("version", [0, PROTOCOL_VERSION + 1, 99])
def test_check_hello_refuses_another_version(version: int) -> None:
    hello = parse(Hello(version, "agent", "puente-agent 9", "laptop").serialize())
    assert isinstance(hello, Hello)
    with pytest.raises(VersionMismatch) as info:
        check_hello(hello)
    assert (info.value.ours, info.value.theirs) == (PROTOCOL_VERSION, version)
    assert f"version {version}" in str(info.value)
    assert f"version {PROTOCOL_VERSION}" in str(info.value)


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(raw(MsgType.RATING, 6, ""), id="score-over-5"),
        pytest.param(raw(MsgType.RATING, -1, ""), id="negative-score"),
        pytest.param(raw(MsgType.RATING, 0, "a comment without a score"), id="comment-no-score"),
        pytest.param(raw(MsgType.RATING, 3, "x" * 501), id="comment-too-long"),
        pytest.param(raw(MsgType.RATING, True, ""), id="bool-score"),
    ],
)
def test_bad_ratings_are_malformed(data: bytes) -> None:
    with pytest.raises(MalformedMessage):
        parse(data)
