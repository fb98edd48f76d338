"""Reading the lock files (requirements/*.txt, installers/relay/requirements.txt)."""

from __future__ import annotations

import re
from pathlib import Path

from packaging.markers import Marker

#: ``name==version`` at the start of a line, then an optional ``; marker``.
PIN = re.compile(
    r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^ ;\\]+)\s*(?:;\s*([^\\]+?))?\s*\\?$"
)


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def locked_versions(path: Path, *, here_only: bool = True) -> dict[str, str]:
    """Each pinned package's version; with ``here_only``, those whose marker holds on
    this machine (a universal lock pins some packages once per Python or platform)."""
    pins: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        found = PIN.match(line)
        if not found:
            continue
        name, version, marker = found.groups()
        if here_only and marker and not Marker(marker).evaluate():
            continue
        pins[canonical(name)] = version
    return pins
