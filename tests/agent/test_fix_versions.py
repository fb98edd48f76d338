"""Rollback protection: the agent's record of the newest fix versions (agent.trust.FixVersions)."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.trust import FixVersions
from protocol.errors import RolledBack, TrustError
from protocol.fixbundle import VerifiedFix, make_bundle, verify_bundle, version_key
from protocol.identity import OrganisationSecret
from tests.protocol.test_fixbundle import MANIFEST, NOW, SCRIPT, UNDO


@pytest.fixture(scope="module")
def acme() -> OrganisationSecret:
    return OrganisationSecret("Acme IT", Ed25519PrivateKey.generate())


def fix_at(acme: OrganisationSecret, version: str) -> VerifiedFix:
    manifest = MANIFEST.replace(b'version = "1.2.0"', f'version = "{version}"'.encode())
    bundle = make_bundle(
        manifest, SCRIPT, UNDO, signer=acme, signed_at=NOW - 10, expires_at=NOW + 86400
    )
    return verify_bundle(bundle, acme.public_key, NOW, "linux")


def test_versions_are_ordered_by_their_numbers() -> None:
    ordered = ["1.0", "1.0.0", "1.0.1", "1.0.beta", "1.2.0", "1.9.2", "1.10.0", "2.0.0"]
    assert sorted(ordered, key=version_key) == ordered


def test_an_older_version_is_refused_after_a_newer_one(
    acme: OrganisationSecret, tmp_path: Path
) -> None:
    record = FixVersions.for_key("ab" * 32, tmp_path / "state")
    record.check_and_record(fix_at(acme, "1.2.0"))
    record.check_and_record(fix_at(acme, "1.2.0"))  # the same version again is fine
    record.check_and_record(fix_at(acme, "1.10.0"))
    with pytest.raises(RolledBack, match=r"version 1\.9\.2, older than version 1\.10\.0") as caught:
        record.check_and_record(fix_at(acme, "1.9.2"))
    assert "Ask your technician for the newest version." in str(caught.value)
    # The record outlives the agent process: a new reader (the next session) refuses too.
    again = FixVersions.for_key("ab" * 32, tmp_path / "state")
    assert again.newest("echo-args") == "1.10.0"
    with pytest.raises(RolledBack):
        again.check_and_record(fix_at(acme, "1.2.0"))
    assert record.path.stat().st_mode & 0o777 == 0o600
    # Another organisation's key has its own record.
    FixVersions.for_key("cd" * 32, tmp_path / "state").check_and_record(fix_at(acme, "1.0.0"))


def test_a_damaged_record_refuses_fixes(acme: OrganisationSecret, tmp_path: Path) -> None:
    record = FixVersions.for_key("ab" * 32, tmp_path)
    record.path.write_text('["not", "a", "record"]')
    with pytest.raises(TrustError, match="fixes are refused until it is repaired"):
        record.check_and_record(fix_at(acme, "1.2.0"))
    record.path.write_text("{broken")
    with pytest.raises(TrustError, match="cannot be read"):
        record.check_and_record(fix_at(acme, "1.2.0"))
