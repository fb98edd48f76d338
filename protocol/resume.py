"""Resuming a session after the link to the relay dropped: fresh keys, same session.

Rules (everything that affects the outcome lives here):

1. The resume secret comes from the pairing (:class:`protocol.pairing.SessionKeys`)
   and lives in memory only; it dies with the session.
2. The *resume id* is HKDF(resume secret, salt = session id, "resume id"), 16 bytes.
   Right after pairing each end gives the relay ``SHA-256(resume id)`` (the
   *verifier*); to reconnect, an end shows the relay the resume id itself. The relay
   learns nothing it could decrypt with: the id is not a key.
3. Each resume makes fresh X25519 ephemerals on both sides. A RESUME message carries
   ``version (1) || ephemeral public key (32) || frames received so far (8)``.
4. ``th_r = SHA-256`` over the protocol id, "resume", the pairing transcript hash,
   the agent's RESUME message and the technician's, each length-prefixed; so the
   counts of frames received are authenticated too (a relay that edits them to make
   one end replay old frames breaks the resume instead).
5. New keys: HKDF-SHA256(X25519 shared secret, salt = resume secret), one per label
   (confirm agent, confirm technician, key agent to technician, key technician to
   agent), each label followed by ``th_r``. Without the resume secret nobody can
   derive them, so a stranger holding the resume id still fails confirmation.
6. Confirmation tags are exchanged and compared in constant time as in pairing; a
   mismatch is :class:`ResumeRefused`, which ends the session: it is an attack or a bug.
7. The resume secret itself does not change, so a resume that was cut half way
   leaves nothing out of step: the next one starts again from the same secret.
"""

from __future__ import annotations

import hashlib
import hmac
import struct

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from .envelope import Role
from .errors import LocalProtocolError, MalformedMessage, VersionMismatch

# Raised here; named here too for callers that import it from this module.
from .errors import ResumeRefused as ResumeRefused
from .pairing import CONFIRM_SIZE, PROTOCOL_ID, PROTOCOL_VERSION, SessionKeys, _hkdf, _lp

RESUME_ID_SIZE = 16
PUBLIC_KEY_SIZE = 32
RESUME_MESSAGE_SIZE = 1 + PUBLIC_KEY_SIZE + 8


def resume_id(keys: SessionKeys) -> bytes:
    """The id an end shows the relay to reconnect to this session."""
    return _hkdf(keys.resume_secret, keys.session_id, b"resume id", RESUME_ID_SIZE)


def resume_verifier(resume_id_: bytes) -> str:
    """What the relay keeps to check a resume id: SHA-256 of it, in hex."""
    return hashlib.sha256(resume_id_).hexdigest()


class Resumption:
    """One side of one resume handshake. Sans-I/O: bytes in, bytes out.

    ``received`` is how many DATA frames this side has received in the whole session;
    the peer resends everything after it. Use: ``msg = r.start()``; send it. On the
    peer's message, ``tag = r.receive_resume(msg)``; send the tag. On the peer's tag,
    ``keys = r.receive_confirm(tag)``. :attr:`peer_received` is the peer's count,
    to be trusted only once ``receive_confirm`` returned.
    """

    def __init__(
        self, keys: SessionKeys, received: int, private_key: X25519PrivateKey | None = None
    ) -> None:
        if not 0 <= received < 1 << 64:
            raise LocalProtocolError("received count out of range")
        self.role = keys.role
        self._keys = keys
        self._private = private_key or X25519PrivateKey.generate()
        self._message = (
            bytes([PROTOCOL_VERSION])
            + self._private.public_key().public_bytes_raw()
            + struct.pack(">Q", received)
        )
        self._new_keys: SessionKeys | None = None
        self._expected_tag: bytes | None = None
        self._done = False
        self.peer_received: int | None = None

    def start(self) -> bytes:
        return self._message

    def receive_resume(self, message: bytes) -> bytes:
        """Take the peer's RESUME message; return our confirmation tag to send."""
        if self._new_keys is not None:
            raise LocalProtocolError("receive_resume() may be called only once")
        if len(message) < 1:
            raise MalformedMessage("empty RESUME message")
        if message[0] != PROTOCOL_VERSION:
            raise VersionMismatch(PROTOCOL_VERSION, message[0])
        if len(message) != RESUME_MESSAGE_SIZE:
            raise MalformedMessage("RESUME message has the wrong size")
        peer_public = X25519PublicKey.from_public_bytes(bytes(message[1 : 1 + PUBLIC_KEY_SIZE]))
        try:
            shared = self._private.exchange(peer_public)
        except ValueError as exc:  # an all-zero result: a low-order point from an attacker
            raise ResumeRefused() from exc
        (self.peer_received,) = struct.unpack(">Q", message[1 + PUBLIC_KEY_SIZE :])
        agent = self.role is Role.AGENT
        msg_agent, msg_tech = (
            (self._message, bytes(message)) if agent else (bytes(message), self._message)
        )
        th = hashlib.sha256(
            _lp(PROTOCOL_ID, b"resume", self._keys.transcript_hash, msg_agent, msg_tech)
        ).digest()
        salt = self._keys.resume_secret

        def derive(label: bytes) -> bytes:
            return _hkdf(shared, salt, b"resume " + label + b" " + th)

        confirm_agent = derive(b"confirm agent")
        confirm_tech = derive(b"confirm technician")
        key_a2t = derive(b"key agent to technician")
        key_t2a = derive(b"key technician to agent")
        self._new_keys = SessionKeys(
            role=self.role,
            session_id=th[:16],
            transcript_hash=self._keys.transcript_hash,
            send_key=key_a2t if agent else key_t2a,
            recv_key=key_t2a if agent else key_a2t,
            resume_secret=self._keys.resume_secret,
            sas=self._keys.sas,
        )
        self._expected_tag = confirm_tech if agent else confirm_agent
        return confirm_agent if agent else confirm_tech

    def receive_confirm(self, tag: bytes) -> SessionKeys:
        """Check the peer's tag; return the keys of the resumed link."""
        if self._new_keys is None or self._expected_tag is None or self._done:
            raise LocalProtocolError("receive_confirm() needs receive_resume() first, and once")
        self._done = True
        if len(tag) != CONFIRM_SIZE or not hmac.compare_digest(bytes(tag), self._expected_tag):
            raise ResumeRefused()
        return self._new_keys
