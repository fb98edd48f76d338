"""A real X display for window tests: Xvfb, screenshots, and xdotool as the customer's hand.

Tests start their own Xvfb (on a display number it picks itself) and point DISPLAY
at it. Buttons are found the way a person finds them: by looking at the screen for
their colour inside the window they belong to; then xdotool moves the pointer there
and clicks.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.timeouts import scaled

WIDTH, HEIGHT = 1280, 800


def need_x_tools() -> None:
    for program in ("Xvfb", "xdotool"):
        if shutil.which(program) is None:
            pytest.skip(f"{program} is not installed (apt-get install xvfb xdotool)")
    try:
        import mss  # noqa: F401
    except ImportError:
        pytest.skip("mss is not installed (pip install -e '.[dev]')")


def start_xvfb(
    width: int = WIDTH,
    height: int = HEIGHT,
    run_as: Sequence[str] = (),
    env: dict[str, str] | None = None,
) -> tuple[subprocess.Popen[bytes], str]:
    """Start Xvfb (24-bit, no TCP) on a display number it picks; return it and ``:N``.

    The caller stops it. Shared by the window tests, the screen tests and
    bench/screen_vs_vnc.py. ``run_as``: a prefix that runs it as another account (its
    display's socket is then that account's, as a desktop's is), with ``env``.
    """
    read, write = os.pipe()
    proc = subprocess.Popen(
        [
            *run_as,
            "Xvfb",
            "-displayfd",
            str(write),
            "-screen",
            "0",
            f"{width}x{height}x24",
            "-nolisten",
            "tcp",
            # Without it the server resets (pointer back to the middle) whenever its last
            # client leaves, as the agent's capture does between two requests.
            "-noreset",
        ],
        pass_fds=(write,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    os.close(write)
    with os.fdopen(read) as pipe:
        number = pipe.readline().strip()
    if not number:
        proc.kill()
        proc.wait()
        raise RuntimeError("Xvfb did not start")
    return proc, f":{number}"


@contextmanager
def xvfb() -> Iterator[str]:
    """Start Xvfb on a free display; yield ``:N``; stop it afterwards."""
    need_x_tools()
    proc, display = start_xvfb()
    try:
        yield display
    finally:
        proc.terminate()
        proc.wait(timeout=scaled(10))


@dataclass
class Rect:
    x: int
    y: int
    width: int
    height: int


def xdotool(display: str, *args: str) -> str:
    return subprocess.run(
        ["xdotool", *args],
        env={**os.environ, "DISPLAY": display},
        capture_output=True,
        text=True,
        check=True,
        timeout=scaled(20),
    ).stdout


def wait_window(display: str, name: str, timeout: float = 15.0) -> str:
    """The id of the first visible window titled ``name`` (waits for it)."""
    deadline = time.monotonic() + scaled(timeout)
    while time.monotonic() < deadline:
        try:
            found = xdotool(display, "search", "--onlyvisible", "--name", f"^{name}$").split()
        except subprocess.CalledProcessError:
            found = []
        if found:
            return found[0]
        time.sleep(0.1)
    raise AssertionError(f"no window named {name!r} appeared")


def window_rect(display: str, window: str) -> Rect:
    values = dict(
        line.split("=", 1)
        for line in xdotool(display, "getwindowgeometry", "--shell", window).split()
    )
    return Rect(int(values["X"]), int(values["Y"]), int(values["WIDTH"]), int(values["HEIGHT"]))


def grab(display: str) -> tuple[bytes, int, int]:
    """The whole screen as RGB bytes."""
    import mss

    old = os.environ.get("DISPLAY")
    os.environ["DISPLAY"] = display
    try:
        with mss.MSS() if hasattr(mss, "MSS") else mss.mss() as screen:
            image = screen.grab(screen.monitors[0])
            return image.rgb, image.width, image.height
    finally:
        if old is None:
            del os.environ["DISPLAY"]
        else:
            os.environ["DISPLAY"] = old


def screenshot(display: str, path: Path) -> Path:
    import mss.tools

    rgb, width, height = grab(display)
    mss.tools.to_png(rgb, (width, height), output=str(path))
    return path


def find_colour(display: str, colour: str, within: Rect | None = None) -> tuple[int, int] | None:
    """The centre of the pixels of exactly ``colour`` (``#rrggbb``) inside ``within``."""
    rgb, width, height = grab(display)
    target = bytes.fromhex(colour.lstrip("#"))
    area = within or Rect(0, 0, width, height)
    xs: list[int] = []
    ys: list[int] = []
    for y in range(max(0, area.y), min(height, area.y + area.height), 2):
        row = rgb[y * width * 3 : (y + 1) * width * 3]
        for x in range(max(0, area.x), min(width, area.x + area.width), 2):
            if row[x * 3 : x * 3 + 3] == target:
                xs.append(x)
                ys.append(y)
    if not xs:
        return None
    return sorted(xs)[len(xs) // 2], sorted(ys)[len(ys) // 2]


def count_colour(display: str, colour: str, within: Rect) -> int:
    rgb, width, _ = grab(display)
    target = bytes.fromhex(colour.lstrip("#"))
    count = 0
    for y in range(within.y, within.y + within.height):
        row = rgb[y * width * 3 : (y + 1) * width * 3]
        for x in range(within.x, within.x + within.width):
            if row[x * 3 : x * 3 + 3] == target:
                count += 1
    return count


def click_colour(display: str, window: str, colour: str, timeout: float = 10.0) -> None:
    """Click the button of ``colour`` in ``window``, as a person would."""
    deadline = time.monotonic() + scaled(timeout)
    while True:
        spot = find_colour(display, colour, window_rect(display, window))
        if spot is not None:
            break
        if time.monotonic() > deadline:
            raise AssertionError(f"no {colour} button in window {window}")
        time.sleep(0.1)
    # No --sync: it waits for a motion event, which never comes when the pointer is
    # already there (a second click on the same button).
    xdotool(display, "mousemove", str(spot[0]), str(spot[1]))
    time.sleep(0.05)
    xdotool(display, "click", "1")


def run_in_child(display: str, module: str, function: str) -> None:
    """Run ``module.function(display)`` in a fresh Python process and check it passed.

    Tk keeps its X connection for the life of the process, so a window test that
    stops its Xvfb would make a later Tk call in the same process exit; each
    in-process window scenario therefore gets a process of its own.
    """
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            f"import sys; from {module} import {function} as f; f(sys.argv[1])",
            display,
        ],
        cwd=root,
        env={**os.environ, "DISPLAY": display, "PUENTE_LANG": "en"},
        capture_output=True,
        text=True,
        timeout=scaled(60),
    )
    assert result.returncode == 0, result.stdout + result.stderr


def x_clipboard(display: str, text: str | None = None) -> str:
    """The display's clipboard, read (or set to ``text``) as another program there would."""
    env = {"DISPLAY": display, "PATH": "/usr/bin:/bin"}
    command = ["xclip", "-selection", "clipboard", "-o" if text is None else "-i"]
    if text is None:
        done = subprocess.run(command, capture_output=True, env=env, timeout=scaled(10))
        return done.stdout.decode()
    # xclip stays behind to serve the selection: its output goes nowhere, so this
    # returns once the text is taken.
    subprocess.run(
        command,
        input=text.encode(),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=scaled(10),
        check=True,
    )
    return text


def close_window(display: str, window: str) -> None:
    """Press ``window``'s close box, as a window manager does for a person: send it
    WM_DELETE_WINDOW (Xvfb has no window manager, and xdotool only destroys windows)."""
    from Xlib import X, protocol
    from Xlib.display import Display

    connection = Display(display)
    try:
        target = connection.create_resource_object("window", int(window))
        event = protocol.event.ClientMessage(
            window=target,
            client_type=connection.intern_atom("WM_PROTOCOLS"),
            data=(32, [connection.intern_atom("WM_DELETE_WINDOW"), X.CurrentTime, 0, 0, 0]),
        )
        target.send_event(event, event_mask=X.NoEventMask)
        # A round trip: the server has done the request before the connection closes
        # (a close with unread data resets the socket and may lose it).
        connection.sync()
    finally:
        connection.close()
