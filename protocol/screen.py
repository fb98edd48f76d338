"""Messages of the ``screen`` channel: pixels out, acknowledgements back.

Pure: msgpack arrays in, checked dataclasses out; no numpy, no codecs, no clocks.

Flow (one stream per ``screen``/``stream`` request; ``stream`` is an id the
technician picks and sends in the request's args, so stray messages of an older
stream are ignored)::

    agent                                    technician
      Info(stream, monitors, size)     ->
      Frame(seq, rects)                ->
      Cursor(x, y, shape)              ->
                                       <-    Ack(stream, seq, decode_ms)
                                       <-    Settings(stream, monitor, max_fps, quality)
                                       <-    Stop(stream)

Rules:

1. The agent sends a ``Frame`` only while fewer than its window of frames are
   unacknowledged (like VNC's update requests), so a slow link or a slow viewer
   gets fewer, fresher frames instead of a growing queue.
2. A ``Frame`` lists rectangles of the selected monitor that changed since the
   previous frame; each says how its pixels are coded. The first frame after
   ``Info`` (and after any ``Settings`` change) covers the whole monitor.
3. Cursor shape and position travel in ``Cursor`` messages, apart from pixels;
   the agent sends the shape only when it changed (``shape`` empty otherwise).
4. Everything from the agent is hostile to the viewer: rectangles must lie inside
   the announced size, sizes are bounded, unknown codecs are errors.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass
from typing import Any

from .errors import MalformedMessage
from .messages import pack, unpack

#: Largest screen side the viewer accepts (8K is 7680).
MAX_SIDE = 16384
MAX_MONITORS = 16
#: Largest encoded screen message; a frame bigger than this is split by the agent.
MAX_SCREEN_MESSAGE = 24 * 1024 * 1024
#: Largest cursor image side.
MAX_CURSOR_SIDE = 256


class ScreenMsg(enum.IntEnum):
    INFO = 1
    FRAME = 2
    CURSOR = 3
    ACK = 10
    SETTINGS = 11
    STOP = 12


class Codec(enum.IntEnum):
    """How a rectangle's pixels are coded."""

    FILL = 0  #: one colour: ``data`` is 3 bytes R, G, B
    ZLIB = 1  #: lossless, for text-like regions: zlib of the rows of R, G, B bytes
    JPEG = 2  #: lossy, for photo-like regions
    H264 = 3  #: one access unit of an H.264 stream (``stream`` names it)
    COPY = 4  #: copy of pixels already shown: ``data`` is source x, y (2 x 4 bytes, BE)


def copy_source(rect: Rect) -> tuple[int, int]:
    """The source (x, y) of a COPY rectangle."""
    x, y = struct.unpack(">II", rect.data)
    return x, y


@dataclass(frozen=True)
class Monitor:
    left: int
    top: int
    width: int
    height: int
    primary: bool = False

    def to_wire(self) -> list[Any]:
        return [self.left, self.top, self.width, self.height, self.primary]


@dataclass(frozen=True)
class Rect:
    x: int
    y: int
    width: int
    height: int
    codec: Codec
    data: bytes
    #: For H264: the video stream id (a new id means a new decoder); else 0.
    stream: int = 0

    def to_wire(self) -> list[Any]:
        return [self.x, self.y, self.width, self.height, int(self.codec), self.data, self.stream]


@dataclass(frozen=True)
class Info:
    """The agent's monitors (index 0 = all of them together) and the one streamed.

    Sent first in every stream and again whenever the monitor or its size changes;
    the viewer drops whatever it receives on this channel before its own ``Info``.
    """

    stream: int
    monitors: list[Monitor]
    selected: int
    width: int
    height: int


@dataclass(frozen=True)
class Frame:
    seq: int
    width: int
    height: int
    rects: list[Rect]
    #: The agent's current round-trip estimate and encoding time, for the live figures.
    rtt_ms: int = 0
    encode_ms: int = 0


@dataclass(frozen=True)
class Cursor:
    """Pointer position in the streamed monitor's pixels; ``shape`` is PNG or empty."""

    x: int
    y: int
    visible: bool = True
    shape: bytes = b""
    hot_x: int = 0
    hot_y: int = 0


