"""The customer's window: who is connecting, what they ask, what is happening, and Stop.

:class:`TkUI` implements :class:`agent.ui.CustomerUI` for the session, which runs in
an asyncio loop on a worker thread; :class:`CustomerWindow` is the Tk window, which
must live on the main thread (Tk is not thread-safe, and macOS insists on it).

Threading contract (the one rule that keeps this correct):

* The asyncio thread never touches a widget. It posts closures to ``to_tk`` (a
  thread-safe queue) that the Tk thread runs every ``PUMP_MS`` from ``after()``.
* The Tk thread never touches asyncio objects directly. It hands results back with
  ``loop.call_soon_threadsafe`` (answers to questions, the customer's commands).

What the customer sees: the code to confirm (or type); the technician marked
verified (green, with the organisation) or unverified (orange warning); the ticket
and the check code (SAS); each request as a plain-language question with Allow and
Deny; what is allowed now, each with its own Stop; a red banner that stays on top of
every window and a red border around this one while the screen is shared or
controlled; a Stop button that ends everything at once; chat; a review of the
diagnostics before they leave, where any item can be unticked; and the
satisfaction question at the end. Every text comes from :mod:`agent.i18n`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import queue
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from agent.i18n import CATALOG, current, section_labels, t
from agent.review import ReviewItem, outline
from agent.settings import BakedSettings, code_with_nameplate
from agent.ui import CommandHandler, SessionInfo, chat_line, unattended_lines
from protocol.code import InvalidCodeError, SessionCode
from protocol.messages import rating_comment
from protocol.safe_text import safe_text

if TYPE_CHECKING:
    import tkinter as tk

    from agent.consent import ConsentSubject, TrustedPath, UnattendedQuestion

PUMP_MS = 30

#: If set, the window writes what it shows (every visible widget's text and colour)
#: to this JSON file whenever it changes: tests read the real widget tree with it,
#: and a help desk can ask a customer for it when a window looks wrong.
SNAPSHOT_ENV = "PUENTE_TK_SNAPSHOT"

#: Colours are part of the contract: people (and the window test) find buttons by them.
ALLOW_COLOUR = "#2e7d32"
DENY_COLOUR = "#616161"
STOP_COLOUR = "#b71c1c"
CONNECT_COLOUR = "#1565c0"
BANNER_COLOUR = "#e53935"
#: The banner of an unattended session (an enrolled device), for its whole length.
UNATTENDED_COLOUR = "#4a148c"
SEND_COLOUR = "#00838f"
VERIFIED_COLOUR = "#1b5e20"
UNVERIFIED_COLOUR = "#e65100"
BORDER_SHARING = BANNER_COLOUR
BORDER_IDLE = "#eceff1"

#: A question's buttons take a press only after it has been on screen and focused this
#: long (browsers do the same for permission prompts): a click aimed at where a button
#: will appear does nothing. Until then the buttons are disabled and drawn in this colour.
ARM_DELAY_S = 1.0
ARMING_COLOUR = "#b0bec5"

#: Capabilities during which the screen is seen (the indicator shows).
SCREEN_CAPABILITIES = ("screen", "control")


def display_problem() -> str | None:
    """Why no window can be opened here (None: a window can be opened)."""
    try:
        import tkinter
    except ImportError as exc:  # Python built without Tk
        return f"tkinter: {exc}"
    try:
        probe = tkinter.Tk()
    except tkinter.TclError as exc:
        return str(exc)
    probe.destroy()
    return None


class TkUI:
    """The session's side of the window; every method is called in the asyncio thread."""

    def __init__(self, window: CustomerWindow, loop: asyncio.AbstractEventLoop) -> None:
        self._window = window
        self._loop = loop
        self._commands: asyncio.Queue[str] = asyncio.Queue()
        self.info: SessionInfo | None = None

    # CustomerUI -------------------------------------------------------------------------

    def session_started(self, info: SessionInfo) -> None:
        self.info = info
        self._window.post(lambda: self._window.show_session(info))

    async def ask_consent(self, capability: ConsentSubject, detail: str) -> bool:
        title = safe_text(current().capability_title(capability), 200)
        description = current().capability_description(capability)
        documents = tuple(getattr(capability, "documents", ()) or ())
        answer: asyncio.Future[bool] = self._loop.create_future()
        self._window.post(
            lambda: self._window.ask_consent(
                title, description, detail, self._resolver(answer, False), documents
            )
        )
        try:
            return await answer
        finally:
            self._window.post(self._window.close_dialog)

    async def ask_choice(
        self, capability: ConsentSubject, question: str, default: str
    ) -> str | None:
        """The follow-up question of a capability (files: which folder); None is a no."""
        title = current().capability_title(capability)
        shown = current().capability_choice(capability, question)
        answer: asyncio.Future[str | None] = self._loop.create_future()
        self._window.post(
            lambda: self._window.ask_choice(title, shown, default, self._resolver(answer, None))
        )
        try:
            return await answer
        finally:
            self._window.post(self._window.close_dialog)

    async def ask_unattended(self, question: UnattendedQuestion) -> bool | None:
        """The unattended question with its countdown; cancelled when the time is up."""
        lines = unattended_lines(question)
        answer: asyncio.Future[bool | None] = self._loop.create_future()
        self._window.post(
            lambda: self._window.ask_unattended(
                lines, question.seconds, self._resolver(answer, None)
            )
        )
        try:
            return await answer
        finally:
            self._window.post(self._window.close_dialog)

    def show_unattended(self, text: str) -> None:
        self._window.post(lambda: self._window.show_unattended(text))

    def show_active(self, granted: list[str]) -> None:
        titles = {name: self._window.title_of(name) for name in granted}
        self._window.post(lambda: self._window.show_active(granted, titles))

    def notify(self, text: str) -> None:
        self._window.post(lambda: self._window.add_message(text))

    def show_chat(self, text: str) -> None:
        """The technician's chat, one inert framed line in the chat pane."""
        line = chat_line(text)
        self._window.post(lambda: self._window.add_message(line))

    def attach_trusted_path(self, path: TrustedPath) -> None:
        """The window names its own X windows in ``path``: remote input never lands there."""
        self._window.post(lambda: self._window.attach_trusted_path(path))

    def session_ended(self, reason: str) -> None:
        self._window.post(lambda: self._window.show_ended(reason))

    async def ask_rating(self) -> tuple[int, str] | None:
        answer: asyncio.Future[tuple[int, str] | None] = self._loop.create_future()
        self._window.post(lambda: self._window.ask_rating(self._resolver(answer, None)))
        return await answer

    async def review_outgoing(
        self, what: str, result: dict[str, Any]
    ) -> list[tuple[str | int, ...]]:
        """Show the result; return the paths the customer unticked (see agent.review)."""
        items = outline(result, section_labels())
        answer: asyncio.Future[list[tuple[str | int, ...]]] = self._loop.create_future()
        self._window.post(
            lambda: self._window.review(
                what, items, self._resolver(answer, [item.path for item in items])
            )
        )
        try:
            return await answer
        finally:
            self._window.post(self._window.close_dialog)

    async def run(self, on_command: CommandHandler) -> None:
        while True:
            await on_command(await self._commands.get())

    # For the window ---------------------------------------------------------------------

    def command(self, text: str) -> None:
        """The customer did something (Stop, chat): called from the Tk thread."""
        self._loop.call_soon_threadsafe(self._commands.put_nowait, text)

    def _resolver(self, future: asyncio.Future[Any], if_closed: Any) -> Callable[[Any], None]:
        """A callback for the Tk thread that settles ``future`` once, in the loop thread."""

        def settle(value: Any) -> None:
            if not future.done():
                future.set_result(value)

        def resolve(value: Any) -> None:
            with contextlib.suppress(RuntimeError):  # the loop already finished
                self._loop.call_soon_threadsafe(settle, value)

        self._window.on_close_answers.append(lambda: resolve(if_closed))
        return resolve


