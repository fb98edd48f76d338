"""The viewer's leftovers of issue 16: a click on My sessions goes to the session's tab
or says why it cannot; counts follow the plural rules (English and Spanish); the file
transfer rows fit the panel at the default width (no sideways scroll bar).

A real relay process and the real viewer offscreen (no agent is needed: the sessions
are waiting for their customers, or ended at the relay).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from technician.client import RelayAPI
from technician.viewer.files_panel import FilesPanel
from technician.viewer.i18n import relay_sentence, result_sentence, tr, tr_count
from technician.viewer.sessions_panel import SessionsPanel
from technician.viewer.window import ViewerWindow
from tests.support.relay import RelayProcess
from tests.support.viewer import open_tab, signed_in_window, wait_ms


def click_row(panel: SessionsPanel, ticket: str, qtbot: QtBot) -> None:
    [index] = [i for i, record in enumerate(panel.records) if record["ticket_id"] == ticket]
    item = panel.list.item(index)
    rect = panel.list.visualItemRect(item)
    qtbot.mouseClick(panel.list.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())


def refreshed(window: ViewerWindow, qtbot: QtBot, count: int) -> None:
    window.refresh_sessions()
    qtbot.waitUntil(lambda: len(window.sessions_panel.records) == count, timeout=wait_ms(20))


def test_a_click_on_my_sessions_goes_to_its_tab_or_says_why_not(
    relay_process: RelayProcess,
    signed_out_home: Path,
    qtbot: QtBot,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PUENTE_LANG", "en")
    window = signed_in_window(qtbot, relay_process)
    try:
        first = open_tab(window, "HD-31", qtbot)
        second = open_tab(window, "HD-32", qtbot)
        refreshed(window, qtbot, 2)
        panel = window.sessions_panel
        assert panel.count_label.text() == "2 sessions."
        assert window.current_tab() is second
        click_row(panel, "HD-31", qtbot)
        assert window.current_tab() is first
        assert window.status_label.text() == tr("sessions.open_here")

        # A session this window did not open (another program's): said plainly.
        api = RelayAPI(relay_process.ws_url, window.sign_in.token if window.sign_in else "")
        elsewhere = api.create_session("HD-33")
        refreshed(window, qtbot, 3)
        click_row(panel, "HD-33", qtbot)
        assert window.status_label.text() == tr("sessions.elsewhere", ticket="HD-33")
        # Ended at the relay: it cannot be opened again, and the sentence says what to do.
        api.end_session(elsewhere["session_id"])
        refreshed(window, qtbot, 3)
        qtbot.waitUntil(
            lambda: any(r.get("state") == "ended" for r in panel.records), timeout=wait_ms(20)
        )
        click_row(panel, "HD-33", qtbot)
        assert window.status_label.text() == tr(
            "sessions.cannot_open", ticket="HD-33", state=tr("sessions.state.ended")
        )
        assert "HD-33 · ended · " in "\n".join(panel.rows())
    finally:
        window.close()


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        ("en", ["0 sessions.", "1 session.", "2 sessions."]),
        ("es", ["0 sesiones.", "1 sesión.", "2 sesiones."]),
    ],
)
def test_counts_follow_the_plural_rules(
    language: str, expected: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PUENTE_LANG", language)
    assert [tr_count("sessions.count", n) for n in (0, 1, 2)] == expected


def test_the_relays_refusals_are_said_in_spanish(monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncssh

    from link.errors import RelayUnavailable
    from protocol.messages import ReplyStatus
    from technician.console import reply_result
    from technician.errors import RelayApiError
    from technician.ssh_commands import _sftp_failure

    monkeypatch.setenv("PUENTE_LANG", "es")
    taken = RelayApiError(409, "taken", "Another technician took this request a moment ago.")
    assert relay_sentence(taken) == "Otro técnico tomó esta solicitud hace un momento; elija otra."
    assert relay_sentence(RelayUnavailable("Could not reach the relay")).startswith(
        "No se pudo contactar con el relé"
    )
    assert result_sentence("the customer stopped files") == "el cliente detuvo files"
    declined = reply_result("fix", ReplyStatus.DECLINED, "")
    assert declined is not None
    assert result_sentence(declined.message) == "el cliente rechazó fix"
    # The console's own sentence (its shape is what the viewer recognises).
    missing = _sftp_failure("a.txt", asyncssh.SFTPNoSuchFile("gone")).message
    assert result_sentence(missing).startswith("a.txt: no existe ese archivo")
    unknown = RelayApiError(400, "new_code", "Something new.")
    assert relay_sentence(unknown) == "El relé lo rechazó: Something new."


@pytest.mark.parametrize("language", ["en", "es"])
def test_transfer_rows_fit_the_files_panel_at_the_default_width(
    language: str, qtbot: QtBot, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PUENTE_LANG", language)
    window = ViewerWindow(remember_sign_in=False)  # the default size; no relay needed
    qtbot.addWidget(window)
    panel = FilesPanel(tmp_path)
    panel.setMinimumWidth(340)  # what a session tab's side panels get at least
    panel.resize(340, 600)
    qtbot.addWidget(panel)
    panel.show()
    name = "a-very-long-file-name-without-any-space-" * 3 + ".tar.gz"
    panel.show_listing([(name, 123_456_789), ("a.txt", 3)])
    first = panel.download(name)
    panel.finish(first, "ok", "", "ab" * 32)
    second = panel.download("report.txt")
    panel.finish(second, "error", tr("files.part_kept", part=str(tmp_path / name)), "")
    qtbot.wait(50)
    row = panel.rows[first]
    assert row.sha256_field.text() == "ab" * 32 and row.sha256_field.isVisible()
    assert not panel.transfers_area.horizontalScrollBar().isVisible()
    assert not panel.remote_list.horizontalScrollBar().isVisible()
    assert panel.remote_list.item(0).toolTip() == name
    inner = panel.transfers_area.widget()
    assert inner.width() <= panel.transfers_area.viewport().width()
    window.close()


def test_code_less_tabs_without_a_certificate_say_what_to_do(
    relay_process: RelayProcess,
    signed_out_home: Path,
    qtbot: QtBot,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PUENTE_LANG", "es")
    window = signed_in_window(qtbot, relay_process)  # signed in, no certificate kept
    try:
        for tab in (
            window.take_request("ab" * 16),
            window.connect_device("cd" * 16, "HD-40"),
        ):
            assert tab is not None
            qtbot.waitUntil(lambda tab=tab: tab.ended, timeout=wait_ms(10))
            assert tab.status_label.text() == tr("queue.need_certificate")
            assert "--cert" in tab.status_label.text() and "certificado" in tab.status_label.text()
            assert window.tabs.tabText(window.tabs.indexOf(tab)).endswith("✗")
            window.tabs.tabCloseRequested.emit(window.tabs.indexOf(tab))  # nothing open: closes
        assert window.tabs.count() == 0
    finally:
        window.close()
