"""The chat panel: messages both ways.

Framing rules (the trusted-path work): everything the customer sends passes through
``safe_text`` (control characters, bidirectional overrides and over-long text are
neutralised) and is shown as plain text in a read-only ``QPlainTextEdit``, which never
interprets markup; each line is prefixed with who said it, so a customer cannot
forge a "You:" line (a newline in their text becomes a visible escape).
"""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from protocol.safe_text import safe_text

from .i18n import tr

#: The longest chat line the viewer sends (the customer's side shows the same limit).
MAX_CHAT = 2000


class ChatPanel(QWidget):
    """The conversation and a line to type in; ``send_requested`` carries typed text."""

    send_requested = Signal(str)

    def __init__(self) -> None:
        super().__init__()
        self.transcript = QPlainTextEdit()
        self.transcript.setReadOnly(True)
        self.transcript.setAccessibleName(tr("panel.chat"))
        self.entry = QLineEdit()
        self.entry.setPlaceholderText(tr("chat.placeholder"))
        self.entry.setMaxLength(MAX_CHAT)
        self.send_button = QPushButton(tr("chat.send"))
        row = QHBoxLayout()
        row.addWidget(self.entry, 1)
        row.addWidget(self.send_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.transcript, 1)
        layout.addLayout(row)
        self.entry.returnPressed.connect(self._send)
        self.send_button.clicked.connect(self._send)

    def _send(self) -> None:
        text = self.entry.text().strip()
        if text:
            self.entry.clear()
            self.send_requested.emit(text)

    def add_mine(self, text: str) -> None:
        self.transcript.appendPlainText(tr("chat.me", text=safe_text(text, MAX_CHAT)))

    def add_customer(self, text: str) -> None:
        self.transcript.appendPlainText(tr("chat.customer", text=safe_text(text, MAX_CHAT)))

    def lines(self) -> list[str]:
        return self.transcript.toPlainText().splitlines()
