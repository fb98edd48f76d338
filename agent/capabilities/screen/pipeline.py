"""The screen pipeline: capture, compare in tiles, encode what changed (one worker
thread per stream), and how a frame's rectangles are cut to fit a message."""

from __future__ import annotations

import time
from dataclasses import dataclass

from agent.capabilities.screen.capture import (
    CaptureUnavailable,
    ScreenCapture,
)
from agent.capabilities.screen.encoder import TILE, FrameEncoder
from agent.errors import CapabilityFailed
from protocol import screen as screen_protocol
from protocol.screen import Cursor, Info, Rect

#: How often the monitor layout is read again (resolution changes).
LAYOUT_CHECK_S = 1.0
#: Largest frame message; bigger updates are split over several frames.
FRAME_BUDGET = 8 * 1024 * 1024

#: A box on the desktop: x, y, width, height.
Box = tuple[int, int, int, int]


# The pipeline (runs in one worker thread per stream) ----------------------------------


@dataclass
class StepResult:
    info: Info | None
    rects: list[Rect] | None  # None: nothing changed
    cursor: Cursor | None
    encode_ms: int
    width: int
    height: int


class ScreenPipeline:
    """Capture -> tile diff -> encode for the selected monitor; one thread uses it."""

    def __init__(self, stream: int, monitor: int, *, lossless: bool) -> None:
        self.stream = stream
        self.capture = ScreenCapture()
        monitors = self.capture.monitors
        if not 0 <= monitor < len(monitors):
            count = len(monitors) - 1
            self.capture.close()
            raise CapabilityFailed(
                f"This computer has {count} monitor{'s' if count != 1 else ''}; ask for "
                f"1 to {count}, or 0 for all of them."
            )
        self.monitor = monitor
        self.lossless = lossless
        self.encoder = FrameEncoder(video=not lossless)
        self._previous_raw: bytearray | None = None
        self._info_due = True
        self._layout_checked = time.monotonic()
        self._cursor_pos: tuple[int, int, bool] | None = None
        self._cursor_shape: bytes | None = None

    def select(self, monitor: int) -> None:
        if 0 <= monitor < len(self.capture.monitors):
            self.monitor = monitor
            self.refresh()

    def refresh(self) -> None:
        self.encoder.reset()
        self._previous_raw = None
        self._info_due = True

    def info(self) -> Info:
        m = self.capture.monitors[self.monitor]
        return Info(self.stream, list(self.capture.monitors), self.monitor, m.width, m.height)

    def step(self, quality: int, drawn: Box | None = None, *, pixels: bool = True) -> StepResult:
        """Look at the screen once: the rectangles that changed, the pointer, any Info.

        ``drawn`` (x, y, width, height in desktop pixels) says only that part can have
        changed since the last look: only the tiles under it are captured and
        compared. None looks at the whole monitor; ``pixels=False`` only at the
        pointer (and the layout).
        """
        now = time.monotonic()
        if now - self._layout_checked >= LAYOUT_CHECK_S:
            self._layout_checked = now
            self._check_layout()
        try:
            return self._look(quality, drawn, pixels, now)
        except CaptureUnavailable:
            # The screen may have changed size since the last layout check (the X
            # server refuses a grab of the old size): start over with the new one.
            self._layout_checked = now
            if not self._check_layout():
                raise
            return self._look(quality, None, pixels, now)

    def _check_layout(self) -> bool:
        """Read the monitor layout again; on a change (a resolution change) start over
        with a whole frame and a new Info. Return whether it changed."""
        if not self.capture.refresh_monitors():
            return False
        if self.monitor >= len(self.capture.monitors):
            self.monitor = 1 if len(self.capture.monitors) > 1 else 0
        self.refresh()
        return True

    def _look(self, quality: int, drawn: Box | None, pixels: bool, now: float) -> StepResult:
        info = self.info() if self._info_due else None
        self._info_due = False
        started = time.perf_counter()
        m = self.capture.monitors[self.monitor]
        rects: list[Rect] | None = None
        if not pixels:
            pass
        elif drawn is not None and self.encoder.has_previous:
            window = tile_window(drawn, m)
            if window is not None:
                x, y, w, h = window
                image, _ = self.capture.grab(self.monitor, window)
                rects = self.encoder.encode_window(
                    image, x, y, quality=quality, lossless=self.lossless, now=now
                )
                # The whole picture changed under the last whole capture's bytes.
                self._previous_raw = None
        else:
            image, raw = self.capture.grab(self.monitor)
            if self._previous_raw is not None and raw == self._previous_raw:
                pass  # the common case when polling, decided by one memcmp
            else:
                rects = self.encoder.encode(image, quality=quality, lossless=self.lossless, now=now)
            self._previous_raw = raw
        encode_ms = int((time.perf_counter() - started) * 1000)
        return StepResult(info, rects or None, self._cursor(m), encode_ms, m.width, m.height)

    def close(self) -> None:
        self.capture.close()

    def _cursor(self, m: screen_protocol.Monitor) -> Cursor | None:
        image = self.capture.cursor()
        if image is None:
            return None
        x, y = image.x - m.left, image.y - m.top
        visible = -image.width < x < m.width and -image.height < y < m.height
        position = (x, y, visible)
        shape = b""
        if image.bgra != self._cursor_shape:
            self._cursor_shape = image.bgra
            shape = image.png()
        elif position == self._cursor_pos:
            return None
        self._cursor_pos = position
        return Cursor(
            max(-screen_protocol.MAX_SIDE, min(x, 2 * screen_protocol.MAX_SIDE)),
            max(-screen_protocol.MAX_SIDE, min(y, 2 * screen_protocol.MAX_SIDE)),
            visible,
            shape,
        )


def tile_window(drawn: Box, m: screen_protocol.Monitor) -> Box | None:
    """The whole tiles of monitor ``m`` under ``drawn`` (desktop pixels), in the
    monitor's pixels (x, y, width, height); None if ``drawn`` misses the monitor."""
    x0 = max(drawn[0] - m.left, 0)
    y0 = max(drawn[1] - m.top, 0)
    x1 = min(drawn[0] + drawn[2] - m.left, m.width)
    y1 = min(drawn[1] + drawn[3] - m.top, m.height)
    if x1 <= x0 or y1 <= y0:
        return None
    x0, y0 = x0 // TILE * TILE, y0 // TILE * TILE
    x1, y1 = min(-(-x1 // TILE) * TILE, m.width), min(-(-y1 // TILE) * TILE, m.height)
    return x0, y0, x1 - x0, y1 - y0


def split_rects(rects: list[Rect], budget: int = FRAME_BUDGET) -> list[list[Rect]]:
    """Group rectangles into frames of at most ``budget`` bytes of pixel data each."""
    groups: list[list[Rect]] = [[]]
    size = 0
    for rect in rects:
        if groups[-1] and size + len(rect.data) > budget:
            groups.append([])
            size = 0
        groups[-1].append(rect)
        size += len(rect.data)
    return groups
