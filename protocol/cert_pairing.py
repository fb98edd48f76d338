"""Code-less pairing: SIGMA-I with the technician's organisation certificate.

The construction is Krawczyk's SIGMA ("SIGn-and-MAc"), in its identity-protecting
variant SIGMA-I: H. Krawczyk, "SIGMA: the 'SIGn-and-MAc' approach to authenticated
Diffie-Hellman and its use in the IKE protocols", CRYPTO 2003, section 5.2 — the shape
of IKEv2's and TLS 1.3's authenticated handshakes. Nothing here is new: ephemeral
X25519 both ways, HKDF-SHA256 over a length-prefixed transcript, each identity and its
signature sent encrypted under handshake keys, with a MAC binding that identity.

The agent is the initiator I and the technician the responder R, so the agent's
device identity (when it has one) is revealed only to a technician it has already
verified, and the technician's certificate never travels in the clear::

    I -> R   HELLO   version ‖ X                                   (X = g^x)
    R -> I   REPLY   Y ‖ AEAD_{k_t}(lp(cert, SIG_t(th1), MAC_{km_t}(cert)), ad=th1)
    I -> R   FINISH  AEAD_{k_a}(lp(dev, SIG_d(th2) | "", MAC_{km_a}(dev)), ad=th2)

Rules (everything that decides the outcome lives here):

1. ``th1 = SHA-256(lp(PROTOCOL_ID, LABEL, version, nameplate, ticket, X, Y))``: the
   rendezvous nameplate, the ticket and the protocol version are bound, so a message
   made for another session, ticket or version fails every check below.
2. Handshake keys come from HKDF-SHA256(DH(x, Y), salt=th1): ``k_t``/``k_a`` encrypt
   REPLY/FINISH (ChaCha20-Poly1305, a fresh key per message so the nonce is zero),
   ``km_t``/``km_a`` are SIGMA's MAC keys. ``th2 = SHA-256(lp(th1, REPLY))`` and
   ``th3 = SHA-256(lp(th2, FINISH))``.
3. The technician signs ``TECHNICIAN_LABEL ‖ th1`` with its certificate's key (the
   signature covers both ephemerals, so it cannot be replayed into another exchange)
   and MACs ``lp("technician", cert)``. The agent opens REPLY, verifies the certificate
   against its pinned organisation key (validity at ``now``, the revocation list, a
   required role), the signature and the MAC, or stops: :class:`TechnicianRefused`
   (certificate or signature) or :class:`HandshakeAltered` (encryption or MAC).
4. The agent answers with its device public key and a signature over
   ``DEVICE_LABEL ‖ th2`` when it has a device key, or with no identity at all
   (a help request: anonymous), and always with the MAC ``lp("agent", dev)``, which
   is also its key confirmation. The technician checks what it was told to expect
   (:class:`DeviceRefused`).
5. Session keys come from HKDF-SHA256(DH, salt=th3) with the labels of the code flow
   (:mod:`protocol.pairing`): per-direction record keys, resume secret, check code
   (SAS), and ``session_id = th3[:16]``; the result is the same :class:`SessionKeys`, so
   the secure channel, resume and multiplexer do not know which pairing ran.
6. The relay forwards these messages like any other and learns only X and Y. It holds
   no certified key, so it cannot stand in for the technician (the signature fails);
   it could stand in for an anonymous customer, which the check code read aloud and
   the request's ticket expose (docs/TRUST.md).

Sans-I/O: bytes and ``now`` in, bytes out. Use::

    agent = AgentHandshake(rendezvous, policy, now, device_key=None)
    technician = TechnicianHandshake(rendezvous, credentials)
    reply = technician.receive_hello(agent.start())
    finish = agent.receive_reply(reply)          # agent.keys, agent.technician
    technician.receive_finish(finish)            # technician.keys, technician.device_key
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from collections.abc import Collection
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from .envelope import Role
from .errors import (
    DeviceRefused,
    HandshakeAltered,
    LocalProtocolError,
    MalformedMessage,
    TechnicianRefused,
    TrustError,
    VersionMismatch,
)
from .identity import (
    MAX_DOCUMENT_SIZE,
    Certificate,
    public_key_from_raw,
    raw_public_key,
    verify_certificate,
    verify_signature,
)
from .pairing import PROTOCOL_ID, PROTOCOL_VERSION, SessionKeys, _hkdf, _lp, derive_session_keys

LABEL = b"sigma-i certificate pairing"
#: Domain labels of the two signatures (never valid as each other or as the code
#: flow's in-channel transcript signature, :data:`protocol.identity.TRANSCRIPT_LABEL`).
TECHNICIAN_LABEL = b"puente/1 sigma-i technician\n"
DEVICE_LABEL = b"puente/1 sigma-i device\n"

KEY_SIZE = 32
SIGNATURE_SIZE = 64
MAC_SIZE = 32
TAG_SIZE = 16
HELLO_SIZE = 1 + KEY_SIZE
#: The largest REPLY: a certificate of the largest accepted size plus its framing.
MAX_REPLY_SIZE = KEY_SIZE + 3 * 4 + MAX_DOCUMENT_SIZE + SIGNATURE_SIZE + MAC_SIZE + TAG_SIZE
FINISH_SIZES = (
    3 * 4 + MAC_SIZE + TAG_SIZE,  # anonymous
    3 * 4 + KEY_SIZE + SIGNATURE_SIZE + MAC_SIZE + TAG_SIZE,  # with a device key
)
_ZERO_NONCE = bytes(12)


@dataclass(frozen=True)
class Rendezvous:
    """Where and for what the two ends meet: both must agree on every field."""

    nameplate: str
    ticket_id: str


@dataclass(frozen=True)
class TechnicianPolicy:
    """What an agent accepts: its pinned organisation key, revocations, a role."""

    organisation_key: Ed25519PublicKey
    revoked: Collection[str] = ()
    #: e.g. ``"unattended"``: the certificate must name it (None: any technician).
    required_role: str | None = None


@dataclass(frozen=True)
class TechnicianProof:
    """The technician's certificate (bytes as issued) and the key it certifies."""

    certificate: bytes
    private_key: Ed25519PrivateKey = field(repr=False)


