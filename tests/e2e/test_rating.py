"""The customer's rating: the console question, and the Rating message at each way of ending."""

from __future__ import annotations

import asyncio
import io
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from agent.audit import AgentLog
from agent.capabilities.registry import default_registry
from agent.session import AgentSession
from agent.ui import ConsoleUI
from link.connection import Link
from protocol.code import SessionCode
from protocol.envelope import Role
from relay.config import RelayConfig
from relay.server import RelayServer
from relay.testing import add_technician, create_session
from technician.client import TechnicianSession
from technician.summary import build_summary
from tests.support.scripted_ui import ScriptedUI
from tests.support.timeouts import scaled


class Keyboard(io.StringIO):
    """A customer at the keyboard: types the next line only once a new question is shown."""

    QUESTIONS = ("1 to 5?", "help desk?")

    def __init__(self, lines: list[str], screen: io.StringIO) -> None:
        super().__init__()
        self._lines = list(lines)
        self._screen = screen
        self._typed = 0

    def readline(self, *args: Any) -> str:
        while self._lines:
            shown = sum(self._screen.getvalue().count(q) for q in self.QUESTIONS)
            if shown > self._typed:
                self._typed += 1
                return self._lines.pop(0) + "\n"
            time.sleep(0.005)
        return ""  # then the input closes


async def ask(lines: list[str]) -> tuple[tuple[int, str] | None, str]:
    screen = io.StringIO()
    ui = ConsoleUI(stdin=Keyboard(lines, screen), stdout=screen)
    runner = asyncio.create_task(ui.run(lambda command: asyncio.sleep(0)))
    try:
        answer = await asyncio.wait_for(ui.ask_rating(), scaled(5))
        # Every scripted line is typed, then the input closes: let the reader thread
        # hand its end-of-input to this loop before the loop goes away.
        for thread in threading.enumerate():
            if thread.name == "puente-console-input":
                await asyncio.to_thread(thread.join, scaled(5))
    finally:
        runner.cancel()
    return answer, screen.getvalue()


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        (["4", "Quick and kind"], (4, "Quick and kind")),
        (["5", ""], (5, "")),
        (["great", "7", "2", "slow \x1b[31mred"], (2, "slow [31mred")),
        ([""], None),
        (["x", "y", "z"], None),
        ([], None),  # input closed: skipped without a question
    ],
)
def test_console_asks_a_number_then_a_comment(
    typed: list[str], expected: tuple[int, str] | None
) -> None:
    answer, shown = asyncio.run(ask(typed))
    assert answer == expected
    if typed:
        assert "How would you rate this help, 1 to 5?" in shown
    if expected:
        assert "Any comment for the help desk?" in shown
        assert "Thank you for your rating." in shown


@asynccontextmanager
async def paired(tmp_path: Path, ui: Any) -> AsyncIterator[tuple[TechnicianSession, Any]]:
    """A real in-process relay, an agent session with ``ui``, and the technician's session."""
    config = RelayConfig(data_dir=tmp_path / "relay", port=0, close_timeout=scaled(1))
    async with RelayServer(config) as relay:
        token = add_technician(relay)
        created = await create_session(relay, token, "T-1")
        code = SessionCode.new(created["nameplate"])
        url = f"ws://127.0.0.1:{relay.port}"

        async def agent() -> str:
            link = await Link.open(url, Role.AGENT, code)
            log = AgentLog.for_session(tmp_path / "logs", code.nameplate)
            try:
                return await AgentSession(link, ui, default_registry(), log).run()
            finally:
                log.close()
                await link.close()

        agent_task = asyncio.create_task(agent())
        tech = await TechnicianSession.connect(url, code, "T-1", token=token, technician_name="Ana")
        yield tech, agent_task


def test_technician_ends_and_receives_the_rating(tmp_path: Path) -> None:
    async def scenario() -> None:
        ui = ScriptedUI(rating=(5, "Brilliant"))
        async with paired(tmp_path, ui) as (tech, agent):
            await tech.end("done", rating_wait=scaled(10))
            assert tech.rating == (5, "Brilliant")
            assert "technician ended" in await agent
            summary = build_summary(tech, "Ana", tech.clock())
            assert summary["rating"] == {"score": 5, "comment": "Brilliant"}
            assert summary["ended_by"] == "technician"
        log = next((tmp_path / "logs").glob("session-*.log")).read_text()
        assert "You rated this help 5 out of 5." in log

    asyncio.run(asyncio.wait_for(scenario(), scaled(30)))


def test_customer_ends_rates_first_then_says_bye(tmp_path: Path) -> None:
    async def scenario() -> None:
        ui = ScriptedUI(rating=(3, ""))
        async with paired(tmp_path, ui) as (tech, agent):
            await ui.commands.put("end")
            assert await agent == "ended by the customer"
            await tech.link.wait_closed()
            await tech.drained()
            assert tech.rating == (3, "")
            assert tech.ended_by == "customer"

    asyncio.run(asyncio.wait_for(scenario(), scaled(30)))


class SilentCustomer(ScriptedUI):
    """Never answers the rating question."""

    async def ask_rating(self) -> tuple[int, str] | None:
        self.rating_asked = True
        await asyncio.Event().wait()
        return None


def test_technician_stops_waiting_for_a_silent_customer(tmp_path: Path) -> None:
    async def scenario() -> None:
        ui = SilentCustomer()
        async with paired(tmp_path, ui) as (tech, agent):
            started = asyncio.get_running_loop().time()
            await tech.end("done", rating_wait=0.3)
            assert asyncio.get_running_loop().time() - started < scaled(5)
            assert ui.rating_asked and tech.rating is None
            await agent  # the agent stopped asking when the link closed
            summary = build_summary(tech, "Ana", tech.clock())
            assert summary["rating"] is None

    asyncio.run(asyncio.wait_for(scenario(), scaled(30)))


def test_skipping_sends_score_zero_so_nobody_waits(tmp_path: Path) -> None:
    async def scenario() -> None:
        ui = ScriptedUI(rating=None)
        async with paired(tmp_path, ui) as (tech, agent):
            started = asyncio.get_running_loop().time()
            await tech.end("done", rating_wait=scaled(20))
            assert asyncio.get_running_loop().time() - started < scaled(5)
            assert ui.rating_asked and tech.rating is None
            await agent

    asyncio.run(asyncio.wait_for(scenario(), scaled(30)))
