"""Remote control on the customer's machine: coordinates mapping and pynput injection.

:func:`desktop_point` is pure (tested without a display): it maps a point given in
the pixels of one monitor, as the technician saw it, to the coordinates the
input system expects. :class:`InputInjector` is the thin adapter over ``pynput``.

Every event is checked against the control authorization immediately before it
is injected, in the injecting thread, so nothing more lands once the customer
withdraws control, even events already received. Then ``allow(event, point)``
decides whether it may land at all (the trusted path: no remote input while the
customer is asked something, none on the agent's own windows); an event it refuses
is dropped, never queued. :class:`X11AgentWindows` answers "is this point over one
of the agent's windows" and "has one of them the keyboard focus" on X11. Windows and
macOS have no such query here; there the guarantee is that remote input is paused
while any question is open (see docs/TRUST.md, "Trusted path").
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Collection

from protocol.input import (
    Button,
    ButtonEvent,
    Click,
    Combo,
    InputEvent,
    Key,
    Move,
    Text,
    Wheel,
)
from protocol.screen import Monitor


def desktop_point(monitor: Monitor, x: int, y: int, scale: float = 1.0) -> tuple[int, int]:
    """Map (x, y) in the monitor's captured pixels to input coordinates.

    ``monitor`` is in input coordinates (what the pointer uses); ``scale`` is how
    many captured pixels one input unit covers (2.0 on a Retina Mac, 1.0 on X11 and
    DPI-aware Windows). Points outside the monitor are clamped to its edge, so a
    click never lands on another monitor by accident.
    """
    width_px = max(1, round(monitor.width * scale))
    height_px = max(1, round(monitor.height * scale))
    px = min(max(x, 0), width_px - 1)
    py = min(max(y, 0), height_px - 1)
    return monitor.left + int(px / scale), monitor.top + int(py / scale)


#: Decides whether one event may land: ``allow(event, point)``, ``point`` the desktop
#: position a pointer event targets (None for keys and text).
LandingCheck = Callable[[InputEvent, "tuple[int, int] | None"], bool]


class X11AgentWindows:
    """Which windows remote input must not reach, asked of the X server (python-xlib).

    ``ids`` are the agent's own windows (Tk's windows, the terminal of the console).
    Their ancestors up to the root count too (Tk's wrapper, a window manager's frame
    with its title bar), and so does anything inside any of them.
    """

    def __init__(self) -> None:
        from Xlib import display as xdisplay

        self._display = xdisplay.Display()
        self._root = self._display.screen().root
        self._expanded: tuple[frozenset[int], frozenset[int]] = (frozenset(), frozenset())

    def _with_ancestors(self, ids: Collection[int]) -> frozenset[int]:
        key = frozenset(ids)
        if self._expanded[0] != key:
            found = set(key)
            for window_id in key:
                window = self._display.create_resource_object("window", window_id)
                try:
                    while True:
                        parent = window.query_tree().parent
                        if not parent or parent.id == self._root.id:
                            break
                        found.add(parent.id)
                        window = parent
                except Exception:  # the window is gone: nothing of it to protect
                    continue
            self._expanded = (key, frozenset(found))
        return self._expanded[1]

    @classmethod
    def open(cls) -> X11AgentWindows | None:
        """One on X11; None elsewhere (Windows, macOS) or when the display cannot be asked."""
        if sys.platform.startswith(("win", "darwin")) or not os.environ.get("DISPLAY"):
            return None
        try:
            return cls()
        except Exception:  # no python-xlib, or the display refused us
            return None

    def over(self, point: tuple[int, int], ids: Collection[int]) -> bool:
        """Whether the window drawn at ``point`` (root coordinates) is one of ``ids``."""
        if not ids:
            return False
        ids = self._with_ancestors(ids)
        window = self._root
        x, y = point
        while True:
            reply = window.translate_coords(self._root, x, y)
            child = reply.child
            if not child:
                return False
            if child.id in ids:
                return True
            window = child

    def focused(self, ids: Collection[int]) -> bool:
        """Whether the keyboard focus is in one of ``ids`` (or a window inside one)."""
        if not ids:
            return False
        ids = self._with_ancestors(ids)
        focus = self._display.get_input_focus().focus
        while hasattr(focus, "id") and focus.id != self._root.id:
            if focus.id in ids:
                return True
            focus = focus.query_tree().parent
        return False

    def close(self) -> None:
        self._display.close()


class InputInjector:
    """Injects checked input events with pynput (XTest on X11, SendInput on Windows)."""

    def __init__(self) -> None:
        from pynput import keyboard, mouse

        self._mouse = mouse.Controller()
        self._keyboard = keyboard.Controller()
        self._buttons = {
            Button.LEFT: mouse.Button.left,
            Button.RIGHT: mouse.Button.right,
            Button.MIDDLE: mouse.Button.middle,
        }
        self._key_type = keyboard.Key
        self._held: set[object] = set()

    def inject(
        self,
        events: list[InputEvent],
        monitor: Monitor,
        check: Callable[[], None],
        scale: float = 1.0,
        allow: LandingCheck | None = None,
    ) -> int:
        """Inject events in order; ``check()`` runs before each and raises to stop.

        ``allow(event, point)``, when given, runs next: an event it refuses is dropped.
        Returns how many were injected. Keys and buttons still held when stopped
        are released, so the customer is never left with a stuck Ctrl.
        """
        done = 0
        try:
            for event in events:
                check()
                if allow is not None and not allow(event, self._target(event, monitor, scale)):
                    continue
                self._one(event, monitor, scale)
                done += 1
        finally:
            if self._held:
                self.release_all()
        return done

    def release_all(self) -> None:
        for held in list(self._held):
            try:
                if held in self._buttons.values():
                    self._mouse.release(held)
                else:
                    self._keyboard.release(held)
            except Exception:  # releasing is best effort; the key may be gone already
                pass
        self._held.clear()

    # Private methods -------------------------------------------------------------------

    def _key(self, name: str) -> object:
        if len(name) == 1:
            return name
        return getattr(self._key_type, name)

    @staticmethod
    def _target(event: InputEvent, monitor: Monitor, scale: float) -> tuple[int, int] | None:
        """Where a pointer event lands on the desktop; None for keyboard events."""
        if isinstance(event, (Move, ButtonEvent, Click, Wheel)):
            return desktop_point(monitor, event.x, event.y, scale)
        return None

    def _one(self, event: InputEvent, monitor: Monitor, scale: float) -> None:
        if isinstance(event, Move):
            self._mouse.position = desktop_point(monitor, event.x, event.y, scale)
        elif isinstance(event, ButtonEvent):
            self._mouse.position = desktop_point(monitor, event.x, event.y, scale)
            button = self._buttons[event.button]
            if event.down:
                self._mouse.press(button)
                self._held.add(button)
            else:
                self._mouse.release(button)
                self._held.discard(button)
        elif isinstance(event, Click):
            self._mouse.position = desktop_point(monitor, event.x, event.y, scale)
            self._mouse.click(self._buttons[event.button], event.count)
        elif isinstance(event, Wheel):
            self._mouse.position = desktop_point(monitor, event.x, event.y, scale)
            # pynput: positive dy scrolls up; the wire says positive dy is down.
            self._mouse.scroll(event.dx, -event.dy)
        elif isinstance(event, Key):
            key = self._key(event.name)
            if event.down:
                self._keyboard.press(key)
                self._held.add(key)
            else:
                self._keyboard.release(key)
                self._held.discard(key)
        elif isinstance(event, Combo):
            keys = [self._key(k) for k in event.keys]
            pressed = []
            try:
                for key in keys:
                    self._keyboard.press(key)
                    pressed.append(key)
            finally:
                for key in reversed(pressed):
                    self._keyboard.release(key)
        elif isinstance(event, Text):
            # pynput types by character (keysyms), not by key position, so text comes
            # out right whatever the customer's keyboard layout.
            self._keyboard.type(event.text)


def input_scale() -> float:
    """Captured pixels per input unit on this platform (see :func:`desktop_point`)."""
    if sys.platform == "darwin":
        try:
            import mss

            with mss.MSS() as sct:
                m = sct.monitors[1]
                shot = sct.grab({"left": m["left"], "top": m["top"], "width": 1, "height": 1})
                return float(shot.width) or 1.0
        except Exception:
            return 1.0
    return 1.0
