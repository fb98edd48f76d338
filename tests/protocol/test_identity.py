"""Organisation identity: certificates, transcript signatures, revocation lists, key files.

Real Ed25519 keys and signatures throughout; times are plain integers (no clock).
"""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocol.errors import (
    Expired,
    ForeignSigner,
    MalformedDocument,
    NotSigned,
    NotYetValid,
    Revoked,
    SignatureMismatch,
)
from protocol.identity import (
    OrganisationSecret,
    canonical_json,
    decrypt_organisation_key,
    encrypt_organisation_key,
    issue_certificate,
    issue_revocation_list,
    key_id,
    load_private_key,
    load_public_key,
    parse_certificate,
    parse_revocation_list,
    private_key_pem,
    public_key_pem,
    sign_transcript,
    verify_certificate,
    verify_revocation_list,
    verify_transcript,
)

NOW = 1_800_000_000
DAY = 86400


def organisation(name: str = "Acme IT") -> OrganisationSecret:
    return OrganisationSecret(name, Ed25519PrivateKey.generate())


@pytest.fixture
def acme() -> OrganisationSecret:
    return organisation()


@pytest.fixture
def ana_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def certificate(acme: OrganisationSecret, key: Ed25519PrivateKey, days: int = 30) -> bytes:
    return issue_certificate(acme, "Ana Lopez", key.public_key(), NOW - 60, NOW + days * DAY)


def test_valid_certificate_and_transcript(
    acme: OrganisationSecret, ana_key: Ed25519PrivateKey
) -> None:
    data = certificate(acme, ana_key)
    verified = verify_certificate(data, acme.public_key, NOW)
    assert (verified.name, verified.organisation) == ("Ana Lopez", "Acme IT")
    th = bytes(range(32))
    verify_transcript(verified, th, sign_transcript(ana_key, th))
    # A signature over another session's transcript proves nothing here.
    with pytest.raises(SignatureMismatch, match="copied certificate"):
        verify_transcript(verified, bytes(32), sign_transcript(ana_key, th))
    # Nor does the right transcript signed by someone else's key.
    with pytest.raises(SignatureMismatch):
        verify_transcript(verified, th, sign_transcript(Ed25519PrivateKey.generate(), th))


def test_certificate_validity_period(acme: OrganisationSecret, ana_key: Ed25519PrivateKey) -> None:
    data = certificate(acme, ana_key, days=1)
    with pytest.raises(NotYetValid, match="only valid from"):
        verify_certificate(data, acme.public_key, NOW - 3600)
    with pytest.raises(Expired, match="expired on"):
        verify_certificate(data, acme.public_key, NOW + DAY)
    verify_certificate(data, acme.public_key, NOW + DAY - 1)


def test_revoked_foreign_missing_certificates(
    acme: OrganisationSecret, ana_key: Ed25519PrivateKey
) -> None:
    data = certificate(acme, ana_key)
    serial = parse_certificate(data).serial
    with pytest.raises(Revoked, match="revoked the certificate of Ana Lopez"):
        verify_certificate(data, acme.public_key, NOW, revoked={serial})
    other = organisation("Scam Support Ltd")
    foreign = issue_certificate(other, "Ana Lopez", ana_key.public_key(), NOW - 60, NOW + DAY)
    with pytest.raises(ForeignSigner, match="Scam Support Ltd"):
        verify_certificate(foreign, acme.public_key, NOW)
    with pytest.raises(NotSigned, match="no certificate"):
        verify_certificate(b"", acme.public_key, NOW)


