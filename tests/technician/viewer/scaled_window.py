"""Draw the viewer at a given scale (a child process: Qt reads QT_SCALE_FACTOR at start).

Usage: python -m tests.technician.viewer.scaled_window OUT.png

Opens the window with a session tab's panels (no relay needed: nothing is signed in),
saves a picture, and prints one line per button whose text does not fit
("cut NAME"), then "done".
"""

from __future__ import annotations

import sys

from PySide6.QtWidgets import QAbstractButton, QApplication

from technician.viewer.session_tab import SessionTab
from technician.viewer.signin import SignIn
from technician.viewer.window import ViewerWindow


def main() -> None:
    app = QApplication([])
    window = ViewerWindow(remember_sign_in=False)
    # A tab as a session shows it, without a relay: its worker reports the failure.
    tab = SessionTab(SignIn("ws://127.0.0.1:9", "token"), "HD-200")
    window.tabs.addTab(tab, tab.title)
    window.resize(1400, 900)
    window.show()
    for _ in range(20):
        app.processEvents()
    window.grab().save(sys.argv[1])
    for button in window.findChildren(QAbstractButton):
        if (
            button.isVisible()
            and button.text()
            and button.width() < button.minimumSizeHint().width()
        ):
            print(f"cut {button.text()}", flush=True)
    tab.shutdown()
    print("done", flush=True)


if __name__ == "__main__":
    main()
