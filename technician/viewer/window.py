"""The viewer's main window: sign in once, my sessions, one tab per session.

Layout: a sign-in bar (relay address, API token, Sign in / Sign out), the window's
status line, "My sessions" on the left (the technician's sessions from the relay's
REST API, and Start session for a ticket) and the open sessions as tabs on the right
(:class:`SessionTab`: code, join link, check code, screen and side panels).

Signing in checks the token against the relay (``GET /api/sessions``) off the GUI
thread and, once it works, keeps the relay address and token in the credential store
(:mod:`technician.viewer.signin`); the next start signs in from there. The viewer
writes no file holding the token.
"""

from __future__ import annotations

import os
import threading
from dataclasses import replace
from typing import Any

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QCloseEvent, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLineEdit,
    QMainWindow,
    QPushButton,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from protocol.safe_text import safe_text

from ..credentials import TechnicianCredentials
from .devices_panel import DevicesPanel
from .i18n import tr
from .queue_panel import QueuePanel
from .screen_view import plain_label
from .session_tab import Knowledge, Opening, SessionTab
from .sessions_panel import SessionsPanel, state_text
from .signin import (
    SignIn,
    check_sign_in,
    forget,
    recall,
    recall_identity,
    remember,
    remember_identity,
    sign_in_problem,
)


class _RelayCalls(QObject):
    """Runs the blocking REST calls in a thread; its signals bring the answers back."""

    signed_in = Signal(object, list)  # SignIn, the sessions
    refused = Signal(str)  # the sentence to show

    def check(self, sign_in: SignIn) -> None:
        def run() -> None:
            try:
                sessions = check_sign_in(sign_in)
            except Exception as exc:  # every failure becomes a sentence
                self.refused.emit(sign_in_problem(sign_in.relay, exc))
                return
            self.signed_in.emit(sign_in, sessions)

        threading.Thread(target=run, name="puente-viewer-signin", daemon=True).start()


def _who(credentials: TechnicianCredentials) -> dict[str, str]:
    certificate = credentials.certificate
    return {
        "name": safe_text(certificate.name, 100),
        "organisation": safe_text(certificate.organisation, 100),
    }


