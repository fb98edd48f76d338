"""The relay envelope: small JSON text messages between each end and the relay.

Layer 2 of the wire (see ``docs/PROTOCOL.md``). Before two ends are paired, each
end and the relay exchange these messages as WebSocket *text* messages. After
``paired`` the relay forwards *binary* messages between the two ends untouched;
text messages keep flowing between each end and the relay only (``burn``,
``end``, ``peer_gone``, ``error``).

Connection: both ends open ``/v1/session`` (``WS_PATH``). A technician adds
``Authorization: Bearer TOKEN`` to the upgrade; an agent connects anonymously.

Messages (``type`` field first)::

    end -> relay    {"type": "claim", "version": 1, "role": "agent"|"technician",
                     "nameplate": "417"}
    relay -> end    {"type": "waiting", "expires_in": 587}          # peer not here yet
    relay -> end    {"type": "paired", "session_id": "...", "ticket_id": "T-1",
                     "ticket_url": "...", "technician": "Ana"}
    end -> relay    {"type": "burn", "reason": "key confirmation failed"}
    end -> relay    {"type": "end", "reason": "finished"}
    relay -> end    {"type": "peer_gone", "reason": "..."}
    relay -> end    {"type": "error", "code": "<ErrorCode>", "message": "a sentence"}

Resume (see ``protocol.resume``): ``paired`` also carries ``"resume_grace": 60``, the
seconds the relay keeps a session whose end dropped (0: no resume). Then::

    end -> relay    {"type": "resumable", "verifier": "<64 hex: SHA-256 of the resume id>"}
    relay -> end    {"type": "peer_suspended", "grace": 60}   # the other end dropped
    end -> relay    {"type": "resume", "version": 1, "role": "agent",   # first message
                     "session_id": "...", "resume_id": "<32 hex>"}     # of a new connection
    relay -> end    {"type": "waiting", "expires_in": 41}       # the other end is away too
    relay -> both   {"type": "resumed"}                          # both back: run RESUME

An ``error`` is always followed by the relay closing the connection.

This module is pure: it builds and checks messages, nothing else.
"""

from __future__ import annotations

import enum
import json
from typing import Any

# ErrorCode and ERROR_SENTENCES live in protocol.errors; named here too for the relay,
# which imports them from this module.
from .errors import ERROR_SENTENCES as ERROR_SENTENCES
from .errors import EnvelopeError
from .errors import ErrorCode as ErrorCode

#: Version of the envelope and of the end-to-end protocol it carries.
ENVELOPE_VERSION = 1

#: The one WebSocket path of the relay.
WS_PATH = "/v1/session"

#: Largest text message either side accepts before pairing.
MAX_ENVELOPE_SIZE = 4096

#: Largest binary message the relay forwards (one secure record).
MAX_RECORD_SIZE = 1 << 20


class Role(enum.StrEnum):
    AGENT = "agent"
    TECHNICIAN = "technician"

    @property
    def peer(self) -> Role:
        return Role.TECHNICIAN if self is Role.AGENT else Role.AGENT


def encode(message: dict[str, Any]) -> str:
    """Serialize an envelope message; ``type`` must be present."""
    if "type" not in message:
        raise ValueError("envelope messages need a type")
    return json.dumps(message, separators=(",", ":"))


def decode(text: str | bytes) -> dict[str, Any]:
    """Parse one envelope message; raise :class:`EnvelopeError` if it is not one."""
    if isinstance(text, bytes | bytearray | memoryview):
        raise EnvelopeError("expected a text message before pairing")
    if len(text) > MAX_ENVELOPE_SIZE:
        raise EnvelopeError("envelope message too large")
    try:
        message = json.loads(text)
    except (ValueError, RecursionError) as exc:
        # RecursionError: a few thousand nested brackets fit in MAX_ENVELOPE_SIZE.
        raise EnvelopeError("envelope message is not JSON") from exc
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        raise EnvelopeError("envelope message must be an object with a type")
    return message


