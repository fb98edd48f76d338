"""The relay's WebSocket endpoint: claims, pairing, forwarding, limits and timers.

Every test runs a real in-process relay on port 0 and real websockets clients.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from protocol import envelope
from protocol.envelope import Role
from protocol.errors import ERROR_SENTENCES, ErrorCode
from relay.config import RelayConfig
from relay.server import RelayServer
from relay.testing import FakeClock, add_technician, create_session, http_request
from tests.support.timeouts import scaled

AGENT, TECH = Role.AGENT, Role.TECHNICIAN

Scenario = Callable[[RelayServer], Awaitable[None]]


def relay_config(tmp_path: Path, **settings: Any) -> RelayConfig:
    defaults: dict[str, Any] = {
        "data_dir": tmp_path / "relay",
        "port": 0,
        "close_timeout": scaled(1),
        "housekeeping_interval": 0.05,
    }
    return RelayConfig(**{**defaults, **settings})


def run_with_relay(tmp_path: Path, scenario: Scenario, **settings: Any) -> None:
    """Run ``scenario(relay)`` against a fresh relay, all within a scaled deadline."""

    async def main() -> None:
        async with RelayServer(relay_config(tmp_path, **settings)) as relay:
            await scenario(relay)

    asyncio.run(asyncio.wait_for(main(), scaled(20)))


def open_end(
    relay: RelayServer,
    token: str | None = None,
    origin: str | None = None,
    headers: dict[str, str] | None = None,
    **options: Any,
) -> connect:
    """A WebSocket client to the relay's session endpoint (use with ``async with``)."""
    headers = dict(headers or {})
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return connect(
        f"ws://127.0.0.1:{relay.port}{envelope.WS_PATH}",
        additional_headers=headers,
        origin=origin,  # type: ignore[arg-type]
        compression=None,
        max_size=None,
        open_timeout=scaled(5),
        close_timeout=scaled(1),
        **options,
    )


async def recv_json(ws: ClientConnection) -> dict[str, Any]:
    message = await asyncio.wait_for(ws.recv(), scaled(5))
    assert isinstance(message, str), "expected a text envelope message"
    decoded: dict[str, Any] = json.loads(message)
    return decoded


async def claim(ws: ClientConnection, role: Role, nameplate: str) -> dict[str, Any]:
    await ws.send(envelope.claim(role, nameplate))
    return await recv_json(ws)


async def expect_closed(ws: ClientConnection) -> None:
    """The relay closes the connection, with nothing more to read."""
    with pytest.raises(ConnectionClosed):
        await asyncio.wait_for(ws.recv(), scaled(5))


async def expect_error(ws: ClientConnection, code: str) -> None:
    message = await recv_json(ws)
    assert message["type"] == "error", message
    assert message["code"] == code, message
    assert message["message"] == ERROR_SENTENCES[ErrorCode(code)]
    await expect_closed(ws)


async def refused_claim(
    relay: RelayServer, role: Role, nameplate: str, token: str | None = None
) -> str:
    """Claim on a fresh connection and return the error code the relay answers."""
    async with open_end(relay, token) as ws:
        message = await claim(ws, role, nameplate)
        assert message["type"] == "error", message
        await expect_closed(ws)
        return str(message["code"])


async def pair(
    relay: RelayServer, agent: ClientConnection, tech: ClientConnection, nameplate: str
) -> dict[str, Any]:
    """Claim both sides (agent first) and return the ``paired`` message both received."""
    assert (await claim(agent, AGENT, nameplate))["type"] == "waiting"
    assert (await claim(tech, TECH, nameplate))["type"] == "waiting"
    paired_agent = await recv_json(agent)
    paired_tech = await recv_json(tech)
    assert paired_agent == paired_tech
    assert paired_agent["type"] == "paired"
    return paired_agent


async def session_state(relay: RelayServer, token: str, session_id: str) -> dict[str, Any]:
    reply = await http_request(relay, "GET", f"/api/sessions/{session_id}", token=token)
    assert reply.status == 200
    state: dict[str, Any] = reply.json()
    return state


