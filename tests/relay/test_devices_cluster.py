"""Enrolled devices across relay nodes (issue 18, devices on the PostgreSQL + Redis
deployment): two real relay processes sharing one real PostgreSQL and one real Redis,
filing alerts in a real Request Tracker, and a real agent enrolled in the foreground.

A load balancer stand-in sends enrolment requests to node A and the device's WebSocket
to node B. A check that always fails opens exactly one ticket; the device moved to node
A (its connection cut, so it redials and sends its latest results again to a node that
has not seen them) still has one alert and one ticket; a technician on node A lists it
online with its alert and connects to it while its WebSocket is on node B. Two
enrolments with a one-use token, one on each node at once: one device is enrolled.
The node delivering alerts dies with an alert it could not deliver: the other takes
the delivery lease when it lapses and delivers it, once.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocol import device_wire as wire
from relay.stores import open_store
from tests.e2e.test_unattended import certify
from tests.relay.test_devices import enrol, post
from tests.relay.test_presence import online
from tests.support.device_fixtures import (
    enrol_argv,
    enrol_in_foreground,
    relay_cli,
    signed_policy,
)
from tests.support.helpdesk import RequestTracker, wait_until
from tests.support.proxy import FaultInjectingProxy
from tests.support.relay import RelayProcess, start_relay
from tests.support.services import (  # noqa: F401  (fixtures)
    PostgresServer,
    RedisServer,
    postgres_server,
    redis_server,
    spare_port,
)
from tests.support.timeouts import scaled
from tests.support.trust_fixtures import make_organisation, tech_cli

_databases = itertools.count()

POLICY = """\
[[checks]]
id = "watchdog"
kind = "process_running"
name = "puente-no-such-process"
severity = "critical"
every_seconds = 5
failures_before_alert = 2

