"""Issue 15, finding 1: the technician cannot answer their own question by remote control.

A real relay process, the real agent in window mode on Xvfb, and the technician's
library in this process with screen view and remote control granted. The technician
finds the customer's Allow button in the picture it is streamed (as the outside
review did) and clicks it through the real control stream: nothing is granted and
the question stays open. Only the customer's own click (xdotool on the customer's
display, after the question's press delay) answers it. The same for the review's
Send, and for a click sent just before a question appears, aimed where Allow will be.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from agent import tk_ui
from agent.capabilities.registry import default_registry
from protocol import input as input_protocol
from protocol.code import SessionCode
from protocol.messages import ReplyStatus
from technician.client import RelayAPI, TechnicianSession
from technician.screen_stream import ControlStream, ScreenStream
from tests.agent.test_window import has, read_snapshot, wait_shown
from tests.support.customer import Process
from tests.support.relay import RelayProcess
from tests.support.timeouts import scaled
from tests.support.xdisplay import (
    click_colour,
    wait_window,
    xdotool,
    xvfb,
)

pytestmark = pytest.mark.skipif(
    "control" not in default_registry().names(),
    reason="remote control needs pynput and mss (pip install -e '.[dev]')",
)

QUESTION = "Permission requested"
REVIEW = "Check what will be sent"


def seen_by_technician(stream: ScreenStream, colour: str) -> tuple[int, int] | None:
    """Where the technician's streamed picture shows ``colour`` (a button), or None."""
    canvas = stream.decoder.canvas
    if canvas is None:
        return None
    target = np.array(list(bytes.fromhex(colour.lstrip("#"))), dtype=np.int16)
    # Near the colour, not exactly: a tile may have been coded lossily.
    close = np.abs(canvas[..., :3].astype(np.int16) - target) <= 8
    ys, xs = np.nonzero(np.all(close, axis=-1))
    if len(xs) < 50:  # not a button yet: a few pixels of antialiasing at most
        return None
    return int(np.median(xs)), int(np.median(ys))


async def aim(stream: ScreenStream, colour: str) -> tuple[int, int]:
    """Wait until the technician's picture shows the button; return its centre."""
    deadline = time.monotonic() + scaled(20)
    while True:
        spot = seen_by_technician(stream, colour)
        if spot is not None:
            return spot
        assert time.monotonic() < deadline, f"the technician never saw a {colour} button"
        await asyncio.sleep(0.1)


async def click_through_control(control: ControlStream, spot: tuple[int, int]) -> None:
    x, y = spot
    await control.send([input_protocol.Move(x, y), input_protocol.Click(x, y)])


async def remote_clicks(control: ControlStream, spot: tuple[int, int]) -> None:
    """The technician clicks ``spot`` a few times, then gives the window time to react."""
    for _ in range(3):
        await click_through_control(control, spot)
        await asyncio.sleep(0.3)
    await asyncio.sleep(1.0)


def pointer(display: str) -> tuple[int, int]:
    fields = dict(f.split(":") for f in xdotool(display, "getmouselocation").split()[:2])
    return int(fields["x"]), int(fields["y"])


