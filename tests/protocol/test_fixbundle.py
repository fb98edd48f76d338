"""Fix manifests and signed bundles: what the agent refuses before anything runs.

Real signatures; the end-to-end refusals through a real agent are in
``test_e2e_trust.py``. Here every refusal reason is checked on its own.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocol.errors import (
    Expired,
    FixRequestError,
    ForeignSigner,
    MalformedDocument,
    NotSigned,
    NotYetValid,
    SignatureMismatch,
    WrongPlatform,
)
from protocol.fixbundle import make_bundle, parse_manifest, resolve_parameters, verify_bundle
from protocol.identity import OrganisationSecret

NOW = 1_800_000_000
EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples" / "fixes"

MANIFEST = b"""
id = "echo-args"
version = "1.2.0"
title = "Echo"
description = "Prints its arguments."
platforms = ["linux", "macos"]
interpreter = "sh"
script = "fix.sh"
timeout = 10
needs_admin = false
risk = "low"
undo = "undo.sh"

[parameters.text]
type = "string"
description = "Text to print"

[parameters.count]
type = "integer"
description = "How many times"
default = 1
min = 1
max = 5

[parameters.loud]
type = "boolean"
description = "Shout"
default = false

[parameters.colour]
type = "choice"
description = "Colour"
choices = ["red", "blue"]
default = "red"
"""
SCRIPT = b'#!/bin/sh\nprintf "%s\\n" "$@"\n'
UNDO = b"#!/bin/sh\necho undone\n"


@pytest.fixture(scope="module")
def acme() -> OrganisationSecret:
    return OrganisationSecret("Acme IT", Ed25519PrivateKey.generate())


def signed(acme: OrganisationSecret, **changes: bytes) -> bytes:
    return make_bundle(
        changes.get("manifest", MANIFEST),
        changes.get("script", SCRIPT),
        UNDO,
        signer=acme,
        signed_at=NOW - 10,
        expires_at=NOW + 86400,
    )


def flip_one_byte(bundle: bytes, field: str, index: int = -2) -> bytes:
    """Change one byte of the manifest, script or undo inside a signed bundle."""
    document = json.loads(bundle)
    data = bytearray(base64.b64decode(document[field]))
    data[index] ^= 0x20
    document[field] = base64.b64encode(bytes(data)).decode()
    return json.dumps(document).encode()


def test_signed_bundle_verifies(acme: OrganisationSecret) -> None:
    fix = verify_bundle(signed(acme), acme.public_key, NOW, "linux")
    assert fix.script == SCRIPT and fix.undo == UNDO
    assert (fix.manifest.id, fix.manifest.version, fix.organisation) == (
        "echo-args",
        "1.2.0",
        "Acme IT",
    )


@pytest.mark.parametrize("field", ["manifest", "script", "undo"])
def test_one_changed_byte_is_refused(acme: OrganisationSecret, field: str) -> None:
    tampered = flip_one_byte(signed(acme), field)
    with pytest.raises(SignatureMismatch, match="changed after it was signed"):
        verify_bundle(tampered, acme.public_key, NOW, "linux")


def test_changed_statement_is_refused(acme: OrganisationSecret) -> None:
    document = json.loads(signed(acme))
    document["statement"]["expires_at"] += 365 * 86400  # extend its life
    with pytest.raises(SignatureMismatch, match="not carry a valid signature"):
        verify_bundle(json.dumps(document).encode(), acme.public_key, NOW, "linux")


def test_unsigned_foreign_expired_future_and_platform(acme: OrganisationSecret) -> None:
    with pytest.raises(NotSigned, match="not signed"):
        verify_bundle(make_bundle(MANIFEST, SCRIPT, UNDO), acme.public_key, NOW, "linux")
    other = OrganisationSecret("Scam Support Ltd", Ed25519PrivateKey.generate())
    with pytest.raises(ForeignSigner, match="Scam Support Ltd"):
        verify_bundle(signed(other), acme.public_key, NOW, "linux")
    with pytest.raises(Expired, match="expired on"):
        verify_bundle(signed(acme), acme.public_key, NOW + 86400, "linux")
    with pytest.raises(NotYetValid, match="future"):
        verify_bundle(signed(acme), acme.public_key, NOW - 3600, "linux")
    with pytest.raises(WrongPlatform, match="not for windows"):
        verify_bundle(signed(acme), acme.public_key, NOW, "windows")
    with pytest.raises(MalformedDocument):
        verify_bundle(b"{}", acme.public_key, NOW, "linux")


def test_parameters_are_typed() -> None:
    manifest = parse_manifest(MANIFEST)
    values = resolve_parameters(manifest, {"text": "; rm -rf ~", "loud": "yes"})
    assert values == {"text": "; rm -rf ~", "count": "1", "loud": "true", "colour": "red"}
    assert list(values) == ["text", "count", "loud", "colour"]  # manifest order
    for bad, message in [
        ({}, "needs a value for text"),
        ({"text": "x", "nope": "1"}, "no parameter 'nope'"),
        ({"text": "x", "count": "9"}, "at most 5"),
        ({"text": "x", "count": "two"}, "whole number"),
        ({"text": "x", "colour": "green"}, "one of red, blue"),
        ({"text": "a\x00b"}, "NUL"),
        ({"text": "a\nb"}, "control characters"),
        ({"text": 5}, "must be text"),
    ]:
        with pytest.raises(FixRequestError, match=message):
            resolve_parameters(manifest, bad)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (b'interpreter = "cmd"', "interpreter"),
        (b"timeout = 0", "timeout"),
        (b'platforms = ["beos"]', "platforms"),
        (b'script = "../evil.sh"', "script"),
        (b'id = "Echo Args"', "id"),
        (b"surprise = true", "unknown key"),
    ],
)
def test_manifests_are_strict(change: bytes, message: str) -> None:
    key = change.split(b"=")[0].strip()
    lines = [line for line in MANIFEST.splitlines() if not line.startswith(key + b" ")]
    manifest = b"\n".join([change, *lines])
    with pytest.raises(MalformedDocument, match=message):
        parse_manifest(manifest)


def test_example_library_manifests_are_valid(acme: OrganisationSecret) -> None:
    """Every starter fix parses, signs and verifies on each platform it names."""
    manifests = sorted(EXAMPLES.glob("*/*/manifest.toml"))
    assert len(manifests) >= 15
    ids = set()
    for path in manifests:
        manifest = parse_manifest(path.read_bytes())
        ids.add(manifest.id)
        script = (path.parent / manifest.script).read_bytes()
        bundle = make_bundle(
            path.read_bytes(), script, signer=acme, signed_at=NOW, expires_at=NOW + 1
        )
        for platform in manifest.platforms:
            verify_bundle(bundle, acme.public_key, NOW, platform)
    assert ids >= {
        "flush-dns",
        "disk-cleanup",
        "restart-print-spooler",
        "renew-network",
        "resync-clock",
        "end-process",
        "show-pending-updates",
    }
