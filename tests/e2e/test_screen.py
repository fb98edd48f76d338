"""Issue 3 end to end on Xvfb: screen view, remote control, revocation.

Real relay process, real agent process (answering consent as a scripted
customer), real X display with a Tk window; the technician is the session console
process or, where frame-level detail is checked, the technician library in-process.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import mss
import numpy as np
import pytest
from PIL import Image

from protocol import input as input_protocol
from protocol.code import SessionCode
from protocol.messages import Consent, ReplyStatus
from protocol.mux import Channel, MessageReceived
from protocol.screen import Frame
from technician.client import RelayAPI, TechnicianSession
from technician.screen_stream import ControlStream, ScreenStream, psnr
from tests.support.customer import Process, ScriptedCustomer
from tests.support.relay import RelayProcess
from tests.support.screen_fixtures import (
    PICTURE_AT,
    PICTURE_SIZE,
    ScreenApp,
    known_picture,
    xdotool,
)
from tests.support.timeouts import scaled

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
    relay: RelayProcess,
    tmp_path: Path,
    answers: dict[str, str],
    env: dict[str, str] | None = None,
) -> AsyncIterator[tuple[TechnicianSession, ScriptedCustomer]]:
    """The technician library in this process, a scripted customer's real agent."""
    token = relay.add_technician()
    api = RelayAPI(relay.ws_url, token)
    created = await asyncio.to_thread(api.create_session, "HD-3")
    code = SessionCode.new(created["nameplate"])
    customer = ScriptedCustomer(
        relay.ws_url, str(code), tmp_path / "logs", answers=answers, env=env
    )
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


