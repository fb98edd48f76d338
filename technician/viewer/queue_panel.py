"""The Queue: help requests the signed-in technician may take, live, and their
availability.

The same REST calls as ``puente-tech queue list|decline`` and ``puente-tech
availability`` (:class:`technician.client.RelayAPI`), polled every
:data:`POLL_SECONDS` off the GUI thread (:class:`RelayCalls`). Each row: the request's
place in the queue, category, language, how long it has waited, the estimate its
customer sees, and the customer's description, which went through ``safe_text`` (it
is the customer's text). Accept asks the window for a session tab that takes the
request (:meth:`SessionWorker.take_request`: code-less pairing with the technician's
certificate, as ``queue accept`` does); Decline passes it to the next technician; the
availability control says whether requests are offered to this technician.
"""

from __future__ import annotations

import time
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from protocol.safe_text import safe_text

from ..client import RelayAPI
from .i18n import tr, tr_count
from .relay_calls import PolledList, RelayPoller
from .screen_view import plain_label
from .signin import SignIn

#: Seconds between two looks at the queue while signed in.
POLL_SECONDS = 2.0
AVAILABILITIES = ("available", "busy", "away")


def duration(seconds: float) -> str:
    """A wait in words: seconds under two minutes, else minutes."""
    seconds = max(0, int(seconds))
    if seconds < 120:
        return tr("queue.seconds", seconds=seconds)
    return tr("queue.minutes", minutes=round(seconds / 60))


def request_row(item: dict[str, Any], now: float) -> str:
    """One request as the list shows it (every value from the relay made inert)."""
    estimate = item.get("estimated_wait_seconds")
    if item.get("offered_to_you"):
        wait = tr("queue.row_offered")
    elif item.get("offered_to"):
        wait = tr("queue.row_offered_to", name=safe_text(str(item["offered_to"]), 80))
    elif isinstance(estimate, (int, float)):
        wait = tr("queue.estimate", wait=tr("queue.now") if estimate <= 0 else duration(estimate))
    else:
        wait = tr("queue.no_estimate")
    created = item.get("created_at")
    row = tr(
        "queue.row",
        position=safe_text(str(item.get("position") or "-"), 8),
        category=safe_text(str(item.get("category") or ""), 40),
        language=safe_text(str(item.get("language") or ""), 8),
        waited=duration(now - created) if isinstance(created, (int, float)) else "-",
        estimate=wait,
        description=safe_text(str(item.get("description") or ""), 300),
    )
    if item.get("note"):
        row += "\n" + tr("queue.note", note=safe_text(str(item["note"]), 300))
    return row


