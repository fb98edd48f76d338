"""Screen capture on the customer's machine: a thin adapter over ``mss``.

It only grabs pixels, lists monitors and reads the pointer's shape; all decisions
live in :mod:`agent.capabilities.screen.encoder` and :mod:`agent.capabilities.screen.pacing`.

Where the desktop cannot be captured (no display, a Wayland session), it says so
in a plain sentence instead of producing black frames; :func:`unavailable_reason`
lets the session say it before the customer is even asked.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from agent.errors import CaptureUnavailable
from protocol.screen import Monitor

NO_DISPLAY = (
    "Puente cannot see a screen on this computer: no graphical desktop is running "
    "(no DISPLAY). Screen view and remote control are not possible in this session; "
    "diagnostics and the other tools still work."
)
FROM_SERVICE = (
    "The screen is not available from the service on this computer: Puente runs here as "
    "a system service, which cannot reach the desktop of the person signed in. Screen "
    "view and remote control are not possible in this unattended session; diagnostics "
    "and the other tools still work."
)
WAYLAND = (
    "This computer's desktop uses Wayland, which does not let programs like Puente see "
    "or control the screen. To share the screen, log out and choose an Xorg session "
    "(for example 'GNOME on Xorg') at the login screen, then start a new session."
)


def unavailable_reason(
    environ: Mapping[str, str] | None = None, platform: str | None = None
) -> str | None:
    """Why this desktop cannot be captured, or None if it should work."""
    env = os.environ if environ is None else environ
    system = sys.platform if platform is None else platform
    if not system.startswith("linux") and "bsd" not in system:
        return None  # Windows and macOS always have a capturable desktop session
    if env.get("XDG_SESSION_TYPE", "").lower() == "wayland" or (
        env.get("WAYLAND_DISPLAY") and not env.get("DISPLAY")
    ):
        # Under Wayland an X server (Xwayland) may exist, but it only shows X
        # programs: captures would be black where native windows are.
        return WAYLAND
    if not env.get("DISPLAY"):
        return NO_DISPLAY
    return None


def unavailable_from_service(
    environ: Mapping[str, str] | None = None, platform: str | None = None
) -> str | None:
    """Why an enrolled device's service (agent.unattended, run with the signed-in users'
    helpers) cannot show the screen: :data:`FROM_SERVICE` where this process has no
    capturable desktop, None where it has one."""
    return FROM_SERVICE if unavailable_reason(environ, platform) else None


@dataclass(frozen=True)
class CursorImage:
    """The pointer: position (desktop coordinates), hot spot and BGRA pixels."""

    x: int
    y: int
    hot_x: int
    hot_y: int
    width: int
    height: int
    bgra: bytes

    def png(self) -> bytes:
        from PIL import Image

        image = Image.frombuffer("RGBA", (self.width, self.height), self.bgra, "raw", "BGRA")
        out = io.BytesIO()
        image.save(out, "PNG")
        return out.getvalue()


class ScreenCapture:
    """Grabs monitors with ``mss``. Not thread-safe: use from one thread at a time."""

    def __init__(self) -> None:
        reason = unavailable_reason()
        if reason:
            raise CaptureUnavailable(reason)
        import mss
        from mss.exception import ScreenShotError

        self._error = ScreenShotError
        try:
            self._mss = mss.MSS()
            self._monitors = self._read_monitors()
        except ScreenShotError as exc:
            raise CaptureUnavailable(
                f"Puente cannot read this computer's screen ({exc}). Screen view and remote "
                "control are not possible in this session."
            ) from exc

    def close(self) -> None:
        self._mss.close()

    @property
    def monitors(self) -> list[Monitor]:
        """Index 0 is every monitor together; 1.. are the monitors themselves."""
        return self._monitors

    def refresh_monitors(self) -> bool:
        """Read the monitor layout again; return True if it changed (resolution change)."""
        import mss

        with mss.MSS() as probe:  # a fresh connection: mss caches the layout it saw
            monitors = _to_monitors(probe.monitors)
        changed = monitors != self._monitors
        if changed:
            # The grabbing connection sized its shared memory for the old screen.
            self._mss.close()
            self._mss = mss.MSS()
        self._monitors = monitors
        return changed

    def grab(
        self, index: int, area: tuple[int, int, int, int] | None = None
    ) -> tuple[np.ndarray, bytearray]:
        """The monitor's pixels as a BGRA (H, W, 4) array, and the raw buffer behind it.

        ``area`` (x, y, width, height in the monitor's pixels) grabs only that part.
        """
        m = self._monitors[index]
        if area is None:
            region = {"left": m.left, "top": m.top, "width": m.width, "height": m.height}
        else:
            x, y, width, height = area
            region = {"left": m.left + x, "top": m.top + y, "width": width, "height": height}
        try:
            shot = self._mss.grab(region)
        except self._error as exc:
            raise CaptureUnavailable(
                f"Reading the screen failed ({exc}); the desktop may have been locked or closed."
            ) from exc
        raw = shot.raw
        image = np.frombuffer(raw, dtype=np.uint8).reshape(shot.height, shot.width, 4)
        return image, raw

    def cursor(self) -> CursorImage | None:
        """The pointer's image and position, where the platform can tell (X11: XFixes)."""
        impl = getattr(self._mss, "_impl", None)
        read = getattr(impl, "cursor", None)
        if read is None:
            return None
        try:
            shot = read()
        except Exception:  # no XFixes, or the platform cannot tell: pixels only
            return None
        if shot is None:
            return None
        left, top = int(shot.left), int(shot.top)
        width, height = int(shot.width), int(shot.height)
        if width <= 0 or height <= 0 or width > 256 or height > 256:
            return None
        return CursorImage(left, top, 0, 0, width, height, bytes(shot.raw))

    # Private methods -------------------------------------------------------------------

    def _read_monitors(self) -> list[Monitor]:
        return _to_monitors(self._mss.monitors)


class DamageWatcher:
    """Where the X server drew since the last look: the X11 DAMAGE extension.

    With it the screen stream captures when and where something was drawn instead of
    comparing the whole screen many times a second. :meth:`open` returns None where
    there is no such thing (Windows, macOS, an X server without DAMAGE); the caller
    then polls. Not thread-safe: one thread (the event loop's) uses it.

    Rule: the server reports every drawing operation with its rectangle (raw
    rectangles, never merged away), and a report is sent after the drawing. So a
    capture of :meth:`take`'s box, made after ``take`` returns, shows everything
    reported so far; anything drawn later is reported again. Nothing is missed.
    """

    def __init__(self, connection: Any, damage: Any, notify_code: int) -> None:
        self._connection = connection
        self._damage = damage
        self._notify_code = notify_code
        self._box: tuple[int, int, int, int] | None = None  # x0, y0, x1, y1 (desktop)

    @classmethod
    def open(cls) -> DamageWatcher | None:
        """A watcher on this desktop's X server, or None where there is none."""
        if (
            unavailable_reason()
            or not sys.platform.startswith("linux")
            and "bsd" not in sys.platform
        ):
            return None
        try:
            from Xlib import display as xdisplay
            from Xlib.ext import damage as xdamage

            connection = xdisplay.Display()
        except Exception:  # no python-xlib or no connection: the caller polls
            return None
        try:
            if not connection.has_extension("DAMAGE"):
                connection.close()
                return None
            connection.damage_query_version()
            handle = connection.screen().root.damage_create(xdamage.DamageReportRawRectangles)
            # python-xlib gives each connection its own event classes: match the code.
            code = connection.query_extension("DAMAGE").first_event + xdamage.DamageNotifyCode
            connection.sync()
        except Exception:  # the extension refused: poll instead
            connection.close()
            return None
        return cls(connection, handle, code)

    def fileno(self) -> int:
        """The connection's socket: readable when reports arrived (for ``add_reader``)."""
        fileno: int = self._connection.fileno()
        return fileno

    @property
    def pending(self) -> bool:
        """Whether something was reported since the last :meth:`take`."""
        return self._box is not None

    def read(self) -> bool:
        """Read the reports that arrived; True if there was any drawing among them."""
        drawn = False
        while self._connection.pending_events():
            event = self._connection.next_event()
            if event.type & 0x7F != self._notify_code:  # (the top bit: sent by a client)
                continue
            area = event.area
            x0, y0 = int(area.x), int(area.y)
            x1, y1 = x0 + int(area.width), y0 + int(area.height)
            if self._box is not None:
                bx0, by0, bx1, by1 = self._box
                x0, y0, x1, y1 = min(x0, bx0), min(y0, by0), max(x1, bx1), max(y1, by1)
            self._box = (x0, y0, x1, y1)
            drawn = True
        return drawn

    def take(self) -> tuple[int, int, int, int] | None:
        """The box (x, y, width, height; desktop pixels) of everything drawn since the
        last call, or None if nothing was; starts afresh."""
        self.read()
        box, self._box = self._box, None
        # The server keeps a region of what was drawn; emptying it keeps it small (it
        # does not change what is reported: every drawing is).
        self._connection.damage_subtract(self._damage)
        self._connection.flush()
        # Sending may have read reports too, which no longer make the socket readable:
        # keep them for next time.
        self.read()
        if box is None:
            return None
        x0, y0, x1, y1 = box
        return x0, y0, x1 - x0, y1 - y0

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._connection.close()


def _to_monitors(raw: list[dict[str, object]]) -> list[Monitor]:
    monitors = []
    for m in raw:
        monitors.append(
            Monitor(
                int(m["left"]),  # type: ignore[call-overload]
                int(m["top"]),  # type: ignore[call-overload]
                int(m["width"]),  # type: ignore[call-overload]
                int(m["height"]),  # type: ignore[call-overload]
                bool(m.get("is_primary", False)),
            )
        )
    return monitors