@pytest.mark.parametrize("capture", ["damage", "poll"])
def test_small_change_sends_only_changed_tiles(
    relay_process: RelayProcess, screen_app: ScreenApp, tmp_path: Path, capture: str
) -> None:
    """Both ways of finding changes: the X server's reports of drawing, and comparing
    the whole screen (what Windows, macOS and X servers without DAMAGE get)."""
    px, py, pw, ph = rect_of(screen_app, "patch")
    env = {"PUENTE_SCREEN_POLL": "1"} if capture == "poll" else {}

    async def scenario() -> None:
        async with technician_session(relay_process, tmp_path, {"Screen view": "y"}, env) as (
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


def test_resolution_change_mid_session(
    relay_process: RelayProcess, screen_app: ScreenApp, tmp_path: Path
) -> None:
    """The customer's screen changes size while shared: the technician is told the new
    size and gets a whole new picture of it, without asking for the stream again."""
    if shutil.which("xrandr") is None:
        pytest.skip("xrandr is not installed (Debian package x11-xserver-utils)")

    async def scenario() -> None:
        async with technician_session(relay_process, tmp_path, {"Screen view": "y"}) as (
            session,
            _,
        ):
            stream = ScreenStream(session, monitor=1)
            infos: list[tuple[int, int]] = []
            stream.on_info = lambda info: infos.append((info.width, info.height))
            info = await stream.start(timeout=scaled(30))
            assert (info.width, info.height) == (1024, 768)
            await stream.wait_for(lambda: stream.decoder.complete, scaled(20))
            # Xvfb shrinks its screen (xrandr complains that its one output does not
            # fit, but the screen, which is what gets captured, does change).
            await asyncio.to_thread(
                subprocess.run, ["xrandr", "--fb", "800x600"], capture_output=True, check=False
            )

            def new_picture() -> bool:
                canvas = stream.decoder.canvas
                return (
                    (800, 600) in infos
                    and stream.decoder.complete
                    and canvas is not None
                    and canvas.shape[:2] == (600, 800)
                )

            await stream.wait_for(new_picture, scaled(20))
            assert stream.decoder.info is not None
            assert (stream.decoder.info.width, stream.decoder.info.height) == (800, 600)
            assert stream.decoder.canvas is not None
            # The new picture is the screen as it is now, pixel for pixel.
            assert psnr(stream.decoder.canvas[:, :, :3], direct_capture()) >= 40
            await stream.stop()

    asyncio.run(scenario())


# Acceptance 2 -------------------------------------------------------------------------


def test_console_control_lands_on_the_display(
    relay_process: RelayProcess, screen_app: ScreenApp, tmp_path: Path
) -> None:
    ex, ey, ew, eh = rect_of(screen_app, "entry")
    token = relay_process.add_technician()
    tech = console(relay_process, token)
    code = tech.expect(r"^code: (\S+)$").group(1)
    customer = ScriptedCustomer(
        relay_process.ws_url,
        code,
        tmp_path / "logs",
        answers={"Screen view": "y", "Remote control": "y"},
    )
    tech.expect(r"Check code")
    tech.send("move 500 400")
    tech.expect(r"^ok move: pointer at 500,400")
    assert xdotool("getmouselocation").startswith("x:500 y:400 ")
    cx, cy = ex + 20, ey + eh // 2
    tech.send(f"click {cx} {cy}")
    tech.expect(rf"^ok click: left click at {cx},{cy}")
    assert screen_app.expect(r"^click \S+ (\d+) (\d+) 1$").groups() == (str(cx), str(cy))
    tech.send("type Héllo wörld 42!")
    tech.expect(r"^ok type: typed 15 characters")
    screen_app.expect(r"^text Héllo wörld 42!$")
    tech.send("key ctrl+a")
    tech.expect(r"^ok key: pressed ctrl\+a")
    screen_app.expect(r"^key \S+ Control_L ")
    screen_app.expect(r"^key \S+ a '\\x01'$")  # the a arrived with Ctrl held
    tech.send("key End")
    tech.expect(r"^ok key: pressed end")
    tech.send("key BackSpace")
    tech.expect(r"^ok key: pressed backspace")
    screen_app.expect(r"^text Héllo wörld 42$")
    tech.send(f"click {cx} {cy} right")
    tech.expect(r"^ok click: right click at")
    screen_app.expect(r"^click \S+ \d+ \d+ 3$")
    tech.send("key ctrl+nosuchkey")
    tech.expect(r"^error key: unknown key 'nosuchkey'")
    tech.send("end")
    assert tech.wait() == 0
    assert customer.wait() == 0
    # Asked once each, in order: control is never asked before screen view.
    assert customer.questions == ["Screen view", "Remote control"]
    [log] = list((tmp_path / "logs").glob("session-*.log"))
    assert "The technician used your mouse or keyboard" in log.read_text()


@pytest.mark.parametrize("refuse", ["Screen view", "Remote control"])
def test_console_control_refused_without_consent(
    relay_process: RelayProcess, screen_app: ScreenApp, tmp_path: Path, refuse: str
) -> None:
    ex, ey, ew, eh = rect_of(screen_app, "entry")
    token = relay_process.add_technician()
    tech = console(relay_process, token)
    code = tech.expect(r"^code: (\S+)$").group(1)
    answers = {"Screen view": "y", "Remote control": "y", refuse: "n"}
    customer = ScriptedCustomer(relay_process.ws_url, code, tmp_path / "logs", answers=answers)
    tech.expect(r"Check code")
    before = xdotool("getmouselocation")
    tech.send(f"click {ex + 20} {ey + eh // 2}")
    tech.expect(r"^declined click: ")
    tech.send("type should not appear")
    tech.expect(r"^declined type: ")
    tech.send("move 10 10")
    tech.expect(r"^declined move: ")
    tech.send("end")
    assert tech.wait() == 0
    assert customer.wait() == 0
    assert xdotool("getmouselocation") == before
    assert not [line for line in screen_app.lines if line.startswith(("click", "key", "text"))]


# Acceptance 4 -------------------------------------------------------------------------


class ArrivalLog:
    """Records, in arrival order, the frames and consent messages the technician gets.

    It wraps the technician link's own dispatch (this test's side of the wire), so
    the order is the order in which records came out of the secure channel.
    """

    def __init__(self, session: TechnicianSession) -> None:
        from protocol import messages
        from protocol import screen as screen_protocol

        self.events: list[tuple[float, str]] = []
        link = session.link
        original = link._dispatch

        def spy(event: object) -> None:
            if isinstance(event, MessageReceived):
                now = time.monotonic()
                if event.channel == Channel.SCREEN:
                    if isinstance(screen_protocol.parse(event.payload), Frame):
                        self.events.append((now, "frame"))
                elif event.channel == Channel.CONTROL:
                    message = messages.parse(event.payload)
                    if isinstance(message, Consent):
                        self.events.append((now, f"{message.capability} {message.state}"))
            original(event)  # type: ignore[arg-type]

        link._dispatch = spy  # type: ignore[method-assign]

    def times(self, kind: str) -> list[float]:
        return [t for t, k in self.events if k == kind]

    def index(self, kind: str) -> int:
        return [k for _, k in self.events].index(kind)


def key_times(app: ScreenApp, keysym: str) -> list[float]:
    times = []
    for line in app.lines:
        match = re.match(rf"^key (\S+) {keysym} ", line)
        if match:
            times.append(float(match.group(1)))
    return times


async def typing(control: ControlStream, stop: asyncio.Event) -> None:
    while not stop.is_set():
        with contextlib.suppress(Exception):
            await control.send([input_protocol.Key("z", True), input_protocol.Key("z", False)])
        await asyncio.sleep(0.01)


async def start_view_and_control(
    session: TechnicianSession, app: ScreenApp
) -> tuple[ScreenStream, ControlStream]:
    stream = ScreenStream(session, monitor=1)
    await stream.start(timeout=scaled(30))
    await stream.wait_for(lambda: stream.decoder.complete, scaled(20))
    control = ControlStream(session, monitor=1)
    await control.start()
    ex, ey, _, eh = rect_of(app, "entry")
    async with asyncio.timeout(scaled(20)):
        while session.consent.get("control") != "granted":
            await asyncio.sleep(0.02)
    await control.send([input_protocol.Click(ex + 10, ey + eh // 2)])
    return stream, control


@pytest.mark.parametrize("revoke", ["screen", "control"])
def test_revocation_stops_frames_and_input(
    relay_process: RelayProcess, screen_app: ScreenApp, tmp_path: Path, revoke: str
) -> None:
    answers = {"Screen view": "y", "Remote control": "y"}

    async def scenario() -> None:
        async with technician_session(relay_process, tmp_path, answers) as (session, customer):
            arrivals = ArrivalLog(session)
            stream, control = await start_view_and_control(session, screen_app)
            screen_app.command("animate 400")  # the screen changes every 20 ms
            stop_typing = asyncio.Event()
            typist = asyncio.create_task(typing(control, stop_typing))
            await asyncio.sleep(0.8)
            assert len(key_times(screen_app, "z")) > 10
            frames_before = len(arrivals.times("frame"))
            assert frames_before > 10

            customer_acted = time.monotonic()
            customer.send(f"stop {revoke}")
            assert control.reply is not None and stream.reply is not None
            control_reply = await asyncio.wait_for(control.reply, scaled(5))
            assert control_reply.status == ReplyStatus.REVOKED
            acknowledged = arrivals.times("control revoked")[0]
            await asyncio.sleep(0.6)  # input keeps coming from the technician meanwhile
            stop_typing.set()
            await typist
            await asyncio.sleep(0.3)

            # Input: nothing lands later than 200 ms after the customer acted, and
            # nothing after the technician was told.
            keys = key_times(screen_app, "z")
            assert max(keys) - customer_acted < 0.2, max(keys) - customer_acted
            assert max(keys) <= acknowledged + 0.02

            frames = arrivals.times("frame")
            if revoke == "screen":
                screen_reply = await asyncio.wait_for(stream.reply, scaled(5))
                assert screen_reply.status == ReplyStatus.REVOKED
                # Frames: none after the revocation reached the technician, and the
                # last one within 200 ms of the customer's action.
                assert arrivals.index("screen revoked") > max(
                    i for i, (_, k) in enumerate(arrivals.events) if k == "frame"
                )
                assert frames[-1] - customer_acted < 0.2, frames[-1] - customer_acted
            else:
                # Control alone was withdrawn: the picture keeps coming.
                assert frames[-1] > acknowledged + 0.3
                assert not stream.reply.done()
                await stream.stop()

    asyncio.run(scenario())


# No desktop to capture ------------------------------------------------------------------


def test_no_display_is_said_plainly_to_both(
    relay_process: RelayProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.delenv("XDG_SESSION_TYPE", raising=False)
    token = relay_process.add_technician()
    tech = console(relay_process, token)
    code = tech.expect(r"^code: (\S+)$").group(1)
    customer = ScriptedCustomer(
        relay_process.ws_url, code, tmp_path / "logs", answers={"Screen view": "y"}
    )
    tech.expect(r"Check code")
    tech.send(f"screenshot {tmp_path / 'shot.png'}")
    tech.expect(r"^error screenshot: Puente cannot see a screen on this computer: no graphical")
    customer.expect(r"^Puente cannot see a screen on this computer: no graphical desktop")
    tech.send("click 10 10")
    tech.expect(r"^error click: Puente cannot see a screen")
    tech.send("end")
    assert tech.wait() == 0
    assert customer.wait() == 0
    assert customer.questions == []  # nobody is asked to allow what cannot work
    assert not (tmp_path / "shot.png").exists()