class QueuePanel(QWidget):
    """The requests, Accept and Decline, the technician's availability."""

    #: request id, a short title for its tab
    accept_requested = Signal(str, str)

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[dict[str, Any]] = []
        self.me: dict[str, Any] = {}
        self.calls = RelayPoller("queue", POLL_SECONDS, lambda api: api.queue)
        self.heading: QLabel = plain_label(tr("queue.title"), bold=True)
        self.availability = QComboBox()
        for value in AVAILABILITIES:
            self.availability.addItem(tr(f"queue.{value}"), value)
        self.availability.setAccessibleName(tr("queue.availability"))
        self.me_label = plain_label("")
        self.me_label.setWordWrap(True)
        self.list = PolledList(tr("queue.title"))
        self.accept_button = QPushButton(tr("queue.accept"))
        self.decline_button = QPushButton(tr("queue.decline"))
        self.count_label = plain_label("")
        self.status_label = plain_label("")
        self.status_label.setWordWrap(True)
        top = QHBoxLayout()
        top.addWidget(plain_label(tr("queue.availability")))
        top.addWidget(self.availability, 1)
        buttons = QHBoxLayout()
        buttons.addWidget(self.accept_button)
        buttons.addWidget(self.decline_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.heading)
        layout.addLayout(top)
        layout.addWidget(self.me_label)
        layout.addWidget(self.list, 1)
        layout.addWidget(self.count_label)
        layout.addLayout(buttons)
        layout.addWidget(self.status_label)
        self.accept_button.clicked.connect(self._accept)
        self.decline_button.clicked.connect(self._decline)
        self.list.itemActivated.connect(lambda _item: self._accept())
        self.availability.activated.connect(self._availability_chosen)
        self.calls.answered.connect(self._answered)
        self.calls.failed.connect(self._failed)

    # Public ----------------------------------------------------------------------------

    def set_sign_in(self, sign_in: SignIn | None) -> None:
        """Follow the queue of ``sign_in`` (None: signed out, nothing shown)."""
        self.calls.follow(sign_in)
        if sign_in is None:
            self.show_listing({"technician": {}, "requests": []})

    def refresh(self) -> None:
        self.calls.poll()

    def show_listing(self, listing: dict[str, Any]) -> None:
        me = listing.get("technician") or {}
        self.me = dict(me)
        offered = sorted(listing.get("requests") or [], key=_queue_order)
        self.requests = [r for r in offered if r.get("state") in ("waiting", "offered")]
        now = time.time()
        self.list.show_rows(
            [(str(r.get("request_id", "")), request_row(r, now)) for r in self.requests]
        )
        self.count_label.setText(
            tr_count("queue.count", len(self.requests)) if self.requests else tr("queue.empty")
        )
        if me:
            state = str(me.get("effective_availability", ""))
            self.me_label.setText(
                tr(
                    "queue.me",
                    availability=tr(f"queue.{state}") if state in AVAILABILITIES else state,
                    skills=safe_text(",".join(map(str, me.get("skills") or [])), 200),
                    holding=int(me.get("holding", 0)),
                    capacity=int(me.get("capacity", 0)),
                )
            )
            if not self.calls.busy("availability"):  # the relay's word, unless being changed
                index = self.availability.findData(str(me.get("availability", "")))
                if index >= 0:
                    self.availability.setCurrentIndex(index)
        else:
            self.me_label.setText("")

    def selected_request(self) -> str:
        return self.list.chosen()

    def rows(self) -> list[str]:
        return self.list.texts()

    def choose(self, availability: str) -> None:
        """Set the technician's availability at the relay (the control's action)."""
        index = self.availability.findData(availability)
        if index >= 0:
            self.availability.setCurrentIndex(index)
        self._availability_chosen(index)

    # Slots -----------------------------------------------------------------------------

    def _api(self) -> RelayAPI | None:
        api = self.calls.api()
        if api is None:
            self.status_label.setText(tr("sessions.need_signin"))
        return api

    def _accept(self) -> None:
        request_id = self.selected_request()
        if not request_id:
            self.status_label.setText(tr("queue.choose"))
            return
        self.accept_requested.emit(request_id, tr("queue.tab", request=request_id[:8]))

    def _decline(self) -> None:
        request_id = self.selected_request()
        api = self._api()
        if not request_id:
            self.status_label.setText(tr("queue.choose"))
        elif api is not None:
            self.calls.run("decline", lambda: api.queue_action(request_id, "decline"))

    def _availability_chosen(self, index: int) -> None:
        value = str(self.availability.itemData(index) or "")
        api = self._api()
        if api is not None and value:
            self.calls.run("availability", lambda: api.set_availability(value))

    def _answered(self, name: str, answer: object) -> None:
        if name == "queue" and isinstance(answer, dict):
            self.show_listing(answer)
            return
        if name == "availability" and isinstance(answer, dict):
            state = str(answer.get("effective_availability", ""))
            shown = tr(f"queue.{state}") if state in AVAILABILITIES else safe_text(state, 20)
            self.status_label.setText(tr("queue.availability_set", availability=shown))
        elif name == "decline":
            self.status_label.setText(tr("queue.declined"))
        self.refresh()

    def _failed(self, name: str, sentence: str) -> None:
        self.status_label.setText(safe_text(sentence, 500))


def _queue_order(item: dict[str, Any]) -> tuple[bool, int, float]:
    """Offered to me first, then by place in the queue, then oldest first."""
    position = item.get("position")
    created = item.get("created_at")
    return (
        not item.get("offered_to_you"),
        position if isinstance(position, int) else 1 << 30,
        float(created) if isinstance(created, (int, float)) else 0.0,
    )
