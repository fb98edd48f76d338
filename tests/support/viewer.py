"""Driving the real viewer in tests: a signed-in window and a session tab, waited for.

The window signs in against a real relay (its token through keyring, whose backend the
test chose); :func:`open_tab` starts a session for a ticket and waits for its code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pytestqt.qtbot import QtBot

from technician.credentials import load_credentials
from technician.viewer.session_tab import Knowledge, SessionTab
from technician.viewer.window import ViewerWindow
from tests.support.relay import RelayProcess
from tests.support.timeouts import scaled


def wait_ms(seconds: float) -> int:
    """``seconds`` scaled like every test timeout, in the milliseconds pytest-qt takes."""
    return int(scaled(seconds) * 1000)


def signed_in_window(qtbot: QtBot, relay: RelayProcess, **options: Any) -> ViewerWindow:
    """A shown viewer window, signed in as a new technician of ``relay``."""
    return window_for(qtbot, relay.ws_url, relay.add_technician("Ana Technician"), **options)


def window_for(
    qtbot: QtBot,
    relay_url: str,
    token: str,
    certificate: tuple[Path, Path] | None = None,
    **options: Any,
) -> ViewerWindow:
    """A shown viewer window signed in with ``token``, as the technician whose
    ``(certificate, key)`` files are given (code-less sessions need them)."""
    if certificate is not None:
        options["knowledge"] = Knowledge(credentials=load_credentials(*certificate))
    window = ViewerWindow(relay_url, token, **options)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitUntil(lambda: window.sign_in is not None, timeout=wait_ms(20))
    return window


def open_tab(window: ViewerWindow, ticket: str, qtbot: QtBot) -> SessionTab:
    """A new session's tab for ``ticket``, once its code is there to give the customer."""
    tab = window.start_session(ticket)
    assert tab is not None
    qtbot.waitUntil(lambda: tab.code != "", timeout=wait_ms(20))
    return tab
