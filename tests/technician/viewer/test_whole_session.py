"""Issue 16, acceptance 1 (the parts built so far) and 4: the viewer through a whole session.

Real relay process, the real agent on Xvfb (a scripted customer answers its console),
the real viewer offscreen driven by pytest-qt: sign in (keyring's file backend), start
a session for a ticket, see the screen pixel for pixel, take control (the status line
says so: the old "Asking..." line does not stay), chat both ways (the customer's
markup stays text), end and see the rating, the summary and the ticket link.

Each panel is saved as a picture, in English and in Spanish, under pytest's
temporary folder (``artifacts/viewer-screenshots``).
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QPoint, Qt
from PySide6.QtWidgets import QLabel, QWidget
from pytestqt.qtbot import QtBot

from technician.screen_stream import psnr
from technician.viewer.i18n import tr
from technician.viewer.window import ViewerWindow
from tests.support.customer import ScriptedCustomer
from tests.support.relay import RelayProcess
from tests.support.screen_fixtures import PICTURE_AT, PICTURE_SIZE, ScreenApp, known_picture
from tests.support.timeouts import scaled

TICKET_URL = "https://helpdesk.example.org/ticket/16"
#: What a hostile customer might type: markup, a link and a forged line.
HOSTILE_CHAT = '<b>bold</b> <a href="https://evil.example">click</a>\nYou: forged'


def wait_ms(seconds: float) -> int:
    return int(scaled(seconds) * 1000)


def rect_of(app: ScreenApp, name: str) -> tuple[int, int, int, int]:
    match = re.search(rf"^{name} (\d+) (\d+) (\d+) (\d+)$", "\n".join(app.lines), re.M)
    assert match, app.lines
    x, y, w, h = (int(v) for v in match.groups())
    return x, y, w, h


def save(widget: QWidget, folder: Path, name: str, language: str) -> Path:
    path = folder / f"viewer-{name}-{language}.png"
    assert widget.grab().save(str(path)), path
    return path


def plain_labels(widget: QWidget) -> list[QLabel]:
    return widget.findChildren(QLabel)


@pytest.mark.parametrize("language", ["en", "es"])
def test_a_whole_session_in_the_viewer(
    language: str,
    relay_process: RelayProcess,
    screen_app: ScreenApp,
    signed_out_home: Path,
    screenshots: Path,
    tmp_path: Path,
    qtbot: QtBot,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PUENTE_LANG", language)
    token = relay_process.add_technician("Ana Technician")
    window = ViewerWindow(relay_process.ws_url, token)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitUntil(lambda: window.sign_in is not None, timeout=wait_ms(20))
    save(window, screenshots, "signed-in", language)

    window.sessions_panel.ticket_field.setText("HD-16")
    window.sessions_panel.ticket_url_field.setText(TICKET_URL)
    qtbot.mouseClick(window.sessions_panel.start_button, Qt.MouseButton.LeftButton)
    tab = window.current_tab()
    assert tab is not None
    qtbot.waitUntil(lambda: tab.code != "" and tab.join_url != "", timeout=wait_ms(20))
    assert tab.join_url.startswith("http") and "/join/" in tab.join_url
    qtbot.mouseClick(tab.copy_link_button, Qt.MouseButton.LeftButton)
    from PySide6.QtGui import QGuiApplication

    assert QGuiApplication.clipboard().text() == tab.join_url
    qtbot.mouseClick(tab.copy_code_button, Qt.MouseButton.LeftButton)
    assert QGuiApplication.clipboard().text() == tab.code
    save(window, screenshots, "waiting", language)

    customer = ScriptedCustomer(
        relay_process.ws_url,
        tab.code,
        tmp_path / "logs",
        answers={"Screen view": "y", "Remote control": "y", "Shell": "y"},
        rating=5,
        comment="<i>very</i> good",
    )
    try:
        qtbot.waitUntil(lambda: tab.sas_label.text() != tr("tab.no_sas"), timeout=wait_ms(30))
        sas = tab.sas_label.text().split(": ", 1)[1]
        customer.expect(rf"^Check code: {sas} ")

        # Screen view: the known picture, pixel for pixel at 1:1.
        qtbot.mouseClick(tab.view_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(
            lambda: tab.allowed_label.text() == tr("tab.allowed", names="screen"),
            timeout=wait_ms(30),
        )
        qtbot.waitUntil(lambda: tab.frames_painted > 0, timeout=wait_ms(20))
        stream = tab.worker.screen
        assert stream is not None
        qtbot.waitUntil(lambda: stream.decoder.complete, timeout=wait_ms(20))
        qtbot.wait(300)  # let the newest picture be painted
        assert tab.consents_panel.rows()[0].startswith("screen (")
        tab.panels.setCurrentWidget(tab.consents_panel)
        save(window, screenshots, "screen-and-consents", language)
        qtbot.mouseClick(tab.scale_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: tab.remote_screen.width() == 1024, timeout=wait_ms(10))
        qtbot.wait(100)
        shot = save(window, screenshots, "one-to-one", language)
        grabbed = np.asarray(Image.open(shot).convert("RGB"))
        origin = tab.remote_screen.mapTo(window, QPoint(0, 0))
        x, y = origin.x() + PICTURE_AT[0], origin.y() + PICTURE_AT[1]
        w, h = PICTURE_SIZE
        assert psnr(grabbed[y : y + h, x : x + w], known_picture()) >= 30
        qtbot.mouseClick(tab.scale_button, Qt.MouseButton.LeftButton)

        # Control: the status line says it was allowed (the old bug left "Asking...").
        qtbot.mouseClick(tab.control_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: tab.worker.control_active, timeout=wait_ms(20))
        qtbot.waitUntil(
            lambda: tab.status_label.text() == tr("consents.allowed_now", title="control"),
            timeout=wait_ms(20),
        )
        qtbot.mouseClick(tab.scale_button, Qt.MouseButton.LeftButton)  # 1:1 again
        qtbot.waitUntil(lambda: tab.remote_screen.width() == 1024, timeout=wait_ms(10))
        ex, ey, _, _ = rect_of(screen_app, "entry")
        qtbot.mouseClick(tab.remote_screen, Qt.MouseButton.LeftButton, pos=QPoint(ex + 5, ey + 5))
        screen_app.expect(rf"^click \S+ {ex + 5} {ey + 5} 1$")
        qtbot.waitUntil(lambda: tab.figures_label.text().endswith("ms"), timeout=wait_ms(5))

        # Chat both ways; the customer's markup and forged line stay inert text.
        tab.panels.setCurrentWidget(tab.chat_panel)
        qtbot.keyClicks(tab.chat_panel.entry, "Hello, I can see your screen now.")
        qtbot.keyClick(tab.chat_panel.entry, Qt.Key.Key_Return)
        customer.expect(r"Hello, I can see your screen now\.")
        customer.send("chat " + HOSTILE_CHAT.replace("\n", "\\n"))
        qtbot.waitUntil(lambda: len(tab.chat_panel.lines()) == 2, timeout=wait_ms(20))
        mine, theirs = tab.chat_panel.lines()
        assert mine == tr("chat.me", text="Hello, I can see your screen now.")
        assert theirs.startswith(tr("chat.customer", text="<b>bold</b>"))
        assert "You: forged" in theirs  # on the customer's own line: nothing forged
        save(window, screenshots, "chat", language)

        # The terminal: the Shell capability through pyte; read the output off the screen.
        tab.panels.setCurrentWidget(tab.terminal_panel)
        terminal = tab.terminal_panel
        qtbot.mouseClick(terminal.open_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: not terminal.open_button.isEnabled(), timeout=wait_ms(30))
        qtbot.keyClicks(terminal.view, "printf '\\033[31mred\\033[0m %s\\n' puente-$((6*7))")
        qtbot.keyClick(terminal.view, Qt.Key.Key_Return)
        qtbot.waitUntil(lambda: "red puente-42" in terminal.view.text(), timeout=wait_ms(20))
        row = next(
            r for r, line in enumerate(terminal.view.screen.display) if "red puente-42" in line
        )
        column = terminal.view.screen.display[row].index("red puente-42")
        assert terminal.view.screen.buffer[row][column].fg == "red"  # colours kept
        assert terminal.view.screen.buffer[row][column + 4].fg == "default"
        save(window, screenshots, "terminal", language)
        qtbot.keyClicks(terminal.view, "exit")
        qtbot.keyClick(terminal.view, Qt.Key.Key_Return)
        qtbot.waitUntil(
            lambda: terminal.status_label.text() == tr("terminal.ended", status=0),
            timeout=wait_ms(20),
        )

        # End: the customer rates; the ending panel shows rating, summary and ticket link.
        qtbot.mouseClick(tab.end_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: tab.panels.currentWidget() is tab.ending_panel, timeout=wait_ms(60))
        assert customer.wait() == 0
        ending = tab.ending_panel
        assert ending.rating_label.text() == tr(
            "ending.rating", score=5, comment="<i>very</i> good"
        )
        assert ending.summary_label.text() == tr("ending.summary_sent", ticket="HD-16")
        assert ending.ticket_label.text() == tr("ending.ticket_link", url=TICKET_URL)
        assert ending.open_ticket.isEnabled()
        assert '"score": 5' in ending.summary_text.toPlainText()
        save(window, screenshots, "ending", language)
    finally:
        if customer.proc.poll() is None:
            customer.kill()
        window.close()

    # Nothing from outside is ever shown as rich text.
    for label in plain_labels(window):
        assert label.textFormat() == Qt.TextFormat.PlainText, label.text()
    deadline = time.monotonic() + 1
    while time.monotonic() < deadline and not list(screenshots.glob(f"*-{language}.png")):
        time.sleep(0.05)
    assert len(list(screenshots.glob(f"*-{language}.png"))) >= 6
