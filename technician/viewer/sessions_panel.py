"""My sessions: the technician's sessions from the relay's REST API, and starting one.

The list is what ``GET /api/sessions`` returns for the signed-in token (only the
technician's own sessions, newest first). Ticket ids and states come from the relay
and pass through ``safe_text``. Starting a session asks for a ticket (and optionally
the ticket's link); the window opens it in a new tab.
"""

from __future__ import annotations

import time
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from protocol.safe_text import safe_text

from .i18n import known, tr, tr_count
from .screen_view import plain_label


def state_text(state: str) -> str:
    """A session's state in the viewer's language (an unknown one as the relay said it)."""
    return known(f"sessions.state.{state}", state)


def session_row(record: dict[str, Any]) -> str:
    """One line of the list for a session record of the REST API."""
    created = record.get("created_at")
    when = (
        time.strftime("%Y-%m-%d %H:%M", time.localtime(float(created)))
        if isinstance(created, (int, float))
        else safe_text(str(created or ""), 40)
    )
    return tr(
        "sessions.row",
        ticket=safe_text(str(record.get("ticket_id", "")), 80),
        state=state_text(str(record.get("state", ""))),
        when=when,
    )


class SessionsPanel(QWidget):
    """The list, a Refresh button, the ticket fields and Start session."""

    start_requested = Signal(str, str)  # ticket, ticket link (may be "")
    refresh_requested = Signal()
    #: A session's record was clicked: the window shows its tab or says why it cannot.
    session_chosen = Signal(dict)

    def __init__(self) -> None:
        super().__init__()
        self.heading: QLabel = plain_label(tr("sessions.title"), bold=True)
        self.list = QListWidget()
        self.list.setAccessibleName(tr("sessions.title"))
        self.refresh_button = QPushButton(tr("sessions.refresh"))
        self.ticket_field = QLineEdit()
        self.ticket_field.setPlaceholderText(tr("sessions.ticket"))
        self.ticket_url_field = QLineEdit()
        self.ticket_url_field.setPlaceholderText("https://helpdesk.example.org/ticket/1042")
        self.start_button = QPushButton(tr("sessions.start"))
        self.count_label = plain_label("")
        top = QHBoxLayout()
        top.addWidget(self.heading, 1)
        top.addWidget(self.refresh_button)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.list, 1)
        layout.addWidget(self.count_label)
        layout.addWidget(self.ticket_field)
        layout.addWidget(self.ticket_url_field)
        layout.addWidget(self.start_button)
        self.records: list[dict[str, Any]] = []
        self.refresh_button.clicked.connect(self.refresh_requested.emit)
        self.start_button.clicked.connect(self._start)
        self.ticket_field.returnPressed.connect(self._start)
        self.list.itemClicked.connect(self._chosen)
        self.list.itemActivated.connect(self._chosen)

    def _start(self) -> None:
        ticket = self.ticket_field.text().strip()
        if not ticket:
            self.count_label.setText(tr("sessions.need_ticket"))
            self.ticket_field.setFocus()
            return
        self.start_requested.emit(ticket, self.ticket_url_field.text().strip())

    def _chosen(self, item: QListWidgetItem) -> None:
        row_index = self.list.row(item)
        if 0 <= row_index < len(self.records):
            self.session_chosen.emit(dict(self.records[row_index]))

    def show_sessions(self, records: list[dict[str, Any]]) -> None:
        self.records = list(records)
        self.list.clear()
        for record in self.records:
            self.list.addItem(session_row(record))
        self.count_label.setText(tr_count("sessions.count", len(self.records)))

    def rows(self) -> list[str]:
        return [self.list.item(i).text() for i in range(self.list.count())]
