"""The unattended session's UI when an enrolled device's service runs it: the question
and the banner go to the helpers of the people signed in, through the service.

``puente-agent unattended --helpers-fd N`` gets one end of a socket pair from the
service (:meth:`agent.helper_hub.HelperHub.open_session`); :class:`HelperUI` speaks
:mod:`agent.helper_wire`'s session messages over it:

* :meth:`HelperUI.ask_unattended` asks and waits for the first answer of a signed-in
  person (the service says whose helpers were asked, and who answered: both go in the
  device's log); when the consent gate's time is up it closes the question everywhere;
* :meth:`HelperUI.session_started` puts the banner up in every signed-in desktop, and
  "End session" there arrives as the customer's ``end``;
* everything else (notices, what is active) goes to the service's own log, its
  standard output: nobody is asked anything else in an unattended session, where the
  owner's policy answers (:meth:`agent.consent.ConsentGate.follow_policy`).

Deny by default: a consent question that reaches this UI is answered no.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TextIO

from agent import helper_wire as wire
from agent.i18n import t
from agent.ui import CommandHandler, SessionInfo
from protocol.safe_text import safe_text

if TYPE_CHECKING:
    from agent.consent import ConsentSubject, TrustedPath, UnattendedQuestion


class HelperUI:
    """The session's side of the service's socket pair (module docstring)."""

    def __init__(self, fd: int, out: TextIO | None = None) -> None:
        self._fd = fd
        self._out = out or sys.stdout
        self._writer: asyncio.StreamWriter | None = None
        self._reading: asyncio.Task[None] | None = None
        self._record: Callable[[str], None] = lambda line: None
        self._next_id = 0
        self._answers: dict[int, asyncio.Future[bool | None]] = {}
        self._commands: asyncio.Queue[str] = asyncio.Queue()
        self._trusted_path: TrustedPath | None = None

    async def start(self, record: Callable[[str], None]) -> None:
        """Open the service's socket pair; ``record`` writes a line in the device's log.
        Raises OSError if the service handed over no usable socket."""
        self._record = record
        sock = socket.socket(fileno=self._fd)
        reader, self._writer = await asyncio.open_unix_connection(sock=sock, limit=wire.MAX_LINE)
        self._reading = asyncio.create_task(self._read(reader))

    async def stop(self) -> None:
        """The session is over: stop reading (before the device's log closes)."""
        if self._reading is not None:
            self._reading.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reading
        if self._writer is not None:
            self._writer.close()

    # CustomerUI ----------------------------------------------------------------------

    async def ask_unattended(self, question: UnattendedQuestion) -> bool | None:
        """The first answer of a signed-in person; None once the service is gone.
        Cancelled by the consent gate when the time is up: closed everywhere then."""
        self._next_id += 1
        number = self._next_id
        answer: asyncio.Future[bool | None] = asyncio.get_running_loop().create_future()
        self._answers[number] = answer
        self._say(t("unattended.title"))
        self._send(
            "ask",
            id=number,
            technician=question.technician[:200],
            organisation=question.organisation[:200],
            ticket=question.ticket_id[:200],
            capabilities=list(question.capabilities),
            seconds=question.seconds,
            allow_on_silence=question.allow_on_silence,
        )
        try:
            return await answer
        except asyncio.CancelledError:
            self._send("close", id=number)
            raise
        finally:
            self._answers.pop(number, None)

    def show_unattended(self, text: str) -> None:
        self._say("*** " + safe_text(text, 400) + " ***")

    def session_started(self, info: SessionInfo) -> None:
        """The session is on: the banner goes up in every signed-in desktop."""
        self._send(
            "banner",
            technician=info.technician[:200],
            organisation=info.organisation[:200],
            ticket=info.ticket_id[:200],
        )

    async def ask_consent(self, capability: ConsentSubject, detail: str) -> bool:
        return False  # nobody is asked through the helpers but the unattended question

    def show_active(self, granted: list[str]) -> None:
        self._say(t("consent.now_allowed", names=", ".join(granted) or t("consent.nothing")))

    def notify(self, text: str) -> None:
        self._say(safe_text(text, 4000, multiline=True))

    def session_ended(self, reason: str) -> None:
        self._send("ended")
        self._say(t("ended.title", reason=reason))

    async def ask_rating(self) -> tuple[int, str] | None:
        return None

    def attach_trusted_path(self, path: TrustedPath) -> None:
        """The helpers' own windows (sent by the service) join the trusted path."""
        self._trusted_path = path

    async def run(self, on_command: CommandHandler) -> None:
        """ "End session" on a banner, as the customer's ``end``."""
        while True:
            await on_command(await self._commands.get())

    # Private methods -----------------------------------------------------------------

    def _log(self, line: str) -> None:
        with contextlib.suppress(ValueError):  # the log closed as the session ended
            self._record(line)

    def _say(self, line: str) -> None:
        with contextlib.suppress(OSError, ValueError):
            self._out.write(line + "\n")
            self._out.flush()

    def _send(self, kind: str, **fields: Any) -> None:
        if self._writer is not None and not self._writer.transport.is_closing():
            self._writer.write(wire.encode(kind, wire.SESSION_FIELDS, **fields))

    async def _read(self, reader: asyncio.StreamReader) -> None:
        try:
            while line := await reader.readline():
                self._received(wire.parse(line, wire.SESSION_FIELDS))
        except (wire.MalformedHelperMessage, ValueError, ConnectionError) as exc:
            self._log(f"The link to the service's helpers broke: {exc}.")
        # The service is gone: nobody can answer, and nobody could end the session from
        # a banner any more, so it ends here.
        for answer in self._answers.values():
            if not answer.done():
                answer.set_result(None)
        self._commands.put_nowait("end")

    def _received(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "asked":
            users = ", ".join(message["users"])
            self._log(
                f"Asked through the helpers of the people signed in: {users}."
                if users
                else "No signed-in person's helper is connected; the question waits for one "
                "until the time is up."
            )
        elif kind == "answer":
            answer = self._answers.get(message["id"])
            if answer is not None and not answer.done():
                self._log(
                    f"Answered by {message['user']} (uid {message['uid']}), signed in at this "
                    "computer, through their helper."
                )
                answer.set_result(message["allow"])
        elif kind == "end":
            self._log(
                f"{message['user']} (uid {message['uid']}) pressed End session on the banner."
            )
            self._commands.put_nowait("end")
        elif kind == "windows" and self._trusted_path is not None:
            self._trusted_path.add_windows(message["ids"])


__all__ = ["HelperUI"]
