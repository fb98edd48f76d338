"""The messages of the signed-in user's helper: between an enrolled device's service and
the helpers in the users' desktops (:mod:`agent.helper_hub`, :mod:`agent.user_helper`),
and between the service and the unattended session it starts (:mod:`agent.helper_ui`).

Sans-I/O: this module turns messages into lines and lines into checked messages; the
sockets are the callers'.

Rules:

1. One JSON object per line (UTF-8, ``\\n``), at most :data:`MAX_LINE` bytes; every
   object has a ``type`` and exactly the fields its type lists in :data:`FIELDS`, each
   of the right kind and within its bounds. Anything else raises
   :class:`MalformedHelperMessage`, and the reader closes that connection.
2. A well-formed message of a type the reader does not expect grants nothing: the
   reader ignores it (an answer when no question is open, a banner to the service).
3. Nothing here is a sentence to show. Questions and banners carry the technician's
   name, organisation and ticket as data; each helper words them in its own user's
   language and makes them inert (:func:`protocol.safe_text.safe_text`) before showing.

Helper <-> service (the service's Unix socket, ``/run/puente/NAME.sock``)::

    helper  -> service   hello {version, display}
    service -> helper    welcome {user} | refused {reason, message}
    service -> helper    question {id, technician, organisation, ticket, capabilities,
                                   seconds, allow_on_silence}
    helper  -> service   answer {id, allow}
    service -> helper    closed {id, why}           (answered elsewhere, time up, cancelled)
    service -> helper    banner {technician, organisation, ticket} ... ended {}
    helper  -> service   end {}                      ("End session" on the banner)
    helper  -> service   windows {ids}               (its own X windows: the trusted path)

Session <-> service (a socket pair the service hands to ``puente-agent unattended``)::

    session -> service   ask {...as question}, close {id}, banner {...}, ended {}
    service -> session   asked {id, users}, answer {id, allow, user, uid},
                         end {user, uid}, windows {ids}
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

#: The version a helper says in its hello; the service refuses any other.
VERSION = 1
#: The longest line either side accepts, in bytes (with its newline).
MAX_LINE = 16 * 1024

#: Why a helper was refused (the helper words each one in its user's language).
REFUSALS = ("not_signed_in", "bad_hello", "version", "too_many")
#: Why a question was closed on a helper's screen.
CLOSED_WHY = ("answered", "time_up", "cancelled")


class MalformedHelperMessage(ValueError):
    """A line that is not one of this module's messages (rule 1)."""


def _text(limit: int) -> Callable[[Any], bool]:
    return lambda value: isinstance(value, str) and len(value) <= limit


def _whole(low: int, high: int) -> Callable[[Any], bool]:
    return lambda value: type(value) is int and low <= value <= high


def _flag(value: Any) -> bool:
    return type(value) is bool


def _names(value: Any) -> bool:
    return (
        isinstance(value, list)
        and len(value) <= 32
        and all(isinstance(item, str) and 0 < len(item) <= 64 for item in value)
    )


def _window_ids(value: Any) -> bool:
    return (
        isinstance(value, list)
        and len(value) <= 32
        and all(type(item) is int and 0 < item < 2**32 for item in value)
    )


def _one_of(choices: tuple[str, ...]) -> Callable[[Any], bool]:
    return lambda value: value in choices


_ID = _whole(1, 2**31)
_PERSON = {"technician": _text(200), "organisation": _text(200), "ticket": _text(200)}
_QUESTION = {
    "id": _ID,
    **_PERSON,
    "capabilities": _names,
    "seconds": _whole(0, 3600),
    "allow_on_silence": _flag,
}

#: Message type -> field -> the check its value must pass.
Schema = dict[str, dict[str, Callable[[Any], bool]]]

#: Every message type and its fields (rule 1).
FIELDS: Schema = {
    # helper <-> service
    "hello": {"version": _whole(0, 1000), "display": _text(64)},
    "welcome": {"user": _text(64)},
    "refused": {"reason": _one_of(REFUSALS), "message": _text(1000)},
    "question": _QUESTION,
    "answer": {"id": _ID, "allow": _flag},
    "closed": {"id": _ID, "why": _one_of(CLOSED_WHY)},
    "banner": _PERSON,
    "ended": {},
    "end": {},
    "windows": {"ids": _window_ids},
    # session <-> service (answer, banner, ended, end and windows have the same names
    # but, towards the session, say who: see SESSION_FIELDS)
    "ask": _QUESTION,
    "close": {"id": _ID},
    "asked": {"id": _ID, "users": _names},
}

#: The session channel's own shapes of the names it shares with the helpers' socket.
SESSION_FIELDS: Schema = {
    **FIELDS,
    "answer": {"id": _ID, "allow": _flag, "user": _text(64), "uid": _whole(0, 2**32)},
    "end": {"user": _text(64), "uid": _whole(0, 2**32)},
}


def encode(kind: str, schema: Schema | None = None, **fields: Any) -> bytes:
    """One message as a line; raises MalformedHelperMessage for a wrong one (a bug)."""
    message = {"type": kind, **fields}
    _check(message, schema or FIELDS)
    line = json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"
    if len(line) > MAX_LINE:
        raise MalformedHelperMessage(f"a {kind} message would be {len(line)} bytes")
    return line


def parse(line: bytes, schema: Schema | None = None) -> dict[str, Any]:
    """The checked message a line carries (rule 1)."""
    if len(line) > MAX_LINE:
        raise MalformedHelperMessage(f"a line of more than {MAX_LINE} bytes")
    try:
        message = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise MalformedHelperMessage(f"not a JSON line ({exc})") from None
    if not isinstance(message, dict):
        raise MalformedHelperMessage("not a JSON object")
    _check(message, schema or FIELDS)
    return message


def _check(message: dict[str, Any], schema: Schema) -> None:
    kind = message.get("type")
    fields = schema.get(kind) if isinstance(kind, str) else None
    if fields is None:
        raise MalformedHelperMessage(f"unknown message type {kind!r}")
    names = set(message) - {"type"}
    if names != set(fields):
        raise MalformedHelperMessage(
            f"a {kind} message needs the fields {sorted(fields)}, not {sorted(names)}"
        )
    for name, valid in fields.items():
        if not valid(message[name]):
            raise MalformedHelperMessage(f"the {kind} message's {name} is not valid")


def question_fields(message: dict[str, Any]) -> dict[str, Any]:
    """The fields of an ask or question, without its type."""
    return {name: message[name] for name in _QUESTION}


__all__ = [
    "CLOSED_WHY",
    "FIELDS",
    "MAX_LINE",
    "REFUSALS",
    "SESSION_FIELDS",
    "VERSION",
    "MalformedHelperMessage",
    "encode",
    "parse",
    "question_fields",
]
