"""A technician asks an enrolled device for an unattended session, with a real relay
process: the online device is told the session's nameplate over its WebSocket (and
nothing about the technician), on its newest connection; every bad request gets a
sentence and tells no device."""

from __future__ import annotations

import asyncio
import base64
import json
import urllib.error
import urllib.request
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from websockets.asyncio.client import ClientConnection, connect

from protocol import device_wire as wire
from protocol.identity import raw_public_key
from tests.relay.test_devices import enrol, prove
from tests.support.device_fixtures import enrolment_token
from tests.support.relay import RelayProcess, start_relay
from tests.support.timeouts import scaled


def ask(
    relay: RelayProcess, token: str, device: str, body: object
) -> tuple[int, dict[str, object]]:
    request = urllib.request.Request(
        f"{relay.http_url}/api/devices/{device}/connect",
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=scaled(10)) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.loads(exc.read())


def new_session(relay: RelayProcess, token: str) -> str:
    request = urllib.request.Request(
        f"{relay.http_url}/api/sessions",
        data=json.dumps({"ticket_id": "HD-7002"}).encode(),
        method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
    )
    with urllib.request.urlopen(request, timeout=scaled(10)) as response:
        return str(json.loads(response.read())["session_id"])


def online(relay: RelayProcess, token: str, device: str) -> bool:
    request = urllib.request.Request(
        f"{relay.http_url}/api/devices", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(request, timeout=scaled(10)) as response:
        listed = json.loads(response.read())
    (entry,) = [d for d in listed["devices"] if d["device_id"] == device]
    return bool(entry["online"])


async def online_and_asked(
    relay: RelayProcess, device_id: str, key: Ed25519PrivateKey, token: str, session: str
) -> tuple[tuple[int, dict[str, object]], dict[str, object]]:
    """Bring the device online, ask for it over REST, return the answer and what it got."""
    async with connect(relay.ws_url + wire.DEVICE_PATH) as websocket:
        await websocket.send(wire.encode("hello", device_id=device_id))
        nonce = base64.b64decode(json.loads(await websocket.recv())["nonce"])
        signature = key.sign(wire.proof_message(device_id, nonce))
        await websocket.send(wire.encode("proof", signature=base64.b64encode(signature).decode()))
        assert json.loads(await websocket.recv())["type"] == "welcome"
        answer = await asyncio.to_thread(ask, relay, token, device_id, {"session_id": session})
        told = wire.parse_device_message(await asyncio.wait_for(websocket.recv(), scaled(10)))
    return answer, told


def test_the_online_device_is_told_the_nameplate_and_nothing_else(tmp_path: Path) -> None:
    relay = start_relay(tmp_path / "relay")
    try:
        key = Ed25519PrivateKey.generate()
        device_id = enrol(
            relay, enrolment_token(relay.data_dir, "--uses", "1", "--valid-days", "1"), key
        )
        token = relay.add_technician("Ana desk")
        session = new_session(relay, token)
        (status, answer), told = asyncio.run(
            online_and_asked(relay, device_id, key, token, session)
        )
        assert status == 202, answer
        assert told == {
            "type": "unattended",
            "nameplate": answer["nameplate"],
            "ticket_id": "HD-7002",
        }
        assert base64.b64decode(str(answer["device_key"])) == raw_public_key(key.public_key())
        assert answer["unattended"] == {
            "mode": "ask-deny",
            "answer_seconds": 60,
            "countdown_seconds": 30,
            "capabilities": [],
        }
        assert "unattended request device=" in relay.log_path.read_text()
    finally:
        relay.stop()


def test_bad_requests_get_sentences_and_tell_no_device(tmp_path: Path) -> None:
    relay = start_relay(tmp_path / "relay")
    try:
        device_id = enrol(
            relay,
            enrolment_token(relay.data_dir, "--uses", "1", "--valid-days", "1"),
            Ed25519PrivateKey.generate(),
        )
        ana, bo = relay.add_technician("Ana desk"), relay.add_technician("Bo desk")
        session = new_session(relay, ana)

        status, answer = ask(relay, "pt_0_wrong", device_id, {"session_id": session})
        assert status == 401 and "did not accept your API token" in str(answer["message"])
        status, answer = ask(relay, ana, "f" * 32, {"session_id": session})
        assert status == 404 and "No enrolled device has this id" in str(answer["message"])
        status, answer = ask(relay, bo, device_id, {"session_id": session})  # not Bo's
        assert status == 404 and "a session you created" in str(answer["message"])
        status, answer = ask(relay, ana, device_id, {"session": session})
        assert status == 404 and "a session you created" in str(answer["message"])
        status, answer = ask(relay, ana, device_id, {"session_id": session})
        assert status == 409 and answer["error"] == "device_offline"
        assert "not online now" in str(answer["message"])

        request = urllib.request.Request(
            f"{relay.http_url}/api/sessions/{session}",
            method="DELETE",
            headers={"Authorization": f"Bearer {ana}"},
        )
        urllib.request.urlopen(request, timeout=scaled(10)).close()
        status, answer = ask(relay, ana, device_id, {"session_id": session})
        assert status == 409 and "no longer waiting" in str(answer["message"])
    finally:
        relay.stop()


async def proven(relay: RelayProcess, device_id: str, key: Ed25519PrivateKey) -> ClientConnection:
    """A connection of the device, past its proof (the caller closes it)."""
    websocket = await connect(relay.ws_url + wire.DEVICE_PATH)
    assert (await prove(websocket, device_id, key))["type"] == "welcome"
    return websocket


async def two_links_asked(
    relay: RelayProcess, device_id: str, key: Ed25519PrivateKey, token: str
) -> tuple[str, str, str, str]:
    """The device online twice (a link about to time out, and a fresh one): the newest
    is told, and once it is gone the older one is. The nameplates asked and heard."""
    older = await proven(relay, device_id, key)
    try:
        newer = await proven(relay, device_id, key)
        first = new_session(relay, token)
        status, answer = await asyncio.to_thread(
            ask, relay, token, device_id, {"session_id": first}
        )
        assert status == 202, answer
        heard_newer = wire.parse_device_message(await asyncio.wait_for(newer.recv(), scaled(10)))
        await newer.close()
        await asyncio.sleep(0.2)  # the relay notices the close
        # Still online: its older connection is (offline only when the last one goes).
        assert await asyncio.to_thread(online, relay, token, device_id)
        second = new_session(relay, token)
        status, again = await asyncio.to_thread(
            ask, relay, token, device_id, {"session_id": second}
        )
        assert status == 202, again
        heard_older = wire.parse_device_message(await asyncio.wait_for(older.recv(), scaled(10)))
    finally:
        await older.close()
    return (
        str(answer["nameplate"]),
        str(heard_newer["nameplate"]),
        str(again["nameplate"]),
        str(heard_older["nameplate"]),
    )


def test_the_newest_of_a_devices_connections_is_told(tmp_path: Path) -> None:
    relay = start_relay(tmp_path / "relay")
    try:
        key = Ed25519PrivateKey.generate()
        device_id = enrol(
            relay, enrolment_token(relay.data_dir, "--uses", "1", "--valid-days", "1"), key
        )
        token = relay.add_technician("Ana desk")
        asked_first, newer_heard, asked_second, older_heard = asyncio.run(
            two_links_asked(relay, device_id, key, token)
        )
        assert newer_heard == asked_first
        assert older_heard == asked_second  # not the first request: it went to the newer
    finally:
        relay.stop()
