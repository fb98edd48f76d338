"""The screen tools bar: monitors, quality and frame rate, special keys, the clipboard.

* **Monitors**: the agent's list (0 = all of them) from the stream's ``Info``;
  choosing one asks the agent to stream it (``Settings``).
* **Quality and frame rate**: "automatic" (0) or a fixed value, sent as ``Settings``.
* **Special keys**: a menu of combinations the technician's own computer would keep
  for itself (Ctrl+Alt+Del, the Super/Windows key, Alt+Tab, Alt+F4...), sent as key
  events while control is allowed. Windows only accepts Ctrl+Alt+Del from a system
  service, so there it reaches the programs but does not open the secure screen; the
  menu says so.
* **Clipboard**: on the technician's command only, "Get their clipboard" reads the
  customer's (Clipboard capability, asked first) into this computer's clipboard, and
  "Send my clipboard" puts this computer's text on theirs. A preview of what came is
  shown through ``safe_text``, as plain text.
"""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtGui import QAction, QGuiApplication
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QMenu,
    QPushButton,
    QToolButton,
    QWidget,
)

from protocol.safe_text import safe_text

from .i18n import tr, tr_count
from .screen_view import plain_label

#: Menu entries: (label, the wire's key names pressed in order, released in reverse).
COMBINATIONS: list[tuple[str, tuple[str, ...]]] = [
    ("Ctrl+Alt+Del", ("ctrl", "alt", "delete")),
    ("Super", ("cmd",)),
    ("Alt+Tab", ("alt", "tab")),
    ("Alt+F4", ("alt", "f4")),
    ("Ctrl+Esc", ("ctrl", "esc")),
    ("Ctrl+Shift+Esc", ("ctrl", "shift", "esc")),
    ("Print Screen", ("print_screen",)),
    ("Super+L", ("cmd", "l")),
]
FRAME_RATES = (0, 5, 15, 30, 60)
QUALITIES = (0, 30, 60, 90)


class ScreenTools(QWidget):
    monitor_chosen = Signal(int)
    settings_chosen = Signal(int, int)  # max fps, quality (0: automatic)
    keys_requested = Signal(list)  # key names, pressed in order
    clipboard_get = Signal()
    clipboard_send = Signal(str)

    def __init__(self) -> None:
        super().__init__()
        self.monitors = QComboBox()
        self.monitors.setAccessibleName(tr("tools.monitor"))
        self.monitors.setEnabled(False)
        self.fps = QComboBox()
        self.fps.setAccessibleName(tr("tools.fps"))
        for value in FRAME_RATES:
            self.fps.addItem(
                tr("tools.auto") if value == 0 else tr("tools.fps_value", fps=value), value
            )
        self.quality = QComboBox()
        self.quality.setAccessibleName(tr("tools.quality"))
        for value in QUALITIES:
            self.quality.addItem(
                tr("tools.auto") if value == 0 else tr("tools.quality_value", quality=value), value
            )
        self.keys_button = QToolButton()
        self.keys_button.setText(tr("tools.keys"))
        self.keys_button.setToolTip(tr("tools.keys_help"))
        self.keys_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        menu = QMenu(self.keys_button)
        self.key_actions: dict[str, QAction] = {}
        for label, keys in COMBINATIONS:
            action = menu.addAction(label)
            action.triggered.connect(
                lambda _checked=False, keys=keys: self.keys_requested.emit(list(keys))
            )
            self.key_actions[label] = action
        self.keys_button.setMenu(menu)
        self.get_clipboard_button = QPushButton(tr("tools.get_clipboard"))
        self.send_clipboard_button = QPushButton(tr("tools.send_clipboard"))
        self.clipboard_label: QLabel = plain_label("")
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        for text, widget in (
            (tr("tools.monitor"), self.monitors),
            (tr("tools.fps"), self.fps),
            (tr("tools.quality"), self.quality),
        ):
            row.addWidget(plain_label(text))
            row.addWidget(widget)
        row.addWidget(self.keys_button)
        row.addWidget(self.get_clipboard_button)
        row.addWidget(self.send_clipboard_button)
        row.addWidget(self.clipboard_label, 1)
        self.monitors.activated.connect(
            lambda index: self.monitor_chosen.emit(int(self.monitors.itemData(index)))
        )
        self.fps.activated.connect(lambda _index: self._settings())
        self.quality.activated.connect(lambda _index: self._settings())
        self.get_clipboard_button.clicked.connect(self.clipboard_get.emit)
        self.send_clipboard_button.clicked.connect(self._send_clipboard)

    def _settings(self) -> None:
        self.settings_chosen.emit(int(self.fps.currentData()), int(self.quality.currentData()))

    def _send_clipboard(self) -> None:
        text = QGuiApplication.clipboard().text()
        if not text:
            self.clipboard_label.setText(tr("tools.clipboard_empty"))
            return
        self.clipboard_label.setText(tr("tools.clipboard_sending"))
        self.clipboard_send.emit(text)

    def show_monitors(self, monitors: list[tuple[int, int, int]], selected: int) -> None:
        """``monitors``: (index, width, height); index 0 is all of them together."""
        self.monitors.clear()
        for index, width, height in monitors:
            label = (
                tr("tools.all_monitors", width=width, height=height)
                if index == 0
                else tr("tools.monitor_value", index=index, width=width, height=height)
            )
            self.monitors.addItem(label, index)
            if index == selected:
                self.monitors.setCurrentIndex(self.monitors.count() - 1)
        self.monitors.setEnabled(self.monitors.count() > 1)

    def clipboard_arrived(self, text: str) -> None:
        QGuiApplication.clipboard().setText(text)
        preview = safe_text(text, 60)
        self.clipboard_label.setText(tr_count("tools.clipboard_got", len(text), preview=preview))

    def clipboard_result(self, text: str) -> None:
        self.clipboard_label.setText(safe_text(text, 300))
