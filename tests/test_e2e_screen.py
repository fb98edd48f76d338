"""Issue 3 end to end on Xvfb: screen view, remote control, revocation.

Real relay process, real agent process (answering consent as a scripted
customer), real X display with a Tk window; the technician is the session console
process or, where frame-level detail is checked, the technician library in-process.
"""

from __future__ import annotations

import asyncio
import re
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import mss
import numpy as np
from PIL import Image

from protocol.code import SessionCode
from protocol.screen import Frame
from technician.client import RelayAPI, TechnicianSession
from technician.screen import ScreenStream, psnr
from tests.conftest import RelayProcess, scaled
from tests.customer import Process, ScriptedCustomer
from tests.screen_fixtures import (
    PICTURE_AT,
    PICTURE_SIZE,
    ScreenApp,
    known_picture,
)

TILE = 64


def console(relay: RelayProcess, token: str) -> Process:
    return Process(
        [
            sys.executable,
            "-m",
            "technician.cli",
            "--relay",
            relay.ws_url,
            "--token",
            token,
            "session",
            "--ticket",
            "HD-3",
        ],
        stdin=True,
    )


def direct_capture() -> np.ndarray:
    with mss.MSS() as sct:
        shot = sct.grab(sct.monitors[0])
        return np.asarray(Image.frombytes("RGB", shot.size, shot.rgb))


def rect_of(app: ScreenApp, name: str) -> tuple[int, int, int, int]:
    match = re.search(rf"^{name} (\d+) (\d+) (\d+) (\d+)$", "\n".join(app.lines), re.M)
    assert match, app.lines
    x, y, w, h = (int(v) for v in match.groups())
    return x, y, w, h


@asynccontextmanager
async def technician_session(
    relay: RelayProcess, tmp_path: Path, answers: dict[str, str]
) -> AsyncIterator[tuple[TechnicianSession, ScriptedCustomer]]:
    """The technician library in this process, a scripted customer's real agent."""
    token = relay.add_technician()
    api = RelayAPI(relay.ws_url, token)
    created = await asyncio.to_thread(api.create_session, "HD-3")
    code = SessionCode.new(created["nameplate"])
    customer = ScriptedCustomer(relay.ws_url, str(code), tmp_path / "logs", answers=answers)
    session = await TechnicianSession.connect(
        relay.ws_url, code, "HD-3", token=token, technician_name="Ana", wait_timeout=scaled(30)
    )
    try:
        yield session, customer
    finally:
        await session.end("test over")


# Acceptance 1 -------------------------------------------------------------------------


def test_screenshot_matches_direct_capture(
    relay_process: RelayProcess, screen_app: ScreenApp, tmp_path: Path
) -> None:
    token = relay_process.add_technician()
    tech = console(relay_process, token)
    code = tech.expect(r"^code: (\S+)$").group(1)
    customer = ScriptedCustomer(
        relay_process.ws_url, code, tmp_path / "logs", answers={"Screen view": "y"}
    )
    tech.expect(r"Check code")
    shot = tmp_path / "shot.png"
    tech.send(f"screenshot {shot}")
    tech.expect(r"^ok screenshot: 1024x768 written to ")
    received = np.asarray(Image.open(shot).convert("RGB"))
    direct = direct_capture()
    assert psnr(received, direct) >= 40
    # The known picture is there, pixel for pixel, where the window shows it.
    x, y = PICTURE_AT
    w, h = PICTURE_SIZE
    assert psnr(received[y : y + h, x : x + w], known_picture()) >= 40
    tech.send(f"screenshot {tmp_path / 'two.png'} 7")
    tech.expect(r"^error screenshot: This computer has 1 monitor; ask for 1 to 1, or 0")
    tech.send("end")
    assert tech.wait() == 0
    assert customer.wait() == 0
    assert customer.questions == ["Screen view"]


def test_small_change_sends_only_changed_tiles(
    relay_process: RelayProcess, screen_app: ScreenApp, tmp_path: Path
) -> None:
    px, py, pw, ph = rect_of(screen_app, "patch")

    async def scenario() -> None:
        async with technician_session(relay_process, tmp_path, {"Screen view": "y"}) as (
            session,
            _,
        ):
            stream = ScreenStream(session, monitor=1)
            info = await stream.start(timeout=scaled(30))
            assert (info.width, info.height) == (1024, 768)
            await stream.wait_for(lambda: stream.decoder.complete, scaled(20))
            frames: list[Frame] = []
            stream.on_frame = lambda s, frame, damaged: frames.append(frame)
            await asyncio.sleep(0.3)  # let anything still settling arrive
            frames.clear()
            screen_app.command("patch #ff0000")
            await stream.wait_for(lambda: bool(frames), scaled(10))
            changed = frames[0].rects
            # Every rectangle lies on tiles the patch touches, and together they cover it.
            allowed_x = (px // TILE * TILE, -(-(px + pw) // TILE) * TILE)
            allowed_y = (py // TILE * TILE, -(-(py + ph) // TILE) * TILE)
            for rect in changed:
                assert allowed_x[0] <= rect.x and rect.x + rect.width <= allowed_x[1], rect
                assert allowed_y[0] <= rect.y and rect.y + rect.height <= allowed_y[1], rect
            assert stream.decoder.canvas is not None
            assert tuple(stream.decoder.canvas[py + ph // 2, px + pw // 2]) == (255, 0, 0)
            tiles = (allowed_x[1] - allowed_x[0]) * (allowed_y[1] - allowed_y[0]) // TILE**2
            assert sum(r.width * r.height for r in changed) <= tiles * TILE**2
            await stream.stop()

    asyncio.run(scenario())
