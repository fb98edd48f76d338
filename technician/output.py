"""What the ``puente-tech`` commands print: human lines, or one JSON object per line.

Apart from :mod:`technician.cli` so that the command modules it dispatches to (such as
:mod:`technician.trust_cli`) can print the same way without importing the CLI back.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from protocol.safe_text import safe_text

#: Human lines may be long (a summary); they are still made inert, never cut short.
SHOWN_LIMIT = 100_000


class Output:
    """Human lines on stdout, or one JSON object per line with --json.

    Human lines carry what the agent and the relay said, so they go through safe_text
    (lines kept); JSON escapes control characters itself.
    """

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json

    def event(self, name: str, text: str, **fields: Any) -> None:
        if self.as_json:
            print(json.dumps({"event": name, **fields}), flush=True)
        else:
            print(safe_text(text, SHOWN_LIMIT, multiline=True), flush=True)

    def paired(self, sas: str) -> None:
        """The customer joined: the check code both ends show."""
        self.event(
            "paired",
            f"Customer joined. Check code: {sas} - ask the customer to read theirs; "
            "if it differs, end the session.",
            sas=sas,
        )

    def error(self, text: str, **fields: Any) -> None:
        if self.as_json:
            print(json.dumps({"event": "error", "message": text, **fields}), flush=True)
        print(safe_text(text, SHOWN_LIMIT, multiline=True), file=sys.stderr, flush=True)


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by this user only (0600, also when it existed):
    what is written (diagnostics, a customer's details) is nobody else's business."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        if os.name != "nt":
            os.fchmod(file.fileno(), 0o600)
        file.write(text)