async def wait_for_state(
    relay: RelayServer, token: str, session_id: str, state: str
) -> dict[str, Any]:
    """Poll until the session reaches ``state`` (the relay records ends asynchronously)."""
    async with asyncio.timeout(scaled(5)):
        while True:
            session = await session_state(relay, token, session_id)
            if session["state"] == state:
                return session
            await asyncio.sleep(0.02)


# ---------------------------------------------------------------------------
# pairing and forwarding
# ---------------------------------------------------------------------------


def test_pairing_and_byte_exact_forwarding_both_ways(tmp_path: Path) -> None:
    async def scenario(relay: RelayServer) -> None:
        token = add_technician(relay, "Ana Lopez")
        session = await create_session(relay, token, "T-42", "https://desk.example/T-42")
        async with open_end(relay) as agent, open_end(relay, token) as tech:
            waiting = await claim(agent, AGENT, session["nameplate"])
            assert waiting["type"] == "waiting"
            assert 595 <= waiting["expires_in"] <= 600
            assert (await claim(tech, TECH, session["nameplate"]))["type"] == "waiting"
            paired = await recv_json(agent)
            assert paired == {
                "type": "paired",
                "session_id": session["session_id"],
                "ticket_id": "T-42",
                "ticket_url": "https://desk.example/T-42",
                "technician": "Ana Lopez",
                "resume_grace": 60.0,
            }
            assert await recv_json(tech) == paired
            assert (await session_state(relay, token, session["session_id"]))["state"] == "paired"

            to_tech = [os.urandom(n) for n in (1, 100, 65536, envelope.MAX_RECORD_SIZE)]
            to_agent = [os.urandom(n) for n in (7, 4096, 300_000)]
            for payload in to_tech:
                await agent.send(payload)
            for payload in to_agent:
                await tech.send(payload)
            for payload in to_tech:
                assert await asyncio.wait_for(tech.recv(), scaled(5)) == payload
            for payload in to_agent:
                assert await asyncio.wait_for(agent.recv(), scaled(5)) == payload
            live = await session_state(relay, token, session["session_id"])
            assert live["bytes_agent_to_tech"] == sum(map(len, to_tech))
            assert live["bytes_tech_to_agent"] == sum(map(len, to_agent))

            await agent.send(envelope.encode({"type": "end", "reason": "finished"}))
            gone = await recv_json(tech)
            assert gone == {"type": "peer_gone", "reason": "the agent ended the session"}
            await expect_closed(tech)
            await expect_closed(agent)
        ended = await wait_for_state(relay, token, session["session_id"], "ended")
        assert ended["end_reason"] == "the agent ended the session: finished"
        assert ended["bytes_agent_to_tech"] == sum(map(len, to_tech))
        assert ended["bytes_tech_to_agent"] == sum(map(len, to_agent))
        assert ended["paired_at"] and ended["ended_at"]

    run_with_relay(tmp_path, scenario)


def test_technician_may_claim_first(tmp_path: Path) -> None:
    async def scenario(relay: RelayServer) -> None:
        token = add_technician(relay)
        session = await create_session(relay, token)
        async with open_end(relay, token) as tech, open_end(relay) as agent:
            assert (await claim(tech, TECH, session["nameplate"]))["type"] == "waiting"
            assert (await claim(agent, AGENT, session["nameplate"]))["type"] == "waiting"
            assert (await recv_json(tech))["type"] == "paired"
            assert (await recv_json(agent))["type"] == "paired"
            await tech.send(b"hello agent")
            assert await asyncio.wait_for(agent.recv(), scaled(5)) == b"hello agent"

    run_with_relay(tmp_path, scenario)


def test_disconnect_tells_the_peer_and_ends_the_session(tmp_path: Path) -> None:
    async def scenario(relay: RelayServer) -> None:
        token = add_technician(relay)
        session = await create_session(relay, token)
        async with open_end(relay) as agent, open_end(relay, token) as tech:
            await pair(relay, agent, tech, session["nameplate"])
            await tech.close()
            gone = await recv_json(agent)
            assert gone == {"type": "peer_gone", "reason": "the technician disconnected"}
            await expect_closed(agent)
        ended = await wait_for_state(relay, token, session["session_id"], "ended")
        assert ended["end_reason"] == "the technician disconnected"
        # Single use: the nameplate cannot be claimed again.
        assert await refused_claim(relay, AGENT, session["nameplate"]) == "used"
        assert await refused_claim(relay, TECH, session["nameplate"], token) == "used"

    run_with_relay(tmp_path, scenario)


