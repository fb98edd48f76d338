"""The files panel: drop files into the customer's shared folder, download with progress.

Transfers are the console's (``get_file`` / ``put_file`` in
:mod:`technician.ssh_commands`): the customer is asked for Files once, copies resume
from a ``.puente-part``, and each ends with the SHA-256 compared with the agent's; the
panel shows that SHA-256 as the customer's side computed it. Each transfer is a row
with a progress bar and a Cancel button; a cancelled or failed transfer says in a
sentence what was left behind (the part file, kept for resuming).

File names come from the customer's machine: they are listed through ``safe_text`` as
plain text, and a downloaded file's local name is that safe text with path
separators replaced, so a name can neither act on the screen nor leave the download
folder.
"""

from __future__ import annotations

import itertools
import posixpath
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from protocol.safe_text import safe_text

from .i18n import tr, tr_count
from .screen_view import plain_label

_IDS = itertools.count(1)


def _narrow(label: QLabel) -> QLabel:
    """A wrapping label that never asks for more width than the panel gives it (a long
    file name without spaces is cut at the edge rather than widening every row)."""
    label.setWordWrap(True)
    label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
    label.setMinimumWidth(0)
    return label


def local_name(remote: str) -> str:
    """A safe file name in the download folder for the customer's ``remote`` name."""
    name = safe_text(posixpath.basename(remote.rstrip("/")), 200)
    name = name.replace("/", "_").replace("\\", "_").strip(". ")
    return name or "download"


class TransferRow(QWidget):
    """One transfer: what, a progress bar, Cancel, then how it ended and the SHA-256."""

    cancel_requested = Signal(int)

    def __init__(self, transfer_id: int, text: str) -> None:
        super().__init__()
        self.transfer_id = transfer_id
        self.label: QLabel = _narrow(plain_label(text))
        self.bar = QProgressBar()
        self.bar.setRange(0, 1000)
        self.cancel_button = QPushButton(tr("files.cancel"))
        self.result_label = _narrow(plain_label(""))
        # The SHA-256 (64 characters, no space to wrap at) in a field of its own: it
        # scrolls inside itself instead of widening the panel, and copies exactly.
        self.sha256_field = QLineEdit()
        self.sha256_field.setReadOnly(True)
        self.sha256_field.setAccessibleName("SHA-256")
        self.sha256_field.setMinimumWidth(0)
        self.sha256_field.hide()
        self.sha256 = ""
        self.status = ""
        row = QHBoxLayout()
        row.addWidget(self.bar, 1)
        row.addWidget(self.cancel_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 4, 0, 6)
        layout.addWidget(self.label)
        layout.addLayout(row)
        layout.addWidget(self.result_label)
        layout.addWidget(self.sha256_field)
        self.cancel_button.clicked.connect(lambda: self.cancel_requested.emit(self.transfer_id))

    def progress(self, done: int, total: int) -> None:
        self.bar.setValue(int(1000 * done / total) if total else 1000)

    def finish(self, status: str, message: str, sha256: str) -> None:
        self.status = status
        self.sha256 = sha256
        self.cancel_button.setEnabled(False)
        if status == "ok":
            self.bar.setValue(1000)
            self.result_label.setText(tr("files.verified"))
            self.sha256_field.setText(sha256)
            self.sha256_field.setCursorPosition(0)
            self.sha256_field.show()
        else:
            self.result_label.setText(safe_text(message, 500))


