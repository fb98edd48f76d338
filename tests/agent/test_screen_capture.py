"""Capture on a real X display (Xvfb): the X server's reports of drawing (DAMAGE) and
the agent's captures of just the tiles under them, checked against whole captures."""

from __future__ import annotations

import time

import mss
import numpy as np
from Xlib import display as xdisplay

from agent.capabilities.screen.capture import DamageWatcher
from agent.capabilities.screen.pipeline import ScreenPipeline
from protocol.screen import Frame
from technician.screen_stream import FrameDecoder
from tests.support.screen_fixtures import SCREEN_SIZE
from tests.support.timeouts import scaled

TILE = 64


class Painter:
    """Draws filled rectangles straight onto the X screen, as any application would."""

    def __init__(self) -> None:
        self.connection = xdisplay.Display()
        self.root = self.connection.screen().root

    def fill(self, rgb: int, x: int, y: int, width: int, height: int) -> None:
        gc = self.root.create_gc(foreground=rgb)
        self.root.fill_rectangle(gc, x, y, width, height)
        self.connection.sync()

    def close(self) -> None:
        self.connection.close()


def reported(watcher: DamageWatcher) -> tuple[int, int, int, int]:
    """Wait for the X server's report of drawing; return (and forget) its box."""
    deadline = time.monotonic() + scaled(5)
    while not watcher.read() and not watcher.pending:
        assert time.monotonic() < deadline, "the X server reported no drawing"
        time.sleep(0.005)
    box = watcher.take()
    assert box is not None
    return box


def whole_screen() -> np.ndarray:
    with mss.MSS() as sct:
        shot = sct.grab(sct.monitors[1])
        return np.frombuffer(shot.rgb, np.uint8).reshape(shot.height, shot.width, 3)


def shown(decoder: FrameDecoder) -> np.ndarray:
    assert decoder.canvas is not None
    return decoder.canvas


def show(
    decoder: FrameDecoder, pipeline: ScreenPipeline, drawn: tuple[int, int, int, int] | None = None
) -> Frame:
    """One look at the screen (at ``drawn`` only, if given), applied to the viewer."""
    result = pipeline.step(90, drawn)
    if result.info is not None:
        decoder.apply(result.info)
    frame = Frame(1, result.width, result.height, result.rects or [])
    decoder.apply(frame)
    return frame


def test_damage_reports_lead_to_captures_of_just_those_tiles(xvfb: str) -> None:
    watcher = DamageWatcher.open()
    assert watcher is not None  # Xvfb has the DAMAGE extension
    painter = Painter()
    pipeline = ScreenPipeline(1, 1, lossless=True)
    decoder = FrameDecoder()
    try:
        painter.fill(0x3B6EA5, 0, 0, *SCREEN_SIZE)
        reported(watcher)
        # A look at the drawn area before any whole capture is a whole capture.
        first = show(decoder, pipeline, (0, 0, 10, 10))
        assert sum(r.width * r.height for r in first.rects) == SCREEN_SIZE[0] * SCREEN_SIZE[1]
        assert watcher.take() is None  # nothing drawn since

        painter.fill(0xE02020, 100, 70, 30, 20)
        box = reported(watcher)
        x, y, w, h = box
        assert x <= 100 and y <= 70 and x + w >= 130 and y + h >= 90
        frame = show(decoder, pipeline, box)
        assert frame.rects
        for r in frame.rects:  # only the tiles under the drawing were looked at
            assert 64 <= r.x and r.x + r.width <= 192 and 64 <= r.y and r.y + r.height <= 128
        assert np.array_equal(shown(decoder), whole_screen())

        # Drawing across tile edges and at the screen's bottom right corner.
        painter.fill(0x20C040, 500, 300, 200, 150)
        painter.fill(0x2060C0, SCREEN_SIZE[0] - 7, SCREEN_SIZE[1] - 5, 7, 5)
        show(decoder, pipeline, reported(watcher))
        assert np.array_equal(shown(decoder), whole_screen())

        # Only the box is looked at: a change elsewhere waits for its own report (here
        # ignored) or for the whole screen's turn.
        painter.fill(0xFFFFFF, 10, 10, 5, 5)
        reported(watcher)
        painter.fill(0x101010, 800, 600, 5, 5)
        frame = show(decoder, pipeline, reported(watcher))
        assert frame.rects and all(r.x >= 768 and r.y >= 576 for r in frame.rects)
        assert not np.array_equal(shown(decoder), whole_screen())
        # Looking only at the pointer sends no pixels; a box off the monitor neither.
        assert pipeline.step(90, pixels=False).rects is None
        assert pipeline.step(90, (5000, 5000, 10, 10)).rects is None
        show(decoder, pipeline)
        assert np.array_equal(shown(decoder), whole_screen())
    finally:
        pipeline.close()
        painter.close()
        watcher.close()
