"""Sign in once (issue 16, acceptance 5): the token goes to keyring and into no file.

A real relay process; keyring's file backend (keyrings.alt) in the test's folder.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import keyring
import pytest
from pytestqt.qtbot import QtBot

from technician.credentials import load_credentials
from technician.viewer.i18n import CATALOG, LANGUAGES, placeholders, tr
from technician.viewer.session_tab import Knowledge
from technician.viewer.signin import SERVICE, SignIn, recall
from technician.viewer.window import ViewerWindow
from tests.support.relay import RelayProcess
from tests.support.timeouts import scaled
from tests.support.trust_fixtures import Organisation, make_organisation
from tests.support.viewer import wait_ms


def files_under(folder: Path) -> list[Path]:
    return [path for path in folder.rglob("*") if path.is_file()]


def test_the_token_is_kept_by_keyring_and_in_no_file_the_viewer_writes(
    relay_process: RelayProcess, signed_out_home: Path, tmp_path: Path, qtbot: QtBot
) -> None:
    token = relay_process.add_technician("Ana Technician")
    window = ViewerWindow()
    qtbot.addWidget(window)
    assert window.sign_in is None  # nothing remembered yet
    window.relay_field.setText(relay_process.ws_url)
    window.token_field.setText(token)
    qtbot.mouseClick(window.sign_in_button, qtbot_left())
    qtbot.waitUntil(lambda: window.sign_in is not None, timeout=wait_ms(20))
    assert window.status_label.text().startswith("Signed in to ")
    assert window.token_field.text() == ""  # not left on screen either

    # Stored through keyring (its file backend here), under the viewer's service name.
    assert keyring.get_password(SERVICE, f"token for {relay_process.ws_url}") == token
    assert recall() == SignIn(relay_process.ws_url, token)
    assert "hidden" in repr(recall()) and token not in repr(recall())
    window.close()

    # The next start signs in from the store, with nothing typed.
    again = ViewerWindow()
    qtbot.addWidget(again)
    qtbot.waitUntil(lambda: again.sign_in is not None, timeout=wait_ms(20))
    assert again.status_label.text().startswith("Signed in from the credential store")
    tab = again.start_session("HD-5")
    assert tab is not None
    qtbot.waitUntil(lambda: tab.code != "", timeout=wait_ms(20))
    again.refresh_sessions()
    qtbot.waitUntil(lambda: len(again.sessions_panel.rows()) == 1, timeout=wait_ms(20))
    assert again.sessions_panel.rows()[0].startswith("HD-5 · ")
    again.close()

    # Every file the viewer (and Qt on its behalf) wrote in the home folder: no token.
    secret = token.encode()
    for path in files_under(signed_out_home):
        assert secret not in path.read_bytes(), path
    # Signing out removes it from the store.
    window = ViewerWindow()
    qtbot.addWidget(window)
    qtbot.waitUntil(lambda: window.sign_in is not None, timeout=wait_ms(20))
    qtbot.mouseClick(window.sign_out_button, qtbot_left())
    assert recall() is None
    assert keyring.get_password(SERVICE, f"token for {relay_process.ws_url}") is None


def test_a_wrong_token_is_said_plainly_and_not_remembered(
    relay_process: RelayProcess, signed_out_home: Path, qtbot: QtBot
) -> None:
    relay_process.add_technician("Ana Technician")
    window = ViewerWindow()
    qtbot.addWidget(window)
    window.relay_field.setText(relay_process.ws_url)
    window.token_field.setText("not-a-real-token")
    qtbot.mouseClick(window.sign_in_button, qtbot_left())
    qtbot.waitUntil(
        lambda: window.status_label.text() == tr("signin.wrong_token"), timeout=wait_ms(20)
    )
    assert window.sign_in is None and recall() is None
    # Starting a session without signing in says what to do.
    assert window.start_session("HD-5") is None
    assert window.status_label.text() == "Sign in first."


def test_an_unreachable_relay_is_said_plainly(signed_out_home: Path, qtbot: QtBot) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    window = ViewerWindow()
    qtbot.addWidget(window)
    window.relay_field.setText(f"ws://127.0.0.1:{port}")
    window.token_field.setText("some-token")
    qtbot.mouseClick(window.sign_in_button, qtbot_left())
    expected = tr("signin.unreachable", relay=f"ws://127.0.0.1:{port}")
    qtbot.waitUntil(lambda: window.status_label.text() == expected, timeout=wait_ms(20))
    assert "Check the address" in expected and recall() is None
    # Empty fields: what to fill in.
    window.relay_field.setText("")
    qtbot.mouseClick(window.sign_in_button, qtbot_left())
    assert window.status_label.text() == tr("signin.missing")


def test_every_viewer_sentence_exists_in_english_and_spanish() -> None:
    for key, texts in CATALOG.items():
        assert set(texts) == set(LANGUAGES), key
        assert all(texts[language].strip() for language in LANGUAGES), key
        assert placeholders(texts["en"]) == placeholders(texts["es"]), key


def qtbot_left():  # type: ignore[no-untyped-def]
    from PySide6.QtCore import Qt

    return Qt.MouseButton.LeftButton


@pytest.mark.parametrize("scale", ["1.25", "2"])
def test_readable_when_scaled(scale: str, screenshots: Path, tmp_path: Path) -> None:
    """At 125 % and 200 % every visible button's text fits (a picture is saved)."""
    shot = screenshots / f"viewer-scaled-{scale}-en.png"
    done = subprocess.run(
        [sys.executable, "-m", "tests.technician.viewer.scaled_window", str(shot)],
        capture_output=True,
        text=True,
        timeout=scaled(60),
        env={
            **os.environ,
            "QT_QPA_PLATFORM": "offscreen",
            "QT_SCALE_FACTOR": scale,
            "PUENTE_LANG": "en",
            "HOME": str(tmp_path),
            "PYTHON_KEYRING_BACKEND": "keyring.backends.null.Keyring",
        },
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "done", done.stdout + done.stderr
    assert [line for line in done.stdout.splitlines() if line.startswith("cut ")] == []
    assert shot.stat().st_size > 10_000


@pytest.fixture(scope="module")
def acme(tmp_path_factory: pytest.TempPathFactory) -> Organisation:
    return make_organisation(tmp_path_factory.mktemp("acme"), "Acme IT")


def test_the_certificate_and_key_are_kept_by_keyring_too(
    acme: Organisation, relay_process: RelayProcess, signed_out_home: Path, qtbot: QtBot
) -> None:
    cert, key = acme.technician("Ana Lopez", "ana")
    token = relay_process.add_technician("Ana Technician")
    knowledge = Knowledge(credentials=load_credentials(cert, key))
    window = ViewerWindow(relay_process.ws_url, token, knowledge=knowledge)
    qtbot.addWidget(window)
    qtbot.waitUntil(lambda: window.sign_in is not None, timeout=wait_ms(20))
    assert window.status_label.text() == tr(
        "signin.identity_kept", relay=relay_process.ws_url, name="Ana Lopez", organisation="Acme IT"
    )
    window.close()

    # The next start, with no file named: the certificate and key come from the store.
    again = ViewerWindow()
    qtbot.addWidget(again)
    qtbot.waitUntil(lambda: again.sign_in is not None, timeout=wait_ms(20))
    assert again.status_label.text() == tr(
        "signin.identity_remembered",
        relay=relay_process.ws_url,
        name="Ana Lopez",
        organisation="Acme IT",
    )
    kept = again.knowledge.credentials
    assert kept is not None and kept.certificate_bytes == cert.read_bytes()
    assert kept.private_key.public_key() == load_credentials(cert, key).private_key.public_key()
    again.close()
    # The key is in no file the viewer wrote.
    pem_body = "".join(key.read_text().splitlines()[1:-1]).encode()
    for path in files_under(signed_out_home):
        assert pem_body not in path.read_bytes().replace(b"\n", b""), path