class FilesPanel(QWidget):
    """The customer's shared folder, a drop zone, and the transfers."""

    list_requested = Signal()
    upload_requested = Signal(int, str, str)  # id, local path, remote name
    download_requested = Signal(int, str, str)  # id, remote name, local path
    cancel_requested = Signal(int)

    def __init__(self, download_folder: Path | None = None) -> None:
        super().__init__()
        self.setAcceptDrops(True)
        self.drop_label = plain_label(tr("files.drop_here"))
        self.drop_label.setWordWrap(True)
        self.folder_field = QLineEdit(str(download_folder or Path.home() / "Downloads"))
        self.folder_field.setAccessibleName(tr("files.download_folder"))
        self.refresh_button = QPushButton(tr("files.refresh"))
        self.download_button = QPushButton(tr("files.download"))
        self.remote_list = QListWidget()
        self.remote_list.setAccessibleName(tr("files.remote"))
        # A long name is shortened in the middle (whole in its tooltip), not scrolled.
        self.remote_list.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.remote_list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.status_label = plain_label("")
        self.status_label.setWordWrap(True)
        self.transfers = QVBoxLayout()
        self.rows: dict[int, TransferRow] = {}
        buttons = QHBoxLayout()
        buttons.addWidget(self.refresh_button)
        buttons.addWidget(self.download_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.drop_label)
        layout.addWidget(plain_label(tr("files.download_folder")))
        layout.addWidget(self.folder_field)
        layout.addLayout(buttons)
        layout.addWidget(self.remote_list, 1)
        transfers = QWidget()
        transfers.setLayout(self.transfers)
        self.transfers.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidget(transfers)
        scroll.setWidgetResizable(True)
        # Rows wrap to the panel's width (nothing in them needs more): no sideways bar.
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.transfers_area = scroll
        layout.addWidget(scroll, 1)
        layout.addWidget(self.status_label)
        self.refresh_button.clicked.connect(self.list_requested.emit)
        self.download_button.clicked.connect(self.download_selected)
        self.remote_list.itemActivated.connect(lambda _item: self.download_selected())

    # The shared folder --------------------------------------------------------------------

    def show_listing(self, entries: list[tuple[str, int]]) -> None:
        self.remote_list.clear()
        for name, size in entries:
            item = QListWidgetItem(tr("files.entry", name=safe_text(name, 200), size=size))
            item.setToolTip(safe_text(name, 200))
            item.setData(256, name)  # Qt.UserRole: the real name, for the download request
            self.remote_list.addItem(item)
        self.status_label.setText(tr_count("files.listed", len(entries)))

    def names(self) -> list[str]:
        return [self.remote_list.item(i).data(256) for i in range(self.remote_list.count())]

    def download_selected(self) -> None:
        item = self.remote_list.currentItem()
        if item is None:
            self.status_label.setText(tr("files.choose_first"))
            return
        self.download(str(item.data(256)))

    def download(self, remote: str) -> int:
        folder = Path(self.folder_field.text().strip() or ".")
        if not folder.is_dir():
            self.status_label.setText(tr("files.no_folder", folder=str(folder)))
            return 0
        target = folder / local_name(remote)
        transfer_id = self._row(tr("files.downloading", name=safe_text(remote, 200)))
        self.download_requested.emit(transfer_id, remote, str(target))
        return transfer_id

    # Dropping files -------------------------------------------------------------------------

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802 - Qt API
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802 - Qt API
        paths = [Path(url.toLocalFile()) for url in event.mimeData().urls() if url.isLocalFile()]
        event.acceptProposedAction()
        self.upload(paths)

    def upload(self, paths: list[Path]) -> list[int]:
        """Send each file (folders are refused with a sentence) into the shared folder."""
        ids = []
        for path in paths:
            if not path.is_file():
                self.status_label.setText(tr("files.not_a_file", path=str(path)))
                continue
            transfer_id = self._row(tr("files.uploading", name=path.name))
            self.upload_requested.emit(transfer_id, str(path), path.name)
            ids.append(transfer_id)
        return ids

    # Transfers ------------------------------------------------------------------------------

    def _row(self, text: str) -> int:
        transfer_id = next(_IDS)
        row = TransferRow(transfer_id, text)
        row.cancel_requested.connect(self.cancel_requested.emit)
        self.rows[transfer_id] = row
        self.transfers.insertWidget(self.transfers.count() - 1, row)  # above the stretch
        return transfer_id

    def progress(self, transfer_id: int, done: int, total: int) -> None:
        row = self.rows.get(transfer_id)
        if row is not None:
            row.progress(done, total)

    def finish(self, transfer_id: int, status: str, message: str, sha256: str) -> None:
        row = self.rows.get(transfer_id)
        if row is not None:
            row.finish(status, message, sha256)