class ViewerWindow(QMainWindow):
    def __init__(
        self,
        relay: str = "",
        token: str = "",
        ticket: str = "",
        name: str = "",
        remember_sign_in: bool = True,
        knowledge: Knowledge | None = None,
    ) -> None:
        """Sign in with ``relay`` and ``token`` when both are given, else from the store.

        ``remember_sign_in=False`` (benchmarks, scripts) never touches the store.
        """
        super().__init__()
        self._remember_sign_in = remember_sign_in
        self.knowledge = knowledge or Knowledge()
        self.setWindowTitle(tr("window.title"))
        self.technician_name = name
        self.sign_in: SignIn | None = None
        self._calls = _RelayCalls()

        self.relay_field = QLineEdit(relay)
        self.relay_field.setPlaceholderText(tr("signin.relay"))
        self.token_field = QLineEdit(token)
        self.token_field.setPlaceholderText(tr("signin.token"))
        self.token_field.setEchoMode(QLineEdit.EchoMode.Password)
        self.sign_in_button = QPushButton(tr("signin.button"))
        self.sign_out_button = QPushButton(tr("signin.forget"))
        self.status_label = plain_label(tr("signin.prompt"))
        self.status_label.setWordWrap(True)
        self.sessions_panel = SessionsPanel()
        self.sessions_panel.ticket_field.setText(ticket)
        self.queue_panel = QueuePanel()
        self.devices_panel = DevicesPanel()
        # The session list: my sessions, the queue, the devices.
        self.side = QTabWidget()
        self.side.addTab(self.sessions_panel, tr("side.sessions"))
        self.side.addTab(self.queue_panel, tr("side.queue"))
        self.side.addTab(self.devices_panel, tr("side.devices"))
        self.tabs = QTabWidget()
        self.tabs.setTabsClosable(True)
        self.tabs.setDocumentMode(True)

        bar = QHBoxLayout()
        bar.addWidget(self.relay_field, 2)
        bar.addWidget(self.token_field, 1)
        bar.addWidget(self.sign_in_button)
        bar.addWidget(self.sign_out_button)
        splitter = QSplitter()
        splitter.addWidget(self.side)
        splitter.addWidget(self.tabs)
        splitter.setStretchFactor(1, 4)
        layout = QVBoxLayout()
        layout.addLayout(bar)
        layout.addWidget(self.status_label)
        layout.addWidget(splitter, 1)
        central = QWidget()
        central.setLayout(layout)
        self.setCentralWidget(central)

        self.sign_in_button.clicked.connect(self._sign_in)
        self.token_field.returnPressed.connect(self._sign_in)
        self.sign_out_button.clicked.connect(self._sign_out)
        self.sessions_panel.start_requested.connect(self.start_session)
        self.sessions_panel.refresh_requested.connect(self.refresh_sessions)
        self.sessions_panel.session_chosen.connect(self.go_to_session)
        self.queue_panel.accept_requested.connect(self.take_request)
        self.devices_panel.connect_requested.connect(self.connect_device)
        self.tabs.tabCloseRequested.connect(self._close_tab)
        self._calls.signed_in.connect(self._signed_in)
        self._calls.refused.connect(self.show_status)
        # Keyboard: Ctrl+N starts a session, Ctrl+PgUp/PgDown move between tabs.
        QShortcut(QKeySequence("Ctrl+N"), self, self.sessions_panel.ticket_field.setFocus)
        QShortcut(QKeySequence("Ctrl+PgDown"), self, lambda: self._step_tab(1))
        QShortcut(QKeySequence("Ctrl+PgUp"), self, lambda: self._step_tab(-1))
        self.resize(1400, 900)

        if relay and token:
            self._sign_in()
        elif remember_sign_in:
            remembered = recall()
            if remembered is not None:
                self.relay_field.setText(remembered.relay)
                self.status_label.setText(tr("signin.checking"))
                self._remembered = True
                self._calls.check(remembered)

    # Public ----------------------------------------------------------------------------

    def show_status(self, text: str) -> None:
        self.status_label.setText(safe_text(text, 500))

    def session_tabs(self) -> list[SessionTab]:
        return [
            tab
            for i in range(self.tabs.count())
            if isinstance(tab := self.tabs.widget(i), SessionTab)
        ]

    def current_tab(self) -> SessionTab | None:
        tab = self.tabs.currentWidget()
        return tab if isinstance(tab, SessionTab) else None

    def start_session(self, ticket: str, ticket_url: str = "") -> SessionTab | None:
        """Open a tab with a new session for ``ticket`` (signed in only)."""
        return self._open_tab(Opening(ticket, ticket_url))

    def take_request(self, request_id: str, _title: str = "") -> SessionTab | None:
        """Open a tab that takes help request ``request_id`` (no code: the certificate)."""
        return self._open_tab(Opening(request_id=request_id))

    def connect_device(self, device_id: str, ticket: str) -> SessionTab | None:
        """Open a tab with an unattended session on enrolled ``device_id`` for ``ticket``."""
        return self._open_tab(Opening(ticket, device_id=device_id))

    def go_to_session(self, record: dict[str, Any]) -> None:
        """My sessions' row was chosen: show its tab, or say why it cannot be opened."""
        session_id = str(record.get("session_id", ""))
        for tab in self.session_tabs():
            if session_id and tab.worker.session_id == session_id:
                self.tabs.setCurrentWidget(tab)
                self.show_status(tr("sessions.open_here"))
                return
        ticket = safe_text(str(record.get("ticket_id", "")), 80)
        state = str(record.get("state", ""))
        if state in ("ended", "expired", "failed"):
            self.show_status(tr("sessions.cannot_open", ticket=ticket, state=state_text(state)))
        else:
            self.show_status(tr("sessions.elsewhere", ticket=ticket))

    def _open_tab(self, opening: Opening) -> SessionTab | None:
        if self.sign_in is None:
            self.show_status(tr("sessions.need_signin"))
            return None
        tab = SessionTab(
            self.sign_in,
            opening.ticket,
            self.technician_name,
            opening.ticket_url,
            self.knowledge,
            opening,
        )
        index = self.tabs.addTab(tab, tab.title)
        tab.title_changed.connect(lambda title, tab=tab: self._retitle(tab, title))
        # My sessions follows each session's state (waiting, paired, ended).
        tab.worker.code_ready.connect(lambda _code: self.refresh_sessions())
        tab.worker.paired.connect(lambda _sas: self.refresh_sessions())
        tab.worker.finished.connect(lambda _finished: self.refresh_sessions())
        if opening.request_id:  # the queue changed: the request is taken (or refused)
            tab.worker.paired.connect(lambda _sas: self.queue_panel.refresh())
            tab.worker.refused.connect(lambda _text: self.queue_panel.refresh())
        self.tabs.setCurrentIndex(index)
        return tab

    def refresh_sessions(self) -> None:
        if self.sign_in is None:
            self.show_status(tr("sessions.need_signin"))
            return
        self._calls.check(self.sign_in)

    # Slots -----------------------------------------------------------------------------

    def _sign_in(self) -> None:
        relay, token = self.relay_field.text().strip(), self.token_field.text().strip()
        if not relay or not token:
            self.show_status(tr("signin.missing"))
            return
        self._remembered = False
        self.show_status(tr("signin.checking"))
        self._calls.check(SignIn(relay, token))

    def _signed_in(self, sign_in: SignIn, sessions: list[dict[str, Any]]) -> None:
        first = self.sign_in != sign_in
        self.sign_in = sign_in
        self.token_field.clear()  # the token lives in the credential store, not on screen
        self.sessions_panel.show_sessions(sessions)
        if not first:
            return
        self.queue_panel.set_sign_in(sign_in)
        self.devices_panel.set_sign_in(sign_in)
        relay = safe_text(sign_in.relay, 200)
        if getattr(self, "_remembered", False):
            self.show_status(self._recall_identity(sign_in.relay))
            return
        if not self._remember_sign_in:
            self.show_status(tr("signin.done", relay=relay))
            return
        credentials = self.knowledge.credentials
        problem = remember(sign_in)
        if credentials is not None and problem is None:
            problem = remember_identity(sign_in.relay, credentials)
        if problem:
            self.show_status(problem)
        elif credentials is not None:
            self.show_status(tr("signin.identity_kept", relay=relay, **_who(credentials)))
        else:
            self.show_status(tr("signin.done", relay=relay))

    def _recall_identity(self, relay: str) -> str:
        """Take the certificate and key kept for ``relay`` (unless given at start);
        return the status sentence."""
        shown = safe_text(relay, 200)
        if self.knowledge.credentials is not None:
            return tr("signin.remembered", relay=shown)
        kept = recall_identity(relay)
        if isinstance(kept, str):
            return kept
        if kept is None:
            return tr("signin.remembered", relay=shown)
        self.knowledge = replace(self.knowledge, credentials=kept)
        return tr("signin.identity_remembered", relay=shown, **_who(kept))

    def _sign_out(self) -> None:
        forget()
        self.sign_in = None
        self.sessions_panel.show_sessions([])
        self.queue_panel.set_sign_in(None)
        self.devices_panel.set_sign_in(None)
        self.show_status(tr("signin.signed_out"))

    def _retitle(self, tab: SessionTab, title: str) -> None:
        index = self.tabs.indexOf(tab)
        if index >= 0:
            self.tabs.setTabText(index, title)

    def _step_tab(self, step: int) -> None:
        if self.tabs.count():
            self.tabs.setCurrentIndex((self.tabs.currentIndex() + step) % self.tabs.count())

    def _close_tab(self, index: int) -> None:
        tab = self.tabs.widget(index)
        if isinstance(tab, SessionTab) and not tab.ended and tab.worker.session is not None:
            self.show_status(tr("tab.close_first"))
            return
        self.tabs.removeTab(index)
        if isinstance(tab, SessionTab):
            tab.shutdown()
            tab.deleteLater()

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt API
        self.queue_panel.set_sign_in(None)
        self.devices_panel.set_sign_in(None)
        for tab in self.session_tabs():
            tab.shutdown()
        super().closeEvent(event)


def run(
    relay: str = "",
    token: str = "",
    ticket: str = "",
    name: str = "",
    knowledge: Knowledge | None = None,
) -> int:
    """Start the viewer (blocks until the window is closed); return the exit status."""
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([])
    window = ViewerWindow(
        relay or os.environ.get("PUENTE_RELAY", ""),
        token or os.environ.get("PUENTE_TOKEN", ""),
        ticket,
        name,
        knowledge=knowledge,
    )
    window.show()
    return int(app.exec())
