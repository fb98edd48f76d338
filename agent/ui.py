"""The customer's side of the session: what they see and how they answer.

:class:`CustomerUI` is the interface the session talks to. :class:`ConsoleUI` is the
console implementation for headless machines (and for tests, which drive it through
stdin like a customer at a keyboard). The Tk window implements the same interface.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol, TextIO

from agent.consent import ConsentAsker, ConsentSubject
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

    def say(self, text: str = "") -> None:
        self._out.write(text + "\n")
        self._out.flush()

    def session_started(self, info: SessionInfo) -> None:
        self.say("")
        self.say(t("session.started"))
        if info.verified:
            self.say(t("session.verified", name=info.technician, organisation=info.organisation))
            self.say("  " + t("session.verified_detail", organisation=info.organisation))
        else:
            self.say(t("session.unverified", name=info.technician))
            self.say("  " + t("session.unverified_warning"))
        ticket = info.ticket_id + (f" ({info.ticket_url})" if info.ticket_url else "")
        self.say(t("session.ticket", ticket=ticket))
        self.say(t("session.sas", sas=info.sas))
        self.say(t("session.nothing_yet"))
        self.say(t("console.help"))

    async def ask_consent(self, capability: ConsentSubject, detail: str) -> bool:
        self._start_reader()
        documents = dict(getattr(capability, "documents", ()) or ())
        title = current().capability_title(capability)
        self.say("")
        self.say(t("consent.asks", title=title))
        for line in current().capability_description(capability).splitlines() or [""]:
            self.say(f"  {line}")
        if detail:
            for line in detail.splitlines():
                self.say(f"  {line}")
        if documents:
            names = t("consent.or").join(documents)
            self.say("  " + t("consent.documents", names=names))
        while True:
            self.say(t("consent.question", title=title))
            if self._input_closed:
                self.say(t("consent.nobody", title=title))
                return False
            answer = await self._next_answer()
            word = (answer or "").strip().lower().removeprefix("show ").strip()
            if answer is not None and word in documents:
                self._show_document(word, documents[word])
                continue
            allowed = answer is not None and answer.strip().lower() in YES
            self.say(t("consent.allowed" if allowed else "consent.declined", title=title))
            return allowed

    def _show_document(self, name: str, text: str) -> None:
        lines = text.splitlines()
        self.say(t("document.start", name=name, lines=len(lines)))
        for number, line in enumerate(lines, start=1):
            self.say(f"{number:4d} | {safe_text(line, multiline=True)}")
        self.say(t("document.end", name=name))

    async def ask_choice(
        self, capability: ConsentSubject, question: str, default: str
    ) -> str | None:
        """Ask the follow-up question; Enter keeps ``default``; no answer is a no."""
        self._start_reader()
        title = current().capability_title(capability)
        question = current().capability_choice(capability, question)
        self.say(t("choice.question", question=question, default=default))
        if self._input_closed:
            self.say(t("consent.nobody", title=title))
            return None
        answer = await self._next_answer()
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

    async def _next_answer(self) -> str | None:
        """The next line the customer types (None once input is closed)."""
        if self._input_closed:
            return None
        self._answer = asyncio.get_running_loop().create_future()
        try:
            return await self._answer
        finally:
            self._answer = None

    def show_active(self, granted: list[str]) -> None:
        self._granted = list(granted)
        active = ", ".join(granted) if granted else t("consent.nothing")
        self.say(t("consent.now_allowed", names=active))

    def notify(self, text: str) -> None:
        self.say(text)

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
