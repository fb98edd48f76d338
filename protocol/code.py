"""Session codes: ``NAMEPLATE-SECRET``, shown to the customer as ``417-862-093``.

The relay allocates the nameplate (3 or more digits) for routing. The technician's
client makes the 6-digit secret with a CSPRNG; the secret never reaches the relay.
Both parts together are the PAKE password.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

SECRET_DIGITS = 6

_SEPARATORS = re.compile(r"[\s\-_.]")


class InvalidCodeError(ValueError):
    """The text is not a session code."""

    def __init__(self, text: str) -> None:
        super().__init__(
            f"{text!r} is not a session code; it looks like 417-862-093 "
            "(nine or more digits, dashes optional)."
        )


@dataclass(frozen=True)
class SessionCode:
    nameplate: str
    secret: str

    def __post_init__(self) -> None:
        if not (self.nameplate.isdigit() and 3 <= len(self.nameplate) <= 9):
            raise InvalidCodeError(self.nameplate)
        if not (self.secret.isdigit() and len(self.secret) == SECRET_DIGITS):
            raise InvalidCodeError(self.secret)

    @classmethod
    def new(cls, nameplate: str) -> SessionCode:
        """A code for ``nameplate`` with a fresh random secret."""
        secret = "".join(str(secrets.randbelow(10)) for _ in range(SECRET_DIGITS))
        return cls(nameplate, secret)

    @classmethod
    def parse(cls, text: str) -> SessionCode:
        """Parse what a customer typed: dashes, spaces and dots are ignored."""
        digits = _SEPARATORS.sub("", text)
        if not digits.isdigit() or len(digits) < 3 + SECRET_DIGITS:
            raise InvalidCodeError(text)
        return cls(digits[:-SECRET_DIGITS], digits[-SECRET_DIGITS:])

    def __str__(self) -> str:
        return f"{self.nameplate}-{self.secret[:3]}-{self.secret[3:]}"

    def __repr__(self) -> str:
        # Never let the secret slip into a log line through repr().
        return f"SessionCode(nameplate={self.nameplate!r}, secret=<hidden>)"
