"""One session in a tab: its code and join link, check code, screen and side panels.

Each tab owns its own :class:`SessionWorker` (its own network thread and asyncio
loop), so a stalled or cut session never blocks another tab. The network state the
link reports (reconnecting, the customer reconnecting, resumed) is shown in plain
words on the tab's status line and in its title.

Beside the screen, one tab per panel: consents (live), chat, the ending (rating,
summary, ticket link). Every text that came from the customer's machine or the relay
is shown as plain text after ``safe_text``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QScrollArea,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from protocol.safe_text import safe_text

from ..credentials import TechnicianCredentials
from .chat_panel import ChatPanel
from .consents_panel import ConsentsPanel, state_text
from .diagnostics_panel import DiagnosticsPanel
from .ending_panel import EndingPanel
from .files_panel import FilesPanel
from .i18n import tr
from .screen_tools import ScreenTools
from .screen_view import RemoteScreen, plain_label
from .signin import SignIn
from .terminal_panel import TerminalPanel
from .worker import SessionWorker


@dataclass(frozen=True)
class Opening:
    """How a tab's session opens: with a code for ``ticket`` (the default), by taking
    help request ``request_id`` from the queue, or by asking enrolled ``device_id``
    for an unattended session for ``ticket``; the last two pair without a code."""

    ticket: str = ""
    ticket_url: str = ""
    request_id: str = ""
    device_id: str = ""

    @property
    def code_less(self) -> bool:
        return bool(self.request_id or self.device_id)


def row(*widgets: QWidget, stretch_before: int | None = None, grow: int = 0) -> QHBoxLayout:
    """A row of ``widgets``: a stretch before the one at ``stretch_before`` (it and the
    ones after it go to the right), or else the one at ``grow`` takes the room."""
    layout = QHBoxLayout()
    for index, widget in enumerate(widgets):
        if index == stretch_before:
            layout.addStretch(1)
        layout.addWidget(widget, 1 if stretch_before is None and index == grow else 0)
    return layout


@dataclass(frozen=True)
class Knowledge:
    """What a session may use beyond the token: the technician's certificate (signed
    fixes need it), the fix library, extra triage rules and the past-cases database
    (``--fixes``, ``--rules``, ``--outcomes``: triage ranks fixes by it when it exists;
    the viewer does not record runs in it yet, the console does)."""

    credentials: TechnicianCredentials | None = None
    fixes_dir: Path | None = None
    rules_dirs: list[Path] = field(default_factory=list)
    outcomes: Path | None = None


_LINK_STATES = {
    "reconnecting": "tab.link_lost",
    "peer_reconnecting": "tab.peer_lost",
    "resumed": "tab.resumed",
}


class SessionTab(QWidget):
    """A session for one ticket; ``title_changed`` carries the tab's new title."""

    title_changed = Signal(str)

    def __init__(
        self,
        sign_in: SignIn,
        ticket: str,
        name: str = "",
        ticket_url: str = "",
        knowledge: Knowledge | None = None,
        opening: Opening | None = None,
    ) -> None:
        """A session for ``ticket`` with a code, unless ``opening`` says otherwise."""
        super().__init__()
        opening = opening or Opening(ticket, ticket_url)
        self.opening = opening
        self.ticket = opening.ticket or ticket
        knowledge = knowledge or Knowledge()
        self.worker = SessionWorker(
            knowledge.credentials, knowledge.fixes_dir, knowledge.rules_dirs, knowledge.outcomes
        )
        self.code = ""
        self.join_url = ""
        self.link_state = ""
        self.ended = False
        self._end_text = ""

        self.code_label = plain_label(tr("tab.no_code"), size=16, bold=True)
        self.sas_label = plain_label(tr("tab.no_sas"), size=16, bold=True)
        self.copy_code_button = QPushButton(tr("tab.copy_code"))
        self.join_label = plain_label(tr("tab.no_link"))
        self.join_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.copy_link_button = QPushButton(tr("tab.copy_link"))
        self.allowed_label = plain_label(tr("tab.allowed_none"))
        self.view_button = QPushButton(tr("tab.view"))
        self.control_button = QPushButton(tr("tab.control"))
        self.scale_button = QPushButton(tr("tab.fit"))
        self.scale_button.setCheckable(True)
        self.end_button = QPushButton(tr("tab.end"))
        self.remote_screen = RemoteScreen(self.worker)
        self.tools = ScreenTools()
        self.scroll_area = QScrollArea()
        self.scroll_area.setWidget(self.remote_screen)
        self.scroll_area.setWidgetResizable(True)
        self.scroll_area.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.status_label = plain_label("")
        self.status_label.setWordWrap(True)
        self.figures_label = plain_label("")

        self.consents_panel = ConsentsPanel()
        self.chat_panel = ChatPanel()
        self.terminal_panel = TerminalPanel()
        self.files_panel = FilesPanel()
        self.diagnostics_panel = DiagnosticsPanel()
        self.ending_panel = EndingPanel()
        self.panels = QTabWidget()
        self.panels.setMinimumWidth(340)
        self.panels.addTab(self.consents_panel, tr("panel.consents"))
        self.panels.addTab(self.chat_panel, tr("panel.chat"))
        self.panels.addTab(self.terminal_panel, tr("panel.terminal"))
        self.panels.addTab(self.files_panel, tr("panel.files"))
        self.panels.addTab(self.diagnostics_panel, tr("panel.diagnostics"))
        self.panels.addTab(self.ending_panel, tr("panel.ending"))

        identity = row(
            self.code_label,
            self.copy_code_button,
            self.sas_label,
            self.allowed_label,
            stretch_before=3,
        )
        identity.setSpacing(16)  # the code (or "no code") apart from the check code
        join = row(self.join_label, self.copy_link_button)
        buttons = row(
            self.view_button,
            self.control_button,
            self.scale_button,
            self.end_button,
            stretch_before=3,
        )
        # A help request's session can be handed on (the console's transfer).
        self.transfer_to = QLineEdit()
        self.transfer_to.setPlaceholderText(tr("transfer.to"))
        self.transfer_to.setMinimumWidth(220)
        self.transfer_note = QLineEdit()
        self.transfer_note.setPlaceholderText(tr("transfer.note"))
        self.transfer_button = QPushButton(tr("transfer.button"))
        self.transfer_row = QWidget()
        transfer = row(self.transfer_to, self.transfer_note, self.transfer_button, grow=1)
        transfer.setContentsMargins(0, 0, 0, 0)
        self.transfer_row.setLayout(transfer)
        self.transfer_row.setVisible(bool(opening.request_id))
        splitter = QSplitter()
        splitter.addWidget(self.scroll_area)
        splitter.addWidget(self.panels)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 1)
        bottom = row(self.status_label, self.figures_label)
        layout = QVBoxLayout(self)
        layout.addLayout(identity)
        layout.addLayout(join)
        layout.addLayout(buttons)
        layout.addWidget(self.transfer_row)
        layout.addWidget(self.tools)
        layout.addWidget(splitter, 1)
        layout.addLayout(bottom)

        self.copy_code_button.clicked.connect(lambda: self._copy(self.code))
        self.copy_link_button.clicked.connect(lambda: self._copy(self.join_url))
        self.view_button.clicked.connect(lambda: self.worker.ask_view())
        self.control_button.clicked.connect(self.worker.ask_control)
        self.scale_button.toggled.connect(self._toggle_scale)
        self.end_button.clicked.connect(self.worker.end)
        self.transfer_button.clicked.connect(self._transfer)
        self.chat_panel.send_requested.connect(self.worker.send_chat)
        worker = self.worker
        worker.code_ready.connect(self._code)
        worker.join_ready.connect(self._join)
        worker.paired.connect(self._paired)
        worker.consent_changed.connect(self._consent)
        worker.consent_event.connect(self._consent_event)
        # Notices carry what the agent and the relay said: shown through safe_text.
        worker.notice.connect(self.show_status)
        worker.chat_received.connect(self.chat_panel.add_customer)
        self.terminal_panel.open_requested.connect(worker.open_shell)
        self.terminal_panel.view.typed.connect(worker.shell_input)
        self.terminal_panel.view.resized.connect(worker.shell_resize)
        worker.shell_opened.connect(self.terminal_panel.opened)
        worker.shell_output.connect(self.terminal_panel.view.feed)
        worker.shell_closed.connect(self.terminal_panel.closed)
        files = self.files_panel
        files.list_requested.connect(worker.list_files)
        files.upload_requested.connect(worker.upload)
        files.download_requested.connect(worker.download)
        files.cancel_requested.connect(worker.cancel_transfer)
        worker.files_listed.connect(files.show_listing)
        worker.files_problem.connect(lambda text: files.status_label.setText(safe_text(text, 500)))
        worker.transfer_progress.connect(files.progress)
        worker.transfer_done.connect(files.finish)
        tools = self.tools
        tools.monitor_chosen.connect(worker.choose_monitor)
        tools.settings_chosen.connect(worker.stream_settings)
        tools.keys_requested.connect(worker.send_keys)
        tools.clipboard_get.connect(worker.read_clipboard)
        tools.clipboard_send.connect(worker.write_clipboard)
        worker.monitors_changed.connect(tools.show_monitors)
        worker.clipboard_text.connect(tools.clipboard_arrived)
        worker.clipboard_note.connect(tools.clipboard_result)
        diagnostics = self.diagnostics_panel
        diagnostics.collect_requested.connect(worker.collect_diagnostics)
        diagnostics.fix_requested.connect(worker.run_fix)
        worker.diagnostics_ready.connect(diagnostics.show_snapshot)
        worker.diagnostics_problem.connect(diagnostics.problem)
        worker.fix_line.connect(diagnostics.fix_line)
        worker.fix_done.connect(diagnostics.fix_done)
        worker.chat_sent.connect(self.chat_panel.add_mine)
        worker.link_state.connect(self._link_state)
        worker.frame_ready.connect(self._frame)
        worker.cursor_changed.connect(self.remote_screen.update)
        worker.ended.connect(self._ended)
        worker.refused.connect(self._refused)
        worker.finished.connect(self._finished)
        self.frames_painted = 0
        self._timer = QTimer(self)
        self._timer.timeout.connect(self._figures)
        self._timer.start(500)
        if opening.request_id:
            self.title = tr("queue.tab", request=safe_text(opening.request_id[:8], 8))
            worker.take_request(sign_in.relay, sign_in.token, opening.request_id)
        elif opening.device_id:
            self.title = tr("devices.tab", ticket=safe_text(self.ticket, 60))
            worker.connect_device(sign_in.relay, sign_in.token, opening.device_id, self.ticket)
        else:
            self.title = tr("tab.waiting", ticket=safe_text(self.ticket, 60))
            worker.start_session(
                sign_in.relay, sign_in.token, self.ticket, name, opening.ticket_url
            )

    # Slots -----------------------------------------------------------------------------

    def show_status(self, text: str) -> None:
        text = safe_text(text, 500)
        if self._end_text and text != self._end_text:
            text = f"{self._end_text} {text}"  # why it ended stays in view
        self.status_label.setText(text)

    def _set_title(self, title: str) -> None:
        self.title = title
        self.title_changed.emit(title)

    def _copy(self, text: str) -> None:
        if text:
            QGuiApplication.clipboard().setText(text)
            self.show_status(tr("tab.copied"))

    def _code(self, code: str) -> None:
        self.code = code
        self.code_label.setText(tr("tab.code", code=code) if code else tr("tab.code_less"))
        # Code-less: nothing to read or send to anyone.
        for widget in (self.copy_code_button, self.join_label, self.copy_link_button):
            widget.setVisible(bool(code))

    def _join(self, url: str) -> None:
        self.join_url = url
        self.join_label.setText(
            tr("tab.link", url=safe_text(url, 300)) if url else tr("tab.no_link")
        )
        self.copy_link_button.setEnabled(bool(url))

    def _paired(self, sas: str) -> None:
        self.sas_label.setText(tr("tab.sas", sas=sas))
        self.ticket = self.worker.ticket or self.ticket  # a taken request's ticket
        self._set_title(safe_text(self.ticket, 60))

    def _transfer(self) -> None:
        to, note = self.transfer_to.text().strip(), self.transfer_note.text().strip()
        if not to or not note:
            self.show_status(tr("transfer.need"))
            return
        self.worker.hand_on(to, note)

    def _refused(self, sentence: str) -> None:
        """The session could not open: say why; the tab may be closed."""
        self.ended = True
        self._end_text = safe_text(sentence, 500)
        self.show_status(self._end_text)
        self._set_title(self.title + " ✗")

    def _consent(self, consent: dict[str, Any]) -> None:
        granted = sorted(safe_text(k, 64) for k, v in consent.items() if v == "granted")
        self.allowed_label.setText(
            tr("tab.allowed", names=", ".join(granted)) if granted else tr("tab.allowed_none")
        )
        self.consents_panel.show_consent(consent)

    def _consent_event(self, capability: str, state: str, message: str) -> None:
        title = safe_text(capability, 64)
        if state == "granted":
            self.show_status(tr("consents.allowed_now", title=title))
            return
        if state in ("declined", "revoked"):
            text = tr(f"consents.{state}_now", title=title)
        else:
            text = tr("consents.not_now", state=state_text(state), title=title)
        self.show_status(text + (f" {safe_text(message, 300)}" if message else ""))

    def _link_state(self, state: str) -> None:
        self.link_state = state
        key = _LINK_STATES.get(state)
        if key:
            self.show_status(tr(key))
        suffix = "" if state == "resumed" else " ⚠"
        self._set_title(safe_text(self.ticket, 60) + suffix)

    def _toggle_scale(self, one_to_one: bool) -> None:
        self.scroll_area.setWidgetResizable(not one_to_one)
        self.remote_screen.set_fit(not one_to_one)
        self.scale_button.setText(tr("tab.fit_back") if one_to_one else tr("tab.fit"))

    def _frame(self) -> None:
        picture, damage = self.worker.take_picture()
        if picture is not None:
            self.remote_screen.set_picture(picture, damage)
            self.frames_painted += 1

    def _figures(self) -> None:
        figures = self.worker.figures
        if figures is None:
            return
        self.figures_label.setText(
            tr(
                "tab.figures",
                fps=figures.fps,
                kbps=figures.bytes_per_s * 8 / 1000,
                rtt=figures.rtt_ms,
            )
        )

    def _ended(self, reason: str) -> None:
        self.ended = True
        self._end_text = tr("tab.ended", reason=safe_text(reason, 300))
        self.show_status(self._end_text)
        self.allowed_label.setText(tr("tab.allowed_none"))
        self._set_title(safe_text(self.ticket, 60) + " ✓")

    def _finished(self, finished: dict[str, Any]) -> None:
        self.ending_panel.show_finished(finished)
        self.panels.setCurrentWidget(self.ending_panel)

    def shutdown(self) -> None:
        self._timer.stop()
        self.worker.shutdown()
