"""Screen capture on the customer's machine: a thin adapter over ``mss``.

It only grabs pixels, lists monitors and reads the pointer's shape; all decisions
live in :mod:`agent.screen_encoder` and :mod:`agent.screen_pacing`.

Where the desktop cannot be captured (no display, a Wayland session), it says so
in a plain sentence instead of producing black frames; :func:`unavailable_reason`
lets the session say it before the customer is even asked.
"""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from protocol.screen import Monitor

from .errors import CapabilityFailed


class CaptureUnavailable(CapabilityFailed):
    """This desktop cannot be captured; the message says why, for both people."""


NO_DISPLAY = (
    "Puente cannot see a screen on this computer: no graphical desktop is running "
    "(no DISPLAY). Screen view and remote control are not possible in this session; "
    "diagnostics and the other tools still work."
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
        self._monitors = monitors
        return changed

    def grab(self, index: int) -> tuple[np.ndarray, bytearray]:
        """The monitor's pixels as a BGRA (H, W, 4) array, and the raw buffer behind it."""
        m = self._monitors[index]
        region = {"left": m.left, "top": m.top, "width": m.width, "height": m.height}
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
