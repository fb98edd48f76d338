"""The relay's side of resume: suspend on a drop, let the right end back in, time out.

A real in-process relay on port 0 and raw websockets clients playing the two ends;
"dropping" an end aborts its TCP connection with no close handshake.
"""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection

from protocol import envelope
from relay.server import RelayServer
from relay.testing import FakeClock, add_technician, create_session
from tests.relay.test_ws import (
    AGENT,
    TECH,
    expect_closed,
    expect_error,
    open_end,
    pair,
    recv_json,
    run_with_relay,
    wait_for_state,
)
from tests.support.timeouts import scaled

RESUME_ID = bytes(range(16))
VERIFIER = hashlib.sha256(RESUME_ID).hexdigest()


def resume_message(role: envelope.Role, session_id: str, resume_id: bytes = RESUME_ID) -> str:
    return envelope.encode(
        {
            "type": "resume",
            "version": 1,
            "role": str(role),
            "session_id": session_id,
            "resume_id": resume_id.hex(),
        }
    )


async def make_resumable(*ends: ClientConnection) -> None:
    for ws in ends:
        await ws.send(envelope.encode({"type": "resumable", "verifier": VERIFIER}))
    await asyncio.sleep(0.1)  # let the relay read them


def drop(ws: ClientConnection) -> None:
    ws.transport.abort()


async def setup(relay: RelayServer) -> tuple[str, dict[str, Any]]:
    token = add_technician(relay)
    return token, await create_session(relay, token)


def test_paired_announces_the_grace_period(tmp_path: Path) -> None:
    async def scenario(relay: RelayServer) -> None:
        _, session = await setup(relay)
        async with open_end(relay) as agent, open_end(relay, _) as tech:
            paired = await pair(relay, agent, tech, session["nameplate"])
            assert paired["resume_grace"] == 60.0

    run_with_relay(tmp_path, scenario)


def test_a_dropped_agent_comes_back_and_forwarding_goes_on(tmp_path: Path) -> None:
    async def scenario(relay: RelayServer) -> None:
        token, session = await setup(relay)
        async with open_end(relay) as agent, open_end(relay, token) as tech:
            await pair(relay, agent, tech, session["nameplate"])
            await make_resumable(agent, tech)
            drop(agent)
            assert await recv_json(tech) == {"type": "peer_suspended", "grace": 60}
            await tech.send(b"lost while the agent is away")  # dropped, not an error
            async with open_end(relay) as again:
                await again.send(resume_message(AGENT, session["session_id"]))
                assert await recv_json(again) == {"type": "resumed"}
                assert await recv_json(tech) == {"type": "resumed"}
                await tech.send(b"after")
                assert await asyncio.wait_for(again.recv(), scaled(5)) == b"after"
                await again.send(b"back")
                assert await asyncio.wait_for(tech.recv(), scaled(5)) == b"back"
            state = await wait_for_state(relay, token, session["session_id"], "ended")
            assert state["end_reason"] == "the agent disconnected"  # clean close: no resume

    run_with_relay(tmp_path, scenario)


def test_only_the_right_resume_id_and_technician_get_back_in(tmp_path: Path) -> None:
    async def scenario(relay: RelayServer) -> None:
        token, session = await setup(relay)
        other_token = add_technician(relay, "Mallory")
        sid = session["session_id"]
        async with open_end(relay) as agent, open_end(relay, token) as tech:
            await pair(relay, agent, tech, session["nameplate"])
            await make_resumable(agent, tech)
            drop(tech)
            assert (await recv_json(agent))["type"] == "peer_suspended"
            for ws_token, message in (
                (token, resume_message(TECH, sid, bytes(16))),  # wrong id
                (token, resume_message(TECH, "no-such-session")),
                (other_token, resume_message(TECH, sid)),  # another technician
                (None, resume_message(TECH, sid)),  # no account at all
            ):
                async with open_end(relay, ws_token) as intruder:
                    await intruder.send(message)
                    await expect_error(intruder, "not_resumable")
            async with open_end(relay, token) as again:
                await again.send(resume_message(TECH, sid))
                assert await recv_json(again) == {"type": "resumed"}
                assert await recv_json(agent) == {"type": "resumed"}

    run_with_relay(tmp_path, scenario)


