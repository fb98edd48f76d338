"""Code-less pairing on loopback: a real relay process, real links, a recording proxy,
and a relay stand-in (a real WebSocket server) that substitutes its own key exchange.

Issue 17, acceptance 4: the stand-in is detected by both ends, and a technician
certificate from another organisation is refused by the agent.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from websockets.asyncio.server import ServerConnection, serve

from link.connection import Link
from link.errors import SessionLost
from protocol import envelope
from protocol.cert_pairing import (
    AgentHandshake,
    DeviceExpectation,
    Rendezvous,
    TechnicianHandshake,
    TechnicianPolicy,
    TechnicianProof,
)
from protocol.errors import DeviceRefused, ForeignSigner, TechnicianRefused
from protocol.identity import (
    OrganisationSecret,
    issue_certificate,
    private_key_pem,
    raw_public_key,
)
from protocol.mux import Channel
from protocol.session import Wire
from technician.client import RelayAPI
from tests.support.proxy import RecordingProxy
from tests.support.relay import RelayProcess
from tests.support.timeouts import scaled

TICKET = "HD-17"
SECRET = b"customer diagnostics: disk 97% full, password=hunter2"


def organisation(name: str) -> OrganisationSecret:
    return OrganisationSecret(name, Ed25519PrivateKey.generate())


def technician_proof(org: OrganisationSecret, name: str = "Ana Certified") -> TechnicianProof:
    key = Ed25519PrivateKey.generate()
    now = int(time.time())
    certificate = issue_certificate(org, name, key.public_key(), now - 3600, now + 86400)
    return TechnicianProof(certificate, key)


async def open_code_less(
    relay: RelayProcess,
    agent_url: str,
    tech_url: str,
    policy: TechnicianPolicy,
    proof: TechnicianProof,
    *,
    device_key: Ed25519PrivateKey | None = None,
    expect: DeviceExpectation | None = None,
) -> tuple[Link, Link]:
    """A session made by the technician's API call; both ends claim its nameplate."""
    token = relay.add_technician("desk account 7")  # not the certificate's name
    created = await asyncio.to_thread(RelayAPI(relay.ws_url, token).create_session, TICKET)
    nameplate = created["nameplate"]
    tech_task = asyncio.create_task(
        Link.open_certified(
            tech_url, nameplate, proof=proof, expect=expect, ticket_id=TICKET, token=token
        )
    )
    try:
        agent = await asyncio.wait_for(
            Link.open_certified(
                agent_url, nameplate, technician_policy=policy, device_key=device_key
            ),
            scaled(20),
        )
    except BaseException:
        tech_task.cancel()
        await asyncio.gather(tech_task, return_exceptions=True)
        raise
    tech = await asyncio.wait_for(tech_task, scaled(20))
    return agent, tech


def test_a_code_less_session_through_the_real_relay_shows_it_nothing(
    relay_process: RelayProcess, tmp_path: Path
) -> None:
    """Acceptance 1's pairing half: no code typed; the recording proxy in front of the
    relay sees no content, no certificate and no private key material."""
    org = organisation("Acme Help Desk")
    proof = technician_proof(org)
    device = Ed25519PrivateKey.generate()

    async def scenario() -> None:
        with RecordingProxy("127.0.0.1", relay_process.port) as proxy:
            agent, tech = await open_code_less(
                relay_process,
                proxy.url,
                proxy.url,
                TechnicianPolicy(org.public_key),
                proof,
                device_key=device,
                expect=DeviceExpectation(device_key=raw_public_key(device.public_key())),
            )
            assert agent.code_less and tech.code_less
            assert agent.sas == tech.sas  # both show the same check code
            assert agent.technician_certificate is not None
            assert agent.technician_certificate.name == "Ana Certified"
            assert tech.device_key == raw_public_key(device.public_key())
            assert agent.keys.transcript_hash == tech.keys.transcript_hash
            await agent.send(Channel.DIAGNOSTICS, SECRET)
            assert await asyncio.wait_for(tech.receive(Channel.DIAGNOSTICS), scaled(10)) == SECRET
            await tech.send(Channel.CHAT, b"hola, te ayudo")
            assert await asyncio.wait_for(agent.receive(Channel.CHAT), scaled(10)) == (
                b"hola, te ayudo"
            )
            await tech.close("done")
            await agent.wait_closed()
            recorded = proxy.recorded
        technician_key_raw = proof.private_key.private_bytes_raw()
        device_key_raw = device.private_bytes_raw()
        forbidden = {
            "content": SECRET,
            "chat": b"hola, te ayudo",
            "certificate": proof.certificate[:60],
            "technician's name": b"Ana Certified",
            "technician private key": technician_key_raw,
            "technician private key PEM": private_key_pem(proof.private_key)[30:90],
            "device private key": device_key_raw,
            "device public key": raw_public_key(device.public_key()),
        }
        for what, needle in forbidden.items():
            assert needle not in recorded, f"the relay saw the {what}"
        # Nothing of it rests at the relay either (its SQLite store and its log).
        stored = b"".join(p.read_bytes() for p in relay_process.data_dir.rglob("*") if p.is_file())
        for what, needle in forbidden.items():
            assert needle not in stored, f"the relay stored the {what}"

    asyncio.run(scenario())