def test_waiting_end_may_reconnect(tmp_path: Path) -> None:
    async def scenario(relay: RelayServer) -> None:
        token = add_technician(relay)
        session = await create_session(relay, token)
        async with open_end(relay) as agent:
            assert (await claim(agent, AGENT, session["nameplate"]))["type"] == "waiting"
        async with open_end(relay) as agent, open_end(relay, token) as tech:
            await pair(relay, agent, tech, session["nameplate"])

    run_with_relay(tmp_path, scenario)


def test_backpressure_slows_the_sender_instead_of_buffering(tmp_path: Path) -> None:
    chunk = os.urandom(256 * 1024)
    count = 192  # 48 MiB: more than all the buffers on the path can hold

    def small_buffer_socket(port: int) -> socket.socket:
        # Small client-side buffers leave the relay's own buffering as the thing measured.
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)
        sock.connect(("127.0.0.1", port))
        sock.setblocking(False)
        return sock

    async def scenario(relay: RelayServer) -> None:
        token = add_technician(relay)
        session = await create_session(relay, token)
        async with (
            open_end(relay, sock=small_buffer_socket(relay.port)) as agent,
            open_end(relay, token, sock=small_buffer_socket(relay.port), max_queue=1) as tech,
        ):
            await pair(relay, agent, tech, session["nameplate"])
            sent = 0

            async def send_all() -> None:
                nonlocal sent
                for i in range(count):
                    await agent.send(i.to_bytes(4, "big") + chunk)
                    sent += 1

            sender = asyncio.create_task(send_all())
            await asyncio.sleep(scaled(0.5))  # the technician reads nothing meanwhile
            assert not sender.done() and sent < count, "the relay buffered without bound"
            for i in range(count):
                message = await asyncio.wait_for(tech.recv(), scaled(5))
                assert message[:4] == i.to_bytes(4, "big") and message[4:] == chunk
            await asyncio.wait_for(sender, scaled(5))

    run_with_relay(tmp_path, scenario)


def test_fragmented_messages_keep_their_place(tmp_path: Path) -> None:
    """Whole messages skip the reader task; a fragmented one must not be overtaken."""

    async def scenario(relay: RelayServer) -> None:
        token = add_technician(relay)
        session = await create_session(relay, token)
        async with open_end(relay) as agent, open_end(relay, token) as tech:
            await pair(relay, agent, tech, session["nameplate"])
            await agent.send(b"first")
            await agent.send([b"sec", b"ond"])  # one message in three frames
            for i in range(20):
                await agent.send(b"after-%d" % i)
            received = [await asyncio.wait_for(tech.recv(), scaled(5)) for _ in range(22)]
            assert received == [b"first", b"second"] + [b"after-%d" % i for i in range(20)]
            await tech.send(b"reply")
            assert await asyncio.wait_for(agent.recv(), scaled(5)) == b"reply"

    run_with_relay(tmp_path, scenario)


# ---------------------------------------------------------------------------
# ending and burning
# ---------------------------------------------------------------------------


def test_burn_after_pairing_fails_the_session(tmp_path: Path) -> None:
    async def scenario(relay: RelayServer) -> None:
        token = add_technician(relay)
        session = await create_session(relay, token)
        async with open_end(relay) as agent, open_end(relay, token) as tech:
            await pair(relay, agent, tech, session["nameplate"])
            await tech.send(envelope.encode({"type": "burn", "reason": "key confirmation failed"}))
            gone = await recv_json(agent)
            assert gone == {"type": "peer_gone", "reason": "the technician burnt the session code"}
            await expect_closed(agent)
            await expect_closed(tech)
        failed = await wait_for_state(relay, token, session["session_id"], "failed")
        assert failed["end_reason"].endswith("key confirmation failed")
        assert await refused_claim(relay, AGENT, session["nameplate"]) == "used"

    run_with_relay(tmp_path, scenario)


