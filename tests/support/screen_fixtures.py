"""A real X display for screen tests: Xvfb, and a small Tk window that records input.

``xvfb`` starts ``Xvfb`` on a free display number (``-displayfd``) and points
``DISPLAY`` at it for the test and every process it starts. ``screen_app`` shows a
known picture in a Tk window at a known place and reports, on stdout, each key and
click it receives (tests/support/screen_app.py). Tests skip with a reason only when Xvfb is
not installed (CI installs it).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.support.customer import Process
from tests.support.timeouts import scaled
from tests.support.xdisplay import start_xvfb

APP = Path(__file__).with_name("screen_app.py")
SCREEN_SIZE = (1024, 768)
#: Where the test window's picture sits on the screen, and its size.
PICTURE_AT = (40, 30)
PICTURE_SIZE = (320, 200)


def known_picture(width: int = PICTURE_SIZE[0], height: int = PICTURE_SIZE[1]) -> np.ndarray:
    """An RGB picture with flat areas, sharp edges, gradients and noise."""
    rng = np.random.default_rng(1234)
    y, x = np.mgrid[0:height, 0:width]
    picture = np.zeros((height, width, 3), dtype=np.uint8)
    picture[..., 0] = (x * 255 // max(width - 1, 1)).astype(np.uint8)
    picture[..., 1] = (y * 255 // max(height - 1, 1)).astype(np.uint8)
    picture[..., 2] = ((x + y) % 256).astype(np.uint8)
    picture[20:60, 20:120] = (250, 250, 250)
    picture[30:50, 30:110] = (10, 10, 10)
    # A photo-like block: smooth shading with sensor-like grain.
    py, px = np.mgrid[0:80, 0:120]
    shade = np.stack([128 + 100 * np.sin(px / 9), 128 + 90 * np.cos(py / 7), px + py], -1)
    grain = rng.normal(0, 6, (80, 120, 3))
    picture[100:180, 180:300] = (shade + grain).clip(0, 255).astype(np.uint8)
    return picture


def write_ppm(picture: np.ndarray, path: Path) -> None:
    height, width = picture.shape[:2]
    path.write_bytes(f"P6 {width} {height} 255\n".encode() + picture.tobytes())


@pytest.fixture
def xvfb(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh Xvfb display; DISPLAY points at it for this test."""
    if shutil.which("Xvfb") is None:
        pytest.skip("Xvfb is not installed (Debian package xvfb)")
    proc, display = start_xvfb(*SCREEN_SIZE)
    try:
        monkeypatch.setenv("DISPLAY", display)
        monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
        monkeypatch.delenv("XDG_SESSION_TYPE", raising=False)
        yield display
    finally:
        proc.terminate()
        try:
            proc.wait(scaled(10))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class ScreenApp(Process):
    """The Tk test window (tests/support/screen_app.py); its stdout lines are its reports."""

    def command(self, line: str) -> None:
        self.send(line)


@pytest.fixture
def screen_app(xvfb: str, tmp_path: Path) -> Iterator[ScreenApp]:
    picture = tmp_path / "picture.ppm"
    write_ppm(known_picture(), picture)
    app = ScreenApp(
        [sys.executable, str(APP), str(picture), f"+{PICTURE_AT[0]}+{PICTURE_AT[1]}"],
        stdin=True,
    )
    for report in ("ready", "entry", "patch"):
        app.expect(rf"^{report} ", timeout=20)
    yield app
    app.kill()


def xdotool(*args: str) -> str:
    return subprocess.run(
        ["xdotool", *args], check=True, capture_output=True, text=True, timeout=scaled(10)
    ).stdout
