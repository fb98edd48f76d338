"""Organisation identity: keys, technician certificates, transcript signatures, revocations.

Rules (everything that decides whether a technician is trusted lives here):

1. One Ed25519 *organisation key* signs everything an agent trusts: technician
   certificates, revocation lists and fixes (:mod:`protocol.fixbundle`). An agent pins
   the organisation's public key; nothing signed by another key is accepted.
2. A signed document is a JSON object ``{"<kind>": BODY, "signature": B64}``. The
   signature covers ``LABEL ‖ canonical(BODY)``: a per-kind domain label (so a
   signature made for one kind can never pass as another) and the canonical JSON of
   the body (sorted keys, no spaces, UTF-8, only strings, integers, booleans, lists
   and objects; a repeated key makes the document malformed).
3. A technician certificate binds a name, an organisation, the technician's own
   Ed25519 public key, a validity period and a serial number. After pairing the
   technician signs ``TRANSCRIPT_LABEL ‖ th`` (the pairing transcript hash) with that
   key, so a certificate copied from another session proves nothing.
4. A revocation list names revoked certificate serials. It carries its own number;
   a higher number replaces a lower one (the relay refuses to go back).
5. Times are integer Unix seconds passed in as ``now``; nothing here reads a clock,
   a file or the network. Verification fails closed: anything unexpected raises a
   :class:`protocol.errors.TrustError` whose message says what to do.
6. The organisation's private key is stored encrypted: scrypt (n=2^16, r=8, p=1)
   derives a key from the passphrase and ChaCha20-Poly1305 seals the raw private key,
   with the file's header (format, organisation, public key, scrypt parameters) as
   associated data, so a changed header fails to open too. (PKCS#8 as written by
   ``cryptography`` uses only 2048 PBKDF2 rounds; this key deserves more.)
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import secrets
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from .errors import (
    Expired,
    ForeignSigner,
    MalformedDocument,
    MissingRole,
    NotSigned,
    NotYetValid,
    Revoked,
    SignatureMismatch,
)

CERTIFICATE_LABEL = b"puente/1 technician certificate\n"
TRANSCRIPT_LABEL = b"puente/1 technician transcript\n"
REVOCATIONS_LABEL = b"puente/1 revocation list\n"

CERTIFICATE_FORMAT = "puente-technician-certificate/1"
REVOCATIONS_FORMAT = "puente-revocation-list/1"
ORGANISATION_KEY_FORMAT = "puente-organisation-key/1"

#: Longest name or organisation accepted (both are shown to the customer).
MAX_NAME = 100
#: Largest signed document accepted (certificates are about 600 bytes).
MAX_DOCUMENT_SIZE = 64 * 1024
#: scrypt cost for new organisation keys (about 0.4 s and 64 MiB to open).
SCRYPT_N = 2**16
_SCRYPT_R, _SCRYPT_P = 8, 1
#: Largest scrypt cost accepted when opening a key file (a hostile file must not eat memory).
MAX_SCRYPT_N = 2**20


# ---------------------------------------------------------------------------
# Encoding helpers
# ---------------------------------------------------------------------------


def canonical_json(value: Any) -> bytes:
    """The one byte string a signature covers for ``value``.

    Raises :class:`MalformedDocument` for anything but strings, integers, booleans,
    lists and string-keyed objects (floats have several spellings; None is not needed).
    """
    _check_canonical(value)
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8"
    )


def _check_canonical(value: Any) -> None:
    if isinstance(value, bool | int | str):
        return
    if isinstance(value, list):
        for item in value:
            _check_canonical(item)
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise MalformedDocument("A signed document has a key that is not a string.")
            _check_canonical(item)
        return
    raise MalformedDocument(f"A signed document holds a {type(value).__name__}, which is refused.")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise MalformedDocument(f"The document repeats the key {key!r}; it is refused.")
        result[key] = value
    return result


def _refuse_constant(name: str) -> Any:
    raise MalformedDocument(f"The document holds {name}, which is refused.")


def load_json_document(data: bytes, what: str, max_size: int = MAX_DOCUMENT_SIZE) -> dict[str, Any]:
    """Strictly parse a JSON object: no repeated keys, no NaN/Infinity, size-limited."""
    if len(data) > max_size:
        raise MalformedDocument(f"This {what} is too large ({len(data)} bytes); it is refused.")
    try:
        value = json.loads(
            data.decode("utf-8"),
            object_pairs_hook=_no_duplicates,
            parse_constant=_refuse_constant,
        )
    except MalformedDocument:
        raise
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise MalformedDocument(f"This is not a {what} (it is not valid JSON).") from None
    if not isinstance(value, dict):
        raise MalformedDocument(f"This is not a {what} (not a JSON object).")
    return value


def b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def b64decode(text: Any, what: str) -> bytes:
    if not isinstance(text, str):
        raise MalformedDocument(f"{what} must be base64 text.")
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise MalformedDocument(f"{what} is not valid base64.") from None


def iso_date(seconds: int) -> str:
    """``2026-01-02 03:04 UTC``: how validity dates are shown to people."""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M UTC")


# ---------------------------------------------------------------------------
# Keys
# ---------------------------------------------------------------------------


def raw_public_key(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(key: Ed25519PublicKey) -> str:
    """The SHA-256 of the raw public key, in hex: how documents name their signer."""
    return hashlib.sha256(raw_public_key(key)).hexdigest()


def short_key_id(key_id_hex: str) -> str:
    """The first 64 bits of a key id in groups of four, for reading aloud: ``ab12 cd34 …``."""
    head = key_id_hex[:16]
    return " ".join(head[i : i + 4] for i in range(0, 16, 4))


def public_key_from_raw(data: bytes, what: str = "The public key") -> Ed25519PublicKey:
    if len(data) != 32:
        raise MalformedDocument(f"{what} is not a 32-byte Ed25519 key.")
    return Ed25519PublicKey.from_public_bytes(data)


def public_key_pem(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def load_public_key(data: bytes) -> Ed25519PublicKey:
    """An Ed25519 public key from PEM (SubjectPublicKeyInfo), as ``org init`` writes it."""
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError):
        raise MalformedDocument(
            "This is not a PEM public key; use the org.pub file written by "
            "'puente-tech org init' (or a technician's .pub file)."
        ) from None
    if not isinstance(key, Ed25519PublicKey):
        raise MalformedDocument("This public key is not an Ed25519 key; Puente uses Ed25519 only.")
    return key


def private_key_pem(key: Ed25519PrivateKey) -> bytes:
    """A technician's private key as unencrypted PKCS#8 PEM (the file must be mode 0600)."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def load_private_key(data: bytes) -> Ed25519PrivateKey:
    """A technician's Ed25519 private key from unencrypted PKCS#8 PEM."""
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise MalformedDocument(
            "This private key is encrypted; technician keys made by "
            "'puente-tech org keygen' are not (protect the file with mode 0600)."
        ) from None
    except ValueError:
        raise MalformedDocument(
            "This is not a PEM private key; use the file written by 'puente-tech org keygen'."
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise MalformedDocument("This private key is not an Ed25519 key; Puente uses Ed25519 only.")
    return key


@dataclass(frozen=True)
class OrganisationSecret:
    """The opened organisation key: what signs certificates, revocation lists and fixes."""

    organisation: str
    private_key: Ed25519PrivateKey

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self.private_key.public_key()

    @property
    def key_id(self) -> str:
        return key_id(self.public_key)


def _key_header(organisation: str, public_raw: bytes, n: int, salt: bytes) -> dict[str, Any]:
    return {
        "format": ORGANISATION_KEY_FORMAT,
        "organisation": organisation,
        "public_key": b64encode(public_raw),
        "kdf": {"name": "scrypt", "n": n, "r": _SCRYPT_R, "p": _SCRYPT_P, "salt": b64encode(salt)},
        "cipher": "chacha20-poly1305",
    }


def _passphrase_key(passphrase: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(passphrase.encode("utf-8"))


def check_organisation_name(name: str) -> str:
    """Return ``name`` stripped, or raise ValueError with what a valid name looks like."""
    name = name.strip()
    if not name or len(name) > MAX_NAME or not name.isprintable():
        raise ValueError(
            f"An organisation name must be 1 to {MAX_NAME} printable characters, "
            "for example 'Acme IT Help Desk'."
        )
    return name


def encrypt_organisation_key(
    secret: OrganisationSecret, passphrase: str, n: int = SCRYPT_N, salt: bytes | None = None
) -> bytes:
    """The organisation key file's bytes (JSON): the private key sealed by the passphrase."""
    salt = salt if salt is not None else secrets.token_bytes(16)
    public_raw = raw_public_key(secret.public_key)
    header = _key_header(check_organisation_name(secret.organisation), public_raw, n, salt)
    nonce = secrets.token_bytes(12)
    raw = secret.private_key.private_bytes(
        serialization.Encoding.Raw,
        serialization.PrivateFormat.Raw,
        serialization.NoEncryption(),
    )
    sealed = ChaCha20Poly1305(_passphrase_key(passphrase, salt, n, _SCRYPT_R, _SCRYPT_P)).encrypt(
        nonce, raw, canonical_json(header)
    )
    document = {**header, "nonce": b64encode(nonce), "encrypted_private_key": b64encode(sealed)}
    return (json.dumps(document, indent=2) + "\n").encode("utf-8")


def decrypt_organisation_key(data: bytes, passphrase: str) -> OrganisationSecret:
    """Open an organisation key file. Raises ValueError for a wrong passphrase."""
    document = load_json_document(data, "organisation key file")
    if document.get("format") != ORGANISATION_KEY_FORMAT:
        raise MalformedDocument(
            "This is not a Puente organisation key file (made by 'puente-tech org init')."
        )
    kdf = document.get("kdf")
    if not isinstance(kdf, dict) or kdf.get("name") != "scrypt":
        raise MalformedDocument("This organisation key file names an unknown key derivation.")
    n, r, p = kdf.get("n"), kdf.get("r"), kdf.get("p")
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (n, r, p)):
        raise MalformedDocument("This organisation key file has invalid scrypt parameters.")
    assert isinstance(n, int) and isinstance(r, int) and isinstance(p, int)
    if not (2 <= n <= MAX_SCRYPT_N and n & (n - 1) == 0 and 1 <= r <= 32 and 1 <= p <= 16):
        raise MalformedDocument("This organisation key file has out-of-range scrypt parameters.")
    organisation = document.get("organisation")
    if not isinstance(organisation, str):
        raise MalformedDocument("This organisation key file has no organisation name.")
    salt = b64decode(kdf.get("salt"), "The key file's salt")
    public_raw = b64decode(document.get("public_key"), "The key file's public key")
    header = {
        "format": ORGANISATION_KEY_FORMAT,
        "organisation": organisation,
        "public_key": document.get("public_key"),
        "kdf": {"name": "scrypt", "n": n, "r": r, "p": p, "salt": kdf.get("salt")},
        "cipher": document.get("cipher"),
    }
    nonce = b64decode(document.get("nonce"), "The key file's nonce")
    sealed = b64decode(document.get("encrypted_private_key"), "The encrypted key")
    if len(nonce) != 12:
        raise MalformedDocument("This organisation key file has an invalid nonce.")
    try:
        raw = ChaCha20Poly1305(_passphrase_key(passphrase, salt, n, r, p)).decrypt(
            nonce, sealed, canonical_json(header)
        )
    except InvalidTag:
        raise ValueError(
            "Wrong passphrase for the organisation key (or the key file was altered); "
            "check PUENTE_ORG_PASSPHRASE or type it again."
        ) from None
    private_key = Ed25519PrivateKey.from_private_bytes(raw)
    if raw_public_key(private_key.public_key()) != public_raw:
        raise MalformedDocument("This organisation key file's public key does not match its key.")
    return OrganisationSecret(organisation, private_key)


# ---------------------------------------------------------------------------
# Signed documents
# ---------------------------------------------------------------------------


def sign_document(kind: str, label: bytes, body: dict[str, Any], key: Ed25519PrivateKey) -> bytes:
    """``{"<kind>": body, "signature": …}`` as indented JSON bytes."""
    signature = key.sign(label + canonical_json(body))
    document = {kind: body, "signature": b64encode(signature)}
    return (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def _split_signed(data: bytes, kind: str, what: str) -> tuple[dict[str, Any], bytes]:
    document = load_json_document(data, what)
    body = document.get(kind)
    if set(document) != {kind, "signature"} or not isinstance(body, dict):
        raise MalformedDocument(f"This is not a {what}.")
    signature = b64decode(document["signature"], f"The {what}'s signature")
    if len(signature) != 64:
        raise MalformedDocument(f"The {what}'s signature is not an Ed25519 signature.")
    return body, signature


def verify_signature(key: Ed25519PublicKey, signature: bytes, message: bytes) -> bool:
    """True if ``signature`` is ``key``'s Ed25519 signature of ``message``."""
    try:
        key.verify(signature, message)
    except InvalidSignature:
        return False
    return True


def _text(body: Mapping[str, Any], name: str, what: str, limit: int = MAX_NAME) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value or len(value) > limit or not value.isprintable():
        raise MalformedDocument(f"The {what}'s {name} must be 1 to {limit} printable characters.")
    return value


def _integer(body: Mapping[str, Any], name: str, what: str) -> int:
    value = body.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise MalformedDocument(f"The {what}'s {name} must be a non-negative integer.")
    return value


def _hex_id(body: Mapping[str, Any], name: str, what: str, length: int) -> str:
    value = body.get(name)
    if (
        not isinstance(value, str)
        or len(value) != length
        or any(c not in "0123456789abcdef" for c in value)
    ):
        raise MalformedDocument(f"The {what}'s {name} must be {length} lowercase hex digits.")
    return value


# ---------------------------------------------------------------------------
# Technician certificates
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Certificate:
    """A technician certificate's content (only trust it from :func:`verify_certificate`)."""

    serial: str
    name: str
    organisation: str
    organisation_key: str  # key id of the signer
    public_key: bytes  # the technician's raw Ed25519 public key
    not_before: int
    not_after: int
    #: What the organisation allows this technician beyond attended sessions, e.g.
    #: ``("unattended",)``. Certificates made before roles existed carry none.
    roles: tuple[str, ...] = ()

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "format": CERTIFICATE_FORMAT,
            "serial": self.serial,
            "name": self.name,
            "organisation": self.organisation,
            "organisation_key": self.organisation_key,
            "public_key": b64encode(self.public_key),
            "not_before": self.not_before,
            "not_after": self.not_after,
        }
        if self.roles:  # absent when empty: older agents check the exact field set
            body["roles"] = sorted(self.roles)
        return body


_CERTIFICATE_FIELDS = set(Certificate("", "", "", "", b"", 0, 0).body())
#: Most roles one certificate may name, and the longest role name.
MAX_ROLES = 16
MAX_ROLE = 32


def check_role(role: str) -> str:
    """A role name: 1 to 32 lowercase letters, digits or dashes (``unattended``)."""
    if (
        not isinstance(role, str)
        or not 1 <= len(role) <= MAX_ROLE
        or any(c not in "abcdefghijklmnopqrstuvwxyz0123456789-" for c in role)
    ):
        raise MalformedDocument(
            f"A certificate role must be 1 to {MAX_ROLE} lowercase letters, digits or dashes "
            f"(like 'unattended'), not {str(role)[:40]!r}."
        )
    return role


def issue_certificate(
    organisation: OrganisationSecret,
    name: str,
    technician_key: Ed25519PublicKey,
    not_before: int,
    not_after: int,
    serial: str | None = None,
    roles: Collection[str] = (),
) -> bytes:
    """A signed certificate (JSON bytes) for ``name``'s key, valid in ``[not_before, not_after)``.

    ``roles`` name what the technician may do beyond attended sessions (``unattended``).
    """
    name = name.strip()
    if not name or len(name) > MAX_NAME or not name.isprintable():
        raise ValueError(f"A technician name must be 1 to {MAX_NAME} printable characters.")
    if not_after <= not_before:
        raise ValueError("A certificate must be valid for a positive length of time.")
    certificate = Certificate(
        serial=serial or secrets.token_hex(16),
        name=name,
        organisation=check_organisation_name(organisation.organisation),
        organisation_key=organisation.key_id,
        public_key=raw_public_key(technician_key),
        not_before=not_before,
        not_after=not_after,
        roles=_new_roles(roles),
    )
    if len(certificate.roles) > MAX_ROLES:
        raise ValueError(f"A certificate names at most {MAX_ROLES} roles.")
    return sign_document(
        "certificate", CERTIFICATE_LABEL, certificate.body(), organisation.private_key
    )


def _new_roles(roles: Collection[str]) -> tuple[str, ...]:
    try:
        return tuple(sorted({check_role(role) for role in roles}))
    except MalformedDocument as exc:
        raise ValueError(str(exc)) from None


def parse_certificate(data: bytes) -> Certificate:
    """Decode a certificate WITHOUT verifying it (for display only)."""
    return _parse_certificate(data)[0]


def _parse_certificate(data: bytes) -> tuple[Certificate, dict[str, Any], bytes]:
    what = "technician certificate"
    body, signature = _split_signed(data, "certificate", what)
    fields = set(body)
    if body.get("format") != CERTIFICATE_FORMAT or fields - {"roles"} != _CERTIFICATE_FIELDS:
        raise MalformedDocument(
            "This is not a Puente technician certificate (made by 'puente-tech org certify')."
        )
    certificate = Certificate(
        serial=_hex_id(body, "serial", what, 32),
        name=_text(body, "name", what),
        organisation=_text(body, "organisation", what),
        organisation_key=_hex_id(body, "organisation_key", what, 64),
        public_key=b64decode(body["public_key"], "The certificate's public key"),
        not_before=_integer(body, "not_before", what),
        not_after=_integer(body, "not_after", what),
        roles=_roles(body) if "roles" in fields else (),
    )
    public_key_from_raw(certificate.public_key, "The certificate's public key")
    return certificate, body, signature


def _roles(body: Mapping[str, Any]) -> tuple[str, ...]:
    roles = body.get("roles")
    if not isinstance(roles, list) or not 1 <= len(roles) <= MAX_ROLES:
        raise MalformedDocument(
            f"The technician certificate's roles must be a list of 1 to {MAX_ROLES} names."
        )
    checked = tuple(check_role(role) for role in roles)
    if list(checked) != sorted(set(checked)):
        raise MalformedDocument("The technician certificate's roles must be sorted and unique.")
    return checked


def verify_certificate(
    data: bytes,
    organisation_key: Ed25519PublicKey,
    now: int,
    revoked: Collection[str] = (),
    required_role: str | None = None,
) -> Certificate:
    """The certificate in ``data`` if ``organisation_key`` signed it and it is valid at ``now``.

    With ``required_role`` the certificate must also name that role.

    Raises :class:`NotSigned` for an empty certificate, :class:`ForeignSigner`,
    :class:`SignatureMismatch`, :class:`NotYetValid`, :class:`Expired`, :class:`Revoked`,
    :class:`MissingRole` or :class:`MalformedDocument`.
    """
    if not data:
        raise NotSigned(
            "The technician presented no certificate, and this computer only accepts "
            "technicians certified by its organisation."
        )
    certificate, body, signature = _parse_certificate(data)
    trusted = key_id(organisation_key)
    if certificate.organisation_key != trusted:
        raise ForeignSigner(
            f"The technician's certificate was issued by another organisation "
            f"({certificate.organisation}, key {short_key_id(certificate.organisation_key)}), "
            f"not by the one this computer trusts (key {short_key_id(trusted)})."
        )
    if not verify_signature(organisation_key, signature, CERTIFICATE_LABEL + canonical_json(body)):
        raise SignatureMismatch(
            "The technician's certificate does not carry a valid signature of this computer's "
            "organisation; it was altered or forged."
        )
    if now < certificate.not_before:
        raise NotYetValid(
            f"The technician's certificate is only valid from {iso_date(certificate.not_before)}; "
            "check the clocks of both computers."
        )
    if now >= certificate.not_after:
        raise Expired(
            f"The technician's certificate expired on {iso_date(certificate.not_after)}; "
            "the technician needs a new one from their organisation."
        )
    if certificate.serial in revoked:
        raise Revoked(
            f"The organisation revoked the certificate of {certificate.name} "
            f"(serial {certificate.serial[:8]}…)."
        )
    if required_role is not None and required_role not in certificate.roles:
        raise MissingRole(
            f"The certificate of {certificate.name} does not allow '{required_role}' sessions; "
            f"the organisation must certify them again with --role {required_role}."
        )
    return certificate


def sign_transcript(key: Ed25519PrivateKey, transcript_hash: bytes) -> bytes:
    """The technician's proof, for this session only, that it holds its certificate's key."""
    return key.sign(TRANSCRIPT_LABEL + transcript_hash)


def verify_transcript(certificate: Certificate, transcript_hash: bytes, signature: bytes) -> None:
    """Raise :class:`SignatureMismatch` unless the certificate's key signed this transcript."""
    key = public_key_from_raw(certificate.public_key, "The certificate's public key")
    if len(signature) != 64 or not verify_signature(
        key, signature, TRANSCRIPT_LABEL + transcript_hash
    ):
        raise SignatureMismatch(
            f"The technician presented {certificate.name}'s certificate but could not prove "
            "they hold its key (the session signature is wrong); it may be a copied certificate."
        )


# ---------------------------------------------------------------------------
# Revocation lists
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RevocationList:
    """Revoked certificate serials, numbered so that newer lists replace older ones."""

    organisation_key: str
    organisation_public_key: bytes
    number: int
    issued_at: int
    certificates: frozenset[str]

    def body(self) -> dict[str, Any]:
        return {
            "format": REVOCATIONS_FORMAT,
            "organisation_key": self.organisation_key,
            "organisation_public_key": b64encode(self.organisation_public_key),
            "number": self.number,
            "issued_at": self.issued_at,
            "certificates": sorted(self.certificates),
        }


_REVOCATION_FIELDS = set(RevocationList("", b"", 0, 0, frozenset()).body())
#: Most serials one list may name (keeps the list under the relay's 64 KiB body limit).
MAX_REVOKED = 1000


def issue_revocation_list(
    organisation: OrganisationSecret, number: int, issued_at: int, serials: Collection[str]
) -> bytes:
    """A signed revocation list (JSON bytes)."""
    wanted = frozenset(s.strip().lower() for s in serials)
    for serial in wanted:
        _hex_id({"serial": serial}, "serial", "revocation list", 32)
    if len(wanted) > MAX_REVOKED:
        raise ValueError(f"A revocation list names at most {MAX_REVOKED} certificates.")
    revocations = RevocationList(
        organisation.key_id,
        raw_public_key(organisation.public_key),
        number,
        issued_at,
        wanted,
    )
    return sign_document(
        "revocations", REVOCATIONS_LABEL, revocations.body(), organisation.private_key
    )


def parse_revocation_list(data: bytes) -> RevocationList:
    """A revocation list checked against the key it names itself (what a relay can check).

    The relay holds no trusted key, so it checks only that the list is well formed and
    signed by the key it carries; agents use :func:`verify_revocation_list`.
    """
    what = "revocation list"
    body, signature = _split_signed(data, "revocations", what)
    if body.get("format") != REVOCATIONS_FORMAT or set(body) != _REVOCATION_FIELDS:
        raise MalformedDocument(
            "This is not a Puente revocation list (made by 'puente-tech org revoke')."
        )
    serials = body.get("certificates")
    if not isinstance(serials, list) or len(serials) > MAX_REVOKED:
        raise MalformedDocument("The revocation list's certificates must be a list of serials.")
    checked = frozenset(_hex_id({"serial": s}, "serial", what, 32) for s in serials)
    organisation_key, public_raw = check_self_signed(body, signature, REVOCATIONS_LABEL, what)
    return RevocationList(
        organisation_key=organisation_key,
        organisation_public_key=public_raw,
        number=_integer(body, "number", what),
        issued_at=_integer(body, "issued_at", what),
        certificates=checked,
    )


def check_self_signed(
    body: Mapping[str, Any], signature: bytes, label: bytes, what: str
) -> tuple[str, bytes]:
    """The key id and raw key of an organisation list that names its own signing key
    (``organisation_key``, ``organisation_public_key``), if it is signed by that key.

    What a relay can check: it holds no trusted key. Agents then compare the key id
    with their pinned key.
    """
    public_raw = b64decode(body["organisation_public_key"], f"The {what}'s organisation key")
    public_key = public_key_from_raw(public_raw, f"The {what}'s organisation key")
    organisation_key = _hex_id(body, "organisation_key", what, 64)
    if organisation_key != key_id(public_key):
        raise MalformedDocument(f"The {what}'s key id does not match its key.")
    if not verify_signature(public_key, signature, label + canonical_json(body)):
        raise SignatureMismatch(f"The {what}'s signature does not match; it was altered or forged.")
    return organisation_key, public_raw


def check_pinned_signer(signer: str, organisation_key: Ed25519PublicKey, what: str) -> None:
    """Refuse (:class:`ForeignSigner`) an organisation document whose signing key (its
    id, ``signer``) is not the pinned ``organisation_key``."""
    if signer != key_id(organisation_key):
        raise ForeignSigner(
            f"The {what} was signed by another organisation's key, not by the one this "
            "computer trusts."
        )


def verify_revocation_list(data: bytes, organisation_key: Ed25519PublicKey) -> RevocationList:
    """The list in ``data`` if the pinned ``organisation_key`` signed it."""
    revocations = parse_revocation_list(data)
    check_pinned_signer(revocations.organisation_key, organisation_key, "revocation list")
    return revocations
