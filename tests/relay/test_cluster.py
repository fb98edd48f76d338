"""Issue 7, acceptance 2: three relay processes sharing a real Redis (and PostgreSQL).

An agent and a technician that reach different nodes are paired (the edge node
passes the connection to the node holding the session); losing one node ends only
the sessions with a connection on it, and the others go on. Then, in-process
nodes check the finer rules: cluster-wide rate limits, ending a session through
any node, forged node hops, draining.
"""

from __future__ import annotations

import asyncio
import itertools
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import InvalidStatus

from link.connection import Link
from link.errors import SessionLost
from protocol.code import SessionCode
from protocol.envelope import Role
from protocol.mux import Channel
from relay.config import RelayConfig
from relay.server import RelayServer
from relay.stores import open_store
from relay.testing import add_technician, create_session, http_request
from technician.client import RelayAPI
from tests.relay.test_ws import (
    AGENT,
    TECH,
    claim,
    expect_error,
    open_end,
    pair,
    recv_json,
    wait_for_state,
)
from tests.support.customer import ScriptedCustomer, technician
from tests.support.relay import RelayProcess, start_relay
from tests.support.services import (  # noqa: F401  (fixtures)
    PostgresServer,
    RedisServer,
    postgres_server,
    redis_server,
)
from tests.support.timeouts import scaled

NODE_TIMEOUT = 1.5
_databases = itertools.count()


@pytest.fixture
def nodes(
    tmp_path: Path,
    redis_server: RedisServer,  # noqa: F811
    postgres_server: PostgresServer,  # noqa: F811
) -> Iterator[tuple[list[RelayProcess], str]]:
    """Three ``puente-relay serve`` processes sharing one Redis and one PostgreSQL database."""
    database = postgres_server.new_database(f"puente_cluster_{next(_databases)}")
    env = {"PUENTE_REDIS_URL": redis_server.url, "PUENTE_DATABASE_URL": database}
    started = [
        # A short resume grace: ends cut off with a node give up within seconds.
        start_relay(
            tmp_path / f"node{i}",
            "--node-timeout",
            str(NODE_TIMEOUT),
            "--resume-grace",
            "1",
            env=env,
        )
        for i in range(3)
    ]
    try:
        yield started, database
    finally:
        for node in started:
            node.stop()


def technician_token(database_url: str) -> str:
    store = open_store(None, database_url)
    try:
        return store.add_technician("Ana Technician", time.time())[1]
    finally:
        store.close()


def test_agent_and_technician_on_different_nodes_are_paired(
    nodes: tuple[list[RelayProcess], str], tmp_path: Path
) -> None:
    (first, second, _), database = nodes
    token = technician_token(database)
    out = tmp_path / "diag.json"
    tech = technician(first.ws_url, token, "diagnostics", "--ticket", "HD-9", "--out", str(out))
    code = tech.expect(r"^code: (\d{3,9}-\d{3}-\d{3})$").group(1)
    tech.expect(r"^Read this code")
    time.sleep(0.3)  # the technician's claim reaches the first node before the agent's
    customer = ScriptedCustomer(
        second.ws_url, code, tmp_path / "logs", answers={"Diagnostics": "y"}
    )
    assert tech.wait(60) == 0, tech.output + tech.stderr
    assert customer.wait(30) == 0, customer.output + customer.stderr
    assert out.exists()
    second_log, first_log = second.stop(), first.stop()
    assert f"connection passed to node url=ws://127.0.0.1:{first.port}" in second_log
    assert "claim accepted" not in second_log
    assert "role=agent ip=127.0.0.1" in first_log and "session paired" in first_log


async def open_session(
    tech_node: RelayProcess, agent_node: RelayProcess, token: str, ticket: str
) -> tuple[Link, Link, str]:
    """Technician claims on ``tech_node`` first (so the session lives there), agent on the other."""
    api = RelayAPI(tech_node.ws_url, token)
    created = await asyncio.to_thread(api.create_session, ticket)
    code = SessionCode.new(created["nameplate"])
    waiting = asyncio.Event()
    tech_opening = asyncio.create_task(
        Link.open(
            tech_node.ws_url,
            Role.TECHNICIAN,
            code,
            ticket_id=ticket,
            token=token,
            on_waiting=lambda _: waiting.set(),
        )
    )
    await asyncio.wait_for(waiting.wait(), scaled(10))
    agent = await Link.open(agent_node.ws_url, Role.AGENT, code)
    tech = await asyncio.wait_for(tech_opening, scaled(10))
    return agent, tech, created["session_id"]


