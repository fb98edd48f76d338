"""Blocking REST calls of the client library (:class:`technician.client.RelayAPI`), run
off the GUI thread; the answers come back by Qt signal.

The Queue and Devices views poll the relay through this: each kind of call runs at most
once at a time (a slow relay is never asked again before it answered), and every
failure arrives as a sentence in the viewer's language
(:func:`technician.viewer.i18n.relay_sentence`). :class:`PolledList` shows what each
poll brought, keeping the technician's choice across refills.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtWidgets import QListWidget, QListWidgetItem

from ..client import RelayAPI
from .i18n import relay_sentence
from .signin import SignIn


class RelayCalls(QObject):
    """Runs one blocking call per name at a time, in a thread of its own."""

    answered = Signal(str, object)  # the call's name, what it returned
    failed = Signal(str, str)  # the call's name, the sentence to show

    def __init__(self) -> None:
        super().__init__()
        self._running: set[str] = set()
        self.answered.connect(lambda name, _answer: self._running.discard(name))
        self.failed.connect(lambda name, _sentence: self._running.discard(name))

    def busy(self, name: str) -> bool:
        return name in self._running

    def run(self, name: str, call: Callable[[], Any]) -> bool:
        """Start ``call`` unless a call of this name still runs; True if started."""
        if name in self._running:
            return False
        self._running.add(name)

        def work() -> None:
            try:
                answer = call()
            except Exception as exc:  # every failure becomes a sentence
                self._tell("failed", name, relay_sentence(exc))
                return
            self._tell("answered", name, answer)

        threading.Thread(target=work, name=f"puente-viewer-{name}", daemon=True).start()
        return True

    def _tell(self, signal: str, *values: object) -> None:
        # The window may have closed (and Qt deleted this object) while the relay
        # answered: then nobody is left to tell.
        with contextlib.suppress(RuntimeError):
            getattr(self, signal).emit(*values)


class RelayPoller(RelayCalls):
    """:class:`RelayCalls` that also asks the relay one thing again every ``seconds``
    while signed in (``ask`` picks the call of the client library to make)."""

    def __init__(
        self, name: str, seconds: float, ask: Callable[[RelayAPI], Callable[[], Any]]
    ) -> None:
        super().__init__()
        self.sign_in: SignIn | None = None
        self._name = name
        self._ask = ask
        self.timer = QTimer(self)
        self.timer.setInterval(int(seconds * 1000))
        self.timer.timeout.connect(self.poll)

    def follow(self, sign_in: SignIn | None) -> None:
        """Ask as ``sign_in`` from now on, at once and then every few seconds; None stops."""
        self.sign_in = sign_in
        if sign_in is None:
            self.timer.stop()
            return
        self.poll()
        self.timer.start()

    def api(self) -> RelayAPI | None:
        """The client library for the signed-in technician (None when signed out)."""
        if self.sign_in is None:
            return None
        return RelayAPI(self.sign_in.relay, self.sign_in.token)

    def poll(self) -> None:
        api = self.api()
        if api is not None:
            self.run(self._name, self._ask(api))


class PolledList(QListWidget):
    """Rows refilled from each poll, each with its key (a request's or a device's id);
    the row chosen before a refill is chosen again after it."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.setAccessibleName(name)
        self.setWordWrap(True)

    def show_rows(self, rows: list[tuple[str, str]]) -> None:
        """``rows``: (key, plain text already made safe) pairs, in order."""
        chosen = self.chosen()
        self.clear()
        for key, text in rows:
            item = QListWidgetItem(text)
            item.setData(Qt.ItemDataRole.UserRole, key)
            self.addItem(item)
            if key == chosen:
                self.setCurrentItem(item)

    def chosen(self) -> str:
        """The key of the chosen row ("" when none is)."""
        item = self.currentItem()
        return str(item.data(Qt.ItemDataRole.UserRole)) if item is not None else ""

    def texts(self) -> list[str]:
        return [self.item(i).text() for i in range(self.count())]
