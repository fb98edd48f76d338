"""Issue 18 in the viewer: the Devices view (the desktop viewer "shows devices and
alerts the same way" as ``puente-tech devices``) and Connect.

A real relay process filing alerts in a real Request Tracker, a real agent enrolled in
the foreground (``--no-service``, as ``tests/e2e/test_unattended.py`` does) whose
signed policy has a disk check that cannot pass (every 5 s, one failure opens the
alert) and lets certified technicians in unattended ("allowed", diagnostics only), and
the real viewer offscreen, signed in with a certificate that has the unattended role.

The view lists the device online with its open alert: the check, its severity, since
when and its ticket; Connect asks for a ticket, then opens a session tab the way
``puente-tech connect DEVICE --ticket T`` does, and diagnostics collected there arrive.
Screenshots in English and Spanish.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from technician.viewer.i18n import tr
from tests.e2e.test_unattended import Device, certify
from tests.support.device_fixtures import relay_with_rt, signed_policy
from tests.support.helpdesk import RequestTracker
from tests.support.trust_fixtures import make_organisation
from tests.support.viewer import wait_ms, window_for

POLICY = """\
[[checks]]
id = "full-disk"
kind = "disk_free"
path = "{path}"
min_free_percent = 100
severity = "critical"
every_seconds = 5
failures_before_alert = 1

[unattended]
mode = "allowed"
capabilities = ["diagnostics"]
"""


def test_the_devices_view_shows_a_device_its_alert_and_connects(
    request_tracker: RequestTracker,
    signed_out_home: Path,
    screenshots: Path,
    tmp_path: Path,
    qtbot: QtBot,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PUENTE_LANG", "en")
    relay = relay_with_rt(tmp_path / "relay", request_tracker)
    acme = make_organisation(tmp_path / "org", "Acme IT")
    ana = certify(acme, "Ana Lopez", "ana", "unattended")
    policy = signed_policy(acme, tmp_path, POLICY.format(path=tmp_path))
    token = relay.add_technician("Ana desk")
    device = Device(relay, relay.ws_url, acme, policy, tmp_path / "state")
    try:
        window = window_for(qtbot, relay.ws_url, token, ana)
        panel = window.devices_panel
        window.side.setCurrentWidget(panel)

        def shown() -> str:
            return "\n".join(panel.rows())

        # Online, and the alert in full once Request Tracker made its ticket.
        qtbot.waitUntil(lambda: " · ticket " in shown(), timeout=wait_ms(40))
        [row] = panel.rows()
        head, alert = row.split("\n")
        assert head == f"{device.device_id} · online · 1 open alert", row
        assert alert.startswith("  ⚠ full-disk · critical · since 20"), alert
        assert panel.count_label.text() == "1 device enrolled."
        window.grab().save(str(screenshots / "viewer-devices-en.png"))

        # Connect wants a ticket first, then opens an unattended session tab.
        panel.list.setCurrentRow(0)
        qtbot.mouseClick(panel.connect_button, Qt.MouseButton.LeftButton)
        assert panel.status_label.text() == tr("devices.need_ticket")
        panel.ticket_field.setText("HD-1818")
        qtbot.mouseClick(panel.connect_button, Qt.MouseButton.LeftButton)
        tab = window.current_tab()
        assert tab is not None and tab.opening.device_id == device.device_id
        qtbot.waitUntil(lambda: tab.worker.session is not None, timeout=wait_ms(40))
        assert tab.code_label.text() == tr("tab.code_less")
        assert window.tabs.tabText(window.tabs.indexOf(tab)) == "HD-1818"
        qtbot.mouseClick(tab.diagnostics_panel.collect_button, Qt.MouseButton.LeftButton)
        report = tab.diagnostics_panel.report
        qtbot.waitUntil(lambda: report.toPlainText() != "", timeout=wait_ms(40))
        window.grab().save(str(screenshots / "viewer-devices-session-en.png"))
        qtbot.mouseClick(tab.end_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: tab.ended, timeout=wait_ms(30))
        assert "Unattended session started: Ana Lopez (Acme IT) for ticket HD-1818" in device.log()

        # The same view in Spanish.
        monkeypatch.setenv("PUENTE_LANG", "es")
        spanish = window_for(qtbot, relay.ws_url, token, remember_sign_in=False)
        spanish.side.setCurrentWidget(spanish.devices_panel)
        qtbot.waitUntil(lambda: bool(spanish.devices_panel.rows()), timeout=wait_ms(20))
        [row] = spanish.devices_panel.rows()
        assert "· conectado · 1 alerta abierta" in row and "· crítica · desde 20" in row, row
        spanish.grab().save(str(screenshots / "viewer-devices-es.png"))
        spanish.close()
    finally:
        device.stop()
        relay.stop()