async def still_talking(agent: Link, tech: Link, text: bytes) -> None:
    await agent.send(Channel.CHAT, text)
    assert await asyncio.wait_for(tech.receive(Channel.CHAT), scaled(5)) == text
    await tech.send(Channel.CHAT, text[::-1])
    assert await asyncio.wait_for(agent.receive(Channel.CHAT), scaled(5)) == text[::-1]


async def is_lost(link: Link) -> str:
    """The session ends for this end (after its resume attempts, if it was cut off)."""
    with pytest.raises(SessionLost) as lost:
        await asyncio.wait_for(link.wait_closed(), scaled(20))
    return str(lost.value)


def test_losing_a_node_ends_only_its_own_sessions(nodes: tuple[list[RelayProcess], str]) -> None:
    (n0, n1, n2), database = nodes
    token = technician_token(database)

    async def main() -> None:
        cross = await open_session(n0, n1, token, "T-cross")  # held by n0, agent via n1
        local = await open_session(n0, n0, token, "T-local")  # held by n0
        on_n2 = await open_session(n2, n2, token, "T-n2")  # held by n2
        via_n2 = await open_session(n0, n2, token, "T-via")  # held by n0, agent via n2
        held_n2 = await open_session(n2, n1, token, "T-held")  # held by n2, agent via n1
        everything = (cross, local, on_n2, via_n2, held_n2)
        for agent, tech, _ in everything:
            await still_talking(agent, tech, b"before")
        # A technician waiting on n2 for a customer who has not come yet.
        api = RelayAPI(n2.ws_url, token)
        late = await asyncio.to_thread(api.create_session, "T-late")
        late_code = SessionCode.new(late["nameplate"])
        waiting = asyncio.Event()
        late_tech = asyncio.create_task(
            Link.open(
                n2.ws_url,
                Role.TECHNICIAN,
                late_code,
                ticket_id="T-late",
                token=token,
                on_waiting=lambda _: waiting.set(),
            )
        )
        await asyncio.wait_for(waiting.wait(), scaled(10))

        n2.proc.send_signal(signal.SIGKILL)  # lost, not stopped: no goodbye
        for agent, tech, _ in (on_n2, via_n2, held_n2):
            await is_lost(agent)
            await is_lost(tech)
        for agent, tech, _ in (cross, local):
            await still_talking(agent, tech, b"after losing n2")
        with pytest.raises(Exception):  # noqa: B017 - any link failure: n2 is gone
            await late_tech

        # Once n2 counts as lost, its waiting session moves: the technician comes back
        # through n0 and the customer joins through n1.
        await asyncio.sleep(NODE_TIMEOUT * 2.5)
        waiting.clear()
        retry = asyncio.create_task(
            Link.open(
                n0.ws_url,
                Role.TECHNICIAN,
                late_code,
                ticket_id="T-late",
                token=token,
                on_waiting=lambda _: waiting.set(),
            )
        )
        await asyncio.wait_for(waiting.wait(), scaled(10))
        late_agent = await Link.open(n1.ws_url, Role.AGENT, late_code)
        await still_talking(late_agent, await retry, b"recovered")

        # The store knows what happened to each session.
        store = open_store(None, database)
        try:
            for _, _, session_id in (on_n2, held_n2):
                record = store.get_session(session_id)
                assert record is not None and record.state == "ended"
                assert record.end_reason == "the relay node holding the session was lost"
            via = store.get_session(via_n2[2])
            assert via is not None and via.state == "ended"
            # Its agent's hop through n2 dropped: n0 waited for a resume, then ended it.
            assert via.end_reason == "the agent did not reconnect within 1 seconds"
            for _, _, session_id in (cross, local):
                record = store.get_session(session_id)
                assert record is not None and record.state == "paired"
        finally:
            store.close()

        # Stopping n1 (SIGTERM) ends the cross session, whose agent came through it.
        n1.proc.send_signal(signal.SIGTERM)
        assert "restarting" in await is_lost(cross[0])
        await is_lost(cross[1])
        await still_talking(local[0], local[1], b"n0 goes on")
        for agent, tech, _ in (local,):
            await agent.close()
            await tech.close()

    asyncio.run(asyncio.wait_for(main(), scaled(60)))


