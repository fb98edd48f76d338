"""The organisation's signature of a one-file agent it hands to customers.

An organisation signs each agent it builds (``puente-tech org sign-agent FILE --os
linux``), and the relay checks that signature against the organisation's public key
when an operator adds the agent (``puente-relay downloads add FILE --os linux
--org-key org.pub``); the join page then says whose agent the customer downloads.

Rules:

1. The signature is a signed document (:func:`protocol.identity.sign_document`) over
   the file's SHA-256, its size and the system it runs on, plus the organisation's
   name and key id, under its own label: it cannot pass for a certificate, a fix or a
   revocation list, nor for another file or another system's agent.
2. Verification fails closed with a :class:`protocol.errors.TrustError` whose message
   says what to do: another organisation's key, another file, an altered document.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from .errors import ForeignSigner, MalformedDocument, SignatureMismatch
from .identity import (
    OrganisationSecret,
    _hex_id,
    _integer,
    _split_signed,
    _text,
    canonical_json,
    check_organisation_name,
    key_id,
    short_key_id,
    sign_document,
    verify_signature,
)

RELEASE_LABEL = b"puente/1 agent release\n"
RELEASE_FORMAT = "puente-agent-release/1"
#: The systems a one-file agent is built for (the relay's downloads use the same names).
RELEASE_SYSTEMS = ("windows", "macos", "linux")


@dataclass(frozen=True)
class AgentRelease:
    """What a verified signature says: whose agent, for which file."""

    organisation: str
    organisation_key: str  # key id (hex)
    system: str
    sha256: str
    size: int
    signed_at: int

    def body(self) -> dict[str, Any]:
        return {
            "format": RELEASE_FORMAT,
            "organisation": self.organisation,
            "organisation_key": self.organisation_key,
            "system": self.system,
            "sha256": self.sha256,
            "size": self.size,
            "signed_at": self.signed_at,
        }

    @property
    def signer(self) -> str:
        """``Example Help Desk (key 1a2b 3c4d)``: how a page or a listing names the signer."""
        return f"{self.organisation} (key {short_key_id(self.organisation_key)})"


_FIELDS = set(AgentRelease("", "", "", "", 0, 0).body())


def sign_agent_release(
    organisation: OrganisationSecret, *, system: str, sha256: str, size: int, signed_at: int
) -> bytes:
    """The organisation's signature (JSON bytes) of one built agent."""
    release = AgentRelease(
        check_organisation_name(organisation.organisation),
        organisation.key_id,
        _system(system),
        _hex_id({"sha256": sha256}, "sha256", "agent signature", 64),
        size,
        signed_at,
    )
    return sign_document("release", RELEASE_LABEL, release.body(), organisation.private_key)


def verify_agent_release(
    data: bytes, organisation_key: Ed25519PublicKey, *, system: str, sha256: str, size: int
) -> AgentRelease:
    """The release ``data`` signs, if ``organisation_key`` signed it for exactly this file."""
    body, signature = _split_signed(data, "release", "agent signature")
    if set(body) != _FIELDS or body.get("format") != RELEASE_FORMAT:
        raise MalformedDocument("This is not an agent signature (unknown format or fields).")
    release = AgentRelease(
        _text(body, "organisation", "agent signature"),
        _hex_id(body, "organisation_key", "agent signature", 64),
        _system(body.get("system")),
        _hex_id(body, "sha256", "agent signature", 64),
        _integer(body, "size", "agent signature"),
        _integer(body, "signed_at", "agent signature"),
    )
    trusted = key_id(organisation_key)
    if release.organisation_key != trusted:
        raise ForeignSigner(
            f"This agent was signed by another organisation's key "
            f"({short_key_id(release.organisation_key)}), not by the one given "
            f"({short_key_id(trusted)}); give the right org.pub or sign the agent again."
        )
    if not verify_signature(organisation_key, signature, RELEASE_LABEL + canonical_json(body)):
        raise SignatureMismatch(
            "The agent's signature does not match its content (the signature file was "
            "altered); sign the agent again with 'puente-tech org sign-agent'."
        )
    if (release.sha256, release.size, release.system) != (sha256, size, system):
        raise SignatureMismatch(
            f"This signature is for another file (a {release.system} agent of "
            f"{release.size} bytes, SHA-256 {release.sha256[:16]}…), not this one; sign "
            "this build with 'puente-tech org sign-agent'."
        )
    return release


def _system(value: object) -> str:
    if value not in RELEASE_SYSTEMS:
        raise MalformedDocument(
            f"An agent signature names one system of {', '.join(RELEASE_SYSTEMS)}."
        )
    return str(value)
