"""Exceptions of the Puente protocol core, and the relay's error codes.

Every error a user can meet reads as a sentence that says what to do. Errors we
caused (misusing the API) and errors the peer caused are different classes; the
adapters convert them at one boundary.

The tree::

    PuenteError
     ├── LocalProtocolError        this program used the protocol core wrongly (a bug)
     ├── RemoteProtocolError       the peer (or the relay) sent something invalid
     │    ├── MalformedMessage     bytes that do not decode as a Puente message
     │    ├── IntegrityError       a record failed authentication: altered, replayed,
     │    │                        dropped or reordered on the way; the session ends
     │    └── VersionMismatch      the peer speaks another protocol version
     ├── PairingError              the two ends could not agree keys
     │    ├── WrongCodeError       key confirmation failed: wrong code or an attack
     │    ├── ResumeRefused        a reconnected link could not prove it holds this
     │    │                        session's resume secret: an attack or a bug
     │    ├── HandshakeAltered     a code-less (certificate) key exchange failed its
     │    │                        encryption or MAC: altered on the way, or intercepted
     │    ├── TechnicianRefused    the agent refused the technician's certificate or its
     │    │                        signature in a code-less pairing (``__cause__``: the
     │    │                        TrustError)
     │    └── DeviceRefused        the technician refused the agent's device proof in a
     │                             code-less pairing
     ├── EnvelopeError             a relay envelope message was malformed; ``code`` is
     │                             the :class:`ErrorCode` the relay answers with
     ├── TrustError                a signed document (certificate, revocation list, fix)
     │    │                        failed verification; nothing it carried is used
     │    ├── MalformedDocument    not a well-formed key, certificate, list, fix bundle
     │    │    │                   or device policy
     │    │    └── UnknownCheckKind  a device policy names a check this agent does not know
     │    ├── NotSigned            no signature, or no certificate where one is required
     │    ├── ForeignSigner        signed by another organisation's key
     │    ├── SignatureMismatch    the bytes changed after signing, or a forged signature
     │    ├── NotYetValid          its validity period has not started
     │    ├── Expired              its validity period is over
     │    ├── Revoked              the organisation revoked it
     │    ├── MissingRole          a certificate without the role a session needs
     │    │                        (for example ``unattended``)
     │    ├── WrongPlatform        a fix made for another operating system
     │    └── RolledBack           an older version of a fix than one this agent has
     │                             already seen signed by its organisation
     ├── FixRequestError           a fix was asked for with parameters its manifest refuses
     ├── RuleError                 a knowledge-base rule file is not valid (names the
     │                             file and the rule; :mod:`protocol.triage`)
     ├── SummaryInvalid            a session summary does not fit its schema (also a
     │                             ValueError); the relay's API answers 400 with it
     └── InvalidCodeError          text a person typed is not a session code (also a
                                   ValueError, which callers catch)

``ProtocolError`` is the common base of the first three branches; property tests
check that decoders raise nothing but ``PuenteError`` subclasses.

:class:`ErrorCode` lives here too: it is why the relay refused or ended a connection,
carried by :class:`EnvelopeError` and by the envelope's ``error`` message
(:mod:`protocol.envelope`), with :data:`ERROR_SENTENCES`, what a person is told for each.
"""

from __future__ import annotations

import enum


class ErrorCode(enum.StrEnum):
    """Why the relay refused or ended a connection."""

    BAD_REQUEST = "bad_request"  # malformed envelope message
    VERSION = "version"  # envelope version not supported
    UNAUTHORIZED = "unauthorized"  # technician token missing or wrong
    UNKNOWN_NAMEPLATE = "unknown_nameplate"  # no such session code
    EXPIRED = "expired"  # the code's 10 minutes are over
    USED = "used"  # the code was already used or burnt
    ROLE_TAKEN = "role_taken"  # someone already claimed this side
    RATE_LIMITED = "rate_limited"  # too many attempts
    ENDED = "ended"  # the session was ended (REST or peer)
    IDLE = "idle"  # nothing moved for too long
    TOO_LARGE = "too_large"  # message over the size limit
    SHUTDOWN = "shutdown"  # the relay is stopping
    NOT_RESUMABLE = "not_resumable"  # no such session to resume (ended, or grace over)


#: What the customer or technician is told for each error code.
ERROR_SENTENCES: dict[ErrorCode, str] = {
    ErrorCode.BAD_REQUEST: "The relay did not understand this program; update Puente and try again.",
    ErrorCode.VERSION: "This version of Puente is not supported by the relay; download the current one.",
    ErrorCode.UNAUTHORIZED: "The relay did not accept your API token; check --token or PUENTE_TOKEN.",
    ErrorCode.UNKNOWN_NAMEPLATE: "That session code does not exist; check the digits with your technician.",
    ErrorCode.EXPIRED: "That session code has expired; ask your technician for a new one.",
    ErrorCode.USED: "That session code was already used; ask your technician for a new one.",
    ErrorCode.ROLE_TAKEN: "Someone is already connected with that code; ask your technician for a new one.",
    ErrorCode.RATE_LIMITED: "Too many attempts from this computer; wait a minute and try again.",
    ErrorCode.ENDED: "The session was ended.",
    ErrorCode.IDLE: "The session was closed because nothing happened for too long.",
    ErrorCode.TOO_LARGE: "A message was larger than the relay allows.",
    ErrorCode.SHUTDOWN: "The relay is restarting; try again in a moment.",
    ErrorCode.NOT_RESUMABLE: "The session could not be resumed: it has ended or the time to reconnect ran out.",
}


