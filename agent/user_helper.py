"""``puente-agent user-helper``: the signed-in person's side of an enrolled device whose
agent runs as a system service.

The service (root, no display) cannot show anything on the screen of the person
signed in. This small program runs in that person's desktop (started at sign-in by
the XDG autostart entry ``enrol`` installs, :func:`agent.service_install.install`),
connects to the service's Unix socket (:mod:`agent.helper_hub`, which checks with the
kernel who connected and accepts only the person signed in at the screen) and shows,
in that person's language:

* the question "may this technician come in?", with the seconds left and the same
  Allow and Deny buttons as the agent's own window (armed only after the question has
  been on screen and focused for a moment: :meth:`agent.tk_ui.CustomerWindow._arm`);
* the purple banner for the whole unattended session, with "End session".

It is invisible the rest of the time. What the service sends is data (names, ticket,
capabilities), worded here and made inert (:func:`protocol.safe_text.safe_text`)
before it is shown; nothing from the technician or the relay becomes a button. The
answer goes back over the same socket, which only local processes reach.

Exit status: 0 stopped (Ctrl+C, sign-out), 1 refused by the service or no desktop
(one sentence on stderr says why), 2 usage.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import os
import queue
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from agent import helper_wire as wire
from agent.app import fail
from agent.consent import TrustedPath, UnattendedQuestion
from agent.helper_hub import RUN_FOLDER
from agent.i18n import CATALOG, LANGUAGES, set_language, t
from agent.tk_ui import CustomerWindow, display_problem
from agent.ui import unattended_lines
from protocol.safe_text import safe_text

if TYPE_CHECKING:
    import tkinter as tk

#: How long a finished request stays on screen before its window goes, in ms.
LINGER_MS = 6000
PUMP_MS = 30
BACKOFF_CAP = 30.0

DESCRIPTION = """\
Show your help desk's unattended-access requests, and the banner of an unattended
session, in your own desktop, when this computer's Puente agent runs as a system
service (it has no screen of its own). It starts by itself when you sign in (an XDG
autostart entry that 'puente-agent enrol' installs), stays invisible, and asks you
only when a technician asks to connect; this computer's policy says what happens when
nobody answers. Only the person signed in at the screen is accepted by the service.

exit status: 0 stopped, 1 refused by the service or no desktop (the sentence says why), 2 usage
"""

EXAMPLES = """\
examples:
  puente-agent user-helper                      (the socket of this computer's service)
  puente-agent user-helper --socket /run/puente/puente-device-0123456789ab.sock --lang es
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="puente-agent user-helper",
        description=DESCRIPTION,
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--socket",
        type=Path,
        help=f"the service's socket (default: the one in {RUN_FOLDER})",
    )
    parser.add_argument(
        "--display",
        default=os.environ.get("DISPLAY", ""),
        help="the X display you are signed in at (default: $DISPLAY)",
    )
    parser.add_argument("--lang", choices=LANGUAGES, help="language of what is shown")
    return parser


def user_helper_main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    if args.lang:
        set_language(args.lang)
    path = args.socket or _only_socket()
    if path is None:
        return fail(t("helper.no_socket", folder=RUN_FOLDER))
    problem = display_problem()
    if problem is not None:
        return fail(t("helper.no_display", detail=problem))
    import tkinter as tk

    root = tk.Tk(className="puente-helper")
    root.withdraw()  # invisible until a technician asks
    app = HelperApp(root, path, args.display)
    app.start()
    try:
        root.mainloop()
    except KeyboardInterrupt:
        return 0
    if app.refusal is not None:
        return fail(app.refusal)
    return 0


def _only_socket() -> Path | None:
    found = sorted(RUN_FOLDER.glob("*.sock")) if RUN_FOLDER.is_dir() else []
    return found[0] if len(found) == 1 else None


class _WindowsToService(TrustedPath):
    """The helper's own windows, told to the session (agent.consent.TrustedPath): remote
    input never lands on them, wherever the session injects it."""

    def __init__(self, send: Callable[..., None]) -> None:
        super().__init__()
        self._send = send

    def add_windows(self, ids: Iterable[int]) -> None:
        ids = [i for i in ids if 0 < i < 2**32]
        super().add_windows(ids)
        self._send("windows", ids=ids[:32])


