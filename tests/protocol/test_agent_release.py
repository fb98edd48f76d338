"""The organisation's signature of a one-file agent (protocol.agent_release)."""

from __future__ import annotations

import hashlib
import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocol.agent_release import sign_agent_release, verify_agent_release
from protocol.errors import ForeignSigner, MalformedDocument, SignatureMismatch
from protocol.identity import OrganisationSecret

SHA = hashlib.sha256(b"agent").hexdigest()


def organisation(name: str = "Acme Help Desk") -> OrganisationSecret:
    return OrganisationSecret(name, Ed25519PrivateKey.generate())


def test_a_signature_verifies_for_its_file_and_names_the_signer() -> None:
    acme = organisation()
    data = sign_agent_release(acme, system="linux", sha256=SHA, size=5, signed_at=1_800_000_000)
    release = verify_agent_release(data, acme.public_key, system="linux", sha256=SHA, size=5)
    assert release.organisation == "Acme Help Desk"
    assert release.signer.startswith("Acme Help Desk (key ")


def test_another_organisations_key_is_refused() -> None:
    data = sign_agent_release(organisation(), system="linux", sha256=SHA, size=5, signed_at=0)
    with pytest.raises(ForeignSigner, match="another organisation's key"):
        verify_agent_release(data, organisation().public_key, system="linux", sha256=SHA, size=5)


@pytest.mark.parametrize(
    ("system", "sha256", "size"),
    [("windows", SHA, 5), ("linux", hashlib.sha256(b"other").hexdigest(), 5), ("linux", SHA, 6)],
)
def test_a_signature_of_another_file_or_system_is_refused(
    system: str, sha256: str, size: int
) -> None:
    acme = organisation()
    data = sign_agent_release(acme, system="linux", sha256=SHA, size=5, signed_at=0)
    with pytest.raises(SignatureMismatch, match="another file"):
        verify_agent_release(data, acme.public_key, system=system, sha256=sha256, size=size)


def test_an_altered_signature_document_is_refused() -> None:
    acme = organisation()
    data = sign_agent_release(acme, system="linux", sha256=SHA, size=5, signed_at=0)
    document = json.loads(data)
    document["release"]["organisation"] = "Evil Corp"
    with pytest.raises(SignatureMismatch, match="altered"):
        verify_agent_release(
            json.dumps(document).encode(), acme.public_key, system="linux", sha256=SHA, size=5
        )


@pytest.mark.parametrize(
    "data", [b"", b"not json", b'{"release": {}, "signature": "AA=="}', b"\x01" * 64]
)
def test_malformed_signatures_are_refused(data: bytes) -> None:
    with pytest.raises(MalformedDocument):
        verify_agent_release(data, organisation().public_key, system="linux", sha256=SHA, size=5)


def test_signing_refuses_an_unknown_system() -> None:
    with pytest.raises(MalformedDocument, match="one system of"):
        sign_agent_release(organisation(), system="beos", sha256=SHA, size=5, signed_at=0)
