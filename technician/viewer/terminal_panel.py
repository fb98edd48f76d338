"""The terminal panel: the Shell capability in a real terminal emulation (pyte) drawn by Qt.

The agent's shell comes over SSH inside the session (the console's
:class:`technician.ssh_commands.SSHAccess`, shared, so the customer is asked and the
host key pinned exactly as for ``puente-tech session``'s ``shell``). Its bytes feed a
``pyte`` screen; :class:`TerminalView` paints the screen's cells with their colours
(the 16 ANSI names, 256-colour and true-colour hex) and turns key presses into the
bytes a terminal sends. Resizing the panel resizes the remote terminal.

Copy and paste: drag with the mouse to select (whole rows between the two ends, as a
terminal does), Ctrl+Shift+C copies the selection (the visible screen when nothing is
selected), Ctrl+Shift+V types the clipboard's text. Everything drawn is the emulator's cell content, painted as
characters: nothing in it is ever interpreted as markup.
"""

from __future__ import annotations

import pyte
from PySide6.QtCore import QPoint, QRect, QSize, Qt, Signal
from PySide6.QtGui import (
    QColor,
    QFont,
    QFontMetrics,
    QGuiApplication,
    QKeyEvent,
    QMouseEvent,
    QPainter,
    QPaintEvent,
    QResizeEvent,
)
from PySide6.QtWidgets import QHBoxLayout, QPushButton, QSizePolicy, QVBoxLayout, QWidget

from protocol.safe_text import safe_text

from .i18n import tr
from .screen_view import plain_label

#: pyte's colour names -> what the terminal paints.
ANSI = {
    "black": "#000000",
    "red": "#cd3131",
    "green": "#0dbc79",
    "brown": "#e5e510",
    "yellow": "#e5e510",
    "blue": "#2472c8",
    "magenta": "#bc3fbc",
    "cyan": "#11a8cd",
    "white": "#e5e5e5",
    "brightblack": "#666666",
    "brightred": "#f14c4c",
    "brightgreen": "#23d18b",
    "brightbrown": "#f5f543",
    "brightyellow": "#f5f543",
    "brightblue": "#3b8eea",
    "brightmagenta": "#d670d6",
    "brightcyan": "#29b8db",
    "brightwhite": "#ffffff",
}
FOREGROUND = QColor("#e5e5e5")
BACKGROUND = QColor("#1e1e1e")

#: Keys that are not text, as an xterm sends them.
KEY_BYTES: dict[int, bytes] = {
    Qt.Key.Key_Return: b"\r",
    Qt.Key.Key_Enter: b"\r",
    Qt.Key.Key_Backspace: b"\x7f",
    Qt.Key.Key_Tab: b"\t",
    Qt.Key.Key_Escape: b"\x1b",
    Qt.Key.Key_Up: b"\x1b[A",
    Qt.Key.Key_Down: b"\x1b[B",
    Qt.Key.Key_Right: b"\x1b[C",
    Qt.Key.Key_Left: b"\x1b[D",
    Qt.Key.Key_Home: b"\x1b[H",
    Qt.Key.Key_End: b"\x1b[F",
    Qt.Key.Key_Delete: b"\x1b[3~",
    Qt.Key.Key_PageUp: b"\x1b[5~",
    Qt.Key.Key_PageDown: b"\x1b[6~",
    Qt.Key.Key_Insert: b"\x1b[2~",
}


def colour(name: str, default: QColor) -> QColor:
    """A pyte colour (a name, or six hex digits for 256 and true colour) as a QColor."""
    if name == "default":
        return default
    if name in ANSI:
        return QColor(ANSI[name])
    if len(name) == 6:
        candidate = QColor("#" + name)
        if candidate.isValid():
            return candidate
    return default


def key_bytes(event: QKeyEvent) -> bytes:
    """What a terminal sends for this key press (b"" for none)."""
    modifiers = event.modifiers()
    control = bool(modifiers & Qt.KeyboardModifier.ControlModifier)
    key = event.key()
    if control and Qt.Key.Key_A <= key <= Qt.Key.Key_Z:
        return bytes([key - Qt.Key.Key_A + 1])  # Ctrl+C -> 0x03
    if key in KEY_BYTES:
        return KEY_BYTES[key]
    text = event.text()
    return text.encode("utf-8") if text else b""