class CustomerWindow:
    """The Tk window. Every method runs on the Tk (main) thread."""

    def __init__(
        self,
        root: tk.Tk,
        connect: Callable[[SessionCode], None],
        code: SessionCode | None,
        titles: dict[str, str],
        nameplate: str | None = None,
    ) -> None:
        import tkinter as tk
        from tkinter import font

        self.tk = tk
        self.root = root
        self._connect = connect
        self._titles = titles
        self.to_tk: queue.Queue[Callable[[], None]] = queue.Queue()
        self.ui: TkUI | None = None
        self.on_close_answers: list[Callable[[], None]] = []
        self.session_over = threading.Event()
        self._dialog: tk.Toplevel | None = None
        self._banner: tk.Toplevel | None = None
        self._unattended_banner: tk.Toplevel | None = None
        self._technician = ""
        self._running = False
        self._snapshot_path = os.environ.get(SNAPSHOT_ENV)
        self._last_snapshot = ""
        self._trusted_path: TrustedPath | None = None

        root.title(t("app.title"))
        font.nametofont("TkDefaultFont").configure(size=11)
        font.nametofont("TkTextFont").configure(size=11)
        root.minsize(520, 420)
        root.protocol("WM_DELETE_WINDOW", self.close)
        # The border: an outer frame whose colour turns red while the screen is seen.
        self.border = tk.Frame(root, bg=BORDER_IDLE, padx=6, pady=6)
        self.border.pack(fill="both", expand=True)
        self.body = tk.Frame(self.border, padx=14, pady=10)
        self.body.pack(fill="both", expand=True)
        tk.Label(self.body, text=t("app.title"), font=("TkDefaultFont", 15, "bold")).pack(
            anchor="w"
        )
        self._nameplate = nameplate if code is None else None
        self._build_connect(code)
        root.after(PUMP_MS, self._pump)

    # Plumbing ---------------------------------------------------------------------------

    def post(self, action: Callable[[], None]) -> None:
        """Run ``action`` on the Tk thread soon (safe to call from any thread)."""
        self.to_tk.put(action)

    def _pump(self) -> None:
        while True:
            try:
                action = self.to_tk.get_nowait()
            except queue.Empty:
                break
            action()
        if self._snapshot_path:
            self._write_snapshot()
        self.root.after(PUMP_MS, self._pump)

    def snapshot(self) -> list[dict[str, Any]]:
        """Every mapped widget with a text: its window title, class, text and colour."""
        shown: list[dict[str, Any]] = []

        def walk(widget: Any, title: str) -> None:
            if isinstance(widget, (self.tk.Tk, self.tk.Toplevel)):
                title = widget.title()
            if not widget.winfo_ismapped() and not isinstance(widget, self.tk.Tk):
                return
            text = ""
            with contextlib.suppress(self.tk.TclError):
                text = str(widget.cget("text"))
            if isinstance(widget, self.tk.Text):
                text = widget.get("1.0", "end").strip()
            elif isinstance(widget, self.tk.Entry):
                text = widget.get()
            if text:
                entry = {"window": title, "class": widget.winfo_class(), "text": text}
                with contextlib.suppress(self.tk.TclError):
                    entry["bg"] = str(widget.cget("bg"))
                with contextlib.suppress(self.tk.TclError):
                    entry["state"] = str(widget.cget("state"))
                shown.append(entry)
            for child in widget.winfo_children():
                walk(child, title)

        walk(self.root, self.root.title())
        shown.append(
            {"window": "", "class": "Border", "text": "", "bg": str(self.border.cget("bg"))}
        )
        return shown

    def _write_snapshot(self) -> None:
        assert self._snapshot_path is not None
        text = json.dumps(self.snapshot(), ensure_ascii=False, indent=1)
        if text != self._last_snapshot:
            self._last_snapshot = text
            tmp = self._snapshot_path + ".tmp"
            with open(tmp, "w", encoding="utf-8") as out:
                out.write(text)
            os.replace(tmp, self._snapshot_path)

    def attach_trusted_path(self, path: TrustedPath) -> None:
        self._trusted_path = path
        self._own_window(self.root)
        for window in (self._dialog, self._banner):
            if window is not None:
                self._own_window(window)

    def _own_window(self, window: Any) -> None:
        """Name ``window`` (its X window and the wrapper around it) as the agent's own."""
        if self._trusted_path is None:
            return
        window.update_idletasks()
        ids = {window.winfo_id()}
        with contextlib.suppress(self.tk.TclError, ValueError):
            ids.add(int(window.wm_frame(), 16))
        self._trusted_path.add_windows(ids)

    def _arm(self, dialog: Any, buttons: list[tuple[Any, str]]) -> None:
        """Enable ``buttons`` (with their colours) once ``dialog`` has been viewable
        and focused for ARM_DELAY_S; disable them again whenever it loses the focus."""
        for button, _ in buttons:
            button.configure(state="disabled", bg=ARMING_COLOUR, activebackground=ARMING_COLOUR)
        dialog.focus_force()
        since: list[float | None] = [None]

        def look() -> None:
            if self._dialog is not dialog or not dialog.winfo_exists():
                return
            focused = False
            with contextlib.suppress(KeyError, self.tk.TclError):
                focus = dialog.focus_get()
                focused = focus is not None and str(focus).startswith(str(dialog))
            if focused and dialog.winfo_viewable():
                since[0] = since[0] if since[0] is not None else time.monotonic()
            else:
                since[0] = None
            armed = since[0] is not None and time.monotonic() - since[0] >= ARM_DELAY_S
            for button, colour in buttons:
                shown = colour if armed else ARMING_COLOUR
                if button.cget("bg") != shown:
                    button.configure(
                        state="normal" if armed else "disabled",
                        bg=shown,
                        activebackground=shown,
                    )
            dialog.after(100, look)

        dialog.after(100, look)

    def title_of(self, name: str) -> str:
        return self._titles.get(name, name)

    def _button(self, parent: Any, text: str, colour: str, command: Callable[[], None]) -> Any:
        return self.tk.Button(
            parent,
            text=text,
            command=command,
            bg=colour,
            fg="white",
            activebackground=colour,
            activeforeground="white",
            relief="flat",
            padx=14,
            pady=6,
            font=("TkDefaultFont", 11, "bold"),
        )

    # Connecting -------------------------------------------------------------------------

    def _build_connect(self, code: SessionCode | None) -> None:
        tk = self.tk
        self.connect_frame = tk.Frame(self.body, pady=10)
        self.connect_frame.pack(fill="x")
        label = t("tk.code_label")
        if self._nameplate is not None:  # the join page's download: only the digits to type
            label = t("tk.digits_label", nameplate=self._nameplate)
        tk.Label(self.connect_frame, text=label).pack(anchor="w")
        row = tk.Frame(self.connect_frame)
        row.pack(fill="x", pady=6)
        self.code_entry = tk.Entry(row, font=("TkFixedFont", 16), width=14)
        self.code_entry.pack(side="left")
        if code is not None:
            self.code_entry.insert(0, str(code))
        elif self._nameplate is not None:
            self.code_entry.insert(0, f"{self._nameplate}-")
        self.code_entry.bind("<Return>", lambda _: self._on_connect())
        self.code_entry.focus_set()
        self.connect_button = self._button(row, t("tk.connect"), CONNECT_COLOUR, self._on_connect)
        self.connect_button.pack(side="left", padx=10)
        self.status = tk.Label(self.connect_frame, text="", wraplength=460, justify="left")
        self.status.pack(anchor="w")

    def _on_connect(self) -> None:
        if self._running:
            return
        text = self.code_entry.get().strip()
        try:
            code = code_with_nameplate(text, self._nameplate)
        except InvalidCodeError:
            self.status.configure(text=t("app.bad_code", code=text or "-"), fg=STOP_COLOUR)
            return
        self._running = True
        self.connect_button.configure(state="disabled")
        self.code_entry.configure(state="disabled")
        self.status.configure(text=t("app.connecting", code=code), fg="black")
        self._connect(code)

    def connection_failed(self, message: str) -> None:
        self._running = False
        self.connect_button.configure(state="normal", text=t("tk.try_again"))
        self.code_entry.configure(state="normal")
        self.status.configure(text=message, fg=STOP_COLOUR)

    # The session ------------------------------------------------------------------------

    def show_session(self, info: SessionInfo) -> None:
        tk = self.tk
        # What the relay and the technician sent is made inert before it is shown.
        info = dataclasses.replace(
            info,
            technician=safe_text(info.technician, 100),
            organisation=safe_text(info.organisation, 100),
            ticket_id=safe_text(info.ticket_id, 200),
            ticket_url=safe_text(info.ticket_url, 500),
        )
        self._technician = info.technician
        self.connect_frame.pack_forget()
        frame = self.session_frame = tk.Frame(self.body)
        frame.pack(fill="both", expand=True)
        if info.verified:
            who = t("tk.verified", name=info.technician, organisation=info.organisation)
            tk.Label(
                frame, text="✔ " + who, fg=VERIFIED_COLOUR, font=("TkDefaultFont", 13, "bold")
            ).pack(anchor="w", pady=(8, 0))
            tk.Label(
                frame,
                text=t("session.verified_detail", organisation=info.organisation),
                fg=VERIFIED_COLOUR,
                wraplength=480,
                justify="left",
            ).pack(anchor="w")
        else:
            who = t("tk.unverified", name=info.technician)
            tk.Label(
                frame, text="⚠ " + who, fg=UNVERIFIED_COLOUR, font=("TkDefaultFont", 13, "bold")
            ).pack(anchor="w", pady=(8, 0))
            tk.Label(
                frame,
                text=t("session.unverified_warning"),
                fg=UNVERIFIED_COLOUR,
                wraplength=480,
                justify="left",
            ).pack(anchor="w")
        ticket = info.ticket_id + (f" ({info.ticket_url})" if info.ticket_url else "")
        tk.Label(frame, text=t("session.ticket", ticket=ticket)).pack(anchor="w", pady=(6, 0))
        tk.Label(frame, text=t("tk.sas", sas=info.sas), font=("TkFixedFont", 15, "bold")).pack(
            anchor="w", pady=(6, 0)
        )
        tk.Label(frame, text=t("tk.sas_hint"), wraplength=480, justify="left").pack(anchor="w")

        tk.Label(frame, text=t("tk.allowed_heading"), font=("TkDefaultFont", 11, "bold")).pack(
            anchor="w", pady=(10, 0)
        )
        self.allowed_frame = tk.Frame(frame)
        self.allowed_frame.pack(fill="x")
        self.show_active([], {})

        self.stop_button = self._button(frame, t("tk.stop_all"), STOP_COLOUR, self._stop_all)
        self.stop_button.pack(fill="x", pady=10)

        tk.Label(frame, text=t("tk.chat_heading"), font=("TkDefaultFont", 11, "bold")).pack(
            anchor="w"
        )
        self.chat_log = tk.Text(frame, height=7, width=60, wrap="word", state="disabled")
        self.chat_log.pack(fill="both", expand=True)
        row = tk.Frame(frame)
        row.pack(fill="x", pady=4)
        self.chat_entry = tk.Entry(row)
        self.chat_entry.pack(side="left", fill="x", expand=True)
        self.chat_entry.bind("<Return>", lambda _: self._send_chat())
        self._button(row, t("tk.send"), SEND_COLOUR, self._send_chat).pack(side="left", padx=(6, 0))

    def show_active(self, granted: list[str], titles: dict[str, str]) -> None:
        tk = self.tk
        if not hasattr(self, "allowed_frame"):
            return
        for child in self.allowed_frame.winfo_children():
            child.destroy()
        if not granted:
            nothing = "unattended.nothing_yet" if self._unattended_banner else "tk.nothing_allowed"
            tk.Label(self.allowed_frame, text=t(nothing), wraplength=480, justify="left").pack(
                anchor="w"
            )
        for name in granted:
            row = tk.Frame(self.allowed_frame)
            row.pack(fill="x", pady=1)
            tk.Label(row, text="• " + titles.get(name, name)).pack(side="left")
            stop = tk.Button(
                row, text=t("tk.stop_one"), command=lambda n=name: self._command(f"stop {n}")
            )
            stop.pack(side="right")
        sharing = [name for name in granted if name in SCREEN_CAPABILITIES]
        self._show_indicator("control" if "control" in sharing else ("screen" if sharing else None))

    def _show_indicator(self, what: str | None) -> None:
        """The red border here, and a banner above every other window, while seen."""
        self.border.configure(bg=BORDER_SHARING if what else BORDER_IDLE)
        if what is None:
            if self._banner is not None:
                self._banner.destroy()
                self._banner = None
            return
        text = t(
            "tk.banner_control" if what == "control" else "tk.banner_screen", name=self._technician
        )
        if self._banner is None:
            banner = self._banner = self._strip(
                t("app.title"),
                text,
                BANNER_COLOUR,
                t("tk.banner_stop"),
                lambda: self._command("stop screen"),
                top=True,
            )
            self.banner_label = banner.winfo_children()[0]
            self._own_window(banner)
            self._keep_banner_on_top()
        else:
            self.banner_label.configure(text=text)

    def _strip(
        self,
        title: str,
        text: str,
        colour: str,
        button: str,
        command: Callable[[], None],
        top: bool,
    ) -> Any:
        """A strip above every window, across the top or bottom of the screen: ``text``
        and one white ``button``. It has no title bar, so it cannot be minimised away."""
        tk = self.tk
        banner = tk.Toplevel(self.root, bg=colour)
        banner.title(title)
        banner.overrideredirect(True)
        banner.attributes("-topmost", True)
        tk.Label(
            banner,
            text=text,
            bg=colour,
            fg="white",
            font=("TkDefaultFont", 12, "bold"),
            padx=12,
            pady=6,
        ).pack(side="left")
        tk.Button(
            banner,
            text=button,
            command=command,
            bg="white",
            fg=colour,
            relief="flat",
            font=("TkDefaultFont", 11, "bold"),
        ).pack(side="left", padx=8, pady=4)
        banner.update_idletasks()
        x = max(0, (banner.winfo_screenwidth() - banner.winfo_reqwidth()) // 2)
        y = 0 if top else banner.winfo_screenheight() - banner.winfo_reqheight()
        banner.geometry(f"+{x}+{y}")
        return banner

    def _keep_banner_on_top(self) -> None:
        if self._banner is not None:
            self._banner.lift()
            self._banner.attributes("-topmost", True)
            self.root.after(1000, self._keep_banner_on_top)

    def add_message(self, text: str) -> None:
        if not hasattr(self, "chat_log"):
            self.status.configure(text=text)
            return
        self.chat_log.configure(state="normal")
        # Inert whatever the caller did (chat itself is already one line: chat_line).
        self.chat_log.insert("end", safe_text(text, 4000, multiline=True) + "\n")
        self.chat_log.see("end")
        self.chat_log.configure(state="disabled")

    def _send_chat(self) -> None:
        text = self.chat_entry.get().strip()
        if text:
            self.chat_entry.delete(0, "end")
            self._command(f"chat {text}")

    def _stop_all(self) -> None:
        self.stop_button.configure(state="disabled")
        self._command("end")

    def _command(self, text: str) -> None:
        if self.ui is not None:
            self.ui.command(text)

    # Questions --------------------------------------------------------------------------

    def _open_dialog(self, title: str) -> Any:
        self.close_dialog()
        dialog = self._dialog = self.tk.Toplevel(self.root, padx=18, pady=14)
        dialog.title(title)
        dialog.transient(self.root)
        dialog.attributes("-topmost", True)
        dialog.protocol("WM_DELETE_WINDOW", lambda: None)  # answer with a button
        # Over the main window, where the customer is looking.
        dialog.geometry(f"+{self.root.winfo_rootx() + 30}+{self.root.winfo_rooty() + 60}")
        self._own_window(dialog)
        return dialog

    def close_dialog(self) -> None:
        for sequence in ("<MouseWheel>", "<Button-4>", "<Button-5>"):
            self.root.unbind_all(sequence)
        if self._dialog is not None:
            self._dialog.destroy()
            self._dialog = None

    def ask_consent(
        self,
        title: str,
        description: str,
        detail: str,
        answer: Callable[[bool], None],
        documents: tuple[tuple[str, str], ...] = (),
        heading: str | None = None,
    ) -> None:
        tk = self.tk
        dialog = self._open_dialog(t("tk.consent_title"))
        tk.Label(
            dialog,
            text=heading or t("tk.consent_heading", name=self._technician, title=title),
            font=("TkDefaultFont", 13, "bold"),
            wraplength=440,
            justify="left",
        ).pack(anchor="w")
        tk.Label(
            dialog, text=safe_text(description, multiline=True), wraplength=440, justify="left"
        ).pack(anchor="w", pady=(8, 0))
        if detail:
            shown = safe_text(detail, multiline=True)
            tk.Label(dialog, text=shown, wraplength=440, justify="left").pack(
                anchor="w", pady=(4, 0)
            )
        tk.Label(
            dialog, text=t("tk.consent_hint"), wraplength=440, justify="left", fg="#455a64"
        ).pack(anchor="w", pady=(8, 0))
        for name, text in documents:
            tk.Button(
                dialog,
                text=t("tk.show_document", name=name),
                command=lambda n=name, x=text: self._show_document(n, x),
            ).pack(anchor="w", pady=(6, 0))
        self._allow_or_deny(dialog, answer)

    def _allow_or_deny(
        self, dialog: Any, answer: Callable[[bool], None], words: tuple[str, str] | None = None
    ) -> None:
        """The Allow and Deny buttons of ``dialog`` (or ``words``), armed (see :meth:`_arm`)."""
        row = self.tk.Frame(dialog)
        row.pack(fill="x", pady=(14, 0))

        def done(value: bool) -> None:
            answer(value)
            self.close_dialog()

        yes, no = words or (t("tk.allow"), t("tk.deny"))
        allow = self._button(row, yes, ALLOW_COLOUR, lambda: done(True))
        allow.pack(side="left", expand=True, fill="x", padx=(0, 6))
        deny = self._button(row, no, DENY_COLOUR, lambda: done(False))
        deny.pack(side="left", expand=True, fill="x", padx=(6, 0))
        self._arm(dialog, [(allow, ALLOW_COLOUR), (deny, DENY_COLOUR)])

    def show_request(self, text: str) -> None:
        """An unattended request: no code to type, only what is happening."""
        for child in self.connect_frame.winfo_children():
            if child is not self.status:
                child.pack_forget()
        self.status.configure(text=text)

    def ask_unattended(
        self, lines: list[str], seconds: int, answer: Callable[[bool | None], None]
    ) -> None:
        """Whether a technician may come in unattended, with the seconds left shown."""
        tk = self.tk
        dialog = self._open_dialog(t("unattended.title"))
        for number, line in enumerate(lines):
            tk.Label(
                dialog,
                text=line,
                wraplength=440,
                justify="left",
                font=("TkDefaultFont", 13, "bold") if number == 0 else ("TkDefaultFont", 11),
            ).pack(anchor="w", pady=(0, 6))
        left = tk.Label(dialog, text=t("unattended.countdown", seconds=seconds), fg="#455a64")
        left.pack(anchor="w")
        ends = time.monotonic() + seconds

        def tick() -> None:
            if _still(dialog, self._dialog):
                remaining = max(0, round(ends - time.monotonic()))
                left.configure(text=t("unattended.countdown", seconds=remaining))
                dialog.after(500, tick)

        dialog.after(500, tick)
        self._allow_or_deny(dialog, answer)

    def show_unattended(self, text: str) -> None:
        """The banner above every window for the whole unattended session, with End."""
        banner = self._unattended_banner = self._strip(
            t("unattended.title"),
            safe_text(text, 400),
            UNATTENDED_COLOUR,
            t("unattended.end"),
            lambda: self._command("end"),
            top=False,  # the screen banner is on top
        )
        self._own_window(banner)

        def keep_on_top() -> None:
            if _still(banner, self._unattended_banner):
                banner.lift()
                banner.attributes("-topmost", True)
                self.root.after(1000, keep_on_top)

        keep_on_top()

    def ask_choice(
        self, title: str, question: str, default: str, answer: Callable[[str | None], None]
    ) -> None:
        """A question with a default (a folder), a Choose button for folders, OK, Cancel."""
        tk = self.tk
        dialog = self._open_dialog(title)
        tk.Label(
            dialog,
            text=question,
            font=("TkDefaultFont", 12, "bold"),
            wraplength=440,
            justify="left",
        ).pack(anchor="w")
        row = tk.Frame(dialog)
        row.pack(fill="x", pady=8)
        entry = tk.Entry(row, width=44)
        entry.insert(0, default)
        entry.pack(side="left", fill="x", expand=True)

        def browse() -> None:
            from tkinter import filedialog

            folder = filedialog.askdirectory(parent=dialog, initialdir=entry.get() or default)
            if folder:
                entry.delete(0, "end")
                entry.insert(0, folder)

        tk.Button(row, text=t("tk.choose"), command=browse).pack(side="left", padx=(6, 0))
        buttons = tk.Frame(dialog)
        buttons.pack(fill="x", pady=(8, 0))

        def done(value: str | None) -> None:
            answer(value)
            self.close_dialog()

        ok = self._button(buttons, t("tk.ok"), ALLOW_COLOUR, lambda: done(entry.get().strip()))
        ok.pack(side="left", expand=True, fill="x", padx=(0, 6))
        cancel = self._button(buttons, t("tk.cancel"), DENY_COLOUR, lambda: done(None))
        cancel.pack(side="left", expand=True, fill="x", padx=(6, 0))
        self._arm(dialog, [(ok, ALLOW_COLOUR), (cancel, DENY_COLOUR)])

    def _show_document(self, name: str, text: str) -> None:
        """A read-only window with a document (a fix's script), lines numbered."""
        tk = self.tk
        viewer = tk.Toplevel(self.root, padx=10, pady=10)
        viewer.title(name)
        viewer.attributes("-topmost", True)
        box = tk.Text(viewer, width=90, height=30, wrap="none", font=("TkFixedFont", 10))
        for number, line in enumerate(text.splitlines(), start=1):
            box.insert("end", f"{number:4d} | {safe_text(line, multiline=True)}\n")
        box.configure(state="disabled")
        box.pack(fill="both", expand=True)
        tk.Button(viewer, text=t("tk.close"), command=viewer.destroy).pack(anchor="e", pady=4)

    def review(
        self,
        what: str,
        items: list[ReviewItem],
        answer: Callable[[list[tuple[str | int, ...]]], None],
        intro: str | None = None,
    ) -> None:
        tk = self.tk
        dialog = self._open_dialog(t("review.title"))
        tk.Label(dialog, text=t("review.title"), font=("TkDefaultFont", 13, "bold")).pack(
            anchor="w"
        )
        tk.Label(dialog, text=intro or t("review.intro"), wraplength=520, justify="left").pack(
            anchor="w", pady=(4, 8)
        )
        # The buttons first, at the bottom, so a long list can never push them away.
        row = tk.Frame(dialog)
        row.pack(side="bottom", fill="x", pady=(10, 0))
        canvas = tk.Canvas(dialog, width=560, height=340, highlightthickness=0)
        scroll = tk.Scrollbar(dialog, orient="vertical", command=canvas.yview)
        scroll.pack(side="right", fill="y")
        inner = tk.Frame(canvas)
        inner.bind("<Configure>", lambda _: canvas.configure(scrollregion=canvas.bbox("all")))
        canvas.create_window((0, 0), window=inner, anchor="nw")
        canvas.configure(yscrollcommand=scroll.set)
        boxes: list[tuple[tuple[str | int, ...], Any]] = []
        self.review_checkbuttons: dict[tuple[str | int, ...], Any] = {}
        for item in items:
            keep = tk.BooleanVar(value=True)
            box = tk.Checkbutton(
                inner,
                text=safe_text(item.label, 200),
                variable=keep,
                font=("TkDefaultFont", 11, "bold"),
                anchor="w",
            )
            box.pack(fill="x", anchor="w")
            self.review_checkbuttons[item.path] = box
            preview = safe_text(item.preview, 500)
            tk.Label(inner, text=preview, fg="#455a64", wraplength=520, justify="left").pack(
                anchor="w", padx=(26, 0)
            )
            boxes.append((item.path, keep))
            for child in item.children:
                child_keep = tk.BooleanVar(value=True)
                child_box = tk.Checkbutton(
                    inner,
                    text=f"{safe_text(child.label, 200)}: {safe_text(child.preview, 500)}",
                    variable=child_keep,
                    anchor="w",
                    wraplength=500,
                    justify="left",
                )
                child_box.pack(fill="x", anchor="w", padx=(26, 0))
                self.review_checkbuttons[child.path] = child_box
                boxes.append((child.path, child_keep))
        canvas.pack(side="left", fill="both", expand=True)

        def wheel(event: Any) -> None:
            step = -1 if getattr(event, "num", 0) == 4 or getattr(event, "delta", 0) > 0 else 1
            canvas.yview_scroll(step * 3, "units")

        for sequence in ("<MouseWheel>", "<Button-4>", "<Button-5>"):
            dialog.bind_all(sequence, wheel)
        self.review_boxes = boxes

        def send() -> None:
            answer([path for path, keep in boxes if not keep.get()])
            self.close_dialog()

        def send_nothing() -> None:
            answer([item.path for item in items])
            self.close_dialog()

        send_button = self._button(row, t("review.send"), ALLOW_COLOUR, send)
        send_button.pack(side="left", expand=True, fill="x", padx=(0, 6))
        nothing = self._button(row, t("review.send_nothing"), DENY_COLOUR, send_nothing)
        nothing.pack(side="left", expand=True, fill="x", padx=(6, 0))
        self._arm(dialog, [(send_button, ALLOW_COLOUR), (nothing, DENY_COLOUR)])

    def ask_rating(self, answer: Callable[[tuple[int, str] | None], None]) -> None:
        tk = self.tk
        frame = self.rating_frame = tk.Frame(self.body, pady=8)
        frame.pack(fill="x")
        tk.Label(
            frame,
            text=t("tk.rating_question"),
            font=("TkDefaultFont", 12, "bold"),
        ).pack(anchor="w")
        tk.Label(frame, text=t("tk.rating_scale")).pack(anchor="w")
        score = tk.IntVar(value=0)
        row = tk.Frame(frame)
        row.pack(anchor="w", pady=4)
        for value in range(1, 6):
            tk.Radiobutton(
                row,
                text=str(value),
                value=value,
                variable=score,
                indicatoron=False,
                width=4,
                pady=4,
            ).pack(side="left", padx=2)
        tk.Label(frame, text=t("tk.comment_label")).pack(anchor="w")
        comment = tk.Entry(frame, width=50)
        comment.pack(anchor="w", fill="x")
        buttons = tk.Frame(frame)
        buttons.pack(anchor="w", pady=6)

        def finish(value: tuple[int, str] | None) -> None:
            answer(value)
            frame.destroy()
            self.add_message(t("rating.thanks") if value else t("rating.none"))

        def send() -> None:
            if score.get():
                finish((score.get(), rating_comment(comment.get())))

        self._button(buttons, t("tk.rating_send"), ALLOW_COLOUR, send).pack(side="left")
        self._button(buttons, t("tk.rating_skip"), DENY_COLOUR, lambda: finish(None)).pack(
            side="left", padx=8
        )

    # The end ----------------------------------------------------------------------------

    def show_ended(self, reason: str) -> None:
        tk = self.tk
        self.close_dialog()
        self._show_indicator(None)
        if self._unattended_banner is not None:
            self._unattended_banner.destroy()
            self._unattended_banner = None
        if hasattr(self, "stop_button"):
            self.stop_button.configure(state="disabled")
        if not hasattr(self, "session_frame"):
            self.connection_failed(reason)
            return
        self.add_message(t("ended.title", reason=reason))
        ended = tk.Frame(self.body, pady=6)
        ended.pack(fill="x")
        tk.Label(ended, text=t("tk.ended"), font=("TkDefaultFont", 13, "bold")).pack(anchor="w")
        tk.Label(ended, text=reason, wraplength=480, justify="left").pack(anchor="w")
        self._button(ended, t("tk.close"), DENY_COLOUR, self.root.destroy).pack(anchor="e")

    def close(self) -> None:
        """The window's close box: end the session first, like Stop."""
        for settle in self.on_close_answers:
            settle()
        if self.ui is not None and not self.session_over.is_set():
            self._command("end")
            # Give the session a moment to say goodbye to the technician.
            self.root.after(3000, self.root.destroy)
            self._wait_then_destroy()
        else:
            self.root.destroy()

    def _wait_then_destroy(self) -> None:
        if self.session_over.is_set():
            self.root.destroy()
        else:
            self.root.after(100, self._wait_then_destroy)


def _still(window: Any, current: Any) -> bool:
    """Whether ``window`` is still the one shown (``current``) and exists."""
    return window is current and bool(window.winfo_exists())


def run_window(
    args: argparse.Namespace,
    code: SessionCode | None,
    baked: BakedSettings,
    nameplate: str | None = None,
    on_open: Callable[[CustomerWindow, dict[str, int]], None] | None = None,
) -> int:
    """Open the window (``on_open(window, status)`` may add to it, agent.tk_help); run
    sessions from it on a worker thread. Returns the exit status (``status["code"]``)."""
    import tkinter as tk

    from agent.app import run_agent

    # Titles come from the catalog, so the window opens before the capabilities (numpy
    # and the rest of the screen pipeline) are imported: that happens in the session.
    titles = {
        key.split(".")[1]: t(key)
        for key in CATALOG
        if key.startswith("cap.") and key.endswith(".title")
    }
    root = tk.Tk(className="puente-agent")
    status: dict[str, int] = {"code": 1}
    window: CustomerWindow

    def session_thread(chosen: SessionCode) -> None:
        async def main() -> int:
            ui = TkUI(window, asyncio.get_running_loop())
            window.ui = ui
            return await run_agent(
                args.relay, chosen, args.log_dir, args.ca_file, args.org_key or baked, ui
            )

        try:
            status["code"] = asyncio.run(main())
        finally:
            window.session_over.set()

    def connect(chosen: SessionCode) -> None:
        window.session_over.clear()
        threading.Thread(
            target=session_thread, args=(chosen,), name="puente-session", daemon=True
        ).start()

    window = CustomerWindow(root, connect, code, titles, nameplate)
    if on_open is not None:  # more to offer (agent.tk_help's Get help)
        on_open(window, status)
    if args.code and code is not None:
        root.after(100, window._on_connect)  # typed on the command line: no need to confirm
    root.mainloop()
    window.session_over.wait(5)
    return status["code"]
