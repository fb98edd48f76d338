"""Presence of enrolled devices (relay.presence): heartbeats touch memory only and are
written to SQLite in one batch per pass; two relay processes sharing a real Redis
(and one SQLite file) both know which devices are online, and a node killed with its
devices makes them offline everywhere."""

from __future__ import annotations

import asyncio
import base64
import json
import signal
import sqlite3
import time
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from websockets.asyncio.client import ClientConnection, connect

from protocol import device_wire as wire
from relay.enrolment import EnrolmentBook
from relay.presence import PresenceBook
from relay.sqlite_store import DATABASE_NAME
from tests.relay.test_devices import enrol
from tests.support.device_fixtures import enrolment_token
from tests.support.helpdesk import wait_until
from tests.support.relay import RelayProcess, start_relay
from tests.support.services import RedisServer, redis_server  # noqa: F401  (fixture)
from tests.support.timeouts import scaled


@asynccontextmanager
async def online(
    relay: RelayProcess, device_id: str, key: Ed25519PrivateKey
) -> AsyncIterator[ClientConnection]:
    """A device proven and connected to ``relay`` for the block."""
    async with connect(relay.ws_url + wire.DEVICE_PATH) as websocket:
        await websocket.send(wire.encode("hello", device_id=device_id))
        nonce = base64.b64decode(json.loads(await websocket.recv())["nonce"])
        signature = base64.b64encode(key.sign(wire.proof_message(device_id, nonce))).decode()
        await websocket.send(wire.encode("proof", signature=signature))
        assert json.loads(await websocket.recv())["type"] == "welcome"
        yield websocket


def listed(relay: RelayProcess, token: str) -> dict[str, bool]:
    request = urllib.request.Request(relay.http_url + "/api/devices")
    request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=scaled(10)) as response:
        return {d["device_id"]: d["online"] for d in json.loads(response.read())["devices"]}


def test_two_nodes_know_which_devices_are_online(
    tmp_path: Path,
    redis_server: RedisServer,  # noqa: F811
) -> None:
    data = tmp_path / "shared"
    env = {"PUENTE_REDIS_URL": redis_server.url}
    first = start_relay(data, "--node-timeout", "2", env=env)
    second = start_relay(data, "--node-timeout", "2", env=env)
    try:
        token = enrolment_token(data, "--uses", "2", "--valid-days", "1")
        keys = [Ed25519PrivateKey.generate() for _ in range(2)]
        ids = [enrol(first, token, key) for key in keys]
        ana = first.add_technician()

        async def both_online_then_one_leaves() -> None:
            async with online(first, ids[0], keys[0]), online(second, ids[1], keys[1]):
                for node in (first, second):
                    await asyncio.to_thread(
                        wait_until,
                        lambda node=node: listed(node, ana) == {ids[0]: True, ids[1]: True},
                        scaled(20),
                        f"both devices online as node {node.port} sees it",
                    )
            for node in (first, second):
                await asyncio.to_thread(
                    wait_until,
                    lambda node=node: not any(listed(node, ana).values()),
                    scaled(20),
                    "both devices offline",
                )

        asyncio.run(both_online_then_one_leaves())

        async def a_node_dies_with_its_device() -> None:
            async with online(first, ids[0], keys[0]) as websocket:
                await asyncio.to_thread(
                    wait_until,
                    lambda: listed(second, ana)[ids[0]],
                    scaled(20),
                    "the device online as the second node sees it",
                )
                first.proc.send_signal(signal.SIGKILL)
                await asyncio.to_thread(
                    wait_until,
                    lambda: not listed(second, ana)[ids[0]],
                    scaled(30),
                    "the killed node's device offline on the second node",
                )
                del websocket

        asyncio.run(a_node_dies_with_its_device())
    finally:
        first.stop()
        second.stop()


def test_heartbeats_touch_memory_and_one_pass_writes_them(tmp_path: Path) -> None:
    database = tmp_path / DATABASE_NAME
    book = EnrolmentBook(database)
    token, _ = book.create_token(time.time(), 1000, 1)
    devices = [
        book.redeem(token, Ed25519PrivateKey.generate().public_key().public_bytes_raw(), 1.0)
        for _ in range(200)
    ]
    book.seen(devices[0].device_id, 1.0, online=True)  # left online by a crash
    now = [1000.0]
    presence = PresenceBook(database, clock=lambda: now[0])

    def stored() -> dict[str, tuple[float | None, bool]]:
        return {d.device_id: (d.last_seen, d.online) for d in book.devices()}

    async def run() -> None:
        presence.start()  # its first pass marks the crash's leftovers offline
        await asyncio.sleep(0.2)
        assert not any(is_online for _, is_online in stored().values())
        before = stored()
        for _ in range(10):
            now[0] += 30
            for device in devices:
                presence.heard(device.device_id)
            assert stored() == before  # ten rounds of heartbeats: no write yet
        assert all(presence.online(d.device_id) for d in devices)
        await presence.flush()
        after = stored()
        assert {seen for seen, _ in after.values()} == {now[0]}  # the latest, once each
        assert presence.rows_written == len(devices)
        presence.left(devices[1].device_id)
        assert not presence.online(devices[1].device_id)
        await presence.close()

    asyncio.run(run())
    # Closing writes what is owed: the relay going away takes its devices offline.
    assert stored()[devices[1].device_id][1] is False
    with sqlite3.connect(database) as db:
        assert db.execute("SELECT count(*) FROM enrolled_devices WHERE online = 1").fetchone() == (
            0,
        )
    book.close()
