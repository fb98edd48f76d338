"""Check details sealed to the organisation's details key (HPKE): only that key opens
them, only for the device, check and run they were sealed for; a policy names the key."""

from __future__ import annotations

import pytest

from protocol import sealed_details
from protocol.device_policy import policy_from_toml
from protocol.errors import MalformedDocument
from protocol.sealed_details import DetailsNotOpened

DEVICE = "0123456789abcdef" * 2
DETAILS = {"free_bytes": 1024, "lines": ["I/O error on /dev/sda"]}


def test_only_the_details_key_opens_what_was_sealed_for_this_device_check_and_run() -> None:
    key = sealed_details.new_details_key()
    public = sealed_details.public_from_text(sealed_details.public_text(key))
    sealed = sealed_details.seal(DETAILS, public, DEVICE, "disk", 1_800_000_000)
    assert "I/O error" not in sealed and "1024" not in sealed
    assert sealed_details.open_sealed(sealed, key, DEVICE, "disk", 1_800_000_000) == DETAILS
    # Fresh ephemeral keys: the same details never seal to the same bytes twice.
    assert sealed_details.seal(DETAILS, public, DEVICE, "disk", 1_800_000_000) != sealed
    other = sealed_details.new_details_key()
    wrong = [
        (sealed, other, DEVICE, "disk", 1_800_000_000),  # another organisation's key
        (sealed, key, "f" * 32, "disk", 1_800_000_000),  # moved onto another device
        (sealed, key, DEVICE, "memory", 1_800_000_000),  # or another check
        (sealed, key, DEVICE, "disk", 1_800_000_001),  # or another run
        (sealed[:-8] + "AAAAAAA=", key, DEVICE, "disk", 1_800_000_000),  # altered
        ("not base64!", key, DEVICE, "disk", 1_800_000_000),
    ]
    for text, private, device, check, at in wrong:
        with pytest.raises(DetailsNotOpened, match="do not open with this details key"):
            sealed_details.open_sealed(text, private, device, check, at)


def test_key_files_and_the_policys_details_key() -> None:
    key = sealed_details.new_details_key()
    pem = sealed_details.private_to_pem(key)
    assert sealed_details.public_text(sealed_details.private_from_pem(pem)) == (
        sealed_details.public_text(key)
    )
    with pytest.raises(MalformedDocument, match="not an organisation details key"):
        sealed_details.private_from_pem(b"-----BEGIN PRIVATE KEY-----\nAAAA\n")
    named = f'details_key = "{sealed_details.public_text(key)}"\ndetails_to_help_desk = true\n'
    policy = policy_from_toml(named, "Acme IT", "0" * 64)
    assert policy.details_key == sealed_details.public_text(key) and policy.details_to_help_desk
    assert policy.body()["details_key"] == policy.details_key
    with pytest.raises(MalformedDocument, match="details_key is not a details key"):
        policy_from_toml('details_key = "short"\n', "Acme IT", "0" * 64)
    with pytest.raises(MalformedDocument, match="needs the organisation's details_key"):
        policy_from_toml("details_to_help_desk = true\n", "Acme IT", "0" * 64)


def test_too_much_detail_is_sealed_as_truncated() -> None:
    key = sealed_details.new_details_key()
    huge = {"lines": ["x" * 1000] * 100}
    sealed = sealed_details.seal(huge, key.public_key(), DEVICE, "log", 1)
    assert len(sealed) <= sealed_details.MAX_SEALED
    assert sealed_details.open_sealed(sealed, key, DEVICE, "log", 1) == {"truncated": True}
