"""Check details sealed by the device to its organisation's details key. Pure.

A check result's details (free bytes, matching log lines, certificate names) are
for the help desk, not for the relay. The device seals them with HPKE (RFC 9180,
base mode, single shot) — ``DHKEM(X25519, HKDF-SHA256)``, ``HKDF-SHA256``,
``ChaCha20-Poly1305``, from ``cryptography.hazmat.primitives.hpke`` — to the
organisation's X25519 *details key*, whose public half the signed device policy
names (``details_key``). The relay carries and stores the sealed bytes and sees only
which check, its kind, status and severity. Only a holder of the private details key
(the help desk: ``puente-tech devices show DEVICE --details-key KEY``) opens them.

The HPKE ``info`` binds the label, the device id, the check id and the time of the
run, so sealed details cannot be replayed onto another device, check or run without
failing to open.

Key files: the private key is a PKCS#8 PEM file (owner-only), the public key is
named in the policy as 43 characters of unpadded URL-safe base64.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hpke, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from .errors import MalformedDocument, TrustError

INFO_LABEL = b"puente/1 sealed check details\n"
#: Longest sealed text a result may carry (base64 of the HPKE output).
MAX_SEALED = 48 * 1024
_SUITE = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.CHACHA20_POLY1305)
#: Named in the docs: which construction seals the details.
CONSTRUCTION = "HPKE base mode: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20-Poly1305"


class DetailsNotOpened(TrustError):
    """Sealed details that this key cannot open (another key, or altered)."""


def new_details_key() -> X25519PrivateKey:
    return X25519PrivateKey.generate()


def public_text(key: X25519PrivateKey | X25519PublicKey) -> str:
    """The public half as the policy names it (unpadded URL-safe base64)."""
    public = key.public_key() if isinstance(key, X25519PrivateKey) else key
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def public_from_text(text: Any) -> X25519PublicKey:
    """The details key a policy names, or MalformedDocument with a sentence."""
    if isinstance(text, str) and len(text) == 43:
        try:
            raw = base64.urlsafe_b64decode(text + "=")
            return X25519PublicKey.from_public_bytes(raw)
        except (binascii.Error, ValueError):
            pass
    raise MalformedDocument(
        "The policy's details_key is not a details key; make one with "
        "'puente-tech policy details-key --out FILE' and copy the line it prints."
    )


def private_to_pem(key: X25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def private_from_pem(data: bytes) -> X25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        key = None
    if not isinstance(key, X25519PrivateKey):
        raise MalformedDocument(
            "This file is not an organisation details key (made by 'puente-tech policy "
            "details-key'); pass the private key file with --details-key."
        )
    return key


def _info(device_id: str, check: str, at: int) -> bytes:
    return INFO_LABEL + f"{device_id}\n{check}\n{at}".encode("ascii")


def seal(details: Any, recipient: X25519PublicKey, device_id: str, check: str, at: int) -> str:
    """``details`` (JSON-able) sealed to ``recipient``, as base64 text for the wire."""
    plaintext = json.dumps(details, separators=(",", ":"), sort_keys=True).encode()
    sealed = _SUITE.encrypt(plaintext, recipient, info=_info(device_id, check, at))
    text = base64.b64encode(sealed).decode("ascii")
    if len(text) > MAX_SEALED:
        return seal({"truncated": True}, recipient, device_id, check, at)
    return text


def open_sealed(text: str, key: X25519PrivateKey, device_id: str, check: str, at: int) -> Any:
    """The details sealed in ``text`` for this device, check and run, or DetailsNotOpened."""
    try:
        sealed = base64.b64decode(text.encode("ascii"), validate=True)
        plaintext = _SUITE.decrypt(sealed, key, info=_info(device_id, check, at))
        return json.loads(plaintext)
    except (binascii.Error, UnicodeEncodeError, ValueError, InvalidTag):
        raise DetailsNotOpened(
            f"The details of check {check!r} do not open with this details key (another "
            "organisation's key, or altered on the way); use the key whose public half "
            "the device's policy names."
        ) from None
