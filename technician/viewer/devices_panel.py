"""Devices: the organisation's enrolled devices, online or not, with their open alerts,
and Connect for an unattended session.

The same REST call as ``puente-tech devices`` (:meth:`technician.client.RelayAPI.list_devices`),
polled every :data:`POLL_SECONDS` off the GUI thread. Each device is one row: its id,
online or offline, and one line per open alert (the check, its severity, since when,
its help-desk ticket). Every value came from the relay and is shown through
``safe_text``. Connect asks for the ticket and opens a session tab the way ``puente-tech
connect DEVICE --ticket T`` does (:meth:`SessionWorker.connect_device`): the device
pairs without a code and its owner's policy decides.
"""

from __future__ import annotations

import time
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from protocol.safe_text import safe_text

from .i18n import known, tr, tr_count
from .relay_calls import PolledList, RelayPoller
from .screen_view import plain_label
from .signin import SignIn

#: Seconds between two looks at the devices while signed in.
POLL_SECONDS = 5.0


def alert_line(alert: dict[str, Any]) -> str:
    """One open alert: check, severity, since when, ticket."""
    since = alert.get("since")
    ticket = alert.get("ticket")
    return tr(
        "devices.alert",
        check=safe_text(str(alert.get("check") or ""), 64),
        severity=known(f"devices.severity.{alert.get('severity')}", alert.get("severity")),
        since=time.strftime("%Y-%m-%d %H:%M", time.localtime(float(since)))
        if isinstance(since, (int, float))
        else "-",
        ticket=tr("devices.ticket", ticket=safe_text(str(ticket), 40))
        if ticket
        else tr("devices.no_ticket"),
    )


def device_row(device: dict[str, Any]) -> str:
    """A device and its open alerts, one per line."""
    alerts = device.get("alerts")
    if not isinstance(alerts, list):  # a relay that only names the checks
        alerts = [{"check": check} for check in device.get("open_alerts") or []]
    head = tr(
        "devices.row",
        device=safe_text(str(device.get("device_id") or ""), 64),
        state=tr("devices.online") if device.get("online") else tr("devices.offline"),
        alerts=tr_count("devices.alerts", len(alerts)) if alerts else tr("devices.no_alerts"),
    )
    return "\n".join([head, *(alert_line(a) for a in alerts if isinstance(a, dict))])


class DevicesPanel(QWidget):
    """The devices, a ticket field and Connect."""

    connect_requested = Signal(str, str)  # device id, ticket

    def __init__(self) -> None:
        super().__init__()
        self.devices: list[dict[str, Any]] = []
        self.calls = RelayPoller("devices", POLL_SECONDS, lambda api: api.list_devices)
        self.heading: QLabel = plain_label(tr("devices.title"), bold=True)
        self.list = PolledList(tr("devices.title"))
        self.count_label = plain_label("")
        self.ticket_field = QLineEdit()
        self.ticket_field.setPlaceholderText(tr("devices.ticket_field"))
        self.connect_button = QPushButton(tr("devices.connect"))
        self.status_label = plain_label("")
        self.status_label.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.addWidget(self.heading)
        layout.addWidget(self.list, 1)
        layout.addWidget(self.count_label)
        layout.addWidget(self.ticket_field)
        layout.addWidget(self.connect_button)
        layout.addWidget(self.status_label)
        self.connect_button.clicked.connect(self._connect)
        self.ticket_field.returnPressed.connect(self._connect)
        self.calls.answered.connect(self._answered)
        self.calls.failed.connect(lambda _name, text: self.status_label.setText(safe_text(text)))

    def set_sign_in(self, sign_in: SignIn | None) -> None:
        """Follow the devices ``sign_in`` sees (None: signed out, nothing shown)."""
        self.calls.follow(sign_in)
        if sign_in is None:
            self.show_devices([])

    def refresh(self) -> None:
        self.calls.poll()

    def show_devices(self, devices: list[dict[str, Any]]) -> None:
        self.devices = [d for d in devices if isinstance(d, dict)]
        self.list.show_rows([(str(d.get("device_id", "")), device_row(d)) for d in self.devices])
        self.count_label.setText(
            tr_count("devices.count", len(self.devices)) if self.devices else tr("devices.none")
        )

    def selected_device(self) -> str:
        return self.list.chosen()

    def rows(self) -> list[str]:
        return self.list.texts()

    def _answered(self, name: str, answer: object) -> None:
        if name == "devices" and isinstance(answer, list):
            self.show_devices(answer)

    def _connect(self) -> None:
        device_id = self.selected_device()
        ticket = self.ticket_field.text().strip()
        if not device_id:
            self.status_label.setText(tr("devices.choose"))
            return
        if not ticket:
            self.status_label.setText(tr("devices.need_ticket"))
            self.ticket_field.setFocus()
            return
        device = next((d for d in self.devices if d.get("device_id") == device_id), {})
        if not device.get("online"):
            self.status_label.setText(tr("devices.offline_now"))
            return
        self.status_label.setText("")
        self.connect_requested.emit(device_id, ticket)