@dataclass(frozen=True)
class Ack:
    stream: int
    seq: int
    decode_ms: int = 0


@dataclass(frozen=True)
class Settings:
    """Change what is streamed; 0 for ``max_fps`` or ``quality`` means automatic."""

    stream: int
    monitor: int = -1  # -1: keep the current one
    max_fps: int = 0
    quality: int = 0
    refresh: bool = False  # send a whole frame next


@dataclass(frozen=True)
class Stop:
    stream: int


AgentMessage = Info | Frame | Cursor
ViewerMessage = Ack | Settings | Stop


# Encoding -----------------------------------------------------------------------------


def serialize(message: AgentMessage | ViewerMessage) -> bytes:
    """Encode one screen-channel message (checked first)."""
    check(message)
    if isinstance(message, Info):
        body: list[Any] = [
            ScreenMsg.INFO,
            message.stream,
            [m.to_wire() for m in message.monitors],
            message.selected,
            message.width,
            message.height,
        ]
    elif isinstance(message, Frame):
        body = [
            ScreenMsg.FRAME,
            message.seq,
            message.width,
            message.height,
            [r.to_wire() for r in message.rects],
            message.rtt_ms,
            message.encode_ms,
        ]
    elif isinstance(message, Cursor):
        body = [
            ScreenMsg.CURSOR,
            message.x,
            message.y,
            message.visible,
            message.shape,
            message.hot_x,
            message.hot_y,
        ]
    elif isinstance(message, Ack):
        body = [ScreenMsg.ACK, message.stream, message.seq, message.decode_ms]
    elif isinstance(message, Settings):
        body = [
            ScreenMsg.SETTINGS,
            message.stream,
            message.monitor,
            message.max_fps,
            message.quality,
            message.refresh,
        ]
    else:
        body = [ScreenMsg.STOP, message.stream]
    return pack([int(body[0]), *body[1:]])


def parse(data: bytes) -> AgentMessage | ViewerMessage:
    """Decode and check one screen-channel message; anything odd is MalformedMessage."""
    value = unpack(data, max_size=MAX_SCREEN_MESSAGE)
    if not isinstance(value, list) or not value or type(value[0]) is not int:
        raise MalformedMessage("a screen message is a non-empty array")
    try:
        kind = ScreenMsg(value[0])
    except ValueError:
        raise MalformedMessage(f"unknown screen message type {value[0]!r}") from None
    fields = value[1:]
    message: AgentMessage | ViewerMessage
    try:
        if kind is ScreenMsg.INFO:
            stream, monitors_raw, selected, width, height = fields
            _want(isinstance(monitors_raw, list), "INFO monitors must be a list")
            monitors = []
            for m in monitors_raw:
                _want(isinstance(m, list) and len(m) == 5, "INFO monitor must have 5 fields")
                monitors.append(Monitor(*m))
            message = Info(stream, monitors, selected, width, height)
        elif kind is ScreenMsg.FRAME:
            seq, width, height, rects_raw, rtt_ms, encode_ms = fields
            _want(isinstance(rects_raw, list), "FRAME rects must be a list")
            rects = []
            for r in rects_raw:
                _want(isinstance(r, list) and len(r) == 7, "FRAME rect must have 7 fields")
                _want(type(r[4]) is int, "FRAME rect codec must be an integer")
                try:
                    codec = Codec(r[4])
                except ValueError:
                    raise MalformedMessage(f"unknown pixel codec {r[4]!r}") from None
                rects.append(Rect(r[0], r[1], r[2], r[3], codec, r[5], r[6]))
            message = Frame(seq, width, height, rects, rtt_ms, encode_ms)
        elif kind is ScreenMsg.CURSOR:
            message = Cursor(*fields)
        elif kind is ScreenMsg.ACK:
            message = Ack(*fields)
        elif kind is ScreenMsg.SETTINGS:
            message = Settings(*fields)
        else:
            message = Stop(*fields)
    except (TypeError, ValueError):
        raise MalformedMessage(f"{kind.name} has the wrong number of fields") from None
    check(message)
    return message


# Checking -----------------------------------------------------------------------------


def _want(condition: bool, problem: str) -> None:
    if not condition:
        raise MalformedMessage(problem)


