"""The viewer's network side: an asyncio loop in its own thread, talking to Qt by signals.

The GUI thread never waits on the network and never decodes pixels: it calls the
public methods here (each schedules a coroutine on the worker's loop and returns at
once) and reacts to the signals. Decoding runs in a worker thread of the loop; the
picture the GUI paints is one ``QImage`` that only the changed rectangles of each
frame are copied into (under ``picture_lock``, which the GUI holds while painting),
and the GUI is signalled only when it has taken the previous damage, so a fast
stream never floods the GUI.

Everything the agent says (names, messages, errors) is passed on as plain text;
the window shows it with ``Qt.PlainText`` so nothing in it is ever interpreted.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import sqlite3
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

import asyncssh
import numpy as np
from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QImage

from link.errors import LinkError, SessionLost
from protocol import input as input_protocol
from protocol.code import SessionCode
from protocol.messages import ReplyStatus
from protocol.streams import PART_SUFFIX

from ..client import (
    ConsentEvent,
    OpenedSession,
    RelayAPI,
    TechnicianSession,
    connect_device,
    send_summary,
    take_help_request,
    transfer_request,
)
from ..credentials import TechnicianCredentials
from ..errors import RelayApiError, StreamRefused
from ..fix_commands import note_findings, run_fix, run_triage
from ..fixlib import FixLibrary, FixLibraryError
from ..outcomes import OutcomeStore
from ..past_cases import PastCases
from ..screen_stream import ControlStream, CursorState, ScreenStream, StreamFigures
from ..ssh_commands import Refused, SSHAccess, get_file, put_file, session_access
from ..summary import build_summary
from ..triage import RuleError
from .i18n import mode_text, relay_sentence, result_sentence, tr, tr_count


async def why_refused(access: SSHAccess, capability: str, exc: Exception) -> str:
    """The sentence for an SSH-side failure: the refusal, or the customer stopping it."""
    if isinstance(exc, Refused):
        return result_sentence(exc.result.message)
    refusal = await access.refusal_after_close(capability)
    return result_sentence(refusal.message) if refusal else str(exc)


class SessionWorker(QObject):
    """Owns the session; its signals carry plain values to the GUI thread."""

    code_ready = Signal(str)  # the session code to read to the customer
    join_ready = Signal(str)  # the join page's address for the customer (may be "")
    paired = Signal(str)  # the check code (SAS)
    consent_changed = Signal(dict)  # capability -> granted/declined/revoked
    #: capability, its new state (granted/declined/revoked), the agent's message; the
    #: window shows it on the status line in the technician's language.
    consent_event = Signal(str, str, str)
    chat_received = Signal(str)  # a chat line from the customer (untrusted text)
    chat_sent = Signal(str)  # a chat line the technician sent
    link_state = Signal(str)  # reconnecting / peer_reconnecting / resumed
    finished = Signal(dict)  # rating, comment, summary problem, ticket and its link
    shell_opened = Signal()
    shell_output = Signal(bytes)  # terminal bytes from the customer's shell
    shell_closed = Signal(str)  # a plain sentence: why the terminal ended
    files_listed = Signal(list)  # [(name, size)] in the customer's shared folder
    files_problem = Signal(str)  # a plain sentence
    transfer_progress = Signal(int, "qint64", "qint64")  # id, bytes done, total
    transfer_done = Signal(int, str, str, str)  # id, status, sentence, SHA-256
    diagnostics_ready = Signal(dict, list)  # the snapshot, the findings (as dicts)
    diagnostics_problem = Signal(str)
    fix_line = Signal(str)  # one output line of a running fix (through safe_text)
    fix_done = Signal(str, str)  # status (ok / error / declined), the result sentence
    monitors_changed = Signal(list, int)  # [(index, width, height)], the one streamed
    clipboard_text = Signal(str)  # the customer's clipboard, read on request
    clipboard_note = Signal(str)  # a plain sentence about the clipboard
    notice = Signal(str)  # a plain sentence for the status line
    screen_info = Signal(int, int)  # remote width, height
    frame_ready = Signal()  # a new picture is waiting in take_picture()
    cursor_changed = Signal()
    ended = Signal(str)
    #: A session that could not open (a request someone else took, a device that
    #: refused): the sentence to show; the tab has nothing more to do.
    refused = Signal(str)

    def __init__(
        self,
        credentials: TechnicianCredentials | None = None,
        fixes_dir: Path | None = None,
        rules_dirs: list[Path] | None = None,
        outcomes: Path | None = None,
    ) -> None:
        """``credentials`` sign the session as the organisation's technician (fixes need
        it); ``fixes_dir`` is the fix library and ``rules_dirs`` add triage rules."""
        super().__init__()
        self._credentials = credentials
        self._fixes_dir = fixes_dir
        self._rules_dirs = list(rules_dirs or [])
        self._outcomes = outcomes
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="puente-viewer-net", daemon=True)
        self._thread.start()
        self.session: TechnicianSession | None = None
        self.screen: ScreenStream | None = None
        self.control: ControlStream | None = None
        self._api: RelayAPI | None = None
        self._session_id = ""
        #: The last triage's findings: a fix run is reported for the problems they name.
        self._last_findings: list[Any] = []
        self._technician = "Technician"
        self._ticket = ""
        self._ticket_url = ""
        self._request_id = ""  # the help request this tab took, if it did
        self._finished_sent = False
        #: Held while the shown picture is written (here) or painted (by the GUI).
        self.picture_lock = threading.Lock()
        self._picture: QImage | None = None
        self._canvas: QImage | None = None
        self._canvas_pixels: np.ndarray | None = None
        self._picture_pending = False
        self._damage: list[tuple[int, int, int, int]] = []
        self.cursor = CursorState()
        self._shell: asyncssh.SSHClientProcess[bytes] | None = None
        self._transfers: dict[int, asyncio.Task[Any]] = {}

    # Called from the GUI thread --------------------------------------------------------

    def start_session(
        self, relay: str, token: str, ticket: str, name: str = "", ticket_url: str = ""
    ) -> None:
        self._submit(self._start_session(relay, token, ticket, name, ticket_url))

    def take_request(self, relay: str, token: str, request_id: str) -> None:
        """Accept help request ``request_id`` and pair with its customer, no code (the
        same as ``puente-tech queue accept``)."""
        self._submit(self._take_request(relay, token, request_id))

    def connect_device(self, relay: str, token: str, device_id: str, ticket: str) -> None:
        """Ask enrolled ``device_id`` for an unattended session for ``ticket`` (the same
        as ``puente-tech connect DEVICE --ticket T``)."""
        self._submit(self._connect_device(relay, token, device_id, ticket))

    def hand_on(self, to: str, note: str) -> None:
        """Hand this tab's help request on to technician or queue ``to`` with ``note``
        (the console's ``transfer``); the session ends when the relay accepts."""
        self._submit(self._hand_on(to, note))

    def send_chat(self, text: str) -> None:
        self._submit(self._send_chat(text))

    def open_shell(self, columns: int, lines: int) -> None:
        self._submit(self._open_shell(columns, lines))

    def list_files(self) -> None:
        self._submit(self._list_files())

    def upload(self, transfer_id: int, local: str, remote: str) -> None:
        self._submit(self._transfer(transfer_id, "up", Path(local), remote))

    def download(self, transfer_id: int, remote: str, local: str) -> None:
        self._submit(self._transfer(transfer_id, "down", Path(local), remote))

    def cancel_transfer(self, transfer_id: int) -> None:
        task = self._transfers.get(transfer_id)
        if task is not None:
            self._loop.call_soon_threadsafe(task.cancel)

    def choose_monitor(self, monitor: int) -> None:
        self._submit(self._choose_monitor(monitor))

    def stream_settings(self, max_fps: int, quality: int) -> None:
        screen = self.screen
        if screen is not None:
            self._submit(screen.settings(max_fps=max_fps, quality=quality))

    def send_keys(self, names: list[str]) -> None:
        """Press ``names`` in order and release them in reverse (a key combination)."""
        if not self.control_active:
            self.notice.emit(tr("tools.keys_need_control"))
            return
        events: list[input_protocol.InputEvent] = [input_protocol.Key(n, True) for n in names]
        events += [input_protocol.Key(n, False) for n in reversed(names)]
        self.send_input(events)
        self.notice.emit(tr("tools.keys_sent", keys="+".join(names)))

    def read_clipboard(self) -> None:
        self._submit(self._clipboard("read", {}))

    def write_clipboard(self, text: str) -> None:
        self._submit(self._clipboard("write", {"text": text}))

    def shell_input(self, data: bytes) -> None:
        shell = self._shell
        if shell is not None:
            self._loop.call_soon_threadsafe(shell.stdin.write, data)

    def shell_resize(self, columns: int, lines: int) -> None:
        shell = self._shell
        if shell is not None:
            self._loop.call_soon_threadsafe(shell.change_terminal_size, columns, lines)

    def ask_view(self, monitor: int = 1) -> None:
        self._submit(self._ask_view(monitor))

    def ask_control(self) -> None:
        self._submit(self._ask_control())

    def collect_diagnostics(self) -> None:
        self._submit(self._collect_diagnostics())

    def run_fix(self, fix_id: str, params: dict[str, Any], action: str = "run") -> None:
        self._submit(self._run_fix(fix_id, {str(k): str(v) for k, v in params.items()}, action))

    def send_input(self, events: list[input_protocol.InputEvent]) -> None:
        control = self.control
        if control is not None and control.active:
            self._submit(control.send(events))

    def end(self) -> None:
        self._submit(self._end("the technician ended the session"))

    def shutdown(self) -> None:
        """End the session (if any) and stop the worker thread."""
        if not self._thread.is_alive():
            return  # already shut down (a window may be closed twice)
        future = self._submit(self._end("the technician closed the viewer"))
        with contextlib.suppress(Exception):
            future.result(10)

        async def cancel_the_rest() -> None:
            # A session still waiting for its customer holds a WebSocket. _end() ended
            # it at the relay, which closes that claim: give it a moment to close its
            # connection itself (a cancel in the middle of a WebSocket opening handshake
            # can leave the socket open), then cancel whatever is left, while the loop
            # still runs.
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            if tasks:
                _, pending = await asyncio.wait(tasks, timeout=3)
                for task in pending:
                    task.cancel()
                if pending:
                    await asyncio.wait(pending, timeout=5)

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(cancel_the_rest(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def take_picture(self) -> tuple[QImage | None, list[tuple[int, int, int, int]]]:
        """The newest picture (once) and the rectangles changed since the last one."""
        with self.picture_lock:
            picture, self._picture = self._picture, None
            damage, self._damage = self._damage, []
            self._picture_pending = False
        return picture, damage

    @property
    def session_id(self) -> str:
        """The relay's id of this tab's session ("" until the relay made one)."""
        return self._session_id

    @property
    def ticket(self) -> str:
        """The session's ticket ("" until known: a help request's comes with it)."""
        return self._ticket

    @property
    def figures(self) -> StreamFigures | None:
        return self.screen.figures if self.screen is not None else None

    @property
    def control_active(self) -> bool:
        return self.control is not None and self.control.active

    # The worker thread -----------------------------------------------------------------

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_forever()
        pending = asyncio.all_tasks(self._loop)
        for task in pending:
            task.cancel()
        with contextlib.suppress(Exception):
            self._loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        self._loop.close()

    def _submit(self, coro: Coroutine[Any, Any, None]) -> concurrent.futures.Future[None]:
        async def guarded() -> None:
            try:
                await coro
            except LinkError as exc:
                self.notice.emit(relay_sentence(exc))
            except Exception as exc:  # shown, never fatal for the viewer
                self.notice.emit(tr("notice.went_wrong", problem=str(exc)))

        return asyncio.run_coroutine_threadsafe(guarded(), self._loop)

    async def _start_session(
        self, relay: str, token: str, ticket: str, name: str, ticket_url: str = ""
    ) -> None:
        if self.session is not None:
            self.notice.emit(tr("notice.already_open"))
            return
        if not relay or not token or not ticket:
            self.notice.emit(tr("notice.fill_in"))
            return
        self._api = RelayAPI(relay, token)
        created = await asyncio.to_thread(self._api.create_session, ticket, ticket_url or None)
        self._session_id = str(created["session_id"])
        self._technician = str(created.get("technician") or "Technician")
        self._ticket = ticket
        self._ticket_url = str(created.get("ticket_url") or "")
        code = SessionCode.new(created["nameplate"])
        self.code_ready.emit(str(code))
        self.join_ready.emit(str(created.get("join_url") or ""))
        self.notice.emit(tr("notice.read_code"))
        session = await TechnicianSession.connect(
            relay,
            code,
            ticket,
            token=token,
            technician_name=name or str(created.get("technician") or "Technician"),
            wait_timeout=600,
            credentials=self._credentials,
        )
        self._attach(session)

    async def _take_request(self, relay: str, token: str, request_id: str) -> None:
        self._request_id = request_id

        def accepted(request: dict[str, Any], session_id: str) -> None:
            self._session_id = session_id
            self.notice.emit(tr("queue.accepted_waiting"))

        await self._open_code_less(
            relay,
            token,
            lambda api, credentials: take_help_request(
                api, request_id, credentials, wait_timeout=120, on_accepted=accepted
            ),
            late=tr("queue.agent_late"),
        )

    async def _connect_device(self, relay: str, token: str, device_id: str, ticket: str) -> None:
        def asked(terms: dict[str, Any], session_id: str) -> None:
            self._session_id = session_id
            self.notice.emit(tr("devices.asked", mode=mode_text(str(terms.get("mode", "")))))

        await self._open_code_less(
            relay,
            token,
            lambda api, credentials: connect_device(
                api, device_id, ticket, credentials, wait_timeout=60, on_asked=asked
            ),
            late=tr("devices.no_pairing"),
        )

    async def _hand_on(self, to: str, note: str) -> None:
        session = self._need_session()
        if session is None or self._api is None or not self._request_id:
            return
        try:
            await transfer_request(self._api, session, self._request_id, to, note)
        except RelayApiError as exc:
            self.notice.emit(tr("transfer.refused", reason=relay_sentence(exc)))
            return
        self.session = None  # the relay ends it; the customer waits for the next one
        self.notice.emit(tr("transfer.done", to=to))
        with contextlib.suppress(LinkError):
            await session.link.wait_closed()
        await session.drained()
        await self._send_summary(session)

    async def _open_code_less(
        self,
        relay: str,
        token: str,
        open_session: Callable[[RelayAPI, TechnicianCredentials], Awaitable[OpenedSession]],
        late: str,
    ) -> None:
        """Open a session without a code (the client library's ``open_session``), or say
        why it did not open: ``late`` when the other side did not pair in time."""
        if self._credentials is None:
            self.refused.emit(tr("queue.need_certificate"))
            return
        self._api = RelayAPI(relay, token)
        try:
            opened = await open_session(self._api, self._credentials)
        except TimeoutError:
            self.refused.emit(late)
            return
        except RelayApiError as exc:
            self.refused.emit(relay_sentence(exc))
            return
        except SessionLost as exc:
            self.refused.emit(tr("tab.refused", reason=str(exc)))
            return
        self._opened(opened)

    def _opened(self, opened: OpenedSession) -> None:
        created = opened.created
        self._session_id = str(created["session_id"])
        self._technician = str(created.get("technician") or "Technician")
        self._ticket = str(created.get("ticket_id") or "")
        self.code_ready.emit("")  # no code: nobody reads one aloud
        self._attach(opened.session)

    def _attach(self, session: TechnicianSession) -> None:
        """The paired session is this tab's: its events reach the panels from now on."""
        self.session = session
        session.on_consent = self._consent
        session.on_chat = self.chat_received.emit
        session.link.on_link_state.append(self.link_state.emit)
        self.paired.emit(session.sas)
        self.notice.emit(tr("notice.joined"))
        asyncio.create_task(self._watch_end(session))

    async def _watch_end(self, session: TechnicianSession) -> None:
        try:
            reason = await session.link.wait_closed()
        except LinkError as exc:
            reason = str(exc)
        self.ended.emit(reason)
        await session.drained()  # the customer's Rating and Bye came before the close
        if session.ended_by != "technician":  # our own end sends the summary itself
            await self._send_summary(session)

    async def _send_chat(self, text: str) -> None:
        session = self._need_session()
        if session is None:
            return
        await session.chat(text)
        self.chat_sent.emit(text)

    async def _send_summary(self, session: TechnicianSession) -> None:
        """Build the session's summary and upload it for the ticket."""
        if self._api is None or not self._session_id:
            return
        summary = build_summary(session, self._technician, time.time())
        problem = await send_summary(self._api, self._session_id, summary)
        if problem is None:
            self.notice.emit(tr("notice.summary_sent"))
        else:
            self.notice.emit(tr("ending.summary_failed", problem=problem))
        if not self._finished_sent:
            self._finished_sent = True
            score, comment = session.rating or (0, "")
            self.finished.emit(
                {
                    "rating": score,
                    "comment": comment,
                    "summary_problem": problem or "",
                    "summary": summary,
                    "ticket": self._ticket,
                    "ticket_url": self._ticket_url,
                }
            )

    async def _open_shell(self, columns: int, lines: int) -> None:
        """The Shell capability as a terminal: the console's SSH side, asked and pinned."""
        session = self._need_session()
        if session is None or self._shell is not None:
            return
        access = session_access(session)
        try:
            await access.ensure("shell")
            conn = await access.connection()
            process = await conn.create_process(
                term_type="xterm-256color", term_size=(columns, lines), encoding=None
            )
        except (Refused, asyncssh.Error, OSError) as exc:
            reason = await why_refused(access, "shell", exc)
            self.shell_closed.emit(tr("terminal.refused", reason=reason))
            return
        self._shell = process
        self.shell_opened.emit()
        try:
            while data := await process.stdout.read(65536):
                self.shell_output.emit(bytes(data))
            await process.wait_closed()
        except (asyncssh.Error, OSError):
            pass
        finally:
            self._shell = None
        refusal = await access.refusal_after_close("shell")
        if refusal is not None:
            self.shell_closed.emit(tr("terminal.refused", reason=result_sentence(refusal.message)))
        else:
            self.shell_closed.emit(tr("terminal.ended", status=process.exit_status))

    async def _choose_monitor(self, monitor: int) -> None:
        screen = self.screen
        if screen is None:
            return
        await screen.settings(monitor=monitor)
        control = self.control
        if control is not None and control.active and monitor != control.monitor:
            # Control's coordinates are the streamed monitor's: follow the choice.
            await control.stop()
            self.control = ControlStream(screen.session, monitor=monitor)
            await self.control.start()

    async def _clipboard(self, action: str, args: dict[str, Any]) -> None:
        session = self._need_session()
        if session is None:
            return
        reply = await session.request("clipboard", action, args)
        if reply.status != ReplyStatus.OK or not isinstance(reply.result, dict):
            reason = reply.message or "declined"
            self.clipboard_note.emit(tr("tools.clipboard_refused", reason=reason))
            return
        if action == "read":
            self.clipboard_text.emit(str(reply.result.get("text", "")))
        else:
            count = int(reply.result.get("characters", 0))
            self.clipboard_note.emit(tr_count("tools.clipboard_sent", count))

    async def _list_files(self) -> None:
        session = self._need_session()
        if session is None:
            return
        access = session_access(session)
        try:
            await access.ensure("files")
            sftp = await access.sftp()
            entries = [
                (str(entry.filename), int(entry.attrs.size or 0))
                for entry in await sftp.readdir(".")
                if entry.attrs.type == asyncssh.FILEXFER_TYPE_REGULAR
                and not str(entry.filename).endswith(PART_SUFFIX)
            ]
        except (Refused, asyncssh.Error, OSError) as exc:
            reason = await why_refused(access, "files", exc)
            self.files_problem.emit(tr("files.list_failed", reason=reason))
            return
        self.files_listed.emit(sorted(entries))

    async def _transfer(self, transfer_id: int, direction: str, local: Path, remote: str) -> None:
        """One upload or download (the console's), reported by id; cancellable."""
        session = self._need_session()
        if session is None:
            self.transfer_done.emit(transfer_id, "error", "No customer is connected.", "")
            return
        task = asyncio.current_task()
        assert task is not None
        self._transfers[transfer_id] = task
        access = session_access(session)
        last = [0.0]

        def progress(done: int, total: int) -> None:
            now = time.monotonic()
            if now - last[0] >= 0.05 or done >= total:  # at most 20 updates a second
                last[0] = now
                self.transfer_progress.emit(transfer_id, done, total)

        try:
            if direction == "up":
                result = await put_file(access, local, remote, progress)
            else:
                result = await get_file(access, remote, local, progress)
        except asyncio.CancelledError:
            if direction == "up":
                text = tr("files.cancelled_upload", part=remote + PART_SUFFIX)
            else:
                text = tr("files.cancelled_download", part=str(local) + PART_SUFFIX)
            self.transfer_done.emit(transfer_id, "cancelled", text, "")
            return
        finally:
            self._transfers.pop(transfer_id, None)
        data = result.data or {}
        message = result_sentence(result.message)
        part = Path(str(local) + PART_SUFFIX)
        if result.status != "ok" and direction == "down" and part.exists():
            # Nothing half-written is left without saying so.
            message += " " + tr("files.part_kept", part=str(part))
        elif result.status != "ok" and direction == "up":
            message += " " + tr("files.part_remote", part=remote + PART_SUFFIX)
        self.transfer_done.emit(transfer_id, result.status, message, str(data.get("sha256") or ""))

    def _consent(self, event: ConsentEvent) -> None:
        # Every change replaces the status line (consent_event): "Asking the customer to
        # allow..." must not outlive the customer's answer.
        if self.session is not None:
            self.consent_changed.emit(dict(self.session.consent))
        self.consent_event.emit(event.capability, event.state, event.message)

    async def _ask_view(self, monitor: int) -> None:
        session = self._need_session()
        if session is None:
            return
        if self.screen is not None and self.screen.reply and not self.screen.reply.done():
            await self.screen.settings(monitor=monitor)
            return
        self.notice.emit(tr("notice.asking_view"))
        stream = ScreenStream(session, monitor=monitor)
        stream.on_frame = self._frame
        stream.on_info = self._info
        stream.on_cursor = self._cursor
        self.screen = stream
        try:
            await stream.start(timeout=600)
        except StreamRefused as exc:
            self.screen = None
            self.notice.emit(tr("notice.view_not_started", reason=str(exc)))
            return
        self.notice.emit(tr("notice.view_on"))
        assert stream.reply is not None
        reply = await stream.reply
        if reply.status == ReplyStatus.REVOKED:
            self.notice.emit(tr("notice.view_stopped"))
        elif reply.status != ReplyStatus.OK:
            self.notice.emit(tr("notice.view_ended", reason=reply.message))
        if stream.error is not None:
            self.notice.emit(tr("notice.view_error", reason=str(stream.error)))

    async def _ask_control(self) -> None:
        session = self._need_session()
        if session is None:
            return
        if self.screen is None:
            self.notice.emit(tr("notice.view_first"))
            return
        if self.control_active:
            return
        self.notice.emit(tr("notice.asking_control"))
        assert self.screen.decoder.info is not None
        control = ControlStream(session, monitor=self.screen.decoder.info.selected)
        self.control = control
        await control.start()
        assert control.reply is not None
        reply = await control.reply
        if reply.status == ReplyStatus.DECLINED:
            self.notice.emit(tr("notice.control_declined", reason=reply.message))
        elif reply.status == ReplyStatus.REVOKED:
            self.notice.emit(tr("notice.control_taken_back"))
        elif reply.status not in (ReplyStatus.OK,):
            self.notice.emit(tr("notice.control_ended", reason=reply.message))

    async def _collect_diagnostics(self) -> None:
        session = self._need_session()
        if session is None:
            return
        reply = await session.request("diagnostics", "collect", {"sample_seconds": 0.5})
        if reply.status != ReplyStatus.OK or not isinstance(reply.result, dict):
            reason = reply.message or "declined"
            self.diagnostics_problem.emit(tr("diagnostics.refused", reason=reason))
            return
        snapshot = reply.result
        library = FixLibrary(self._fixes_dir) if self._fixes_dir else None
        platform = session.agent_hello.platform or None

        def triage_here() -> list[Any]:
            # Past cases rank the fixes: the relay's figures, the local file as cache.
            past = self._past_cases()
            try:
                findings = run_triage(
                    snapshot,
                    reference_time=time.time(),
                    rules_dirs=self._rules_dirs,
                    library=library,
                    outcomes=past,
                    platform=platform,
                )
                if self._session_id:
                    past.recheck(self._session_id, {f.problem for f in findings})
                return findings
            finally:
                if past.local is not None:
                    past.local.close()

        try:
            findings = await asyncio.to_thread(triage_here)
        except (RuleError, FixLibraryError, sqlite3.Error) as exc:
            self.diagnostics_problem.emit(str(exc))
            findings = []
        self._last_findings = findings
        note_findings(session, findings)
        self.diagnostics_ready.emit(snapshot, [f.as_dict() for f in findings])

    async def _run_fix(self, fix_id: str, params: dict[str, str], action: str) -> None:
        session = self._need_session()
        if session is None:
            return
        library = FixLibrary(self._fixes_dir) if self._fixes_dir else None

        def on_line(phase: str, stream: str, line: str) -> None:
            self.fix_line.emit(f"{phase}{stream}| {line}")

        done = await run_fix(session, fix_id, action, params, library, on_line)
        self.fix_done.emit(done.result.status, result_sentence(done.result.message))
        if done.counts and self._session_id:
            problem = await asyncio.to_thread(
                self._report_run, done.fix_id, done.version, done.exit_status
            )
            if problem:
                self.notice.emit(problem)

    def _past_cases(self) -> PastCases:
        """The relay's past cases, with the local file (opened in the calling thread)."""
        store = None
        if self._outcomes is not None:
            with contextlib.suppress(OSError, sqlite3.Error):
                store = OutcomeStore(self._outcomes)
        return PastCases(self._api, store)

    def _report_run(self, fix_id: str, version: str, exit_status: int | None) -> str | None:
        """Report a fix run to the organisation's past cases, for the problems the last
        triage suggested it for (blocking: runs in a thread)."""
        problems = [
            f.problem for f in self._last_findings if any(s.fix_id == fix_id for s in f.suggestions)
        ]
        past = self._past_cases()
        try:
            return past.record(
                session_id=self._session_id,
                ticket_id=self._ticket,
                problems=problems,
                fix_id=fix_id,
                version=version,
                exit_status=exit_status,
                now=time.time(),
            )
        finally:
            if past.local is not None:
                past.local.close()

    def _need_session(self) -> TechnicianSession | None:
        if self.session is None:
            self.notice.emit(tr("notice.no_customer"))
        return self.session

    def _frame(self, stream: ScreenStream, frame: Any, damaged: Any) -> None:
        # Runs on the worker loop after decoding (never while the next frame decodes).
        # Only the rectangles that changed are copied into the picture the GUI paints
        # (a whole 1080p picture per frame would be 8 MB); their damage adds up until
        # the GUI takes it, and the GUI is signalled once until it does: a fast stream
        # never floods it.
        pixels = stream.decoder.pixels
        if pixels is None:
            return
        height, width = pixels.shape[:2]
        with self.picture_lock:
            canvas = self._canvas
            if canvas is None or (canvas.width(), canvas.height()) != (width, height):
                # Qt owns this picture's memory; the GUI keeps the old one alive as long
                # as it still shows it.
                canvas = self._canvas = QImage(width, height, QImage.Format.Format_RGB32)
                rows = np.frombuffer(canvas.bits(), dtype=np.uint8)
                self._canvas_pixels = rows.reshape(height, canvas.bytesPerLine() // 4, 4)
                damaged = [(0, 0, width, height)]
            target = self._canvas_pixels
            assert target is not None
            for x, y, w, h in damaged:
                target[y : y + h, x : x + w] = pixels[y : y + h, x : x + w]
            self._picture = canvas
            self._damage.extend(damaged)
            signal = not self._picture_pending
            self._picture_pending = True
        if signal:
            self.frame_ready.emit()

    def _info(self, info: Any) -> None:
        self.screen_info.emit(info.width, info.height)
        monitors = [(index, m.width, m.height) for index, m in enumerate(info.monitors)]
        self.monitors_changed.emit(monitors, info.selected)

    def _cursor(self, cursor: CursorState) -> None:
        self.cursor = CursorState(cursor.x, cursor.y, cursor.visible, cursor.image)
        self.cursor_changed.emit()

    async def _end(self, reason: str) -> None:
        session, self.session = self.session, None
        if self.control is not None:
            with contextlib.suppress(Exception):
                await self.control.stop()
        if self.screen is not None:
            with contextlib.suppress(Exception):
                await self.screen.stop(timeout=3)
        if session is not None:
            self.notice.emit(tr("notice.ending"))
            await session.end(reason)
            await self._send_summary(session)
        elif self._api is not None and self._session_id:
            with contextlib.suppress(LinkError):
                await asyncio.to_thread(self._api.end_session, self._session_id)