class PuenteError(Exception):
    """Base class of every error raised by the protocol core."""


class ProtocolError(PuenteError):
    """Base class of protocol violations, local or remote."""


class LocalProtocolError(ProtocolError):
    """This side used the protocol core in a way it does not allow (a bug here)."""


class RemoteProtocolError(ProtocolError):
    """The peer sent something the protocol does not allow; the session must end."""


class MalformedMessage(RemoteProtocolError):
    """Received bytes that are not a valid Puente message."""


class IntegrityError(RemoteProtocolError):
    """A record failed authentication.

    Someone on the path altered, replayed, dropped or reordered a record. Nothing
    from it was accepted; the session cannot continue.
    """

    def __init__(self, message: str = "") -> None:
        super().__init__(
            message
            or "A message failed its integrity check (altered, replayed, dropped or reordered "
            "on the way); the session was ended to keep this computer safe. Start a new session."
        )


class VersionMismatch(RemoteProtocolError):
    """The peer speaks a protocol version this program does not."""

    def __init__(self, ours: int, theirs: int) -> None:
        self.ours = ours
        self.theirs = theirs
        super().__init__(
            f"The other side speaks Puente protocol version {theirs} and this program speaks "
            f"version {ours}; update both to the current release."
        )


class PairingError(ProtocolError):
    """The two ends could not agree keys."""


class WrongCodeError(PairingError):
    """Key confirmation failed: the code was mistyped, or someone tried to intercept."""

    def __init__(self, message: str = "") -> None:
        super().__init__(
            message
            or "The session code did not match on both ends (a mistyped code, or someone "
            "tried to intercept). This code no longer works; ask for a new one."
        )


class ResumeRefused(PairingError):
    """The resume handshake failed: the other end does not hold this session's secret."""

    def __init__(self, message: str = "") -> None:
        super().__init__(
            message
            or "The reconnected link could not prove it belongs to this session (an attack or "
            "a bug); the session was ended to keep this computer safe. Start a new session."
        )


class HandshakeAltered(PairingError):
    """A code-less key exchange message failed its encryption or MAC check."""

    def __init__(self, message: str = "") -> None:
        super().__init__(
            message
            or "The key exchange was altered on the way (someone between the two computers "
            "tried to intercept it); the session was not opened. Start a new session, and "
            "tell your organisation if it happens again."
        )


class TechnicianRefused(PairingError):
    """The agent refused the technician's certificate in a code-less pairing.

    The message is the :class:`TrustError`'s sentence; ``__cause__`` is that error.
    """


class DeviceRefused(PairingError):
    """The technician refused the agent's device proof in a code-less pairing."""


class EnvelopeError(PuenteError):
    """A relay envelope message was malformed or refused."""

    def __init__(self, message: str, code: ErrorCode | None = None) -> None:
        super().__init__(message)
        self.code = code if code is not None else ErrorCode.BAD_REQUEST


class TrustError(PuenteError):
    """A signed document failed verification; nothing it carried may be used."""


class MalformedDocument(TrustError):
    """Bytes that are not a well-formed key, certificate, revocation list or fix bundle."""


class UnknownCheckKind(MalformedDocument):
    """A device policy names a check kind this agent does not know; the policy is refused."""


class NotSigned(TrustError):
    """The document carries no signature (or no certificate was presented)."""


class ForeignSigner(TrustError):
    """The document was signed by another organisation's key than the trusted one."""


class SignatureMismatch(TrustError):
    """The signature does not match the bytes: they changed after signing, or it is forged."""


class NotYetValid(TrustError):
    """The document's validity period has not started yet."""


class Expired(TrustError):
    """The document's validity period is over."""


class Revoked(TrustError):
    """The organisation revoked this certificate."""


class MissingRole(TrustError):
    """A certificate that does not name the role the session needs."""


class WrongPlatform(TrustError):
    """A fix made for other operating systems than this one."""


class RolledBack(TrustError):
    """An older signed version of a fix than one this agent has already seen."""


class FixRequestError(PuenteError):
    """A fix was asked for with parameter values its manifest does not accept."""


class RuleError(PuenteError):
    """A rule file is not valid; the message names the file and the rule."""


class SummaryInvalid(PuenteError, ValueError):
    """A session summary does not fit the schema; the message says where and why."""


class InvalidCodeError(PuenteError, ValueError):
    """The text is not a session code."""

    def __init__(self, text: str) -> None:
        super().__init__(
            f"{text!r} is not a session code; it looks like 417-862-093 "
            "(nine or more digits, dashes optional)."
        )