def test_a_certificate_from_another_organisation_is_refused_by_the_agent(
    relay_process: RelayProcess,
) -> None:
    ours, theirs = organisation("Acme Help Desk"), organisation("Scam Support Ltd")

    async def scenario() -> None:
        with pytest.raises(SessionLost) as agent_error:
            await open_code_less(
                relay_process,
                relay_process.ws_url,
                relay_process.ws_url,
                TechnicianPolicy(ours.public_key),
                technician_proof(theirs, "Fake Technician"),
            )
        return agent_error.value

    error = asyncio.run(scenario())
    assert "another organisation" in str(error) and "Scam Support Ltd" in str(error)
    assert isinstance(error.__cause__, TechnicianRefused)
    assert isinstance(error.__cause__.__cause__, ForeignSigner)


def test_the_technician_is_told_when_the_agent_refuses_it(relay_process: RelayProcess) -> None:
    ours, theirs = organisation("Acme Help Desk"), organisation("Scam Support Ltd")

    async def scenario() -> SessionLost:
        token = relay_process.add_technician("Fake Technician")
        api = RelayAPI(relay_process.ws_url, token)
        nameplate = (await asyncio.to_thread(api.create_session, TICKET))["nameplate"]
        tech_task = asyncio.create_task(
            Link.open_certified(
                relay_process.ws_url,
                nameplate,
                proof=technician_proof(theirs),
                ticket_id=TICKET,
                token=token,
            )
        )
        with pytest.raises(SessionLost):
            await Link.open_certified(
                relay_process.ws_url,
                nameplate,
                technician_policy=TechnicianPolicy(ours.public_key),
            )
        with pytest.raises(SessionLost) as caught:
            await asyncio.wait_for(tech_task, scaled(20))
        return caught.value

    error = asyncio.run(scenario())
    assert "refused this side's certificate" in str(error)


# --- a relay stand-in that substitutes its own key exchange ----------------------------


class SubstitutingRelay:
    """A real WebSocket server that speaks the relay envelope, pairs the two ends, and
    then runs its own key exchange with each: its own HELLO to the technician (it
    knows the organisation's public key, so it reads the certificate), and to the
    agent a REPLY carrying the technician's real certificate under its own ephemeral
    key and signing key — the best a relay without the technician's key can do. With
    ``forge_finish`` it also answers the technician as an agent would.
    Everything else (text messages such as ``burn``) it relays as a relay would.
    """

    def __init__(
        self,
        organisation_key: Any,
        *,
        forge_finish: bool,
        device_key: Ed25519PrivateKey | None = None,
    ) -> None:
        self.organisation_key = organisation_key
        self.forge_finish = forge_finish
        self.device_key = device_key  # the stand-in's own device key (not the agent's)
        self.ends: dict[str, ServerConnection] = {}
        self.both_here = asyncio.Event()
        self.nameplate = "417"
        self.refusals: list[str] = []
        self._agent_hello: bytes | None = None
        self._as_agent: AgentHandshake | None = None

    async def handler(self, ws: ServerConnection) -> None:
        claim = envelope.decode(await ws.recv())
        role, _ = envelope.parse_claim(claim)
        self.ends[str(role)] = ws
        await ws.send(envelope.encode({"type": "waiting", "expires_in": 600}))
        if len(self.ends) == 2:
            paired = {
                "type": "paired",
                "session_id": "standin",
                "ticket_id": TICKET,
                "ticket_url": None,
                "technician": "Ana",
                "resume_grace": 0,
            }
            for end in self.ends.values():
                await end.send(envelope.encode(paired))
            self.both_here.set()
        await self.both_here.wait()
        peer = self.ends["technician" if str(role) == "agent" else "agent"]
        async for message in ws:
            if isinstance(message, str):
                parsed = json.loads(message)
                if parsed.get("type") == "burn":
                    self.refusals.append(f"{role}: {parsed.get('reason')}")
                    await peer.send(envelope.encode({"type": "peer_gone", "reason": "burnt"}))
                continue
            await self._substitute(str(role), bytes(message), peer)

    async def _substitute(self, role: str, data: bytes, peer: ServerConnection) -> None:
        place = Rendezvous(self.nameplate, TICKET)
        if role == "agent" and data[0] == Wire.SIGMA_HELLO:
            self._agent_hello = data[1:]
            self._as_agent = AgentHandshake(
                place, TechnicianPolicy(self.organisation_key), int(time.time()), self.device_key
            )
            await peer.send(bytes([Wire.SIGMA_HELLO]) + self._as_agent.start())
        elif role == "technician" and data[0] == Wire.SIGMA_REPLY:
            assert self._as_agent is not None and self._agent_hello is not None
            finish = self._as_agent.receive_reply(data[1:])  # the real certificate, read
            stolen = self._as_agent.certificate_document
            assert stolen is not None
            as_technician = TechnicianHandshake(
                place, TechnicianProof(stolen, Ed25519PrivateKey.generate())
            )
            reply = as_technician.receive_hello(self._agent_hello)
            if self.forge_finish:  # first, so the agent's refusal cannot overtake it
                await self.ends["technician"].send(bytes([Wire.SIGMA_FINISH]) + finish)
            await self.ends["agent"].send(bytes([Wire.SIGMA_REPLY]) + reply)
        else:
            await peer.send(data)  # nothing else should come before a refusal


