"""The relay keeps organisations' signed revocation lists and hands them to agents.

It holds no trusted key: it accepts only well-formed lists signed by the key they
name, never goes back to an older number, and serves the list to anyone. The agent's
side (refusing a list its pinned key did not sign) is checked with a real relay.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.errors import TrustSetupError
from agent.trust import fetch_revocations
from protocol.identity import OrganisationSecret, issue_revocation_list, key_id
from relay.config import RelayConfig
from relay.server import RelayServer
from relay.testing import add_technician, http_request
from tests.support.timeouts import scaled

SERIAL_A, SERIAL_B = "a1" * 16, "b2" * 16


def run(tmp_path: Path, scenario: object) -> None:
    async def main() -> None:
        config = RelayConfig(data_dir=tmp_path / "relay", port=0, close_timeout=scaled(1))
        async with RelayServer(config) as relay:
            await scenario(relay)  # type: ignore[operator]

    asyncio.run(asyncio.wait_for(main(), scaled(20)))


def test_publish_and_fetch(tmp_path: Path) -> None:
    acme = OrganisationSecret("Acme IT", Ed25519PrivateKey.generate())
    path = f"/revocations/{acme.key_id}"

    async def scenario(relay: RelayServer) -> None:
        token = add_technician(relay)
        missing = await http_request(relay, "GET", path)
        assert missing.status == 404
        assert "No revocation list has been published" in missing.json()["message"]
        first = issue_revocation_list(acme, 1, 100, [SERIAL_A])
        unauthenticated = await http_request(
            relay,
            "POST",
            "/api/revocations",
            body=first,
            headers={"Content-Type": "application/json"},
        )
        assert unauthenticated.status == 401
        reply = await http_request(
            relay, "POST", "/api/revocations", token=token, json_body=json.loads(first)
        )
        assert (reply.status, reply.json()["number"], reply.json()["revoked"]) == (200, 1, 1)
        fetched = await http_request(relay, "GET", path)  # public: agents have no token
        assert fetched.status == 200 and fetched.json() == json.loads(first)

        # Going back to an older (or the same) number is refused: no rollback via the relay.
        second = issue_revocation_list(acme, 2, 200, [SERIAL_A, SERIAL_B])
        assert (
            await http_request(
                relay, "POST", "/api/revocations", token=token, json_body=json.loads(second)
            )
        ).status == 200
        again = await http_request(
            relay, "POST", "/api/revocations", token=token, json_body=json.loads(first)
        )
        assert again.status == 409 and "already published" in again.json()["message"]

        # A list altered on the way (someone un-revoking a serial) is refused.
        forged = json.loads(issue_revocation_list(acme, 3, 300, [SERIAL_A, SERIAL_B]))
        forged["revocations"]["certificates"] = [SERIAL_A]
        bad = await http_request(relay, "POST", "/api/revocations", token=token, json_body=forged)
        assert bad.status == 400 and "signature" in bad.json()["message"]
        assert (await http_request(relay, "GET", path + "/")).status == 404  # canonical paths

        # What the agent fetches and checks against its pinned key.
        revoked, number = await asyncio.to_thread(
            fetch_revocations, f"ws://127.0.0.1:{relay.port}", acme.public_key
        )
        assert (revoked, number) == ({SERIAL_A, SERIAL_B}, 2)
        other = Ed25519PrivateKey.generate().public_key()
        assert await asyncio.to_thread(
            fetch_revocations, f"ws://127.0.0.1:{relay.port}", other
        ) == (frozenset(), None)

    run(tmp_path, scenario)


def test_agent_refuses_a_list_its_key_did_not_sign(tmp_path: Path) -> None:
    """A relay that serves another key's list under our key id is caught by the agent."""
    acme = OrganisationSecret("Acme IT", Ed25519PrivateKey.generate())
    impostor = OrganisationSecret("Acme IT", Ed25519PrivateKey.generate())

    async def scenario(relay: RelayServer) -> None:
        # Plant the impostor's list under Acme's key id, as a hostile relay's store could.
        technician, _ = relay.store.add_technician("Mallory", 1.0)
        document = issue_revocation_list(impostor, 9, 100, [])
        assert relay.store.publish_revocation_list(
            key_id(acme.public_key), 9, document.decode(), technician.id, 1.0
        )
        with pytest.raises(TrustSetupError, match="did not sign"):
            await asyncio.to_thread(
                fetch_revocations, f"ws://127.0.0.1:{relay.port}", acme.public_key
            )

    run(tmp_path, scenario)
