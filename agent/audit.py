"""The customer's local audit log: what was done on this machine, hash-chained.

One JSON object per line, written and flushed at once so the customer (or their IT
department) can read it during and after the session. It never holds the collected
content itself, only what was done. Each line reads::

    {"n": 3, "time": "2026-01-02 10:00:07 +0100", "event": "You allowed: Diagnostics.",
     "prev": "<hash of entry 2>", "hash": "<hash of this entry>"}

(on one line). Rules of the chain:

1. ``hash`` = SHA-256 of ``"puente-audit/1\\n"`` followed by the line as written up to
   ``prev`` (that is, the JSON of ``n``, ``time``, ``event``, ``prev`` in this order,
   with ``json.dumps`` default separators and UTF-8 text).
2. ``prev`` is the previous entry's ``hash``; the first entry's is 64 zeros. ``n``
   counts from 1.
3. :func:`verify_log` re-derives every line byte for byte from its fields: editing any
   byte of a line (text, time, spacing, the hash itself) makes that entry fail, and
   removing or inserting a line breaks the next entry's ``prev`` or ``n``.

What a hash chain cannot do alone: someone who rewrites an entry *and* recomputes
every later hash, or who cuts entries off the end, is not detected by the file
alone. The agent therefore ends each session with a closing entry and prints the
last hash to the customer, who can compare it later.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

CHAIN_LABEL = "puente-audit/1\n"
GENESIS = "0" * 64
_FIELDS = ("n", "time", "event", "prev", "hash")


def default_log_dir() -> Path:
    """Where session logs go: the platform's per-user state folder."""
    if os.name == "nt":
        base = Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local"))
        return base / "Puente" / "logs"
    state = os.environ.get("XDG_STATE_HOME")
    return (Path(state) if state else Path.home() / ".local" / "state") / "puente"


def _entry_head(n: int, stamp: str, event: str, prev: str) -> str:
    """The line as written up to (not including) the hash: what the hash covers."""
    body = json.dumps({"n": n, "time": stamp, "event": event, "prev": prev}, ensure_ascii=False)
    return body[:-1]  # drop the closing brace; the hash follows


def _entry_hash(head: str) -> str:
    return hashlib.sha256((CHAIN_LABEL + head).encode("utf-8")).hexdigest()


def format_entry(n: int, stamp: str, event: str, prev: str) -> tuple[str, str]:
    """One log line (without newline) and its hash."""
    head = _entry_head(n, stamp, event, prev)
    digest = _entry_hash(head)
    return f'{head}, "hash": "{digest}"}}', digest


class AgentLog:
    """Append-only, hash-chained log file; each ``write`` is one entry (one line)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        # The log tells what was done on this computer: the customer's eyes only (0700/0600).
        # A folder the customer named with --log-dir keeps its mode unless we made it.
        private = not path.parent.exists() or path.parent == default_log_dir()
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if private and os.name != "nt":
            os.chmod(path.parent, 0o700)
        self._count, self.last_hash = _chain_tail(path)
        descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self._file: TextIO = os.fdopen(descriptor, "a", encoding="utf-8")
        if os.name != "nt":
            os.fchmod(descriptor, 0o600)

    @classmethod
    def for_session(cls, directory: Path | None, nameplate: str) -> AgentLog:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        return cls((directory or default_log_dir()) / f"session-{stamp}-{nameplate}.log")

    @property
    def entries(self) -> int:
        return self._count

    def write(self, text: str) -> None:
        """Append one entry. ``text`` is a plain sentence about what was done."""
        stamp = time.strftime("%Y-%m-%d %H:%M:%S %z")
        self._count += 1
        line, self.last_hash = format_entry(self._count, stamp, text, self.last_hash)
        self._file.write(line + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def _chain_tail(path: Path) -> tuple[int, str]:
    """Entry count and last hash of an existing log, so appending continues the chain."""
    try:
        with open(path, "rb") as file:
            lines = file.read().splitlines()
    except FileNotFoundError:
        return 0, GENESIS
    for raw in reversed(lines):
        try:
            entry = json.loads(raw)
            return int(entry["n"]), str(entry["hash"])
        except (ValueError, KeyError, TypeError):
            continue
    return 0, GENESIS


# Verification -------------------------------------------------------------------------


@dataclass(frozen=True)
class LogVerdict:
    """The result of :func:`verify_log`. ``broken_line`` is 1-based; None when intact."""

    entries: int
    last_hash: str
    broken_line: int | None = None
    problem: str = ""

    @property
    def ok(self) -> bool:
        return self.broken_line is None

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "entries": self.entries,
            "last_hash": self.last_hash,
            "broken_line": self.broken_line,
            "problem": self.problem,
        }


def verify_log(path: Path) -> LogVerdict:
    """Check the whole chain; report the FIRST entry that does not hold.

    Raises OSError if the file cannot be read.
    """
    with open(path, "rb") as file:
        data = file.read()
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()  # the newline that ends the last entry
    prev = GENESIS
    for number, raw in enumerate(lines, start=1):

        def broken(problem: str, number: int = number, prev: str = prev) -> LogVerdict:
            return LogVerdict(number - 1, prev, number, problem)

        try:
            text = raw.decode("utf-8")
            entry = json.loads(text)
        except (UnicodeDecodeError, ValueError):
            return broken(f"entry {number} is not a log entry any more (it was edited)")
        if not isinstance(entry, dict) or tuple(entry) != _FIELDS:
            return broken(f"entry {number} does not have the fields of a log entry (it was edited)")
        n, stamp, event, entry_prev, digest = (entry[k] for k in _FIELDS)
        if not (isinstance(n, int) and isinstance(stamp, str) and isinstance(event, str)):
            return broken(f"entry {number} has fields of the wrong type (it was edited)")
        if not isinstance(entry_prev, str):
            return broken(f"entry {number} has fields of the wrong type (it was edited)")
        line, expected = format_entry(n, stamp, event, entry_prev)
        if line != text or digest != expected:
            return broken(f"entry {number} was edited: its content does not match its hash")
        if n != number:
            return broken(
                f"entry {number} is numbered {n}: entries were removed or inserted before it"
            )
        if entry_prev != prev:
            return broken(
                f"entry {number} does not follow entry {number - 1}: an entry before it "
                "was removed, inserted or rewritten"
            )
        prev = digest
    return LogVerdict(len(lines), prev)
