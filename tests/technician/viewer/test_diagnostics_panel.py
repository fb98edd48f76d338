"""The diagnostics panel: collect, read the report, see a triage finding, run a signed fix.

(The same session, with no desktop on the customer's side, shows the clipboard refused
with the reason before the customer is asked; refusal by the customer is in
tests/agent/test_clipboard.py.)

A real organisation (made by the real ``puente-tech org`` commands), a technician
certificate, a fix signed by the organisation key, an agent that pins that key, a rule
folder whose rule always matches a Linux snapshot and suggests the fix. The viewer
collects diagnostics (the customer allows), shows the finding, runs the suggested fix
(the customer allows it, after reading the script), streams its output and shows how
it ended; the fix really ran on the customer's side.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from technician.credentials import load_credentials
from technician.viewer.i18n import tr
from technician.viewer.session_tab import Knowledge
from tests.support.customer import ScriptedCustomer
from tests.support.relay import RelayProcess
from tests.support.trust_fixtures import MARKER, Organisation, make_organisation
from tests.support.viewer import open_tab, signed_in_window, wait_ms

RULE = """
[[rule]]
problem = "marker-missing"
title = "The <b>marker</b> is missing"
severity = "medium"
when = {{ path = "os.system", op = "==", value = "Linux" }}
evidence = "this computer runs {{os.system}}"
advice = "Leave a marker."
fixes = [{{ id = "marker", params = {{ path = "{path}" }} }}]
"""


@pytest.fixture(scope="module")
def acme(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Organisation]:
    yield make_organisation(tmp_path_factory.mktemp("acme"), "Acme IT")


@pytest.mark.parametrize("language", ["en", "es"])
def test_collect_triage_and_run_a_signed_fix(
    language: str,
    acme: Organisation,
    relay_process: RelayProcess,
    signed_out_home: Path,
    screenshots: Path,
    tmp_path: Path,
    qtbot: QtBot,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PUENTE_LANG", language)
    cert, key = acme.technician("Ana Lopez", f"ana-{language}")
    library = tmp_path / "library"
    library.mkdir()
    acme.sign(acme.secret(), MARKER, library / "marker.puentefix")
    rules = tmp_path / "rules"
    rules.mkdir()
    marker = tmp_path / "customer-home" / "marker.txt"
    marker.parent.mkdir()
    (rules / "test.toml").write_text(RULE.format(path=marker))
    knowledge = Knowledge(load_credentials(cert, key), library, [rules])

    window = signed_in_window(qtbot, relay_process, knowledge=knowledge)
    tab = open_tab(window, "HD-30", qtbot)
    customer = ScriptedCustomer(
        relay_process.ws_url,
        tab.code,
        tmp_path / "logs",
        answers={"Diagnostics": "y", "Fix: Leave a marker": ["script", "y"]},
        extra=["--org-key", str(acme.public)],
        env={"DISPLAY": "", "WAYLAND_DISPLAY": ""},
    )
    try:
        qtbot.waitUntil(lambda: tab.worker.session is not None, timeout=wait_ms(30))
        customer.expect(r"Ana Lopez")  # the verified name, from the certificate
        panel = tab.diagnostics_panel
        tab.panels.setCurrentWidget(panel)
        qtbot.mouseClick(panel.collect_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: panel.findings.topLevelItemCount() > 0, timeout=wait_ms(40))
        titles = [
            panel.findings.topLevelItem(i).text(0)
            for i in range(panel.findings.topLevelItemCount())
        ]
        # Ours, among whatever the default rules find on this machine; its markup inert.
        assert (
            tr("diagnostics.finding", severity="medium", title="The <b>marker</b> is missing")
            in titles
        )
        assert '"os"' in panel.report.toPlainText()  # the readable report
        (suggestion,) = [
            item
            for item in panel.suggestions()
            if item.text(0).startswith(tr("diagnostics.suggested", command="fix marker"))
        ]
        panel.findings.setCurrentItem(suggestion)
        qtbot.mouseClick(panel.run_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(
            lambda: panel.status_label.text().startswith(
                tr("diagnostics.fix_result", status="ok", message="")
            ),
            timeout=wait_ms(60),
        )
        assert "stdout| marker written" in panel.output.toPlainText()
        assert "exit status 0" in panel.status_label.text()
        assert marker.read_text() == "ran\n"  # it really ran on the customer's side
        save = screenshots / f"viewer-diagnostics-{language}.png"
        assert window.grab().save(str(save))

        # A fix the customer declines says so.
        marker.unlink()
        qtbot.mouseClick(panel.run_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(
            lambda: panel.status_label.text().startswith(
                tr("diagnostics.fix_result", status="declined", message="")
            ),
            timeout=wait_ms(60),
        )
        assert not marker.exists()
        # No desktop on the customer's side: the clipboard is refused with the reason,
        # before the customer is asked anything.
        qtbot.mouseClick(tab.tools.get_clipboard_button, Qt.MouseButton.LeftButton)
        refused = tr("tools.clipboard_refused", reason="")
        qtbot.waitUntil(
            lambda: tab.tools.clipboard_label.text().startswith(refused), timeout=wait_ms(30)
        )
        assert "no desktop session" in tab.tools.clipboard_label.text()  # said, not asked
        assert "Clipboard" not in customer.questions
        qtbot.mouseClick(tab.end_button, Qt.MouseButton.LeftButton)
        assert customer.wait() == 0
    finally:
        customer.kill()
        window.close()
