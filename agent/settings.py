"""Settings baked into an organisation's build, and the session code in the file name.

``installers/build.py agent --relay URL --org-key FILE --org-name NAME`` writes a
``puente-settings.json`` into the one-file binary. It holds only what is public:
the relay's address, the organisation's name and its *public* key (to verify
technicians and fixes). There is no enrolment secret, token or private key in it,
so a copy of the installer gives a stranger nothing (the "weird agents" lesson):
the binary still joins only the session whose code the customer has.

Lookup order for the settings file: ``PUENTE_SETTINGS`` (a path; tests and custom
deployments), then ``puente-settings.json`` inside the frozen bundle.
"""

from __future__ import annotations

import json
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from agent.errors import SettingsError
from protocol.code import InvalidCodeError, SessionCode

SETTINGS_FILE = "puente-settings.json"

#: Fields a settings file may hold; anything else is refused (it would be ignored
#: silently otherwise, and a secret put there by mistake must not ship).
FIELDS = ("relay", "org_name", "org_public_key")


@dataclass(frozen=True)
class BakedSettings:
    relay: str | None = None
    org_name: str | None = None
    #: PEM text of the organisation's Ed25519 public key.
    org_public_key: str | None = None

    @classmethod
    def parse(cls, text: str, where: str = SETTINGS_FILE) -> BakedSettings:
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise SettingsError(f"{where} is not valid JSON ({exc}); rebuild the agent.") from exc
        if not isinstance(data, dict):
            raise SettingsError(f"{where} must hold a JSON object; rebuild the agent.")
        unknown = sorted(set(data) - set(FIELDS))
        if unknown:
            raise SettingsError(
                f"{where} has unknown fields {', '.join(unknown)}; only {', '.join(FIELDS)} "
                "may be baked in. Rebuild the agent."
            )
        for name in FIELDS:
            if data.get(name) is not None and not isinstance(data[name], str):
                raise SettingsError(f"{where}: {name} must be a string; rebuild the agent.")
        key = data.get("org_public_key")
        if key is not None and "PRIVATE" in key:
            raise SettingsError(
                f"{where} holds a PRIVATE key; never ship one. Rebuild with the public key."
            )
        return cls(**{name: data.get(name) for name in FIELDS})


def settings_path() -> Path | None:
    explicit = os.environ.get("PUENTE_SETTINGS")
    if explicit:
        return Path(explicit)
    bundle = getattr(sys, "_MEIPASS", None)
    if bundle is not None:
        candidate = Path(bundle) / SETTINGS_FILE
        if candidate.exists():
            return candidate
    return None


def load_baked() -> BakedSettings:
    """The baked settings, or empty ones for a plain install."""
    path = settings_path()
    if path is None:
        return BakedSettings()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SettingsError(f"Cannot read {path} ({exc.strerror}); rebuild the agent.") from exc
    return BakedSettings.parse(text, str(path))


_CODE_IN_NAME = re.compile(r"puente-agent[-_ .]*(\d[\d\-_ .]*\d)", re.IGNORECASE)


def code_from_filename(path: str) -> SessionCode | None:
    """The session code in a download's name: ``puente-agent-417862093``,
    ``puente-agent-417-862-093.exe``, ``Puente-Agent_417862093 (1).exe``; else None."""
    match = _CODE_IN_NAME.search(Path(path).name)
    if not match:
        return None
    try:
        return SessionCode.parse(match.group(1))
    except InvalidCodeError:
        return None


_NAMEPLATE_IN_NAME = re.compile(r"puente-agent[-_ ]*(\d{3,9})(?!\d)", re.IGNORECASE)


def nameplate_from_filename(path: str) -> str | None:
    """The nameplate alone in a join page download's name: ``puente-agent-417``,
    ``puente-agent-417.exe``, ``puente-agent-417 (1).exe``; None for a whole code or none.

    The relay names the file after the session's nameplate and never its secret (it does
    not know it): the agent then asks only for the 6 digits the technician reads out.
    """
    if code_from_filename(path) is not None:
        return None
    match = _NAMEPLATE_IN_NAME.search(Path(path).name)
    return match.group(1) if match else None


def code_with_nameplate(typed: str, nameplate: str | None) -> SessionCode:
    """What the customer typed, read as the 6 secret digits after ``nameplate`` when it is
    exactly 6 digits, else as a whole code. Raise InvalidCodeError if it is neither."""
    digits = "".join(ch for ch in typed if not ch.isspace() and ch not in "-_.")
    if nameplate is not None and digits.isdecimal() and len(digits) == 6:
        return SessionCode.parse(nameplate + digits)
    return SessionCode.parse(typed)
