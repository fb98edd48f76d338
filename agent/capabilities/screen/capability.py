"""The ``screen`` (view) and ``control`` (mouse and keyboard) capabilities.

``screen`` actions:

* ``monitors`` -> the monitor layout (asks for consent; used by the console first).
* ``stream`` (args: ``stream`` id, ``monitor`` (0 = all, default 1), ``max_fps``,
  ``quality`` (0 = automatic), ``lossless``) -> streams :mod:`protocol.screen`
  messages on the ``screen`` channel until the viewer sends ``Stop`` (reply OK with
  counts) or the customer withdraws consent (reply REVOKED).

``control`` actions (control requires screen: the gate refuses it otherwise):

* ``inject`` (args: ``monitor``, ``events`` as in :mod:`protocol.input`) -> injects
  them and replies with how many landed.
* ``stream`` (args: ``stream`` id) -> injects events arriving on the ``input``
  channel until cancelled or revoked.

Consent is checked (``authorization.check()``) immediately before every frame is
queued and every event is injected; the session also discards frames still queued
on the screen channel at the moment of revocation, so none leaves after it.

When to look at the screen: where the X server reports what was drawn (X11 DAMAGE),
the stream captures just the tiles under the drawing, as soon as it is reported (at
once after the technician's input, else at most ``max_fps`` times a second), looks
at the pointer 30 times a second and compares the whole screen once a second in case
something was drawn without a report. Elsewhere (Windows, macOS, no DAMAGE, or
``PUENTE_SCREEN_POLL`` set) it compares the whole screen up to ``max_fps`` times a
second (30 when nothing changed for a second).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agent.capabilities.base import Capability, CapabilityCall, ChannelPort
from agent.capabilities.screen.capture import (
    CaptureUnavailable,
    DamageWatcher,
    ScreenCapture,
    unavailable_reason,
)
from agent.capabilities.screen.input import LandingCheck, X11AgentWindows
from agent.capabilities.screen.pacing import FramePacer
from agent.capabilities.screen.pipeline import (
    LAYOUT_CHECK_S,
    Box,
    ScreenPipeline,
    StepResult,
    split_rects,
)
from agent.consent import TrustedPath
from agent.errors import CapabilityFailed
from protocol import input as input_protocol
from protocol import screen as screen_protocol
from protocol.errors import MalformedMessage
from protocol.mux import Channel
from protocol.screen import Codec, Frame

SCREEN_DESCRIPTION = (
    "Let the technician see your screen, live: everything shown on it, including "
    "open windows and notifications. They cannot click or type unless you also allow "
    "remote control."
)
CONTROL_DESCRIPTION = (
    "Let the technician move your mouse pointer, click and type on this computer while "
    "you watch. Type 'stop control' at any moment to take it back at once."
)

#: After this long without change, poll more slowly to spare the customer's CPU.
IDLE_AFTER_S = 1.0
IDLE_FPS = 30
#: Delay after input before capturing: time for the application to redraw.
AFTER_INPUT_S = 0.004
#: Set (to anything) to compare the whole screen many times a second even where the X
#: server reports drawing: for an X server whose reports are wrong, and for tests.
POLL_ENV = "PUENTE_SCREEN_POLL"
#: With reports of drawing (X11 DAMAGE), the whole screen is still compared this often,
#: in case something was drawn without a report.
FULL_CHECK_S = 1.0
#: For this long after input, a capture that finds no change is followed by another one
#: AFTER_INPUT_S later (an application may take a few milliseconds to redraw).
INPUT_WATCH_S = 0.05


class ScreenSession:
    """What screen view and remote control share within one session (kept in the
    call's :class:`agent.capabilities.base.SessionState`)."""

    def __init__(self) -> None:
        #: The streams running (``"screen"``, ``"control"``; one of each at a time).
        self.streaming: set[str] = set()
        #: Set by the control stream after injecting input, so the screen stream looks
        #: again soon: the technician sees the effect of a click without a slow poll.
        self.input_activity = asyncio.Event()


def _shared(call: CapabilityCall) -> ScreenSession:
    return call.session.get(ScreenSession, ScreenSession)


def _activity(call: CapabilityCall) -> asyncio.Event:
    return _shared(call).input_activity


def _port(call: CapabilityCall, channel: Channel, what: str) -> ChannelPort:
    port = call.channels.get(channel)
    if port is None:
        raise CapabilityFailed(f"{what} streaming needs a session link")
    return port


def _arg_int(args: dict[str, Any], name: str, default: int, low: int, high: int) -> int:
    value = args.get(name, default)
    if type(value) is not int or not low <= value <= high:
        raise CapabilityFailed(f"{name} must be a whole number from {low} to {high}")
    return value


@contextlib.contextmanager
def _exclusive(call: CapabilityCall, what: str) -> Any:
    running = _shared(call).streaming
    if what in running:
        raise CapabilityFailed(
            f"A {what} stream is already running in this session; stop it first."
        )
    running.add(what)
    try:
        yield
    finally:
        running.discard(what)


# Screen capability ----------------------------------------------------------------------


async def _screen_handler(call: CapabilityCall) -> dict[str, Any]:
    if call.action == "monitors":
        capture = await asyncio.to_thread(ScreenCapture)
        try:
            monitors = capture.monitors
        finally:
            capture.close()
        return {"monitors": [m.to_wire() for m in monitors]}
    port = _port(call, Channel.SCREEN, "screen")
    with _exclusive(call, "screen"):
        return await _stream_screen(call, port)


async def _stream_screen(call: CapabilityCall, port: ChannelPort) -> dict[str, Any]:
    args = call.args
    stream = _arg_int(args, "stream", 0, 0, 2**63)
    monitor = _arg_int(args, "monitor", 1, 0, screen_protocol.MAX_MONITORS)
    pacer = FramePacer(
        max_fps=_arg_int(args, "max_fps", 0, 0, 120),
        quality=_arg_int(args, "quality", 0, 0, 100),
    )
    lossless = bool(args.get("lossless", False))
    loop = asyncio.get_running_loop()
    # One thread owns the capture connection and the encoder for the whole stream.
    executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="puente-screen")
    pipeline: ScreenPipeline | None = None
    ack_or_stop = asyncio.Event()
    stopped = False
    problem: list[CapabilityFailed] = []

    async def read_viewer() -> None:
        nonlocal stopped
        while not stopped:
            data = await port.receive()
            if data is None:
                stopped = True
                break
            try:
                message = screen_protocol.parse(data)
            except MalformedMessage as exc:
                problem.append(
                    CapabilityFailed(f"The technician's viewer sent a bad message ({exc}).")
                )
                stopped = True
                break
            if getattr(message, "stream", None) != stream:
                continue  # an older stream's leftovers
            if isinstance(message, screen_protocol.Ack):
                pacer.acked(message.seq, loop.time())
            elif isinstance(message, screen_protocol.Settings):
                pacer.configure(max_fps=message.max_fps, quality=message.quality)
                if pipeline is not None and message.monitor >= 0:
                    executor.submit(pipeline.select, message.monitor)
                elif pipeline is not None and message.refresh:
                    executor.submit(pipeline.refresh)
            elif isinstance(message, screen_protocol.Stop):
                stopped = True
            ack_or_stop.set()
        ack_or_stop.set()

    try:
        pipeline = await loop.run_in_executor(
            executor, lambda: ScreenPipeline(stream, monitor, lossless=lossless)
        )
        reader = asyncio.create_task(read_viewer())
        try:
            run = _FrameLoop(call, port, pipeline, pacer, executor, ack_or_stop, lambda: stopped)
            await _send_frames(run)
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
        if problem:
            raise problem[0]
    finally:
        if pipeline is not None:
            executor.submit(pipeline.close)
        executor.shutdown(wait=False)
    return {"frames": pacer.frames_sent, "bytes": pacer.bytes_sent}


