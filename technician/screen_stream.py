"""The technician's side of screen view and remote control.

:class:`FrameDecoder` turns :mod:`protocol.screen` messages into a picture (a numpy
picture); it treats every byte from the agent as hostile: rectangles are checked
against the announced size and each codec's output against its rectangle.
:class:`ScreenStream` runs one ``screen``/``stream`` request: it reads the screen
channel, decodes (in a worker thread, so a GUI stays responsive), acknowledges each
frame and hands results to callbacks. :class:`ControlStream` sends input events.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import secrets
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from protocol import input as input_protocol
from protocol import screen as screen_protocol
from protocol.errors import MalformedMessage
from protocol.messages import Reply, ReplyStatus
from protocol.mux import Channel
from protocol.screen import Codec, Cursor, Frame, Info, Rect

from .client import TechnicianSession

# Raised here; named here too for callers that import them from this module.
from .errors import ScreenDataError as ScreenDataError
from .errors import StreamRefused as StreamRefused

# Decoding -------------------------------------------------------------------------------


@dataclass
class CursorState:
    x: int = 0
    y: int = 0
    visible: bool = False
    #: RGBA (h, w, 4) image of the pointer, or None if the agent did not send one.
    image: np.ndarray | None = None


class FrameDecoder:
    """Keeps the remote picture up to date from Info, Frame and Cursor messages."""

    def __init__(self) -> None:
        self.info: Info | None = None
        #: The picture as (H, W, 4) B, G, R, X bytes: what Qt paints without converting.
        self.pixels: np.ndarray | None = None
        self.cursor = CursorState()
        self._painted: np.ndarray | None = None
        self._video: dict[int, Any] = {}

    @property
    def canvas(self) -> np.ndarray | None:
        """The picture as an (H, W, 3) RGB view (no copy)."""
        return None if self.pixels is None else self.pixels[..., 2::-1]

    @property
    def complete(self) -> bool:
        """True once every pixel of the current screen has been received."""
        return self._painted is not None and bool(self._painted.all())

    def apply(self, message: Info | Frame | Cursor) -> list[tuple[int, int, int, int]]:
        """Apply one message; return the rectangles (x, y, w, h) that changed."""
        if isinstance(message, Info):
            self.info = message
            self.pixels = np.full((message.height, message.width, 4), 255, dtype=np.uint8)
            self.pixels[..., :3] = 0
            self._painted = np.zeros((message.height, message.width), dtype=bool)
            self._close_video()
            return [(0, 0, message.width, message.height)]
        if isinstance(message, Cursor):
            self._apply_cursor(message)
            return []
        if self.pixels is None or self._painted is None:
            raise ScreenDataError("a frame arrived before the screen's size")
        height, width = self.pixels.shape[:2]
        if (message.width, message.height) != (width, height):
            raise ScreenDataError("a frame does not match the announced screen size")
        damaged = []
        for rect in message.rects:
            target = self.pixels[rect.y : rect.y + rect.height, rect.x : rect.x + rect.width]
            if rect.codec is Codec.COPY:
                # Pixels already shown move (scrolling, a dragged window): whole 4-byte
                # pixels at once, much faster than three channels; numpy copes with the
                # overlap of source and target.
                sx, sy = screen_protocol.copy_source(rect)
                source = self.pixels[sy : sy + rect.height, sx : sx + rect.width]
                target.view(np.uint32)[...] = source.view(np.uint32)
                self._painted[rect.y : rect.y + rect.height, rect.x : rect.x + rect.width] = True
                damaged.append((rect.x, rect.y, rect.width, rect.height))
                continue
            pixels, bgr = self._decode(rect)
            if bgr:
                target[..., :3] = pixels[..., :3]
            else:
                target[..., 2::-1] = pixels
            self._painted[rect.y : rect.y + rect.height, rect.x : rect.x + rect.width] = True
            damaged.append((rect.x, rect.y, rect.width, rect.height))
        return damaged

    def close(self) -> None:
        self._close_video()

    # Private methods ---------------------------------------------------------------

    def _decode(self, rect: Rect) -> tuple[np.ndarray, bool]:
        """The rectangle's pixels, and whether they are in B, G, R order (else R, G, B)."""
        w, h = rect.width, rect.height
        if rect.codec is Codec.FILL:
            return np.frombuffer(rect.data, dtype=np.uint8).reshape(1, 1, 3), False
        if rect.codec is Codec.ZLIB:
            expected = w * h * 3
            inflater = zlib.decompressobj()
            try:
                raw = inflater.decompress(rect.data, expected + 1)
            except zlib.error as exc:
                raise ScreenDataError(f"a lossless rectangle did not decode ({exc})") from None
            if len(raw) != expected or inflater.unconsumed_tail:
                raise ScreenDataError("a lossless rectangle has the wrong size")
            return np.frombuffer(raw, dtype=np.uint8).reshape(h, w, 3), False
        if rect.codec is Codec.JPEG:
            import simplejpeg

            try:
                jh, jw, _, _ = simplejpeg.decode_jpeg_header(rect.data)
                if (jw, jh) != (w, h):
                    raise ScreenDataError("a JPEG rectangle has the wrong size")
                return np.asarray(simplejpeg.decode_jpeg(rect.data, colorspace="BGR")), True
            except ValueError as exc:
                raise ScreenDataError(f"a JPEG rectangle did not decode ({exc})") from None
        return self._decode_video(rect), True

    def _decode_video(self, rect: Rect) -> np.ndarray:
        import av

        decoder = self._video.get(rect.stream)
        if decoder is None:
            # One live video stream at a time: a new id means the old one ended.
            self._close_video()
            decoder = av.CodecContext.create("h264", "r")
            decoder.thread_count = 1
            self._video[rect.stream] = decoder
        try:
            frames = decoder.decode(av.Packet(rect.data))
        except av.error.FFmpegError as exc:
            raise ScreenDataError(f"a video rectangle did not decode ({exc})") from None
        if not frames:
            raise ScreenDataError("a video rectangle held no picture")
        picture = frames[-1].to_ndarray(format="bgr24")
        if picture.shape[0] < rect.height or picture.shape[1] < rect.width:
            raise ScreenDataError("a video rectangle is smaller than announced")
        return picture[: rect.height, : rect.width]

    def _apply_cursor(self, message: Cursor) -> None:
        self.cursor.x, self.cursor.y, self.cursor.visible = message.x, message.y, message.visible
        if message.shape:
            from PIL import Image, UnidentifiedImageError

            try:
                with Image.open(io.BytesIO(message.shape)) as image:
                    if image.width > 256 or image.height > 256:
                        raise ScreenDataError("the pointer image is too large")
                    self.cursor.image = np.asarray(image.convert("RGBA"))
            except (UnidentifiedImageError, OSError, ValueError) as exc:
                raise ScreenDataError(f"the pointer image did not decode ({exc})") from None

    def _close_video(self) -> None:
        self._video.clear()


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB between two same-shaped 8-bit images."""
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {a.shape} vs {b.shape}")
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    if mse == 0:
        return float("inf")
    return float(10 * np.log10(255.0**2 / mse))


def save_png(canvas: np.ndarray, path: Any) -> None:
    from PIL import Image

    Image.fromarray(np.ascontiguousarray(canvas), "RGB").save(path, "PNG")


# The stream -----------------------------------------------------------------------------


@dataclass
class StreamFigures:
    """Live figures for the viewer: frames and bytes per second, latency."""

    frames: int = 0
    bytes: int = 0
    fps: float = 0.0
    bytes_per_s: float = 0.0
    rtt_ms: int = 0
    decode_ms: float = 0.0
    _window: list[tuple[float, int]] = field(default_factory=list)

    def add(self, now: float, size: int) -> None:
        self.frames += 1
        self.bytes += size
        self._window.append((now, size))
        while self._window and now - self._window[0][0] > 2.0:
            self._window.pop(0)
        span = max(now - self._window[0][0], 0.5)
        self.fps = (len(self._window) - 1) / span if len(self._window) > 1 else 0.0
        self.bytes_per_s = sum(s for _, s in self._window) / span


FrameCallback = Callable[["ScreenStream", Frame, list[tuple[int, int, int, int]]], None]


class ScreenStream:
    """One screen stream: start, receive and decode frames, acknowledge, stop."""

    def __init__(
        self,
        session: TechnicianSession,
        *,
        monitor: int = 1,
        max_fps: int = 0,
        quality: int = 0,
        lossless: bool = False,
        decode_in_thread: bool = True,
    ) -> None:
        self.session = session
        self.stream_id = secrets.randbits(62)
        self.decoder = FrameDecoder()
        self.figures = StreamFigures()
        self.args = {
            "stream": self.stream_id,
            "monitor": monitor,
            "max_fps": max_fps,
            "quality": quality,
            "lossless": lossless,
        }
        self.on_frame: FrameCallback | None = None
        self.on_info: Callable[[Info], None] | None = None
        self.on_cursor: Callable[[CursorState], None] | None = None
        self.last_frame: Frame | None = None
        self.error: Exception | None = None
        self.reply: asyncio.Future[Reply] | None = None
        self._decode_in_thread = decode_in_thread
        self._request_id = 0
        self._reader: asyncio.Task[None] | None = None
        self._changed = asyncio.Condition()
        self._started = asyncio.Event()

    async def start(self, timeout: float | None = None) -> Info:
        """Ask for the stream (the customer may be asked); return the first Info.

        Raises :class:`StreamRefused` with the agent's reply if it did not start.
        """
        self._request_id, self.reply = await self.session.start("screen", "stream", self.args)
        # The agent's reply ends the stream (a refusal, a failure): wake any wait_for.
        self.reply.add_done_callback(lambda _: asyncio.ensure_future(self._notify()))
        self._reader = asyncio.create_task(self._read())
        started: asyncio.Future[Any] = asyncio.ensure_future(self._started.wait())
        try:
            waits: list[asyncio.Future[Any]] = [started, self.reply, self._reader]
            await asyncio.wait(
                waits,
                timeout=timeout,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            started.cancel()
        if self.decoder.info is not None:
            return self.decoder.info
        if self.reply.done():
            await self._stop_reader()
            raise StreamRefused(self.reply.result())
        if self._reader.done():
            self._reader.result()
        raise TimeoutError("the customer's agent did not start the screen stream in time")

    async def wait_for(self, predicate: Callable[[], bool], timeout: float) -> None:
        """Wait until ``predicate()`` holds after some frame; raise if the stream ends."""
        async with asyncio.timeout(timeout):
            async with self._changed:
                while not predicate():
                    if self.error is not None:
                        raise self.error
                    if self.reply is not None and self.reply.done():
                        raise StreamRefused(self.reply.result())
                    await self._changed.wait()

    async def settings(
        self, *, monitor: int = -1, max_fps: int = 0, quality: int = 0, refresh: bool = False
    ) -> None:
        message = screen_protocol.Settings(self.stream_id, monitor, max_fps, quality, refresh)
        await self.session.link.send(Channel.SCREEN, screen_protocol.serialize(message))

    async def stop(self, timeout: float = 10.0) -> Reply | None:
        """End the stream; return the agent's reply (None if it did not come in time)."""
        reply = self.reply
        if reply is not None and not reply.done():
            with contextlib.suppress(Exception):
                stop = screen_protocol.Stop(self.stream_id)
                await self.session.link.send(Channel.SCREEN, screen_protocol.serialize(stop))
            with contextlib.suppress(TimeoutError, Exception):
                await asyncio.wait_for(asyncio.shield(reply), timeout)
        await self._stop_reader()
        self.decoder.close()
        if reply is None or not reply.done() or reply.cancelled() or reply.exception():
            return None
        return reply.result()

    # Private methods ---------------------------------------------------------------

    async def _stop_reader(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def _read(self) -> None:
        link = self.session.link
        mine = False
        try:
            while True:
                data = await link.receive(Channel.SCREEN)
                if data is None:
                    return
                message = screen_protocol.parse(data)
                if isinstance(message, Info):
                    mine = message.stream == self.stream_id
                if not mine or not isinstance(message, Info | Frame | Cursor):
                    continue  # leftovers of an earlier stream
                started = time.perf_counter()
                if self._decode_in_thread and isinstance(message, Frame):
                    damaged = await asyncio.to_thread(self.decoder.apply, message)
                else:
                    damaged = self.decoder.apply(message)
                decode_ms = (time.perf_counter() - started) * 1000
                if isinstance(message, Info):
                    self._started.set()
                    if self.on_info:
                        self.on_info(message)
                elif isinstance(message, Frame):
                    self.last_frame = message
                    self.figures.add(time.monotonic(), len(data))
                    self.figures.rtt_ms = message.rtt_ms
                    self.figures.decode_ms = decode_ms
                    ack = screen_protocol.Ack(self.stream_id, message.seq, int(decode_ms))
                    await link.send(Channel.SCREEN, screen_protocol.serialize(ack))
                    if self.on_frame:
                        self.on_frame(self, message, damaged)
                elif self.on_cursor:
                    self.on_cursor(self.decoder.cursor)
                await self._notify()
        except MalformedMessage as exc:
            # A hostile or broken agent: stop showing its pixels, say why.
            self.error = exc
            await self._notify()
            with contextlib.suppress(Exception):
                await self.session.cancel(self._request_id)
        finally:
            await self._notify()


class ControlStream:
    """Sends the technician's mouse and keyboard to the agent while control is granted."""

    def __init__(self, session: TechnicianSession, monitor: int = 1) -> None:
        self.session = session
        self.monitor = monitor
        self.stream_id = secrets.randbits(62)
        self.reply: asyncio.Future[Reply] | None = None
        self._request_id = 0

    async def start(self) -> None:
        self._request_id, self.reply = await self.session.start(
            "control", "stream", {"stream": self.stream_id}
        )

    @property
    def active(self) -> bool:
        return self.reply is not None and not self.reply.done()

    async def send(self, events: list[input_protocol.InputEvent]) -> None:
        if self.active and events:
            data = input_protocol.serialize(self.stream_id, self.monitor, events)
            await self.session.link.send(Channel.INPUT, data)

    async def stop(self) -> None:
        if self.active:
            await self.session.cancel(self._request_id)


def refused_status(reply: Reply) -> str:
    """``declined`` or ``error``, for a console result line."""
    if reply.status in (ReplyStatus.DECLINED, ReplyStatus.REVOKED):
        return "declined"
    return "error"
