"""The customer's side of the session: what they see and how they answer.

:class:`CustomerUI` is the interface the session talks to. :class:`ConsoleUI` is the
console implementation for headless machines (and for tests, which drive it through
stdin like a customer at a keyboard). The Tk window implements the same interface.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol, TextIO

from agent.consent import ConsentAsker, ConsentSubject, TrustedPath, UnattendedQuestion
from agent.i18n import current, t
from protocol.messages import rating_comment
from protocol.safe_text import safe_text


@dataclass(frozen=True)
class SessionInfo:
    technician: str
    verified: bool
    organisation: str
    ticket_id: str
    ticket_url: str
    sas: str


CommandHandler = Callable[[str], Awaitable[None]]


class CustomerUI(ConsentAsker, Protocol):
    """What the session needs from whatever the customer looks at.

    Optional: ``async ask_choice(capability, question, default) -> str | None`` asks
    the follow-up question of a capability (files: which folder) right after the
    customer allowed it; return the answer, ``""`` for the default, or None to take
    the permission back. A UI without it gets the default answer every time.
    Optional: ``show_chat(text)`` shows the technician's chat framed on one line (else
    :func:`chat_line` goes to ``notify``); ``attach_trusted_path(path)`` gets the gate's
    :class:`agent.consent.TrustedPath`, to name the UI's own windows in it.
    Optional, for unattended sessions (:mod:`agent.unattended`):
    ``async ask_unattended(question) -> bool | None`` (None: nobody can be asked; it may
    be cancelled when the time is up) and ``show_unattended(text)``, the banner shown
    for the whole session, from which whoever is signed in can end it.
    """

    def session_started(self, info: SessionInfo) -> None: ...

    async def ask_consent(self, capability: ConsentSubject, detail: str) -> bool:
        """Ask about ``capability``; True only for a clear yes.

        ``capability.documents`` (name, text) pairs, when present, are texts the
        customer may ask to read before answering (a fix's script).
        """
        ...

    def show_active(self, granted: list[str]) -> None: ...

    def notify(self, text: str) -> None: ...

    def session_ended(self, reason: str) -> None: ...

    async def ask_rating(self) -> tuple[int, str] | None:
        """Ask how the help was: ``(score 1-5, comment)``, or None if the customer skipped.

        Called once, when the session ends. Must return promptly (None) when nobody can
        answer, and may be cancelled if the technician stops waiting.
        """
        ...

    async def run(self, on_command: CommandHandler) -> None:
        """Deliver the customer's own actions (``revoke NAME``, ``end``) until closed."""
        ...


YES = {"y", "yes", "s", "si", "sí", "allow", "permitir"}


def unattended_lines(question: UnattendedQuestion) -> list[str]:
    """The unattended question in words, outside text made inert (both UIs show these)."""
    names = [t(f"cap.{name}.title") for name in question.capabilities]
    lines = [
        t(
            "unattended.question",
            name=safe_text(question.technician, 100),
            organisation=safe_text(question.organisation, 100),
            ticket=safe_text(question.ticket_id, 200),
            capabilities=", ".join(names) if names else t("unattended.nothing"),
        ),
        t(
            "unattended.allow_on_silence"
            if question.allow_on_silence
            else "unattended.deny_on_silence",
            seconds=question.seconds,
        ),
    ]
    return lines


def consent_lines(capability: ConsentSubject, detail: str, heading: str | None = None) -> list[str]:
    """A consent question as console lines, outside text made inert: what is asked
    (``heading``, by default "The technician asks for ..."), its description and
    detail, and the documents the customer may read first (the console's and
    self-help's console prompter show the same)."""
    documents = dict(getattr(capability, "documents", ()) or ())
    title = safe_text(current().capability_title(capability), 200)
    lines = ["", heading or t("consent.asks", title=title)]
    for line in current().capability_description(capability).splitlines() or [""]:
        lines.append(f"  {safe_text(line)}")
    lines += [f"  {safe_text(line)}" for line in detail.splitlines()]
    if documents:
        lines.append("  " + t("consent.documents", names=t("consent.or").join(documents)))
    return lines


def document_lines(name: str, text: str) -> list[str]:
    """A document the customer asked to read (a fix's script), numbered, made inert."""
    lines = text.splitlines()
    shown = [t("document.start", name=name, lines=len(lines))]
    shown += [
        f"{number:4d} | {safe_text(line, multiline=True)}"
        for number, line in enumerate(lines, start=1)
    ]
    return [*shown, t("document.end", name=name)]


#: The most of one chat message the customer is shown (the rest is cut, marked with …).
CHAT_SHOWN = 1000


def chat_line(text: str) -> str:
    """The technician's chat message as the customer sees it: one inert line, framed."""
    return t("chat.from_technician", text=safe_text(text, CHAT_SHOWN))


class ConsoleUI:
    """Plain-text UI on stdin/stdout. No answer (end of input) counts as no."""

    def __init__(self, stdin: TextIO | None = None, stdout: TextIO | None = None) -> None:
        self._in = stdin or sys.stdin
        self._out = stdout or sys.stdout
        self._lines: asyncio.Queue[str | None] = asyncio.Queue()
        self._answer: asyncio.Future[str | None] | None = None
        self._granted: list[str] = []
        self._reader_started = False
        self._input_closed = False
        #: The question waiting for an answer, shown again after any chat line.
        self._pending: str | None = None

    def attach_trusted_path(self, path: TrustedPath) -> None:
        """The terminal this console runs in is the agent's own window (X11 terminals
        name it in ``WINDOWID``): remote keys never land on it while it has the focus."""
        window = os.environ.get("WINDOWID", "")
        if window.isdigit():
            path.add_windows([int(window)])

    def say(self, text: str = "") -> None:
        self._out.write(text + "\n")
        self._out.flush()

    def session_started(self, info: SessionInfo) -> None:
        self.say("")
        self.say(t("session.started"))
        name, organisation = safe_text(info.technician, 100), safe_text(info.organisation, 100)
        if info.verified:
            self.say(t("session.verified", name=name, organisation=organisation))
            self.say("  " + t("session.verified_detail", organisation=organisation))
        else:
            self.say(t("session.unverified", name=name))
            self.say("  " + t("session.unverified_warning"))
        ticket = safe_text(info.ticket_id, 200) + (
            f" ({safe_text(info.ticket_url, 500)})" if info.ticket_url else ""
        )
        self.say(t("session.ticket", ticket=ticket))
        self.say(t("session.sas", sas=info.sas))
        self.say(t("session.nothing_yet"))
        self.say(t("console.help"))

    async def ask_consent(self, capability: ConsentSubject, detail: str) -> bool:
        self._start_reader()
        documents = dict(getattr(capability, "documents", ()) or ())
        title = safe_text(current().capability_title(capability), 200)
        for line in consent_lines(capability, detail):
            self.say(line)
        while True:
            self.say(t("consent.question", title=title))
            if self._input_closed:
                self.say(t("consent.nobody", title=title))
                return False
            answer = await self._next_answer(t("consent.question", title=title))
            word = (answer or "").strip().lower().removeprefix("show ").strip()
            if answer is not None and word in documents:
                self._show_document(word, documents[word])
                continue
            allowed = answer is not None and answer.strip().lower() in YES
            self.say(t("consent.allowed" if allowed else "consent.declined", title=title))
            return allowed

    async def ask_unattended(self, question: UnattendedQuestion) -> bool | None:
        """Ask at the keyboard; None when nobody can answer (input closed). Called before
        the session starts (:meth:`run` is not reading the console yet)."""
        self._start_reader()
        self.say("")
        self.say(t("unattended.title"))
        for line in unattended_lines(question):
            self.say(line)
        self.say(t("unattended.console_prompt"))
        self._drop_typed_ahead()
        # Asked before the session's run() reads the console, so the line is read here.
        answer = None if self._input_closed else await self._lines.get()
        if answer is None:
            self._input_closed = True
            return None
        return answer.strip().lower() in YES

    def show_unattended(self, text: str) -> None:
        self.say("*** " + text + " ***")

    def _show_document(self, name: str, text: str) -> None:
        for line in document_lines(name, text):
            self.say(line)

    async def ask_choice(
        self, capability: ConsentSubject, question: str, default: str
    ) -> str | None:
        """Ask the follow-up question; Enter keeps ``default``; no answer is a no."""
        self._start_reader()
        title = current().capability_title(capability)
        question = current().capability_choice(capability, question)
        shown = t("choice.question", question=question, default=safe_text(default, 500))
        self.say(shown)
        if self._input_closed:
            self.say(t("consent.nobody", title=title))
            return None
        answer = await self._next_answer(shown)
        if answer is None:
            self.say(t("consent.declined", title=title))
            return None
        answer = answer.strip()
        self.say(t("choice.using", answer=answer or default))
        return answer

    async def ask_rating(self) -> tuple[int, str] | None:
        self._start_reader()
        if self._input_closed:
            return None  # nobody at the keyboard: skip without a question left hanging
        self.say("")
        self.say(t("rating.before_you_go"))
        for _ in range(3):
            self.say(t("rating.question"))
            answer = await self._next_answer()
            text = (answer or "").strip()
            if not text:
                self.say(t("rating.none"))
                return None
            if text in ("1", "2", "3", "4", "5"):
                score = int(text)
                break
            self.say(t("rating.invalid"))
        else:
            self.say(t("rating.none"))
            return None
        self.say(t("rating.comment"))
        comment = await self._next_answer()
        self.say(t("rating.thanks"))
        # One printable line: the comment lands in the help desk's ticket.
        return score, rating_comment(comment or "")

    async def _next_answer(self, question: str | None = None) -> str | None:
        """The next line the customer types (None once input is closed); ``question``
        is shown again after any chat line that arrives meanwhile."""
        if self._input_closed:
            return None
        self._answer = asyncio.get_running_loop().create_future()
        self._pending = question
        if question is not None:
            self._drop_typed_ahead()
        try:
            return await self._answer
        finally:
            self._answer = None
            self._pending = None

    def _drop_typed_ahead(self) -> None:
        """Discard what was typed into the terminal before the question was shown (a
        half-typed ``y`` injected while nothing was asked), so only a line typed after
        it can answer. POSIX terminals only; a pipe (tests, scripts) keeps its lines."""
        try:
            import termios

            if self._in.isatty():
                termios.tcflush(self._in.fileno(), termios.TCIFLUSH)
        except (ImportError, OSError, ValueError, AttributeError):
            pass

    def show_chat(self, text: str) -> None:
        """The technician's chat: one framed line (folded with a hanging indent to the
        terminal's width), then the question still waiting, so the last thing on screen
        is always the real question."""
        for row in _fold(chat_line(text), self._width()):
            self.say(row)
        if self._pending is not None:
            self.say(self._pending)

    def _width(self) -> int | None:
        try:
            return os.get_terminal_size(self._out.fileno()).columns if self._out.isatty() else None
        except (OSError, ValueError, AttributeError):
            return None

    def show_active(self, granted: list[str]) -> None:
        self._granted = list(granted)
        active = ", ".join(granted) if granted else t("consent.nothing")
        self.say(t("consent.now_allowed", names=active))

    def notify(self, text: str) -> None:
        # Notices quote outside text (a refusal's reason, a fix's output): made inert
        # here too, whatever the caller did, lines kept.
        self.say(safe_text(text, 4000, multiline=True))

    def session_ended(self, reason: str) -> None:
        self.say("")
        self.say(t("ended.title", reason=reason))

    async def run(self, on_command: CommandHandler) -> None:
        self._start_reader()
        while True:
            line = await self._lines.get()
            if line is None:
                # Input closed, after every line typed before it was delivered: keep the
                # session, and answer this and future prompts with no.
                self._input_closed = True
                if self._answer is not None and not self._answer.done():
                    self._answer.set_result(None)
                return
            if self._answer is not None and not self._answer.done():
                self._answer.set_result(line)
                continue
            command = line.strip()
            if not command:
                continue
            if command.lower() in ("help", "?", "ayuda"):
                self.say(t("console.help"))
            elif command.lower() == "status":
                self.show_active(self._granted)
            else:
                await on_command(command)

    # The reader thread: stdin blocks, so it lives in a daemon thread and hands lines
    # to the event loop; portable to Windows consoles, unlike add_reader on a pipe.

    def _start_reader(self) -> None:
        if self._reader_started:
            return
        self._reader_started = True
        loop = asyncio.get_running_loop()

        def read() -> None:
            while True:
                try:
                    line = self._in.readline()
                except (OSError, ValueError):
                    line = ""
                if not line:
                    loop.call_soon_threadsafe(self._eof)
                    return
                loop.call_soon_threadsafe(self._lines.put_nowait, line.rstrip("\r\n"))

        threading.Thread(target=read, name="puente-console-input", daemon=True).start()

    def _eof(self) -> None:
        # Queued behind the lines read before it, so a fast typist's last answer counts;
        # run() then answers every question with no.
        self._lines.put_nowait(None)


def _fold(line: str, width: int | None) -> list[str]:
    """``line`` cut into rows of ``width``, every row after the first indented, so no
    part of a chat message starts a row of the terminal as a question would."""
    if width is None or width < 20 or len(line) <= width:
        return [line]
    indent = "    "
    rows = [line[:width]]
    rest = line[width:]
    step = width - len(indent)
    while rest:
        rows.append(indent + rest[:step])
        rest = rest[step:]
    return rows
