"""Bad things during a session, each said in a plain sentence in the viewer.

* the customer stops Files in the middle of a download: the row says so and says
  what was left on disk (the part, kept for resuming), nothing frozen;
* the relay goes away mid-session: the tab says the session ended and why;
* keyboard: Ctrl+N reaches the ticket field and Enter there starts the session.

Real relay process and real agent (a scripted customer); no display needed.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from technician.viewer.i18n import tr
from tests.support.customer import ScriptedCustomer
from tests.support.relay import RelayProcess
from tests.support.viewer import signed_in_window, wait_ms


def test_a_stopped_permission_mid_download_and_a_dropped_relay_are_said_plainly(
    relay_process: RelayProcess,
    signed_out_home: Path,
    tmp_path: Path,
    qtbot: QtBot,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PUENTE_LANG", "en")
    window = signed_in_window(qtbot, relay_process)
    # Keyboard only: Ctrl+N, type the ticket, Enter.
    qtbot.keyClick(window, Qt.Key.Key_N, Qt.KeyboardModifier.ControlModifier)
    assert window.sessions_panel.ticket_field.hasFocus() or not window.isActiveWindow()
    qtbot.keyClicks(window.sessions_panel.ticket_field, "HD-40")
    qtbot.keyClick(window.sessions_panel.ticket_field, Qt.Key.Key_Return)
    tab = window.current_tab()
    assert tab is not None and tab.ticket == "HD-40"
    qtbot.waitUntil(lambda: tab.code != "", timeout=wait_ms(20))

    shared = tmp_path / "shared"
    shared.mkdir()
    with open(shared / "disk.img", "wb") as big:  # 4 GB, sparse
        big.truncate(4 * 1024**3)
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    customer = ScriptedCustomer(
        relay_process.ws_url,
        tab.code,
        tmp_path / "logs",
        answers={"Files": "y"},
        choices={"Which folder": str(shared)},
    )
    try:
        qtbot.waitUntil(lambda: tab.worker.session is not None, timeout=wait_ms(30))
        files = tab.files_panel
        files.folder_field.setText(str(downloads))
        transfer = files.download("disk.img")
        qtbot.waitUntil(lambda: files.rows[transfer].bar.value() > 0, timeout=wait_ms(40))
        customer.send("stop files")  # the customer takes the permission back mid-transfer
        row = files.rows[transfer]
        qtbot.waitUntil(lambda: row.status != "", timeout=wait_ms(30))
        part = downloads / "disk.img.puente-part"
        assert row.status == "declined", row.result_label.text()
        assert row.result_label.text().startswith("the customer stopped files")
        assert row.result_label.text().endswith(tr("files.part_kept", part=str(part)))
        assert part.exists() and not (downloads / "disk.img").exists()
        assert not row.cancel_button.isEnabled()
        assert tab.status_label.text().startswith(tr("consents.revoked_now", title="files"))

        # The relay goes away: the tab says the session ended, and why.
        relay_process.stop()
        qtbot.waitUntil(lambda: tab.ended, timeout=wait_ms(90))
        assert tab.status_label.text().startswith(tr("tab.ended", reason=""))
        assert len(tab.status_label.text()) > len(tr("tab.ended", reason="")) + 5
    finally:
        customer.kill()
        window.close()
