"""Typed messages of the ``control`` channel (and the payload codec for others).

Each message is a small frozen dataclass with an ``IntEnum`` type code. On the wire
it is a msgpack array ``[type, field1, field2, ...]`` in field order. ``parse``
checks every field's type; anything else is :class:`MalformedMessage`.

Requests flow technician -> agent; replies, progress and consent updates flow back.
``Reply.status`` tells the technician exactly what happened: done, declined by the
customer, revoked mid-way, failed, or unknown capability.
"""

from __future__ import annotations

import enum
from dataclasses import astuple, dataclass, field, fields
from typing import Any, ClassVar

import msgpack

from .errors import LocalProtocolError, MalformedMessage, VersionMismatch
from .pairing import PROTOCOL_VERSION

MAX_CONTROL_MESSAGE = 8 * 1024 * 1024


class MsgType(enum.IntEnum):
    HELLO = 1
    REQUEST = 2
    REPLY = 3
    PROGRESS = 4
    CANCEL = 5
    CONSENT = 6
    CHAT = 7
    BYE = 8
    IDENTITY = 9
    RATING = 10


class ReplyStatus(enum.IntEnum):
    OK = 0
    DECLINED = 1  # the customer said no
    REVOKED = 2  # the customer withdrew consent while it ran
    FAILED = 3  # the capability ran and failed
    UNKNOWN = 4  # no such capability or action on this agent
    BUSY = 5  # a request with this id is already running
    REFUSED = 6  # the agent refused it before asking anyone (a fix failed verification)


class ConsentState(enum.StrEnum):
    GRANTED = "granted"
    DECLINED = "declined"
    REVOKED = "revoked"


# Type names as they appear in annotations (this module uses postponed evaluation).
_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "int": (int,),
    "str": (str,),
    "bool": (bool,),
    "bytes": (bytes,),
    "dict[str, Any]": (dict,),
    "dict[str, Any] | None": (dict, type(None)),
    "list[str]": (list,),
}


@dataclass(frozen=True)
class Message:
    TYPE: ClassVar[MsgType]

    def check(self) -> None:
        """Raise :class:`MalformedMessage` unless every field has its declared type."""
        for f in fields(self):
            value = getattr(self, f.name)
            allowed = _FIELD_TYPES[str(f.type)]
            if isinstance(value, bool) and bool not in allowed:
                raise MalformedMessage(f"{self.TYPE.name}.{f.name} must not be a boolean")
            if not isinstance(value, allowed):
                raise MalformedMessage(f"{self.TYPE.name}.{f.name} has the wrong type")
            if isinstance(value, list) and not all(isinstance(v, str) for v in value):
                raise MalformedMessage(f"{self.TYPE.name}.{f.name} must hold strings")
            if str(f.type).startswith("dict") and isinstance(value, dict):
                if not all(isinstance(k, str) for k in value):
                    raise MalformedMessage(f"{self.TYPE.name}.{f.name} keys must be strings")

    def serialize(self) -> bytes:
        """Encode this message; a field of the wrong type is a bug on this side."""
        try:
            self.check()
        except MalformedMessage as exc:
            # MalformedMessage would blame the peer; this message was built here.
            raise LocalProtocolError(str(exc)) from None
        return pack([int(self.TYPE), *astuple(self)])


@dataclass(frozen=True)
class Hello(Message):
    """First message of each side inside the channel."""

    TYPE = MsgType.HELLO
    version: int
    role: str
    software: str
    name: str  # technician's display name, or the agent's customer-facing label
    capabilities: list[str] = field(default_factory=list)
    #: The agent's operating system family (linux, macos, windows) so the technician
    #: picks the matching variant of a fix; empty from the technician.
    platform: str = ""


@dataclass(frozen=True)
class Request(Message):
    TYPE = MsgType.REQUEST
    request_id: int
    capability: str
    action: str
    args: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Reply(Message):
    TYPE = MsgType.REPLY
    request_id: int
    status: int  # ReplyStatus
    result: dict[str, Any] | None = None
    message: str = ""


@dataclass(frozen=True)
class Progress(Message):
    TYPE = MsgType.PROGRESS
    request_id: int
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Cancel(Message):
    TYPE = MsgType.CANCEL
    request_id: int


