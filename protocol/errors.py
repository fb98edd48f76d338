"""Exceptions of the Puente protocol core.

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
     │    └── WrongCodeError       key confirmation failed: wrong code or an attack
     ├── EnvelopeError             a relay envelope message was malformed
     ├── TrustError                a signed document (certificate, revocation list, fix)
     │    │                        failed verification; nothing it carried is used
     │    ├── MalformedDocument    not a well-formed key, certificate, list or fix bundle
     │    ├── NotSigned            no signature, or no certificate where one is required
     │    ├── ForeignSigner        signed by another organisation's key
     │    ├── SignatureMismatch    the bytes changed after signing, or a forged signature
     │    ├── NotYetValid          its validity period has not started
     │    ├── Expired              its validity period is over
     │    ├── Revoked              the organisation revoked it
     │    └── WrongPlatform        a fix made for another operating system
     ├── FixRequestError           a fix was asked for with parameters its manifest refuses
     └── SummaryInvalid            a session summary does not fit its schema (also a
                                   ValueError); the relay's API answers 400 with it

``ProtocolError`` is the common base of the first three branches; property tests
check that decoders raise nothing but ``PuenteError`` subclasses.
"""

from __future__ import annotations

from typing import Any


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


class EnvelopeError(PuenteError):
    """A relay envelope message was malformed or refused."""

    def __init__(self, message: str, code: Any = None) -> None:
        from .envelope import ErrorCode  # local import: envelope imports this module

        super().__init__(message)
        self.code = code if code is not None else ErrorCode.BAD_REQUEST


class TrustError(PuenteError):
    """A signed document failed verification; nothing it carried may be used."""


class MalformedDocument(TrustError):
    """Bytes that are not a well-formed key, certificate, revocation list or fix bundle."""


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


class WrongPlatform(TrustError):
    """A fix made for other operating systems than this one."""


class FixRequestError(PuenteError):
    """A fix was asked for with parameter values its manifest does not accept."""


class SummaryInvalid(PuenteError, ValueError):
    """A session summary does not fit the schema; the message says where and why."""
