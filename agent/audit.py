"""The customer's local, human-readable log of everything done on this machine.

One line per event, with local time, written and flushed at once so the customer
(or their IT department) can read it during and after the session. It never holds
the collected content itself, only what was done.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TextIO


def default_log_dir() -> Path:
    """Where session logs go: the platform's per-user state folder."""
    if os.name == "nt":
        base = Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local"))
        return base / "Puente" / "logs"
    state = os.environ.get("XDG_STATE_HOME")
    return (Path(state) if state else Path.home() / ".local" / "state") / "puente"


class AgentLog:
    """Append-only log file; each ``write`` is one line."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file: TextIO = open(path, "a", encoding="utf-8")  # noqa: SIM115 - lives with the session
        os.chmod(path, 0o600)

    @classmethod
    def for_session(cls, directory: Path | None, nameplate: str) -> AgentLog:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        return cls((directory or default_log_dir()) / f"session-{stamp}-{nameplate}.log")

    def write(self, text: str) -> None:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S %z")
        self._file.write(f"{stamp}  {text}\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()