def test_burn_while_waiting_kills_the_nameplate(tmp_path: Path) -> None:
    async def scenario(relay: RelayServer) -> None:
        token = add_technician(relay)
        session = await create_session(relay, token)
        async with open_end(relay) as agent:
            assert (await claim(agent, AGENT, session["nameplate"]))["type"] == "waiting"
            await agent.send(envelope.encode({"type": "burn"}))
            await expect_closed(agent)
        await wait_for_state(relay, token, session["session_id"], "failed")
        assert await refused_claim(relay, AGENT, session["nameplate"]) == "used"
        assert await refused_claim(relay, TECH, session["nameplate"], token) == "used"

    run_with_relay(tmp_path, scenario)


def test_delete_ends_live_connections(tmp_path: Path) -> None:
    async def scenario(relay: RelayServer) -> None:
        token = add_technician(relay)
        paired_session = await create_session(relay, token, "T-1")
        waiting_session = await create_session(relay, token, "T-2")
        async with (
            open_end(relay) as agent,
            open_end(relay, token) as tech,
            open_end(relay) as lone,
        ):
            await pair(relay, agent, tech, paired_session["nameplate"])
            assert (await claim(lone, AGENT, waiting_session["nameplate"]))["type"] == "waiting"
            for session in (paired_session, waiting_session):
                path = f"/api/sessions/{session['session_id']}"
                reply = await http_request(relay, "DELETE", path, token=token)
                assert reply.status == 200 and reply.json()["state"] == "ended"
            await expect_error(agent, "ended")
            await expect_error(tech, "ended")
            await expect_error(lone, "ended")

    run_with_relay(tmp_path, scenario)


def test_unknown_text_after_pairing_is_refused(tmp_path: Path) -> None:
    async def scenario(relay: RelayServer) -> None:
        token = add_technician(relay)
        session = await create_session(relay, token)
        async with open_end(relay) as agent, open_end(relay, token) as tech:
            await pair(relay, agent, tech, session["nameplate"])
            await agent.send(envelope.encode({"type": "chat", "text": "hi"}))
            await expect_error(agent, "bad_request")
            assert (await recv_json(tech))["type"] == "peer_gone"
            await expect_closed(tech)

    run_with_relay(tmp_path, scenario)


# ---------------------------------------------------------------------------
# refusals
# ---------------------------------------------------------------------------


def test_claim_refusals(tmp_path: Path) -> None:
    async def scenario(relay: RelayServer) -> None:
        ana = add_technician(relay, "Ana")
        bob = add_technician(relay, "Bob")
        session = await create_session(relay, ana)
        nameplate = session["nameplate"]
        unknown = "999" if nameplate != "999" else "998"
        assert await refused_claim(relay, AGENT, unknown) == "unknown_nameplate"
        assert await refused_claim(relay, TECH, nameplate) == "unauthorized"  # no token
        assert await refused_claim(relay, TECH, nameplate, bob) == "unauthorized"
        async with open_end(relay) as first:
            assert (await claim(first, AGENT, nameplate))["type"] == "waiting"
            assert await refused_claim(relay, AGENT, nameplate) == "role_taken"
            # Two agents wanted this code: the technician gets a new one (issue 15).
            async with open_end(relay, ana) as tech:
                reissued = await claim(tech, TECH, nameplate)
                assert reissued["type"] == "reissued" and reissued["nameplate"] != nameplate
            await expect_error(first, "used")
        assert await refused_claim(relay, TECH, nameplate, ana) == "used"
        fresh = reissued["nameplate"]
        async with open_end(relay) as first:
            assert (await claim(first, AGENT, fresh))["type"] == "waiting"
            async with open_end(relay, ana) as tech:
                assert (await claim(tech, TECH, fresh))["type"] == "waiting"
                assert (await recv_json(first))["type"] == "paired"
                assert await refused_claim(relay, TECH, fresh, ana) == "used"

    run_with_relay(tmp_path, scenario)


