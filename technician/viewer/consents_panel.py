"""The consents panel: what the customer has allowed right now, live, and what each allows.

Capability names come from the agent (untrusted): they pass through ``safe_text`` and
are shown as plain text. What each permission allows is the viewer's own sentence
for the capabilities it knows.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QListWidget, QListWidgetItem, QVBoxLayout, QWidget

from protocol.safe_text import safe_text

from .i18n import tr

#: What each capability lets the technician do, as the technician reads it.
ALLOWS: dict[str, dict[str, str]] = {
    "screen": {"en": "see the screen", "es": "ver la pantalla"},
    "control": {"en": "move the mouse and type", "es": "mover el ratón y escribir"},
    "diagnostics": {"en": "collect a system report", "es": "recoger un informe del sistema"},
    "files": {
        "en": "read and write the shared folder",
        "es": "leer y escribir la carpeta compartida",
    },
    "shell": {"en": "open a terminal", "es": "abrir un terminal"},
    "fixes": {"en": "run signed fixes", "es": "ejecutar arreglos firmados"},
}


def state_text(state: str) -> str:
    key = f"consents.{state}"
    return tr(key) if key in _STATES else safe_text(state, 40)


_STATES = {"consents.granted", "consents.declined", "consents.revoked"}


class ConsentsPanel(QWidget):
    """A list of capability: state (what it allows), refreshed on every consent change."""

    def __init__(self) -> None:
        super().__init__()
        self.empty = QLabel(tr("consents.none"))
        self.empty.setTextFormat(Qt.TextFormat.PlainText)
        self.empty.setWordWrap(True)
        self.list = QListWidget()
        self.list.setAccessibleName(tr("panel.consents"))
        layout = QVBoxLayout(self)
        layout.addWidget(self.empty)
        layout.addWidget(self.list, 1)

    def show_consent(self, consent: dict[str, str]) -> None:
        """Show ``consent`` (capability -> granted/declined/revoked) as it is now."""
        from .i18n import language

        self.list.clear()
        for name in sorted(consent):
            allows = ALLOWS.get(name, {}).get(language(), "")
            title = safe_text(name, 64) + (f" ({allows})" if allows else "")
            item = QListWidgetItem(tr("consents.row", title=title, state=state_text(consent[name])))
            self.list.addItem(item)
        self.empty.setVisible(not consent)

    def rows(self) -> list[str]:
        return [self.list.item(i).text() for i in range(self.list.count())]
