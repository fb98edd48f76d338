"""A relay stand-in that tampers with one record: the receiving side must refuse it.

The stand-in speaks the real envelope over real websockets, pairs the two ends,
then forwards binary messages with one fault: a flipped byte, a dropped, replayed
or reordered record. Agent and technician are the real session code in-process.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from pathlib import Path

import pytest
from websockets.asyncio.server import ServerConnection, serve

from agent.audit import AgentLog
from agent.capabilities.registry import default_registry
from agent.session import AgentSession
from link.connection import Link
from link.errors import SessionLost
from protocol import envelope
from protocol.code import SessionCode
from protocol.envelope import Role
from protocol.errors import IntegrityError
from technician.client import TechnicianSession
from tests.support.scripted_ui import ScriptedUI
from tests.support.timeouts import scaled

Fault = Callable[[int, bytes], list[bytes]]


class TamperingRelay:
    """Pairs one agent and one technician, forwarding with ``faults[direction]``."""

    def __init__(self, faults: dict[Role, Fault]) -> None:
        self.faults = faults  # keyed by the role that SENT the message
        self.ends: dict[Role, ServerConnection] = {}
        self.both = asyncio.Event()

    async def handler(self, ws: ServerConnection) -> None:
        role, _ = envelope.parse_claim(envelope.decode(await ws.recv()))
        self.ends[role] = ws
        await ws.send(envelope.encode({"type": "waiting", "expires_in": 600}))
        if len(self.ends) == 2:
            for end in self.ends.values():
                await end.send(
                    envelope.encode(
                        {
                            "type": "paired",
                            "session_id": "s",
                            "ticket_id": "T-9",
                            "ticket_url": "",
                            "technician": "Ana",
                        }
                    )
                )
            self.both.set()
        await self.both.wait()
        peer = self.ends[role.peer]
        fault = self.faults.get(role, lambda n, m: [m])
        count = 0
        with contextlib.suppress(Exception):
            async for message in ws:
                if isinstance(message, str):
                    continue
                count += 1
                for out in fault(count, message):
                    await peer.send(out)
        with contextlib.suppress(Exception):
            await peer.close()


def flip(n: int) -> Fault:
    def fault(i: int, m: bytes) -> list[bytes]:
        if i == n:
            m = m[:-5] + bytes([m[-5] ^ 0x01]) + m[-4:]
        return [m]

    return fault


def drop(n: int) -> Fault:
    return lambda i, m: [] if i == n else [m]


def replay(n: int) -> Fault:
    return lambda i, m: [m, m] if i == n else [m]


def reorder(n: int) -> Fault:
    held: list[bytes] = []

    def fault(i: int, m: bytes) -> list[bytes]:
        if i == n:
            held.append(m)
            return []
        if held:
            return [m, held.pop()]
        return [m]

    return fault


async def run_session(
    faults: dict[Role, Fault], tmp_path: Path
) -> tuple[BaseException | str, BaseException | None, ScriptedUI]:
    relay = TamperingRelay(faults)
    async with serve(relay.handler, "127.0.0.1", 0, compression=None) as server:
        port = server.sockets[0].getsockname()[1]
        url = f"ws://127.0.0.1:{port}"
        code = SessionCode.new("417")
        ui = ScriptedUI({"diagnostics": True})

        async def agent() -> BaseException | str:
            audit = AgentLog(tmp_path / "a.log")
            try:
                link = await Link.open(url, Role.AGENT, code)
                session = AgentSession(link, ui, default_registry(), audit)
                return await session.run()
            except Exception as exc:
                return exc
            finally:
                audit.close()

        async def tech() -> BaseException | None:
            try:
                session = await TechnicianSession.connect(
                    url, code, "T-9", token="x", technician_name="Ana"
                )
                reply = await session.request("diagnostics", "collect", {"sample_seconds": 0})
                await session.end()
                return AssertionError(f"tampered session delivered a reply: {reply.status}")
            except Exception as exc:
                return exc

        agent_result, tech_result = await asyncio.wait_for(
            asyncio.gather(agent(), tech()), scaled(30)
        )
        return agent_result, tech_result, ui


def integrity_failure(result: object) -> bool:
    return isinstance(result, SessionLost) and isinstance(result.__cause__, IntegrityError)


# Binary messages from the technician: 1 PAKE, 2 CONFIRM, 3 Hello, 4 Identity, then
# credit frames and the Request. The agent answers only after the technician's Hello and
# Identity: 1 PAKE, 2 CONFIRM, 3 CREDIT, 4 Hello, 5 CREDIT, 6 Consent granted,
# 7 Progress, 8+ Reply.
@pytest.mark.parametrize("make_fault", [flip, drop, replay, reorder], ids=lambda f: f.__name__)
def test_tampered_request_is_refused_by_agent(
    make_fault: Callable[[int], Fault], tmp_path: Path
) -> None:
    # Dropping the Request leaves the agent nothing to reject until the next record,
    # so tamper with the Hello (3) for drop/reorder and with the Request (4) otherwise.
    n = 3 if make_fault in (drop, reorder) else 4
    agent_result, tech_result, ui = asyncio.run(
        run_session({Role.TECHNICIAN: make_fault(n)}, tmp_path)
    )
    assert integrity_failure(agent_result), repr(agent_result)
    assert ui.asked == []  # nothing tampered reached the consent gate
    assert isinstance(tech_result, SessionLost)


@pytest.mark.parametrize("make_fault", [flip, drop, replay, reorder], ids=lambda f: f.__name__)
def test_tampered_reply_is_refused_by_technician(
    make_fault: Callable[[int], Fault], tmp_path: Path
) -> None:
    # The agent's Hello (4) is the last thing it says before the Request, so a dropped or
    # held-back Hello leaves nothing later to expose it: drop/reorder the Consent (6).
    n = 6 if make_fault in (drop, reorder) else 4
    agent_result, tech_result, ui = asyncio.run(run_session({Role.AGENT: make_fault(n)}, tmp_path))
    assert integrity_failure(tech_result), repr(tech_result)
