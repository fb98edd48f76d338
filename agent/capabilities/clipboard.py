"""The Clipboard capability: text to and from the customer's clipboard, on request only.

Deny by default, like every capability: nothing is read or written until the customer
allows Clipboard, and then only when the technician asks (``read`` or ``write``): the
agent never watches the clipboard or sends it on its own. Each read and write is shown
to the customer and written to their log (how many characters, never the text).

The clipboard itself is the desktop's: ``xclip`` or ``xsel`` on X11 (the Debian
packages; the customer's distribution usually has one), ``wl-copy``/``wl-paste`` on
Wayland, ``pbcopy``/``pbpaste`` on macOS, PowerShell's Get-/Set-Clipboard on Windows.
:func:`unavailable_reason` says before the customer is asked when none is there.
Text only, at most :data:`MAX_CHARACTERS` characters each way.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

from agent.capabilities.base import Capability, CapabilityCall
from agent.i18n import english, t

#: The most text one read or write moves (a clipboard holds text, not files).
MAX_CHARACTERS = 100_000
#: Seconds a clipboard tool may take.
TOOL_TIMEOUT = 10.0


@dataclass(frozen=True)
class ClipboardTool:
    """The commands that read and write this desktop's clipboard."""

    read: tuple[str, ...]
    write: tuple[str, ...]


def find_tool(
    environ: dict[str, str] | None = None, platform: str | None = None
) -> ClipboardTool | None:
    """The clipboard commands this desktop has, or None."""
    env = os.environ if environ is None else environ
    system = sys.platform if platform is None else platform
    if system == "darwin":
        return ClipboardTool(("pbpaste",), ("pbcopy",))
    if system == "win32":
        shell = ("powershell", "-NoProfile", "-NonInteractive", "-Command")
        return ClipboardTool((*shell, "Get-Clipboard -Raw"), (*shell, "$input | Set-Clipboard"))
    if env.get("WAYLAND_DISPLAY") and shutil.which("wl-paste") and shutil.which("wl-copy"):
        return ClipboardTool(("wl-paste", "--no-newline"), ("wl-copy",))
    if env.get("DISPLAY"):
        if shutil.which("xclip"):
            return ClipboardTool(
                ("xclip", "-selection", "clipboard", "-o"),
                ("xclip", "-selection", "clipboard", "-i"),
            )
        if shutil.which("xsel"):
            return ClipboardTool(
                ("xsel", "--clipboard", "--output"), ("xsel", "--clipboard", "--input")
            )
    return None


def unavailable_reason() -> str | None:
    """Why the clipboard cannot be used here (said before anyone is asked), or None."""
    if find_tool() is not None:
        return None
    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        return english("clipboard.no_desktop")
    return english("clipboard.no_tool")


def _read(tool: ClipboardTool) -> str:
    done = subprocess.run(
        tool.read, capture_output=True, timeout=TOOL_TIMEOUT, check=False, stdin=subprocess.DEVNULL
    )
    if done.returncode != 0:
        # xclip says "target STRING not available" for an empty clipboard: that is "".
        return ""
    return done.stdout.decode("utf-8", "replace")


def _write(tool: ClipboardTool, text: str) -> None:
    # xclip and xsel stay behind to serve the selection: their output goes nowhere, so
    # waiting for the command does not wait for that server.
    subprocess.run(
        tool.write,
        input=text.encode("utf-8"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=TOOL_TIMEOUT,
        check=True,
    )


async def _clipboard_handler(call: CapabilityCall) -> dict[str, Any]:
    tool = find_tool()
    if tool is None:
        raise RuntimeError(unavailable_reason() or english("clipboard.no_tool"))
    call.authorization.check()
    if call.action == "read":
        text = await asyncio.to_thread(_read, tool)
        if len(text) > MAX_CHARACTERS:
            raise ValueError(english("clipboard.too_long", limit=MAX_CHARACTERS))
        call.authorization.check()
        call.log.write(english("clipboard.was_read", count=len(text)))
        if call.notify is not None:
            call.notify(t("clipboard.was_read", count=len(text)))
        return {"text": text}
    given = call.args.get("text")
    if not isinstance(given, str):
        raise ValueError("write needs the text to put on the clipboard")
    text = given
    if len(text) > MAX_CHARACTERS:
        raise ValueError(english("clipboard.too_long", limit=MAX_CHARACTERS))
    await asyncio.to_thread(_write, tool, text)
    call.log.write(english("clipboard.was_written", count=len(text)))
    if call.notify is not None:
        call.notify(t("clipboard.was_written", count=len(text)))
    return {"characters": len(text)}


def clipboard_capability() -> Capability:
    return Capability(
        name="clipboard",
        title=english("cap.clipboard.title"),
        description=english("cap.clipboard.description"),
        handler=_clipboard_handler,
        actions=("read", "write"),
        unavailable=unavailable_reason,
    )
