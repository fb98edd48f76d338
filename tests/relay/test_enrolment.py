"""Enrolment tokens: ``puente-relay enrolment create|list|withdraw`` on a real data
folder, and redeeming them in the same SQLite database: every refusal is a sentence
and changes nothing."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocol.device_policy import verify_policy
from protocol.identity import raw_public_key
from relay.enrolment import EnrolmentBook
from relay.errors import EnrolmentRefused
from relay.sqlite_store import DATABASE_NAME
from tests.support.device_fixtures import enrolment_token, relay_cli
from tests.support.trust_fixtures import make_organisation, tech_cli

ROOT = Path(__file__).resolve().parents[2]


def device_key() -> bytes:
    return raw_public_key(Ed25519PrivateKey.generate().public_key())


def test_a_token_enrols_as_many_devices_as_it_allows(tmp_path: Path) -> None:
    data = tmp_path / "relay"
    token = enrolment_token(data, "--uses", "2", "--valid-days", "7")
    book = EnrolmentBook(data / DATABASE_NAME)
    try:
        now = time.time()
        first = book.redeem(token, device_key(), now)
        second = book.redeem(token, device_key(), now)
        assert first.device_id != second.device_id and first.policy is None
        with pytest.raises(EnrolmentRefused, match="already used 2 time"):
            book.redeem(token, device_key(), now)
        (record,) = book.tokens()
        assert record.uses == 2  # the refusal spent nothing
        with pytest.raises(EnrolmentRefused, match="already enrolled"):
            book.redeem(
                enrolment_token(data, "--uses", "1", "--valid-days", "1"), first.public_key, now
            )
    finally:
        book.close()
    listing = relay_cli("enrolment", "list", "--data-dir", str(data), "--json")
    rows = [json.loads(line) for line in listing.stdout.splitlines()]
    assert [(r["uses"], r["uses_allowed"]) for r in rows] == [(2, 2), (0, 1)]
    assert token.split("_", 2)[2] not in listing.stdout  # secrets are never listed


def test_expired_withdrawn_and_wrong_tokens_are_refused(tmp_path: Path) -> None:
    data = tmp_path / "relay"
    token = enrolment_token(data, "--uses", "5", "--valid-days", "1")
    book = EnrolmentBook(data / DATABASE_NAME)
    try:
        later = time.time() + 2 * 86400
        with pytest.raises(EnrolmentRefused, match="has expired; ask your help desk"):
            book.redeem(token, device_key(), later)
        token_id = token.split("_")[1]
        with pytest.raises(EnrolmentRefused, match="not known to the relay"):
            book.redeem(f"pe_{token_id}_wrongsecret", device_key(), time.time())
        with pytest.raises(EnrolmentRefused, match="look like pe_"):
            book.redeem("417-862-093", device_key(), time.time())
        with pytest.raises(EnrolmentRefused, match="32-byte Ed25519"):
            book.redeem(token, b"short", time.time())
        done = relay_cli("enrolment", "withdraw", "--data-dir", str(data), token_id)
        assert done.returncode == 0 and "withdrawn" in done.stdout
        with pytest.raises(EnrolmentRefused, match="was withdrawn"):
            book.redeem(token, device_key(), time.time())
        assert book.tokens()[0].uses == 0
    finally:
        book.close()


def test_a_token_carries_the_signed_policy_to_the_device(tmp_path: Path) -> None:
    acme = make_organisation(tmp_path / "org", "Acme IT")
    signed = tmp_path / "acme.policy"
    example = ROOT / "docs" / "examples" / "device-policy.toml"
    done = tech_cli(
        "policy", "sign", str(example), "--org-key", str(acme.key), "--out", str(signed)
    )
    assert done.returncode == 0, done.stderr

    unsigned = relay_cli(
        "enrolment",
        "create", "--data-dir", str(tmp_path / "relay"), "--uses", "1", "--valid-days", "1",
        "--policy", str(example),
    )  # fmt: skip
    assert unsigned.returncode == 2
    assert "sign it first with 'puente-tech policy sign'" in unsigned.stderr

    token = enrolment_token(
        tmp_path / "relay", "--uses", "1", "--valid-days", "1", "--policy", str(signed)
    )
    book = EnrolmentBook(tmp_path / "relay" / DATABASE_NAME)
    try:
        device = book.redeem(token, device_key(), time.time())
    finally:
        book.close()
    assert device.policy is not None
    policy = verify_policy(device.policy.encode(), acme.secret().public_key)
    assert policy.unattended.mode == "ask-deny"


@pytest.mark.parametrize(
    ("args", "sentence"),
    [
        (("--uses", "0", "--valid-days", "1"), "--uses must be a whole number"),
        (("--uses", "1", "--valid-days", "999"), "--valid-days must be a whole number"),
    ],
)
def test_bad_token_settings_get_a_sentence(
    tmp_path: Path, args: tuple[str, ...], sentence: str
) -> None:
    done = relay_cli("enrolment", "create", "--data-dir", str(tmp_path), *args)
    assert done.returncode == 2 and sentence in done.stderr