class TerminalView(QWidget):
    """A pyte screen painted cell by cell; ``typed`` carries the bytes for the shell."""

    typed = Signal(bytes)
    resized = Signal(int, int)  # columns, lines

    def __init__(self, columns: int = 80, lines: int = 24) -> None:
        super().__init__()
        self.screen = pyte.Screen(columns, lines)
        self.stream = pyte.ByteStream(self.screen)
        font = QFont("DejaVu Sans Mono")
        font.setStyleHint(QFont.StyleHint.Monospace)
        font.setPointSize(10)
        self.setFont(font)
        metrics = QFontMetrics(font)
        self.cell = QSize(max(metrics.horizontalAdvance("M"), 1), max(metrics.height(), 1))
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(self.cell.width() * 20, self.cell.height() * 5)
        self.setAccessibleName(tr("terminal.title"))
        #: The selection's two ends, (column, row) cells, or None.
        self.anchor: tuple[int, int] | None = None
        self.caret: tuple[int, int] | None = None

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt API
        return QSize(self.cell.width() * 80, self.cell.height() * 24)

    def feed(self, data: bytes) -> None:
        """Output from the shell: into the emulator, then repaint."""
        self.stream.feed(data)
        self.update()

    def text(self) -> str:
        """The visible screen as text, one line per row (trailing blanks dropped)."""
        return "\n".join(line.rstrip() for line in self.screen.display)

    # Selection ------------------------------------------------------------------------

    def cell_at(self, point: QPoint) -> tuple[int, int]:
        column = min(max(point.x() // self.cell.width(), 0), self.screen.columns - 1)
        row = min(max(point.y() // self.cell.height(), 0), self.screen.lines - 1)
        return column, row

    def _ordered(self) -> tuple[tuple[int, int], tuple[int, int]] | None:
        if self.anchor is None or self.caret is None or self.anchor == self.caret:
            return None
        first, last = sorted([self.anchor, self.caret], key=lambda cell: (cell[1], cell[0]))
        return first, last

    def selected(self, column: int, row: int) -> bool:
        ends = self._ordered()
        if ends is None:
            return False
        (c0, r0), (c1, r1) = ends
        return (r0, c0) <= (row, column) <= (r1, c1)

    def selected_text(self) -> str:
        """The selected characters (rows joined by newlines), or "" without a selection."""
        ends = self._ordered()
        if ends is None:
            return ""
        (c0, r0), (c1, r1) = ends
        display = self.screen.display
        rows = []
        for row in range(r0, r1 + 1):
            start = c0 if row == r0 else 0
            end = c1 + 1 if row == r1 else self.screen.columns
            rows.append(display[row][start:end].rstrip())
        return "\n".join(rows)

    def copy(self) -> None:
        QGuiApplication.clipboard().setText(self.selected_text() or self.text())

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt API
        self.setFocus()
        if event.button() == Qt.MouseButton.LeftButton:
            self.anchor = self.caret = self.cell_at(event.position().toPoint())
            self.update()

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt API
        if self.anchor is not None and event.buttons() & Qt.MouseButton.LeftButton:
            self.caret = self.cell_at(event.position().toPoint())
            self.update()

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt API
        if self.anchor is not None and event.button() == Qt.MouseButton.LeftButton:
            self.caret = self.cell_at(event.position().toPoint())
            self.update()

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 - Qt API
        painter = QPainter(self)
        painter.fillRect(self.rect(), BACKGROUND)
        width, height = self.cell.width(), self.cell.height()
        ascent = QFontMetrics(self.font()).ascent()
        for row in range(self.screen.lines):
            line = self.screen.buffer[row]
            for column in range(self.screen.columns):
                char = line[column]
                fg = colour(char.fg, FOREGROUND)
                bg = colour(char.bg, BACKGROUND)
                if char.reverse != self.selected(column, row):
                    fg, bg = bg, fg
                cell = QRect(column * width, row * height, width, height)
                if bg != BACKGROUND or self.selected(column, row):
                    painter.fillRect(cell, bg)
                if char.data.strip():
                    painter.setPen(fg)
                    painter.drawText(cell.x(), cell.y() + ascent, char.data)
        if self.hasFocus() and not self.screen.cursor.hidden:
            cursor = self.screen.cursor
            painter.fillRect(
                QRect(cursor.x * width, cursor.y * height, width, height),
                QColor(200, 200, 200, 120),
            )

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 - Qt API
        columns = max(20, event.size().width() // self.cell.width())
        lines = max(5, event.size().height() // self.cell.height())
        if (columns, lines) != (self.screen.columns, self.screen.lines):
            self.screen.resize(lines, columns)
            self.resized.emit(columns, lines)
        super().resizeEvent(event)

    def focusNextPrevChild(self, next: bool) -> bool:  # noqa: N802 - Qt API
        return False  # Tab completes in the shell, it does not move the focus

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 - Qt API
        modifiers = event.modifiers()
        shifted_control = (
            modifiers & Qt.KeyboardModifier.ControlModifier
            and modifiers & Qt.KeyboardModifier.ShiftModifier
        )
        if shifted_control and event.key() == Qt.Key.Key_C:
            self.copy()
            return
        if shifted_control and event.key() == Qt.Key.Key_V:
            self.paste()
            return
        data = key_bytes(event)
        if data:
            self.typed.emit(data)

    def paste(self) -> None:
        text = QGuiApplication.clipboard().text()
        if text:
            self.typed.emit(text.replace("\n", "\r").encode("utf-8"))


class TerminalPanel(QWidget):
    """Open terminal / Copy / Paste, the terminal, and a status line."""

    open_requested = Signal(int, int)  # columns, lines

    def __init__(self) -> None:
        super().__init__()
        self.view = TerminalView()
        self.open_button = QPushButton(tr("terminal.open"))
        self.copy_button = QPushButton(tr("terminal.copy"))
        self.paste_button = QPushButton(tr("terminal.paste"))
        self.status_label = plain_label(tr("terminal.closed"))
        self.status_label.setWordWrap(True)
        row = QHBoxLayout()
        for button in (self.open_button, self.copy_button, self.paste_button):
            row.addWidget(button)
        row.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addLayout(row)
        layout.addWidget(self.view, 1)
        layout.addWidget(self.status_label)
        self.open_button.clicked.connect(self._open)
        self.copy_button.clicked.connect(self.view.copy)
        self.paste_button.clicked.connect(self.view.paste)

    def _open(self) -> None:
        self.status_label.setText(tr("terminal.asking"))
        self.open_requested.emit(self.view.screen.columns, self.view.screen.lines)

    def opened(self) -> None:
        self.status_label.setText(tr("terminal.open_now"))
        self.open_button.setEnabled(False)
        self.view.setFocus()

    def closed(self, why: str) -> None:
        self.status_label.setText(safe_text(why, 500) or tr("terminal.closed"))
        self.open_button.setEnabled(True)