def test_an_end_without_a_verifier_ends_the_session_on_a_drop(tmp_path: Path) -> None:
    async def scenario(relay: RelayServer) -> None:
        token, session = await setup(relay)
        async with open_end(relay) as agent, open_end(relay, token) as tech:
            await pair(relay, agent, tech, session["nameplate"])
            drop(agent)
            gone = await recv_json(tech)
            assert gone == {"type": "peer_gone", "reason": "the agent disconnected abruptly"}
            async with open_end(relay) as again:
                await again.send(resume_message(AGENT, session["session_id"]))
                await expect_error(again, "not_resumable")

    run_with_relay(tmp_path, scenario)


def test_a_stale_connection_is_replaced_and_the_peer_rebuilds_the_link(tmp_path: Path) -> None:
    """The agent noticed a dead network before the relay did: it just comes back."""

    async def scenario(relay: RelayServer) -> None:
        token, session = await setup(relay)
        async with open_end(relay) as agent, open_end(relay, token) as tech:
            await pair(relay, agent, tech, session["nameplate"])
            await make_resumable(agent, tech)
            async with open_end(relay) as again:
                await again.send(resume_message(AGENT, session["session_id"]))
                assert await recv_json(again) == {"type": "resumed"}
                assert await recv_json(tech) == {"type": "resumed"}
                await expect_closed(agent)  # the old connection is let go
                await tech.send(b"to the new one")
                assert await asyncio.wait_for(again.recv(), scaled(5)) == b"to the new one"

    run_with_relay(tmp_path, scenario)


def test_nobody_back_within_the_grace_period_ends_it_and_says_who(tmp_path: Path) -> None:
    clock = FakeClock()

    async def scenario(relay: RelayServer) -> None:
        token, session = await setup(relay)
        async with open_end(relay) as agent, open_end(relay, token) as tech:
            await pair(relay, agent, tech, session["nameplate"])
            await make_resumable(agent, tech)
            drop(agent)
            assert (await recv_json(tech))["type"] == "peer_suspended"
            clock.advance(59)
            await asyncio.sleep(0.2)
            clock.advance(1)
            gone = await recv_json(tech)
            assert gone == {
                "type": "peer_gone",
                "reason": "the agent did not reconnect within 60 seconds",
            }
            await expect_closed(tech)
        state = await wait_for_state(relay, token, session["session_id"], "ended")
        assert state["end_reason"] == "the agent did not reconnect within 60 seconds"
        async with open_end(relay) as late:
            await late.send(resume_message(AGENT, session["session_id"]))
            await expect_error(late, "not_resumable")

    run_with_relay(tmp_path, scenario, clock=clock)


def test_both_ends_away_then_back(tmp_path: Path) -> None:
    async def scenario(relay: RelayServer) -> None:
        token, session = await setup(relay)
        sid = session["session_id"]
        async with open_end(relay) as agent, open_end(relay, token) as tech:
            await pair(relay, agent, tech, session["nameplate"])
            await make_resumable(agent, tech)
            drop(agent)
            assert (await recv_json(tech))["type"] == "peer_suspended"
            drop(tech)
            await asyncio.sleep(0.1)
        async with open_end(relay) as agent, open_end(relay, token) as tech:
            await agent.send(resume_message(AGENT, sid))
            waiting = await recv_json(agent)
            assert waiting["type"] == "waiting" and 0 < waiting["expires_in"] <= 60
            await tech.send(resume_message(TECH, sid))
            assert await recv_json(tech) == {"type": "resumed"}
            assert await recv_json(agent) == {"type": "resumed"}

    run_with_relay(tmp_path, scenario)