@dataclass(frozen=True)
class Consent(Message):
    """The agent tells the technician a capability was granted, declined or revoked."""

    TYPE = MsgType.CONSENT
    capability: str
    state: str  # ConsentState
    message: str = ""


@dataclass(frozen=True)
class Chat(Message):
    TYPE = MsgType.CHAT
    text: str


@dataclass(frozen=True)
class Bye(Message):
    TYPE = MsgType.BYE
    reason: str


@dataclass(frozen=True)
class Identity(Message):
    """The technician's organisation certificate and its signature over this session.

    Sent by the technician right after its ``Hello``, always (both fields empty when it
    has no certificate). ``signature`` is Ed25519 over ``TRANSCRIPT_LABEL ‖ th`` made
    with the certificate's key (:mod:`protocol.identity`). An agent that pins an
    organisation key answers with its own ``Hello`` only if both verify; otherwise it
    closes the session with the reason.
    """

    TYPE = MsgType.IDENTITY
    certificate: bytes = b""
    signature: bytes = b""


#: Highest satisfaction score; :attr:`Rating.score` 0 means the customer did not rate.
MAX_RATING = 5

#: Longest rating comment, in characters.
MAX_RATING_COMMENT = 500


def rating_comment(typed: str) -> str:
    """The customer's typed comment as the one line a ticket takes (wire format).

    Not a display sanitiser (that is :func:`protocol.safe_text.safe_text`): this
    normalises the customer's own input before it leaves, control characters to
    spaces, runs of spaces collapsed, cut to :data:`MAX_RATING_COMMENT`.
    """
    spaced = "".join(ch if ch.isprintable() else " " for ch in typed)
    return " ".join(spaced.split())[:MAX_RATING_COMMENT]


@dataclass(frozen=True)
class Rating(Message):
    """The customer's satisfaction rating, agent -> technician, at most once per session.

    Sent when the session ends (after the technician's ``Bye``, or before the agent's
    own ``Bye`` when the customer ends it). ``score`` is 1 to 5, or 0 when the customer
    chose not to rate (or nobody could answer), so the technician stops waiting.
    """

    TYPE = MsgType.RATING
    score: int
    comment: str = ""

    def check(self) -> None:
        super().check()
        if not 0 <= self.score <= MAX_RATING:
            raise MalformedMessage(f"RATING.score must be 0 to {MAX_RATING}")
        if len(self.comment) > MAX_RATING_COMMENT:
            raise MalformedMessage(f"RATING.comment is over {MAX_RATING_COMMENT} characters")
        if self.score == 0 and self.comment:
            raise MalformedMessage("RATING.comment needs a score")


MESSAGE_CLASSES: dict[MsgType, type[Message]] = {
    cls.TYPE: cls
    for cls in (Hello, Request, Reply, Progress, Cancel, Consent, Chat, Bye, Identity, Rating)
}


def pack(value: Any) -> bytes:
    """msgpack with the options every Puente payload uses."""
    packed: bytes = msgpack.packb(value, use_bin_type=True)
    return packed


def unpack(data: bytes, max_size: int = MAX_CONTROL_MESSAGE) -> Any:
    """Strict msgpack decoding; any failure is :class:`MalformedMessage`."""
    if len(data) > max_size:
        raise MalformedMessage("message too large")
    try:
        return msgpack.unpackb(data, raw=False, strict_map_key=True)
    except Exception as exc:  # msgpack raises many types for hostile input
        raise MalformedMessage(f"undecodable message: {type(exc).__name__}") from None


def parse(data: bytes) -> Message:
    """Decode and check one control message."""
    value = unpack(data)
    if not isinstance(value, list) or not value:
        raise MalformedMessage("a control message is a non-empty array")
    # type() rather than isinstance(): True and 1.0 would otherwise be read as HELLO.
    if type(value[0]) is not int or value[0] not in MESSAGE_CLASSES:
        raise MalformedMessage(f"unknown message type {value[0]!r}")
    cls = MESSAGE_CLASSES[MsgType(value[0])]
    try:
        message = cls(*value[1:])
    except TypeError:
        raise MalformedMessage(f"{cls.TYPE.name} has the wrong number of fields") from None
    message.check()
    return message


def check_hello(hello: Hello) -> None:
    """Refuse a peer that speaks another protocol version, with a clear message."""
    if hello.version != PROTOCOL_VERSION:
        raise VersionMismatch(PROTOCOL_VERSION, hello.version)
