"""A code-less session end to end: the real agent entry point (``agent.app.run_agent``
with a :class:`CodeLessJoin`, a scripted customer), the real technician client
(``TechnicianSession.connect_code_less``), a real relay process, and the recording
proxy in front of the relay for both ends.

Issue 17: no code typed by either side; the customer sees the verified technician and
the same check code; the relay saw no content and no certificate private material;
a technician whose certificate the organisation revoked (through the relay's published
revocation list, as in the code flow) is refused.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.app import CodeLessJoin, run_agent
from link.errors import SessionLost
from protocol.identity import (
    OrganisationSecret,
    issue_certificate,
    issue_revocation_list,
    parse_certificate,
    private_key_pem,
    public_key_pem,
)
from protocol.messages import ReplyStatus
from technician.client import RelayAPI, TechnicianSession
from technician.credentials import TechnicianCredentials
from tests.support.proxy import RecordingProxy
from tests.support.relay import RelayProcess
from tests.support.scripted_ui import ScriptedUI
from tests.support.timeouts import scaled

TICKET = "HD-4417"


def credentials(org: OrganisationSecret, name: str) -> TechnicianCredentials:
    key = Ed25519PrivateKey.generate()
    now = int(time.time())
    document = issue_certificate(org, name, key.public_key(), now - 60, now + 86400)
    return TechnicianCredentials(document, parse_certificate(document), key)


def pinned_key_file(org: OrganisationSecret, directory: Path) -> Path:
    path = directory / "org.pub"
    path.write_bytes(public_key_pem(org.public_key))
    return path


async def session(
    relay: RelayProcess,
    url: str,
    org_pub: Path,
    creds: TechnicianCredentials,
    ui: ScriptedUI,
    log_dir: Path,
) -> tuple[int, TechnicianSession | BaseException, dict[str, object] | None]:
    """Run the agent and the technician against each other; the technician collects
    diagnostics and ends. Returns the agent's exit status, the technician's session (or
    why it failed) and the diagnostics it received."""
    token = relay.add_technician("desk account 12")
    api = RelayAPI(relay.ws_url, token)
    nameplate = (await asyncio.to_thread(api.create_session, TICKET))["nameplate"]
    result: dict[str, object] | None = None

    async def technician() -> TechnicianSession | BaseException:
        nonlocal result
        try:
            tech = await TechnicianSession.connect_code_less(
                url, nameplate, TICKET, token=token, credentials=creds, wait_timeout=scaled(20)
            )
        except SessionLost as exc:
            return exc
        reply = await tech.request("diagnostics", "collect", {"sample_seconds": 0})
        assert reply.status == ReplyStatus.OK, reply
        assert isinstance(reply.result, dict)
        result = reply.result
        await tech.end("fixed", rating_wait=0)
        return tech

    agent_task = asyncio.create_task(
        run_agent(url, CodeLessJoin(nameplate), log_dir, None, org_key=org_pub, ui=ui)
    )
    tech_outcome = await asyncio.wait_for(technician(), scaled(60))
    status = await asyncio.wait_for(agent_task, scaled(30))
    return status, tech_outcome, result


def test_a_help_request_session_pairs_without_a_code_and_the_relay_sees_nothing(
    relay_process: RelayProcess, tmp_path: Path
) -> None:
    org = OrganisationSecret("Acme Help Desk", Ed25519PrivateKey.generate())
    creds = credentials(org, "Ana Lopez")
    org_pub = pinned_key_file(org, tmp_path)
    ui = ScriptedUI({"diagnostics": True})

    async def scenario() -> tuple[int, object, dict[str, object] | None, bytes]:
        with RecordingProxy("127.0.0.1", relay_process.port) as proxy:
            status, tech, result = await session(
                relay_process, proxy.url, org_pub, creds, ui, tmp_path / "logs"
            )
            return status, tech, result, proxy.recorded

    status, tech, result, recorded = asyncio.run(scenario())
    assert isinstance(tech, TechnicianSession), tech
    assert status == 0
    assert ui.info is not None and ui.info.verified
    assert ui.info.technician == "Ana Lopez" and ui.info.organisation == "Acme Help Desk"
    assert ui.info.sas == tech.sas  # both show the same check code
    assert ui.asked == ["diagnostics"]  # consent asked exactly as with a code
    assert result is not None
    log = next((tmp_path / "logs").glob("*.log")).read_text()
    assert "Paired without a code" in log and "Ana Lopez" in log
    # The relay (through the proxy: every byte both ends exchanged with it) saw neither
    # the content nor the certificate nor any private key.
    diagnostics = json.dumps(result, sort_keys=True)
    # Words the relay says itself (its Server header, its program name in the customer's
    # process list) prove nothing about what it saw of the content.
    public = b"HTTP/1.1 puente-relay Server:"
    samples = [v for v in _strings(result) if len(v) >= 12 and v.encode() not in public][:20]
    assert samples, diagnostics[:200]
    for sample in samples:
        assert sample.encode() not in recorded, f"the relay saw {sample!r}"
    assert creds.certificate_bytes[:60] not in recorded
    assert b"Ana Lopez" not in recorded
    assert creds.private_key.private_bytes_raw() not in recorded
    assert private_key_pem(creds.private_key)[30:90] not in recorded


def test_a_revoked_technician_is_refused_without_a_code(
    relay_process: RelayProcess, tmp_path: Path
) -> None:
    org = OrganisationSecret("Acme Help Desk", Ed25519PrivateKey.generate())
    creds = credentials(org, "Former Employee")
    token = relay_process.add_technician("operator")
    revocations = issue_revocation_list(org, 1, int(time.time()), [creds.certificate.serial])
    RelayAPI(relay_process.ws_url, token).publish_revocations(revocations)
    ui = ScriptedUI({"diagnostics": True})

    async def scenario() -> tuple[int, object, dict[str, object] | None]:
        return await session(
            relay_process,
            relay_process.ws_url,
            pinned_key_file(org, tmp_path),
            creds,
            ui,
            tmp_path / "logs",
        )

    status, tech, result = asyncio.run(scenario())
    assert status == 1 and result is None
    assert ui.asked == [] and ui.info is None  # nothing was shown or asked
    assert ui.ended is not None and "revoked" in ui.ended
    assert isinstance(tech, SessionLost), tech
    assert "refused this side's certificate" in str(tech)


def test_an_agent_without_a_pinned_key_is_told_to_use_a_code(
    relay_process: RelayProcess, tmp_path: Path
) -> None:
    ui = ScriptedUI()
    status = asyncio.run(
        run_agent(relay_process.ws_url, CodeLessJoin("417"), tmp_path, None, org_key=None, ui=ui)
    )
    assert status == 1
    assert ui.ended is not None and "cannot connect without a session code" in ui.ended


def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for item in value.values() for s in _strings(item)]
    if isinstance(value, list):
        return [s for item in value for s in _strings(item)]
    return []


def test_the_technician_cannot_swap_certificates_after_a_code_less_pairing(
    relay_process: RelayProcess, tmp_path: Path
) -> None:
    """The key exchange verified Ana; an in-channel Identity of another technician of
    the same organisation (validly signed over this session) is refused all the same."""
    from link.connection import Link
    from protocol import messages
    from protocol.cert_pairing import TechnicianProof
    from protocol.pairing import PROTOCOL_VERSION

    org = OrganisationSecret("Acme Help Desk", Ed25519PrivateKey.generate())
    ana, bo = credentials(org, "Ana Lopez"), credentials(org, "Bo Senior Admin")
    org_pub = pinned_key_file(org, tmp_path)
    ui = ScriptedUI({"diagnostics": True})

    async def scenario() -> tuple[int, str]:
        token = relay_process.add_technician("desk account 3")
        api = RelayAPI(relay_process.ws_url, token)
        nameplate = (await asyncio.to_thread(api.create_session, TICKET))["nameplate"]
        agent = asyncio.create_task(
            run_agent(relay_process.ws_url, CodeLessJoin(nameplate), tmp_path, None, org_pub, ui)
        )
        link = await Link.open_certified(
            relay_process.ws_url,
            nameplate,
            proof=TechnicianProof(ana.certificate_bytes, ana.private_key),
            ticket_id=TICKET,
            token=token,
        )
        await link.send_control(
            messages.Hello(PROTOCOL_VERSION, "technician", "puente-tech test", "Bo")
        )
        await link.send_control(bo.identity(link.keys.transcript_hash))
        try:
            reason = await asyncio.wait_for(link.wait_closed(), scaled(20))
        except SessionLost as exc:
            reason = str(exc)
        status = await asyncio.wait_for(agent, scaled(20))
        return status, reason

    status, reason = asyncio.run(scenario())
    assert status == 1 and ui.info is None and ui.asked == []
    assert "paired as Ana Lopez but introduced itself with another certificate" in reason