@dataclass(frozen=True)
class DeviceExpectation:
    """What a technician requires of the agent's identity.

    ``anonymous_ok``: a help request's agent may stay anonymous. ``device_key``: only
    this raw Ed25519 key is accepted (an enrolled device); None accepts any device key
    or none, as ``anonymous_ok`` says.
    """

    anonymous_ok: bool = True
    device_key: bytes | None = None


def _transcript(*parts: bytes) -> bytes:
    return hashlib.sha256(_lp(*parts)).digest()


def _mac(key: bytes, role: bytes, identity: bytes) -> bytes:
    return hmac.new(key, _lp(role, identity), hashlib.sha256).digest()


def _signed(raw_key: bytes, signature: bytes, label: bytes, th: bytes, what: str) -> bool:
    """True if ``raw_key`` (an Ed25519 public key) signed ``label ‖ th``."""
    try:
        key: Ed25519PublicKey = public_key_from_raw(raw_key, what)
    except (TrustError, ValueError):
        raise MalformedMessage(f"{what} in the key exchange is not an Ed25519 key") from None
    return len(signature) == SIGNATURE_SIZE and verify_signature(key, signature, label + th)


def _split(data: bytes, count: int, what: str) -> list[bytes]:
    """Undo :func:`_lp` for exactly ``count`` parts (MalformedMessage otherwise)."""
    parts: list[bytes] = []
    offset = 0
    for _ in range(count):
        if offset + 4 > len(data):
            raise MalformedMessage(f"the {what} message is cut short")
        (size,) = struct.unpack_from(">I", data, offset)
        offset += 4
        if offset + size > len(data):
            raise MalformedMessage(f"the {what} message is cut short")
        parts.append(data[offset : offset + size])
        offset += size
    if offset != len(data):
        raise MalformedMessage(f"the {what} message has bytes left over")
    return parts