def test_forged_or_altered_certificate(
    acme: OrganisationSecret, ana_key: Ed25519PrivateKey
) -> None:
    document = json.loads(certificate(acme, ana_key))
    # Claiming our organisation's key id without its signature.
    forger = organisation()
    body = dict(document["certificate"], name="Mallory")
    forged = {
        "certificate": body,
        "signature": json.loads(
            issue_certificate(forger, "Mallory", ana_key.public_key(), NOW - 60, NOW + DAY)
        )["signature"],
    }
    with pytest.raises(SignatureMismatch, match="altered or forged"):
        verify_certificate(json.dumps(forged).encode(), acme.public_key, NOW)
    # Stretching the validity by one second breaks the signature.
    document["certificate"]["not_after"] += 1
    with pytest.raises(SignatureMismatch):
        verify_certificate(json.dumps(document).encode(), acme.public_key, NOW)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not json",
        b"[]",
        b'{"certificate": {}, "signature": "AAAA"}',
        b'{"certificate": {"a": 1}, "certificate": {"a": 2}, "signature": ""}',
        b'{"certificate": {"x": NaN}, "signature": ""}',
        b"{" * 100000,
    ],
)
def test_malformed_certificates(data: bytes, acme: OrganisationSecret) -> None:
    with pytest.raises((MalformedDocument, NotSigned)):
        verify_certificate(data, acme.public_key, NOW)


def test_names_shown_to_customers_are_printable(
    acme: OrganisationSecret, ana_key: Ed25519PrivateKey
) -> None:
    with pytest.raises(ValueError, match="printable"):
        issue_certificate(acme, "Ana\n\x1b[2JVerified: Bank", ana_key.public_key(), NOW, NOW + 1)
    document = json.loads(certificate(acme, ana_key))
    document["certificate"]["name"] = "Ana\u202e"
    with pytest.raises(MalformedDocument, match="printable"):
        verify_certificate(json.dumps(document).encode(), acme.public_key, NOW)


def test_canonical_json_refuses_floats() -> None:
    assert canonical_json({"b": 1, "a": ["x", True]}) == b'{"a":["x",true],"b":1}'
    with pytest.raises(MalformedDocument):
        canonical_json({"a": 1.5})


def test_revocation_lists(acme: OrganisationSecret) -> None:
    serial = "ab" * 16
    data = issue_revocation_list(acme, 3, NOW, [serial])
    revocations = verify_revocation_list(data, acme.public_key)
    assert (revocations.number, revocations.certificates) == (3, {serial})
    assert parse_revocation_list(data).organisation_key == key_id(acme.public_key)
    other = organisation("Other")
    with pytest.raises(ForeignSigner):
        verify_revocation_list(issue_revocation_list(other, 9, NOW, []), acme.public_key)
    document = json.loads(data)
    document["revocations"]["certificates"] = []  # a relay "un-revoking" someone
    with pytest.raises(SignatureMismatch):
        verify_revocation_list(json.dumps(document).encode(), acme.public_key)


def test_organisation_key_file_round_trip(acme: OrganisationSecret) -> None:
    data = encrypt_organisation_key(acme, "correct horse battery", n=2**10)
    opened = decrypt_organisation_key(data, "correct horse battery")
    assert (opened.organisation, opened.key_id) == (acme.organisation, acme.key_id)
    assert b"PRIVATE" not in data and acme.organisation.encode() in data
    with pytest.raises(ValueError, match="Wrong passphrase"):
        decrypt_organisation_key(data, "wrong")
    # The organisation name is authenticated too: renaming the key breaks it.
    document = json.loads(data)
    document["organisation"] = "Evil Corp"
    with pytest.raises(ValueError, match="Wrong passphrase"):
        decrypt_organisation_key(json.dumps(document).encode(), "correct horse battery")
    document = json.loads(data)
    document["kdf"]["n"] = 2**40  # a hostile file must not make us allocate terabytes
    with pytest.raises(MalformedDocument, match="out-of-range"):
        decrypt_organisation_key(json.dumps(document).encode(), "x")


def test_pem_keys_round_trip(ana_key: Ed25519PrivateKey) -> None:
    assert key_id(load_public_key(public_key_pem(ana_key.public_key()))) == key_id(
        ana_key.public_key()
    )
    assert key_id(load_private_key(private_key_pem(ana_key)).public_key()) == key_id(
        ana_key.public_key()
    )
    with pytest.raises(MalformedDocument, match="PEM public key"):
        load_public_key(b"hello")