[unattended]
mode = "allowed"
capabilities = ["diagnostics"]
"""


@dataclass
class Cluster:
    a: RelayProcess
    b: RelayProcess
    database: str
    rt: RequestTracker

    def technician_token(self, name: str) -> str:
        store = open_store(None, self.database)
        try:
            return store.add_technician(name, time.time())[1]
        finally:
            store.close()

    def enrolment_token(self, *extra: str) -> str:
        done = relay_cli(
            "enrolment", "create", "--valid-days", "1", "--database-url", self.database, *extra
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.strip().splitlines()[-1]

    def rows(self, sql: str, *params: object) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.database) as db:
            return list(db.execute(sql, params).fetchall())  # type: ignore[arg-type]


@pytest.fixture
def cluster(
    tmp_path: Path,
    redis_server: RedisServer,  # noqa: F811
    postgres_server: PostgresServer,  # noqa: F811
    request_tracker: RequestTracker,
) -> Iterator[Cluster]:
    """Nodes A and B on one PostgreSQL database and one Redis, both filing in RT."""
    database = postgres_server.new_database(f"puente_devices_cluster_{next(_databases)}")
    rt = request_tracker
    env = {
        "PUENTE_REDIS_URL": redis_server.url,
        "PUENTE_DATABASE_URL": database,
        "PUENTE_RT_PASSWORD": rt.password,
    }
    options = ("--node-timeout", "2", "--rt-url", rt.url, "--rt-user", rt.user)
    a = start_relay(tmp_path / "node-a", *options, env=env)
    try:
        b = start_relay(tmp_path / "node-b", *options, env=env)
    except BaseException:
        a.stop()
        raise
    try:
        yield Cluster(a, b, database, rt)
    finally:
        a.stop()
        b.stop()


class Balancer(FaultInjectingProxy):
    """A load balancer stand-in: a device's WebSocket (``GET /v1/device``) goes to the
    node on ``device_port``, every other request to the node on ``target``; ``cut()``
    drops every connection at once."""

    def __init__(self, default_port: int, device_port: int) -> None:
        super().__init__("127.0.0.1", default_port)
        self.device_port = device_port
        self.routed: list[tuple[str, int]] = []

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._cut.is_set():
            writer.transport.abort()
            return
        first = await reader.readline()
        parts = first.split(b" ")
        path = parts[1].decode("latin-1") if len(parts) > 2 else ""
        port = self.device_port if path == wire.DEVICE_PATH else self.target[1]
        self.routed.append((path, port))
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            writer.transport.abort()
            return
        self._writers += [writer, up_writer]
        up_writer.write(first)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            with contextlib.suppress(Exception):
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


def listed(node: RelayProcess, token: str) -> list[dict[str, Any]]:
    """``puente-tech devices --json`` on ``node``."""
    done = tech_cli("--relay", node.ws_url, "--token", token, "--json", "devices")
    assert done.returncode == 0, done.stderr
    return list(json.loads(done.stdout)["devices"])


def alert_tickets(rt: RequestTracker, device_id: str) -> list[int]:
    query = urllib.parse.quote(f"Subject LIKE '{device_id}: check watchdog is failing'")
    status, body = rt.rest("GET", f"/tickets?query={query}")
    assert status == 200, body
    return [int(item["id"]) for item in body["items"]]


def logged(node: RelayProcess) -> str:
    return node.log_path.read_text(errors="replace")


def test_a_device_on_node_b_alerts_once_and_a_technician_on_node_a_reaches_it(
    cluster: Cluster, tmp_path: Path
) -> None:
    a, b, rt = cluster.a, cluster.b, cluster.rt
    acme = make_organisation(tmp_path / "org", "Acme IT")
    policy = signed_policy(acme, tmp_path, POLICY)
    token = cluster.enrolment_token("--uses", "1", "--policy", str(policy))
    desk = cluster.technician_token("Ana desk")
    cert, key = certify(acme, "Ana Lopez", "ana", "unattended")
    state = tmp_path / "device-state"
    with Balancer(a.port, b.port) as balancer:
        agent, shown = enrol_in_foreground(
            enrol_argv(balancer.url, acme.public, state, "--no-service", "--yes"), token
        )
        try:
            device_id = json.loads((state / "device.json").read_text())["device_id"]
            # Enrolled through node A; its WebSocket is on node B.
            assert (wire.ENROL_PATH, a.port) in balancer.routed
            assert [port for path, port in balancer.routed if path == wire.DEVICE_PATH] == [b.port]
            wait_until(
                lambda: f"device online device={device_id}" in logged(b),
                scaled(10),
                "node B to log the device online",
            )
            assert f"device online device={device_id}" not in logged(a)

            # The failing check opens one alert and one ticket, whichever node delivers.
            wait_until(
                lambda: len(alert_tickets(rt, device_id)) == 1,
                scaled(60),
                "the alert's ticket in Request Tracker",
            )
            # Both nodes list it online with its alert (and the ticket).
            for node in (a, b):
                wait_until(
                    lambda node=node: any(
                        d["device_id"] == device_id
                        and d["online"]
                        and [x["check"] for x in d["alerts"]] == ["watchdog"]
                        and d["alerts"][0]["ticket"] is not None
                        for d in listed(node, desk)
                    ),
                    scaled(30),
                    f"the device online with its alert as node {node.port} lists it",
                )

            # A technician on node A connects to the device whose WebSocket is on node B.
            out = tmp_path / "diagnostics.json"
            technician = subprocess.Popen(
                [
                    sys.executable, "-m", "technician.cli", "--relay", a.ws_url,
                    "--token", desk, "--cert", str(cert), "--key", str(key), "--json",
                    "connect", device_id, "--ticket", "HD-8100",
                    "--wait", str(scaled(30)), "--rating-wait", "0",
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )  # fmt: skip
            events, err = technician.communicate(f"diagnostics {out}\n", timeout=scaled(90))
            assert technician.returncode == 0, events + err
            assert any(json.loads(line).get("event") == "paired" for line in events.splitlines())
            assert out.exists() and json.loads(out.read_text())
            assert f"unattended request device={device_id}" in logged(a)
            assert f"device={device_id} sent=True" in logged(b)  # passed on through Redis

            # The device moves to node A: its link is cut, it redials and sends its latest
            # results again, to a node that never saw them. Still one alert, one ticket.
            balancer.device_port = a.port
            balancer.cut()
            balancer.restore()
            wait_until(
                lambda: f"device online device={device_id}" in logged(a),
                scaled(30),
                "the device online on node A",
            )
            reported = cluster.rows(
                "SELECT last_report FROM alert_pairs WHERE device = %s", device_id
            )[0][0]
            wait_until(
                lambda: (
                    cluster.rows(
                        "SELECT last_report FROM alert_pairs WHERE device = %s", device_id
                    )[0][0]
                    > reported
                ),
                scaled(30),
                "a newer result counted through node A",
            )
        finally:
            agent.terminate()
            agent.communicate(timeout=scaled(20))
    # One node at a time delivers alerts: the one holding the lease.
    assert ["alert delivery starts here" in logged(node) for node in (a, b)].count(True) == 1
    opened = cluster.rows(
        "SELECT count(*) FROM alert_actions WHERE device = %s AND kind = 'open'", device_id
    )
    assert opened == [(1,)]
    assert len(alert_tickets(rt, device_id)) == 1
    [(state_now, failures)] = cluster.rows(
        "SELECT state, failures FROM alert_pairs WHERE device = %s", device_id
    )
    assert state_now == "open" and failures >= 3
    # One node delivered at a time: the action was delivered once.
    assert cluster.rows(
        "SELECT attempts, delivered_at IS NOT NULL FROM alert_actions WHERE device = %s", device_id
    ) == [(1, True)]


def test_a_one_use_token_enrols_once_when_both_nodes_are_asked_at_once(
    cluster: Cluster,
) -> None:
    for _ in range(3):
        token = cluster.enrolment_token("--uses", "1")
        barrier = threading.Barrier(2)
        answers: dict[int, tuple[int, dict[str, object]]] = {}

        def enrol(
            node: RelayProcess,
            token: str = token,
            barrier: Any = barrier,
            answers: dict[int, Any] = answers,
        ) -> None:
            key = Ed25519PrivateKey.generate().public_key().public_bytes_raw()
            body = json.dumps({"token": token, "public_key": base64.b64encode(key).decode()})
            barrier.wait(scaled(10))
            answers[node.port] = post(node.http_url + wire.ENROL_PATH, body.encode())

        threads = [threading.Thread(target=enrol, args=(n,)) for n in (cluster.a, cluster.b)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(scaled(30))
        statuses = sorted(status for status, _ in answers.values())
        assert statuses == [201, 403], answers
        [refusal] = [body for status, body in answers.values() if status == 403]
        assert "already used 1 time" in str(refusal["message"])
        token_id = token.split("_")[1]
        assert cluster.rows("SELECT uses FROM enrolment_tokens WHERE token_id = %s", token_id) == [
            (1,)
        ]


def test_alerts_owed_when_the_delivering_node_dies_are_delivered_by_the_other(
    tmp_path: Path,
    redis_server: RedisServer,  # noqa: F811
    postgres_server: PostgresServer,  # noqa: F811
    request_tracker: RequestTracker,
) -> None:
    """Node A holds the delivery lease but cannot reach RT; node B can, and still
    delivers nothing while A holds it. A is killed: B takes the lease when it lapses
    and delivers what A owed. One ticket."""
    rt = request_tracker
    database = postgres_server.new_database(f"puente_devices_cluster_{next(_databases)}")
    env = {
        "PUENTE_REDIS_URL": redis_server.url,
        "PUENTE_DATABASE_URL": database,
        "PUENTE_RT_PASSWORD": rt.password,
    }
    unreachable = f"http://127.0.0.1:{spare_port()}"
    a = start_relay(tmp_path / "node-a", "--node-timeout", "2", "--rt-url", unreachable,
                    "--rt-user", rt.user, env=env)  # fmt: skip
    b = None
    try:
        wait_until(
            lambda: "alert delivery starts here" in logged(a), scaled(20), "A holding the lease"
        )
        b = start_relay(tmp_path / "node-b", "--node-timeout", "2", "--rt-url", rt.url,
                        "--rt-user", rt.user, env=env)  # fmt: skip
        cluster = Cluster(a, b, database, rt)
        token = cluster.enrolment_token("--uses", "1")
        key = Ed25519PrivateKey.generate()
        device_id = enrol(b, token, key)

        async def three_failures_through_b() -> None:
            async with online(b, device_id, key) as websocket:
                for at in (100, 200, 300):  # the default policy: an alert after 3
                    failing = {"check": "disk-system", "kind": "disk_free",
                               "status": "failing", "severity": "critical"}  # fmt: skip
                    await websocket.send(wire.encode("results", at=at, results=[failing]))
                await websocket.send(wire.encode("heartbeat"))
                await asyncio.sleep(0.5)

        asyncio.run(three_failures_through_b())

        def tried_by_a() -> bool:
            rows = cluster.rows(
                "SELECT attempts, last_error, delivered_at FROM alert_actions WHERE device = %s",
                device_id,
            )
            return bool(rows) and rows[0][0] >= 1 and rows[0][1] is not None

        wait_until(tried_by_a, scaled(30), "A's failed attempt at the ticket")
        assert (
            "could not reach"
            in cluster.rows("SELECT last_error FROM alert_actions WHERE device = %s", device_id)[0][
                0
            ]
        )
        assert alert_tickets_about(rt, device_id) == []  # B did not deliver it meanwhile

        a.proc.kill()  # no clean stop: the lease is not released, it lapses
        a.proc.wait(scaled(10))
        wait_until(
            lambda: len(alert_tickets_about(rt, device_id)) == 1,
            scaled(60),
            "the ticket delivered by B once A's lease lapsed",
        )
        assert "alert delivery starts here" in logged(b)
        [(delivered,)] = cluster.rows(
            "SELECT delivered_at IS NOT NULL FROM alert_actions WHERE device = %s", device_id
        )
        assert delivered
    finally:
        a.stop()
        if b is not None:
            b.stop()


def alert_tickets_about(rt: RequestTracker, device_id: str) -> list[int]:
    query = urllib.parse.quote(f"Subject LIKE '{device_id}: check disk-system is failing'")
    status, body = rt.rest("GET", f"/tickets?query={query}")
    assert status == 200, body
    return [int(item["id"]) for item in body["items"]]
