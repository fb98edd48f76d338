"""The customer strikes items out of the diagnostics before they leave the machine.

The filter is the agent's (:mod:`agent.review`), applied after the customer's
review and before sending; tests cover the pure functions, the real window's
checkboxes on Xvfb, and a whole session through a real in-process relay.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from agent.audit import AgentLog
from agent.capabilities.registry import default_registry
from agent.i18n import section_labels
from agent.review import outline, path_text, strike
from agent.session import AgentSession
from link.connection import Link
from protocol.code import SessionCode
from protocol.envelope import Role
from protocol.messages import ReplyStatus
from relay.config import RelayConfig
from relay.server import RelayServer
from relay.testing import add_technician, create_session
from technician.client import TechnicianSession
from tests.support.scripted_ui import ScriptedUI
from tests.support.timeouts import scaled

RESULT: dict[str, Any] = {
    "schema": 1,
    "collected_at": "2026-01-01T00:00:00Z",
    "hostname": "alice-laptop",
    "processes": {"top_cpu": [{"name": "a"}, {"name": "b"}, {"name": "c"}], "count": 3},
    "system_log": ["line one", "line two", "line three"],
    "redactions": 0,
}


def test_outline_offers_sections_and_their_entries_in_the_customers_words() -> None:
    items = outline(RESULT, {"hostname": "Computer name"})
    assert [item.path for item in items] == [("hostname",), ("processes",), ("system_log",)]
    assert items[0].label == "Computer name" and items[0].preview == "alice-laptop"
    assert [c.path for c in items[1].children] == [("processes", "top_cpu", i) for i in range(3)]
    assert [c.path for c in items[2].children] == [("system_log", i) for i in range(3)]
    assert "schema" not in {item.path[0] for item in items}  # metadata is not offered


def test_strike_removes_items_and_says_what_was_withheld() -> None:
    kept = strike(
        RESULT,
        [("hostname",), ("system_log", 0), ("system_log", 2), ("processes", "top_cpu", 1)],
    )
    assert "hostname" not in kept
    assert kept["system_log"] == ["line two"]
    assert kept["processes"]["top_cpu"] == [{"name": "a"}, {"name": "c"}]
    assert kept["withheld"] == [
        "hostname",
        "processes.top_cpu[1]",
        "system_log[0]",
        "system_log[2]",
    ]
    assert RESULT["hostname"] == "alice-laptop"  # the original is untouched
    # A whole section covers its entries; unknown paths change nothing.
    both = strike(RESULT, [("system_log",), ("system_log", 1), ("nothing",), ("hostname", 3)])
    assert "system_log" not in both and both["withheld"] == ["system_log"]
    assert strike(RESULT, []) == RESULT
    assert path_text(("a", "b", 2)) == "a.b[2]"


def test_every_diagnostics_section_has_a_customer_label() -> None:
    from agent.capabilities.diagnostics import collection as diagnostics

    result = diagnostics.collect(sample_seconds=0, dns_names=[])
    labels = section_labels()
    missing = [item.path[0] for item in outline(result) if item.path[0] not in labels]
    assert missing == []


class ReviewingUI(ScriptedUI):
    """A customer who allows diagnostics, then unticks the computer's name."""

    def __init__(self) -> None:
        super().__init__({"diagnostics": True})
        self.reviewed: dict[str, Any] | None = None

    async def review_outgoing(self, what: str, result: dict[str, Any]) -> list[tuple[Any, ...]]:
        self.reviewed = result
        return [("hostname",), ("system_log",)]


def test_struck_items_never_reach_the_technician(tmp_path: Path) -> None:
    async def scenario() -> None:
        config = RelayConfig(data_dir=tmp_path / "relay", port=0)
        async with RelayServer(config) as relay:
            token = add_technician(relay, "Ana")
            created = await create_session(relay, token, "T-3")
            code = SessionCode.new(created["nameplate"])
            url = f"ws://127.0.0.1:{relay.port}"
            ui = ReviewingUI()
            audit = AgentLog(tmp_path / "agent.log")

            async def agent() -> str:
                link = await Link.open(url, Role.AGENT, code)
                try:
                    return await AgentSession(link, ui, default_registry(), audit).run()
                finally:
                    await link.close()

            agent_task = asyncio.create_task(agent())
            tech = await TechnicianSession.connect(
                url, code, "T-3", token=token, technician_name="Ana"
            )
            reply = await tech.request("diagnostics", "collect", {"sample_seconds": 0})
            await tech.end()
            await asyncio.wait_for(agent_task, scaled(10))
            audit.close()
            assert reply.status == ReplyStatus.OK and reply.result is not None
            assert ui.reviewed is not None and ui.reviewed["hostname"]  # shown first
            sent = json.dumps(reply.result)
            assert "hostname" not in reply.result and "system_log" not in reply.result
            assert str(ui.reviewed["hostname"]) not in sent
            assert reply.result["withheld"] == ["hostname", "system_log"]
            assert reply.result["memory"]  # the rest arrived
            log = (tmp_path / "agent.log").read_text()
            assert "You held back from the diagnostics: hostname, system_log." in log

    asyncio.run(asyncio.wait_for(scenario(), scaled(60)))


def find_button(widget: Any, text: str) -> Any:
    """The button showing ``text`` anywhere under ``widget``."""
    for child in widget.winfo_children():
        if child.winfo_class() == "Button" and str(child.cget("text")) == text:
            return child
        found = find_button(child, text)
        if found is not None:
            return found
    return None


def test_unticking_a_box_in_the_window_strikes_that_item() -> None:
    from tests.support.xdisplay import run_in_child, xvfb

    with xvfb() as display:
        run_in_child(display, "tests.agent.test_review", "review_scenario")


def review_scenario(display: str) -> None:
    import tkinter

    from agent import tk_ui

    root = tkinter.Tk()
    window = tk_ui.CustomerWindow(root, lambda code: None, None, {})
    answers: list[list[tuple[Any, ...]]] = []
    window.review("diagnostics", outline(RESULT, section_labels()), answers.append)
    root.update()
    window.review_checkbuttons[("hostname",)].invoke()  # what a click does
    window.review_checkbuttons[("system_log", 1)].invoke()
    assert {w["text"] for w in window.snapshot()} >= {"Computer name", "Send"}
    send = find_button(root, "Send")
    send.invoke()  # too early: Send takes a press only after the review was shown a moment
    root.update()
    assert answers == []
    wait_armed(root, send)
    send.invoke()
    root.update()
    assert answers == [[("hostname",), ("system_log", 1)]]
    root.destroy()


def wait_armed(root: Any, button: Any) -> None:
    """Let Tk run until ``button`` takes presses (the question's press delay)."""
    import time

    from tests.support.timeouts import scaled

    deadline = time.monotonic() + scaled(10)
    while str(button.cget("state")) != "normal":
        assert time.monotonic() < deadline, "the button never became pressable"
        root.update()
        time.sleep(0.05)
