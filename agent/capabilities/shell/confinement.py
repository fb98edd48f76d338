"""What the technician names, confined to the customer's shared folder and made safe to show.

Every path an SFTP client names is canonicalised and confined by :func:`confine`:
``..`` above the shared folder is refused, and symbolic links are resolved, so a
link that leads outside the folder is refused too. :func:`check_folder` checks the
customer's answer to "which folder?" (the ``files`` capability's follow-up question).
"""

from __future__ import annotations

import os
from pathlib import Path

from agent.errors import PathRefused
from agent.i18n import t

# Paths ------------------------------------------------------------------------------


def confine(root: str, client_path: str, *, follow: bool = True) -> str:
    """The local path for ``client_path`` inside ``root``, or :class:`PathRefused`.

    ``root`` must already be canonical (``os.path.realpath``). The client sees the
    shared folder as ``/``: absolute and relative paths both start there. A ``..``
    that climbs above it is refused, as is any path whose canonical form (symbolic
    links resolved) lies outside. With ``follow=False`` the last component is not
    resolved (lstat, remove, rename act on a link itself), but every folder above it
    is.
    """
    parts: list[str] = []
    for part in client_path.replace("\\", "/").split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                raise PathRefused(client_path)
            parts.pop()
            continue
        if os.name == "nt" and (":" in part):
            raise PathRefused(client_path)  # drive letters and streams (C:, file:ads)
        parts.append(part)
    local = os.path.join(root, *parts)
    if follow or not parts:
        canonical = os.path.realpath(local)
    else:
        canonical = os.path.join(os.path.realpath(os.path.dirname(local)), parts[-1])
    if canonical != root and not canonical.startswith(root.rstrip(os.sep) + os.sep):
        raise PathRefused(client_path)
    return canonical


def shown_path(root: str, local: str) -> str:
    """How a confined local path is shown to the technician: relative to ``/``."""
    relative = os.path.relpath(local, root)
    return "/" if relative == "." else "/" + relative.replace(os.sep, "/")


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("bytes", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{size} bytes" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{size} bytes"  # pragma: no cover - loop always returns


def default_folder() -> str:
    return str(Path.home())


def check_folder(answer: str) -> str:
    """The canonical folder for the customer's answer, or ValueError saying what to do."""
    path = Path(answer.strip()).expanduser()
    if not path.is_absolute():
        path = Path.home() / path
    if not path.is_dir():
        raise ValueError(t("files.no_folder", path=str(path)))
    return os.path.realpath(path)
