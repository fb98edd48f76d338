"""The remote screen widget: paints the customer's picture and turns input into events.

Input is forwarded only while the customer allows control (the agent enforces it
too). :func:`plain_label` is the one way the viewer makes a label: plain text only,
so nothing from the customer's machine is ever interpreted as markup.
"""

from __future__ import annotations

from PySide6.QtCore import QPoint, QRect, QSize, Qt
from PySide6.QtGui import (
    QFont,
    QImage,
    QKeyEvent,
    QMouseEvent,
    QPainter,
    QPaintEvent,
    QWheelEvent,
)
from PySide6.QtWidgets import QLabel, QSizePolicy, QWidget

from protocol import input as input_protocol

from .i18n import tr
from .worker import SessionWorker

#: Qt keys that are not text, by the wire's key names.
QT_KEYS: dict[int, str] = {
    Qt.Key.Key_Return: "enter",
    Qt.Key.Key_Enter: "enter",
    Qt.Key.Key_Escape: "esc",
    Qt.Key.Key_Tab: "tab",
    Qt.Key.Key_Backtab: "tab",
    Qt.Key.Key_Backspace: "backspace",
    Qt.Key.Key_Delete: "delete",
    Qt.Key.Key_Insert: "insert",
    Qt.Key.Key_Home: "home",
    Qt.Key.Key_End: "end",
    Qt.Key.Key_PageUp: "page_up",
    Qt.Key.Key_PageDown: "page_down",
    Qt.Key.Key_Left: "left",
    Qt.Key.Key_Right: "right",
    Qt.Key.Key_Up: "up",
    Qt.Key.Key_Down: "down",
    Qt.Key.Key_Shift: "shift",
    Qt.Key.Key_Control: "ctrl",
    Qt.Key.Key_Alt: "alt",
    Qt.Key.Key_AltGr: "alt_gr",
    Qt.Key.Key_Meta: "cmd",
    Qt.Key.Key_Super_L: "cmd",
    Qt.Key.Key_Menu: "menu",
    Qt.Key.Key_CapsLock: "caps_lock",
    Qt.Key.Key_Space: "space",
    **{getattr(Qt.Key, f"Key_F{n}"): f"f{n}" for n in range(1, 21)},
}
QT_BUTTONS = {
    Qt.MouseButton.LeftButton: input_protocol.Button.LEFT,
    Qt.MouseButton.RightButton: input_protocol.Button.RIGHT,
    Qt.MouseButton.MiddleButton: input_protocol.Button.MIDDLE,
}


def plain_label(text: str = "", size: int = 0, bold: bool = False) -> QLabel:
    """A label that never interprets its text (agent-supplied text stays inert)."""
    label = QLabel()
    label.setTextFormat(Qt.TextFormat.PlainText)
    label.setText(text)
    if size or bold:
        font = QFont(label.font())
        if size:
            font.setPointSize(size)
        font.setBold(bold)
        label.setFont(font)
    return label