class _Handshake:
    """What both sides share: the ephemeral key and the key schedule."""

    role: Role

    def __init__(self, rendezvous: Rendezvous) -> None:
        self._rendezvous = rendezvous
        self._ephemeral = X25519PrivateKey.generate()
        self._ephemeral_public = self._ephemeral.public_key().public_bytes_raw()
        self.keys: SessionKeys | None = None

    def _schedule(self, agent_public: bytes, technician_public: bytes) -> None:
        peer = technician_public if self.role is Role.AGENT else agent_public
        try:
            shared = self._ephemeral.exchange(X25519PublicKey.from_public_bytes(peer))
        except ValueError:  # a low-order point gives an all-zero secret
            raise MalformedMessage("the other side's key-exchange key is invalid") from None
        self._shared = shared
        self._th1 = _transcript(
            PROTOCOL_ID,
            LABEL,
            bytes([PROTOCOL_VERSION]),
            self._rendezvous.nameplate.encode("utf-8"),
            self._rendezvous.ticket_id.encode("utf-8"),
            agent_public,
            technician_public,
        )
        self._k_technician = _hkdf(shared, self._th1, b"sigma handshake key technician")
        self._k_agent = _hkdf(shared, self._th1, b"sigma handshake key agent")
        self._km_technician = _hkdf(shared, self._th1, b"sigma mac key technician")
        self._km_agent = _hkdf(shared, self._th1, b"sigma mac key agent")

    def _session_keys(self, th3: bytes) -> SessionKeys:
        return derive_session_keys(self.role, self._shared, th3, b"sigma ")


class AgentHandshake(_Handshake):
    """The agent's side (SIGMA-I initiator). Sans-I/O.

    ``device_key`` proves an enrolled device's identity; None keeps the agent anonymous.
    After :meth:`receive_reply`, :attr:`technician` is the verified certificate and
    :attr:`keys` the session keys.
    """

    role = Role.AGENT

    def __init__(
        self,
        rendezvous: Rendezvous,
        policy: TechnicianPolicy,
        now: int,
        device_key: Ed25519PrivateKey | None = None,
    ) -> None:
        super().__init__(rendezvous)
        self._policy = policy
        self._now = now
        self._device_key = device_key
        self._started = False
        self.technician: Certificate | None = None
        #: The verified certificate as the technician sent it (for the agent's log).
        self.certificate_document: bytes | None = None

    def start(self) -> bytes:
        """The HELLO message: protocol version, then our ephemeral public key."""
        if self._started:
            raise LocalProtocolError("the agent's handshake already started")
        self._started = True
        return bytes([PROTOCOL_VERSION]) + self._ephemeral_public

    def receive_reply(self, message: bytes) -> bytes:
        """Check the technician's REPLY; return our FINISH. Sets ``keys`` and ``technician``.

        Raises :class:`TechnicianRefused`, :class:`HandshakeAltered` or
        :class:`MalformedMessage`; nothing is returned then, so nothing proves us.
        """
        if not self._started or self.keys is not None:
            raise LocalProtocolError("receive_reply() needs start() first, and only once")
        message = bytes(message)
        if not KEY_SIZE + TAG_SIZE <= len(message) <= MAX_REPLY_SIZE:
            raise MalformedMessage("the technician's key-exchange reply has the wrong size")
        technician_public, sealed = message[:KEY_SIZE], message[KEY_SIZE:]
        self._schedule(self._ephemeral_public, technician_public)
        try:
            plain = ChaCha20Poly1305(self._k_technician).decrypt(_ZERO_NONCE, sealed, self._th1)
        except InvalidTag:
            raise HandshakeAltered() from None
        certificate_bytes, signature, mac = _split(plain, 3, "technician's reply")
        if not hmac.compare_digest(
            mac, _mac(self._km_technician, b"technician", certificate_bytes)
        ):
            raise HandshakeAltered()
        try:
            certificate = verify_certificate(
                certificate_bytes,
                self._policy.organisation_key,
                self._now,
                self._policy.revoked,
                self._policy.required_role,
            )
        except TrustError as exc:
            raise TechnicianRefused(str(exc)) from exc
        if not _signed(
            certificate.public_key,
            signature,
            TECHNICIAN_LABEL,
            self._th1,
            "The certificate's public key",
        ):
            raise TechnicianRefused(
                f"Someone presented {certificate.name}'s certificate but could not prove they "
                "hold its key (the key-exchange signature is wrong): the relay or the network "
                "tried to stand in for the technician. Nothing was shown or allowed."
            )
        self.technician = certificate
        self.certificate_document = certificate_bytes
        th2 = _transcript(self._th1, message)
        if self._device_key is None:
            device, device_signature = b"", b""
        else:
            device = raw_public_key(self._device_key.public_key())
            device_signature = self._device_key.sign(DEVICE_LABEL + th2)
        body = _lp(device, device_signature, _mac(self._km_agent, b"agent", device))
        finish = ChaCha20Poly1305(self._k_agent).encrypt(_ZERO_NONCE, body, th2)
        self.keys = self._session_keys(_transcript(th2, finish))
        return finish


