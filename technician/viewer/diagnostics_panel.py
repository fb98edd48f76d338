"""The diagnostics panel: the report, the triage findings, and the signed fixes they suggest.

"Collect diagnostics" asks the customer (Diagnostics capability); the snapshot is shown
as a readable report and matched against the knowledge base (the console's
:func:`technician.fix_commands.run_triage`). Each finding lists its evidence and its
suggested fixes ranked by past cases; choosing one and "Run fix" (or "Preview") sends it
through :func:`technician.fix_commands.run_fix`: the customer's agent verifies the
signature and asks them, the output streams here line by line, and the result line
says how it ended (declined, refused, exit status).

The snapshot, the evidence and the output come from the customer's machine: all of it
passes through ``safe_text`` and is shown in plain-text widgets.
"""

from __future__ import annotations

import json
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QHBoxLayout,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from protocol.safe_text import safe_text

from .i18n import tr, tr_count
from .screen_view import plain_label

#: Where a suggestion item keeps its fix id and parameters.
_FIX_ROLE = int(Qt.ItemDataRole.UserRole)


def report_text(snapshot: dict[str, Any]) -> str:
    """The snapshot as an indented, readable report (inert text)."""
    text = json.dumps(snapshot, indent=2, sort_keys=True, ensure_ascii=False, default=str)
    return safe_text(text, 10 * len(text) + 1, multiline=True)


class DiagnosticsPanel(QWidget):
    collect_requested = Signal()
    fix_requested = Signal(str, dict, str)  # fix id, parameters, action (run / dry_run)

    def __init__(self) -> None:
        super().__init__()
        self.collect_button = QPushButton(tr("diagnostics.collect"))
        self.run_button = QPushButton(tr("diagnostics.run_fix"))
        self.preview_button = QPushButton(tr("diagnostics.preview_fix"))
        self.status_label = plain_label(tr("diagnostics.none"))
        self.status_label.setWordWrap(True)
        self.findings = QTreeWidget()
        self.findings.setHeaderHidden(True)
        self.findings.setAccessibleName(tr("diagnostics.findings"))
        self.report = QPlainTextEdit()
        self.report.setReadOnly(True)
        self.report.setAccessibleName(tr("diagnostics.report"))
        self.output = QPlainTextEdit()
        self.output.setReadOnly(True)
        self.output.setAccessibleName(tr("diagnostics.output"))
        buttons = QHBoxLayout()
        for button in (self.collect_button, self.preview_button, self.run_button):
            buttons.addWidget(button)
        splitter = QSplitter(Qt.Orientation.Vertical)
        for widget in (self.findings, self.output, self.report):
            splitter.addWidget(widget)
        layout = QVBoxLayout(self)
        layout.addLayout(buttons)
        layout.addWidget(self.status_label)
        layout.addWidget(splitter, 1)
        self.collect_button.clicked.connect(self._collect)
        self.run_button.clicked.connect(lambda: self._fix("run"))
        self.preview_button.clicked.connect(lambda: self._fix("dry_run"))
        self.findings.itemActivated.connect(lambda _item, _column: self._fix("run"))

    def _collect(self) -> None:
        self.status_label.setText(tr("diagnostics.asking"))
        self.collect_requested.emit()

    def show_snapshot(self, snapshot: dict[str, Any], findings: list[dict[str, Any]]) -> None:
        self.report.setPlainText(report_text(snapshot))
        self.findings.clear()
        for finding in findings:
            title = tr(
                "diagnostics.finding",
                severity=safe_text(finding.get("severity", ""), 20),
                title=safe_text(finding.get("title", ""), 200),
            )
            top = QTreeWidgetItem([title])
            for evidence in list(finding.get("evidence", []))[:10]:
                top.addChild(
                    QTreeWidgetItem([tr("diagnostics.evidence", text=safe_text(evidence, 300))])
                )
            advice = safe_text(finding.get("advice", ""), 500)
            if advice:
                top.addChild(QTreeWidgetItem([tr("diagnostics.advice", text=advice)]))
            for suggestion in finding.get("suggestions", []):
                fix = QTreeWidgetItem(
                    [
                        tr(
                            "diagnostics.suggested",
                            command=safe_text(suggestion.get("command", ""), 300),
                        )
                    ]
                )
                fix.setData(
                    0,
                    _FIX_ROLE,
                    (str(suggestion.get("fix", "")), dict(suggestion.get("params") or {})),
                )
                top.addChild(fix)
            self.findings.addTopLevelItem(top)
            top.setExpanded(True)
        self.status_label.setText(
            tr_count("diagnostics.found", len(findings)) if findings else tr("diagnostics.nothing")
        )

    def suggestions(self) -> list[QTreeWidgetItem]:
        found = []
        for i in range(self.findings.topLevelItemCount()):
            top = self.findings.topLevelItem(i)
            for j in range(top.childCount()):
                if top.child(j).data(0, _FIX_ROLE):
                    found.append(top.child(j))
        return found

    def _fix(self, action: str) -> None:
        item = self.findings.currentItem()
        chosen = item.data(0, _FIX_ROLE) if item is not None else None
        if not chosen:
            self.status_label.setText(tr("diagnostics.choose_fix"))
            return
        fix_id, params = chosen
        self.output.clear()
        self.status_label.setText(tr("diagnostics.fix_asking", fix=safe_text(fix_id, 64)))
        self.fix_requested.emit(fix_id, params, action)

    def fix_line(self, line: str) -> None:
        self.output.appendPlainText(safe_text(line, 2000))

    def fix_done(self, status: str, message: str) -> None:
        self.status_label.setText(
            tr("diagnostics.fix_result", status=status, message=safe_text(message, 600))
        )

    def problem(self, text: str) -> None:
        self.status_label.setText(safe_text(text, 600))