def test_bad_token_or_origin_is_refused_at_the_upgrade(tmp_path: Path) -> None:
    async def scenario(relay: RelayServer) -> None:
        token = add_technician(relay)
        with pytest.raises(InvalidStatus) as refused:
            async with open_end(relay, token + "x"):
                pass
        assert refused.value.response.status_code == 401
        with pytest.raises(InvalidStatus) as refused:
            async with open_end(relay, origin="https://evil.example"):
                pass
        assert refused.value.response.status_code == 403
        session = await create_session(relay, token)
        async with open_end(relay, token, origin="https://desk.example") as tech:
            assert (await claim(tech, TECH, session["nameplate"]))["type"] == "waiting"

    run_with_relay(tmp_path, scenario, allowed_origins=("https://desk.example",))


@pytest.mark.parametrize(
    ("first_message", "code"),
    [
        ("not json", "bad_request"),
        (b"\x00binary before pairing", "bad_request"),
        ('{"type": "hello"}', "bad_request"),
        ("[1, 2]", "bad_request"),
        ('{"type": "claim", "version": 1, "role": "boss", "nameplate": "123"}', "bad_request"),
        ('{"type": "claim", "version": 1, "role": "agent", "nameplate": "12"}', "bad_request"),
        ('{"type": "claim", "version": 99, "role": "agent", "nameplate": "123"}', "version"),
        ("x" * 5000, "bad_request"),
    ],
)
def test_malformed_first_message(tmp_path: Path, first_message: str | bytes, code: str) -> None:
    async def scenario(relay: RelayServer) -> None:
        async with open_end(relay) as ws:
            await ws.send(first_message)
            await expect_error(ws, code)

    run_with_relay(tmp_path, scenario)


def test_binary_while_waiting_is_refused_and_frees_the_role(tmp_path: Path) -> None:
    async def scenario(relay: RelayServer) -> None:
        token = add_technician(relay)
        session = await create_session(relay, token)
        async with open_end(relay) as agent:
            assert (await claim(agent, AGENT, session["nameplate"]))["type"] == "waiting"
            await agent.send(b"too early")
            await expect_error(agent, "bad_request")
        async with open_end(relay) as agent, open_end(relay, token) as tech:
            await pair(relay, agent, tech, session["nameplate"])

    run_with_relay(tmp_path, scenario)


# ---------------------------------------------------------------------------
# expiry, rate limits, timeouts
# ---------------------------------------------------------------------------


def test_nameplates_expire(tmp_path: Path) -> None:
    clock = FakeClock()

    async def scenario(relay: RelayServer) -> None:
        token = add_technician(relay)
        stale = await create_session(relay, token, "T-1")
        waited = await create_session(relay, token, "T-2")
        async with open_end(relay) as agent:
            assert (await claim(agent, AGENT, waited["nameplate"]))["expires_in"] == 600
            clock.advance(601)
            await expect_error(agent, "expired")  # told by the housekeeping timer
        assert await refused_claim(relay, AGENT, stale["nameplate"]) == "expired"
        assert await refused_claim(relay, TECH, stale["nameplate"], token) == "expired"
        await wait_for_state(relay, token, waited["session_id"], "expired")
        stored = relay.store.get_session(stale["session_id"])
        assert stored is not None and str(stored.state) == "expired"

    run_with_relay(tmp_path, scenario, clock=clock)


def test_claims_per_ip_are_rate_limited(tmp_path: Path) -> None:
    clock = FakeClock()

    async def scenario(relay: RelayServer) -> None:
        token = add_technician(relay)
        session = await create_session(relay, token)
        unknown = "999" if session["nameplate"] != "999" else "998"
        for _ in range(3):  # scanning unknown nameplates uses up the budget...
            assert await refused_claim(relay, AGENT, unknown) == "unknown_nameplate"
        # ...so even the right nameplate is refused now
        assert await refused_claim(relay, AGENT, session["nameplate"]) == "rate_limited"
        # Technicians authenticate, so their claims do not count.
        async with open_end(relay, token) as tech:
            assert (await claim(tech, TECH, session["nameplate"]))["type"] == "waiting"
        clock.advance(61)
        async with open_end(relay) as agent:
            assert (await claim(agent, AGENT, session["nameplate"]))["type"] == "waiting"

    run_with_relay(tmp_path, scenario, clock=clock, joins_per_ip_per_minute=3)


