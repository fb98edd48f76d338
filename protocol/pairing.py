"""Pairing: SPAKE2 over the whole session code, key confirmation, key schedule, SAS.

Rules (everything that affects the outcome lives here):

1. The agent is SPAKE2 side A, the technician side B. The password binds a protocol
   label, the ticket and the whole code ``NAMEPLATE-SECRET``; the identities bind the
   role and the ticket. One PAKE message each way, in any order.
2. ``th = SHA-256`` over the protocol id, nameplate, ticket, msgA and msgB, each
   length-prefixed. HKDF-SHA256(K, salt=th) yields, each under its own label:
   confirm_agent, confirm_tech, key agent->tech, key tech->agent, resume secret, SAS.
3. Each side sends its confirmation tag; the other compares it in constant time. A
   mismatch is :class:`WrongCodeError`: wrong code or an attack. The caller must then
   tell the relay to burn the nameplate.
4. A relay or eavesdropper gets one online guess per attempt and nothing to brute
   force offline: the code is never used as a key directly.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from dataclasses import dataclass, field

import spake2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .code import SessionCode
from .envelope import Role
from .errors import LocalProtocolError, MalformedMessage, VersionMismatch, WrongCodeError

#: 2: multiplexer fragments of up to 256 KiB (version 1 refused those over 64 KiB).
PROTOCOL_VERSION = 2
PROTOCOL_ID = b"puente/1"

#: SPAKE2 (Ed25519 group) messages are one side byte and a 32-byte point.
SPAKE_MESSAGE_SIZE = 33
CONFIRM_SIZE = 32
SAS_DIGITS = 8


def _lp(*parts: bytes) -> bytes:
    """Length-prefix each part so that no two transcripts can collide."""
    return b"".join(struct.pack(">I", len(p)) + p for p in parts)


def _hkdf(key: bytes, salt: bytes, label: bytes, length: int = 32) -> bytes:
    return HKDF(hashes.SHA256(), length, salt, PROTOCOL_ID + b" " + label).derive(key)


@dataclass(frozen=True)
class SessionKeys:
    """Everything the secure channel needs, derived from one successful pairing."""

    role: Role
    session_id: bytes
    transcript_hash: bytes
    send_key: bytes = field(repr=False)
    recv_key: bytes = field(repr=False)
    resume_secret: bytes = field(repr=False)
    sas: str

    @property
    def session_id_hex(self) -> str:
        return self.session_id.hex()


def short_authentication_string(raw: bytes) -> str:
    """Eight digits in two groups, easy to read aloud on the phone: ``4821 9301``."""
    number = int.from_bytes(raw, "big") % 10**SAS_DIGITS
    digits = f"{number:0{SAS_DIGITS}d}"
    return f"{digits[:4]} {digits[4:]}"


def derive_session_keys(
    role: Role, shared: bytes, th: bytes, label_prefix: bytes = b""
) -> SessionKeys:
    """The session keys from a shared secret and a transcript hash (rule 2).

    HKDF-SHA256(shared, salt=th) under ``label_prefix`` + the labels ``key agent to
    technician``, ``key technician to agent``, ``resume`` and ``sas``; session id =
    ``th[:16]``. The code-less pairing (:mod:`protocol.cert_pairing`) uses its own prefix.
    """
    key_a2t = _hkdf(shared, th, label_prefix + b"key agent to technician")
    key_t2a = _hkdf(shared, th, label_prefix + b"key technician to agent")
    agent = role is Role.AGENT
    return SessionKeys(
        role=role,
        session_id=th[:16],
        transcript_hash=th,
        send_key=key_a2t if agent else key_t2a,
        recv_key=key_t2a if agent else key_a2t,
        resume_secret=_hkdf(shared, th, label_prefix + b"resume"),
        sas=short_authentication_string(_hkdf(shared, th, label_prefix + b"sas", 8)),
    )


class Pairing:
    """One side of the pairing. Sans-I/O: bytes in, bytes out.

    Use: ``msg = p.start()``; send it. On the peer's PAKE message,
    ``tag = p.receive_pake(msg)``; send the tag. On the peer's tag,
    ``keys = p.receive_confirm(tag)`` (raises :class:`WrongCodeError`).
    """

    def __init__(self, role: Role, code: SessionCode, ticket_id: str) -> None:
        self.role = role
        self._code = code
        self._ticket = ticket_id.encode("utf-8")
        password = _lp(PROTOCOL_ID + b" pake", self._ticket, str(code).encode("ascii"))
        id_a = _lp(b"agent", self._ticket)
        id_b = _lp(b"technician", self._ticket)
        cls = spake2.SPAKE2_A if role is Role.AGENT else spake2.SPAKE2_B
        self._spake = cls(password, idA=id_a, idB=id_b)
        self._outbound: bytes | None = None
        self._keys: SessionKeys | None = None
        self._expected_tag: bytes | None = None
        self._done = False

    def start(self) -> bytes:
        """Our PAKE message: protocol version byte, then the SPAKE2 message."""
        if self._outbound is not None:
            raise LocalProtocolError("pairing already started")
        self._outbound = self._spake.start()
        return bytes([PROTOCOL_VERSION]) + self._outbound

    def receive_pake(self, message: bytes) -> bytes:
        """Take the peer's PAKE message; return our confirmation tag to send."""
        if self._outbound is None or self._keys is not None:
            raise LocalProtocolError("receive_pake() needs start() first, and only once")
        if len(message) < 1:
            raise MalformedMessage("empty PAKE message")
        if message[0] != PROTOCOL_VERSION:
            raise VersionMismatch(PROTOCOL_VERSION, message[0])
        inbound = bytes(message[1:])
        if len(inbound) != SPAKE_MESSAGE_SIZE:
            raise MalformedMessage("PAKE message has the wrong size")
        try:
            shared = self._spake.finish(inbound)
        except Exception as exc:  # spake2 raises assorted errors on hostile points
            raise MalformedMessage(f"invalid PAKE message: {type(exc).__name__}") from exc

        if self.role is Role.AGENT:
            msg_a, msg_b = self._outbound, inbound
        else:
            msg_a, msg_b = inbound, self._outbound
        th = hashlib.sha256(
            _lp(PROTOCOL_ID, self._code.nameplate.encode(), self._ticket, msg_a, msg_b)
        ).digest()
        confirm_agent = _hkdf(shared, th, b"confirm agent")
        confirm_tech = _hkdf(shared, th, b"confirm technician")
        agent = self.role is Role.AGENT
        self._keys = derive_session_keys(self.role, shared, th)
        self._expected_tag = confirm_tech if agent else confirm_agent
        return confirm_agent if agent else confirm_tech

    def receive_confirm(self, tag: bytes) -> SessionKeys:
        """Check the peer's confirmation tag; return the session keys."""
        if self._keys is None or self._expected_tag is None or self._done:
            raise LocalProtocolError("receive_confirm() needs receive_pake() first, and only once")
        self._done = True
        if len(tag) != CONFIRM_SIZE or not hmac.compare_digest(bytes(tag), self._expected_tag):
            raise WrongCodeError()
        return self._keys
