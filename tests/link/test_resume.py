"""Resume through a real relay process, with a fault-injecting proxy cutting the agent off.

The two ends are real :class:`link.connection.Link` objects (the one adapter both the
agent and the technician use), the relay is a real ``puente-relay serve`` process,
and the proxy drops the agent's TCP connection without a close handshake, as a dead
network would, and refuses new connections for the length of the cut.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from pathlib import Path

from link.connection import BACKOFF_CAP, Link, backoff_delay
from link.errors import SessionLost
from protocol.code import SessionCode
from protocol.envelope import Role
from protocol.mux import Channel
from relay.config import RelayConfig
from technician.client import RelayAPI
from tests.support.proxy import FaultInjectingProxy
from tests.support.relay import RelayProcess, start_relay
from tests.support.timeouts import scaled

CUT_SECONDS = 10.0


async def open_pair(relay: RelayProcess, agent_url: str) -> tuple[Link, Link]:
    token = relay.add_technician("Ana Technician")
    api = RelayAPI(relay.ws_url, token)
    created = await asyncio.to_thread(api.create_session, "HD-7")
    code = SessionCode.new(created["nameplate"])
    tech_task = asyncio.create_task(
        Link.open(relay.ws_url, Role.TECHNICIAN, code, ticket_id="HD-7", token=token)
    )
    agent = await Link.open(agent_url, Role.AGENT, code)
    tech = await tech_task
    return agent, tech


def record_states(link: Link) -> list[str]:
    states: list[str] = []
    link.on_link_state.append(states.append)
    return states


def test_default_grace_is_sixty_seconds() -> None:
    assert RelayConfig(data_dir=".").resume_grace == 60.0


def test_backoff_is_jittered_exponential_and_capped() -> None:
    assert backoff_delay(0) == 0.0
    assert [backoff_delay(n, lambda: 0.0) for n in range(1, 6)] == [0.25, 0.5, 1.0, 2.0, 2.0]
    assert [backoff_delay(n, lambda: 1.0) for n in range(1, 6)] == [0.5, 1.0, 2.0, 4.0, 4.0]
    assert all(backoff_delay(50) <= BACKOFF_CAP for _ in range(100))


def test_a_ten_second_cut_during_a_long_transfer_resumes_without_loss(
    relay_process: RelayProcess,
) -> None:
    async def scenario() -> None:
        with FaultInjectingProxy("127.0.0.1", relay_process.port) as proxy:
            agent, tech = await open_pair(relay_process, proxy.url)
            assert agent.resume_grace == 60.0  # the relay's default, announced in "paired"
            agent_states, tech_states = record_states(agent), record_states(tech)
            chunks = [bytes([i % 251]) * 8192 + b"%06d" % i for i in range(700)]
            received: list[bytes] = []

            async def stream() -> None:
                # A long transfer: ~5.6 MB over ~14 s, so the cut lands in the middle.
                for chunk in chunks:
                    await agent.send(Channel.DIAGNOSTICS, chunk)
                    await asyncio.sleep(0.02)

            async def collect() -> None:
                while len(received) < len(chunks):
                    payload = await tech.receive(Channel.DIAGNOSTICS)
                    assert payload is not None, "the session ended during the cut"
                    received.append(payload)

            sender = asyncio.create_task(stream())
            collector = asyncio.create_task(collect())
            await asyncio.sleep(2)
            proxy.cut()
            cut_at = time.monotonic()
            before = len(received)
            await asyncio.sleep(CUT_SECONDS)
            during = len(received) - before
            proxy.restore()
            await asyncio.wait_for(asyncio.gather(sender, collector), scaled(40))
            resumed_after = time.monotonic() - cut_at

            # Every chunk arrived once, in order, and the whole matches byte for byte.
            assert len(received) == len(chunks)
            whole = hashlib.sha256(b"".join(chunks)).hexdigest()
            assert hashlib.sha256(b"".join(received)).hexdigest() == whole
            assert during <= 1  # nothing (but what was already in flight) crossed the cut
            assert "reconnecting" in agent_states and agent_states[-1] == "resumed"
            assert "peer_reconnecting" in tech_states and tech_states[-1] == "resumed"
            assert agent.resumes == 1 and tech.resumes == 1
            assert resumed_after < CUT_SECONDS + scaled(20)

            # The session goes on both ways afterwards.
            await tech.send(Channel.CHAT, b"still there?")
            assert (
                await asyncio.wait_for(agent.receive(Channel.CHAT), scaled(10)) == b"still there?"
            )
            await tech.close("done")
            assert await asyncio.wait_for(agent.wait_closed(), scaled(10)) == "done"
            await agent.close()

    asyncio.run(scenario())


def test_a_cut_longer_than_the_grace_period_ends_the_session_on_both_sides(
    tmp_path: Path,
) -> None:
    """The 90-second cut of the acceptance, scaled down: grace 2 s, cut 5 s."""
    relay = start_relay(tmp_path / "relay", "--resume-grace", "2")

    async def scenario() -> None:
        with FaultInjectingProxy("127.0.0.1", relay.port) as proxy:
            agent, tech = await open_pair(relay, proxy.url)
            assert agent.resume_grace == 2.0
            await asyncio.sleep(0.5)  # a cut in the very first instant cannot be resumed
            proxy.cut()
            try:
                await asyncio.wait_for(tech.wait_closed(), scaled(15))
            except SessionLost as exc:
                tech_error = exc
            else:
                raise AssertionError("the technician's side did not end")
            assert tech_error.kind == "peer_timeout", tech_error
            assert "the agent did not reconnect within 2 seconds" in str(tech_error)
            await asyncio.sleep(3)
            proxy.restore()
            try:
                await asyncio.wait_for(agent.wait_closed(), scaled(20))
            except SessionLost as exc:
                agent_error = exc
            else:
                raise AssertionError("the agent's side did not end")
            assert agent_error.kind == "resume_timeout"
            assert "Start a new session" in str(agent_error)
            await agent.close()
            await tech.close()

    try:
        asyncio.run(scenario())
    finally:
        log = relay.stop()
    assert "session suspended" in log
    assert "did not reconnect within 2 seconds" in log
