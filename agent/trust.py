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

Fix versions only go up: :class:`FixVersions` keeps, per pinned organisation key, the
highest version of each fix id this agent has verified (a JSON file in the agent's
state folder, 0600). Only bundles the pinned key signed raise it, and nothing
lowers it, so neither the relay nor a technician can roll it back; an older signed
version of a fix is refused once a newer one was seen here (docs/TRUST.md says what
this cannot stop).
"""

from __future__ import annotations

import contextlib
import json
import os
import ssl as ssl_module
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from agent.errors import TrustSetupError
from link.connection import http_url, untrusted_certificate
from protocol.cert_pairing import TechnicianPolicy
from protocol.errors import TrustError
from protocol.fixbundle import VerifiedFix, check_not_older, version_key
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


def state_folder() -> Path:
    """The agent's private per-user state folder (where fix runs and records live)."""
    if os.name == "nt":
        return Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local")) / "Puente"
    state = os.environ.get("XDG_STATE_HOME")
    return (Path(state) if state else Path.home() / ".local" / "state") / "puente"


class FixVersions:
    """The highest version of each fix id this agent has verified, for one organisation key.

    Stored as ``{"fix id": "version"}`` in ``fix-versions-KEYID.json`` (0600) in the
    state folder. An unreadable or malformed record is treated as a refusal to run
    any fix rather than as "nothing seen" (deny by default).
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def for_key(cls, organisation_key_id: str, folder: Path | None = None) -> FixVersions:
        return cls((folder or state_folder()) / f"fix-versions-{organisation_key_id[:32]}.json")

    def _load(self) -> dict[str, str]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise TrustError(
                f"This computer's record of fix versions ({self.path}) cannot be read ({exc}); "
                "fixes are refused until it is repaired or removed by an administrator."
            ) from None
        if not isinstance(data, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in data.items()
        ):
            raise TrustError(
                f"This computer's record of fix versions ({self.path}) is malformed; "
                "fixes are refused until it is repaired or removed by an administrator."
            )
        return data

    def newest(self, fix_id: str) -> str | None:
        return self._load().get(fix_id)

    def check_and_record(self, fix: VerifiedFix) -> None:
        """Refuse ``fix`` (RolledBack) if a newer version was seen; else remember its version."""
        seen = self._load()
        manifest = fix.manifest
        check_not_older(fix, seen.get(manifest.id))
        current = seen.get(manifest.id)
        if current is not None and version_key(current) >= version_key(manifest.version):
            return
        seen[manifest.id] = manifest.version
        try:
            self._save(seen)
        except OSError as exc:
            raise TrustError(
                f"This computer cannot record the fix's version in {self.path} "
                f"({exc.strerror or exc}); free some disk space or check that folder, "
                "then try again."
            ) from None

    def _save(self, seen: dict[str, str]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        descriptor, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=".fix-versions-")
        try:
            with os.fdopen(descriptor, "w", encoding="utf-8") as file:
                json.dump(seen, file, sort_keys=True)
            os.chmod(temporary, 0o600)
            os.replace(temporary, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise


@dataclass
class AgentTrust:
    """The pinned key (or none) and the certificate serials its organisation revoked."""

    organisation_key: Ed25519PublicKey | None = None
    revoked: frozenset[str] = frozenset()
    revocation_number: int | None = None
    #: The highest fix versions seen for the pinned key (None: no rollback record kept).
    fix_versions: FixVersions | None = None
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

    def technician_policy(self, required_role: str | None = None) -> TechnicianPolicy:
        """What a code-less pairing accepts: this key, these revocations, ``required_role``."""
        if self.organisation_key is None:
            raise TrustError(
                "This agent has no organisation key, so it cannot pair without a code; "
                "ask your technician for a session code."
            )
        return TechnicianPolicy(self.organisation_key, self.revoked, required_role)


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
