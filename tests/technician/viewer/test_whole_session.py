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

import hashlib
import os
import re
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent, QGuiApplication
from PySide6.QtWidgets import QLabel, QWidget
from pytestqt.qtbot import QtBot

from technician.screen_stream import psnr
from technician.viewer.i18n import tr, tr_count
from tests.support.customer import ScriptedCustomer
from tests.support.relay import RelayProcess
from tests.support.screen_fixtures import PICTURE_AT, PICTURE_SIZE, ScreenApp, known_picture
from tests.support.viewer import signed_in_window, wait_ms
from tests.support.xdisplay import x_clipboard

TICKET_URL = "https://helpdesk.example.org/ticket/16"
#: What a hostile customer might type: markup, a link and a forged line.
HOSTILE_CHAT = '<b>bold</b> <a href="https://evil.example">click</a>\nYou: forged'


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
    window = signed_in_window(qtbot, relay_process)
    save(window, screenshots, "signed-in", language)

    window.sessions_panel.ticket_field.setText("HD-16")
    window.sessions_panel.ticket_url_field.setText(TICKET_URL)
    qtbot.mouseClick(window.sessions_panel.start_button, Qt.MouseButton.LeftButton)
    tab = window.current_tab()
    assert tab is not None
    qtbot.waitUntil(lambda: tab.code != "" and tab.join_url != "", timeout=wait_ms(20))
    assert tab.join_url.startswith("http") and "/join/" in tab.join_url
    qtbot.mouseClick(tab.copy_link_button, Qt.MouseButton.LeftButton)

    assert QGuiApplication.clipboard().text() == tab.join_url
    qtbot.mouseClick(tab.copy_code_button, Qt.MouseButton.LeftButton)
    assert QGuiApplication.clipboard().text() == tab.code
    save(window, screenshots, "waiting", language)

    shared = tmp_path / "shared"
    shared.mkdir()
    hostile_name = "report <b>bold\x1b[2J.txt"
    (shared / hostile_name).write_bytes(os.urandom(3_000_000))
    with open(shared / "disk.img", "wb") as big:  # 4 GB, sparse: only its size is real
        big.truncate(4 * 1024**3)
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    customer = ScriptedCustomer(
        relay_process.ws_url,
        tab.code,
        tmp_path / "logs",
        answers={
            "Screen view": "y",
            "Remote control": "y",
            "Shell": "y",
            "Files": "y",
            "Clipboard": "y",
        },
        choices={"Which folder": str(shared)},
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

        # Monitors listed from the agent (Xvfb: one, plus "all"); special keys typed.
        tools = tab.tools
        assert tools.monitors.count() >= 1 and tools.monitors.currentData() == 1
        tools.key_actions["Alt+Tab"].trigger()
        screen_app.expect(r"^key \S+ Alt_L ", timeout=10)
        assert tab.status_label.text() == tr("tools.keys_sent", keys="alt+tab")

        # All monitors instead of the first: the agent streams monitor 0 and says so;
        # a lower frame rate and quality are asked for the same way.
        everything = tools.monitors.findData(0)
        assert everything >= 0
        tools.monitors.setCurrentIndex(everything)
        tools.monitors.activated.emit(everything)
        qtbot.waitUntil(lambda: stream.decoder.info.selected == 0, timeout=wait_ms(20))
        qtbot.waitUntil(lambda: tab.worker.control.monitor == 0, timeout=wait_ms(20))
        tools.fps.setCurrentIndex(tools.fps.findData(5))
        tools.fps.activated.emit(tools.fps.currentIndex())

        # Clipboard both ways, on command only (the customer allows Clipboard).
        clipboard = QGuiApplication.clipboard()
        x_clipboard(os.environ["DISPLAY"], "their <i>text</i>")
        qtbot.mouseClick(tools.get_clipboard_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: clipboard.text() == "their <i>text</i>", timeout=wait_ms(30))
        assert tools.clipboard_label.text() == tr_count(
            "tools.clipboard_got", 17, preview="their <i>text</i>"
        )
        clipboard.setText("my text for you")
        qtbot.mouseClick(tools.send_clipboard_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(
            lambda: tools.clipboard_label.text() == tr_count("tools.clipboard_sent", 15),
            timeout=wait_ms(30),
        )
        assert x_clipboard(os.environ["DISPLAY"]) == "my text for you"

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
        # Copy: drag over the output with the mouse, then Copy; paste: the clipboard is typed.
        view = terminal.view
        start = QPoint(column * view.cell.width() + 1, row * view.cell.height() + 1)
        end = QPoint((column + 12) * view.cell.width() + 1, row * view.cell.height() + 1)
        qtbot.mousePress(view, Qt.MouseButton.LeftButton, pos=start)
        qtbot.mouseMove(view, end)
        qtbot.mouseRelease(view, Qt.MouseButton.LeftButton, pos=end)
        qtbot.mouseClick(terminal.copy_button, Qt.MouseButton.LeftButton)
        assert QGuiApplication.clipboard().text() == "red puente-42"
        QGuiApplication.clipboard().setText("echo pasted-$((2+3))\n")
        qtbot.mouseClick(terminal.paste_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: "pasted-5" in terminal.view.text(), timeout=wait_ms(20))
        save(window, screenshots, "terminal", language)
        qtbot.keyClicks(terminal.view, "exit")
        qtbot.keyClick(terminal.view, Qt.Key.Key_Return)
        qtbot.waitUntil(
            lambda: terminal.status_label.text() == tr("terminal.ended", status=0),
            timeout=wait_ms(20),
        )

        # Files: the customer's shared folder listed (names inert), one file downloaded,
        # one uploaded through the drop handler; SHA-256 shown and matching both sides.
        tab.panels.setCurrentWidget(tab.files_panel)
        files = tab.files_panel
        files.folder_field.setText(str(downloads))
        qtbot.mouseClick(files.refresh_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: len(files.names()) == 2, timeout=wait_ms(30))
        assert files.names() == ["disk.img", hostile_name]
        shown = files.remote_list.item(1).text()
        assert "\x1b" not in shown and "\\x1b" in shown and "<b>bold" in shown
        files.remote_list.setCurrentRow(1)
        qtbot.mouseClick(files.download_button, Qt.MouseButton.LeftButton)
        down_id = max(files.rows)
        qtbot.waitUntil(lambda: files.rows[down_id].status != "", timeout=wait_ms(30))
        row = files.rows[down_id]
        assert row.status == "ok", row.result_label.text()
        (downloaded,) = downloads.iterdir()  # one file, named safely
        assert "\x1b" not in downloaded.name and "/" not in downloaded.name
        expected = hashlib.sha256((shared / hostile_name).read_bytes()).hexdigest()
        assert row.sha256 == expected == hashlib.sha256(downloaded.read_bytes()).hexdigest()
        assert row.sha256_field.text() == expected and row.bar.value() == 1000
        assert row.result_label.text() == tr("files.verified")

        upload = tmp_path / "fix-notes.txt"
        upload.write_bytes(os.urandom(1_500_000))
        mime = QMimeData()
        mime.setUrls([QUrl.fromLocalFile(str(upload))])
        drop = QDropEvent(
            QPointF(10, 10),
            Qt.DropAction.CopyAction,
            mime,
            Qt.MouseButton.LeftButton,
            Qt.KeyboardModifier.NoModifier,
        )
        files.dropEvent(drop)
        up_id = max(files.rows)
        qtbot.waitUntil(lambda: files.rows[up_id].status != "", timeout=wait_ms(30))
        assert files.rows[up_id].status == "ok", files.rows[up_id].result_label.text()
        sent = hashlib.sha256(upload.read_bytes()).hexdigest()
        assert files.rows[up_id].sha256 == sent
        assert hashlib.sha256((shared / "fix-notes.txt").read_bytes()).hexdigest() == sent
        # A 4 GB download shows its progress and is cancelled: the part is kept, and said.
        big_id = files.download("disk.img")
        qtbot.waitUntil(lambda: files.rows[big_id].bar.value() > 0, timeout=wait_ms(30))
        qtbot.mouseClick(files.rows[big_id].cancel_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: files.rows[big_id].status == "cancelled", timeout=wait_ms(20))
        part = downloads / "disk.img.puente-part"
        assert files.rows[big_id].result_label.text() == tr(
            "files.cancelled_download", part=str(part)
        )
        assert part.exists() and not (downloads / "disk.img").exists()
        save(window, screenshots, "files", language)

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
