"""The service's side of the signed-in user's helper: a Unix socket that helpers in the
users' desktops connect to, and the one place that decides whose helper may be asked.

An enrolled device's service runs as root with no display, so the question "may this
technician come in?" and the banner of an unattended session cannot be shown where
the service runs. Each person's desktop starts ``puente-agent user-helper``
(:mod:`agent.user_helper`, from an XDG autostart entry), which connects here. The
unattended session the service starts for a technician (:mod:`agent.unattended`) gets
one end of a socket pair (:meth:`HelperHub.open_session`), over which it asks and
shows the banner (:mod:`agent.helper_ui`); the hub carries that to the helpers.

Rules:

1. The socket lives in a folder the service owns that nobody else may write
   (``/run/puente``, 0755; the hub refuses to use one that others could write); the
   socket itself is 0666 so that any local user's helper can reach it, because the
   kernel's word on who connected (``SO_PEERCRED``) is what the hub checks.
2. A helper is accepted only if its uid is signed in at the screen
   (:class:`agent.signed_in.SignedInUsers`: logind, else the owner of the X display it
   names). Another local user's helper, or one of a user not signed in, is refused
   with a reason and closed; the service's log says who and why.
3. A question goes to every accepted helper whose user is still signed in when it is
   asked (the others stay connected, unasked), and to helpers accepted while it is open
   (with the seconds left). The first
   answer wins and closes it everywhere; an answer to a question that is not open
   grants nothing. The answer travels to the session with the user who gave it, for
   the device's log. The technician and the relay have no way in: they reach neither
   this socket nor the session's pair, and nothing they send is shown as a button.
4. No helper connected: the question stays open for its time all the same (a person
   who signs in meanwhile is asked); then the policy's silence answer applies, as when
   nobody answers at the console.
5. While a session runs, every accepted helper shows its banner (a person who signs in
   during the session too); "End session" from any of them ends it.
6. Bounds: at most :data:`MAX_HELPERS` helpers, :data:`HELLO_SECONDS` to say hello, and
   any malformed line (:mod:`agent.helper_wire`) closes that helper's connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import stat
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent import helper_wire as wire
from agent.errors import HubUnavailable
from agent.signed_in import SignedInUsers, user_name
from protocol.safe_text import safe_text

#: Where the services' sockets live (one per enrolled device's service).
RUN_FOLDER = Path("/run/puente")
MAX_HELPERS = 32
HELLO_SECONDS = 10.0
#: A helper that reads nothing while this much waits for it is dropped.
MAX_BUFFERED = 256 * 1024


def socket_path(service: str) -> Path:
    """The socket of the service named ``service`` (``puente-device-...``)."""
    return RUN_FOLDER / f"{service}.sock"


def peer_credentials(sock: Any) -> tuple[int, int, int]:
    """``(pid, uid, gid)`` of the process at the other end of a Unix socket, from the
    kernel (``SO_PEERCRED``): what the peer cannot lie about."""
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, gid = struct.unpack("3i", raw)
    return pid, uid, gid


@dataclass(eq=False)
class Helper:
    """One accepted helper: who, which display, and its connection."""

    uid: int
    pid: int
    display: str
    writer: asyncio.StreamWriter

    @property
    def user(self) -> str:
        return user_name(self.uid)

    def send(self, kind: str, **fields: Any) -> None:
        transport = self.writer.transport
        if transport.is_closing():
            return
        if transport.get_write_buffer_size() > MAX_BUFFERED:
            transport.abort()  # it reads nothing: it cannot be asking anyone
            return
        self.writer.write(wire.encode(kind, **fields))


@dataclass
class _Question:
    id: int
    fields: dict[str, Any]
    deadline: float
    shown_to: set[Helper] = field(default_factory=set)


class HelperHub:
    """The helpers' socket (rules 1-6). Start it in the service's event loop."""

    def __init__(
        self,
        path: Path,
        say: Callable[[str], None],
        signed_in: SignedInUsers | None = None,
    ) -> None:
        self.path = path
        self._say = say
        self._signed_in = signed_in or SignedInUsers()
        self._server: asyncio.AbstractServer | None = None
        self._helpers: set[Helper] = set()
        self._handshakes = 0
        self._session: asyncio.StreamWriter | None = None
        self._session_task: asyncio.Task[None] | None = None
        self._question: _Question | None = None
        self._banner: dict[str, Any] | None = None
        #: The tasks serving helpers' connections (so that close can end them).
        self._tasks: set[asyncio.Task[Any]] = set()

    # Public methods ------------------------------------------------------------------

    @property
    def helpers(self) -> list[str]:
        """The users whose helpers are connected (for the service's log and tests)."""
        return sorted(helper.user for helper in self._helpers)

    async def start(self) -> None:
        """Make the folder and the socket (rule 1); HubUnavailable if that cannot be."""
        folder = self.path.parent
        try:
            folder.mkdir(mode=0o755, parents=True, exist_ok=True)
            info = folder.lstat()
        except OSError as exc:
            raise HubUnavailable(
                f"The helpers' socket folder {folder} cannot be made ({exc.strerror or exc}); "
                "the question and banner of unattended sessions go to the console."
            ) from None
        if (
            not stat.S_ISDIR(info.st_mode)
            or info.st_uid != os.geteuid()
            or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
        ):
            raise HubUnavailable(
                f"{folder} is not a folder this service owns that only it can write; remove "
                "it and restart the service (the helpers' socket is not opened meanwhile)."
            )
        with contextlib.suppress(FileNotFoundError):
            if not stat.S_ISSOCK(self.path.lstat().st_mode):
                raise HubUnavailable(
                    f"{self.path} exists and is not a socket; remove it and restart the service."
                )
            self.path.unlink()  # a socket left by a service that was killed
        try:
            self._server = await asyncio.start_unix_server(
                self._serve_helper, path=str(self.path), limit=wire.MAX_LINE
            )
            os.chmod(self.path, 0o666)
        except OSError as exc:
            raise HubUnavailable(
                f"The helpers' socket {self.path} cannot be opened ({exc.strerror or exc})."
            ) from None

    async def close(self) -> None:
        """Stop listening, remove the socket, close every connection."""
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
            with contextlib.suppress(OSError):  # another service's socket may be there
                self.path.parent.rmdir()
        tasks = list(self._tasks)
        if self._session_task is not None:
            tasks.append(self._session_task)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._helpers.clear()

    def open_session(self) -> socket.socket:
        """A socket pair for an unattended session about to start: the hub serves one
        end (the session's questions and banner), the caller hands the other to the
        session's process and closes it once that started. One session at a time."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        if self._session_task is not None:
            self._session_task.cancel()
        self._session_task = asyncio.create_task(self._serve_session(ours))
        return theirs

    # The session's end ---------------------------------------------------------------

    async def _serve_session(self, sock: socket.socket) -> None:
        reader, writer = await asyncio.open_unix_connection(sock=sock, limit=wire.MAX_LINE)
        self._session = writer
        try:
            while line := await reader.readline():
                await self._from_session(wire.parse(line, wire.SESSION_FIELDS))
        except (wire.MalformedHelperMessage, ValueError, ConnectionError) as exc:
            self._say(f"The unattended session's link to the helpers broke: {exc}")
        finally:
            self._session = None
            self._close_question("cancelled")
            self._end_banner()
            writer.close()

    async def _from_session(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "ask":
            self._close_question("cancelled")
            loop = asyncio.get_running_loop()
            fields = wire.question_fields(message)
            asked = self._question = _Question(
                message["id"], fields, loop.time() + message["seconds"]
            )
            for helper in await self._still_signed_in():
                self._show_question(helper, asked)
            users = sorted({helper.user for helper in asked.shown_to})
            self._to_session("asked", id=asked.id, users=users)
            self._say(
                "Asked the person signed in, through the helpers of: "
                + (", ".join(users) or "nobody (no helper is connected; the question waits)")
            )
        elif kind == "close" and self._question and self._question.id == message["id"]:
            self._close_question("time_up")
        elif kind == "banner":
            self._banner = {
                name: message[name] for name in ("technician", "organisation", "ticket")
            }
            for helper in self._helpers:
                helper.send("banner", **self._banner)
        elif kind == "ended":
            self._close_question("cancelled")
            self._end_banner()

    async def _still_signed_in(self) -> list[Helper]:
        """The accepted helpers whose users are still signed in (rule 3). The others stay
        connected but are not asked (their users switched away from the screen, or are
        signing out); they are asked again once they are back."""
        helpers = list(self._helpers)
        verdicts = await asyncio.to_thread(
            self._signed_in.check_many, [(h.uid, h.display) for h in helpers]
        )
        still = []
        for helper, verdict in zip(helpers, verdicts, strict=True):
            if verdict.signed_in:
                still.append(helper)
            else:
                self._say(f"Not asking the helper of {helper.user}: {verdict.sentence}")
        return still

    def _to_session(self, kind: str, **fields: Any) -> None:
        if self._session is not None and not self._session.transport.is_closing():
            self._session.write(wire.encode(kind, wire.SESSION_FIELDS, **fields))

    def _show_question(self, helper: Helper, question: _Question) -> None:
        left = round(question.deadline - asyncio.get_running_loop().time())
        if left <= 0:
            return
        question.shown_to.add(helper)
        helper.send("question", **{**question.fields, "seconds": left})

    def _close_question(self, why: str, except_for: Helper | None = None) -> None:
        question, self._question = self._question, None
        if question is None:
            return
        for helper in question.shown_to:
            if helper is not except_for and helper in self._helpers:
                helper.send("closed", id=question.id, why=why)

    def _end_banner(self) -> None:
        if self._banner is not None:
            self._banner = None
            for helper in self._helpers:
                helper.send("ended")

    # The helpers' end ----------------------------------------------------------------

    async def _serve_helper(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        pid, uid, _ = peer_credentials(writer.get_extra_info("socket"))
        helper: Helper | None = None
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            helper = await self._admit(reader, writer, pid, uid)
            if helper is None:
                return
            while line := await reader.readline():
                self._from_helper(helper, wire.parse(line))
        except (wire.MalformedHelperMessage, ValueError) as exc:
            self._say(f"Closed the helper of {user_name(uid)} (pid {pid}): {exc}.")
        except (ConnectionError, TimeoutError):
            pass
        except asyncio.CancelledError:
            pass  # the hub is closing: the connection goes with it
        finally:
            if task is not None:
                self._tasks.discard(task)
            if helper is not None:
                self._helpers.discard(helper)
                self._say(f"The helper of {helper.user} (pid {pid}) left.")
            writer.close()

    async def _admit(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, pid: int, uid: int
    ) -> Helper | None:
        """The hello, and rule 2: an accepted Helper, or None (refused and told)."""

        def refuse(reason: str, sentence: str) -> None:
            writer.write(wire.encode("refused", reason=reason, message=sentence))
            self._say(f"Refused the helper of {user_name(uid)} (uid {uid}, pid {pid}): {sentence}")

        if len(self._helpers) + self._handshakes >= MAX_HELPERS:
            refuse("too_many", f"{MAX_HELPERS} helpers are connected already.")
            return None
        self._handshakes += 1
        try:
            line = await asyncio.wait_for(reader.readline(), HELLO_SECONDS)
            try:
                hello = wire.parse(line)
            except wire.MalformedHelperMessage as exc:
                refuse("bad_hello", f"its first message was not a hello ({exc}).")
                return None
            if hello["type"] != "hello":
                refuse("bad_hello", "its first message was not a hello.")
                return None
            if hello["version"] != wire.VERSION:
                refuse("version", f"it speaks version {hello['version']}, not {wire.VERSION}.")
                return None
            display = hello["display"]
            verdict = await asyncio.to_thread(self._signed_in.check, uid, display)
        finally:
            self._handshakes -= 1
        if not verdict.signed_in:
            refuse("not_signed_in", verdict.sentence)
            return None
        helper = Helper(uid, pid, display, writer)
        self._helpers.add(helper)
        helper.send("welcome", user=helper.user)
        self._say(
            f"Accepted the helper of {helper.user} (uid {uid}, pid {pid}, display "
            f"{safe_text(display, 64)}): {verdict.sentence}"
        )
        # Rules 3 and 5: what is going on now reaches whoever just signed in.
        if self._question is not None:
            self._show_question(helper, self._question)
            self._to_session(
                "asked",
                id=self._question.id,
                users=sorted({h.user for h in self._question.shown_to}),
            )
        if self._banner is not None:
            helper.send("banner", **self._banner)
        return helper

    def _from_helper(self, helper: Helper, message: dict[str, Any]) -> None:
        kind = message["type"]
        question = self._question
        if kind == "answer" and question is not None and question.id == message["id"]:
            if helper not in question.shown_to:
                return  # it was never asked: its answer grants nothing (rule 3)
            self._to_session(
                "answer", id=question.id, allow=message["allow"], user=helper.user, uid=helper.uid
            )
            self._say(
                f"{helper.user} (uid {helper.uid}) answered "
                f"{'allow' if message['allow'] else 'deny'} in their own session."
            )
            self._close_question("answered", except_for=helper)
        elif kind == "end" and self._banner is not None:
            self._to_session("end", user=helper.user, uid=helper.uid)
            self._say(f"{helper.user} (uid {helper.uid}) ended the unattended session.")
        elif kind == "windows":
            self._to_session("windows", ids=message["ids"])


__all__ = ["HelperHub", "HubUnavailable", "RUN_FOLDER", "peer_credentials", "socket_path"]