class RemoteScreen(QWidget):
    """Paints the remote picture (fit to the widget, or 1:1) and turns input into events."""

    def __init__(self, worker: SessionWorker) -> None:
        super().__init__()
        self.worker = worker
        self.picture: QImage | None = None
        self.fit = True
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setMouseTracking(True)
        self.setMinimumSize(320, 200)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    # Geometry --------------------------------------------------------------------------

    def target(self) -> QRect:
        """Where the picture is drawn inside this widget."""
        if self.picture is None:
            return QRect()
        size = self.picture.size()
        if self.fit:
            size = size.scaled(self.size(), Qt.AspectRatioMode.KeepAspectRatio)
        x = max(0, (self.width() - size.width()) // 2) if self.fit else 0
        y = max(0, (self.height() - size.height()) // 2) if self.fit else 0
        return QRect(QPoint(x, y), size)

    def to_remote(self, point: QPoint) -> tuple[int, int] | None:
        """Widget coordinates -> remote pixels, or None outside the picture."""
        if self.picture is None:
            return None
        target = self.target()
        if not target.contains(point) or target.width() == 0 or target.height() == 0:
            return None
        x = (point.x() - target.x()) * self.picture.width() // target.width()
        y = (point.y() - target.y()) * self.picture.height() // target.height()
        return x, y

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt API
        if self.picture is not None and not self.fit:
            return self.picture.size()
        return QSize(960, 600)

    def set_picture(
        self, picture: QImage, damage: list[tuple[int, int, int, int]] | None = None
    ) -> None:
        """Show a new picture; repaint only the ``damage`` rectangles when given."""
        resized = self.picture is None or self.picture.size() != picture.size()
        self.picture = picture
        if resized and not self.fit:
            self.setFixedSize(picture.size())
        if resized or not damage or len(damage) > 64:
            self.update()
            return
        target = self.target()
        scale_x = target.width() / max(picture.width(), 1)
        scale_y = target.height() / max(picture.height(), 1)
        for x, y, w, h in damage:
            self.update(
                QRect(
                    target.x() + int(x * scale_x) - 1,
                    target.y() + int(y * scale_y) - 1,
                    int(w * scale_x) + 3,
                    int(h * scale_y) + 3,
                )
            )

    def set_fit(self, fit: bool) -> None:
        self.fit = fit
        if fit:
            self.setMinimumSize(320, 200)
            self.setMaximumSize(16777215, 16777215)
        elif self.picture is not None:
            self.setFixedSize(self.picture.size())
        self.updateGeometry()
        self.update()

    # Painting --------------------------------------------------------------------------

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 - Qt API
        painter = QPainter(self)
        painter.fillRect(self.rect(), Qt.GlobalColor.darkGray)
        if self.picture is None:
            painter.setPen(Qt.GlobalColor.white)
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, tr("tab.screen_here"))
            return
        target = self.target()
        # The worker writes the next frame's rectangles into this same picture.
        with self.worker.picture_lock:
            if target.size() == self.picture.size():
                # 1:1: copy only what needs repainting.
                area = event.rect().intersected(target)
                painter.drawImage(area, self.picture, area.translated(-target.topLeft()))
            else:
                painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
                painter.drawImage(target, self.picture)
        cursor = self.worker.cursor
        if cursor.visible and cursor.image is not None:
            scale_x = target.width() / max(self.picture.width(), 1)
            scale_y = target.height() / max(self.picture.height(), 1)
            height, width = cursor.image.shape[:2]
            image = QImage(
                cursor.image.tobytes(), width, height, 4 * width, QImage.Format.Format_RGBA8888
            )
            at = QPoint(target.x() + int(cursor.x * scale_x), target.y() + int(cursor.y * scale_y))
            painter.drawImage(QRect(at, QSize(int(width * scale_x), int(height * scale_y))), image)

    # Input (forwarded only while the customer allows control) --------------------------

    def _send(self, events: list[input_protocol.InputEvent]) -> None:
        if self.worker.control_active:
            self.worker.send_input(events)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt API
        point = self.to_remote(event.position().toPoint())
        if point is not None:
            self._send([input_protocol.Move(*point)])

    def _button(self, event: QMouseEvent, down: bool) -> None:
        point = self.to_remote(event.position().toPoint())
        button = QT_BUTTONS.get(event.button())
        if point is not None and button is not None:
            self._send([input_protocol.ButtonEvent(point[0], point[1], button, down)])

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt API
        self.setFocus()
        self._button(event, True)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt API
        self._button(event, False)

    def wheelEvent(self, event: QWheelEvent) -> None:  # noqa: N802 - Qt API
        point = self.to_remote(event.position().toPoint())
        steps = event.angleDelta().y() // 120
        if point is not None and steps:
            self._send([input_protocol.Wheel(point[0], point[1], 0, -steps)])

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 - Qt API
        self._key(event, True)

    def keyReleaseEvent(self, event: QKeyEvent) -> None:  # noqa: N802 - Qt API
        self._key(event, False)

    def focusNextPrevChild(self, next: bool) -> bool:  # noqa: N802 - Qt API
        return False  # Tab goes to the customer's computer, not to the next button

    def _key(self, event: QKeyEvent, down: bool) -> None:
        if event.isAutoRepeat() and not down:
            return
        name = QT_KEYS.get(event.key())
        text = event.text()
        modifiers = event.modifiers() & (
            Qt.KeyboardModifier.ControlModifier
            | Qt.KeyboardModifier.AltModifier
            | Qt.KeyboardModifier.MetaModifier
        )
        if name is None and text and text.isprintable() and not modifiers:
            # Printable text travels as characters: right whatever the layouts are.
            if down:
                self._send([input_protocol.Text(text)])
            return
        if name is None and 0x20 < event.key() < 0x7F:
            name = chr(event.key()).lower()  # a shortcut such as ctrl+c
        if name is not None:
            self._send([input_protocol.Key(name, down)])