@dataclass
class _FrameLoop:
    """What the frame loops share: the call, the screen channel and the pipeline, the
    pacer, the capture thread, the event set by every ack (and at the stop), and the
    stop test."""

    call: CapabilityCall
    port: ChannelPort
    pipeline: ScreenPipeline
    pacer: FramePacer
    executor: concurrent.futures.Executor
    ack_or_stop: asyncio.Event
    is_stopped: Callable[[], bool]


async def _send_frames(run: _FrameLoop) -> None:
    """Capture and send frames until stopped: driven by the X server's reports of what
    was drawn where it gives them (X11 DAMAGE), else by polling the whole screen."""
    watcher = None if os.environ.get(POLL_ENV) else DamageWatcher.open()
    if watcher is None:
        await _poll_frames(run)
        return
    try:
        await _watch_frames(run, watcher)
    finally:
        watcher.close()


async def _poll_frames(run: _FrameLoop) -> None:
    """Look at the whole screen up to ``max_fps`` times a second (30 when idle)."""
    call, pipeline, pacer, executor = run.call, run.pipeline, run.pacer, run.executor
    ack_or_stop, is_stopped = run.ack_or_stop, run.is_stopped
    loop = asyncio.get_running_loop()
    last_change = loop.time()
    activity = _activity(call)
    input_at = -1e9  # when input last landed
    found_nothing = False  # whether the last capture saw no change
    while not is_stopped():
        if not await _window_open(pacer, ack_or_stop, is_stopped):
            return
        now = loop.time()
        delay = pacer.delay(now)
        if now - last_change > IDLE_AFTER_S:
            delay = max(delay, pacer.delay(now, IDLE_FPS))
        if found_nothing and now - input_at < INPUT_WATCH_S:
            # Input landed but the screen showed nothing new yet: the application
            # is still drawing, look again soon instead of a whole frame later.
            delay = min(delay, AFTER_INPUT_S)
        if delay > 0 and not activity.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(activity.wait(), delay)
        if activity.is_set():
            # Input landed (perhaps while the last capture ran): look again shortly,
            # and stay at the fast rate. Cleared here, before the capture, so input
            # that lands during the capture is seen on the next turn.
            activity.clear()
            input_at = last_change = loop.time()
            await asyncio.sleep(AFTER_INPUT_S)
        # Rule 2 of the pacer counts from here: coding time is part of the interval.
        pacer.captured(loop.time())
        result = await loop.run_in_executor(executor, pipeline.step, pacer.quality)
        found_nothing = not result.rects
        if result.rects:
            last_change = loop.time()
        await _deliver(call, run.port, pacer, result)