# ---------------------------------------------------------------------------
# In-process nodes: the finer rules
# ---------------------------------------------------------------------------


def node_config(tmp_path: Path, redis_url: str, **settings: Any) -> RelayConfig:
    """A node sharing one SQLite file with its siblings (safe on one host)."""
    defaults: dict[str, Any] = {
        "data_dir": tmp_path / "shared",
        "port": 0,
        "redis_url": redis_url,
        "close_timeout": scaled(1),
        "housekeeping_interval": 0.05,
        "cluster_heartbeat_interval": 0.2,
        "cluster_heartbeat_ttl": 0.6,
    }
    return RelayConfig(**{**defaults, **settings})


def run_nodes(tmp_path: Path, redis_url: str, count: int, scenario: Any, **settings: Any) -> None:
    async def main() -> None:
        servers = [RelayServer(node_config(tmp_path, redis_url, **settings)) for _ in range(count)]
        for server in servers:
            await server.start()
        try:
            await scenario(*servers)
        finally:
            for server in servers:
                await server.close()

    asyncio.run(asyncio.wait_for(main(), scaled(30)))


def test_join_limits_are_cluster_wide(tmp_path: Path, redis_server: RedisServer) -> None:  # noqa: F811
    async def scenario(a: RelayServer, b: RelayServer) -> None:
        codes = []
        for i in range(5):
            async with open_end(a if i % 2 else b) as ws:
                codes.append((await claim(ws, AGENT, "99999"))["code"])
        assert codes == ["unknown_nameplate"] * 3 + ["rate_limited"] * 2

    run_nodes(tmp_path, redis_server.url, 2, scenario, joins_per_ip_per_minute=3)


def test_ending_through_any_node_reaches_the_node_holding_the_session(
    tmp_path: Path,
    redis_server: RedisServer,  # noqa: F811
) -> None:
    async def scenario(a: RelayServer, b: RelayServer) -> None:
        token = add_technician(a)
        session = await create_session(a, token)
        async with open_end(a) as agent, open_end(a, token) as tech:
            await pair(a, agent, tech, session["nameplate"])
            await agent.send(b"12345")
            assert await asyncio.wait_for(tech.recv(), scaled(5)) == b"12345"
            reply = await http_request(
                b, "DELETE", f"/api/sessions/{session['session_id']}", token=token
            )
            assert reply.status == 200 and reply.json()["state"] == "ended"
            await expect_error(agent, "ended")
            await expect_error(tech, "ended")
        # Node a still recorded what it forwarded, although b finished the session.
        async with asyncio.timeout(scaled(5)):
            while True:
                record = a.store.get_session(session["session_id"])
                assert record is not None
                if record.bytes_agent_to_tech == 5:
                    break
                await asyncio.sleep(0.02)
        assert record.end_reason == "ended through the API"

    run_nodes(tmp_path, redis_server.url, 2, scenario)


def test_forged_node_hops_are_refused(tmp_path: Path, redis_server: RedisServer) -> None:  # noqa: F811
    async def scenario(a: RelayServer) -> None:
        forged = {"X-Puente-Node-Secret": "guess", "X-Puente-Client-IP": "203.0.113.9"}
        with pytest.raises(InvalidStatus) as refused:
            async with open_end(a, headers=forged):
                pass
        assert refused.value.response.status_code == 403
        assert a.cluster is not None
        genuine = {"X-Puente-Node-Secret": a.cluster._secret, "X-Puente-Client-IP": "bad"}
        with pytest.raises(InvalidStatus):
            async with open_end(a, headers=genuine):
                pass

    run_nodes(tmp_path, redis_server.url, 1, scenario)

    async def single(relay: RelayServer) -> None:
        with pytest.raises(InvalidStatus) as refused:
            async with open_end(relay, headers={"X-Puente-Node-Secret": "x"}):
                pass
        assert refused.value.response.status_code == 403

    async def main() -> None:
        async with RelayServer(RelayConfig(data_dir=tmp_path / "solo", port=0)) as relay:
            await single(relay)

    asyncio.run(main())