def test_remote_clicks_never_answer_a_question_or_a_review(
    relay_process: RelayProcess, tmp_path: Path
) -> None:
    snapshot = tmp_path / "window.json"
    logs = tmp_path / "logs"
    token = relay_process.add_technician("Ana Technician")

    with xvfb() as display:

        async def scenario() -> None:
            api = RelayAPI(relay_process.ws_url, token)
            created = await asyncio.to_thread(api.create_session, "HD-15")
            code = SessionCode.new(created["nameplate"])
            Process(
                [sys.executable, "-m", "agent.cli", "--relay", relay_process.ws_url]
                + ["--log-dir", str(logs), str(code)],
                env={"DISPLAY": display, tk_ui.SNAPSHOT_ENV: str(snapshot)},
            )
            session = await TechnicianSession.connect(
                relay_process.ws_url,
                code,
                "HD-15",
                token=token,
                technician_name="Ana",
                wait_timeout=scaled(30),
            )
            try:
                await run(session)
            finally:
                await session.end("test over")

        async def customer_clicks(window: str, colour: str) -> None:
            """The customer's own hand: xdotool on the customer's display."""
            found = await asyncio.to_thread(wait_window, display, window)
            await asyncio.to_thread(click_colour, display, found, colour)

        async def granted(session: TechnicianSession, name: str) -> None:
            async with asyncio.timeout(scaled(20)):
                while session.consent.get(name) != "granted":
                    await asyncio.sleep(0.05)

        async def run(session: TechnicianSession) -> None:
            # Screen view and remote control, each allowed by the customer's own click.
            stream = ScreenStream(session, monitor=1)
            started = asyncio.create_task(stream.start(timeout=scaled(30)))
            await customer_clicks(QUESTION, tk_ui.ALLOW_COLOUR)
            await started
            control = ControlStream(session, monitor=1)
            await control.start()
            await customer_clicks(QUESTION, tk_ui.ALLOW_COLOUR)
            await granted(session, "control")

            # Control works: a move away from the agent's windows lands.
            await asyncio.sleep(1.0)  # past the moment after the last question closed
            await control.send([input_protocol.Move(1200, 760)])
            async with asyncio.timeout(scaled(10)):
                while await asyncio.to_thread(pointer, display) != (1200, 760):
                    await asyncio.sleep(0.05)

            # 1. The technician asks for diagnostics and clicks Allow in the picture.
            asked = asyncio.create_task(session.request("diagnostics", "collect"))
            await asyncio.to_thread(
                wait_shown, snapshot, has("Ana asks for: Diagnostics"), "the question"
            )
            allow = await aim(stream, tk_ui.ALLOW_COLOUR)  # drawn once the delay passed
            await remote_clicks(control, allow)
            assert not asked.done()
            assert session.consent.get("diagnostics") is None
            assert has("Ana asks for: Diagnostics")(read_snapshot(snapshot))
            # The customer answers with their own click (here: Deny).
            await customer_clicks(QUESTION, tk_ui.DENY_COLOUR)
            reply = await asyncio.wait_for(asked, scaled(20))
            assert reply.status == ReplyStatus.DECLINED, reply

            # 2. The technician strikes first: clicks sent with the request, aimed where
            #    Allow was drawn, before the question is on screen and while it arms.
            await asyncio.sleep(1.0)
            asked = asyncio.create_task(session.request("diagnostics", "collect"))
            for _ in range(15):
                await click_through_control(control, allow)
                await asyncio.sleep(0.1)
            await asyncio.to_thread(
                wait_shown, snapshot, has("Ana asks for: Diagnostics"), "the question again"
            )
            await remote_clicks(control, allow)
            assert not asked.done()
            assert session.consent.get("diagnostics") == "declined"
            assert has("Ana asks for: Diagnostics")(read_snapshot(snapshot))
            # Only the customer's own click grants it.
            await customer_clicks(QUESTION, tk_ui.ALLOW_COLOUR)
            await granted(session, "diagnostics")

            # 3. The review of what will be sent: the technician presses Send remotely.
            await asyncio.to_thread(wait_shown, snapshot, has(REVIEW), "the review")
            send = await aim(stream, tk_ui.ALLOW_COLOUR)
            await remote_clicks(control, send)
            assert not asked.done()
            assert has(REVIEW)(read_snapshot(snapshot))
            await customer_clicks(REVIEW, tk_ui.ALLOW_COLOUR)
            reply = await asyncio.wait_for(asked, scaled(30))
            assert reply.status == ReplyStatus.OK, reply

            await stream.stop()
            await control.stop()

        asyncio.run(scenario())

    log = next(logs.glob("session-*.log")).read_text(encoding="utf-8")
    assert "You allowed: Diagnostics. (Answered at this computer.)" in log