async def claim_code_via(relay: RelayServer, forwarded_for: str) -> str:
    """The answer to an agent claim of an unknown nameplate sent with X-Forwarded-For."""
    async with open_end(relay, headers={"X-Forwarded-For": forwarded_for}) as ws:
        return str((await claim(ws, AGENT, "999"))["code"])


def test_forwarded_address_counts_only_behind_a_trusted_proxy(tmp_path: Path) -> None:
    async def scenario(relay: RelayServer) -> None:
        assert await claim_code_via(relay, "203.0.113.1") == "unknown_nameplate"
        assert await claim_code_via(relay, "203.0.113.1") == "rate_limited"
        assert await claim_code_via(relay, "203.0.113.2") == "unknown_nameplate"
        # A client cannot escape its budget by prepending a made-up hop.
        assert await claim_code_via(relay, "198.51.100.9, 203.0.113.1") == "rate_limited"

    run_with_relay(tmp_path, scenario, trusted_proxies=("127.0.0.1",), joins_per_ip_per_minute=1)


def test_forwarded_address_is_ignored_from_untrusted_peers(tmp_path: Path) -> None:
    async def scenario(relay: RelayServer) -> None:
        assert await claim_code_via(relay, "203.0.113.1") == "unknown_nameplate"
        assert await claim_code_via(relay, "203.0.113.2") == "rate_limited"

    run_with_relay(tmp_path, scenario, joins_per_ip_per_minute=1)


def test_agent_claims_per_nameplate_are_limited(tmp_path: Path) -> None:
    async def scenario(relay: RelayServer) -> None:
        token = add_technician(relay)
        session = await create_session(relay, token)
        for _ in range(2):
            async with open_end(relay) as agent:
                assert (await claim(agent, AGENT, session["nameplate"]))["type"] == "waiting"
        assert await refused_claim(relay, AGENT, session["nameplate"]) == "rate_limited"

    run_with_relay(tmp_path, scenario, claims_per_nameplate=2)


def test_silent_client_is_dropped_without_disturbing_others(tmp_path: Path) -> None:
    async def scenario(relay: RelayServer) -> None:
        token = add_technician(relay)
        session = await create_session(relay, token)
        async with open_end(relay) as silent:
            async with open_end(relay) as agent, open_end(relay, token) as tech:
                await pair(relay, agent, tech, session["nameplate"])
                started = asyncio.get_running_loop().time()
                for i in range(20):  # traffic keeps flowing while the silent one waits
                    await agent.send(bytes([i]) * 1000)
                    assert await asyncio.wait_for(tech.recv(), scaled(5)) == bytes([i]) * 1000
                await expect_error(silent, "bad_request")
                elapsed = asyncio.get_running_loop().time() - started
                assert elapsed < scaled(3)
                await tech.send(b"still here")
                assert await asyncio.wait_for(agent.recv(), scaled(5)) == b"still here"

    run_with_relay(tmp_path, scenario, claim_timeout=0.3)


def test_idle_sessions_are_closed(tmp_path: Path) -> None:
    async def scenario(relay: RelayServer) -> None:
        token = add_technician(relay)
        session = await create_session(relay, token)
        async with open_end(relay) as agent, open_end(relay, token) as tech:
            await pair(relay, agent, tech, session["nameplate"])
            await agent.send(b"one message")
            assert await asyncio.wait_for(tech.recv(), scaled(5)) == b"one message"
            await expect_error(agent, "idle")
            await expect_error(tech, "idle")
        ended = await wait_for_state(relay, token, session["session_id"], "ended")
        assert ended["bytes_agent_to_tech"] == len(b"one message")

    run_with_relay(tmp_path, scenario, idle_timeout=0.3)


