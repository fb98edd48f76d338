"""Issue 16, acceptance 2: two sessions in tabs; one survives a 10-second cut.

Two real agents on the same Xvfb display (scripted customers), one real relay, the
real viewer offscreen. The first customer reaches the relay through the
fault-injecting proxy; its connection is cut for 10 seconds while the second tab
keeps streaming. The first tab says plainly that the customer's connection dropped,
then that it is back, and its screen goes on without a second question.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from technician.viewer.i18n import tr
from technician.viewer.session_tab import SessionTab
from tests.support.customer import ScriptedCustomer
from tests.support.proxy import FaultInjectingProxy
from tests.support.relay import RelayProcess
from tests.support.screen_fixtures import ScreenApp
from tests.support.viewer import open_tab, signed_in_window, wait_ms


def view(tab: SessionTab, qtbot: QtBot) -> None:
    qtbot.waitUntil(lambda: tab.worker.session is not None, timeout=wait_ms(30))
    qtbot.mouseClick(tab.view_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: tab.frames_painted > 0, timeout=wait_ms(30))


def test_one_tab_survives_a_ten_second_cut_while_the_other_streams(
    relay_process: RelayProcess,
    screen_app: ScreenApp,
    signed_out_home: Path,
    screenshots: Path,
    tmp_path: Path,
    qtbot: QtBot,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PUENTE_LANG", "en")
    window = signed_in_window(qtbot, relay_process)
    customers: list[ScriptedCustomer] = []
    with FaultInjectingProxy("127.0.0.1", relay_process.port) as proxy:
        try:
            cut_tab = open_tab(window, "HD-21", qtbot)
            customers.append(
                ScriptedCustomer(
                    proxy.url, cut_tab.code, tmp_path / "logs-cut", answers={"Screen view": "y"}
                )
            )
            steady_tab = open_tab(window, "HD-22", qtbot)
            customers.append(
                ScriptedCustomer(
                    relay_process.ws_url,
                    steady_tab.code,
                    tmp_path / "logs-steady",
                    answers={"Screen view": "y"},
                )
            )
            view(cut_tab, qtbot)
            view(steady_tab, qtbot)
            assert [window.tabs.tabText(i) for i in range(2)] == ["HD-21", "HD-22"]
            screen_app.command("animate 1500")  # the picture changes every 20 ms, 30 s long

            proxy.cut()
            qtbot.waitUntil(
                lambda: cut_tab.status_label.text() == tr("tab.peer_lost"), timeout=wait_ms(20)
            )
            assert window.tabs.tabText(0).endswith("⚠")  # the tab says it too
            window.tabs.setCurrentWidget(cut_tab)
            save_path = screenshots / "viewer-network-cut-en.png"
            assert window.grab().save(str(save_path))
            steady_before, cut_before = steady_tab.frames_painted, cut_tab.frames_painted
            qtbot.wait(10_000)
            # The other tab kept streaming the whole time (the picture changed ~50 times a
            # second; it painted at least a few each second), the cut one painted nothing new.
            assert steady_tab.frames_painted - steady_before >= 20
            assert cut_tab.frames_painted - cut_before <= 2
            proxy.restore()

            qtbot.waitUntil(
                lambda: cut_tab.status_label.text() == tr("tab.resumed"), timeout=wait_ms(40)
            )
            assert window.tabs.tabText(0) == "HD-21"
            resumed_at = cut_tab.frames_painted
            qtbot.waitUntil(lambda: cut_tab.frames_painted > resumed_at + 5, timeout=wait_ms(20))
            assert customers[0].questions == ["Screen view"]  # not asked again
            assert cut_tab.worker.session is not None and not cut_tab.ended

            # This customer does not allow Clipboard: refused, nothing read.
            qtbot.mouseClick(steady_tab.tools.get_clipboard_button, Qt.MouseButton.LeftButton)
            refused = tr("tools.clipboard_refused", reason="")
            label = steady_tab.tools.clipboard_label
            qtbot.waitUntil(lambda: label.text().startswith(refused), timeout=wait_ms(30))
            assert customers[1].questions == ["Screen view", "Clipboard"]

            for tab in (cut_tab, steady_tab):
                qtbot.mouseClick(tab.end_button, Qt.MouseButton.LeftButton)
            for customer in customers:
                assert customer.wait() == 0
        finally:
            for customer in customers:
                customer.kill()
            window.close()
