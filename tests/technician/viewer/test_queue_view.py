"""Issue 17 in the viewer: the Queue view (the desktop viewer "shows the queue the same
way" as ``puente-tech queue``).

A real relay process, two technicians with skills (``puente-relay technician add``),
real agents filing help requests from their console with a pinned organisation key
(as ``tests/e2e/test_help_request.py`` does), and the real viewer offscreen, signed in
as the printing technician with their organisation certificate:

- the availability control changes what the relay holds;
- a request is listed live (place, category, language, description, estimate);
- Decline passes it on: the relay offers it to the next technician, and taking it
  afterwards is refused with a plain sentence;
- Accept on the next request opens a session tab with no code, paired by the
  certificate; diagnostics collected in that tab arrive.

Screenshots of the Queue in English and Spanish go where the other viewer tests put
theirs.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from technician.viewer.i18n import tr
from technician.viewer.window import ViewerWindow
from tests.e2e.test_help_request import DESCRIPTION, asker, set_up_desk, tech_run
from tests.support.relay import RelayProcess
from tests.support.trust_fixtures import make_organisation
from tests.support.viewer import wait_ms, window_for

PACO = "Paco Printers"


def relay_listing(relay: RelayProcess, token: str) -> dict[str, object]:
    """What the relay says of the queue to this technician (``queue list --json``)."""
    listing: dict[str, object] = json.loads(
        tech_run(relay.ws_url, token, "queue", "list", "--json")
    )
    return listing


def rows_with(window: ViewerWindow, text: str) -> list[int]:
    return [i for i, row in enumerate(window.queue_panel.rows()) if text in row]


def test_the_queue_view_declines_accepts_and_opens_a_code_less_session(
    relay_process: RelayProcess,
    signed_out_home: Path,
    screenshots: Path,
    tmp_path: Path,
    qtbot: QtBot,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PUENTE_LANG", "en")
    relay = relay_process
    org = make_organisation(tmp_path / "org", "Acme IT")
    tokens = set_up_desk(relay, org, tmp_path)  # both technicians away
    window = window_for(qtbot, relay.ws_url, tokens[PACO], org.technician(PACO, "paco"))
    queue = window.queue_panel
    window.side.setCurrentWidget(queue)
    customers = []
    try:
        # Availability: the control's choice is what the relay holds.
        qtbot.waitUntil(lambda: queue.me_label.text() != "", timeout=wait_ms(20))
        queue.choose("available")
        qtbot.waitUntil(
            lambda: (
                queue.status_label.text()
                == tr("queue.availability_set", availability=tr("queue.available"))
            ),
            timeout=wait_ms(20),
        )
        assert relay_listing(relay, tokens[PACO])["technician"]["availability"] == "available"

        first = asker(relay.ws_url, org, tmp_path / "logs-first")
        customers.append(first)
        first.expect(r"^Your request for help was sent")
        qtbot.waitUntil(lambda: bool(rows_with(window, DESCRIPTION)), timeout=wait_ms(20))
        [row] = queue.rows()
        assert "#1 · printing/en" in row and tr("queue.row_offered") in row, row
        assert queue.count_label.text() == "1 help request is waiting."
        window.grab().save(str(screenshots / "viewer-queue-en.png"))

        # Decline: it goes to the next technician (Nina, once she is available).
        queue.list.setCurrentRow(0)
        declined_id = queue.selected_request()
        qtbot.mouseClick(queue.decline_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(
            lambda: queue.status_label.text() == tr("queue.declined"), timeout=wait_ms(20)
        )
        [mine] = relay_listing(relay, tokens[PACO])["requests"]
        assert not mine["offered_to_you"] and mine["state"] == "waiting"
        tech_run(relay.ws_url, tokens["Nina Network"], "availability", "available")
        [hers] = relay_listing(relay, tokens["Nina Network"])["requests"]
        assert hers["offered_to_you"], hers  # passed on
        qtbot.waitUntil(lambda: "offered to Nina Network" in queue.rows()[0], timeout=wait_ms(20))
        # Taking it now is refused, in a sentence (the tab says so; nothing opens).
        refused_tab = window.take_request(declined_id)
        assert refused_tab is not None
        qtbot.waitUntil(lambda: refused_tab.ended, timeout=wait_ms(20))
        assert refused_tab.status_label.text() == tr("relay.offered_elsewhere")
        window.tabs.removeTab(window.tabs.indexOf(refused_tab))
        refused_tab.shutdown()

        # The next request is offered to Paco (printing): Accept opens a working session.
        second = asker(relay.ws_url, org, tmp_path / "logs-second")
        customers.append(second)
        second.expect(r"^Your request for help was sent")
        qtbot.waitUntil(
            lambda: any(tr("queue.row_offered") in r for r in queue.rows()), timeout=wait_ms(20)
        )
        [offered] = [i for i, r in enumerate(queue.rows()) if tr("queue.row_offered") in r]
        queue.list.setCurrentRow(offered)
        qtbot.mouseClick(queue.accept_button, Qt.MouseButton.LeftButton)
        tab = window.current_tab()
        assert tab is not None and tab.opening.request_id
        qtbot.waitUntil(lambda: tab.worker.session is not None, timeout=wait_ms(40))
        assert tab.code_label.text() == tr("tab.code_less")
        second.expect(rf"^{PACO} took your request; connecting now\.")
        sas = tab.sas_label.text().split(": ", 1)[1]
        second.expect(rf"^Check code: {sas}")
        assert tab.ticket and window.tabs.tabText(window.tabs.indexOf(tab)) == tab.ticket
        qtbot.mouseClick(tab.diagnostics_panel.collect_button, Qt.MouseButton.LeftButton)
        report = tab.diagnostics_panel.report
        qtbot.waitUntil(lambda: report.toPlainText() != "", timeout=wait_ms(40))
        # Taken: the Queue no longer offers it (it looked again as the session opened).
        qtbot.waitUntil(
            lambda: not any(tr("queue.row_offered") in r for r in queue.rows()),
            timeout=wait_ms(10),
        )
        assert second.questions == ["Diagnostics"]  # the session's one question
        # Transfer (the console's): a note is needed; then the customer waits for Nina.
        assert tab.transfer_row.isVisible()
        tab.transfer_to.setText("Nina Network")
        qtbot.mouseClick(tab.transfer_button, Qt.MouseButton.LeftButton)
        assert tab.status_label.text() == tr("transfer.need")
        tab.transfer_note.setText("Printer fine; check the network")
        window.grab().save(str(screenshots / "viewer-queue-session-en.png"))
        qtbot.mouseClick(tab.transfer_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: tab.ended, timeout=wait_ms(30))
        second.expect(r"^Your request was passed on to another technician \(note: Printer fine")
        passed = [
            r
            for r in relay_listing(relay, tokens["Nina Network"])["requests"]
            if r["note"] == "Printer fine; check the network"
        ]
        assert passed and passed[0]["state"] in ("waiting", "offered"), passed
        # The summary went to the ticket as after any session of the viewer.
        qtbot.waitUntil(
            lambda: tab.ending_panel.isVisible() or tab.panels.currentWidget() is tab.ending_panel,
            timeout=wait_ms(30),
        )

        # The Queue in Spanish: the same listing, another window of the same technician.
        monkeypatch.setenv("PUENTE_LANG", "es")
        spanish = window_for(qtbot, relay.ws_url, tokens[PACO], remember_sign_in=False)
        spanish.side.setCurrentWidget(spanish.queue_panel)
        qtbot.waitUntil(
            lambda: bool(spanish.queue_panel.rows()) and spanish.queue_panel.me_label.text() != "",
            timeout=wait_ms(20),
        )
        assert spanish.queue_panel.count_label.text() == "2 solicitudes de ayuda en espera."
        assert any("ofrecida a Nina Network" in r for r in spanish.queue_panel.rows())
        spanish.grab().save(str(screenshots / "viewer-queue-es.png"))
        spanish.close()
    finally:
        for customer in customers:
            if customer.proc.poll() is None:
                customer.proc.send_signal(signal.SIGINT)
        for customer in customers:
            customer.wait(20)
            customer.close()
        window.close()