async def _watch_frames(run: _FrameLoop, watcher: DamageWatcher) -> None:
    """Capture where the X server reports drawing, as soon as the pacer allows (at
    once after input, so a click shows without waiting for a poll). The pointer is
    looked at IDLE_FPS times a second and the whole screen every FULL_CHECK_S, in
    case something was drawn without a report."""
    call, pipeline, pacer, executor = run.call, run.pipeline, run.pacer, run.executor
    ack_or_stop, is_stopped = run.ack_or_stop, run.is_stopped
    loop = asyncio.get_running_loop()
    activity = _activity(call)
    drawn = asyncio.Event()
    broken: list[Exception] = []

    def on_readable() -> None:
        try:
            if watcher.read():
                drawn.set()
        except Exception as exc:  # the X connection broke
            broken.append(exc)
            loop.remove_reader(watcher.fileno())
            drawn.set()

    loop.add_reader(watcher.fileno(), on_readable)
    input_at = last_whole = last_look = -1e9
    try:
        while not is_stopped():
            if broken:
                # No more reports: polling the whole screen still finds every change.
                await _poll_frames(run)
                return
            if not await _window_open(pacer, ack_or_stop, is_stopped):
                return
            # Wait for something to look at: drawing (when the pacer allows), the
            # pointer's turn, the whole screen's turn. Input wakes the wait so the
            # drawing it causes is captured at once.
            while True:
                now = loop.time()
                if activity.is_set():
                    activity.clear()
                    input_at = now
                after_input = now - input_at < INPUT_WATCH_S
                if watcher.pending and (after_input or pacer.delay(now) == 0):
                    kind = "drawn"
                    break
                if now - last_whole >= FULL_CHECK_S:
                    kind = "whole"
                    break
                if now - last_look >= 1 / IDLE_FPS:
                    kind = "pointer"
                    break
                if broken:
                    kind = "whole"
                    break
                wake_at = min(last_whole + FULL_CHECK_S, last_look + 1 / IDLE_FPS)
                if watcher.pending:
                    # Drawing is waiting for the pacer: only input can hurry it.
                    wake_at = min(wake_at, now + pacer.delay(now))
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(activity.wait(), wake_at - now)
                else:
                    drawn.clear()
                    await _wait_for_either(drawn, activity, wake_at - now)
            last_look = loop.time()
            area: Box | None = None
            if kind == "pointer":
                result = await loop.run_in_executor(
                    executor, lambda: pipeline.step(pacer.quality, pixels=False)
                )
            else:
                # Taken on this thread, before the capture starts: whatever is drawn
                # from now on is reported again and captured next time.
                try:
                    area = watcher.take()
                except Exception as exc:  # the X connection broke
                    broken.append(exc)
                    kind = "whole"
                if kind == "whole":
                    area, last_whole = None, last_look
                pacer.captured(last_look)
                result = await loop.run_in_executor(executor, pipeline.step, pacer.quality, area)
            await _deliver(call, run.port, pacer, result)
    finally:
        with contextlib.suppress(Exception):
            loop.remove_reader(watcher.fileno())


