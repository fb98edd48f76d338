"""Session console commands for screen view and remote control.

``screenshot FILE.png [MONITOR]``, ``move X Y``, ``click X Y [left|right|middle]``,
``type TEXT``, ``key COMBO``. Coordinates are pixels of the customer's whole desktop
(what ``screenshot FILE.png 0`` shows; on one monitor, the same as monitor 1). Each
command asks for the consent it needs first (control needs screen view) and reports
a refusal as a ``declined`` line.
"""

from __future__ import annotations

from pathlib import Path

from protocol import input as input_protocol
from protocol.messages import ReplyStatus

from .console import Result, SessionConsole, command, need, reply_result
from .errors import StreamRefused, UsageError
from .screen_stream import ScreenStream, save_png

SCREENSHOT_TIMEOUT = 30.0


def _int(text: str, what: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise UsageError(f"{what} must be a whole number, not {text!r}") from None


@command(
    "screenshot",
    "screenshot FILE.png [MONITOR]",
    "save the customer's screen as a PNG (monitor 0 = all; asks for screen view)",
)
async def _screenshot(console: SessionConsole, args: list[str]) -> Result:
    need(args, 1)
    path = Path(args[0])
    if path.suffix.lower() != ".png":
        raise UsageError("the file name must end in .png")
    monitor = _int(args[1], "MONITOR") if len(args) > 1 else 0
    stream = ScreenStream(console.session, monitor=monitor, lossless=True, max_fps=5)
    try:
        info = await stream.start(timeout=SCREENSHOT_TIMEOUT)
    except StreamRefused as exc:
        refused = reply_result("screen view", exc.reply.status, exc.reply.message)
        return refused or Result("error", "the screen stream did not start")
    except TimeoutError as exc:
        return Result("error", str(exc))
    try:
        await stream.wait_for(lambda: stream.decoder.complete, SCREENSHOT_TIMEOUT)
        assert stream.decoder.canvas is not None
        save_png(stream.decoder.canvas, path)
    except StreamRefused as exc:
        refused = reply_result("screen view", exc.reply.status, exc.reply.message)
        return refused or Result("error", "the screen stream ended early")
    except TimeoutError:
        return Result("error", "the screen did not arrive in time; try again")
    finally:
        await stream.stop()
    return Result(
        "ok",
        f"{info.width}x{info.height} written to {path}",
        {"path": str(path), "width": info.width, "height": info.height, "monitor": monitor},
    )


async def _control(console: SessionConsole, events: list[input_protocol.InputEvent]) -> Result:
    session = console.session
    if session.consent.get("screen") != "granted":
        # Control needs screen view: ask for that first, as the customer sees it.
        reply = await session.request("screen", "monitors")
        refused = reply_result("screen view", reply.status, reply.message)
        if refused:
            return refused
    reply = await session.request(
        "control",
        "inject",
        {"monitor": 0, "events": input_protocol.events_to_wire(events)},
    )
    refused = reply_result("remote control", reply.status, reply.message)
    if refused:
        return refused
    assert reply.status == ReplyStatus.OK
    return Result("ok", "done", dict(reply.result or {}))


def _point(args: list[str]) -> tuple[int, int]:
    need(args, 2)
    return _int(args[0], "X"), _int(args[1], "Y")


@command("move", "move X Y", "move the customer's pointer (asks for remote control)")
async def _move(console: SessionConsole, args: list[str]) -> Result:
    x, y = _point(args)
    result = await _control(console, [input_protocol.Move(x, y)])
    if result.status == "ok":
        result.message = f"pointer at {x},{y}"
    return result


@command(
    "click",
    "click X Y [left|right|middle]",
    "click on the customer's screen (asks for remote control)",
)
async def _click(console: SessionConsole, args: list[str]) -> Result:
    x, y = _point(args)
    name = args[2].lower() if len(args) > 2 else "left"
    try:
        button = input_protocol.Button(name)
    except ValueError:
        raise UsageError(f"unknown button {name!r}; use left, right or middle") from None
    result = await _control(console, [input_protocol.Click(x, y, button)])
    if result.status == "ok":
        result.message = f"{button} click at {x},{y}"
    return result


@command("type", "type TEXT", "type text on the customer's computer (asks for remote control)")
async def _type(console: SessionConsole, args: list[str]) -> Result:
    need(args, 1)
    text = " ".join(args)
    if len(text) > input_protocol.MAX_TEXT:
        raise UsageError(f"at most {input_protocol.MAX_TEXT} characters at a time")
    result = await _control(console, [input_protocol.Text(text)])
    if result.status == "ok":
        result.message = f"typed {len(text)} characters"
    return result


@command("key", "key COMBO", "press a key or combination, e.g. ctrl+alt+t or enter")
async def _key(console: SessionConsole, args: list[str]) -> Result:
    need(args, 1)
    try:
        combo = input_protocol.parse_combo(args[0])
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    result = await _control(console, [combo])
    if result.status == "ok":
        result.message = f"pressed {'+'.join(combo.keys)}"
    return result