class HelperApp:
    """The helper: a hidden Tk root on this thread, the service's socket on another.

    The threading contract is :mod:`agent.tk_ui`'s: the network thread never touches a
    widget (it posts closures to :meth:`post`), and the Tk thread hands lines to the
    network thread with ``call_soon_threadsafe``.
    """

    def __init__(self, root: tk.Tk, path: Path, display: str) -> None:
        self.root = root
        self.path = path
        self.display = display
        #: The service's sentence (worded here) when it refused this helper.
        self.refusal: str | None = None
        self.window: HelperWindow | None = None
        self._inbox: queue.Queue[Callable[[], None]] = queue.Queue()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._writer: asyncio.StreamWriter | None = None
        #: The open question: (id, whether silence lets the technician in).
        self._question: tuple[int, bool] | None = None

    def start(self) -> None:
        self.root.after(PUMP_MS, self._pump)
        threading.Thread(target=self._network_thread, name="puente-helper", daemon=True).start()

    def post(self, action: Callable[[], None]) -> None:
        """Run ``action`` on the Tk thread soon (from any thread)."""
        self._inbox.put(action)

    def send(self, kind: str, **fields: Any) -> None:
        """Send a message to the service (from the Tk thread)."""
        loop, writer = self._loop, self._writer
        if loop is None or writer is None:
            return
        line = wire.encode(kind, **fields)
        with contextlib.suppress(RuntimeError):  # the network loop already ended
            loop.call_soon_threadsafe(_write, writer, line)

    def _pump(self) -> None:
        while True:
            try:
                action = self._inbox.get_nowait()
            except queue.Empty:
                break
            action()
        self.root.after(PUMP_MS, self._pump)

    # The network thread --------------------------------------------------------------

    def _network_thread(self) -> None:
        asyncio.run(self._network())

    async def _network(self) -> None:
        self._loop = asyncio.get_running_loop()
        wait = 1.0
        told_waiting = False
        while True:
            try:
                reader, writer = await asyncio.open_unix_connection(
                    str(self.path), limit=wire.MAX_LINE
                )
            except OSError:
                if not told_waiting:
                    _say(t("helper.waiting_service", path=self.path))
                    told_waiting = True
                await asyncio.sleep(wait)
                wait = min(BACKOFF_CAP, wait * 2)
                continue
            told_waiting = False
            self._writer = writer
            try:
                writer.write(wire.encode("hello", version=wire.VERSION, display=self.display))
                if await self._serve(reader):
                    return  # refused: the service's word is final
                wait = 1.0
            except (wire.MalformedHelperMessage, ValueError, ConnectionError) as exc:
                _say(f"{t('helper.service_gone')} ({exc})")
            finally:
                self._writer = None
                writer.close()
            self.post(self._service_gone)
            await asyncio.sleep(wait)

    async def _serve(self, reader: asyncio.StreamReader) -> bool:
        """Read the service's messages until it closes; True if it refused this helper."""
        while line := await reader.readline():
            message = wire.parse(line)
            kind = message["type"]
            if kind == "refused":
                self.post(functools.partial(self._refused, message))
                return True
            if kind == "welcome":
                _say(t("helper.connected"))
            elif kind in ("question", "closed", "banner", "ended"):
                self.post(functools.partial(self._handle, message))
        return False

    # The Tk thread -------------------------------------------------------------------

    def _handle(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "question":
            self._ask(message)
        elif kind == "closed":
            self._closed(message["id"], message["why"])
        elif kind == "banner":
            window = self._window()
            window.show_request(t("helper.session_on"))
            window.show_unattended(
                t(
                    "unattended.banner",
                    name=safe_text(message["technician"], 100),
                    organisation=safe_text(message["organisation"], 100),
                    ticket=safe_text(message["ticket"], 200),
                )
            )
        elif kind == "ended" and self.window is not None:
            self.window.show_ended(t("helper.session_over"))
            self._close_later(self.window)

    def _ask(self, message: dict[str, Any]) -> None:
        question = UnattendedQuestion(
            message["technician"],
            message["organisation"],
            message["ticket"],
            tuple(message["capabilities"]),
            message["seconds"],
            message["allow_on_silence"],
        )
        if self.window is not None and not self.window.session_on:
            self.window.destroy()
            self.window = None
        window = self._window()
        number = message["id"]
        self._question = (number, question.allow_on_silence)
        window.show_request(t("helper.asked"))
        window.ask_unattended(
            unattended_lines(question),
            question.seconds,
            lambda allowed: self._answered(window, number, allowed),
        )

    def _answered(self, window: HelperWindow, number: int, allowed: bool | None) -> None:
        if allowed is None or self._question is None or self._question[0] != number:
            return
        self._question = None
        self.send("answer", id=number, allow=allowed)
        window.show_request(t("helper.you_allowed" if allowed else "helper.you_denied"))
        if not allowed:
            self._close_later(window)

    def _closed(self, number: int, why: str) -> None:
        if self._question is None or self._question[0] != number or self.window is None:
            return
        _, allow_on_silence = self._question
        self._question = None
        self.window.close_dialog()
        if why == "time_up":
            text = t("helper.time_up_allowed" if allow_on_silence else "helper.time_up_denied")
        else:
            text = t("helper.closed_answered" if why == "answered" else "helper.closed_cancelled")
        self.window.show_request(text)
        self._close_later(self.window)

    def _service_gone(self) -> None:
        self._question = None
        if self.window is not None:
            self.window.show_ended(t("helper.service_gone"))
            self._close_later(self.window)

    def _refused(self, message: dict[str, Any]) -> None:
        detail = safe_text(message["message"], 300)
        self.refusal = t(
            "helper.refused_not_signed_in"
            if message["reason"] == "not_signed_in"
            else "helper.refused_other",
            detail=detail,
        )
        self.root.destroy()

    def _window(self) -> HelperWindow:
        if self.window is None or not self.window.exists:
            self.window = HelperWindow(self.root, self)
        return self.window

    def _close_later(self, window: HelperWindow) -> None:
        def close() -> None:
            if window is self.window and not window.busy:
                window.destroy()
                self.window = None

        self.root.after(LINGER_MS, close)


def _say(line: str) -> None:
    with contextlib.suppress(OSError, ValueError):
        print(line, flush=True)


def _write(writer: asyncio.StreamWriter, line: bytes) -> None:
    if not writer.transport.is_closing():
        writer.write(line)


class HelperWindow(CustomerWindow):
    """The agent's customer window (agent.tk_ui.CustomerWindow) as a window of the
    helper: no code to type, only the request, its question and the session's banner."""

    def __init__(self, root: tk.Tk, app: HelperApp) -> None:
        import tkinter

        titles = {
            key.split(".")[1]: t(key)
            for key in CATALOG
            if key.startswith("cap.") and key.endswith(".title")
        }
        top = tkinter.Toplevel(root)
        super().__init__(cast("tk.Tk", top), lambda _code: None, None, titles)
        top.minsize(1, 1)  # only the request's sentence: as small as it can be
        self._app = app
        self.attach_trusted_path(_WindowsToService(app.send))

    @property
    def exists(self) -> bool:
        return bool(self.root.winfo_exists())

    @property
    def session_on(self) -> bool:
        return self._unattended_banner is not None

    @property
    def busy(self) -> bool:
        """A question or the session's banner is up: the window must stay."""
        return self._dialog is not None or self._unattended_banner is not None

    def destroy(self) -> None:
        if self.exists:
            self.root.destroy()
        if self._snapshot_path:  # tests read what is shown: nothing now
            with open(self._snapshot_path, "w", encoding="utf-8") as out:
                out.write("[]")

    def _pump(self) -> None:
        if self.exists:
            super()._pump()

    def _command(self, text: str) -> None:
        if text == "end":  # "End session" on the banner
            self._app.send("end")

    def close(self) -> None:
        """The close box: the question waits for a button, the banner stays up."""
        if self.session_on:
            self.root.withdraw()
        elif self._dialog is None:
            self.destroy()


__all__ = ["HelperApp", "HelperWindow", "user_helper_main"]
