"""Run the real Puente viewer window for the benchmark, doing the technician's setup clicks.

Usage: python bench/viewer_driver.py RELAY TOKEN TICKET WIDTH HEIGHT

Prints ``code CODE`` (for the customer's agent), then ``ready`` once the screen is
shown at 1:1 with control granted, in a window of WIDTH x HEIGHT at the display's
top left. Runs until stdin closes.
"""

from __future__ import annotations

import sys
import threading
from typing import Any

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from technician.viewer.window import ViewerWindow


def main() -> None:
    relay, token, ticket, width, height = sys.argv[1:6]
    app = QApplication([])
    window = ViewerWindow(relay, token, ticket, "Bench Technician", remember_sign_in=False)
    window.setGeometry(0, 0, int(width), int(height))
    window.show()
    state = {"step": "start"}
    tabs: list[Any] = []

    stdin_closed = threading.Event()

    def tick() -> None:
        if stdin_closed.is_set():
            timer.stop()
            window.close()
            return
        step = state["step"]
        if step == "start":
            if window.sign_in is not None:  # signed in: open the session's tab
                tabs.append(window.start_session(ticket))
                # The whole 1920-pixel picture at 1:1 needs the width: the benchmark
                # looks at the screen only, so the side panels are put away.
                window.side.hide()  # My sessions, Queue, Devices
                tabs[0].panels.hide()
                state["step"] = "code"
            return
        tab = tabs[0]
        worker = tab.worker
        state["ticks"] = state.get("ticks", 0) + 1
        if state["ticks"] % 40 == 0 and worker.figures is not None:
            f = worker.figures
            print(f"figures {f.fps:.1f} fps painted {tab.frames_painted}", file=sys.stderr)
        if step == "code" and tab.code:
            print(f"code {tab.code}", flush=True)
            state["step"] = "pair"
        elif step == "pair" and worker.session is not None:
            tab.view_button.click()
            state["step"] = "view"
        elif step == "view" and tab.frames_painted > 0:
            tab.control_button.click()
            state["step"] = "control"
        elif step == "control" and worker.control_active:
            tab.scale_button.click()  # 1:1
            state["step"] = "ready"
            QTimer.singleShot(500, lambda: print("ready", flush=True))

    timer = QTimer()
    timer.timeout.connect(tick)
    timer.start(50)

    def watch_stdin() -> None:
        sys.stdin.read()
        stdin_closed.set()

    threading.Thread(target=watch_stdin, daemon=True).start()
    app.exec()


if __name__ == "__main__":
    main()
