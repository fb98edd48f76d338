"""Sign in once: the relay address and API token, kept in the credential store.

The token is handed to the ``keyring`` package (the operating system's credential
store: Secret Service, macOS Keychain, Windows Credential Manager) and never written
to a file of the viewer's; the relay address is kept beside it under the same
service name. A technician who signs in with their organisation certificate and key
(``--cert``/``--key``) has both kept there too (the key as PKCS#8 PEM, the certificate
base64), so later starts need neither file; they are checked again
(:func:`technician.credentials.check_pair`) each time they are read back. A computer without a usable store signs in for the run only, and
says so.

:func:`check_sign_in` asks the relay's REST API for the technician's sessions: it is
both the proof that the token works and the first content of "My sessions". Its
failures are the client library's errors; :func:`sign_in_problem` turns them into
the sentence the window shows.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import keyring
import keyring.errors
from cryptography.hazmat.primitives import serialization

from link.errors import LinkError, RelayUnavailable
from protocol.errors import TrustError
from protocol.identity import load_private_key

from ..client import RelayAPI
from ..credentials import CredentialsError, TechnicianCredentials, check_pair
from ..errors import RelayApiError
from .i18n import tr

#: The service name the viewer's entries are stored under in the credential store.
SERVICE = "puente-viewer"
_RELAY_ENTRY = "relay"


def _token_entry(relay: str) -> str:
    return f"token for {relay}"


def _certificate_entry(relay: str) -> str:
    return f"certificate for {relay}"


def _key_entry(relay: str) -> str:
    return f"key for {relay}"


@dataclass(frozen=True)
class SignIn:
    """A relay address and the technician's API token for it."""

    relay: str
    token: str

    def __repr__(self) -> str:  # the token never lands in a log or a traceback
        return f"SignIn(relay={self.relay!r}, token=<hidden>)"


def remember(sign_in: SignIn) -> str | None:
    """Store ``sign_in`` in the credential store; None, or the sentence saying why not."""
    try:
        keyring.set_password(SERVICE, _token_entry(sign_in.relay), sign_in.token)
        keyring.set_password(SERVICE, _RELAY_ENTRY, sign_in.relay)
    except keyring.errors.KeyringError as exc:
        return tr("signin.no_store", problem=str(exc) or type(exc).__name__)
    return None


def recall() -> SignIn | None:
    """The remembered sign-in, or None (nothing stored, or no usable store)."""
    try:
        relay = keyring.get_password(SERVICE, _RELAY_ENTRY)
        token = keyring.get_password(SERVICE, _token_entry(relay)) if relay else None
    except keyring.errors.KeyringError:
        return None
    if not relay or not token:
        return None
    return SignIn(relay, token)


def remember_identity(relay: str, credentials: TechnicianCredentials) -> str | None:
    """Keep the certificate and key for ``relay`` in the store; None, or why not."""
    key = credentials.private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    try:
        keyring.set_password(SERVICE, _key_entry(relay), key.decode("ascii"))
        certificate = base64.b64encode(credentials.certificate_bytes).decode("ascii")
        keyring.set_password(SERVICE, _certificate_entry(relay), certificate)
    except keyring.errors.KeyringError as exc:
        return tr("signin.no_store", problem=str(exc) or type(exc).__name__)
    return None


def recall_identity(relay: str) -> TechnicianCredentials | str | None:
    """The certificate and key kept for ``relay``: None when none are, or the sentence
    saying why the kept ones cannot be used (expired, not a pair)."""
    try:
        key_text = keyring.get_password(SERVICE, _key_entry(relay))
        certificate_text = keyring.get_password(SERVICE, _certificate_entry(relay))
    except keyring.errors.KeyringError:
        return None
    if not key_text or not certificate_text:
        return None
    try:
        key = load_private_key(key_text.encode("ascii"))
        certificate = base64.b64decode(certificate_text, validate=True)
        return check_pair(certificate, key, "the kept certificate", "the kept key")
    except (TrustError, ValueError) as exc:
        return tr("signin.identity_unusable", problem=str(exc))
    except CredentialsError as exc:
        return tr("signin.identity_unusable", problem=str(exc))


def forget() -> None:
    """Remove the remembered token, address, certificate and key (signing out)."""
    relay = None
    try:
        relay = keyring.get_password(SERVICE, _RELAY_ENTRY)
        kept = [_token_entry(relay), _certificate_entry(relay), _key_entry(relay)] if relay else []
        for entry in kept + [_RELAY_ENTRY]:
            try:
                keyring.delete_password(SERVICE, entry)
            except keyring.errors.PasswordDeleteError:
                pass  # already gone
    except keyring.errors.KeyringError:
        pass


def check_sign_in(sign_in: SignIn) -> list[dict[str, Any]]:
    """The technician's sessions from the relay (blocking; proves the token works)."""
    return RelayAPI(sign_in.relay, sign_in.token).list_sessions()


def sign_in_problem(relay: str, exc: Exception) -> str:
    """The plain sentence for a failed sign-in."""
    if isinstance(exc, RelayApiError) and exc.status == 401:
        return tr("signin.wrong_token")
    if isinstance(exc, RelayUnavailable):
        return tr("signin.unreachable", relay=relay)
    if isinstance(exc, (RelayApiError, LinkError)):
        return str(exc)
    return tr("signin.unreachable", relay=relay)