async def _window_open(pacer: FramePacer, ack_or_stop: asyncio.Event, is_stopped: Any) -> bool:
    """Wait until the pacer lets another frame go; False if the stream stopped."""
    while not pacer.window_open() and not is_stopped():
        ack_or_stop.clear()
        await ack_or_stop.wait()
    return not is_stopped()


async def _wait_for_either(first: asyncio.Event, second: asyncio.Event, timeout: float) -> None:
    """Return when either event is set or after ``timeout`` seconds."""
    if first.is_set() or second.is_set() or timeout <= 0:
        return
    waiters = [asyncio.ensure_future(first.wait()), asyncio.ensure_future(second.wait())]
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


async def _deliver(
    call: CapabilityCall, port: ChannelPort, pacer: FramePacer, result: StepResult
) -> None:
    """Send what one look at the screen found: Info, the frame(s), the pointer."""
    now = asyncio.get_running_loop().time()
    # Nothing is queued for the technician without live consent; the check and
    # the sends below have no await between them, so a revocation (which runs on
    # this loop) cannot slip in between.
    call.authorization.check()
    if result.info is not None:
        await port.send(screen_protocol.serialize(result.info))
    if result.rects:
        rtt_ms = int((pacer.srtt or 0) * 1000)
        for group in split_rects(result.rects):
            frame = Frame(
                pacer.peek_seq(), result.width, result.height, group, rtt_ms, result.encode_ms
            )
            data = screen_protocol.serialize(frame)
            pacer.sent(len(data), now)
            await port.send(data)
    if result.cursor is not None:
        await port.send(screen_protocol.serialize(result.cursor))


def screen_capability() -> Capability:
    return Capability(
        name="screen",
        title="Screen view",
        description=SCREEN_DESCRIPTION,
        handler=_screen_handler,
        actions=("monitors", "stream"),
        unavailable=unavailable_reason,
        channels=(Channel.SCREEN,),
    )


# Control capability ---------------------------------------------------------------------


