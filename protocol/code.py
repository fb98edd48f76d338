"""Session codes: ``NAMEPLATE-SECRET``, shown to the customer as ``417-862-093``.

The relay allocates the nameplate (3 or more digits) for routing. The technician's
client makes the 6-digit secret with a CSPRNG; the secret never reaches the relay.
Both parts together are the PAKE password.
"""

from __future__ import annotations

import re
import secrets
import unicodedata
from dataclasses import dataclass

# Raised here; named here too for callers that import it from this module.
from .errors import InvalidCodeError as InvalidCodeError

SECRET_DIGITS = 6

_SEPARATORS = re.compile(r"[\s\-_.]")


def _ascii_digits(text: str) -> bool:
    # str.isdigit() alone also accepts "²" and other scripts' digits, which the
    # PAKE password (ASCII) and the relay's nameplate lookup cannot carry.
    return text.isascii() and text.isdigit()


@dataclass(frozen=True)
class SessionCode:
    nameplate: str
    secret: str

    def __post_init__(self) -> None:
        if not (_ascii_digits(self.nameplate) and 3 <= len(self.nameplate) <= 9):
            raise InvalidCodeError(self.nameplate)
        if not (_ascii_digits(self.secret) and len(self.secret) == SECRET_DIGITS):
            raise InvalidCodeError(self.secret)

    @classmethod
    def new(cls, nameplate: str) -> SessionCode:
        """A code for ``nameplate`` with a fresh random secret."""
        secret = "".join(str(secrets.randbelow(10)) for _ in range(SECRET_DIGITS))
        return cls(nameplate, secret)

    @classmethod
    def parse(cls, text: str) -> SessionCode:
        """Parse what a customer typed: dashes, spaces and dots are ignored.

        Decimal digits of any script (full-width ``４１７``, Arabic-Indic ``٤١٧``) are
        read as the ASCII digits they stand for, so a phone keyboard or an input method
        cannot make a correct code fail.
        """
        typed = _SEPARATORS.sub("", text)
        if not typed.isdecimal() or len(typed) < 3 + SECRET_DIGITS:
            raise InvalidCodeError(text)
        digits = "".join(str(unicodedata.decimal(ch)) for ch in typed)
        try:
            return cls(digits[:-SECRET_DIGITS], digits[-SECRET_DIGITS:])
        except InvalidCodeError:
            # Quote what the customer typed, not the part that was too long.
            raise InvalidCodeError(text) from None

    def __str__(self) -> str:
        return f"{self.nameplate}-{self.secret[:3]}-{self.secret[3:]}"

    def __repr__(self) -> str:
        # Never let the secret slip into a log line through repr().
        return f"SessionCode(nameplate={self.nameplate!r}, secret=<hidden>)"