def _int(value: Any, name: str, low: int, high: int) -> None:
    _want(type(value) is int, f"{name} must be an integer")
    _want(low <= value <= high, f"{name} out of range")


def _side(value: Any, name: str) -> None:
    _int(value, name, 1, MAX_SIDE)


def check(message: AgentMessage | ViewerMessage) -> None:
    """Raise MalformedMessage unless every field is of the right type and in range."""
    if isinstance(message, Info):
        _int(message.stream, "INFO stream", 0, 2**63)
        _want(0 < len(message.monitors) <= MAX_MONITORS + 1, "INFO needs 1..17 monitors")
        for m in message.monitors:
            _int(m.left, "monitor left", -MAX_SIDE * 4, MAX_SIDE * 4)
            _int(m.top, "monitor top", -MAX_SIDE * 4, MAX_SIDE * 4)
            _int(m.width, "monitor width", 1, MAX_SIDE * 4)
            _int(m.height, "monitor height", 1, MAX_SIDE * 4)
            _want(type(m.primary) is bool, "monitor primary must be a boolean")
        _int(message.selected, "INFO selected", 0, len(message.monitors) - 1)
        _side(message.width, "INFO width")
        _side(message.height, "INFO height")
    elif isinstance(message, Frame):
        _int(message.seq, "FRAME seq", 0, 2**62)
        _side(message.width, "FRAME width")
        _side(message.height, "FRAME height")
        _int(message.rtt_ms, "FRAME rtt_ms", 0, 10**7)
        _int(message.encode_ms, "FRAME encode_ms", 0, 10**7)
        for r in message.rects:
            _int(r.x, "rect x", 0, message.width - 1)
            _int(r.y, "rect y", 0, message.height - 1)
            _int(r.width, "rect width", 1, message.width - r.x)
            _int(r.height, "rect height", 1, message.height - r.y)
            _want(isinstance(r.codec, Codec), "rect codec must be a Codec")
            _want(isinstance(r.data, bytes), "rect data must be bytes")
            _int(r.stream, "rect stream", 0, 2**31)
            if r.codec is Codec.FILL:
                _want(len(r.data) == 3, "a FILL rect carries 3 bytes")
            if r.codec is Codec.COPY:
                _want(len(r.data) == 8, "a COPY rect carries 8 bytes")
                sx, sy = copy_source(r)
                _want(
                    sx + r.width <= message.width and sy + r.height <= message.height,
                    "a COPY rect's source lies outside the screen",
                )
    elif isinstance(message, Cursor):
        _int(message.x, "CURSOR x", -MAX_SIDE, 2 * MAX_SIDE)
        _int(message.y, "CURSOR y", -MAX_SIDE, 2 * MAX_SIDE)
        _want(type(message.visible) is bool, "CURSOR visible must be a boolean")
        _want(isinstance(message.shape, bytes), "CURSOR shape must be bytes")
        _want(len(message.shape) <= 1 << 20, "CURSOR shape too large")
        _int(message.hot_x, "CURSOR hot_x", 0, MAX_CURSOR_SIDE)
        _int(message.hot_y, "CURSOR hot_y", 0, MAX_CURSOR_SIDE)
    elif isinstance(message, Ack):
        _int(message.stream, "ACK stream", 0, 2**63)
        _int(message.seq, "ACK seq", 0, 2**62)
        _int(message.decode_ms, "ACK decode_ms", 0, 10**7)
    elif isinstance(message, Settings):
        _int(message.stream, "SETTINGS stream", 0, 2**63)
        _int(message.monitor, "SETTINGS monitor", -1, MAX_MONITORS)
        _int(message.max_fps, "SETTINGS max_fps", 0, 120)
        _int(message.quality, "SETTINGS quality", 0, 100)
        _want(type(message.refresh) is bool, "SETTINGS refresh must be a boolean")
    elif isinstance(message, Stop):
        _int(message.stream, "STOP stream", 0, 2**63)
    else:
        raise MalformedMessage("not a screen message")


__all__ = [
    "Ack",
    "Codec",
    "Cursor",
    "Frame",
    "Info",
    "Monitor",
    "Rect",
    "ScreenMsg",
    "Settings",
    "Stop",
    "parse",
    "serialize",
]
