"""What this agent trusts: the pinned organisation key and its revocation list.

An agent started with ``--org-key FILE`` (later: built into an organisation's
installer) pins that Ed25519 public key. Then:

* the technician must present a certificate signed by it, not expired and not
  revoked, and sign this session's pairing transcript with the certificate's key;
  otherwise the session ends before anything is shown or asked;
* fixes run only when that key signed them (:mod:`agent.capabilities.fixes`).

Without a pinned key the customer sees a prominent "not verified" warning and fixes
are refused (there is nothing to check a fix's signature against).

Before pairing the agent fetches the organisation's revocation list from the relay
(``GET /revocations/{key_id}``). The relay cannot forge it (it is signed); a list
that fails verification stops the agent. A relay can withhold the list (404 looks
like "none published"); short certificate lifetimes bound that risk.
"""

from __future__ import annotations

import ssl as ssl_module
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from agent.errors import TrustSetupError
from link.connection import http_url, untrusted_certificate
from protocol.errors import TrustError
from protocol.identity import (
    Certificate,
    key_id,
    load_public_key,
    short_key_id,
    verify_certificate,
    verify_revocation_list,
    verify_transcript,
)

#: How long the agent waits for the relay to hand over the revocation list.
FETCH_TIMEOUT = 15.0


def current_platform() -> str:
    """This computer's platform as fix manifests name it: linux, macos or windows."""
    if sys.platform.startswith("win"):
        return "windows"
    if sys.platform == "darwin":
        return "macos"
    return "linux"


@dataclass
class AgentTrust:
    """The pinned key (or none) and the certificate serials its organisation revoked."""

    organisation_key: Ed25519PublicKey | None = None
    revoked: frozenset[str] = frozenset()
    revocation_number: int | None = None
    clock: Callable[[], float] = field(default=time.time)
    platform: str = field(default_factory=current_platform)

    @property
    def pinned(self) -> bool:
        return self.organisation_key is not None

    @property
    def key_id(self) -> str:
        return key_id(self.organisation_key) if self.organisation_key else ""

    def now(self) -> int:
        return int(self.clock())

    def verify_technician(
        self, certificate: bytes, signature: bytes, transcript_hash: bytes
    ) -> Certificate:
        """The technician's verified certificate; raises TrustError saying why not."""
        if self.organisation_key is None:
            raise TrustError("This agent has no organisation key to check certificates with.")
        verified = verify_certificate(certificate, self.organisation_key, self.now(), self.revoked)
        verify_transcript(verified, transcript_hash, signature)
        return verified


def load_pinned_key(path: Path) -> Ed25519PublicKey:
    """Read the organisation's public key file; TrustSetupError says what to do."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise TrustSetupError(
            f"Cannot read the organisation key {path} ({exc.strerror or exc}); check --org-key."
        ) from None
    try:
        return load_public_key(data)
    except TrustError as exc:
        raise TrustSetupError(f"{path}: {exc}") from None


def fetch_revocations(
    relay_url: str, organisation_key: Ed25519PublicKey, ssl: ssl_module.SSLContext | None = None
) -> tuple[frozenset[str], int | None]:
    """The revoked serials the relay holds for this organisation (and the list's number).

    Blocking (call it in a thread). A 404 means no list was published. Anything the
    pinned key did not sign raises TrustSetupError: the relay is not to be trusted.
    """
    url = f"{http_url(relay_url.rstrip('/'))}/revocations/{key_id(organisation_key)}"
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=FETCH_TIMEOUT, context=ssl) as response:
            body = response.read(256 * 1024)
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return frozenset(), None
        raise TrustSetupError(
            f"The relay did not hand over your organisation's revocation list (HTTP {exc.code}); "
            "try again later or contact your help desk."
        ) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        if isinstance(reason, ssl_module.SSLCertVerificationError):
            raise TrustSetupError(untrusted_certificate(relay_url, reason)) from None
        raise TrustSetupError(
            f"Could not reach the relay at {relay_url} to check revoked technicians ({reason}); "
            "check the address and your network connection, then try again."
        ) from None
    try:
        revocations = verify_revocation_list(body, organisation_key)
    except TrustError as exc:
        raise TrustSetupError(
            "The relay handed over a revocation list that your organisation "
            f"(key {short_key_id(key_id(organisation_key))}) did not sign ({exc}). "
            "Do not continue; contact your help desk by phone."
        ) from None
    return revocations.certificates, revocations.number
