"""Nameplates: the short, relay-allocated first part of a session code. Pure helpers.

Nameplates are 3 digits (``100``-``999``, no leading zero so no UI can drop one)
while fewer than half of the 3-digit nameplates are live, then 4 digits, and so on.
A nameplate is *live* while its session is waiting and not expired, or paired; a
nameplate is only ever allocated to one live session at a time.
"""

from __future__ import annotations

import secrets
from collections.abc import Collection

#: Shortest nameplate, in digits.
MIN_NAMEPLATE_DIGITS = 3

#: Longest nameplate the envelope accepts (see ``protocol.envelope.parse_claim``).
MAX_NAMEPLATE_DIGITS = 9


def nameplate_digits(live: Collection[str]) -> int:
    """How many digits a new nameplate needs, given the live ones.

    Widen while more than half of the current width's nameplates are live, so a
    random pick needs two tries on average and a guess rarely hits a live code.
    """
    digits = MIN_NAMEPLATE_DIGITS
    while digits < MAX_NAMEPLATE_DIGITS:
        space = 9 * 10 ** (digits - 1)
        if sum(1 for n in live if len(n) == digits) * 2 <= space:
            break
        digits += 1
    return digits


def choose_nameplate(live: Collection[str]) -> str:
    """A random nameplate not among ``live``, as short as :func:`nameplate_digits` allows."""
    taken = set(live)
    digits = nameplate_digits(taken)
    low = 10 ** (digits - 1)
    while True:
        candidate = str(low + secrets.randbelow(9 * low))
        if candidate not in taken:
            return candidate
