"""Sign in once: the relay address and API token, kept in the credential store.

The token is handed to the ``keyring`` package (the operating system's credential
store: Secret Service, macOS Keychain, Windows Credential Manager) and never written
to a file of the viewer's; the relay address is kept beside it under the same
service name. A computer without a usable store signs in for the run only, and
says so.

:func:`check_sign_in` asks the relay's REST API for the technician's sessions: it is
both the proof that the token works and the first content of "My sessions". Its
failures are the client library's errors; :func:`sign_in_problem` turns them into
the sentence the window shows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import keyring
import keyring.errors

from link.errors import LinkError, RelayUnavailable

from ..client import RelayAPI
from ..errors import RelayApiError
from .i18n import tr

#: The service name the viewer's entries are stored under in the credential store.
SERVICE = "puente-viewer"
_RELAY_ENTRY = "relay"


def _token_entry(relay: str) -> str:
    return f"token for {relay}"


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


def forget() -> None:
    """Remove the remembered token and address (signing out)."""
    relay = None
    try:
        relay = keyring.get_password(SERVICE, _RELAY_ENTRY)
        for entry in ([_token_entry(relay)] if relay else []) + [_RELAY_ENTRY]:
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