def test_oversized_message_closes_only_its_session(tmp_path: Path) -> None:
    limit = 64 * 1024

    async def scenario(relay: RelayServer) -> None:
        token = add_technician(relay)
        first = await create_session(relay, token, "T-1")
        second = await create_session(relay, token, "T-2")
        async with (
            open_end(relay) as agent1,
            open_end(relay, token) as tech1,
            open_end(relay) as agent2,
            open_end(relay, token) as tech2,
        ):
            await pair(relay, agent1, tech1, first["nameplate"])
            await pair(relay, agent2, tech2, second["nameplate"])
            await agent1.send(b"x" * (limit + 1))
            gone = await recv_json(tech1)
            assert gone == {
                "type": "peer_gone",
                "reason": "the agent sent a message over the size limit",
            }
            await expect_closed(tech1)
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(agent1.recv(), scaled(5))
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
            for payload in (b"y" * limit, b"z"):
                await agent2.send(payload)
                assert await asyncio.wait_for(tech2.recv(), scaled(5)) == payload
        await wait_for_state(relay, token, first["session_id"], "ended")

    run_with_relay(tmp_path, scenario, max_message_size=limit)


def test_connection_cap(tmp_path: Path) -> None:
    async def scenario(relay: RelayServer) -> None:
        async with open_end(relay):
            await asyncio.sleep(0.05)  # let the first connection's handler start
            with pytest.raises(InvalidStatus) as refused:
                async with open_end(relay):
                    pass
            assert refused.value.response.status_code == 503
        health = await http_request(relay, "GET", "/healthz")
        assert health.status == 200  # REST is not counted as a session connection

    run_with_relay(tmp_path, scenario, max_connections=1)


def test_shutdown_tells_everyone(tmp_path: Path) -> None:
    async def main() -> None:
        relay = RelayServer(relay_config(tmp_path))
        await relay.start()
        token = add_technician(relay)
        paired_session = await create_session(relay, token, "T-1")
        waiting_session = await create_session(relay, token, "T-2")
        async with (
            open_end(relay) as agent,
            open_end(relay, token) as tech,
            open_end(relay) as lone,
        ):
            await pair(relay, agent, tech, paired_session["nameplate"])
            assert (await claim(lone, AGENT, waiting_session["nameplate"]))["type"] == "waiting"
            closing = asyncio.create_task(relay.close())
            for ws in (agent, tech, lone):
                await expect_error(ws, "shutdown")
            await closing
        # A restarted relay keeps the waiting code usable and the paired one finished.
        async with RelayServer(relay_config(tmp_path)) as again:
            stored = again.store.get_session(paired_session["session_id"])
            assert stored is not None and stored.state == "ended"
            async with open_end(again) as agent:
                reply = await claim(agent, AGENT, waiting_session["nameplate"])
                assert reply["type"] == "waiting"

    asyncio.run(asyncio.wait_for(main(), scaled(20)))


def test_logs_hold_metadata_but_never_forwarded_bytes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    secret_payload = b"SECRET-SCREEN-CONTENT-4242"

    async def scenario(relay: RelayServer) -> None:
        token = add_technician(relay)
        session = await create_session(relay, token)
        async with open_end(relay) as agent, open_end(relay, token) as tech:
            await pair(relay, agent, tech, session["nameplate"])
            await agent.send(secret_payload)
            assert await asyncio.wait_for(tech.recv(), scaled(5)) == secret_payload
            await tech.send(envelope.encode({"type": "end", "reason": "PRIVATE-REASON"}))
            assert (await recv_json(agent))["type"] == "peer_gone"
            await expect_closed(agent)
        await wait_for_state(relay, token, session["session_id"], "ended")
        caplog.set_level(logging.DEBUG, logger="relay")
        run_log = caplog.text
        assert session["session_id"] in run_log and session["nameplate"] in run_log
        assert f"bytes_agent_to_tech={len(secret_payload)}" in run_log
        assert secret_payload.decode() not in run_log
        assert secret_payload.hex() not in run_log
        assert "PRIVATE-REASON" not in run_log
        assert token not in run_log and token.split("_", 2)[2] not in run_log

    caplog.set_level(logging.DEBUG, logger="relay")
    run_with_relay(tmp_path, scenario)