def test_a_draining_node_hands_waiting_sessions_to_the_others(
    tmp_path: Path,
    redis_server: RedisServer,  # noqa: F811
) -> None:
    async def scenario(a: RelayServer, b: RelayServer) -> None:
        token = add_technician(a)
        session = await create_session(a, token)
        async with open_end(a, token) as tech:
            assert (await claim(tech, TECH, session["nameplate"]))["type"] == "waiting"
            draining = asyncio.create_task(a.drain(scaled(10)))
            await expect_error(tech, "shutdown")
        # The technician claims again through b; the agent arrives at b too.
        async with open_end(b, token) as tech, open_end(b) as agent:
            assert (await claim(tech, TECH, session["nameplate"]))["type"] == "waiting"
            assert (await claim(agent, AGENT, session["nameplate"]))["type"] == "waiting"
            assert (await recv_json(agent))["type"] == "paired"
            await recv_json(tech)
        await wait_for_state(b, token, session["session_id"], "ended")
        await asyncio.wait_for(draining, scaled(5))

    run_nodes(tmp_path, redis_server.url, 2, scenario)


def test_redis_unreachable_is_a_clear_start_error(tmp_path: Path) -> None:
    from tests.support.services import spare_port

    async def main() -> None:
        relay = RelayServer(node_config(tmp_path, f"redis://127.0.0.1:{spare_port()}/0"))
        with pytest.raises(Exception, match="Cannot reach Redis at redis://127.0.0.1:"):
            await relay.start()

    asyncio.run(main())


def test_a_passed_on_connection_keeps_order_and_backpressure(
    tmp_path: Path,
    redis_server: RedisServer,  # noqa: F811
) -> None:
    """Across the hop: bytes untouched and in order, and a slow reader slows its sender."""
    import os

    chunk = os.urandom(256 * 1024)
    count = 160  # 40 MiB: more than every buffer on the path (two relays) can hold

    async def scenario(a: RelayServer, b: RelayServer) -> None:
        token = add_technician(a)
        session = await create_session(a, token)
        async with open_end(a, token, max_queue=1) as tech, open_end(b) as agent:
            assert (await claim(tech, TECH, session["nameplate"]))["type"] == "waiting"
            assert (await claim(agent, AGENT, session["nameplate"]))["type"] == "waiting"
            assert (await recv_json(agent))["type"] == "paired"
            await recv_json(tech)
            assert b.cluster is not None and b.cluster.proxied == 1
            sent = 0

            async def send_all() -> None:
                nonlocal sent
                for i in range(count):
                    await agent.send(i.to_bytes(4, "big") + chunk)
                    sent += 1

            sender = asyncio.create_task(send_all())
            await asyncio.sleep(scaled(0.5))  # the technician reads nothing meanwhile
            assert not sender.done() and sent < count, "the hop buffered without bound"
            for i in range(count):
                message = await asyncio.wait_for(tech.recv(), scaled(5))
                assert message[:4] == i.to_bytes(4, "big") and message[4:] == chunk
            await asyncio.wait_for(sender, scaled(5))
            await agent.send([b"frag", b"mented"])  # then the hop's slow path, in order
            await agent.send(b"last")
            assert await asyncio.wait_for(tech.recv(), scaled(5)) == b"fragmented"
            assert await asyncio.wait_for(tech.recv(), scaled(5)) == b"last"
            await tech.send(b"back")
            assert await asyncio.wait_for(agent.recv(), scaled(5)) == b"back"

    run_nodes(tmp_path, redis_server.url, 2, scenario)