def claim(role: Role, nameplate: str) -> str:
    return encode(
        {"type": "claim", "version": ENVELOPE_VERSION, "role": str(role), "nameplate": nameplate}
    )


def parse_claim(message: dict[str, Any]) -> tuple[Role, str]:
    """Check a ``claim`` message and return its role and nameplate."""
    if message.get("type") != "claim":
        raise EnvelopeError("the first message must be a claim")
    version = message.get("version")
    # type() rather than ==: JSON true and 1.0 compare equal to 1 but are not versions.
    if type(version) is not int or version != ENVELOPE_VERSION:
        raise EnvelopeError("unsupported envelope version", code=ErrorCode.VERSION)
    role_name = message.get("role")
    if not isinstance(role_name, str):
        raise EnvelopeError("role must be agent or technician")
    try:
        role = Role(role_name)
    except ValueError as exc:
        raise EnvelopeError("role must be agent or technician") from exc
    nameplate = message.get("nameplate")
    if (
        not isinstance(nameplate, str)
        or not (nameplate.isascii() and nameplate.isdigit())
        or not 3 <= len(nameplate) <= 9
    ):
        raise EnvelopeError("nameplate must be 3 to 9 digits")
    return role, nameplate


def error(code: ErrorCode, message: str | None = None) -> str:
    return encode({"type": "error", "code": str(code), "message": message or ERROR_SENTENCES[code]})


def parse_resume(message: dict[str, Any]) -> tuple[Role, str, bytes]:
    """Check a ``resume`` message; return its role, session id and resume id."""
    if message.get("type") != "resume":
        raise EnvelopeError("expected a resume message")
    if message.get("version") != ENVELOPE_VERSION:
        raise EnvelopeError("unsupported envelope version", code=ErrorCode.VERSION)
    try:
        role = Role(str(message.get("role")))
    except ValueError as exc:
        raise EnvelopeError("role must be agent or technician") from exc
    session_id = message.get("session_id")
    if not isinstance(session_id, str) or not 1 <= len(session_id) <= 64:
        raise EnvelopeError("session_id must be a short string")
    resume_id = message.get("resume_id")
    try:
        raw = bytes.fromhex(resume_id) if isinstance(resume_id, str) else b""
    except ValueError:
        raw = b""
    if len(raw) != 16:
        raise EnvelopeError("resume_id must be 32 hex digits")
    return role, session_id, raw


def parse_verifier(message: dict[str, Any]) -> str:
    """Check a ``resumable`` message; return its verifier (64 lower-case hex digits)."""
    verifier = message.get("verifier")
    if (
        not isinstance(verifier, str)
        or len(verifier) != 64
        or any(c not in "0123456789abcdef" for c in verifier)
    ):
        raise EnvelopeError("verifier must be 64 lower-case hex digits")
    return verifier


def reissued(nameplate: str, session_id: str, expires_in: int, join_url: str | None) -> str:
    """Relay → technician: someone else claimed this code; here is a fresh nameplate
    for the same ticket (the old one is burnt)."""
    return encode(
        {
            "type": "reissued",
            "nameplate": nameplate,
            "session_id": session_id,
            "expires_in": expires_in,
            "join_url": join_url,
        }
    )


def parse_reissued(message: dict[str, Any]) -> tuple[str, str, str | None]:
    """Check a ``reissued`` message; return its nameplate, session id and join link."""
    nameplate = message.get("nameplate")
    if (
        not isinstance(nameplate, str)
        or not (nameplate.isascii() and nameplate.isdigit())
        or not 3 <= len(nameplate) <= 9
    ):
        raise EnvelopeError("nameplate must be 3 to 9 digits")
    session_id = message.get("session_id")
    if not isinstance(session_id, str) or not 1 <= len(session_id) <= 64:
        raise EnvelopeError("session_id must be a short string")
    join_url = message.get("join_url")
    if join_url is not None and (not isinstance(join_url, str) or len(join_url) > 2000):
        raise EnvelopeError("join_url must be a short string")
    return nameplate, session_id, join_url
