"""The Clipboard capability end to end on Xvfb: allowed both ways, refused without consent.

A real relay process, the real agent (a scripted customer answers its console) on an
Xvfb display with the real X clipboard (xclip), the technician's library in this
process. Reads and writes happen only on the technician's request and are shown to
the customer; without consent nothing is read or written.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest

from agent.capabilities.clipboard import ClipboardTool, find_tool, unavailable_reason
from protocol.code import SessionCode
from protocol.messages import ReplyStatus
from technician.client import RelayAPI, TechnicianSession
from tests.support.customer import ScriptedCustomer
from tests.support.relay import RelayProcess
from tests.support.timeouts import scaled
from tests.support.xdisplay import x_clipboard

pytestmark = pytest.mark.skipif(shutil.which("xclip") is None, reason="xclip is not installed")


async def paired(
    relay: RelayProcess, tmp_path: Path, answers: dict[str, str]
) -> tuple[TechnicianSession, ScriptedCustomer]:
    token = relay.add_technician()
    api = RelayAPI(relay.ws_url, token)
    created = await asyncio.to_thread(api.create_session, "HD-16")
    code = SessionCode.new(created["nameplate"])
    customer = ScriptedCustomer(relay.ws_url, str(code), tmp_path / "logs", answers=answers)
    session = await TechnicianSession.connect(
        relay.ws_url, code, "HD-16", token=token, technician_name="Ana", wait_timeout=scaled(30)
    )
    return session, customer


def test_text_goes_both_ways_with_consent(
    relay_process: RelayProcess, xvfb: str, tmp_path: Path
) -> None:
    x_clipboard(xvfb, "from the customer: ñandú <b>x</b>")

    async def scenario() -> None:
        session, customer = await paired(relay_process, tmp_path, {"Clipboard": "y"})
        try:
            reply = await session.request("clipboard", "read")
            assert reply.status == ReplyStatus.OK, reply.message
            assert reply.result == {"text": "from the customer: ñandú <b>x</b>"}
            reply = await session.request("clipboard", "write", {"text": "from the technician"})
            assert reply.status == ReplyStatus.OK, reply.message
            assert await asyncio.to_thread(x_clipboard, xvfb) == "from the technician"
            assert customer.questions == ["Clipboard"]  # asked once, for the session
        finally:
            await session.end("test over", rating_wait=0)
        assert await asyncio.to_thread(customer.wait) == 0
        output = customer.output
        assert "The technician read your clipboard (33 characters)." in output
        assert "The technician put text on your clipboard (19 characters)." in output
        assert "from the customer" not in output  # the customer's log says how much, not what

    asyncio.run(scenario())


def test_without_consent_nothing_is_read_or_written(
    relay_process: RelayProcess, xvfb: str, tmp_path: Path
) -> None:
    x_clipboard(xvfb, "private")

    async def scenario() -> None:
        session, customer = await paired(relay_process, tmp_path, {"Clipboard": "n"})
        try:
            reply = await session.request("clipboard", "read")
            assert reply.status == ReplyStatus.DECLINED
            assert "text" not in (reply.result or {})
            reply = await session.request("clipboard", "write", {"text": "overwritten"})
            assert reply.status == ReplyStatus.DECLINED
        finally:
            await session.end("test over", rating_wait=0)
        assert await asyncio.to_thread(customer.wait) == 0

    asyncio.run(scenario())
    assert x_clipboard(xvfb) == "private"


def test_the_tool_is_chosen_by_desktop_and_its_absence_is_said() -> None:
    assert find_tool({}, "darwin") == ClipboardTool(("pbpaste",), ("pbcopy",))
    assert find_tool({}, "linux") is None  # no display: no clipboard
    tool = find_tool({"DISPLAY": ":9"}, "linux")
    assert tool is not None and tool.read[0] in ("xclip", "xsel")
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("DISPLAY", raising=False)
        patch.delenv("WAYLAND_DISPLAY", raising=False)
        reason = unavailable_reason()
    assert reason is not None and "no desktop session" in reason
