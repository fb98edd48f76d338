"""The ending panel: the customer's rating and comment, the summary sent, the ticket link.

The comment and the ticket link come from outside (the customer; the ticket system
through the relay): both pass through ``safe_text`` and are shown as plain text. The
ticket link is only ever an http(s) address (the relay refuses anything else) and is
opened by an explicit button, never by clicking rich text.
"""

from __future__ import annotations

import json
from typing import Any

from PySide6.QtCore import QUrl
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import QLabel, QPlainTextEdit, QPushButton, QVBoxLayout, QWidget

from protocol.safe_text import safe_text

from .i18n import tr
from .screen_view import plain_label


class EndingPanel(QWidget):
    def __init__(self) -> None:
        super().__init__()
        self.rating_label: QLabel = plain_label(tr("ending.waiting"))
        self.rating_label.setWordWrap(True)
        self.summary_label = plain_label("")
        self.summary_label.setWordWrap(True)
        self.summary_text = QPlainTextEdit()
        self.summary_text.setReadOnly(True)
        self.ticket_label = plain_label("")
        self.ticket_label.setWordWrap(True)
        self.open_ticket = QPushButton("↗")
        self.open_ticket.setEnabled(False)
        layout = QVBoxLayout(self)
        for widget in (self.rating_label, self.summary_label, self.ticket_label, self.open_ticket):
            layout.addWidget(widget)
        layout.addWidget(self.summary_text, 1)
        self._ticket_url = ""
        self.open_ticket.clicked.connect(self._open)

    def show_finished(self, finished: dict[str, Any]) -> None:
        score = int(finished.get("rating") or 0)
        if score:
            comment = safe_text(str(finished.get("comment") or ""), 500) or "-"
            self.rating_label.setText(tr("ending.rating", score=score, comment=comment))
        else:
            self.rating_label.setText(tr("ending.no_rating"))
        problem = str(finished.get("summary_problem") or "")
        ticket = safe_text(str(finished.get("ticket") or ""), 120)
        self.summary_label.setText(
            tr("ending.summary_failed", problem=safe_text(problem, 500))
            if problem
            else tr("ending.summary_sent", ticket=ticket)
        )
        # build_summary already passed every outside text through safe_text; shown plain.
        summary = finished.get("summary") or {}
        self.summary_text.setPlainText(json.dumps(summary, indent=2, ensure_ascii=False))
        url = str(finished.get("ticket_url") or "")
        self._ticket_url = url if url.startswith(("https://", "http://")) else ""
        self.ticket_label.setText(
            tr("ending.ticket_link", url=safe_text(self._ticket_url, 500))
            if self._ticket_url
            else tr("ending.no_ticket_link")
        )
        self.open_ticket.setEnabled(bool(self._ticket_url))
        self.open_ticket.setText(self._ticket_url and tr("ending.ticket_link", url="↗") or "↗")

    def _open(self) -> None:
        if self._ticket_url:
            QDesktopServices.openUrl(QUrl(self._ticket_url))