async def with_stand_in(stand_in: SubstitutingRelay, run: Callable[[str], Awaitable[Any]]) -> Any:
    async with serve(stand_in.handler, "127.0.0.1", 0, compression=None) as server:
        port = server.sockets[0].getsockname()[1]
        return await run(f"ws://127.0.0.1:{port}")


async def both_ends(
    url: str, org: OrganisationSecret, expect: DeviceExpectation | None, device: Any = None
) -> tuple[BaseException | Link, BaseException | Link]:
    proof = technician_proof(org)
    tech = asyncio.create_task(
        Link.open_certified(url, "417", proof=proof, expect=expect, ticket_id=TICKET, token="x")
    )
    await asyncio.sleep(0.05)  # the technician claims first, as after a help request
    agent = asyncio.create_task(
        Link.open_certified(
            url, "417", technician_policy=TechnicianPolicy(org.public_key), device_key=device
        )
    )
    results = await asyncio.wait_for(
        asyncio.gather(agent, tech, return_exceptions=True), scaled(20)
    )
    return results[0], results[1]


def test_a_substituting_relay_is_detected_by_the_agent_and_by_the_technician() -> None:
    """Help request (anonymous agent): the agent refuses the stand-in's REPLY because the
    certificate's signature fails; the technician is told the pairing was refused."""
    org = organisation("Acme Help Desk")
    stand_in = SubstitutingRelay(org.public_key, forge_finish=False)
    agent, tech = asyncio.run(
        with_stand_in(stand_in, lambda url: both_ends(url, org, DeviceExpectation()))
    )
    assert isinstance(agent, SessionLost), agent
    assert "could not prove they hold its key" in str(agent)
    assert "stand in for the technician" in str(agent)
    assert isinstance(agent.__cause__, TechnicianRefused)
    assert isinstance(tech, SessionLost), tech
    assert "refused" in str(tech) and "altered the key exchange" in str(tech)
    assert stand_in.refusals == ["agent: code-less pairing refused"]


def test_a_relay_that_also_forges_the_devices_answer_is_refused_by_the_technician() -> None:
    """Enrolled device: the stand-in completes the technician's exchange itself, with a
    device key of its own; the technician refuses it (the device's proof fails) and
    the agent refuses the stand-in's REPLY, so neither end opens."""
    org = organisation("Acme Help Desk")
    device = Ed25519PrivateKey.generate()
    stand_in = SubstitutingRelay(
        org.public_key, forge_finish=True, device_key=Ed25519PrivateKey.generate()
    )
    expect = DeviceExpectation(anonymous_ok=False, device_key=raw_public_key(device.public_key()))
    agent, tech = asyncio.run(
        with_stand_in(stand_in, lambda url: both_ends(url, org, expect, device))
    )
    assert isinstance(agent, SessionLost) and isinstance(agent.__cause__, TechnicianRefused)
    assert isinstance(tech, SessionLost), tech
    assert isinstance(tech.__cause__, DeviceRefused)
    assert "not the enrolled device" in str(tech)


def test_a_code_less_session_resumes_after_a_cut_like_any_other(
    relay_process: RelayProcess,
) -> None:
    """Everything after pairing is unchanged: the resume secret of a code-less pairing
    brings the link back after the network drops, and nothing is lost."""
    from tests.support.proxy import FaultInjectingProxy

    org = organisation("Acme Help Desk")

    async def scenario() -> None:
        with FaultInjectingProxy("127.0.0.1", relay_process.port) as proxy:
            agent, tech = await open_code_less(
                relay_process,
                proxy.url,
                relay_process.ws_url,
                TechnicianPolicy(org.public_key),
                technician_proof(org),
            )
            await agent.send(Channel.CHAT, b"before")
            assert await asyncio.wait_for(tech.receive(Channel.CHAT), scaled(10)) == b"before"
            proxy.cut()
            await tech.send(Channel.CHAT, b"during the cut")
            await asyncio.sleep(1.5)
            proxy.restore()
            got = await asyncio.wait_for(agent.receive(Channel.CHAT), scaled(30))
            assert got == b"during the cut"
            assert agent.resumes == 1 and tech.resumes == 1
            await agent.send(Channel.CHAT, b"after")
            assert await asyncio.wait_for(tech.receive(Channel.CHAT), scaled(10)) == b"after"
            await tech.close("done")
            await agent.wait_closed()

    asyncio.run(scenario())