class _ControlContext:
    """The injector and the monitor layout, owned by one worker thread."""

    def __init__(self) -> None:
        from agent.capabilities.screen.input import InputInjector, input_scale

        self.capture = ScreenCapture()
        self.injector = InputInjector()
        self.scale = input_scale()
        self.agent_windows = X11AgentWindows.open()
        self._checked = time.monotonic()

    def landing_check(self, path: TrustedPath, since: int) -> LandingCheck:
        """The trusted path for one batch of events that arrived at ``since``.

        An event is dropped while a question is open (or one opened or closed since the
        batch arrived), when it targets one of the agent's own windows, or, for keys
        and text, while one of them has the focus.
        """

        def allow(event: Any, point: tuple[int, int] | None) -> bool:
            if not path.input_allowed(since):
                return False
            if self.agent_windows is None:
                return True
            ids = path.windows
            try:
                if point is not None:
                    return not self.agent_windows.over(point, ids)
                return not self.agent_windows.focused(ids)
            except Exception:  # the X server cannot say: deny by default, drop it
                return False

        return allow

    def inject(
        self, events: list[Any], monitor: int, check: Any, allow: LandingCheck | None = None
    ) -> int:
        now = time.monotonic()
        if now - self._checked > LAYOUT_CHECK_S:
            self._checked = now
            self.capture.refresh_monitors()
        monitors = self.capture.monitors
        if not 0 <= monitor < len(monitors):
            raise CapabilityFailed(f"There is no monitor {monitor} on this computer.")
        return self.injector.inject(events, monitors[monitor], check, self.scale, allow)

    def close(self) -> None:
        self.injector.release_all()
        self.capture.close()
        if self.agent_windows is not None:
            self.agent_windows.close()


def _trusted_path(call: CapabilityCall) -> TrustedPath:
    """The session's trusted path (owned by the consent gate, see agent.consent)."""

    def missing() -> TrustedPath:
        # Deny by default: without it nobody could tell when the customer is asked.
        raise CapabilityFailed(
            "Remote control cannot start: this agent cannot tell when you are being asked "
            "something. Restart the agent, or ask the technician to use screen view only."
        )

    return call.session.get(TrustedPath, missing)


async def _control_handler(call: CapabilityCall) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    path = _trusted_path(call)
    executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="puente-control")
    context: _ControlContext | None = None
    try:
        context = await loop.run_in_executor(executor, _ControlContext)
        if call.action == "inject":
            monitor = _arg_int(call.args, "monitor", 0, 0, screen_protocol.MAX_MONITORS)
            try:
                events = input_protocol.events_from_wire(call.args.get("events"))
            except MalformedMessage as exc:
                raise CapabilityFailed(f"Cannot do that input: {exc}.") from None
            allow = context.landing_check(path, path.generation)
            done = await loop.run_in_executor(
                executor, context.inject, events, monitor, call.authorization.check, allow
            )
            call.log.write(f"The technician used your mouse or keyboard ({done} actions).")
            return {"injected": done}
        port = _port(call, Channel.INPUT, "control")
        with _exclusive(call, "control"):
            return await _stream_control(call, port, context, executor, path)
    finally:
        if context is not None:
            executor.submit(context.close)
        executor.shutdown(wait=False)


async def _stream_control(
    call: CapabilityCall,
    port: ChannelPort,
    context: _ControlContext,
    executor: concurrent.futures.Executor,
    path: TrustedPath,
) -> dict[str, Any]:
    """Inject what arrives on the input channel, along the trusted path: while the
    customer is asked something, input is read and dropped (never replayed)."""
    loop = asyncio.get_running_loop()
    stream = _arg_int(call.args, "stream", 0, 0, 2**63)
    injected = 0
    while True:
        data = await port.receive()
        if data is None:
            return {"injected": injected}
        call.authorization.check()
        try:
            stream_id, monitor, events = input_protocol.parse(data)
        except MalformedMessage as exc:
            raise CapabilityFailed(f"The technician's viewer sent bad input ({exc}).") from None
        if stream_id != stream:
            continue  # input meant for an earlier control stream: never replayed
        if not path.input_allowed():
            continue  # the customer is being asked something: dropped, never replayed
        allow = context.landing_check(path, path.generation)
        injected += await loop.run_in_executor(
            executor, context.inject, events, monitor, call.authorization.check, allow
        )
        _activity(call).set()


def control_capability() -> Capability:
    return Capability(
        name="control",
        title="Remote control",
        description=CONTROL_DESCRIPTION,
        handler=_control_handler,
        actions=("inject", "stream"),
        requires=("screen",),
        unavailable=unavailable_reason,
        channels=(Channel.INPUT,),
    )


__all__ = [
    "CaptureUnavailable",
    "Codec",
    "ScreenPipeline",
    "control_capability",
    "screen_capability",
    "split_rects",
]
