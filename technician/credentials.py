"""The technician's keys and files: organisation key, technician key and certificate.

File rules:

* Secret files (the encrypted organisation key, a technician's private key) are
  created with mode 0600 and never overwritten: an existing file is an error that
  says so, so a key is never lost by a typo.
* A technician key file readable by others is refused (as ssh does) with the
  ``chmod`` that fixes it.
* The organisation key's passphrase comes from ``PUENTE_ORG_PASSPHRASE`` when set,
  else from the terminal (``getpass``); with neither, the command stops and says so.
"""

from __future__ import annotations

import getpass
import os
import stat
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocol import messages
from protocol.errors import TrustError
from protocol.identity import (
    Certificate,
    OrganisationSecret,
    decrypt_organisation_key,
    iso_date,
    load_private_key,
    parse_certificate,
    raw_public_key,
    sign_transcript,
)

from .errors import (
    CredentialsError as CredentialsError,  # raised here; the tree is in technician.errors
)

PASSPHRASE_VARIABLE = "PUENTE_ORG_PASSPHRASE"
MIN_PASSPHRASE = 12


def write_new_file(path: Path, data: bytes, mode: int) -> None:
    """Create ``path`` with ``mode`` and write ``data``; refuse to overwrite anything."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        raise CredentialsError(
            f"{path} already exists; choose another name or move it away first "
            "(nothing was overwritten)."
        ) from None
    with os.fdopen(descriptor, "wb") as file:
        file.write(data)
    os.chmod(path, mode)  # the umask may have narrowed a public file's mode


def read_passphrase(confirm: bool = False) -> str:
    """The organisation key's passphrase: the environment, else the terminal."""
    value = os.environ.get(PASSPHRASE_VARIABLE)
    if value is None:
        if not sys.stdin.isatty():
            raise CredentialsError(
                f"The organisation key needs its passphrase: set {PASSPHRASE_VARIABLE} or run "
                "this command in a terminal."
            )
        value = getpass.getpass("Organisation key passphrase: ")
        if confirm and getpass.getpass("Type it again: ") != value:
            raise CredentialsError("The two passphrases differ; nothing was written.")
    if confirm and len(value) < MIN_PASSPHRASE:
        raise CredentialsError(
            f"Choose a passphrase of at least {MIN_PASSPHRASE} characters for the organisation "
            "key (a few random words work well)."
        )
    return value


def open_organisation_key(path: Path) -> OrganisationSecret:
    """Read and decrypt the organisation key file (asks for the passphrase)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CredentialsError(
            f"Cannot read the organisation key {path} ({exc.strerror or exc}); check --org-key."
        ) from None
    passphrase = read_passphrase()
    try:
        return decrypt_organisation_key(data, passphrase)
    except TrustError as exc:
        raise CredentialsError(f"{path}: {exc}") from None
    except ValueError as exc:
        raise CredentialsError(str(exc)) from None


def read_private_key(path: Path) -> Ed25519PrivateKey:
    """A technician's private key file (refused if others can read it)."""
    try:
        info = os.stat(path)
        data = path.read_bytes()
    except OSError as exc:
        raise CredentialsError(
            f"Cannot read the key {path} ({exc.strerror or exc}); check --key or PUENTE_KEY."
        ) from None
    if os.name != "nt" and info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise CredentialsError(
            f"{path} can be read by other users of this computer; protect it with "
            f"'chmod 600 {path}' and try again."
        )
    try:
        return load_private_key(data)
    except TrustError as exc:
        raise CredentialsError(f"{path}: {exc}") from None


@dataclass(frozen=True)
class TechnicianCredentials:
    """A certificate and the private key that belongs to it."""

    certificate_bytes: bytes
    certificate: Certificate
    private_key: Ed25519PrivateKey

    def identity(self, transcript_hash: bytes) -> messages.Identity:
        """The ``Identity`` message for the session with this transcript hash."""
        return messages.Identity(
            self.certificate_bytes, sign_transcript(self.private_key, transcript_hash)
        )


def load_credentials(
    cert_path: Path, key_path: Path, now: float | None = None
) -> TechnicianCredentials:
    """Load ``--cert`` and ``--key``; check that they belong together and are in date."""
    try:
        certificate_bytes = cert_path.read_bytes()
    except OSError as exc:
        raise CredentialsError(
            f"Cannot read the certificate {cert_path} ({exc.strerror or exc}); "
            "check --cert or PUENTE_CERT."
        ) from None
    return check_pair(
        certificate_bytes, read_private_key(key_path), str(cert_path), str(key_path), now
    )


def check_pair(
    certificate_bytes: bytes,
    private_key: Ed25519PrivateKey,
    cert_name: str,
    key_name: str,
    now: float | None = None,
) -> TechnicianCredentials:
    """A certificate and a key (from files or the credential store): they must belong
    together and the certificate must be in date. ``cert_name``/``key_name`` say where
    each came from, in the sentences."""
    try:
        certificate = parse_certificate(certificate_bytes)
    except TrustError as exc:
        raise CredentialsError(f"{cert_name}: {exc}") from None
    if raw_public_key(private_key.public_key()) != certificate.public_key:
        raise CredentialsError(
            f"The key {key_name} does not belong to the certificate {cert_name}; "
            "pass the key you sent for certification."
        )
    moment = int(time.time() if now is None else now)
    if moment >= certificate.not_after:
        raise CredentialsError(
            f"Your certificate expired on {iso_date(certificate.not_after)}; ask your "
            "organisation for a new one ('puente-tech org certify')."
        )
    return TechnicianCredentials(certificate_bytes, certificate, private_key)