class TechnicianHandshake(_Handshake):
    """The technician's side (SIGMA-I responder). Sans-I/O.

    After :meth:`receive_finish`, :attr:`keys` holds the session keys and
    :attr:`device_key` the agent's raw device key (None: an anonymous agent).
    """

    role = Role.TECHNICIAN

    def __init__(
        self,
        rendezvous: Rendezvous,
        proof: TechnicianProof,
        expect: DeviceExpectation | None = None,
    ) -> None:
        super().__init__(rendezvous)
        self._proof = proof
        self._expect = expect or DeviceExpectation()
        self._th2: bytes | None = None
        self._done = False
        self.device_key: bytes | None = None

    def receive_hello(self, message: bytes) -> bytes:
        """Take the agent's HELLO; return our REPLY (certificate, signature, MAC, sealed)."""
        if self._th2 is not None:
            raise LocalProtocolError("receive_hello() may be called only once")
        message = bytes(message)
        if not message:
            raise MalformedMessage("empty key-exchange hello")
        if message[0] != PROTOCOL_VERSION:
            raise VersionMismatch(PROTOCOL_VERSION, message[0])
        if len(message) != HELLO_SIZE:
            raise MalformedMessage("the agent's key-exchange hello has the wrong size")
        agent_public = message[1:]
        self._schedule(agent_public, self._ephemeral_public)
        certificate = self._proof.certificate
        signature = self._proof.private_key.sign(TECHNICIAN_LABEL + self._th1)
        body = _lp(certificate, signature, _mac(self._km_technician, b"technician", certificate))
        reply = self._ephemeral_public + ChaCha20Poly1305(self._k_technician).encrypt(
            _ZERO_NONCE, body, self._th1
        )
        self._th2 = _transcript(self._th1, reply)
        return reply

    def receive_finish(self, message: bytes) -> SessionKeys:
        """Check the agent's FINISH; return the session keys.

        Raises :class:`HandshakeAltered`, :class:`DeviceRefused` or :class:`MalformedMessage`.
        """
        if self._th2 is None or self._done:
            raise LocalProtocolError("receive_finish() needs receive_hello() first, and only once")
        self._done = True
        message = bytes(message)
        if len(message) not in FINISH_SIZES:
            raise MalformedMessage("the agent's key-exchange finish has the wrong size")
        try:
            plain = ChaCha20Poly1305(self._k_agent).decrypt(_ZERO_NONCE, message, self._th2)
        except InvalidTag:
            raise HandshakeAltered() from None
        device, signature, mac = _split(plain, 3, "agent's finish")
        if len(device) not in (0, KEY_SIZE) or (not device and signature):
            raise MalformedMessage("the agent's key-exchange finish has a malformed device key")
        if not hmac.compare_digest(mac, _mac(self._km_agent, b"agent", device)):
            raise HandshakeAltered()
        self._check_device(device, signature)
        self.device_key = device or None
        self.keys = self._session_keys(_transcript(self._th2, message))
        return self.keys

    def _check_device(self, device: bytes, signature: bytes) -> None:
        expect = self._expect
        if not device:
            if expect.anonymous_ok and expect.device_key is None:
                return
            raise DeviceRefused(
                "The customer's computer did not prove it is the enrolled device this session "
                "is for; the session was not opened."
            )
        assert self._th2 is not None
        if not _signed(device, signature, DEVICE_LABEL, self._th2, "The device key"):
            raise DeviceRefused(
                "The customer's computer presented a device key but could not prove it holds "
                "it (the key-exchange signature is wrong); the session was not opened."
            )
        if expect.device_key is not None and not hmac.compare_digest(device, expect.device_key):
            raise DeviceRefused(
                "The computer that answered is not the enrolled device this session is for "
                "(its device key differs); the session was not opened."
            )
