"""The relay's device desk with a real relay process: a device proves its key, a copied
id with another key (a cloned disk) is refused, unknown devices and bad enrolment
requests get sentences."""

from __future__ import annotations

import asyncio
import base64
import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from protocol import device_wire as wire
from protocol.identity import b64encode, raw_public_key
from tests.support.device_fixtures import enrolment_token
from tests.support.relay import RelayProcess, start_relay
from tests.support.timeouts import scaled


def post(url: str, body: bytes) -> tuple[int, dict[str, object]]:
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=scaled(10)) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.loads(exc.read())


def enrol(relay: RelayProcess, token: str, key: Ed25519PrivateKey) -> str:
    body = json.dumps({"token": token, "public_key": b64encode(raw_public_key(key.public_key()))})
    status, answer = post(relay.http_url + wire.ENROL_PATH, body.encode())
    assert status == 201, answer
    return str(answer["device_id"])


async def prove(
    websocket: ClientConnection, device_id: str, key: Ed25519PrivateKey
) -> dict[str, object]:
    """hello, challenge, proof: the relay's last answer (welcome, or an error)."""
    await websocket.send(wire.encode("hello", device_id=device_id))
    challenge = json.loads(await websocket.recv())
    if challenge["type"] != "challenge":
        return dict(challenge)
    nonce = base64.b64decode(challenge["nonce"])
    signature = key.sign(wire.proof_message(device_id, nonce))
    await websocket.send(wire.encode("proof", signature=base64.b64encode(signature).decode()))
    return dict(json.loads(await websocket.recv()))


async def present(relay: RelayProcess, device_id: str, key: Ed25519PrivateKey) -> dict[str, object]:
    async with connect(relay.ws_url + wire.DEVICE_PATH) as websocket:
        answer = await prove(websocket, device_id, key)
        if answer["type"] == "welcome":
            await websocket.send(wire.encode("heartbeat"))
        return dict(answer)


def test_a_device_proves_its_key_and_a_clone_is_refused(tmp_path: Path) -> None:
    relay = start_relay(tmp_path / "relay")
    try:
        token = enrolment_token(relay.data_dir, "--uses", "2", "--valid-days", "1")
        key = Ed25519PrivateKey.generate()
        device_id = enrol(relay, token, key)
        assert asyncio.run(present(relay, device_id, key)) == {"type": "welcome", "heartbeat": 30}

        clone = asyncio.run(present(relay, device_id, Ed25519PrivateKey.generate()))
        assert clone["type"] == "error"
        assert "does not match its registration (a copied disk" in str(clone["message"])

        stranger = asyncio.run(present(relay, "f" * 32, key))
        assert stranger["type"] == "error" and "not enrolled here" in str(stranger["message"])
    finally:
        relay.stop()


def test_bad_enrolment_requests_get_sentences(tmp_path: Path) -> None:
    relay = start_relay(tmp_path / "relay")
    try:
        status, answer = post(relay.http_url + wire.ENROL_PATH, b"not json")
        assert status == 403 and '{"token": TOKEN' in str(answer["message"])
        body = json.dumps({"token": "pe_x_y", "public_key": b64encode(b"k" * 32)}).encode()
        status, answer = post(relay.http_url + wire.ENROL_PATH, body)
        assert status == 403 and "not known to the relay" in str(answer["message"])
        request = urllib.request.Request(relay.http_url + wire.ENROL_POLICY_PATH)
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=scaled(10))
        with refused.value as exc:
            assert exc.code == 403 and b"Authorization: Enrol TOKEN" in exc.read()
    finally:
        relay.stop()


async def online_then_unenrolled(
    relay: RelayProcess, device_id: str, key: Ed25519PrivateKey
) -> tuple[int | None, str]:
    """The device's service online on one connection while ``unenrol`` runs on another:
    the service's close code and what a redial then hears."""
    async with connect(relay.ws_url + wire.DEVICE_PATH) as service:
        assert (await prove(service, device_id, key))["type"] == "welcome"
        async with connect(relay.ws_url + wire.DEVICE_PATH) as unenrol:
            assert (await prove(unenrol, device_id, key))["type"] == "welcome"
            await unenrol.send(wire.encode("unenrol"))
            assert json.loads(await unenrol.recv()) == {"type": "goodbye"}
        with pytest.raises(ConnectionClosed):
            async with asyncio.timeout(scaled(10)):
                await service.recv()
        code = service.close_code
    async with connect(relay.ws_url + wire.DEVICE_PATH) as redial:
        answer = await prove(redial, device_id, key)
    return code, str(answer.get("message", ""))


def test_unenrolling_closes_the_devices_other_connections(tmp_path: Path) -> None:
    relay = start_relay(tmp_path / "relay")
    try:
        token = enrolment_token(relay.data_dir, "--uses", "1", "--valid-days", "1")
        key = Ed25519PrivateKey.generate()
        device_id = enrol(relay, token, key)
        code, redial = asyncio.run(online_then_unenrolled(relay, device_id, key))
        assert code == 1008
        assert "not enrolled here" in redial
    finally:
        relay.stop()
